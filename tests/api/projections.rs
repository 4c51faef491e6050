//! Lifecycle projections through the real endpoints: out-of-order arrival, a timeout explained,
//! the task list's filters, and `rebuild` giving exactly the incrementally built tables.

use serde_json::Value;
use taskrouter_tracer::projections::{self, ProjectionConfig};

use crate::fixtures::{self, event_sid, with, Params, RESERVATION, TASK, WORKER, WORKFLOW};
use crate::helpers::{spawn_app, spawn_app_with, TestApp};

const T0: i64 = 1_673_241_800_452;
const SECOND_RESERVATION: &str = "WR7e57a5c0000000000000000000000002";

fn task(kind: &str, n: u64, at: i64) -> Params {
    fixtures::task_event(kind, &event_sid(n), at, &format!("Task {TASK} {kind}"))
}

fn reservation(kind: &str, n: u64, at: i64) -> Params {
    fixtures::reservation_event(kind, &event_sid(n), at)
}

async fn post_event(app: &TestApp, params: &Params) {
    let status = app.post_signed("/webhooks/events", params).await.status().as_u16();
    assert_eq!(status, 204);
}

async fn post_assignment(app: &TestApp, params: &Params) {
    let status = app.post_signed("/webhooks/assignment", params).await.status().as_u16();
    assert_eq!(status, 200);
}

