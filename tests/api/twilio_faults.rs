//! TaskRouter misbehaving, through the pages: a local fake TaskRouter answers the tracer's REST
//! calls with a timeout, a 500, a 429 with Retry-After, or malformed JSON. For each fault the
//! page's message, the action's log row and the attempts the fake saw are checked: the fresh
//! read before an accept is retried with backoff (and nothing is sent when it keeps failing),
//! the accept itself is sent exactly once, and a write whose answer never came is reported as
//! of unknown outcome, never as failed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;

use crate::fixtures::{self, event_sid, RESERVATION, TASK, WORKSPACE};
use crate::helpers::{spawn_app_with, TestApp};
use crate::web_session::WebSession;

/// How long the tracer waits for the fake before giving up on a call.
const CLIENT_TIMEOUT_MS: u64 = 400;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Answers only after the client has given up.
    Timeout,
    ServerError,
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// 200 with a body cut off mid-JSON.
    Malformed,
}

const FAULTS: [Fault; 4] = [Fault::Timeout, Fault::ServerError, Fault::RateLimited, Fault::Malformed];

/// A TaskRouter that knows one pending reservation and misbehaves as told.
struct FakeTaskRouter {
    base: String,
    /// Every call to the reservation (GET or POST) or to create a task (CREATE), and when it
    /// arrived.
    calls: Arc<Mutex<Vec<(String, Instant)>>>,
    server: actix_web::dev::ServerHandle,
}

impl FakeTaskRouter {
    fn start(read: Fault, write: Fault) -> Self {
        let calls: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let seen = calls.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let reservation_path = format!("/v1/Workspaces/{WORKSPACE}/Tasks/{TASK}/Reservations/{RESERVATION}");
        let server = HttpServer::new(move || {
            let seen = seen.clone();
            let creates = seen.clone();
            App::new()
                .route(
                    "/v1/Workspaces/{ws}/Activities",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({"activities": []})) }),
                )
                .route(
                    "/v1/Workspaces/{ws}/Workflows",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({"workflows": []})) }),
                )
                .route(
                    &reservation_path,
                    web::route().to(move |request: HttpRequest| {
                        let seen = seen.clone();
                        async move {
                            let method = request.method().to_string();
                            seen.lock().unwrap().push((method.clone(), Instant::now()));
                            let (fault, status) =
                                if method == "GET" { (read, "pending") } else { (write, "accepted") };
                            misbehave(fault, status).await
                        }
                    }),
                )
                // Creating a task always times out.
                .route(
                    "/v1/Workspaces/{ws}/Tasks",
                    web::post().to(move || {
                        creates.lock().unwrap().push(("CREATE".into(), Instant::now()));
                        misbehave(Fault::Timeout, "pending")
                    }),
                )
        })
        .listen(listener)
        .unwrap()
        .workers(2)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { base, calls, server: handle }
    }

    /// The calls of one kind, and the pauses between them.
    fn calls(&self, method: &str) -> (usize, Vec<Duration>) {
        let calls = self.calls.lock().unwrap();
        let times: Vec<Instant> = calls.iter().filter(|(m, _)| m == method).map(|(_, t)| *t).collect();
        let pauses = times.windows(2).map(|w| w[1] - w[0]).collect();
        (times.len(), pauses)
    }
}

