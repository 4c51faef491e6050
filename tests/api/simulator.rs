//! The embedded TaskRouter simulator: its REST API on a real port, its callbacks against a
//! recording sink, and a seeded end-to-end run against the real tracer whose log must match the
//! simulator's ground truth exactly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use taskrouter_simulator::delivery::{DeliveryConfig, Faults};
use taskrouter_simulator::runtime::{ClockMode, Simulator, SimulatorConfig};
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
use taskrouter_simulator::Engine;
use taskrouter_simulator::RunningSimulator;

use crate::helpers::{spawn_app, start_simulator, AUTH_TOKEN};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

fn quiet_simulator(
    callbacks: CallbackUrls,
    traffic_per_minute: f64,
    faults: Faults,
    seed: u64,
) -> RunningSimulator {
    let traffic = DemoTraffic {
        tasks_per_minute: traffic_per_minute,
        arrivals_for_ms: 5 * 60_000,
        reservation_timeout: 30,
    };
    start_simulator(seed, callbacks, traffic, faults, None)
}

struct Rest {
    base: String,
    workspace: String,
    client: reqwest::Client,
}

impl Rest {
    fn new(sim: &RunningSimulator) -> Self {
        Self {
            base: sim.rest_base_url().to_string(),
            workspace: sim.sids.workspace.clone(),
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/Workspaces/{}{path}", self.base, self.workspace)
    }

    async fn get(&self, url: &str) -> (u16, Value) {
        let response = self.client.get(url).basic_auth(ACCOUNT, Some(AUTH_TOKEN)).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response =
            self.client.post(url).basic_auth(ACCOUNT, Some(AUTH_TOKEN)).form(form).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn rest_api_speaks_twilio() {
    let sim = quiet_simulator(CallbackUrls { assignment: None, events: None }, 0.0, Faults::default(), 1);
    let rest = Rest::new(&sim);

    // Auth: wrong token and no credentials are both 401 with Twilio's error shape.
    let response =
        rest.client.get(rest.url("/Tasks")).basic_auth(ACCOUNT, Some("wrong")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 20003);
    assert_eq!(rest.client.get(rest.url("/Tasks")).send().await.unwrap().status().as_u16(), 401);

    // Workspace, activities, workflows, queues, workers.
    let (status, workspace) = rest.get(&rest.url("")).await;
    assert_eq!(status, 200);
    assert_eq!(workspace["sid"], sim.sids.workspace.as_str());
    assert_eq!(workspace["timeout_activity_name"], "Offline");
    let (_, list) = rest.get(&format!("{}/v1/Workspaces", rest.base)).await;
    assert_eq!(list["meta"]["key"], "workspaces");
    let (_, activities) = rest.get(&rest.url("/Activities")).await;
    assert_eq!(activities["activities"].as_array().unwrap().len(), 4);
    let (status, workflow) = rest.get(&rest.url(&format!("/Workflows/{}", sim.sids.workflow))).await;
    assert_eq!(status, 200);
    assert_eq!(workflow["task_reservation_timeout"], 30);
    let (_, queues) = rest.get(&rest.url("/TaskQueues")).await;
    assert!(queues["task_queues"].as_array().unwrap().iter().any(|q| q["max_reserved_workers"] == 2));

    // Create (201), fetch (200), unknown (404 / 20404).
    let (status, task) = rest
        .post(
            &rest.url("/Tasks"),
            &[("Attributes", r#"{"type":"billing","selected_language":"en"}"#), ("Priority", "5")],
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let task_sid = task["sid"].as_str().unwrap().to_string();
    assert_eq!(task_sid.len(), 34);
    assert_eq!(task["assignment_status"], "reserved");
    assert_eq!(task["task_queue_friendly_name"], "Support");
    assert!(task["date_created"].as_str().unwrap().ends_with('Z'));
    let (status, fetched) = rest.get(&rest.url(&format!("/Tasks/{task_sid}"))).await;
    assert_eq!((status, fetched["priority"].clone()), (200, Value::from(5)));
    let (status, missing) = rest.get(&rest.url("/Tasks/WT00000000000000000000000000000000")).await;
    assert_eq!(status, 404);
    assert_eq!(missing["code"], 20404);
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["more_info"], "https://www.twilio.com/docs/errors/20404");

    // Reservations: list pending, accept (200), accept again (400, not pending).
    let (_, reservations) =
        rest.get(&rest.url(&format!("/Tasks/{task_sid}/Reservations?ReservationStatus=pending"))).await;
    let reservation = reservations["reservations"][0].clone();
    let reservation_url = reservation["url"].as_str().unwrap().to_string();
    assert!(reservation_url.starts_with(&rest.base));
    let (status, accepted) = rest.post(&reservation_url, &[("ReservationStatus", "accepted")]).await;
    assert_eq!((status, accepted["reservation_status"].as_str()), (200, Some("accepted")));
    let (status, error) = rest.post(&reservation_url, &[("ReservationStatus", "accepted")]).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        format!(
            "Reservation {} not in expected state [pending] and cannot be updated to [accepted]",
            reservation["sid"].as_str().unwrap()
        )
    );
    let worker_sid = reservation["worker_sid"].as_str().unwrap();
    let (status, by_worker) =
        rest.get(&rest.url(&format!("/Workers/{worker_sid}/Reservations?ReservationStatus=accepted"))).await;
    assert_eq!(status, 200);
    assert_eq!(by_worker["reservations"][0]["sid"], reservation["sid"]);
    let (_, worker) = rest.get(&rest.url(&format!("/Workers/{worker_sid}"))).await;
    assert_eq!(worker["activity_name"], "Busy");
    assert_eq!(worker["available"], false);

    // Complete it through the Task resource; the task list filters by status.
    let (status, _) = rest
        .post(
            &rest.url(&format!("/Tasks/{task_sid}")),
            &[("AssignmentStatus", "completed"), ("Reason", "done")],
        )
        .await;
    assert_eq!(status, 200);
    let (_, completed) = rest.get(&rest.url("/Tasks?AssignmentStatus=completed")).await;
    assert_eq!(completed["tasks"].as_array().unwrap().len(), 1);
    let (status, _) =
        rest.post(&rest.url(&format!("/Tasks/{task_sid}")), &[("AssignmentStatus", "canceled")]).await;
    assert_eq!(status, 400, "a completed task cannot be canceled");

    // Workers: update the activity.
    let offline = sim.sids.offline.clone();
    let (status, moved) =
        rest.post(&rest.url(&format!("/Workers/{worker_sid}")), &[("ActivitySid", &offline)]).await;
    assert_eq!((status, moved["activity_sid"].as_str()), (200, Some(offline.as_str())));

    // Paging: 7 tasks in pages of 3, followed through next_page_url.
    for _ in 0..6 {
        rest.post(&rest.url("/Tasks"), &[("Attributes", r#"{"type":"sales"}"#)]).await;
    }
    let mut next = Some(rest.url("/Tasks?PageSize=3"));
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(url) = next {
        let (status, page) = rest.get(&url).await;
        assert_eq!(status, 200, "{url}: {page}");
        assert_eq!(page["meta"]["key"], "tasks");
        assert_eq!(page["meta"]["page_size"], 3);
        seen.extend(page["tasks"].as_array().unwrap().iter().map(|t| t["sid"].as_str().unwrap().to_string()));
        next = page["meta"]["next_page_url"].as_str().map(str::to_string);
        pages += 1;
    }
    assert_eq!(pages, 3);
    seen.dedup();
    assert_eq!(seen.len(), 7);

    // Events: filtered by task and type, with snake_case event_data.
    let (_, events) = rest.get(&rest.url(&format!("/Events?TaskSid={task_sid}"))).await;
    let types: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert!(types.contains(&"task.created") && types.contains(&"task.completed"), "{types:?}");
    let (_, created) = rest.get(&rest.url("/Events?EventType=task.created&PageSize=1")).await;
    assert_eq!(created["events"][0]["event_data"]["task_assignment_status"], "pending");
    assert!(created["meta"]["next_page_url"].is_string());

    // Ground truth: a plain JSON endpoint.
    let truth: Value = rest
        .client
        .get(format!("{}/sim/ground-truth", rest.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(truth["total"]["tasks_created"], 7);
    assert_eq!(truth["total"]["tasks_completed"], 1);
    assert_eq!(truth["task_status"][&task_sid], "completed");
    sim.stop().await;
}

/// One request as the sink saw it: path, form parameters, headers (lowercase names).
type RecordedRequest = (String, Vec<(String, String)>, BTreeMap<String, String>);

/// What a recording sink received.
#[derive(Default)]
struct Received {
    requests: Vec<RecordedRequest>,
}

/// A callback endpoint that answers assignments with `accept` and fails each event's first delivery.
async fn recording_sink() -> (String, Arc<Mutex<Received>>, actix_web::dev::ServerHandle) {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = web::Data::new(received.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).default_service(web::to(
            |request: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<Received>>>| async move {
                let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
                let headers = request
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let mut received = state.lock().unwrap();
                let sid = params.iter().find(|(n, _)| n == "Sid").map(|(_, v)| v.clone());
                let first_time = sid.as_ref().is_some_and(|sid| {
                    !received.requests.iter().any(|(_, p, _)| p.iter().any(|(n, v)| n == "Sid" && v == sid))
                });
                received.requests.push((request.path().to_string(), params, headers));
                if request.path().ends_with("/assignment") {
                    HttpResponse::Ok().content_type("application/json").body(r#"{"instruction":"accept"}"#)
                } else if first_time {
                    HttpResponse::ServiceUnavailable().finish()
                } else {
                    HttpResponse::NoContent().finish()
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
    (base, received, handle)
}

#[tokio::test]
async fn callbacks_are_signed_form_posts_retried_once_and_assignment_answers_are_honoured() {
    let (base, received, sink) = recording_sink().await;
    let mut engine = Engine::new(5, 1_700_000_000_000, Some(ACCOUNT.into()));
    let ws = engine.add_workspace("Sink", Some(format!("{base}/events")));
    let available = engine.add_activity(&ws, "Available", true);
    let busy = engine.add_activity(&ws, "Busy", false);
    engine.add_worker(&ws, "ann", serde_json::json!({"skill": ["support"]}), &available);
    let queue = engine.add_queue(&ws, "Support", r#"skill has "support""#, 1, Some(busy));
    let workflow = engine.add_workflow(&ws, "Main", Some(format!("{base}/assignment")), 120, vec![], &queue);
    let task = engine.create_task(&ws, &workflow, r#"{"type":"support"}"#, 0, None).unwrap();
    let simulator = Simulator::new(
        engine,
        SimulatorConfig {
            delivery: DeliveryConfig::new(AUTH_TOKEN.into(), Faults::default(), 5),
            clock: ClockMode::AsFastAsPossible,
        },
    );
    simulator.deliver_outbox().await;

    let truth = simulator.ground_truth();
    assert_eq!(truth.task_status[&task], "assigned", "the accept instruction was applied");
    assert_eq!(truth.total.reservations_accepted, 1);
    assert_eq!(truth.delivery.instructions_accept, 1);
    assert_eq!(truth.delivery.events_delivered, truth.events_emitted, "every event got through on its retry");
    let events_emitted: u64 = truth.events_emitted.values().sum();
    assert_eq!(truth.delivery.retries, events_emitted);

    sink.stop(false).await;
    let received = received.lock().unwrap();
    let events: Vec<_> = received.requests.iter().filter(|(path, _, _)| path == "/events").collect();
    assert_eq!(events.len() as u64, 2 * events_emitted);
    for pair in events.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "a retry resends the same body");
        assert_eq!(pair[0].2["i-twilio-idempotency-token"], pair[1].2["i-twilio-idempotency-token"]);
    }
    for (path, params, headers) in &received.requests {
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        let url = format!("{base}{path}");
        assert_eq!(
            headers["x-twilio-signature"],
            taskrouter_protocol::signature::compute(AUTH_TOKEN, &url, params)
        );
        assert!(headers["i-twilio-idempotency-token"].starts_with(ACCOUNT));
    }
    let event_types: Vec<&str> = events
        .iter()
        .step_by(2)
        .map(|(_, p, _)| p.iter().find(|(n, _)| n == "EventType").unwrap().1.as_str())
        .collect();
    assert_eq!(
        event_types,
        [
            "task.created",
            "task-queue.entered",
            "workflow.entered",
            "workflow.target-matched",
            "reservation.created",
            "reservation.accepted",
            "worker.activity.update"
        ]
    );
}

fn fact_counts(app: &crate::helpers::TestApp) -> BTreeMap<String, u64> {
    app.query("SELECT event_type, COUNT(*) FROM events WHERE is_fact = 1 GROUP BY event_type", |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })
    .into_iter()
    .collect()
}

#[tokio::test]
async fn tracer_log_matches_the_ground_truth_exactly() {
    let app = spawn_app().await;
    let faults = Faults { duplicate_rate: 0.1, reorder_rate: 0.1, drop_rate: 0.0 };
    let sim = quiet_simulator(CallbackUrls::tracer(&app.address), 12.0, faults, 7);
    sim.simulator.run_for(15 * 60_000).await;
    let truth = sim.simulator.ground_truth();
    sim.stop().await;

    let total = &truth.total;
    for (what, n) in [
        ("timeouts", total.reservations_timed_out),
        ("rejections", total.reservations_rejected),
        ("rescinds", total.reservations_rescinded),
        ("completions", total.tasks_completed),
        ("duplicates", truth.delivery.duplicates_sent),
        ("reorderings", truth.delivery.reordered),
    ] {
        assert!(n > 0, "the seeded scenario has no {what}: {truth:?}");
    }
    assert!(truth.delivery.events_failed.is_empty() && truth.delivery.events_dropped.is_empty());

    let facts = fact_counts(&app);
    let fact = |event_type: &str| facts.get(event_type).copied().unwrap_or(0);
    // Every event type, exactly as often as it happened.
    let mut expected = truth.events_emitted.clone();
    expected.insert("assignment".into(), total.reservations_created);
    assert_eq!(facts, expected);
    // And the lifecycle counters, one by one.
    assert_eq!(fact("task.created"), total.tasks_created);
    assert_eq!(fact("task.canceled"), total.tasks_canceled);
    assert_eq!(fact("task.completed"), total.tasks_completed);
    assert_eq!(fact("reservation.created"), total.reservations_created);
    assert_eq!(fact("reservation.accepted"), total.reservations_accepted);
    assert_eq!(fact("reservation.rejected"), total.reservations_rejected);
    assert_eq!(fact("reservation.timeout"), total.reservations_timed_out);
    assert_eq!(fact("reservation.canceled"), total.reservations_canceled);
    assert_eq!(fact("reservation.rescinded"), total.reservations_rescinded);

    assert_eq!(app.count("SELECT COUNT(*) FROM events WHERE signature_verdict <> 'valid'"), 0);
    let duplicates = app.count("SELECT COUNT(*) FROM events WHERE duplicate_of IS NOT NULL AND is_fact = 0");
    assert_eq!(duplicates as u64, truth.delivery.duplicates_sent);
    let rows = app.count("SELECT COUNT(*) FROM events") as u64;
    let emitted: u64 = truth.events_emitted.values().sum();
    assert_eq!(rows, emitted + total.reservations_created + truth.delivery.duplicates_sent);

    // Every task's final state, as the projections reconstructed it from shuffled, duplicated
    // deliveries, equals what the simulator did.
    let projected: BTreeMap<String, String> = app
        .query("SELECT task_sid, status FROM proj_tasks", |row| Ok((row.get(0)?, row.get(1)?)))
        .into_iter()
        .collect();
    assert_eq!(projected.len(), truth.task_status.len(), "one projected task per simulated task");
    let differing: Vec<_> = truth
        .task_status
        .iter()
        .filter(|(sid, status)| projected.get(*sid) != Some(*status))
        .map(|(sid, status)| (sid.clone(), status.clone(), projected.get(sid).cloned()))
        .collect();
    assert!(differing.is_empty(), "final states differ (sid, simulator, tracer): {differing:?}");
    let projected_reservations = app.count("SELECT COUNT(*) FROM proj_reservations") as u64;
    assert_eq!(projected_reservations, total.reservations_created);
}

#[tokio::test]
async fn dropped_callbacks_are_missing_from_the_log_and_accounted_for() {
    let app = spawn_app().await;
    let faults = Faults { duplicate_rate: 0.0, reorder_rate: 0.0, drop_rate: 0.1 };
    let sim = quiet_simulator(CallbackUrls::tracer(&app.address), 10.0, faults, 11);
    sim.simulator.run_for(4 * 60_000).await;
    let truth = sim.simulator.ground_truth();
    sim.stop().await;
    let dropped: u64 = truth.delivery.events_dropped.values().sum();
    assert!(dropped > 0, "{truth:?}");
    let mut facts = fact_counts(&app);
    assert_eq!(facts.remove("assignment"), Some(truth.total.reservations_created));
    assert_eq!(facts, truth.delivery.events_delivered);
    assert_eq!(truth.undelivered(), truth.delivery.events_dropped);
}

#[tokio::test]
async fn a_slow_or_failing_assignment_callback_leaves_the_reservation_pending() {
    // Assignment answers: too slow, then 500, then a reject (no activity), then `{}` (defer).
    let calls = Arc::new(Mutex::new(0u32));
    let state = web::Data::new(calls.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).default_service(web::to(
            |request: HttpRequest, state: web::Data<Arc<Mutex<u32>>>| async move {
                if !request.path().ends_with("/assignment") {
                    return HttpResponse::NoContent().finish();
                }
                let call = {
                    let mut calls = state.lock().unwrap();
                    *calls += 1;
                    *calls
                };
                match call {
                    1 => {
                        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(r#"{"instruction":"accept"}"#)
                    }
                    2 => HttpResponse::InternalServerError().body(r#"{"instruction":"accept"}"#),
                    3 => HttpResponse::Ok()
                        .content_type("application/json")
                        .body(r#"{"instruction":"reject"}"#),
                    _ => HttpResponse::Ok().content_type("application/json").body("{}"),
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

    let mut engine = Engine::new(8, 1_700_000_000_000, Some(ACCOUNT.into()));
    let ws = engine.add_workspace("Slow", Some(format!("{base}/events")));
    let available = engine.add_activity(&ws, "Available", true);
    for name in ["a", "b", "c"] {
        engine.add_worker(&ws, name, serde_json::json!({}), &available);
    }
    let queue = engine.add_queue(&ws, "All", "1==1", 1, None);
    let workflow = engine.add_workflow(&ws, "Main", Some(format!("{base}/assignment")), 120, vec![], &queue);
    let tasks: Vec<String> =
        (0..3).map(|_| engine.create_task(&ws, &workflow, "{}", 0, None).unwrap()).collect();
    let mut delivery = DeliveryConfig::new(AUTH_TOKEN.into(), Faults::default(), 8);
    delivery.assignment_timeout = std::time::Duration::from_millis(150);
    let simulator = Simulator::new(engine, SimulatorConfig { delivery, clock: ClockMode::AsFastAsPossible });
    simulator.deliver_outbox().await;
    handle.stop(false).await;

    let truth = simulator.ground_truth();
    assert_eq!(truth.delivery.assignment_callbacks_failed, 2, "{:?}", truth.delivery);
    assert_eq!(truth.delivery.instructions_reject, 1);
    assert_eq!(truth.delivery.instructions_deferred, 1);
    assert_eq!(truth.total.reservations_accepted, 0, "no instruction from a slow or failed answer");
    assert_eq!(truth.total.reservations_rejected, 1);
    let statuses: Vec<&str> = tasks.iter().map(|t| truth.task_status[t].as_str()).collect();
    // The rejected task was offered to the rejecter again (it kept an available activity).
    assert_eq!(statuses, ["reserved", "reserved", "reserved"]);
    assert_eq!(truth.total.reservations_created, 4);
}
