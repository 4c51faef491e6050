//! Event Streams as an input: signed CloudEvent bodies (single and batched) through the real
//! server, checked against Twilio's JSON-body signing, turned into the facts the event callbacks
//! would have been, deduplicated across paths, refused whole when malformed, shown, exported and
//! replayed; and the simulator's Event Streams delivery against its ground truth.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use taskrouter_protocol::signature;
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::event_streams::EventStreamsSink;
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
use taskrouter_simulator::{start_scenario, RunningSimulator, ScenarioOptions};

use crate::helpers::{
    first_difference, simulator_options, spawn_app, spawn_app_with, TestApp, AUTH_TOKEN, SIM_ACCOUNT,
};

const WS: &str = "WS0123456789abcdef0123456789abcdef";
const WT: &str = "WT0123456789abcdef0123456789abcdef";
const WK: &str = "WK0123456789abcdef0123456789abcdef";

/// A 32-hex-digit suffix from `n`, for SIDs of a kind.
fn sid(prefix: &str, n: u32) -> String {
    format!("{prefix}{n:032x}")
}

/// A `com.twilio.taskrouter.*` CloudEvent modelled on Twilio's documented samples.
fn taskrouter_event(event_type: &str, n: u32, at: &str, extra: Value) -> Value {
    let mut payload = json!({
        "sid": sid("EV", n),
        "eventtype": event_type,
        "account_sid": SIM_ACCOUNT,
        "timestamp": at,
        "workspace_sid": WS,
        "task_sid": WT,
        "task_attributes": "{\"type\":\"support\"}",
        "task_age": 3,
        "task_priority": 0,
        "task_assignment_status": "pending",
    });
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        payload[key] = value;
    }
    json!({
        "specversion": "1.0",
        "type": format!("com.twilio.taskrouter.{event_type}"),
        "source": format!("/v1/Workspaces/{WS}"),
        "id": sid("NO", n),
        "dataschema": "https://events-schemas.twilio.com/TaskRouter.WDSEvent/4",
        "datacontenttype": "application/json",
        "time": at,
        "data": {"sid": sid("EV", n), "name": "x", "timestamp": at, "payload": payload},
    })
}

fn reservation_event(event_type: &str, n: u32, at: &str) -> Value {
    taskrouter_event(
        event_type,
        n,
        at,
        json!({"reservation_sid": sid("WR", 1), "worker_sid": WK, "worker_name": "alice",
               "task_queue_sid": sid("WQ", 1), "workflow_sid": sid("WW", 1)}),
    )
}

/// A short lifecycle: created, reserved, timed out, reserved again, accepted, completed.
fn lifecycle() -> Vec<Value> {
    vec![
        taskrouter_event("task.created", 1, "2026-12-06T10:00:00.000Z", json!({})),
        reservation_event("reservation.created", 2, "2026-12-06T10:00:01.000Z"),
        reservation_event("reservation.timeout", 3, "2026-12-06T10:00:31.000Z"),
        taskrouter_event(
            "reservation.created",
            4,
            "2026-12-06T10:00:32.000Z",
            json!({"reservation_sid": sid("WR", 2), "worker_sid": WK}),
        ),
        taskrouter_event(
            "reservation.accepted",
            5,
            "2026-12-06T10:00:40.000Z",
            json!({"reservation_sid": sid("WR", 2), "worker_sid": WK}),
        ),
        taskrouter_event(
            "task.completed",
            6,
            "2026-12-06T10:05:00.000Z",
            json!({"task_assignment_status": "completed"}),
        ),
    ]
}

/// Alice goes from Available (90 s) to Offline: a worker event, read by the reports.
fn activity_change() -> Value {
    let mut event = taskrouter_event(
        "worker.activity.update",
        7,
        "2026-12-06T10:06:00.000Z",
        json!({"worker_sid": WK, "worker_name": "alice", "worker_activity_sid": sid("WA", 2),
               "worker_activity_name": "Offline", "worker_previous_activity_sid": sid("WA", 1),
               "worker_previous_activity_name": "Available", "worker_time_in_previous_activity": 90,
               "worker_time_in_previous_activity_ms": 90_000, "resource_sid": WK}),
    );
    event["data"]["payload"].as_object_mut().unwrap().remove("task_sid");
    event
}