async fn misbehave(fault: Fault, reservation_status: &str) -> HttpResponse {
    match fault {
        Fault::None => HttpResponse::Ok().json(json!({
            "sid": RESERVATION,
            "reservation_status": reservation_status,
            "task_sid": TASK,
            "worker_sid": fixtures::WORKER,
        })),
        Fault::Timeout => {
            tokio::time::sleep(Duration::from_millis(CLIENT_TIMEOUT_MS * 5)).await;
            HttpResponse::Ok().json(json!({"sid": RESERVATION, "reservation_status": reservation_status}))
        }
        Fault::ServerError => HttpResponse::InternalServerError()
            .json(json!({"code": 20500, "message": "Internal Server Error", "status": 500})),
        Fault::RateLimited => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .json(json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
        Fault::Malformed => HttpResponse::Ok()
            .content_type("application/json")
            .body(format!(r#"{{"sid": "{RESERVATION}", "reservation_status": "#)),
    }
}

/// The tracer with REST credentials pointed at `fake`, knowing the task and its pending
/// reservation from a signed `reservation.created` callback.
async fn tracer_for(fake: &FakeTaskRouter) -> TestApp {
    let base = fake.base.clone();
    let app = spawn_app_with(|args| {
        args.twilio.account_sid = Some(fixtures::ACCOUNT.into());
        args.rest.base_url = base;
        args.workspace_sid = Some(WORKSPACE.into());
        args.rest.timeout_ms = CLIENT_TIMEOUT_MS;
    })
    .await;
    let created = fixtures::reservation_event("reservation.created", &event_sid(700), 1_700_000_000_000);
    assert_eq!(app.post_signed("/webhooks/events", &created).await.status().as_u16(), 204);
    app
}

/// Presses Accept on the task page; returns the message the page then shows, whether it is
/// shown as a problem, and the action's log row (status, what was recorded as failure).
async fn press_accept(app: &TestApp) -> (String, bool, (u16, String)) {
    let mut session = WebSession::new(app);
    let token = session.csrf(&format!("/tasks/{TASK}")).await;
    let (status, location, body) =
        session.post(&format!("/tasks/{TASK}/reservations/{RESERVATION}/accept"), &[("csrf", &token)]).await;
    assert_eq!(status, 303, "back to the task page: {body}");
    let (_, _, page) = session.get(&location.unwrap()).await;
    let at = page.find(r#"id="action-result""#).expect("the page shows the action's outcome");
    let start = page[..at].rfind("<div").unwrap();
    let block = &page[start..start + page[start..].find("</div>").unwrap()];
    let message = block[block.find('>').unwrap() + 1..].to_string();
    let problem = block.contains(r#"class="problem""#);
    let rows = app
        .query("SELECT response_status, rejection FROM events WHERE endpoint = 'action.accept'", |r| {
            Ok((r.get::<_, i64>(0)? as u16, r.get::<_, String>(1)?))
        });
    assert_eq!(rows.len(), 1, "one action row per press");
    (message, problem, rows.into_iter().next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_is_sent_once_and_a_lost_answer_is_reported_as_unknown() {
    for fault in FAULTS {
        let fake = FakeTaskRouter::start(Fault::None, fault);
        let app = tracer_for(&fake).await;
        let (message, problem, (status, recorded)) = press_accept(&app).await;
        let (posts, _) = fake.calls("POST");
        assert_eq!(posts, 1, "{fault:?}: a write is sent exactly once");
        assert_eq!(fake.calls("GET").0, 1, "{fault:?}: one fresh look before it");
        let (expected_status, expected, expect_problem) = match fault {
            Fault::Timeout => (504, "Outcome unknown: TaskRouter did not answer within 0.4 s", true),
            Fault::ServerError => (500, "Outcome unknown: TaskRouter answered HTTP 500", true),
            Fault::RateLimited => (429, "Not applied. TaskRouter is rate-limiting these calls", true),
            Fault::Malformed => (200, "TaskRouter answered 200, but its answer could not be read", false),
            Fault::None => unreachable!(),
        };
        assert!(message.contains(expected), "{fault:?}: the page says {message:?}");
        assert_eq!(problem, expect_problem, "{fault:?}: shown as a problem or not: {message}");
        assert_eq!(status, expected_status, "{fault:?}: the log row's status");
        if expect_problem {
            assert!(recorded.contains(expected), "{fault:?}: the log row says {recorded:?}");
        }
        if matches!(fault, Fault::Timeout | Fault::ServerError) {
            assert!(message.contains("do not simply retry"), "{fault:?}: {message}");
            assert!(!message.contains("failed"), "{fault:?}: an unknown outcome is not a failure: {message}");
        }
        fake.server.stop(false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fresh_look_before_an_accept_retries_with_backoff_and_sends_nothing_when_it_fails() {
    for fault in FAULTS {
        let fake = FakeTaskRouter::start(fault, Fault::None);
        let app = tracer_for(&fake).await;
        let (message, problem, (status, recorded)) = press_accept(&app).await;
        let (reads, pauses) = fake.calls("GET");
        assert_eq!(reads, 3, "{fault:?}: a read is tried 3 times");
        assert_eq!(fake.calls("POST").0, 0, "{fault:?}: nothing is sent after a failed look");
        // Backoff: 250 ms then 500 ms, or the 1 s TaskRouter asked for (lower bounds only).
        let least = match fault {
            Fault::RateLimited => [Duration::from_millis(950), Duration::from_millis(950)],
            _ => [Duration::from_millis(240), Duration::from_millis(490)],
        };
        for (pause, least) in pauses.iter().zip(least) {
            assert!(*pause >= least, "{fault:?}: pauses between reads {pauses:?}");
        }
        let (expected_status, cause) = match fault {
            Fault::Timeout => (504, "TaskRouter did not answer within 0.4 s"),
            Fault::ServerError => (500, "TaskRouter had an internal error"),
            Fault::RateLimited => (429, "TaskRouter is rate-limiting these calls"),
            Fault::Malformed => (502, "with JSON this tracer cannot read"),
            Fault::None => unreachable!(),
        };
        assert!(problem, "{fault:?}: {message}");
        for said in [&message, &recorded] {
            assert!(
                said.contains("Nothing was sent: the reservation could not be checked first"),
                "{fault:?}: {said}"
            );
            assert!(said.contains(cause), "{fault:?}: {said}");
            assert!(said.contains("(tried 3 times)"), "{fault:?}: {said}");
        }
        assert_eq!(status, expected_status, "{fault:?}: the log row's status");
        fake.server.stop(false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_times_out_says_to_look_for_the_task_before_creating_it_again() {
    let fake = FakeTaskRouter::start(Fault::None, Fault::None);
    let app = tracer_for(&fake).await;
    let mut session = WebSession::new(&app);
    let token = session.csrf("/tasks/new").await;
    let (status, _, page) = session
        .post(
            "/tasks/new",
            &[
                ("csrf", &token),
                ("workflow_sid", fixtures::WORKFLOW),
                ("attributes", r#"{"type":"support"}"#),
            ],
        )
        .await;
    assert_eq!(fake.calls("CREATE").0, 1, "a create is sent once, not retried");
    assert_eq!(status, 400, "the form again, with the problem");
    assert!(page.contains("Outcome unknown: TaskRouter did not answer within 0.4 s"), "{page}");
    assert!(page.contains("before creating it again: a second create makes a second task"), "{page}");
    let rows = app.query(
        "SELECT id, response_status, rejection FROM events WHERE endpoint = 'action.create_task'",
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, 504);
    assert!(rows[0].2.contains("Outcome unknown"), "{}", rows[0].2);
    // The form sent is recorded (bodies are stored compressed: read it back through the API).
    let (_, recorded) = app.get_json(&format!("/api/requests/{}", rows[0].0)).await;
    let body = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        recorded["body_base64"].as_str().expect("the body"),
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("WorkflowSid=WW"), "{recorded}");
}
