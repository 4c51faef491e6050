//! TaskRouter's REST API as the simulator serves it (`/v1/Workspaces/…`), plus
//! `GET /sim/ground-truth`. A client written against Twilio's API works unchanged when pointed
//! at [`RestServer::base_url`].
//!
//! HTTP Basic auth with the account SID and auth token; form-encoded requests; JSON responses
//! with Twilio's snake_case field names, `links`, `url` and `meta` paging. Errors are shaped
//! `{"code","message","more_info","status"}`: 20003 for bad credentials (401), 20404 for an
//! unknown SID (404), and 20001 (400) for a parameter or a transition the state forbids, e.g.
//! accepting a reservation that is no longer pending.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use serde_json::{json, Value};

use super::engine::{Engine, SimError, TaskUpdate};
use super::model::*;
use super::runtime::Simulator;

mod events;
mod json;
mod tasks;
mod workspaces;

use self::events::*;
use self::json::*;
use self::tasks::*;
use self::workspaces::*;

/// How long TaskRouter keeps events: 30 days.
const RETENTION_MS: i64 = 30 * 24 * 3_600_000;
/// Events older than 43,200 minutes have their task attributes redacted.
const REDACTION_AGE_MS: i64 = 43_200 * 60_000;

/// What the handlers share.
pub struct RestState {
    pub simulator: Arc<Simulator>,
    pub account_sid: String,
    pub auth_token: String,
    pub base_url: String,
    /// Workspaces and workflows whose updates are refused (`POST /sim/refuse-updates`), so
    /// tests can fail a change midway.
    pub refused_updates: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// A bound, running REST server.
pub struct RestServer {
    pub base_url: String,
    pub handle: ServerHandle,
}

impl RestServer {
    /// The base URL to give a Twilio client instead of `https://taskrouter.twilio.com`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// Binds the REST API's address before anything else starts, so its base URL can be handed to
/// a client (the tracer's `--taskrouter-base-url`) first.
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(listen: SocketAddr) -> std::io::Result<(TcpListener, String)> {
    let listener = TcpListener::bind(listen)?;
    let address = listener.local_addr()?;
    let host = if address.ip().is_unspecified() { "127.0.0.1".to_string() } else { address.ip().to_string() };
    Ok((listener, format!("http://{host}:{}", address.port())))
}

/// Serves the API on `listener` (from [`bind`]) on the current runtime.
///
/// # Errors
/// When the listener cannot be used.
pub fn start(
    simulator: Arc<Simulator>,
    listener: TcpListener,
    auth_token: &str,
) -> std::io::Result<RestServer> {
    let address = listener.local_addr()?;
    let host = if address.ip().is_unspecified() { "127.0.0.1".to_string() } else { address.ip().to_string() };
    let base_url = format!("http://{host}:{}", address.port());
    let account_sid = simulator.engine().account_sid.clone();
    let state = web::Data::new(RestState {
        simulator,
        account_sid,
        auth_token: auth_token.to_string(),
        base_url: base_url.clone(),
        refused_updates: std::sync::Mutex::new(std::collections::BTreeSet::new()),
    });
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(configure))
        .listen(listener)?
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(RestServer { base_url, handle })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    const WS: &str = "/v1/Workspaces/{workspace}";
    cfg.route("/sim/ground-truth", web::get().to(ground_truth))
        .route("/v1/Workspaces", web::get().to(list_workspaces))
        .route("/sim/refuse-updates", web::post().to(refuse_updates))
        .route(WS, web::get().to(fetch_workspace))
        .route(WS, web::post().to(update_workspace))
        .route(&format!("{WS}/Activities"), web::get().to(list_activities))
        .route(&format!("{WS}/Workers"), web::get().to(list_workers))
        .route(&format!("{WS}/Workers/{{sid}}"), web::get().to(fetch_worker))
        .route(&format!("{WS}/Workers/{{sid}}"), web::post().to(update_worker))
        .route(&format!("{WS}/Workers/{{worker}}/Reservations"), web::get().to(list_worker_reservations))
        .route(
            &format!("{WS}/Workers/{{worker}}/Reservations/{{sid}}"),
            web::get().to(fetch_worker_reservation),
        )
        .route(
            &format!("{WS}/Workers/{{worker}}/Reservations/{{sid}}"),
            web::post().to(update_worker_reservation),
        )
        .route(&format!("{WS}/TaskQueues"), web::get().to(list_queues))
        .route(&format!("{WS}/Workflows"), web::get().to(list_workflows))
        .route(&format!("{WS}/Workflows/{{sid}}"), web::get().to(fetch_workflow))
        .route(&format!("{WS}/Workflows/{{sid}}"), web::post().to(update_workflow))
        .route(&format!("{WS}/Tasks"), web::get().to(list_tasks))
        .route(&format!("{WS}/Tasks"), web::post().to(create_task))
        .route(&format!("{WS}/Tasks/{{sid}}"), web::get().to(fetch_task))
        .route(&format!("{WS}/Tasks/{{sid}}"), web::post().to(update_task))
        .route(&format!("{WS}/Tasks/{{task}}/Reservations"), web::get().to(list_reservations))
        .route(&format!("{WS}/Tasks/{{task}}/Reservations/{{sid}}"), web::get().to(fetch_reservation))
        .route(&format!("{WS}/Tasks/{{task}}/Reservations/{{sid}}"), web::post().to(update_reservation))
        .route(&format!("{WS}/Events"), web::get().to(list_events))
        .route(&format!("{WS}/Events/{{sid}}"), web::get().to(fetch_event))
        .default_service(web::to(|| async {
            error_response(&SimError {
                status: 404,
                code: 20404,
                message: "The requested resource was not found".into(),
            })
        }));
}

type Reply = Result<HttpResponse, ApiError>;

/// A [`SimError`] on its way out as a Twilio-shaped JSON error.
#[derive(Debug)]
pub struct ApiError(SimError);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        error_response(&self.0)
    }
}