/// Posts `body` as Event Streams does to `app`: `bodySHA256` in the URL, signed over the URL.
async fn post_stream(app: &TestApp, body: &[u8]) -> reqwest::Response {
    let url = signature::with_body_hash(&format!("{}/webhooks/event-streams", app.address), body);
    let signature = signature::compute(AUTH_TOKEN, &url, &[]);
    post_at(app, &url, "application/json", body.to_vec(), Some(&signature)).await
}

async fn post_at(
    app: &TestApp,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.post(url).header("Content-Type", content_type).body(body);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    request.send().await.expect("request sent")
}

fn batch(events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(events).unwrap()
}

fn dump(app: &TestApp) -> String {
    crate::helpers::dump(&app.database)
}

#[tokio::test]
async fn only_what_twilio_signs_is_accepted_and_each_refusal_says_why() {
    let app = spawn_app().await;
    let body = batch(&lifecycle()[..2]);
    let signed = post_stream(&app, &body).await;
    assert_eq!(signed.status().as_u16(), 200);
    let answer: Value = signed.json().await.unwrap();
    assert_eq!((answer["events"].as_u64(), answer["new_facts"].as_u64()), (Some(2), Some(2)), "{answer}");

    let url = signature::with_body_hash(&format!("{}/webhooks/event-streams", app.address), &body);
    let good = signature::compute(AUTH_TOKEN, &url, &[]);
    // The body changed on its way: its hash is no longer the URL's.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'3').unwrap();
    tampered[at] = b'4';
    let refused = post_at(&app, &url, "application/json", tampered, Some(&good)).await;
    assert_eq!(refused.status().as_u16(), 403);
    // The URL changed: another hash (of a body that matches it) with the old signature.
    let other_body = batch(&lifecycle()[2..3]);
    let other_url =
        signature::with_body_hash(&format!("{}/webhooks/event-streams", app.address), &other_body);
    let refused_url = post_at(&app, &other_url, "application/json", other_body, Some(&good)).await;
    assert_eq!(refused_url.status().as_u16(), 403);
    // Signed over the URL alone but without bodySHA256: the body is not covered.
    let bare = format!("{}/webhooks/event-streams", app.address);
    let bare_signature = signature::compute(AUTH_TOKEN, &bare, &[]);
    let no_hash = post_at(&app, &bare, "application/json", body.clone(), Some(&bare_signature)).await;
    assert_eq!(no_hash.status().as_u16(), 403);
    let unsigned = post_at(&app, &url, "application/json", body.clone(), None).await;
    assert_eq!(unsigned.status().as_u16(), 403);

    app.projections_caught_up().await;
    let verdicts: Vec<(i64, String, Option<String>)> = app.query(
        "SELECT response_status, signature_verdict, signature_detail FROM events \
         WHERE endpoint = 'event-streams' ORDER BY id",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    assert_eq!(verdicts.len(), 5, "every request is recorded, refused or not: {verdicts:?}");
    assert_eq!(verdicts[0].0, 200);
    assert!(
        verdicts[1..].iter().all(|(status, verdict, _)| *status == 403 && verdict != "valid"),
        "{verdicts:?}"
    );
    let detail = |i: usize| verdicts[i].2.clone().unwrap_or_default();
    assert!(detail(1).contains("bodySHA256"), "{}", detail(1));
    assert!(detail(3).contains("no bodySHA256"), "{}", detail(3));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE is_fact = 1"),
        2,
        "only the signed request's events"
    );
    app.stop().await;

    // Behind a proxy whose public URL the tracer was not told: the diagnosis names the URL
    // the request was signed for, as for form callbacks.
    let proxied = spawn_app_with(|args| args.public_url = Some("https://tracer.example.com".into())).await;
    let local = signature::with_body_hash(&format!("{}/webhooks/event-streams", proxied.address), &body);
    let signed_locally = signature::compute(AUTH_TOKEN, &local, &[]);
    let wrong_url = post_at(&proxied, &local, "application/json", body.clone(), Some(&signed_locally)).await;
    assert_eq!(wrong_url.status().as_u16(), 403);
    let detail: Vec<Option<String>> =
        proxied.query("SELECT signature_detail FROM events WHERE endpoint = 'event-streams'", |r| r.get(0));
    let detail = detail[0].clone().unwrap_or_default();
    assert!(detail.contains(&format!("signed for {local}")) && detail.contains("--public-url"), "{detail}");
    proxied.stop().await;
}