fn kinds(detail: &Value) -> Vec<String> {
    detail["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect()
}

/// Corpus 33's shape: accept, wrap-up and completion, delivered a few ms out of order.
#[tokio::test]
async fn out_of_order_arrival_lands_in_lifecycle_order() {
    let app = spawn_app().await;
    // Delivered as captured: the 4-way tie in arrival order, task.completed before reservation.completed.
    post_event(&app, &task("task-queue.entered", 1, T0)).await;
    post_event(&app, &task("workflow.target-matched", 2, T0 - 1)).await;
    post_event(&app, &task("workflow.entered", 3, T0)).await;
    post_event(&app, &task("task.created", 4, T0)).await;
    post_assignment(&app, &fixtures::assignment_callback()).await;
    post_event(&app, &reservation("reservation.created", 5, T0 + 27_653)).await;
    post_event(&app, &reservation("reservation.accepted", 6, T0 + 35_611)).await;
    post_event(&app, &task("task.wrapup", 7, T0 + 47_363)).await;
    post_event(&app, &reservation("reservation.wrapup", 8, T0 + 47_363)).await;
    post_event(&app, &task("task.completed", 9, T0 + 48_195)).await;
    post_event(&app, &reservation("reservation.completed", 10, T0 + 48_195)).await;
    // A re-delivery changes nothing.
    post_event(&app, &task("task.created", 4, T0)).await;

    let (status, detail) = app.get_json(&format!("/api/tasks/{TASK}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["task"]["status"], "completed");
    assert_eq!(detail["task"]["fact_count"], 11);
    assert_eq!(
        kinds(&detail),
        [
            "task.created",
            "workflow.entered",
            "task-queue.entered",
            "workflow.target-matched",
            "reservation.created",
            "assignment",
            "reservation.accepted",
            "reservation.wrapup",
            "task.wrapup",
            "reservation.completed",
            "task.completed"
        ]
    );
    let callback_id = app.count("SELECT id FROM events WHERE endpoint = 'assignment'");
    let callback = &detail["timeline"][5];
    assert_eq!(callback["evidence"], serde_json::json!([callback_id]));
    assert_eq!(callback["time_source"], "arrival");
    assert!(callback["summary"].as_str().unwrap().ends_with("we answered {}"), "{callback}");
    let reservation = &detail["reservations"][0];
    assert_eq!(reservation["reservation_sid"], RESERVATION);
    assert_eq!(reservation["status"], "completed");
    assert_eq!(reservation["pending_ms"], 35_611 - 27_653);
    assert_eq!(reservation["callback_event_id"], callback_id);
    assert_eq!(detail["flags"], serde_json::json!([]));

    let (status, missing) = app.get_json("/api/tasks/WT00000000000000000000000000000000").await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"], "no such task");
    assert_eq!(missing["task_sid"], "WT00000000000000000000000000000000");
    // The same error on a page is an HTML page that says what to do.
    for (path, says) in [
        ("/tasks/WT00000000000000000000000000000000", "/lookup?sid=WT00000000000000000000000000000000"),
        ("/workers/WK00000000000000000000000000000000", "No worker WK00000000000000000000000000000000"),
        ("/requests/999999", "No request #999999 in the log."),
    ] {
        let response = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/html"), "{path}: {content_type}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<h1>Not found</h1>") && html.contains(says), "{path}: {html}");
    }
}

#[tokio::test]
async fn a_timeout_is_explained_and_the_task_re_reserved() {
    let app = spawn_app_with(|args| {
        args.projection.workflow_reservation_timeouts_ms = [(WORKFLOW.to_string(), 30_000)].into();
    })
    .await;
    post_event(&app, &task("task.created", 1, T0)).await;
    post_event(&app, &reservation("reservation.created", 2, T0 + 100)).await;
    post_assignment(&app, &fixtures::assignment_callback()).await;
    // The worker is moved to the timeout activity before the timeout itself is delivered.
    let offline = with(
        fixtures::worker_activity_update(&event_sid(4), T0 + 30_112),
        &[("WorkerPreviousActivityName", "Busy")],
    );
    post_event(&app, &offline).await;
    post_event(&app, &reservation("reservation.timeout", 3, T0 + 30_110)).await;
    let second = |kind: &str, n: u64, at: i64| {
        with(
            reservation(kind, n, at),
            &[
                ("ReservationSid", SECOND_RESERVATION),
                ("ResourceSid", SECOND_RESERVATION),
                ("WorkerSid", "WK00000000000000000000000000000b0b"),
                ("WorkerName", "bob"),
            ],
        )
    };
    post_event(&app, &second("reservation.created", 5, T0 + 30_200)).await;
    post_event(&app, &second("reservation.accepted", 6, T0 + 31_000)).await;

    let (_, detail) = app.get_json(&format!("/api/tasks/{TASK}")).await;
    assert_eq!(detail["task"]["status"], "assigned");
    assert_eq!(detail["task"]["reservation_count"], 2);
    let flags = detail["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0]["kind"], "timeout");
    assert_eq!(flags[0]["reservation_sid"], RESERVATION);
    let text = flags[0]["explanation"].as_str().unwrap();
    for expected in [
        "timed out: it stayed pending 30.0 s against a reservation timeout of 30.0 s",
        "answered {} (a deferral",
        "no accept was ever made",
        "alice then went to Offline (from Busy) 2 ms later",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    let evidence: Vec<i64> =
        flags[0]["evidence"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(evidence, [2, 3, 5, 4], "created, callback, timeout, activity update");

    let (_, page) = app.get_json("/api/tasks?flag=timeout&status=assigned").await;
    assert_eq!(page["tasks"][0]["task_sid"], TASK);
    assert_eq!(page["tasks"][0]["flags"], serde_json::json!(["timeout"]));
    let (_, page) = app.get_json("/api/tasks?worker=bob").await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);
    let (_, page) = app.get_json("/api/tasks?flag=rejected").await;
    assert_eq!(page["tasks"], serde_json::json!([]));
    let (_, worker) = app.get_json(&format!("/api/workers/{WORKER}")).await;
    assert_eq!(worker["activity_name"], "Offline");
}

#[tokio::test]
async fn a_pending_reservation_past_its_timeout_is_overdue() {
    let app = spawn_app().await;
    post_event(&app, &task("task.created", 1, T0)).await;
    post_event(&app, &reservation("reservation.created", 2, T0 + 100)).await;
    let (_, page) = app.get_json("/api/tasks?flag=overdue").await;
    assert_eq!(page["tasks"], serde_json::json!([]));
    // Any later fact in the log moves "now" forward: 121 s after the reservation.
    post_event(&app, &fixtures::worker_activity_update(&event_sid(3), T0 + 121_100)).await;
    let (_, page) = app.get_json("/api/tasks?flag=overdue").await;
    assert_eq!(page["tasks"][0]["task_sid"], TASK);
    let (_, detail) = app.get_json(&format!("/api/tasks/{TASK}")).await;
    let text = detail["flags"][0]["explanation"].as_str().unwrap();
    assert!(text.contains("pending 121.0 s") && text.contains("timeout of 120.0 s"), "{text}");
}

#[tokio::test]
async fn rebuild_yields_the_incrementally_built_tables() {
    let app = spawn_app().await;
    post_event(&app, &task("task.created", 1, T0)).await;
    post_event(&app, &reservation("reservation.created", 2, T0 + 100)).await;
    post_assignment(&app, &fixtures::assignment_callback()).await;
    post_event(&app, &reservation("reservation.rejected", 3, T0 + 4_000)).await;
    post_event(&app, &fixtures::worker_activity_update(&event_sid(4), T0 + 4_001)).await;
    post_event(&app, &task("task.canceled", 5, T0 + 9_000)).await;
    post_event(&app, &fixtures::task_queue_expression_updated(&event_sid(6))).await;
    app.stop().await;

    let mut connection = rusqlite::Connection::open(&app.database).unwrap();
    let incremental = projections::dump(&connection).unwrap();
    assert!(incremental.contains("rejected"));
    let report = projections::rebuild(&mut connection, &ProjectionConfig::default(), |_, _| {}).unwrap();
    assert_eq!((report.facts, report.tasks, report.workers), (7, 1, 1));
    assert_eq!(projections::dump(&connection).unwrap(), incremental);
}

#[tokio::test]
async fn rebuild_check_names_a_projection_that_differs_from_a_rebuild_and_changes_nothing() {
    let app = spawn_app().await;
    post_event(&app, &task("task.created", 1, T0)).await;
    post_event(&app, &reservation("reservation.created", 2, T0 + 1_000)).await;
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_taskrouter-tracer"))
            .args(["rebuild", "--check", "--database"])
            .arg(&app.database)
            .output()
            .expect("the binary runs")
    };
    let equal = check();
    assert!(equal.status.success(), "{}", String::from_utf8_lossy(&equal.stdout));
    assert!(String::from_utf8_lossy(&equal.stdout).contains("projections equal a rebuild: 2 facts"));

    // Projections edited behind the fold's back: the check finds it and leaves it as it is.
    let connection = rusqlite::Connection::open(&app.database).unwrap();
    connection.execute("UPDATE proj_tasks SET status = 'canceled' WHERE task_sid = ?1", [TASK]).unwrap();
    let differs = check();
    let report = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(differs.status.code(), Some(2), "{report}");
    assert!(report.contains("PROJECTIONS DIFFER"), "{report}");
    assert!(report.contains("in table proj_tasks"), "{report}");
    assert!(
        report.contains(r#"- Text("WT7e57a5c0000000000000000000000001") | Text("canceled")"#),
        "{report}"
    );
    assert!(
        report.contains(r#"+ Text("WT7e57a5c0000000000000000000000001") | Text("reserved")"#),
        "{report}"
    );
    let status: String = connection
        .query_row("SELECT status FROM proj_tasks WHERE task_sid = ?1", [TASK], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "canceled", "a check changes nothing");
    let leftovers = std::fs::read_dir(app.database.parent().unwrap())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("rebuild-check"))
        .count();
    assert_eq!(leftovers, 0, "the scratch copy is removed");
}

/// A row of `params` appended to the log as the writer's transaction appends it, and nothing
/// more: what a kill -9 between the append's commit and the projections' leaves behind.
fn append_unprojected(connection: &mut rusqlite::Connection, params: &Params, received_at_ms: i64) {
    use taskrouter_protocol::webhook::{encode_form, extract_facts, parse_form};
    use taskrouter_protocol::Endpoint;
    use taskrouter_tracer::storage::event_log::{self, AppendDecision, NewRecord, RecordKind};
    let body = encode_form(params);
    let parsed = parse_form(body.as_bytes()).unwrap();
    let facts = extract_facts(Endpoint::Events, &parsed, received_at_ms).unwrap();
    let record = NewRecord {
        kind: RecordKind::Webhook,
        received_at_ms,
        endpoint: "events".into(),
        method: "POST".into(),
        path: "/webhooks/events".into(),
        headers: Vec::new(),
        body: body.into_bytes(),
        body_truncated: false,
        remote_addr: None,
        signature_verdict: "valid",
        signature_detail: None,
        rejection: None,
        response_status: 204,
        response_body: None,
        upstream: None,
        related_to: None,
        facts: Some(facts),
        params: Some(parsed),
        trusted: true,
        idempotency_token: None,
        encoded: None,
        skip_if_known: false,
    };
    let tx = connection.transaction().unwrap();
    let head = event_log::head(&tx).unwrap();
    event_log::append(
        &tx,
        head,
        &record,
        AppendDecision { duplicate_of: None, is_fact: true, related_to: None },
    )
    .unwrap();
    tx.commit().unwrap();
}

#[tokio::test]
async fn rows_a_crash_left_unprojected_are_taken_in_before_the_next_start_serves() {
    let app = spawn_app().await;
    post_event(&app, &task("task.created", 1, T0)).await;
    post_event(&app, &reservation("reservation.created", 2, T0 + 100)).await;
    app.stop().await;
    {
        let mut connection = rusqlite::Connection::open(&app.database).unwrap();
        append_unprojected(
            &mut connection,
            &reservation("reservation.timeout", 3, T0 + 120_200),
            T0 + 120_300,
        );
        append_unprojected(&mut connection, &task("task.canceled", 4, T0 + 130_000), T0 + 130_100);
        let behind: i64 = connection
            .query_row(
                "SELECT MAX(id) - (SELECT value FROM proj_meta WHERE key = 'projected_through') FROM events",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(behind, 2, "two rows the projections never took in");
    }

    let restarted = spawn_app_with(|args| args.database = app.database.clone()).await;
    let (status, health) = restarted.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["projection_lag_rows"], 0, "caught up before serving: {health}");
    let (_, detail) = restarted.get_json(&format!("/api/tasks/{TASK}")).await;
    assert_eq!(detail["task"]["status"], "canceled", "{detail}");
    assert!(kinds(&detail).contains(&"reservation.timeout".to_string()), "{detail}");
    // The rows read back are referenced under their SIDs: the request list finds them.
    let (_, listed) = restarted.get_json(&format!("/api/requests?sid={RESERVATION}")).await;
    assert_eq!(listed["requests"].as_array().map(Vec::len), Some(2), "{listed}");
    let metrics = restarted
        .client
        .get(format!("{}/metrics", restarted.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("tracer_projection_lag_rows 0"), "{metrics}");
    assert!(metrics.contains("tracer_projection_lag_seconds 0.000"), "{metrics}");
    restarted.stop().await;
    let comparison =
        taskrouter_tracer::commands::compare_with_rebuild(&app.database, &ProjectionConfig::default())
            .unwrap();
    assert_eq!(comparison.first_difference(10), None, "as a rebuild gives them");
}
