//! Audit reports over HTTP: TaskRouter's CumulativeStatistics endpoints give Twilio's JSON
//! shape with hand-computed numbers for posted fixtures, bad parameters give Twilio's error,
//! and a seeded simulator run's report equals the simulator's ground truth exactly.

use std::collections::BTreeSet;

use serde_json::Value;
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::ground_truth::Counters;
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};

use crate::fixtures::{self, QUEUE, WORKFLOW, WORKSPACE};
use crate::helpers::{spawn_app, start_simulator, TestApp};

const T: i64 = 1_700_000_000_000;
const WINDOW: &str = "StartDate=2023-11-14T20:13:20Z&EndDate=2023-11-14T23:13:20Z";

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().expect("an object").keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const RESERVATION_KEYS: [&str; 10] = [
    "account_sid",
    "workspace_sid",
    "start_time",
    "end_time",
    "url",
    "reservations_created",
    "reservations_accepted",
    "reservations_rejected",
    "reservations_timed_out",
    "reservations_canceled",
];

/// The key set of TaskRouter's example for a resource (from its OpenAPI spec).
fn twilio_keys(extra: &[&str]) -> BTreeSet<String> {
    let mut all = set(&RESERVATION_KEYS);
    all.insert("reservations_rescinded".into());
    all.extend(set(extra));
    all
}

async fn post_lifecycle(app: &TestApp) {
    let at = |s: f64| T + (s * 1000.0) as i64;
    let events = [
        fixtures::task_event("task.created", &fixtures::event_sid(1), at(0.0), "created"),
        fixtures::task_event("task-queue.entered", &fixtures::event_sid(2), at(0.0), "entered"),
        fixtures::task_event("workflow.entered", &fixtures::event_sid(3), at(0.0), "entered"),
        fixtures::reservation_event("reservation.created", &fixtures::event_sid(4), at(2.0)),
        fixtures::reservation_event("reservation.accepted", &fixtures::event_sid(5), at(9.5)),
        fixtures::worker_activity_update(&fixtures::event_sid(6), at(10.0)),
        fixtures::task_event("task.completed", &fixtures::event_sid(7), at(60.0), "completed"),
    ];
    for params in &events {
        let response = app.post_signed("/webhooks/events", params).await;
        assert!(response.status().is_success(), "{}", response.status());
    }
    // A duplicate delivery is logged but never counted.
    app.post_signed("/webhooks/events", &events[4]).await;
}

