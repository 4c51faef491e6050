//! The webhook endpoints: every request recorded, the right status, signatures, duplicates.

use taskrouter_protocol::webhook::parse_form;

use crate::fixtures::{self, event_sid, Params};
use crate::helpers::{spawn_app, spawn_app_with, TestApp, AUTH_TOKEN};

fn path_for(endpoint: &str) -> String {
    format!("/webhooks/{endpoint}")
}

#[tokio::test]
async fn every_payload_shape_is_stored_with_no_field_lost() {
    let app = spawn_app().await;
    for (endpoint, event_type, params) in fixtures::all_shapes() {
        let response = app.post_signed(&path_for(endpoint), &params).await;
        let expected = if endpoint == "assignment" { 200 } else { 204 };
        assert_eq!(response.status().as_u16(), expected, "{event_type} was not accepted");
        if endpoint == "assignment" {
            assert_eq!(response.headers()["content-type"], "application/json");
            assert_eq!(response.text().await.unwrap(), "{}");
        }
    }
    let rows = app.query(
        "SELECT endpoint, event_type, body, signature_verdict, is_fact, task_sid, worker_sid, occurred_at_source, payload_encoding FROM events ORDER BY id",
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                TestApp::payload(r, 2, 8)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        },
    );
    let shapes = fixtures::all_shapes();
    assert_eq!(rows.len(), shapes.len());
    for ((endpoint, event_type, params), row) in shapes.iter().zip(rows) {
        assert_eq!(&row.0, endpoint);
        assert_eq!(row.1.as_deref(), Some(*event_type));
        let stored = parse_form(&row.2).expect("stored body parses");
        assert_eq!(&stored.0, params, "{event_type}: a field was lost or changed");
        assert_eq!(row.3, "valid", "{event_type}");
        assert!(row.4, "{event_type} should be a fact");
        let expected_task = params.iter().find(|(n, _)| n == "TaskSid").map(|(_, v)| v.clone());
        assert_eq!(row.5, expected_task, "{event_type}");
        let expected_worker = params.iter().find(|(n, _)| n == "WorkerSid").map(|(_, v)| v.clone());
        assert_eq!(row.6, expected_worker, "{event_type}");
        let expected_source = if *endpoint == "assignment" { "arrival" } else { "TimestampMs" };
        assert_eq!(row.7.as_deref(), Some(expected_source), "{event_type}");
    }
    let occurred: i64 = app.count("SELECT occurred_at_ms FROM events WHERE event_type = 'task.created'");
    assert_eq!(occurred, 1_672_996_097_446);
}

#[tokio::test]
async fn a_changed_parameter_is_refused_with_403_and_recorded_as_invalid() {
    let app = spawn_app().await;
    let params = fixtures::task_event("task.created", &event_sid(10), 1_700_000_000_000, "Task created");
    let url = format!("{}/webhooks/events", app.address);
    let signature = taskrouter_protocol::signature::compute(AUTH_TOKEN, &url, &params);
    let mut tampered = params.clone();
    tampered.iter_mut().find(|(n, _)| n == "TaskPriority").unwrap().1 = "9".into();

    let response = app.post_form("/webhooks/events", &tampered, Some(&signature)).await;

    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("X-Twilio-Signature"));
    let recorded_as = body["recorded_as"].as_i64().expect("the answer names the record");
    let (verdict, is_fact, status, task): (String, bool, i64, Option<String>) = app.query(
        &format!("SELECT signature_verdict, is_fact, response_status, task_sid FROM events WHERE id = {recorded_as}"),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )[0]
    .clone();
    assert_eq!((verdict.as_str(), is_fact, status), ("invalid", false, 403));
    assert_eq!(task.as_deref(), Some(fixtures::TASK), "a rejected request stays findable by its SIDs");
}

#[tokio::test]
async fn an_unsigned_request_is_refused_and_recorded_as_missing() {
    let app = spawn_app().await;
    let params = fixtures::task_event("task.created", &event_sid(11), 1_700_000_000_000, "Task created");
    let response = app.post_form("/webhooks/events", &params, None).await;
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE signature_verdict = 'missing' AND is_fact = 0"),
        1
    );
}

