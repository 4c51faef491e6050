//! The pages' actions against the simulator's REST API standing in for TaskRouter: the
//! simulator's callbacks go to the tracer, the tracer's REST calls go to the simulator.

use std::time::Duration;

use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::rest;
use taskrouter_simulator::scenario::CallbackUrls;
use taskrouter_simulator::RunningSimulator;
use taskrouter_tracer::taskrouter_client::{Credentials, NewTask, TaskRouterClient};

use crate::helpers::{no_traffic, spawn_app_with, start_simulator, TestApp, AUTH_TOKEN};
use crate::web_session::WebSession;

pub const ACCOUNT: &str = crate::helpers::SIM_ACCOUNT;

/// The tracer wired to a fresh simulator (no background traffic; time stands still, so a
/// reservation stays pending until someone answers it).
pub async fn wired(
    configure: impl FnOnce(&mut taskrouter_tracer::settings::Settings),
) -> (TestApp, RunningSimulator) {
    let (listener, rest_base) = rest::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let app = spawn_app_with(|args| {
        args.twilio.account_sid = Some(ACCOUNT.into());
        args.rest.base_url = rest_base.clone();
        configure(args);
    })
    .await;
    let sim = start_simulator(
        11,
        CallbackUrls::tracer(&app.address),
        no_traffic(120),
        Faults::default(),
        Some(listener),
    );
    (app, sim)
}

pub fn sim_client(sim: &RunningSimulator) -> TaskRouterClient {
    TaskRouterClient::new(
        sim.rest_base_url(),
        Credentials::AuthToken { account_sid: ACCOUNT.into(), auth_token: AUTH_TOKEN.into() },
        Duration::from_secs(5),
    )
}