#[tokio::test]
async fn cumulative_statistics_have_twilios_shape_and_hand_computed_numbers() {
    let app = spawn_app().await;
    post_lifecycle(&app).await;
    let base = format!("/api/v1/Workspaces/{WORKSPACE}");

    let (status, ws) =
        app.get_json(&format!("{base}/CumulativeStatistics?{WINDOW}&SplitByWaitTime=5,30")).await;
    assert_eq!(status, 200, "{ws}");
    assert_eq!(
        keys(&ws),
        twilio_keys(&[
            "tasks_created",
            "tasks_canceled",
            "tasks_completed",
            "tasks_deleted",
            "tasks_moved",
            "tasks_timed_out_in_workflow",
            "avg_task_acceptance_time",
            "wait_duration_until_accepted",
            "wait_duration_until_canceled",
            "split_by_wait_time",
        ])
    );
    assert_eq!(ws["account_sid"], fixtures::ACCOUNT);
    assert_eq!(ws["workspace_sid"], WORKSPACE);
    assert_eq!(ws["start_time"], "2023-11-14T20:13:20Z");
    assert_eq!(ws["end_time"], "2023-11-14T23:13:20Z");
    assert!(ws["url"].as_str().unwrap().ends_with(&format!("{base}/CumulativeStatistics")));
    assert_eq!((ws["tasks_created"].as_u64(), ws["tasks_completed"].as_u64()), (Some(1), Some(1)));
    assert_eq!(
        (ws["reservations_created"].as_u64(), ws["reservations_accepted"].as_u64()),
        (Some(1), Some(1))
    );
    // 9.5 s from creation to acceptance, in whole seconds rounded half up.
    assert_eq!(
        ws["wait_duration_until_accepted"],
        serde_json::json!({"avg": 10, "min": 10, "max": 10, "total": 10})
    );
    assert_eq!(ws["avg_task_acceptance_time"], 10);
    assert_eq!(
        ws["wait_duration_until_canceled"],
        serde_json::json!({"avg": 0, "min": 0, "max": 0, "total": 0})
    );
    assert_eq!(ws["split_by_wait_time"]["5"]["above"]["reservations_accepted"], 1);
    assert_eq!(ws["split_by_wait_time"]["5"]["below"]["reservations_accepted"], 0);
    assert_eq!(ws["split_by_wait_time"]["30"]["below"]["reservations_accepted"], 1);
    assert_eq!(ws["split_by_wait_time"]["30"]["above"]["tasks_canceled"], 0);

    let (status, queue) =
        app.get_json(&format!("{base}/TaskQueues/{QUEUE}/CumulativeStatistics?{WINDOW}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&queue),
        twilio_keys(&[
            "task_queue_sid",
            "tasks_entered",
            "tasks_canceled",
            "tasks_completed",
            "tasks_deleted",
            "tasks_moved",
            "avg_task_acceptance_time",
            "wait_duration_until_accepted",
            "wait_duration_until_canceled",
            "wait_duration_in_queue_until_accepted",
            "split_by_wait_time",
        ])
    );
    assert_eq!(queue["task_queue_sid"], QUEUE);
    assert_eq!(queue["tasks_entered"], 1);
    assert_eq!(queue["wait_duration_in_queue_until_accepted"]["total"], 10);
    assert_eq!(queue["split_by_wait_time"], Value::Null, "not asked for");

    let (status, workflow) =
        app.get_json(&format!("{base}/Workflows/{WORKFLOW}/CumulativeStatistics?{WINDOW}")).await;
    assert_eq!(status, 200);
    assert_eq!(workflow["workflow_sid"], WORKFLOW);
    assert_eq!(workflow["tasks_entered"], 1);
    assert_eq!(workflow["tasks_timed_out_in_workflow"], 0);
    assert!(workflow.get("tasks_created").is_none());

    let (status, workers) = app.get_json(&format!("{base}/Workers/CumulativeStatistics?{WINDOW}")).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&workers), twilio_keys(&["activity_durations"]));
    assert_eq!(workers["reservations_accepted"], 1);
    let durations = workers["activity_durations"].as_array().unwrap();
    let available = durations.iter().find(|d| d["friendly_name"] == "Available").expect("Available listed");
    // 5,664,604 ms in Available, ended inside the window.
    assert_eq!(available["total"], 5665);
    assert_eq!(available["sid"], "WA0000000000000000000000000000a7a1");
    assert!(durations.iter().any(|d| d["friendly_name"] == "Offline" && d["total"] == 0));

    // Outside the window, everything is zero; another queue is empty.
    let (_, empty) =
        app.get_json(&format!("{base}/CumulativeStatistics?EndDate=2020-01-01T00:15:00Z&Minutes=15")).await;
    assert_eq!(empty["tasks_created"], 0);
    let (_, other) = app
        .get_json(&format!(
            "{base}/TaskQueues/WQ00000000000000000000000000000000/CumulativeStatistics?{WINDOW}"
        ))
        .await;
    assert_eq!(other["reservations_created"], 0);
}

#[tokio::test]
async fn a_window_that_cuts_a_lifecycle_still_gives_its_true_waits() {
    let app = spawn_app().await;
    post_lifecycle(&app).await;
    // The window opens 5 s after the task was created and 3 s after it was offered: the accept
    // (9.5 s) is inside it, its task's creation, queue entry and offer are looked up before it.
    let window = "StartDate=2023-11-14T22:13:25Z&EndDate=2023-11-14T23:13:25Z";
    let (status, report) =
        app.get_json(&format!("/api/reports?workspace={WORKSPACE}&by=queue&{window}")).await;
    assert_eq!(status, 200, "{report}");
    let queue = &report["figures"][0];
    assert_eq!(queue["sid"], QUEUE);
    assert_eq!(queue["counters"]["tasks_entered"], 0, "entered before the window");
    assert_eq!(queue["counters"]["reservations_created"], 0, "offered before the window");
    assert_eq!(queue["counters"]["reservations_accepted"], 1);
    assert_eq!(queue["counters"]["tasks_completed"], 1);
    assert_eq!(queue["wait_until_accepted"]["total_ms"], 9_500, "from the creation before the window");
    assert_eq!(queue["wait_in_queue_until_accepted"]["total_ms"], 9_500, "from the entry before the window");
    assert_eq!(queue["acceptance_latency"]["p50_ms"], 7_500, "from the offer before the window");
    assert_eq!(queue["samples_without_origin"], 0);
    assert_eq!(report["provenance"]["facts_in_window"], 3, "the accept, the activity change, the completion");
}