fn error_response(error: &SimError) -> HttpResponse {
    let mut response =
        HttpResponse::build(StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST));
    if error.status == 401 {
        response.insert_header(("WWW-Authenticate", "Basic realm=\"Twilio API\""));
    }
    response.json(json!({
        "code": error.code,
        "message": error.message,
        "more_info": format!("https://www.twilio.com/docs/errors/{}", error.code),
        "status": error.status,
    }))
}

fn fail(error: SimError) -> ApiError {
    ApiError(error)
}

/// HTTP Basic with the account SID and auth token.
fn authorize(request: &HttpRequest, state: &RestState) -> Result<(), ApiError> {
    let credentials = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let expected = format!("{}:{}", state.account_sid, state.auth_token);
    match credentials {
        Some(given) if given == expected => Ok(()),
        _ => Err(fail(SimError { status: 401, code: 20003, message: "Authenticate".into() })),
    }
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn all<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// One page of `items` with Twilio's `meta`, keeping the request's filters in the page URLs.
fn paged(state: &RestState, request: &HttpRequest, key: &str, items: Vec<Value>) -> Reply {
    let total = items.len();
    paged_with(state, request, key, total, |start, take| items.into_iter().skip(start).take(take).collect())
}

/// A page of `total` items, rendering only the page's own (`page_of(start, count)`).
fn paged_with(
    state: &RestState,
    request: &HttpRequest,
    key: &str,
    total: usize,
    page_of: impl FnOnce(usize, usize) -> Vec<Value>,
) -> Reply {
    let query = pairs(request.query_string().as_bytes());
    let page_size: usize = match first(&query, "PageSize") {
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| fail(SimError::bad_request("PageSize must be between 1 and 1000")))?,
        None => 50,
    };
    let page: usize = first(&query, "PageToken")
        .and_then(|t| t.strip_prefix("PT"))
        .or_else(|| first(&query, "Page"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let filters: Vec<(String, String)> = query
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "PageSize" | "Page" | "PageToken"))
        .cloned()
        .collect();
    let page_url = |n: usize, token: bool| {
        let mut params = filters.clone();
        params.push(("PageSize".into(), page_size.to_string()));
        params.push(("Page".into(), n.to_string()));
        if token {
            params.push(("PageToken".into(), format!("PT{n}")));
        }
        format!("{}{}?{}", state.base_url, request.path(), taskrouter_protocol::webhook::encode_form(&params))
    };
    let start = page.saturating_mul(page_size);
    let has_next = total > start.saturating_add(page_size);
    let slice: Vec<Value> = if start < total { page_of(start, page_size) } else { Vec::new() };
    Ok(HttpResponse::Ok().json(json!({
        key: slice,
        "meta": {
            "page": page,
            "page_size": page_size,
            "first_page_url": page_url(0, false),
            "previous_page_url": if page > 0 { Value::String(page_url(page - 1, true)) } else { Value::Null },
            "next_page_url": if has_next { Value::String(page_url(page + 1, true)) } else { Value::Null },
            "url": page_url(page, page > 0),
            "key": key,
        }
    })))
}

// ---- JSON renderings ------------------------------------------------------------------------