#[tokio::test]
async fn record_mode_accepts_a_bad_signature_but_never_makes_it_a_fact() {
    let app = spawn_app_with(|args| {
        args.signature_check = Some(taskrouter_tracer::ingest::SignatureMode::Record);
    })
    .await;
    let params = fixtures::task_event("task.created", &event_sid(12), 1_700_000_000_000, "Task created");
    let response = app.post_form("/webhooks/events", &params, Some("bm90IGEgc2lnbmF0dXJl")).await;
    assert_eq!(response.status().as_u16(), 204);
    let (verdict, is_fact, rejection): (String, bool, Option<String>) = app
        .query("SELECT signature_verdict, is_fact, rejection FROM events", |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })[0]
        .clone();
    assert_eq!((verdict.as_str(), is_fact), ("invalid", false));
    assert!(rejection.unwrap().contains("not a fact"));

    // The same event, properly signed, is its first trusted delivery: the fact, not a duplicate
    // of the forged copy; a second signed copy is a duplicate of it.
    assert_eq!(app.post_signed("/webhooks/events", &params).await.status().as_u16(), 204);
    assert_eq!(app.post_signed("/webhooks/events", &params).await.status().as_u16(), 204);
    let rows: Vec<(i64, Option<i64>, bool)> = app
        .query("SELECT id, duplicate_of, is_fact FROM events ORDER BY id", |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        });
    assert_eq!(rows, vec![(1, None, false), (2, None, true), (3, Some(2), false)]);
}

#[tokio::test]
async fn without_a_token_every_request_is_unchecked_and_counts() {
    let app = spawn_app_with(|args| {
        args.twilio.auth_token = None;
        args.signature_check = None;
    })
    .await;
    let response = app.post_form("/webhooks/assignment", &fixtures::assignment_callback(), None).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE signature_verdict = 'unchecked' AND is_fact = 1"),
        1
    );
}

#[tokio::test]
async fn the_public_url_is_what_signatures_are_checked_against_and_mismatches_are_explained() {
    let app = spawn_app_with(|args| args.public_url = Some("https://tracer.example.ngrok.app".into())).await;
    let params = fixtures::task_event("task.created", &event_sid(13), 1_700_000_000_000, "Task created");
    let good = taskrouter_protocol::signature::compute(
        AUTH_TOKEN,
        "https://tracer.example.ngrok.app/webhooks/events",
        &params,
    );
    assert_eq!(app.post_form("/webhooks/events", &params, Some(&good)).await.status().as_u16(), 204);

    let signed_for_http = taskrouter_protocol::signature::compute(
        AUTH_TOKEN,
        "http://tracer.example.ngrok.app/webhooks/events",
        &params,
    );
    let response = app.post_form("/webhooks/events", &params, Some(&signed_for_http)).await;
    assert_eq!(response.status().as_u16(), 403);
    let detail: String = app
        .query("SELECT signature_detail FROM events WHERE signature_verdict = 'invalid'", |r| {
            r.get::<_, String>(0)
        })[0]
        .clone();
    assert!(detail.contains("scheme differs"), "{detail}");
    assert!(detail.contains("http://tracer.example.ngrok.app/webhooks/events"), "{detail}");
}

#[tokio::test]
async fn malformed_wrong_type_empty_and_oversized_bodies_get_the_right_status_and_a_record() {
    let app = spawn_app_with(|args| {
        args.signature_check = Some(taskrouter_tracer::ingest::SignatureMode::Off);
        args.body_limit = 4096;
    })
    .await;
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("events", form, b"Sid=EV1&TaskSid=WT1".to_vec(), 400, "EventType"),
        ("events", form, b"EventType=task.created&TimestampMs=tomorrow".to_vec(), 400, "TimestampMs"),
        ("events", form, b"EventType=%ff%fe".to_vec(), 400, "UTF-8"),
        ("assignment", form, b"TaskSid=WT1".to_vec(), 400, "ReservationSid"),
        ("events", "application/json", br#"{"EventType":"task.created"}"#.to_vec(), 415, "form-urlencoded"),
        ("events", form, Vec::new(), 400, "empty"),
        ("events", form, vec![b'a'; 10_000], 413, "limit"),
    ];
    for (endpoint, content_type, body, status, reason) in &cases {
        let response = app.post_raw(&path_for(endpoint), content_type, body.clone(), None).await;
        assert_eq!(response.status().as_u16(), *status, "case {reason}");
    }
    type StoredRejection = (i64, Option<String>, i64, bool, Vec<u8>, bool);
    let rows: Vec<StoredRejection> = app.query(
        "SELECT response_status, rejection, body_truncated, body, is_fact, payload_encoding FROM events ORDER BY id",
        |r| {
            let body = TestApp::payload(r, 3, 5)?;
            Ok((r.get(0)?, r.get(1)?, body.len() as i64, r.get(2)?, body, r.get(4)?))
        },
    );
    assert_eq!(rows.len(), cases.len(), "every bad request is recorded");
    for ((_, _, body, status, reason), row) in cases.iter().zip(rows) {
        assert_eq!(row.0, i64::from(*status));
        let rejection = row.1.unwrap_or_default();
        assert!(rejection.contains(reason), "rejection {rejection:?} should mention {reason}");
        assert!(!row.5, "a rejected request is never a fact");
        if *status == 413 {
            assert_eq!(row.2, 4096, "stored truncated to the limit");
            assert!(row.3);
        } else {
            assert_eq!(&row.4, body, "the raw body is kept byte for byte");
        }
    }
}