#[tokio::test]
async fn bad_parameters_get_twilios_error() {
    let app = spawn_app().await;
    let base = format!("/api/v1/Workspaces/{WORKSPACE}/CumulativeStatistics");
    for query in [
        "StartDate=yesterday",
        "EndDate=2023-13-45T00:00:00Z",
        "Minutes=-5",
        "Minutes=abc",
        "SplitByWaitTime=10,abc",
        "StartDate=2023-11-15T00:00:00Z&EndDate=2023-11-14T00:00:00Z",
    ] {
        let (status, error) = app.get_json(&format!("{base}?{query}")).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert_eq!(error["code"], 20001, "{query}");
        assert_eq!(error["status"], 400);
        assert_eq!(error["more_info"], "https://www.twilio.com/docs/errors/20001");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, error) = app.get_json("/api/reports?by=team").await;
    assert_eq!((status, error["code"].as_u64()), (400, Some(20001)));
    // The default window (the last 15 minutes) is accepted.
    let (status, _) = app.get_json(&base).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_full_report_carries_provenance_extras_csv_and_a_printable_page() {
    let app = spawn_app().await;
    post_lifecycle(&app).await;
    let rows = app.count("SELECT COUNT(*) FROM events");
    let (status, report) =
        app.get_json(&format!("/api/reports?workspace={WORKSPACE}&by=worker&{WINDOW}&verify=true")).await;
    assert_eq!(status, 200, "{report}");
    let provenance = &report["provenance"];
    assert_eq!(provenance["head_event_id"], rows);
    assert_eq!(provenance["verification"]["status"], "passed");
    assert_eq!(provenance["verification"]["rows_checked"], rows);
    assert_eq!(provenance["first_event_id"], 1);
    assert_eq!(provenance["facts_in_window"], 7, "the duplicate is not a fact");
    assert_eq!(provenance["head_hash"].as_str().unwrap().len(), 64);
    let worker = &report["figures"][0];
    assert_eq!(worker["sid"], fixtures::WORKER);
    assert_eq!(worker["acceptance_latency"]["p50_ms"], 7_500);
    assert_eq!(worker["reservations_per_task"]["mean"], 1.0);

    let (_, unverified) = app.get_json(&format!("/api/reports?workspace={WORKSPACE}&{WINDOW}")).await;
    assert_eq!(unverified["provenance"]["verification"]["status"], "not_run");

    let csv = app
        .client
        .get(format!("{}/api/reports?workspace={WORKSPACE}&{WINDOW}&format=csv", app.address))
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("scope,sid,start_time,end_time,reservations_created"));
    assert!(lines[1].starts_with(&format!("workspace,{WORKSPACE},2023-11-14T20:13:20Z")));

    let page = app
        .client
        .get(format!("{}/reports?workspace={WORKSPACE}&{WINDOW}&SplitByWaitTime=20", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<svg") && html.contains("@media print"), "charts and a print stylesheet");
    assert!(html.contains("format=csv") && html.contains("format=json"));
    assert!(html.contains("Provenance"));
}

fn assert_counters(scope: &str, report: &Value, truth: &Counters, entered: bool) {
    let n = |k: &str| report["counters"][k].as_u64().unwrap_or(u64::MAX);
    let tasks = if entered { n("tasks_entered") } else { n("tasks_created") };
    let got = Counters {
        tasks_created: tasks,
        tasks_canceled: n("tasks_canceled"),
        tasks_completed: n("tasks_completed"),
        reservations_created: n("reservations_created"),
        reservations_accepted: n("reservations_accepted"),
        reservations_rejected: n("reservations_rejected"),
        reservations_timed_out: n("reservations_timed_out"),
        reservations_canceled: n("reservations_canceled"),
        reservations_rescinded: n("reservations_rescinded"),
    };
    assert_eq!(&got, truth, "{scope}");
}

#[tokio::test]
async fn a_seeded_simulation_reports_exactly_its_ground_truth() {
    let app = spawn_app().await;
    let sim = start_simulator(
        7,
        CallbackUrls::tracer(&app.address),
        DemoTraffic { tasks_per_minute: 12.0, arrivals_for_ms: 5 * 60_000, reservation_timeout: 30 },
        Faults { duplicate_rate: 0.1, reorder_rate: 0.1, drop_rate: 0.0 },
        None,
    );
    sim.simulator.run_for(10 * 60_000).await;
    let truth = sim.simulator.ground_truth();
    let workspace = sim.sids.workspace.clone();
    sim.stop().await;
    assert!(truth.delivery.duplicates_sent > 0 && truth.total.reservations_timed_out > 0, "{truth:?}");

    let all_time = "StartDate=2000-01-01T00:00:00Z&EndDate=2100-01-01T00:00:00Z";
    let get = |by: &str| {
        let path = format!("/api/reports?workspace={workspace}&by={by}&{all_time}");
        let app = &app;
        async move {
            let (status, report) = app.get_json(&path).await;
            assert_eq!(status, 200, "{report}");
            report["figures"].as_array().unwrap().clone()
        }
    };
    let whole = get("workspace").await;
    assert_eq!(whole.len(), 1);
    assert_counters("workspace", &whole[0], &truth.total, false);
    for (by, expected, entered) in [
        ("queue", &truth.by_queue, true),
        ("workflow", &truth.by_workflow, true),
        ("worker", &truth.by_worker, false),
    ] {
        let figures = get(by).await;
        let sids: BTreeSet<&str> = figures.iter().map(|f| f["sid"].as_str().unwrap()).collect();
        // Scopes the report lists are those the ground truth counted something for.
        assert!(sids.iter().all(|s| expected.contains_key(*s)), "{by}: {sids:?}");
        for (sid, counters) in expected {
            let figures =
                figures.iter().find(|f| f["sid"] == sid.as_str()).unwrap_or_else(|| panic!("{by} {sid}"));
            if by == "worker" {
                // Workers have reservation counters only (tasks are not a worker's).
                let mut counters = counters.clone();
                counters.tasks_created = figures["counters"]["tasks_created"].as_u64().unwrap();
                counters.tasks_canceled = figures["counters"]["tasks_canceled"].as_u64().unwrap();
                counters.tasks_completed = figures["counters"]["tasks_completed"].as_u64().unwrap();
                assert_counters(&format!("{by} {sid}"), figures, &counters, entered);
            } else {
                assert_counters(&format!("{by} {sid}"), figures, counters, entered);
            }
        }
    }
    // The Twilio endpoint agrees with the full report.
    let (_, stats) =
        app.get_json(&format!("/api/v1/Workspaces/{workspace}/CumulativeStatistics?{all_time}")).await;
    assert_eq!(stats["reservations_accepted"].as_u64(), Some(truth.total.reservations_accepted));
    assert_eq!(stats["tasks_created"].as_u64(), Some(truth.total.tasks_created));
}

/// `report --by queue --sid WK…` names a worker where a queue is meant: refused with the
/// reason (exit 2) instead of an empty report; the right kind of SID reports (exit 0).
#[test]
fn the_report_command_refuses_a_sid_of_the_wrong_kind() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("t.db");
    let report = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_taskrouter-tracer"))
            .arg("report")
            .arg("--database")
            .arg(&database)
            .args(args)
            .output()
            .expect("the binary runs")
    };
    let worker = "WK0123456789abcdef0123456789abcdef";
    let refused = report(&["--by", "queue", "--sid", worker]);
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("is not a task queue SID (WQ and 32 hex digits)"), "{said}");
    let refused = report(&["--workspace", QUEUE]);
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    let reported = report(&["--by", "worker", "--sid", worker, "--format", "json"]);
    assert!(reported.status.success(), "{}", String::from_utf8_lossy(&reported.stderr));
}