#[tokio::test]
async fn a_batch_gives_the_facts_its_event_callbacks_would_have() {
    let streamed = spawn_app().await;
    let mut events = lifecycle();
    events.push(activity_change());
    // Out of order, in two bodies, one of them a single CloudEvent (not an array).
    let mut shuffled = events.clone();
    shuffled.reverse();
    assert_eq!(post_stream(&streamed, &batch(&shuffled[..6])).await.status().as_u16(), 200);
    let single = serde_json::to_vec(&shuffled[6]).unwrap();
    assert_eq!(post_stream(&streamed, &single).await.status().as_u16(), 200);

    // The same events as signed form callbacks, mapped by hand from Twilio's parameter names.
    let callbacks = spawn_app().await;
    for event in &events {
        let payload = event["data"]["payload"].as_object().unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap()).unwrap();
        let mut params = vec![
            ("EventType".to_string(), payload["eventtype"].as_str().unwrap().to_string()),
            ("Sid".to_string(), payload["sid"].as_str().unwrap().to_string()),
            ("TimestampMs".to_string(), at.timestamp_millis().to_string()),
            ("Timestamp".to_string(), at.timestamp().to_string()),
        ];
        for (key, value) in payload {
            if ["eventtype", "sid", "timestamp"].contains(&key.as_str()) {
                continue;
            }
            let name: String = key.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
            params.push((name, text));
        }
        let response = callbacks.post_signed("/webhooks/events", &params).await;
        assert_eq!(response.status().as_u16(), 204);
    }
    streamed.projections_caught_up().await;
    callbacks.projections_caught_up().await;
    let (streamed_dump, callbacks_dump) = (dump(&streamed), dump(&callbacks));
    assert!(streamed_dump.contains("timeout"), "{streamed_dump}");
    assert_eq!(first_difference(&streamed_dump, &callbacks_dump), None);

    // The reports read the worker's activity from the CloudEvent as from the callback.
    let statistics = format!(
        "/api/v1/Workspaces/{WS}/Workers/CumulativeStatistics?StartDate=2026-12-06T09:50:00Z&EndDate=2026-12-06T10:10:00Z"
    );
    let (status, from_stream) = streamed.get_json(&statistics).await;
    assert_eq!(status, 200, "{from_stream}");
    let (_, from_callbacks) = callbacks.get_json(&statistics).await;
    let available = |report: &Value| {
        report["activity_durations"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["friendly_name"] == "Available").cloned())
    };
    assert_eq!(available(&from_stream).map(|d| d["total"].clone()), Some(json!(90)), "{from_stream}");
    assert_eq!(available(&from_stream), available(&from_callbacks));

    // The timeline explains the timeout like any other.
    let page = streamed.get_text(&format!("/tasks/{WT}")).await;
    assert!(page.contains("reservation.timeout") || page.contains("timed out"), "{page}");
    // Found by SID, each CloudEvent its own row related to the request that carried it.
    let (status, listed) = streamed.get_json(&format!("/api/requests?sid={WT}&limit=50")).await;
    assert_eq!(status, 200);
    let rows = listed["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "{listed}");
    assert!(rows.iter().all(|r| r["endpoint"] == "cloudevent" && r["related_to"].is_i64()), "{listed}");
    let (_, requests) = streamed.get_json("/api/requests?endpoint=event-streams").await;
    assert_eq!(requests["requests"].as_array().map(Vec::len), Some(2), "{requests}");
    streamed.stop().await;
    callbacks.stop().await;
    let comparison = taskrouter_tracer::commands::compare_with_rebuild(
        &streamed.database,
        &taskrouter_tracer::projections::ProjectionConfig::default(),
    )
    .unwrap();
    assert_eq!(comparison.stored, comparison.rebuilt, "rebuild --check gives what ingest projected");
}

