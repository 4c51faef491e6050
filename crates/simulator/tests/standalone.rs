//! The simulator used on its own, as another project's tests would: no tracer. A small app
//! (an actix server on a random loopback port) is the workspace's callback target; the
//! simulator runs hours of traffic in moments, and the test checks what the app received
//! against the simulator's ground truth, each callback's signature, and the REST API.

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use taskrouter_protocol::signature::{self, SignedRequest, Verdict};
use taskrouter_protocol::webhook::parse_form;
use taskrouter_protocol::{EventType, TaskStatus};
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::runtime::ClockMode;
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
use taskrouter_simulator::{rest, start_scenario, ScenarioOptions};

const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// What the app received: (path, event type, signature verdict).
#[derive(Default)]
struct Received(Mutex<Vec<(String, String, Verdict)>>);

async fn callback(request: HttpRequest, body: web::Bytes, received: web::Data<Received>) -> HttpResponse {
    let params = parse_form(&body).expect("the simulator sends form bodies");
    let url = format!("http://{}{}", request.connection_info().host(), request.uri());
    let verdict = signature::verify(
        AUTH_TOKEN,
        &SignedRequest {
            url: &url,
            params: params.pairs(),
            body: &body,
            signature: request.headers().get("X-Twilio-Signature").and_then(|v| v.to_str().ok()),
        },
        &[],
    );
    let event_type = params.non_empty("EventType").unwrap_or("assignment").to_string();
    received.0.lock().unwrap().push((request.path().to_string(), event_type, verdict));
    if request.path() == "/assignment" {
        HttpResponse::Ok().json(serde_json::json!({"instruction": "accept"}))
    } else {
        HttpResponse::NoContent().finish()
    }
}

#[actix_web::test]
async fn another_projects_app_gets_signed_callbacks_that_match_the_ground_truth() {
    let received = web::Data::new(Received::default());
    let app_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_url = format!("http://{}", app_listener.local_addr().unwrap());
    let app = HttpServer::new({
        let received = received.clone();
        move || App::new().app_data(received.clone()).default_service(web::post().to(callback))
    })
    .workers(1)
    .listen(app_listener)
    .unwrap()
    .run();
    let app_handle = app.handle();
    tokio::spawn(app);

    let (listener, rest_url) = rest::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let simulator = start_scenario(ScenarioOptions {
        seed: 7,
        account_sid: None,
        auth_token: AUTH_TOKEN.into(),
        callbacks: CallbackUrls {
            assignment: Some(format!("{app_url}/assignment")),
            events: Some(format!("{app_url}/events")),
        },
        traffic: DemoTraffic {
            tasks_per_minute: 30.0,
            arrivals_for_ms: 10 * 60_000,
            reservation_timeout: 30,
        },
        faults: Faults::default(),
        callback_timeouts: None,
        clock: ClockMode::AsFastAsPossible,
        listener,
        event_streams: None,
    })
    .unwrap();
    simulator.simulator.run_for(40 * 60_000).await;
    let truth = simulator.simulator.ground_truth();

    let received = received.0.lock().unwrap().clone();
    assert!(truth.total.tasks_created >= 100, "{:?}", truth.total);
    for (path, event_type, verdict) in &received {
        assert_eq!(*verdict, Verdict::Valid, "{path} {event_type}");
        if path == "/events" {
            assert!(EventType::parse(event_type).is_some(), "{event_type} is TaskRouter's");
        }
    }
    let count = |event: EventType| received.iter().filter(|(_, t, _)| t == event.as_str()).count() as u64;
    assert_eq!(count(EventType::TaskCreated), truth.total.tasks_created);
    assert_eq!(count(EventType::ReservationCreated), truth.total.reservations_created);
    assert_eq!(count(EventType::ReservationAccepted), truth.total.reservations_accepted);
    let assignments = received.iter().filter(|(path, _, _)| path == "/assignment").count() as u64;
    assert_eq!(assignments, truth.total.reservations_created, "one assignment callback per reservation");
    assert!(
        truth.task_status.values().all(|status| TaskStatus::parse(status).is_some()),
        "every status is one TaskRouter uses"
    );

    // The REST API serves the same workspace to any HTTP client.
    let tasks: serde_json::Value = reqwest::Client::new()
        .get(format!("{rest_url}/v1/Workspaces/{}/Tasks?PageSize=1", simulator.sids.workspace))
        .basic_auth(&simulator.account_sid, Some(AUTH_TOKEN))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(1), "{tasks}");
    assert_eq!(tasks["tasks"][0]["workspace_sid"], simulator.sids.workspace.as_str());

    simulator.stop().await;
    app_handle.stop(true).await;
}
