//! Crash safety: SIGKILL the real binary in the middle of a burst of concurrent posts; after a
//! restart every request that was answered 2xx is in the log and the chain verifies.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::fixtures::{self, event_sid};
use crate::helpers::{free_port, AUTH_TOKEN};

fn start_server(database: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_taskrouter-tracer"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--workers", "2", "--database"])
        .arg(database)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts")
}

/// Posts a signed `task.updated` event with Sid `sid`.
async fn post_task_update(
    client: &reqwest::Client,
    base: &str,
    sid: &str,
    at_ms: i64,
) -> reqwest::Result<reqwest::Response> {
    let params = fixtures::task_event("task.updated", sid, at_ms, "u");
    let url = format!("{base}/webhooks/events");
    let signature = taskrouter_protocol::signature::compute(AUTH_TOKEN, &url, &params);
    client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature)
        .body(taskrouter_protocol::webhook::encode_form(&params))
        .send()
        .await
}

async fn wait_until_up(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server at {base} did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_request_survives_sigkill() {
    const WAVE: u64 = 300;
    const REQUESTS: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("crash.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut server = start_server(&database, port);
    wait_until_up(&client, &base).await;

    // A first wave, then another process opens and closes the database while the server runs
    // (as `verify`, `rebuild --check` or a `sqlite3` shell do), after the checkpointer has had
    // rounds to copy it: it must not take itself for the last connection and delete the WAL the
    // server is still appending to.
    let mut acknowledged = Vec::new();
    for i in 0..WAVE {
        let sid = event_sid(800_000 + i);
        let response = post_task_update(&client, &base, &sid, 1_600_000_000_000 + i as i64).await.unwrap();
        assert!(response.status().is_success());
        acknowledged.push(sid);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let verified = Command::new(env!("CARGO_BIN_EXE_taskrouter-tracer"))
        .args(["verify", "--database"])
        .arg(&database)
        .output()
        .expect("verify runs");
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));

    let answered = Arc::new(AtomicUsize::new(0));
    let mut posts = Vec::new();
    for i in 0..REQUESTS {
        let client = client.clone();
        let base = base.clone();
        let answered = answered.clone();
        posts.push(tokio::spawn(async move {
            let sid = event_sid(900_000 + i);
            let response = post_task_update(&client, &base, &sid, 1_700_000_000_000 + i as i64).await;
            let acknowledged = matches!(&response, Ok(r) if r.status().is_success());
            if acknowledged {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            (sid, acknowledged)
        }));
    }
    // Kill it mid-burst: once some, but not all, requests have been acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < (REQUESTS / 4) as usize && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill().expect("SIGKILL");
    server.wait().unwrap();

    for post in posts {
        let (sid, ok) = post.await.unwrap();
        if ok {
            acknowledged.push(sid);
        }
    }
    assert!(acknowledged.len() as u64 > WAVE, "the kill came before any answer");
    assert!((acknowledged.len() as u64) < WAVE + REQUESTS, "the kill came after every answer: not mid-burst");

    // Restart on the same file: recovery must keep every acknowledged row.
    let mut restarted = start_server(&database, port);
    wait_until_up(&client, &base).await;
    let connection = rusqlite::Connection::open(&database).unwrap();
    let mut lookup =
        connection.prepare("SELECT COUNT(*) FROM events WHERE event_sid = ?1 AND is_fact = 1").unwrap();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|sid| lookup.query_row([sid.as_str()], |r| r.get::<_, i64>(0)).unwrap() != 1)
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged requests were lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let report = taskrouter_tracer::storage::event_log::verify(&connection, |_| {}).unwrap();
    assert_eq!(report.first_bad_row, None);
    assert!(report.rows_checked >= acknowledged.len() as u64);
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    eprintln!("crash test: {} of {REQUESTS} acknowledged before SIGKILL, all {} present after restart, {} rows in the log", acknowledged.len(), acknowledged.len(), report.rows_checked);
}
