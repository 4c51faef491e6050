//! Forwarding to the user's app and replaying recorded requests, against a local test app
//! that checks signatures with its own URL, as an app using Twilio's helper library would.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::fixtures::{self, event_sid};
use crate::helpers::{spawn_app_with, AUTH_TOKEN};
use taskrouter_protocol::signature::{self, SignedRequest, Verdict};
use taskrouter_protocol::webhook::parse_form;

/// One request the test app received: path and query, whether its signature was valid for
/// the app's own URL, and its parameters.
type ReceivedRequest = (String, bool, Vec<(String, String)>);

#[derive(Default)]
struct Received {
    requests: Vec<ReceivedRequest>,
}

struct TestAppServer {
    base: String,
    received: Arc<Mutex<Received>>,
    /// (status, content type, body) the app answers with.
    answer: Arc<Mutex<(u16, String, String)>>,
}

async fn start_test_app() -> TestAppServer {
    let received = Arc::new(Mutex::new(Received::default()));
    let answer = Arc::new(Mutex::new((
        200,
        "application/json".to_string(),
        r#"{"instruction":"accept"}"#.to_string(),
    )));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let (r, a, b) = (received.clone(), answer.clone(), base.clone());
    let server = HttpServer::new(move || {
        let (r, a, b) = (r.clone(), a.clone(), b.clone());
        App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
            let (r, a, b) = (r.clone(), a.clone(), b.clone());
            async move {
                let params = parse_form(&body).map(|p| p.0).unwrap_or_default();
                let url = format!("{b}{}", request.uri());
                let header = request.headers().get("X-Twilio-Signature").and_then(|v| v.to_str().ok());
                let verdict = signature::verify(
                    AUTH_TOKEN,
                    &SignedRequest { url: &url, params: &params, body: &body, signature: header },
                    &[],
                );
                r.lock().unwrap().requests.push((
                    request.uri().to_string(),
                    verdict == Verdict::Valid,
                    params,
                ));
                let (status, content_type, answer) = a.lock().unwrap().clone();
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                    .content_type(content_type)
                    .body(answer)
            }
        }))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(server);
    TestAppServer { base, received, answer }
}

#[tokio::test]
async fn forwarded_webhooks_are_resigned_recorded_and_answered_with_the_apps_answer() {
    let test_app = start_test_app().await;
    let target = test_app.base.clone();
    let app = spawn_app_with(move |args| args.forward_to = Some(target)).await;

    let response =
        app.post_signed("/webhooks/assignment?source=test", &fixtures::assignment_callback()).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"instruction":"accept"}"#, "Twilio gets the app's answer");
    {
        let received = test_app.received.lock().unwrap();
        let (path, signature_valid, params) = &received.requests[0];
        assert_eq!(path, "/webhooks/assignment?source=test", "same path and query");
        assert!(signature_valid, "re-signed for the app's own URL");
        assert_eq!(params, &fixtures::assignment_callback(), "same body");
    }
    let (_, recorded) = app.get_json("/api/requests/1").await;
    assert_eq!(recorded["upstream"]["status"], 200);
    assert_eq!(recorded["upstream"]["check"]["instruction"], "accept");
    assert_eq!(recorded["upstream"]["resigned"], true);
    assert_eq!(recorded["is_fact"], true, "a forwarded callback is still a fact");

    // A broken instruction is flagged with the warning TaskRouter would raise.
    *test_app.answer.lock().unwrap() =
        (200, "application/json".into(), r#""{\"instruction\":\"accept\"}""#.into());
    let mut second = fixtures::assignment_callback();
    second.iter_mut().find(|(n, _)| n == "TaskAge").unwrap().1 = "9".into();
    app.post_signed("/webhooks/assignment", &second).await;
    let (_, flagged) = app.get_json("/api/requests/2").await;
    assert_eq!(flagged["upstream"]["check"]["instruction"], "none");
    assert_eq!(flagged["upstream"]["check"]["findings"][0]["twilio_code"], 40001);
    let (_, page) = (
        200,
        app.client.get(format!("{}/requests/2", app.address)).send().await.unwrap().text().await.unwrap(),
    );
    assert!(page.contains("Twilio 40001"), "the page shows the warning");

    // A forged request is refused by the tracer and never relayed.
    app.post_form("/webhooks/events", &fixtures::worker_activity_update(&event_sid(1), 1), Some("Zm9yZ2Vk"))
        .await;
    assert_eq!(test_app.received.lock().unwrap().requests.len(), 2);
}

