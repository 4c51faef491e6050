//! The lifecycle pages over recorded callbacks, and the login guard.

use taskrouter_tracer::settings::Settings;
use taskrouter_tracer::startup::Application;

use crate::fixtures::{self, event_sid, RESERVATION, TASK, WORKER};
use crate::helpers::{spawn_app, spawn_app_with};
use crate::web_session::WebSession;

const T0: i64 = 1_700_000_000_000;

/// A task whose reservation was answered `{}` and timed out after 121 s.
async fn record_a_timeout(app: &crate::helpers::TestApp) {
    app.post_signed(
        "/webhooks/events",
        &fixtures::task_event("task.created", &event_sid(1), T0, "Task created"),
    )
    .await;
    app.post_signed(
        "/webhooks/events",
        &fixtures::reservation_event("reservation.created", &event_sid(2), T0 + 1_000),
    )
    .await;
    let answered = app.post_signed("/webhooks/assignment", &fixtures::assignment_callback()).await;
    assert_eq!(answered.text().await.unwrap(), "{}", "the default answer defers");
    app.post_signed(
        "/webhooks/events",
        &fixtures::reservation_event("reservation.timeout", &event_sid(3), T0 + 122_000),
    )
    .await;
}

#[tokio::test]
async fn dashboard_tasks_task_workers_and_timeouts_pages() {
    let app = spawn_app().await;
    record_a_timeout(&app).await;
    let mut bad = fixtures::task_event("task.updated", &event_sid(9), T0 + 5, "x");
    bad.push(("Extra".into(), "1".into()));
    app.post_form("/webhooks/events", &bad, Some("forged")).await;
    let mut session = WebSession::new(&app);

    let (status, _, page) = session.get("/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<div class="n" id="signature-failures"><a href="/requests?verdict=invalid">1</a>"#),
        "{page}"
    );
    assert!(page.contains(r#"id="rate-minute">5<"#), "five webhooks just now");
    assert!(page.contains("/tasks?status=reserved") || page.contains("/tasks?status=pending"));
    assert!(page.contains(&format!("/tasks/{TASK}")), "the recent timeout links its task");

    let (_, _, page) = session.get("/tasks?flag=timeout").await;
    assert!(page.contains(&format!(r#"href="/tasks/{TASK}""#)));
    let (_, _, page) = session.get("/tasks?status=completed").await;
    assert!(!page.contains(&format!(r#"href="/tasks/{TASK}""#)), "filtered out");
    let (status, _, page) = session.get("/tasks?since=yesterday").await;
    assert_eq!(status, 200);
    assert!(page.contains("is not a time"));

    let (status, _, page) = session.get(&format!("/tasks/{TASK}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<svg class="timeline" id="timeline-chart""#));
    assert!(page.contains(r#"class="window""#), "the timeout window is drawn");
    assert!(
        page.contains(r#"<a href="/requests/4" class="evidence-link">"#),
        "the timeout mark links its evidence"
    );
    assert!(page.contains("reservation.timeout") && page.contains(RESERVATION));
    assert!(page.contains(r#"id="flags""#));
    assert!(page.contains(&format!(r#"href="/requests?sid={TASK}""#)), "raw evidence");

    let (_, _, page) = session.get("/timeouts").await;
    assert!(page.contains(RESERVATION) && page.contains("timeout"));
    assert!(page.contains("{}"), "the explanation names the deferring answer: {page}");

    let (_, _, page) = session.get("/workers").await;
    assert!(page.contains(&format!(r#"href="/workers/{WORKER}""#)));
    let (status, _, page) = session.get(&format!("/workers/{WORKER}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"id="worker-timeouts">1<"#), "{page}");

    // The request detail links its SIDs to the task and worker pages.
    let (_, _, page) = session.get("/requests/2").await;
    assert!(page.contains(&format!(r#"<a href="/tasks/{TASK}" class="sid-page">"#)));
    assert!(page.contains(&format!(r#"<a href="/workers/{WORKER}" class="sid-page">"#)));
}

#[tokio::test]
async fn beyond_loopback_a_login_is_required_except_for_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Settings::for_tests(dir.path().join("t.db"));
    args.listen = "0.0.0.0:0".parse().unwrap();
    let refused = Application::build(args).await.err().expect("no password: refuses to start");
    assert!(refused.to_string().contains("--ui-password"));

    let app = spawn_app_with(|args| {
        args.listen = "0.0.0.0:0".parse().unwrap();
        args.ui_password = Some("correct horse".into());
    })
    .await;
    let mut session = WebSession::new(&app);
    let (status, location, _) = session.get("/tasks?status=pending").await;
    assert_eq!((status, location.as_deref()), (303, Some("/login?next=%2Ftasks%3Fstatus%3Dpending")));
    let (status, _) = app.get_json("/api/tasks").await;
    assert_eq!(status, 401);
    // Webhooks stay authenticated by their signature alone.
    let answered = app.post_signed("/webhooks/assignment", &fixtures::assignment_callback()).await;
    assert_eq!(answered.status().as_u16(), 200);

    let token = session.csrf("/login").await;
    let (status, _, page) =
        session.post("/login", &[("csrf", &token), ("password", "wrong"), ("next", "/tasks")]).await;
    assert_eq!(status, 401);
    assert!(!page.contains("correct horse"));
    let (status, _, _) = session.post("/login", &[("password", "correct horse"), ("next", "/tasks")]).await;
    assert_eq!(status, 403, "the login form needs its CSRF token too");
    let (status, location, _) = session
        .post("/login", &[("csrf", &token), ("password", "correct horse"), ("next", "//evil.example")])
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/")));
    let (status, _, _) = session.get("/tasks").await;
    assert_eq!(status, 200);

    let bearer = app
        .client
        .get(format!("{}/api/tasks", app.address))
        .header("Authorization", "Bearer correct horse")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 200);
}
