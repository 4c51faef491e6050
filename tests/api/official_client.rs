//! Twilio's official Python helper library, pointed at the simulator's base URL, works
//! unchanged. Needs `pip install twilio` (`.ci/run` installs it); without it the test says so
//! and passes, except under CI, where it fails.

use std::process::Command;

use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::scenario::CallbackUrls;

use crate::helpers::{no_traffic, start_simulator, AUTH_TOKEN, SIM_ACCOUNT};

fn twilio_library_present() -> bool {
    Command::new("python3").args(["-c", "import twilio"]).output().is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilios_python_library_works_against_the_simulator() {
    if !twilio_library_present() {
        assert!(std::env::var_os("CI").is_none(), "the twilio Python package is missing under CI");
        eprintln!("official-client test skipped: pip install twilio to run it");
        return;
    }
    let sim = start_simulator(
        3,
        CallbackUrls { assignment: None, events: None },
        no_traffic(45),
        Faults::default(),
        None,
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/official_client/twilio_python_check.py");
    let args = [
        script,
        sim.rest_base_url(),
        SIM_ACCOUNT,
        AUTH_TOKEN,
        sim.sids.workspace.as_str(),
        sim.sids.workflow.as_str(),
    ]
    .map(str::to_string);
    let output = tokio::task::spawn_blocking(move || Command::new("python3").args(args).output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the official library failed: {stderr}");
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(seen["workspaces"], serde_json::json!([sim.sids.workspace]));
    assert_eq!(seen["workflow_timeout"], 45);
    assert_eq!(seen["created_status"], "reserved");
    assert_eq!(seen["pending_reservations"], 1);
    assert_eq!(seen["accepted_status"], "accepted");
    assert_eq!(seen["second_accept"]["status"], 400);
    assert_eq!(seen["task_status"], "assigned");
    let event_types = seen["event_types"].as_array().unwrap();
    for expected in ["task.created", "reservation.created", "reservation.accepted"] {
        assert!(event_types.iter().any(|e| e == expected), "{expected} missing from {event_types:?}");
    }
    assert!(seen["paged_tasks"].as_u64().unwrap() >= 1);
    assert_eq!(seen["unknown_task"], serde_json::json!({"status": 404, "code": 20404}));
    assert_eq!(seen["bad_token"]["status"], 401);
    sim.stop().await;
}
