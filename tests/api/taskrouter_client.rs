//! The TaskRouter REST client against the simulator's API, and its retry rules against a
//! local fake that fails on purpose.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::scenario::CallbackUrls;
use taskrouter_tracer::taskrouter_client::{Credentials, NewTask, ReservationAnswer, TaskRouterClient};

use crate::helpers::{no_traffic, start_simulator, AUTH_TOKEN, SIM_ACCOUNT};

fn client(base: &str, token: &str) -> TaskRouterClient {
    TaskRouterClient::new(
        base,
        Credentials::AuthToken { account_sid: SIM_ACCOUNT.into(), auth_token: token.into() },
        Duration::from_secs(5),
    )
}

#[tokio::test]
async fn create_lookup_accept_and_the_errors_taskrouter_gives() {
    let sim = start_simulator(
        7,
        CallbackUrls { assignment: None, events: None },
        no_traffic(30),
        Faults::default(),
        None,
    );
    let workspace = sim.sids.workspace.clone();
    let api = client(sim.rest_base_url(), AUTH_TOKEN);

    let workflow = api.fetch_workflow(&workspace, &sim.sids.workflow).await.unwrap();
    assert_eq!(workflow.task_reservation_timeout, Some(30));
    let activities = api.list_activities(&workspace).await.unwrap();
    assert!(activities.iter().any(|a| !a.available), "an unavailable activity to reject into");

    let (created, exchange) = api
        .create_task(
            &workspace,
            &NewTask {
                workflow_sid: sim.sids.workflow.clone(),
                attributes: r#"{"selected_language":"es","type":"support"}"#.into(),
                priority: Some(3),
                timeout: Some(600),
            },
        )
        .await;
    let task = created.unwrap();
    assert_eq!(exchange.status, Some(201));
    assert!(exchange.form.iter().any(|(n, v)| n == "Priority" && v == "3"));
    let fetched = api.fetch_task(&workspace, &task.sid).await.unwrap();
    assert_eq!(fetched.priority, Some(3));

    let reservations = api.list_reservations(&workspace, &task.sid).await.unwrap();
    let pending =
        reservations.iter().find(|r| r.reservation_status == "pending").expect("a pending reservation");
    let (accepted, _) =
        api.answer_reservation(&workspace, &task.sid, &pending.sid, &ReservationAnswer::Accept).await;
    assert_eq!(accepted.unwrap().reservation_status, "accepted");

    // Accepting again: TaskRouter refuses, and the error says what happened in plain words.
    let (again, exchange) =
        api.answer_reservation(&workspace, &task.sid, &pending.sid, &ReservationAnswer::Accept).await;
    let error = again.unwrap_err();
    assert_eq!(exchange.status, Some(400));
    assert!(error.summary.contains("no longer pending"), "{}", error.summary);

    let missing = api.fetch_task(&workspace, "WT00000000000000000000000000000000").await.unwrap_err();
    assert_eq!((missing.status, missing.code), (Some(404), Some(20404)));
    let refused = client(sim.rest_base_url(), "wrong").fetch_task(&workspace, &task.sid).await.unwrap_err();
    assert_eq!(refused.status, Some(401));
    assert!(refused.summary.contains("credentials"));
    sim.stop().await;
}

#[tokio::test]
async fn reads_retry_with_backoff_and_writes_are_never_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new().default_service(web::to(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    HttpResponse::ServiceUnavailable().body("try later")
                } else if n == 1 {
                    HttpResponse::Ok().json(serde_json::json!({"sid": "WT1", "assignment_status": "pending"}))
                } else {
                    HttpResponse::InternalServerError().body("boom")
                }
            }
        }))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(server);
    let api = client(&base, AUTH_TOKEN);

    let task = api.fetch_task("WS1", "WT1").await.expect("the read succeeds on its second attempt");
    assert_eq!(task.assignment_status, "pending");
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let (answer, exchange) = api.answer_reservation("WS1", "WT1", "WR1", &ReservationAnswer::Accept).await;
    assert_eq!(answer.unwrap_err().status, Some(500));
    assert_eq!((exchange.attempts, hits.load(Ordering::SeqCst)), (1, 3), "a failed write is not sent again");
}