#[tokio::test]
async fn a_duplicate_delivery_is_recorded_twice_and_counted_once() {
    let app = spawn_app().await;
    let event = fixtures::reservation_event("reservation.created", &event_sid(20), 1_700_000_000_000);
    assert_eq!(app.post_signed("/webhooks/events", &event).await.status().as_u16(), 204);
    assert_eq!(app.post_signed("/webhooks/events", &event).await.status().as_u16(), 204);
    // The same assignment callback again (no Sid): recognised by its body.
    let callback = fixtures::assignment_callback();
    assert_eq!(app.post_signed("/webhooks/assignment", &callback).await.status().as_u16(), 200);
    assert_eq!(app.post_signed("/webhooks/assignment", &callback).await.status().as_u16(), 200);

    let rows: Vec<(i64, Option<i64>, bool)> = app
        .query("SELECT id, duplicate_of, is_fact FROM events ORDER BY id", |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        });
    assert_eq!(rows, vec![(1, None, true), (2, Some(1), false), (3, None, true), (4, Some(3), false)]);
}

#[tokio::test]
async fn every_answered_request_gets_its_response_time_once_the_writer_is_idle() {
    let app = spawn_app().await;
    for i in 0..5 {
        let event = fixtures::task_event("task.updated", &event_sid(300 + i), 1_700_000_000_000, "u");
        assert_eq!(app.post_signed("/webhooks/events", &event).await.status().as_u16(), 204);
    }
    // Response times ride along with later transactions now and then, or are written on their
    // own once the writer has been idle a moment: poll for that, not for a fixed delay.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let timed = loop {
        let timed = app.count("SELECT COUNT(*) FROM response_times r JOIN events e ON e.id = r.event_id");
        if timed == 5 || std::time::Instant::now() > deadline {
            break timed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(timed, 5, "response times written for every answered request");
    assert_eq!(app.count("SELECT COUNT(*) FROM response_times WHERE handling_us <= 0"), 0);
}

#[tokio::test]
async fn the_same_idempotency_token_marks_a_redelivery() {
    let app =
        spawn_app_with(|args| args.signature_check = Some(taskrouter_tracer::ingest::SignatureMode::Off))
            .await;
    let mut first: Params = fixtures::assignment_callback();
    let body = taskrouter_protocol::webhook::encode_form(&first);
    let send = |body: String| {
        app.client
            .post(format!("{}/webhooks/assignment", app.address))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("I-Twilio-Idempotency-Token", "idem-token-1")
            .body(body)
            .send()
    };
    assert_eq!(send(body).await.unwrap().status().as_u16(), 200);
    // A retry whose body differs (TaskAge advanced) but carries the same token.
    first.iter_mut().find(|(n, _)| n == "TaskAge").unwrap().1 = "4".into();
    let retried = taskrouter_protocol::webhook::encode_form(&first);
    assert_eq!(send(retried).await.unwrap().status().as_u16(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE duplicate_of = 1"), 1);
}

#[tokio::test]
async fn rows_survive_a_restart_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("restart.db");
    for round in 0..2u64 {
        let database = database.clone();
        let app = spawn_app_with(move |args| args.database = database).await;
        for i in 0..5 {
            let event = fixtures::task_event(
                "task.updated",
                &event_sid(100 + round * 10 + i),
                1_700_000_000_000,
                "u",
            );
            assert_eq!(app.post_signed("/webhooks/events", &event).await.status().as_u16(), 204);
        }
        assert_eq!(app.count("SELECT COUNT(*) FROM events"), 5 * (round as i64 + 1));
        app.stop().await;
    }
    let connection = rusqlite::Connection::open(&database).unwrap();
    let report = taskrouter_tracer::storage::event_log::verify(&connection, |_| {}).unwrap();
    assert_eq!(report.rows_checked, 10);
    assert_eq!(report.first_bad_row, None);
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let app = spawn_app().await;
    let params = fixtures::assignment_callback();
    let url = format!("{}/webhooks/assignment", app.address);
    let signature = taskrouter_protocol::signature::compute(AUTH_TOKEN, &url, &params);
    let response = app
        .client
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature)
        .header("Authorization", "Basic c2VjcmV0OnNlY3JldA==")
        .body(taskrouter_protocol::webhook::encode_form(&params))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers =
        app.query("SELECT headers, payload_encoding FROM events", |r| TestApp::payload(r, 0, 1)).remove(0);
    let headers = String::from_utf8(headers).unwrap();
    assert!(!headers.contains("c2VjcmV0OnNlY3JldA=="), "{headers}");
    assert!(headers.contains("[redacted]"));
    assert!(!headers.contains(AUTH_TOKEN));
}

#[tokio::test]
async fn healthz_and_metrics_report_the_database() {
    let app = spawn_app().await;
    app.post_signed("/webhooks/assignment", &fixtures::assignment_callback()).await;
    let (status, health) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["writable"], true);
    let metrics =
        app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            r#"tracer_webhook_requests_total{endpoint="assignment",verdict="valid",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("tracer_commit_batch_size_count 1"));
    assert!(metrics.contains("tracer_database_bytes "));
}