#[tokio::test]
async fn redeliveries_and_other_paths_are_duplicates_and_other_types_never_facts() {
    let app = spawn_app().await;
    let events = lifecycle();
    // Half the events first arrive as form callbacks.
    for event in events.iter().step_by(2) {
        let payload = &event["data"]["payload"];
        let at = chrono::DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap()).unwrap();
        let mut params = vec![
            ("EventType".to_string(), payload["eventtype"].as_str().unwrap().to_string()),
            ("Sid".to_string(), payload["sid"].as_str().unwrap().to_string()),
            ("TimestampMs".to_string(), at.timestamp_millis().to_string()),
            ("TaskSid".to_string(), WT.to_string()),
        ];
        for (key, name) in [("reservation_sid", "ReservationSid"), ("worker_sid", "WorkerSid")] {
            if let Some(value) = payload[key].as_str() {
                params.push((name.to_string(), value.to_string()));
            }
        }
        assert_eq!(app.post_signed("/webhooks/events", &params).await.status().as_u16(), 204);
    }
    // Then all of them through Event Streams, with a CloudEvent of another product mixed in.
    let mut mixed = events.clone();
    mixed.insert(
        3,
        json!({"specversion": "1.0", "type": "com.twilio.messaging.message.delivered",
               "source": "/v1/Messages", "id": "NO-messaging-1", "data": {"messageSid": "SM1"}}),
    );
    let body = batch(&mixed);
    let first = post_stream(&app, &body).await;
    assert_eq!(first.status().as_u16(), 200);
    let answer: Value = first.json().await.unwrap();
    assert_eq!(answer["events"], 7);
    assert_eq!(answer["taskrouter_events"], 6);
    assert_eq!((answer["new_facts"].as_u64(), answer["duplicates"].as_u64()), (Some(3), Some(3)), "{answer}");
    app.projections_caught_up().await;
    let before = dump(&app);
    // Event Streams delivers the same body again.
    let again: Value = post_stream(&app, &body).await.json().await.unwrap();
    assert_eq!((again["new_facts"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(6)), "{again}");
    app.projections_caught_up().await;
    assert_eq!(dump(&app), before, "a redelivery changes nothing");
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE is_fact = 1"), 6, "each event is one fact");
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE event_type LIKE '%messaging%'"), 0);

    // The request page shows each CloudEvent and what it became.
    let request_id = answer["recorded_as"].as_i64().unwrap();
    let page = app.get_text(&format!("/requests/{request_id}")).await;
    assert!(page.contains("CloudEvents in this request (7)"), "{page}");
    assert!(page.contains("not a TaskRouter event"), "{page}");
    assert_eq!(page.matches("already known: a duplicate of").count(), 3, "{page}");
    assert_eq!(page.matches("a new fact").count(), 3, "{page}");
    let list = app.get_text("/requests?endpoint=event-streams").await;
    assert!(list.contains("value=\"event-streams\" selected"), "{list}");
    assert!(list.contains(&format!("href=\"/requests/{request_id}\"")), "{list}");
    let child = answer["cloudevent_rows"][0].as_i64().unwrap();
    let child_page = app.get_text(&format!("/requests/{child}")).await;
    assert!(child_page.contains("As its event callback") && child_page.contains("TaskSid"), "{child_page}");
    assert!(
        child_page.contains(&format!("href=\"/requests/{request_id}\" id=\"related-to\"")),
        "{child_page}"
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_refused_whole_recorded_and_never_facts() {
    let app = spawn_app().await;
    let mut no_reservation = reservation_event("reservation.created", 9, "2026-12-06T10:00:01.000Z");
    no_reservation["data"]["payload"].as_object_mut().unwrap().remove("reservation_sid");
    let mut no_id = lifecycle()[0].clone();
    no_id.as_object_mut().unwrap().remove("id");
    let mut no_type = lifecycle()[0].clone();
    no_type.as_object_mut().unwrap().remove("type");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", b"{\"specversion\": ".to_vec(), 400, "not JSON"),
        ("a number", b"42".to_vec(), 400, "neither a CloudEvent"),
        ("an empty batch", b"[]".to_vec(), 400, "empty"),
        ("no id", serde_json::to_vec(&no_id).unwrap(), 400, "has no id"),
        ("no type", batch(&[lifecycle()[1].clone(), no_type]), 400, "CloudEvent 1 has no type"),
        (
            "a payload missing what its type needs",
            batch(&[lifecycle()[0].clone(), lifecycle()[1].clone(), no_reservation]),
            400,
            "needs reservation_sid",
        ),
    ];
    for (what, body, status, says) in &cases {
        let response = post_stream(&app, body).await;
        assert_eq!(response.status().as_u16(), *status, "{what}");
        let answer: Value = response.json().await.unwrap();
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{what}: {answer}");
        assert!(answer["recorded_as"].is_i64(), "{what}: {answer}");
    }
    // Not JSON at all, by its Content-Type.
    let url = signature::with_body_hash(&format!("{}/webhooks/event-streams", app.address), b"a=b");
    let form = post_at(&app, &url, "application/x-www-form-urlencoded", b"a=b".to_vec(), None).await;
    assert_eq!(form.status().as_u16(), 415);
    // Over the body limit (64 KB by default): refused and stored truncated.
    let huge: Vec<Value> = (0..80)
        .map(|n| {
            taskrouter_event(
                "task.updated",
                100 + n,
                "2026-12-06T10:00:00.000Z",
                json!({"pad": "x".repeat(1000)}),
            )
        })
        .collect();
    let too_big = post_stream(&app, &batch(&huge)).await;
    assert_eq!(too_big.status().as_u16(), 413);
    app.projections_caught_up().await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE endpoint = 'event-streams'"),
        cases.len() as i64 + 2
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE body_truncated = 1"), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE endpoint = 'cloudevent'"),
        0,
        "nothing of a bad batch"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM proj_tasks"), 0);
    app.stop().await;
}