#[tokio::test]
async fn when_the_app_is_down_the_request_is_still_recorded_and_the_failure_shown() {
    let dead = crate::helpers::free_port();
    let app = spawn_app_with(move |args| args.forward_to = Some(format!("http://127.0.0.1:{dead}"))).await;
    let event = fixtures::task_event("task.created", &event_sid(2), 1_700_000_000_000, "Task created");
    let response = app.post_signed("/webhooks/events", &event).await;
    assert_eq!(response.status().as_u16(), 502);
    let (_, recorded) = app.get_json("/api/requests/1").await;
    assert_eq!(recorded["response_status"], 502);
    assert!(recorded["upstream"]["error"].as_str().unwrap().contains("could not connect"), "{recorded}");
    assert_eq!(recorded["is_fact"], true, "TaskRouter's fact is kept even though the app was down");
}

#[tokio::test]
async fn a_replay_is_resigned_for_its_target_recorded_and_linked() {
    let test_app = start_test_app().await;
    let app = spawn_app_with(|_| {}).await;
    let event = fixtures::reservation_event("reservation.created", &event_sid(3), 1_700_000_000_000);
    app.post_signed("/webhooks/events", &event).await;

    // Unchanged, to an explicit URL.
    let url = format!("{}/hooks/taskrouter", test_app.base);
    let replayed: serde_json::Value = app
        .client
        .post(format!("{}/api/requests/1/replay", app.address))
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["answer"]["status"], 200);
    assert_eq!(replayed["replay_id"], 2);
    // With an edited parameter: still re-signed, so the app's validator passes.
    let mut edited = event.clone();
    edited.iter_mut().find(|(n, _)| n == "TaskPriority").unwrap().1 = "5".into();
    let edited_json: Vec<[String; 2]> = edited.iter().map(|(n, v)| [n.clone(), v.clone()]).collect();
    let response = app
        .client
        .post(format!("{}/api/requests/1/replay", app.address))
        .json(&serde_json::json!({ "url": url, "params": edited_json }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    {
        let received = test_app.received.lock().unwrap();
        assert_eq!(received.requests.len(), 2);
        assert!(received.requests.iter().all(|(_, valid, _)| *valid), "both replays carry a valid signature");
        assert_eq!(received.requests[1].2, edited);
    }
    let (_, replays) = app.get_json("/api/requests?q=hooks%2Ftaskrouter").await;
    assert_eq!(replays["requests"].as_array().unwrap().len(), 2);
    let (_, record) = app.get_json("/api/requests/3").await;
    assert_eq!(record["kind"], "replay");
    assert_eq!(record["related_to"], 1);
    assert_eq!(record["is_fact"], false, "a replay never counts as a fact");
    let page =
        app.client.get(format!("{}/requests/1", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains(r#"<a href="/requests/2">#2</a>"#) && page.contains(r#"<a href="/requests/3">#3</a>"#)
    );

    // The page's form works with the page's CSRF token and is refused without it.
    let mut session = crate::web_session::WebSession::new(&app);
    let (refused, _, _) =
        session.post("/requests/1/replay", &[("url", url.as_str()), ("mode", "unchanged")]).await;
    assert_eq!(refused, 403);
    let token = session.csrf("/requests/1").await;
    let (status, location, _) = session
        .post(
            "/requests/1/replay",
            &[("url", url.as_str()), ("mode", "unchanged"), ("params", ""), ("csrf", &token)],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/requests/4"));
}