#[test]
fn debug_output_never_shows_the_auth_token() {
    let mut args = taskrouter_tracer::settings::Settings::for_tests("x.db");
    args.twilio.auth_token = Some(AUTH_TOKEN.into());
    assert!(!format!("{args:?}").contains(AUTH_TOKEN));
}

/// Under writes that never pause, with a reader polling a page, the checkpointer still starts
/// the write-ahead log again once it passes `--wal-limit-mib`, so the WAL (and the index of it
/// mapped into memory) stays bounded.
#[tokio::test]
async fn the_write_ahead_log_restarts_under_sustained_writes() {
    let app = spawn_app_with(|args| args.wal_limit_mib = 1).await;
    let wal = app.database.with_extension("db-wal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let reader = {
        let (client, address) = (app.client.clone(), app.address.clone());
        tokio::spawn(async move {
            while std::time::Instant::now() < deadline {
                let _ = client.get(format!("{address}/tasks")).send().await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let mut sent = 0u64;
    let mut largest_wal = 0;
    let restarts = loop {
        let writes = (0..16).map(|i| {
            let task = format!("WT{:032x}", sent + i);
            let params = fixtures::task_event("task.created", &task, 1_700_000_000_000, "Task created");
            let app = &app;
            async move { app.post_signed("/webhooks/events", &params).await.status().as_u16() }
        });
        for status in futures_util::future::join_all(writes).await {
            assert_eq!(status, 204);
        }
        sent += 16;
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        let metrics =
            app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
        let restarts: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("tracer_wal_restarts_total "))
            .expect("the restart counter is exported")
            .parse()
            .unwrap();
        if restarts >= 2 || std::time::Instant::now() > deadline {
            break restarts;
        }
    };
    reader.abort();
    assert!(
        restarts >= 2,
        "the WAL restarted {restarts} times in 20 s of writes ({sent} sent, WAL up to {largest_wal} bytes)"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM events"), sent as i64, "every acknowledged request is stored");
}

#[tokio::test]
async fn a_row_is_counted_before_its_answer_so_a_read_right_after_waits_for_it() {
    let app = spawn_app().await;
    let start = 1_765_000_000_000_i64;
    for n in 0..200 {
        let params = fixtures::task_event("task.updated", &event_sid(n), start + n as i64, "u");
        let response = app.post_signed(&path_for("events"), &params).await;
        assert_eq!(response.status().as_u16(), 204);
        // Each answer comes after its row is counted; pages wait for every counted row.
        assert!(app.rows_counted() > n as i64, "answer {n} came before its row was counted");
    }
}