type Captured = Arc<Mutex<Vec<(String, Vec<(String, String)>, Vec<u8>)>>>;

/// A server that records every request (full URL, headers, body) and answers `status` (200
/// until changed).
async fn capturing_server() -> (String, Captured, Arc<AtomicU16>, actix_web::dev::ServerHandle) {
    let captured: Captured = Arc::default();
    let status = Arc::new(AtomicU16::new(200));
    let answer = status.clone();
    let state = web::Data::new(captured.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let own = base.clone();
    let server = HttpServer::new(move || {
        let own = own.clone();
        let answer = answer.clone();
        App::new().app_data(state.clone()).default_service(web::to(
            move |request: HttpRequest, body: web::Bytes, state: web::Data<Captured>| {
                let url = format!("{own}{}", request.uri());
                let status = answer.load(Ordering::Relaxed);
                async move {
                    let headers = request
                        .headers()
                        .iter()
                        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    state.lock().unwrap().push((url, headers, body.to_vec()));
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .body("{\"app\":true}")
                }
            },
        ))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (base, captured, status, handle)
}

#[tokio::test]
async fn replays_exports_and_filters_treat_event_streams_requests_like_the_others() {
    let app = spawn_app().await;
    let body = batch(&lifecycle());
    let answer: Value = post_stream(&app, &body).await.json().await.unwrap();
    let request_id = answer["recorded_as"].as_i64().unwrap();
    let (base, captured, _, server) = capturing_server().await;
    let target = format!("{base}/sink?team=ops");
    let replayed = app
        .client
        .post(format!("{}/api/requests/{request_id}/replay", app.address))
        .json(&json!({"url": target}))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status().as_u16(), 200, "{:?}", replayed.text().await);
    {
        let captured = captured.lock().unwrap();
        let (url, headers, sent) = &captured[0];
        assert_eq!(sent, &body, "the body as received");
        assert!(url.starts_with(&format!("{base}/sink?team=ops&bodySHA256=")), "{url}");
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let verdict = signature::verify(
            AUTH_TOKEN,
            &signature::SignedRequest {
                url,
                params: &[],
                body: sent,
                signature: header("x-twilio-signature"),
            },
            &[],
        );
        assert_eq!(verdict, signature::Verdict::Valid, "re-signed for the target");
        assert_eq!(header("content-type"), Some("application/json"));
    }
    // Editing JSON as form parameters is refused, with the reason.
    let edited = app
        .client
        .post(format!("{}/api/requests/{request_id}/replay", app.address))
        .json(&json!({"url": target, "params": [["A", "b"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status().as_u16(), 400);
    assert!(edited.text().await.unwrap().contains("replayed as received"));

    let export = app.get_text("/api/requests/export.ndjson?endpoint=event-streams").await;
    let exported: Vec<Value> = export.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let kinds: Vec<(i64, &str)> =
        exported.iter().map(|e| (e["id"].as_i64().unwrap(), e["kind"].as_str().unwrap())).collect();
    assert!(kinds.contains(&(request_id, "webhook")), "the request and its replay: {kinds:?}");
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let har = app.get_text(&format!("/api/requests/export.har?sid={WT}")).await;
    let har: Value = serde_json::from_str(&har).unwrap();
    assert_eq!(har["log"]["entries"].as_array().map(Vec::len), Some(6), "one per CloudEvent row");
    let (_, found) = app.get_json("/api/requests?q=NO00000000000000000000000000000003").await;
    assert!(!found["requests"].as_array().unwrap().is_empty(), "free text finds a CloudEvent id: {found}");
    server.stop(true).await;
    app.stop().await;
}

fn simulated(
    callbacks: CallbackUrls,
    seed: u64,
    sink: Option<EventStreamsSink>,
    faults: Faults,
) -> RunningSimulator {
    let traffic =
        DemoTraffic { tasks_per_minute: 10.0, arrivals_for_ms: 6 * 60_000, reservation_timeout: 30 };
    let options = simulator_options(seed, callbacks, traffic, faults);
    start_scenario(ScenarioOptions { event_streams: sink, ..options }).expect("simulator starts")
}

fn sink(app: &TestApp, also_webhooks: bool) -> EventStreamsSink {
    EventStreamsSink {
        url: format!("{}/webhooks/event-streams", app.address),
        batch_size: 10,
        also_webhooks,
        redelivery_rate: 0.2,
    }
}

fn task_statuses(app: &TestApp) -> BTreeMap<String, String> {
    app.query("SELECT task_sid, status FROM proj_tasks", |row| Ok((row.get(0)?, row.get(1)?)))
        .into_iter()
        .collect()
}

/// Each simulated event a fact once, and every task as the simulator left it.
fn assert_ground_truth(app: &TestApp, truth: &taskrouter_simulator::ground_truth::GroundTruth) {
    let emitted: u64 = truth.events_emitted.values().sum();
    let facts =
        app.count("SELECT COUNT(*) FROM events WHERE is_fact = 1 AND endpoint <> 'assignment'") as u64;
    assert_eq!(facts, emitted, "each event one fact, whichever path and however often it came");
    assert_eq!(task_statuses(app), truth.task_status);
}

#[tokio::test]
async fn the_simulators_event_streams_give_the_webhooks_projections_and_the_ground_truth() {
    // One run, its events both ways: event callbacks to one tracer, Event Streams to another
    // (assignment callbacks to neither, so both see exactly the same events).
    let webhooks = spawn_app().await;
    let streamed = spawn_app().await;
    let events_only =
        CallbackUrls { assignment: None, events: CallbackUrls::tracer(&webhooks.address).events };
    let sim = simulated(events_only, 5, Some(sink(&streamed, true)), Faults::default());
    sim.simulator.run_for(12 * 60_000).await;
    let truth = sim.simulator.ground_truth();
    sim.stop().await;
    let delivery = &truth.delivery;
    assert!(delivery.stream_batches_sent > 10 && delivery.stream_redeliveries > 0, "{delivery:?}");
    assert_eq!(delivery.stream_events_failed, 0);
    let emitted: u64 = truth.events_emitted.values().sum();
    assert_eq!(delivery.stream_events_delivered, emitted);
    webhooks.projections_caught_up().await;
    streamed.projections_caught_up().await;
    let reference = dump(&webhooks);
    assert!(reference.contains("timeout"), "the run has timeouts to explain");
    assert_eq!(
        first_difference(&reference, &dump(&streamed)),
        None,
        "Event Streams gives the webhooks' projections"
    );
    assert_ground_truth(&streamed, &truth);

    // Event Streams alone, assignment callbacks answered as usual.
    let alone = spawn_app().await;
    let sim =
        simulated(CallbackUrls::tracer(&alone.address), 6, Some(sink(&alone, false)), Faults::default());
    sim.simulator.run_for(12 * 60_000).await;
    let alone_truth = sim.simulator.ground_truth();
    sim.stop().await;
    assert!(alone_truth.delivery.events_delivered.is_empty(), "no event callbacks");
    alone.projections_caught_up().await;
    assert_ground_truth(&alone, &alone_truth);

    // Both paths into one tracer, half the event callbacks dropped: Event Streams fills them in
    // and every event delivered twice is stored as one fact.
    let both = spawn_app().await;
    let half_dropped = Faults { drop_rate: 0.5, ..Faults::default() };
    let sim = simulated(CallbackUrls::tracer(&both.address), 7, Some(sink(&both, true)), half_dropped);
    sim.simulator.run_for(12 * 60_000).await;
    let both_truth = sim.simulator.ground_truth();
    sim.stop().await;
    assert!(!both_truth.delivery.events_dropped.is_empty(), "some event callbacks were dropped");
    both.projections_caught_up().await;
    assert_ground_truth(&both, &both_truth);
    assert!(
        both.count("SELECT COUNT(*) FROM events WHERE endpoint = 'cloudevent' AND duplicate_of IS NOT NULL")
            > 0
    );
    for app in [&webhooks, &streamed, &alone, &both] {
        app.stop().await;
    }
}

#[tokio::test]
async fn with_forward_to_the_app_gets_the_body_re_signed_and_its_answer_is_event_streams() {
    let (base, captured, status, server) = capturing_server().await;
    let target = base.clone();
    let app = spawn_app_with(move |args| args.forward_to = Some(target)).await;
    let body = batch(&lifecycle()[..3]);
    let answered = post_stream(&app, &body).await;
    assert_eq!(answered.status().as_u16(), 200);
    assert_eq!(answered.text().await.unwrap(), "{\"app\":true}", "the app's answer");
    {
        let captured = captured.lock().unwrap();
        let (url, headers, sent) = &captured[0];
        assert_eq!(sent, &body);
        assert!(url.starts_with(&format!("{base}/webhooks/event-streams?bodySHA256=")), "{url}");
        let header = headers.iter().find(|(n, _)| n == "x-twilio-signature").map(|(_, v)| v.as_str());
        let verdict = signature::verify(
            AUTH_TOKEN,
            &signature::SignedRequest { url, params: &[], body: sent, signature: header },
            &[],
        );
        assert_eq!(verdict, signature::Verdict::Valid, "re-signed for the app's URL");
    }
    // The app fails: Event Streams is told so and will deliver again; what came is still kept.
    status.store(503, Ordering::Relaxed);
    let failed = post_stream(&app, &batch(&lifecycle()[3..])).await;
    assert_eq!(failed.status().as_u16(), 503);
    app.projections_caught_up().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE is_fact = 1"), 6);
    let statuses: Vec<(i64, bool)> = app.query(
        "SELECT response_status, upstream IS NOT NULL FROM events WHERE endpoint = 'event-streams' ORDER BY id",
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    assert_eq!(statuses, vec![(200, true), (503, true)]);
    server.stop(true).await;
    app.stop().await;
}