/// Waits until the tracer's projection of `task` has a reservation in `status`; returns its SID.
pub async fn reservation_in(app: &TestApp, task: &str, status: &str) -> String {
    for _ in 0..100 {
        let (code, detail) = app.get_json(&format!("/api/tasks/{task}")).await;
        if code == 200 {
            if let Some(r) = detail["reservations"].as_array().unwrap().iter().find(|r| r["status"] == status)
            {
                return r["reservation_sid"].as_str().unwrap().to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task} never had a {status} reservation in the tracer");
}

async fn create_through_page(
    session: &mut WebSession,
    workflow: &str,
    attributes: &str,
) -> (u16, Option<String>, String) {
    let token = session.csrf("/tasks/new").await;
    session
        .post(
            "/tasks/new",
            &[
                ("csrf", &token),
                ("workflow_sid", workflow),
                ("attributes", attributes),
                ("priority", "2"),
                ("timeout", "600"),
            ],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_accept_twice_and_the_action_on_the_timeline() {
    let (app, sim) = wired(|_| {}).await;
    let mut session = WebSession::new(&app);
    // Workspace comes from the log: nothing recorded yet, so the first create needs it configured
    // or a callback. Create one task directly so the log names the workspace.
    let api = sim_client(&sim);
    let (first, _) = api
        .create_task(
            &sim.sids.workspace,
            &NewTask {
                workflow_sid: sim.sids.workflow.clone(),
                attributes: r#"{"selected_language":"en"}"#.into(),
                priority: None,
                timeout: None,
            },
        )
        .await;
    reservation_in(&app, &first.unwrap().sid, "pending").await;

    // Bad JSON is refused before anything is sent.
    let before = app.count("SELECT COUNT(*) FROM events WHERE kind = 'action'");
    let (status, _, page) =
        create_through_page(&mut session, &sim.sids.workflow, "{selected_language: es}").await;
    assert_eq!(status, 400);
    assert!(page.contains("not valid JSON"), "{page}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE kind = 'action'"),
        before,
        "nothing sent, nothing recorded"
    );

    // The create form lists the workspace's workflows.
    let (_, _, form) = session.get("/tasks/new").await;
    assert!(form.contains(&sim.sids.workflow));
    let (status, location, _) =
        create_through_page(&mut session, &sim.sids.workflow, r#"{"selected_language":"es"}"#).await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    let task = location.split("sid=").nth(1).unwrap().split('&').next().unwrap().to_string();
    assert!(task.starts_with("WT"));
    let (_, _, created) = session.get(&location).await;
    assert!(created.contains("create task sent through the REST API: TaskRouter answered 201"), "{created}");
    let reservation = reservation_in(&app, &task, "pending").await;

    // The task page offers Accept, and the reject form lists the workspace's activities.
    let (_, _, page) = session.get(&format!("/tasks/{task}")).await;
    assert!(page.contains("class=\"accept\""), "an Accept button");
    assert!(page.contains(&sim.sids.offline), "the activities for a reject");
    let token = crate::web_session::csrf_in(&page).unwrap();
    let accept = format!("/tasks/{task}/reservations/{reservation}/accept");

    // Without the CSRF token: refused, nothing sent.
    let (status, _, _) = session.post(&accept, &[]).await;
    assert_eq!(status, 403);

    let (status, location, _) = session.post(&accept, &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(location.starts_with(&format!("/tasks/{task}?action=")), "{location}");
    let fresh = api.fetch_reservation(&sim.sids.workspace, &task, &reservation).await.unwrap();
    assert_eq!(fresh.reservation_status, "accepted");
    let (_, _, page) = session.get(&location).await;
    assert!(page.contains("TaskRouter answered 200"), "the outcome is shown");
    assert!(page.contains("action.accept"), "the action is on the timeline");
    let action_id = location.split("action=").nth(1).unwrap();
    assert!(
        page.contains(&format!(r#"<a href="/requests/{action_id}" class="evidence-link">"#)),
        "a mark on the SVG timeline"
    );

    // The same (now stale) page accepting again: checked first, refused in plain words.
    let (status, location, _) = session.post(&accept, &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    let (_, _, page) = session.get(&location.unwrap()).await;
    assert!(page.contains("no longer pending"), "{page}");
    assert!(page.contains("it is accepted now"));

    // Both attempts are in the log, findable by the reservation, pointing at its evidence.
    let rows = app.query(
        &format!("SELECT endpoint, response_status, task_sid, related_to IS NOT NULL, method, path FROM events WHERE kind = 'action' AND reservation_sid = '{reservation}' ORDER BY id"),
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, bool>(3)?, r.get::<_, String>(4)?, r.get::<_, String>(5)?)),
    );
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("action.accept", 200));
    assert_eq!((rows[1].0.as_str(), rows[1].1), ("action.accept", 409));
    assert!(rows.iter().all(|r| r.2 == task && r.3 && r.4 == "POST"));
    assert!(rows[0].5.ends_with(&format!("/Reservations/{reservation}")));
    let (_, listed) = app.get_json(&format!("/api/requests?sid={reservation}")).await;
    assert!(listed["requests"].as_array().unwrap().iter().any(|r| r["kind"] == "action"));
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE kind = 'action' AND is_fact = 1"), 0);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_with_an_activity_lookup_and_unknown_task() {
    let (app, sim) = wired(|_| {}).await;
    let api = sim_client(&sim);
    let mut session = WebSession::new(&app);
    let (created, _) = api
        .create_task(
            &sim.sids.workspace,
            &NewTask {
                workflow_sid: sim.sids.workflow.clone(),
                attributes: r#"{"selected_language":"en"}"#.into(),
                priority: None,
                timeout: None,
            },
        )
        .await;
    let task = created.unwrap().sid;
    let reservation = reservation_in(&app, &task, "pending").await;

    // Look up: TaskRouter's view beside the log's.
    let (status, _, page) = session.get(&format!("/lookup?sid={reservation}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"id="rest-task""#) && page.contains(&task),
        "the task found through the reservation"
    );
    assert!(page.contains(&reservation) && page.contains("pending"));

    let token = session.csrf(&format!("/tasks/{task}")).await;
    let (status, location, _) = session
        .post(
            &format!("/tasks/{task}/reservations/{reservation}/reject"),
            &[("csrf", &token), ("activity_sid", &sim.sids.offline)],
        )
        .await;
    assert_eq!(status, 303, "{location:?}");
    let fresh = api.fetch_reservation(&sim.sids.workspace, &task, &reservation).await.unwrap();
    assert_eq!(fresh.reservation_status, "rejected");
    let body: Vec<u8> = app
        .query("SELECT body, payload_encoding FROM events WHERE endpoint = 'action.reject'", |r| {
            TestApp::payload(r, 0, 1)
        })
        .remove(0);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("ReservationStatus=rejected")
            && body.contains(&format!("WorkerActivitySid={}", sim.sids.offline))
    );

    // An unknown task: TaskRouter's 20404 in plain words, recorded.
    let unknown = "WT00000000000000000000000000000000";
    let (status, _, message) = session
        .post(
            &format!("/tasks/{unknown}/reservations/WR00000000000000000000000000000000/accept"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(status, 502);
    assert!(message.contains("does not know this resource"), "{message}");
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM events WHERE kind = 'action' AND task_sid = '{unknown}'")),
        1
    );
    let (_, _, page) = session.get(&format!("/lookup?sid={unknown}")).await;
    assert!(page.contains("does not know this resource"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rest_credentials_are_explained() {
    let (app, sim) = wired(|args| {
        args.twilio.api_key = Some("SK0123456789abcdef0123456789abcdef".into());
        args.twilio.api_secret = Some("s3cr3t-api-secret".into());
    })
    .await;
    let api = sim_client(&sim);
    let (created, _) = api
        .create_task(
            &sim.sids.workspace,
            &NewTask {
                workflow_sid: sim.sids.workflow.clone(),
                attributes: "{}".into(),
                priority: None,
                timeout: None,
            },
        )
        .await;
    let task = created.unwrap().sid;
    let reservation = reservation_in(&app, &task, "pending").await;
    let mut session = WebSession::new(&app);
    let (_, _, page) = session.get(&format!("/lookup?sid={task}")).await;
    assert!(page.contains("refused the credentials"), "{page}");
    let token = session.csrf(&format!("/tasks/{task}")).await;
    let (status, location, _) =
        session.post(&format!("/tasks/{task}/reservations/{reservation}/accept"), &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    let (_, _, page) = session.get(&location.unwrap()).await;
    assert!(page.contains("refused the credentials"), "the 401 in plain words");
    assert!(!page.contains("s3cr3t-api-secret"), "secrets are never shown");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_instructions_are_set_from_the_settings_page() {
    let (app, sim) = wired(|_| {}).await;
    let api = sim_client(&sim);
    let mut session = WebSession::new(&app);
    let token = session.csrf("/settings").await;

    // An instruction TaskRouter would ignore is refused before saving.
    let (status, _, page) =
        session.post("/settings", &[("csrf", &token), ("scope", "global"), ("instruction", "call")]).await;
    assert_eq!(status, 400);
    assert!(page.contains("url"), "{page}");
    let (status, _, _) = session.post("/settings", &[("scope", "global"), ("instruction", "accept")]).await;
    assert_eq!(status, 403, "CSRF token required");

    let (status, _, _) =
        session.post("/settings", &[("csrf", &token), ("scope", "global"), ("instruction", "accept")]).await;
    assert_eq!(status, 303);
    let create = || async {
        let (created, _) = api
            .create_task(
                &sim.sids.workspace,
                &NewTask {
                    workflow_sid: sim.sids.workflow.clone(),
                    attributes: r#"{"selected_language":"en"}"#.into(),
                    priority: None,
                    timeout: None,
                },
            )
            .await;
        created.unwrap().sid
    };
    let task = create().await;
    reservation_in(&app, &task, "accepted").await;
    let answers: Vec<String> = app.query(
        &format!("SELECT response_body FROM events WHERE endpoint = 'assignment' AND task_sid = '{task}'"),
        |r| r.get(0),
    );
    assert_eq!(answers, vec![r#"{"instruction":"accept"}"#.to_string()]);

    // A per-queue rule overrides the global one.
    for queue in &sim.sids.queues {
        let (status, _, page) = session
            .post(
                "/settings",
                &[
                    ("csrf", &token),
                    ("scope", "queue"),
                    ("target", queue),
                    ("instruction", "reject"),
                    ("activity_sid", &sim.sids.offline),
                ],
            )
            .await;
        assert_eq!(status, 303, "{page}");
    }
    let task = create().await;
    reservation_in(&app, &task, "rejected").await;
    let answer: String = app
        .query(&format!("SELECT response_body FROM events WHERE endpoint = 'assignment' AND task_sid = '{task}' ORDER BY id LIMIT 1"), |r| r.get(0))
        .remove(0);
    assert_eq!(answer, format!(r#"{{"instruction":"reject","activity_sid":"{}"}}"#, sim.sids.offline));
    assert!(
        app.count("SELECT COUNT(*) FROM events WHERE endpoint = 'action.settings'") >= 2,
        "changes are logged"
    );
    let (_, _, page) = session.get("/settings").await;
    assert!(page.contains(&sim.sids.queues[0]));
    sim.stop().await;
}
