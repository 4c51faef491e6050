//! Alerts through the real server, to a local receiver that records what it gets and can be
//! told to fail or be stopped and started again: each kind once with its fields, never again on
//! a duplicate, a replay, a rebuild or a restart; overdue by the clock alone; a burst of bad
//! signatures as one alert with its count; a receiver that is down; a threshold rule firing and
//! clearing; storage failing and recovering; the settings section and `demo`'s receiver.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::Value;
use taskrouter_tracer::projections::{self, ProjectionConfig};
use taskrouter_tracer::settings::Settings;

use crate::fixtures::{self, event_sid, with, Params, QUEUE, RESERVATION, TASK, WORKER};
use crate::helpers::{spawn_app_with, TestApp};
use crate::web_session::WebSession;

/// How long any awaited alert may take to show up before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// A local alert webhook: records each JSON body, answers `status`.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Value>>>,
    status: Arc<AtomicU16>,
    server: Option<actix_web::dev::ServerHandle>,
}

impl Receiver {
    async fn start() -> Self {
        let mut receiver =
            Self { port: 0, received: Arc::default(), status: Arc::new(AtomicU16::new(200)), server: None };
        receiver.listen().await;
        receiver
    }

    /// Listens on its port (a new one the first time, the same one after [`Self::stop`]).
    async fn listen(&mut self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("the receiver's port");
        self.port = listener.local_addr().unwrap().port();
        let (received, status) = (self.received.clone(), self.status.clone());
        let server = HttpServer::new(move || {
            let (received, status) = (received.clone(), status.clone());
            App::new().default_service(web::to(move |body: web::Bytes| {
                let (received, status) = (received.clone(), status.clone());
                async move {
                    let code = status.load(Ordering::SeqCst);
                    if code == 200 {
                        received.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    }
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).body("ok")
                }
            }))
        })
        .listen(listener)
        .unwrap()
        .workers(1)
        .disable_signals()
        .run();
        self.server = Some(server.handle());
        tokio::spawn(server);
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop(false).await;
        }
    }

    /// The webhook URL, with a secret-looking path as a Slack one has.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/services/T000/B000/s3cretTOKENabcd", self.port)
    }

    fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.received.lock().unwrap().iter().filter(|a| a["kind"] == kind).cloned().collect()
    }

    /// Waits until `count` alerts of `kind` have arrived; returns them.
    async fn wait_for(&self, kind: &str, count: usize) -> Vec<Value> {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            let found = self.of_kind(kind);
            if found.len() >= count {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{count} {kind} alert(s) did not arrive within {DEADLINE:?}; received: {:?}",
                self.received.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A server sending its alerts to `receiver`, with `configure` applied after.
async fn app_alerting(receiver: &Receiver, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let url = receiver.url();
    spawn_app_with(move |args| {
        args.alert_webhooks = vec![url.parse().unwrap()];
        configure(args);
    })
    .await
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A reservation event of reservation `reservation`.
fn reservation(kind: &str, n: u64, at: i64, reservation: &str) -> Params {
    with(
        fixtures::reservation_event(kind, &event_sid(n), at),
        &[("ReservationSid", reservation), ("ResourceSid", reservation)],
    )
}

async fn post_event(app: &TestApp, params: &Params) {
    let status = app.post_signed("/webhooks/events", params).await.status().as_u16();
    assert_eq!(status, 204, "a well-signed event is answered 204");
}

/// A second reservation of the fixture task (to prove later alerts arrive, as a barrier).
const SECOND_RESERVATION: &str = "WR7e57a5c0000000000000000000000002";

/// Posts a task whose reservation `reservation` timed out, at TaskRouter times around `at`.
async fn post_timeout(app: &TestApp, first_sid: u64, at: i64, reservation_sid: &str) {
    post_event(app, &reservation("reservation.created", first_sid, at, reservation_sid)).await;
    post_event(app, &reservation("reservation.timeout", first_sid + 1, at + 120_100, reservation_sid)).await;
}

fn count_in_log(app: &TestApp, event_type: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM events WHERE endpoint = 'alert' AND event_type = '{event_type}'"
    ))
}

/// Polls `check` until it holds, failing the test after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(tokio::time::Instant::now() < until, "{what} did not happen within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the metric line starting with `series` (0 when absent).
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get_text("/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// Waits until `count` alert rows of `event_type` are in the log (each attempt's row is
/// appended just after the receiver answers it).
async fn wait_for_rows(app: &TestApp, event_type: &str, count: i64) {
    eventually(&format!("{count} {event_type} row(s) in the log"), || async move {
        count_in_log(app, event_type) >= count
    })
    .await;
    assert_eq!(count_in_log(app, event_type), count, "{event_type}");
}

#[tokio::test]
async fn a_timeout_alerts_once_and_never_again_on_a_duplicate_a_replay_a_rebuild_or_a_restart() {
    let receiver = Receiver::start().await;
    let app = app_alerting(&receiver, |_| {}).await;
    let at = now_ms() - 200_000;
    post_event(&app, &fixtures::task_event("task.created", &event_sid(1), at, "created")).await;
    post_timeout(&app, 2, at + 100, RESERVATION).await;

    let alert = receiver.wait_for("reservation.timeout", 1).await.remove(0);
    assert_eq!(alert["task_sid"], TASK);
    assert_eq!(alert["reservation_sid"], RESERVATION);
    assert_eq!(alert["worker_sid"], WORKER);
    assert_eq!(alert["url"], format!("{}/tasks/{TASK}", app.address));
    let text = alert["text"].as_str().unwrap();
    assert!(text.contains("timed out") && text.contains(RESERVATION) && !text.contains('\n'), "{text}");

    // A duplicate delivery, and a replay of the recorded timeout to the tracer itself.
    post_event(&app, &reservation("reservation.timeout", 3, at + 120_200, RESERVATION)).await;
    let timeout_row =
        app.count("SELECT id FROM events WHERE event_type = 'reservation.timeout' AND is_fact = 1");
    let replayed = app
        .client
        .post(format!("{}/api/requests/{timeout_row}/replay", app.address))
        .json(&serde_json::json!({ "url": format!("{}/webhooks/events", app.address) }))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    // Alerts follow the log in order: once a later timeout is alerted, those rows were judged.
    post_timeout(&app, 10, at + 200, SECOND_RESERVATION).await;
    receiver.wait_for("reservation.timeout", 2).await;
    wait_for_rows(&app, "alert.reservation.timeout", 2).await;
    let (_, sent) = app.get_json("/api/requests?endpoint=alert").await;
    let rows = sent["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{sent}");
    assert!(rows.iter().all(|r| r["response_status"] == 200 && r["kind"] == "alert"), "{sent}");
    assert!(!sent.to_string().contains("s3cretTOKEN"), "the webhook's secret path is never shown: {sent}");
    let task_page = app.get_text(&format!("/tasks/{TASK}")).await;
    assert!(
        task_page.contains("alert reservation.timeout sent to http://127.0.0.1"),
        "on the task's timeline"
    );
    assert!(!task_page.contains("s3cretTOKEN"));

    // Rebuild the projections, then restart on the same database: nothing is alerted again.
    app.stop().await;
    let mut connection = rusqlite::Connection::open(&app.database).unwrap();
    projections::rebuild(&mut connection, &ProjectionConfig::default(), |_, _| {}).unwrap();
    let chain = taskrouter_tracer::storage::event_log::verify(&connection, |_| {}).unwrap();
    assert_eq!(chain.first_bad_row, None, "alert rows are chained like any other");
    drop(connection);
    let database = app.database.clone();
    let restarted = app_alerting(&receiver, move |args| args.database = database).await;
    const THIRD_RESERVATION: &str = "WR7e57a5c0000000000000000000000003";
    post_timeout(&restarted, 20, at + 300, THIRD_RESERVATION).await;
    let alerts = receiver.wait_for("reservation.timeout", 3).await;
    let reservations: Vec<&str> = alerts.iter().map(|a| a["reservation_sid"].as_str().unwrap()).collect();
    assert_eq!(reservations, [RESERVATION, SECOND_RESERVATION, THIRD_RESERVATION]);
    wait_for_rows(&restarted, "alert.reservation.timeout", 3).await;
}

#[tokio::test]
async fn an_overdue_reservation_is_alerted_by_the_clock_with_no_further_fact() {
    let receiver = Receiver::start().await;
    let app = app_alerting(&receiver, |args| args.projection.default_reservation_timeout_ms = 1000).await;
    let at = now_ms();
    post_event(&app, &fixtures::task_event("task.created", &event_sid(1), at, "created")).await;
    post_event(&app, &reservation("reservation.created", 2, at + 10, RESERVATION)).await;

    let alert = receiver.wait_for("reservation.overdue", 1).await.remove(0);
    assert_eq!(alert["reservation_sid"], RESERVATION);
    assert_eq!(alert["task_sid"], TASK);
    assert_eq!(alert["worker_sid"], WORKER);
    assert_eq!(alert["url"], format!("{}/tasks/{TASK}", app.address));
    assert!(alert["text"].as_str().unwrap().contains("1 s timeout"), "{alert}");
    wait_for_rows(&app, "alert.reservation.overdue", 1).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM events"), 3, "two facts and the alert's row, nothing else");
}

#[tokio::test]
async fn a_burst_of_bad_signatures_is_one_alert_with_its_count() {
    let receiver = Receiver::start().await;
    let app = app_alerting(&receiver, |_| {}).await;
    for n in 0..7 {
        let params = fixtures::task_event("task.created", &event_sid(n), now_ms(), "forged");
        let status = app.post_form("/webhooks/events", &params, Some("not-a-signature")).await.status();
        assert_eq!(status, 403);
    }
    let alert = receiver.wait_for("signature.invalid", 1).await.remove(0);
    assert_eq!(alert["count"], 7);
    assert_eq!(alert["url"], format!("{}/requests?verdict=invalid", app.address));
    assert!(alert["text"].as_str().unwrap().starts_with("taskrouter-tracer: 7 webhook requests"), "{alert}");
    // A test alert queued now arrives after anything already due: still one signature alert.
    send_test_alert(&app).await;
    receiver.wait_for("test", 1).await;
    assert_eq!(receiver.of_kind("signature.invalid").len(), 1);
    assert_eq!(metric(&app, "tracer_alerts_sent_total{kind=\"signature.invalid\"}").await, 1.0);
}

async fn send_test_alert(app: &TestApp) {
    let mut session = WebSession::new(app);
    let token = session.csrf("/settings").await;
    let (status, location, body) = session.post("/settings/alerts/test", &[("csrf", &token)]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/settings?alerts=test#alerts")), "{body}");
}

#[tokio::test]
async fn a_receiver_that_is_down_delays_no_webhook_and_gets_the_alert_once_it_is_back() {
    let mut receiver = Receiver::start().await;
    receiver.stop().await;
    let app = app_alerting(&receiver, |_| {}).await;
    let at = now_ms() - 200_000;
    post_event(&app, &fixtures::task_event("task.created", &event_sid(1), at, "created")).await;
    post_timeout(&app, 2, at + 100, RESERVATION).await;

    // The failure is counted, logged and shown; webhooks go on being answered meanwhile.
    eventually("a failed delivery counted", || async {
        metric(&app, "tracer_alert_delivery_failures_total").await >= 1.0
    })
    .await;
    wait_for_rows(&app, "alert.reservation.timeout", 1).await;
    post_event(&app, &fixtures::worker_activity_update(&event_sid(5), at + 130_000)).await;
    let settings = app.get_text("/settings").await;
    assert!(settings.contains("Alerts are not being delivered to http://127.0.0.1"), "the banner");
    assert!(!settings.contains("s3cretTOKEN"), "the webhook's secret path is never shown");
    let (_, failed) = app.get_json("/api/requests?endpoint=alert").await;
    let attempt = &failed["requests"][0];
    assert_eq!(attempt["response_status"], 0, "{failed}");
    assert!(attempt["rejection"].as_str().unwrap().contains("could not connect"), "{failed}");
    eventually("the alert counted as pending", || async {
        metric(&app, "tracer_alerts_pending").await == 1.0
    })
    .await;

    receiver.listen().await;
    let alert = receiver.wait_for("reservation.timeout", 1).await.remove(0);
    assert_eq!(alert["reservation_sid"], RESERVATION);
    eventually("the banner cleared", || async {
        !app.get_text("/settings").await.contains("Alerts are not being delivered")
    })
    .await;
    eventually("nothing pending", || async { metric(&app, "tracer_alerts_pending").await == 0.0 }).await;
    assert_eq!(receiver.of_kind("reservation.timeout").len(), 1);
    assert_eq!(metric(&app, "tracer_alerts_sent_total{kind=\"reservation.timeout\"}").await, 1.0);
}

#[tokio::test]
async fn a_receiver_answering_503_is_retried_until_it_takes_the_alert() {
    let receiver = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    let app = app_alerting(&receiver, |_| {}).await;
    send_test_alert(&app).await;
    eventually("a 503 attempt logged", || async {
        let (_, attempts) = app.get_json("/api/requests?endpoint=alert").await;
        attempts["requests"].as_array().unwrap().iter().any(|r| r["response_status"] == 503)
    })
    .await;
    receiver.status.store(200, Ordering::SeqCst);
    receiver.wait_for("test", 1).await;
}

/// Posts a reservation of the fixture queue with its outcome, TaskRouter time `at`.
async fn post_outcome(app: &TestApp, n: u64, at: i64, outcome: &str) {
    let sid = format!("WR7e57a5c00000000000000000000{n:05}");
    post_event(app, &reservation("reservation.created", n * 10, at, &sid)).await;
    post_event(app, &reservation(outcome, n * 10 + 1, at + 1_000, &sid)).await;
}

#[tokio::test]
async fn a_threshold_rule_fires_when_crossed_and_again_when_it_clears() {
    let receiver = Receiver::start().await;
    let app = app_alerting(&receiver, |_| {}).await;
    let at = now_ms() - 60_000;
    post_event(&app, &fixtures::task_event("task.created", &event_sid(1), at, "created")).await;
    post_outcome(&app, 1, at + 100, "reservation.timeout").await;
    post_outcome(&app, 2, at + 200, "reservation.timeout").await;
    let mut session = WebSession::new(&app);
    let token = session.csrf("/settings").await;
    let rule = [
        ("csrf", token.as_str()),
        ("scope", "queue"),
        ("target", ""),
        ("percent", "20"),
        ("window_minutes", "15"),
        ("min_reservations", "1"),
    ];
    let (status, _, body) = session.post("/settings/alerts/rules", &rule).await;
    assert_eq!(status, 303, "{body}");
    let fired = receiver.wait_for("timeout_rate.exceeded", 1).await.remove(0);
    let text = fired["text"].as_str().unwrap();
    assert!(text.contains(QUEUE) && text.contains("2 of 2 reservations (100 %)"), "{text}");
    assert_eq!(fired["url"], format!("{}/tasks?queue={QUEUE}", app.address));

    for n in 3..13 {
        post_outcome(&app, n, at + n as i64 * 100, "reservation.accepted").await;
    }
    let cleared = receiver.wait_for("timeout_rate.cleared", 1).await.remove(0);
    let text = cleared["text"].as_str().unwrap();
    assert!(text.contains(QUEUE) && text.contains("back under the rule's 20 %"), "{text}");
    assert_eq!(receiver.of_kind("timeout_rate.exceeded").len(), 1, "crossed once");
    let (_, changes) = app.get_json("/api/requests?endpoint=action.settings").await;
    assert_eq!(changes["requests"].as_array().unwrap().len(), 1, "the rule's addition is logged: {changes}");
}

#[tokio::test]
async fn an_app_answer_taskrouter_would_reject_is_alerted_once_per_reservation() {
    let receiver = Receiver::start().await;
    // The app answers 200 with text, which TaskRouter ignores.
    let app_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app_url = format!("http://127.0.0.1:{}", app_listener.local_addr().unwrap().port());
    let user_app = HttpServer::new(|| {
        App::new().default_service(web::to(|| async { HttpResponse::Ok().body("accepted!") }))
    })
    .listen(app_listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    tokio::spawn(user_app);
    let app = app_alerting(&receiver, move |args| args.forward_to = Some(app_url)).await;
    for _ in 0..2 {
        let status = app.post_signed("/webhooks/assignment", &fixtures::assignment_callback()).await.status();
        assert_eq!(status, 200, "TaskRouter gets the app's answer");
    }
    let alert = receiver.wait_for("assignment.answer", 1).await.remove(0);
    assert_eq!(alert["reservation_sid"], RESERVATION);
    assert_eq!(alert["url"], format!("{}/requests/1", app.address));
    assert!(
        alert["text"].as_str().unwrap().contains("TaskRouter would not act on your app's answer"),
        "{alert}"
    );
    send_test_alert(&app).await;
    receiver.wait_for("test", 1).await;
    assert_eq!(receiver.of_kind("assignment.answer").len(), 1, "the duplicate callback is not alerted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failing_and_recovering_are_alerted_and_logged_once_storage_is_back() {
    let receiver = Receiver::start().await;
    let app = app_alerting(&receiver, |args| args.busy_timeout_ms = 200).await;
    let blocker = rusqlite::Connection::open(&app.database).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let params = fixtures::task_event("task.created", &event_sid(1), now_ms(), "created");
    assert_eq!(app.post_signed("/webhooks/events", &params).await.status(), 503);
    let unhealthy = receiver.wait_for("storage.unhealthy", 1).await.remove(0);
    assert!(unhealthy["text"].as_str().unwrap().contains("locked by another process"), "{unhealthy}");
    assert_eq!(unhealthy["url"], format!("{}/healthz", app.address));
    blocker.execute_batch("ROLLBACK;").unwrap();
    receiver.wait_for("storage.recovered", 1).await;
    // The attempts' rows waited for storage, then were appended.
    wait_for_rows(&app, "alert.storage.unhealthy", 1).await;
    wait_for_rows(&app, "alert.storage.recovered", 1).await;
    assert_eq!(receiver.of_kind("storage.unhealthy").len(), 1);
}

#[tokio::test]
async fn webhooks_and_kinds_are_set_on_the_settings_page_shown_redacted_and_logged() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(|_| {}).await;
    let mut session = WebSession::new(&app);
    let token = session.csrf("/settings").await;
    let url = receiver.url();
    let (status, _, body) =
        session.post("/settings/alerts/webhooks", &[("csrf", &token), ("url", &url)]).await;
    assert_eq!(status, 303, "{body}");
    let (status, _, _) =
        session.post("/settings/alerts/webhooks", &[("csrf", &token), ("url", "ftp://x/y")]).await;
    assert_eq!(status, 400, "only http(s) webhooks are taken");
    let (status, _, _) = session.post("/settings/alerts/test", &[("csrf", "stale")]).await;
    assert_eq!(status, 403, "every form checks its CSRF token");

    let (_, _, page) = session.get("/settings").await;
    assert!(page.contains(&format!("http://127.0.0.1:{}/…abcd", receiver.port)), "shown redacted");
    assert!(!page.contains("s3cretTOKEN"), "never in full");
    send_test_alert(&app).await;
    let test = receiver.wait_for("test", 1).await.remove(0);
    assert!(test["text"].as_str().unwrap().contains("test alert"), "{test}");

    // Timeouts switched off: none is sent, and the switch is logged.
    let switches: Vec<(&str, &str)> = vec![("csrf", &token), ("on", "signature.invalid")];
    let (status, _, _) = session.post("/settings/alerts/switches", &switches).await;
    assert_eq!(status, 303);
    let at = now_ms() - 200_000;
    post_timeout(&app, 2, at, RESERVATION).await;
    for n in 10..12 {
        let params = fixtures::task_event("task.created", &event_sid(n), now_ms(), "forged");
        app.post_form("/webhooks/events", &params, Some("bad")).await;
    }
    receiver.wait_for("signature.invalid", 1).await;
    assert!(receiver.of_kind("reservation.timeout").is_empty(), "switched off");
    let (_, changes) = app.get_json("/api/requests?endpoint=action.settings").await;
    let changes = changes.to_string();
    assert!(changes.contains("reservation.timeout off") && changes.contains("…abcd"), "{changes}");
    assert!(!changes.contains("s3cretTOKEN"), "{changes}");
}

#[tokio::test]
async fn the_demo_receiver_shows_the_alerts_it_got() {
    let app = spawn_app_with(|args| args.demo_alert_receiver = true).await;
    let params = fixtures::task_event("task.created", &event_sid(1), now_ms(), "forged");
    app.post_form("/webhooks/events", &params, Some("bad")).await;
    eventually("the demo receiver got the alert", || async {
        let (_, received) = app.get_json("/api/demo/alerts").await;
        received["alerts"][0]["kind"] == "signature.invalid"
    })
    .await;
    let page = app.get_text("/demo/alerts").await;
    assert!(page.contains("signature.invalid") && page.contains("1 webhook request arrived"), "{page}");
    assert!(app.get_text("/").await.contains("href=\"/demo/alerts\""), "linked from the dashboard");
}

#[tokio::test]
async fn simulated_timeouts_are_alerted_once_each_and_an_import_of_the_same_events_alerts_none_again() {
    use clap::Parser;
    use taskrouter_simulator::delivery::Faults;
    use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
    use taskrouter_tracer::cli::{Cli, Command};
    use taskrouter_tracer::commands::import::{run as run_import, ImportRun};

    let receiver = Receiver::start().await;
    let app = app_alerting(&receiver, |args| args.projection.default_reservation_timeout_ms = 30_000).await;
    let since = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let traffic =
        DemoTraffic { tasks_per_minute: 10.0, arrivals_for_ms: 4 * 60_000, reservation_timeout: 30 };
    let callbacks = CallbackUrls::tracer(&app.address);
    let sim = crate::helpers::start_simulator(5, callbacks, traffic, Faults::default(), None);
    sim.simulator.run_for(6 * 60_000).await;
    app.projections_caught_up().await;
    let timeouts =
        app.count("SELECT COUNT(*) FROM events WHERE is_fact = 1 AND event_type = 'reservation.timeout'");
    assert!(timeouts > 0, "the simulated workers let some reservations time out");
    let alerted = receiver.wait_for("reservation.timeout", timeouts as usize).await;
    let mut reservations: Vec<&str> =
        alerted.iter().map(|a| a["reservation_sid"].as_str().unwrap()).collect();
    reservations.sort_unstable();
    reservations.dedup();
    assert_eq!(reservations.len() as i64, timeouts, "one alert per timed-out reservation");

    // The same events again, from TaskRouter's Events API, into the same log.
    let argv = [
        "taskrouter-tracer",
        "import",
        "--database",
        app.database.to_str().unwrap(),
        "--workspace-sid",
        &sim.sids.workspace,
        "--taskrouter-base-url",
        sim.rest_base_url(),
        "--account-sid",
        crate::helpers::SIM_ACCOUNT,
        "--auth-token",
        crate::helpers::AUTH_TOKEN,
        "--since",
        &since,
    ];
    let Command::Import(args) = Cli::parse_from(argv).command else { panic!("import parses") };
    let ImportRun::Done(windows) = run_import(&args, false).await.expect("import runs") else {
        panic!("import refused")
    };
    let summary = windows[0].1.as_ref().expect("the window imports");
    assert!(summary.fetched > 0 && summary.new == 0, "{summary:?}");
    // Alerts follow the log in order: a timeout after the import is alerted only once the
    // import's rows have been judged.
    let at = now_ms() - 200_000;
    post_timeout(&app, 900_000, at, "WR7e57a5c0000000000000000000000900").await;
    receiver.wait_for("reservation.timeout", timeouts as usize + 1).await;
    assert_eq!(receiver.of_kind("reservation.timeout").len() as i64, timeouts + 1);
    sim.stop().await;
}
