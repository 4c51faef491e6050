//! `POST /webhooks/assignment`, `POST /webhooks/events` and `POST /webhooks/event-streams`:
//! read the request exactly as it came (bounded), hand it to [`crate::ingest`], answer what
//! ingest decided.

use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::AppState;
use crate::ingest::{IngestOutcome, ReceivedRequest};
use taskrouter_protocol::cloud_event::EVENT_STREAMS_ENDPOINT;
use taskrouter_protocol::{Endpoint, FormParams};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/assignment", web::post().to(assignment))
        .route("/webhooks/events", web::post().to(events))
        .route("/webhooks/event-streams", web::post().to(event_streams));
}

async fn assignment(request: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    receive(Endpoint::Assignment, request, payload, state).await
}

async fn events(request: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    receive(Endpoint::Events, request, payload, state).await
}

async fn event_streams(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let received = read_request(&request, payload, &state).await;
    let how = Received::of(&received);
    let outcome = state.ingest.receive_event_streams(received).await;
    answer(EVENT_STREAMS_ENDPOINT, outcome, how, &state)
}

/// How long a client may take to send a webhook body once its head has arrived. TaskRouter sends
/// a few kilobytes at once; a slower client is stalling or trickling on purpose.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Headers whose values are never stored.
const REDACTED_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

async fn receive(
    endpoint: Endpoint,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let received = read_request(&request, payload, &state).await;
    let how = Received::of(&received);
    // The configured instruction for this callback's queue/workflow (an in-memory lookup on
    // the parameters ingest already parsed); it is stored with the row as the answer given.
    let instructions = &state.instructions;
    let answer_for = |params: &FormParams| {
        instructions.answer_for(params.non_empty("TaskQueueSid"), params.non_empty("WorkflowSid"))
    };
    let outcome = state.ingest.receive(endpoint, received, &answer_for).await;
    answer(endpoint.as_str(), outcome, how, &state)
}

/// What the answer needs to know of how the request was received.
#[derive(Clone, Copy)]
struct Received {
    arrived: Instant,
    /// The body was not read to its end: the connection cannot carry another request.
    incomplete: bool,
}

impl Received {
    fn of(request: &ReceivedRequest) -> Self {
        Self { arrived: request.arrived, incomplete: request.body_truncated || request.read_error.is_some() }
    }
}

/// The request as it came: its body read up to the limit and the deadline, its headers with
/// credentials redacted.
async fn read_request(request: &HttpRequest, mut payload: web::Payload, state: &AppState) -> ReceivedRequest {
    let arrived = Instant::now();
    let arrival_ms = chrono::Utc::now().timestamp_millis();
    let limit = state.ingest.config().body_limit;
    let declared_length =
        request.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let mut body = Vec::with_capacity(declared_length.unwrap_or(2048).min(limit));
    let mut truncated = false;
    let mut read_error = None;
    // A client that stops sending (or trickles) its body must not hold the request forever:
    // what arrived by the deadline is recorded with the reason, and the client told why.
    let deadline = tokio::time::Instant::now() + BODY_DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(Ok(bytes))) => {
                let room = limit - body.len();
                if bytes.len() > room {
                    body.extend_from_slice(&bytes[..room]);
                    truncated = true;
                    // Stop reading: what follows is not stored, and the connection is closed.
                    break;
                }
                body.extend_from_slice(&bytes);
            }
            Ok(Some(Err(error))) => {
                read_error = Some(error.to_string());
                break;
            }
            Ok(None) => break,
            Err(_elapsed) => {
                read_error = Some(format!(
                    "the body did not arrive within {} s ({} bytes received{})",
                    BODY_DEADLINE.as_secs(),
                    body.len(),
                    declared_length.map(|n| format!(" of the {n} declared")).unwrap_or_default()
                ));
                break;
            }
        }
    }
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = if REDACTED_HEADERS.contains(&name.as_str()) {
                "[redacted]".to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_string(), value)
        })
        .collect();
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    ReceivedRequest {
        method: request.method().to_string(),
        path_and_query,
        headers,
        body,
        body_truncated: truncated,
        read_error,
        remote_addr: request.peer_addr().map(|a| a.to_string()),
        claimed_base_urls: claimed_base_urls(request),
        arrived,
        arrival_ms,
    }
}

/// The HTTP answer to what ingest decided; `incomplete` when the body was not read to its end.
fn answer(endpoint: &str, outcome: IngestOutcome, received: Received, state: &AppState) -> HttpResponse {
    let Received { arrived, incomplete } = received;
    state.metrics.count_request(endpoint, outcome.verdict, outcome.status);
    state.metrics.ingest_latency.observe(arrived.elapsed().as_secs_f64());
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if !outcome.content_type.is_empty() {
        response.content_type(outcome.content_type.as_str());
    }
    if outcome.status == 503 {
        response.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
    }
    if incomplete {
        // The rest of the body may still be on its way: the connection cannot carry another request.
        response.force_close();
    }
    if outcome.status == 204 || outcome.status == 304 {
        response.finish()
    } else {
        response.body(outcome.body)
    }
}

/// The base URLs this request claims to have been sent to: what a proxy forwarded
/// (`X-Forwarded-Proto`/`-Host`), then the Host header as seen directly.
fn claimed_base_urls(request: &HttpRequest) -> Vec<String> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut urls = Vec::new();
    if let Some(host) = header("x-forwarded-host") {
        let scheme = header("x-forwarded-proto").unwrap_or_else(|| "https".to_string());
        urls.push(format!("{scheme}://{host}"));
    }
    let info = request.connection_info();
    urls.push(format!("{}://{}", info.scheme(), info.host()));
    urls.dedup();
    urls
}
