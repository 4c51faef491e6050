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
        format!("{}{}?{}", state.base_url, request.path(), crate::domain::webhook::encode_form(&params))
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

fn ws_url(state: &RestState, workspace: &str) -> String {
    format!("{}/v1/Workspaces/{workspace}", state.base_url)
}

fn workspace_json(state: &RestState, engine: &Engine, w: &Workspace) -> Value {
    let url = ws_url(state, &w.sid);
    json!({
        "account_sid": engine.account_sid, "sid": w.sid, "friendly_name": w.friendly_name,
        "event_callback_url": w.event_callback_url, "events_filter": w.events_filter,
        "default_activity_sid": w.default_activity_sid, "default_activity_name": engine.activity_name(&w.default_activity_sid),
        "timeout_activity_sid": w.timeout_activity_sid, "timeout_activity_name": engine.activity_name(&w.timeout_activity_sid),
        "multi_task_enabled": false, "prioritize_queue_order": "FIFO",
        "date_created": iso(w.date_created_ms), "date_updated": iso(w.date_created_ms), "url": url,
        "links": {
            "activities": format!("{url}/Activities"), "workers": format!("{url}/Workers"),
            "task_queues": format!("{url}/TaskQueues"), "workflows": format!("{url}/Workflows"),
            "tasks": format!("{url}/Tasks"), "events": format!("{url}/Events"),
        },
    })
}

fn activity_json(state: &RestState, engine: &Engine, a: &Activity) -> Value {
    let url = format!("{}/Activities/{}", ws_url(state, &a.workspace_sid), a.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": a.workspace_sid, "sid": a.sid,
        "friendly_name": a.friendly_name, "available": a.available,
        "date_created": iso(a.date_created_ms), "date_updated": iso(a.date_created_ms), "url": url,
        "links": {"workspace": ws_url(state, &a.workspace_sid)},
    })
}

fn worker_json(state: &RestState, engine: &Engine, w: &Worker) -> Value {
    let url = format!("{}/Workers/{}", ws_url(state, &w.workspace_sid), w.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": w.workspace_sid, "sid": w.sid,
        "friendly_name": w.friendly_name, "attributes": w.attributes.to_string(),
        "activity_sid": w.activity_sid, "activity_name": engine.activity_name(&w.activity_sid),
        "available": engine.activities.get(&w.activity_sid).is_some_and(|a| a.available),
        "date_created": iso(w.date_created_ms), "date_updated": iso(w.date_updated_ms),
        "date_status_changed": iso(w.activity_changed_ms), "url": url,
        "links": {
            "reservations": format!("{url}/Reservations"), "channels": format!("{url}/Channels"),
            "activity": format!("{}/Activities/{}", ws_url(state, &w.workspace_sid), w.activity_sid),
            "workspace": ws_url(state, &w.workspace_sid),
        },
    })
}

fn queue_json(state: &RestState, engine: &Engine, q: &TaskQueue) -> Value {
    let url = format!("{}/TaskQueues/{}", ws_url(state, &q.workspace_sid), q.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": q.workspace_sid, "sid": q.sid,
        "friendly_name": q.friendly_name, "target_workers": q.target_workers,
        "max_reserved_workers": q.max_reserved_workers, "task_order": "FIFO",
        "assignment_activity_sid": q.assignment_activity_sid,
        "assignment_activity_name": q.assignment_activity_sid.as_deref().map(|a| engine.activity_name(a)),
        "reservation_activity_sid": null, "reservation_activity_name": null,
        "date_created": iso(q.date_created_ms), "date_updated": iso(q.date_created_ms), "url": url,
        "links": {"workspace": ws_url(state, &q.workspace_sid), "statistics": format!("{url}/Statistics")},
    })
}

fn workflow_json(state: &RestState, engine: &Engine, w: &Workflow) -> Value {
    let url = format!("{}/Workflows/{}", ws_url(state, &w.workspace_sid), w.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": w.workspace_sid, "sid": w.sid,
        "friendly_name": w.friendly_name, "assignment_callback_url": w.assignment_callback_url,
        "fallback_assignment_callback_url": w.fallback_assignment_callback_url, "configuration": w.configuration().to_string(),
        "task_reservation_timeout": w.task_reservation_timeout, "document_content_type": "application/json",
        "date_created": iso(w.date_created_ms), "date_updated": iso(w.date_created_ms), "url": url,
        "links": {"workspace": ws_url(state, &w.workspace_sid), "statistics": format!("{url}/Statistics")},
    })
}

fn task_json(state: &RestState, engine: &Engine, t: &Task) -> Value {
    let url = format!("{}/Tasks/{}", ws_url(state, &t.workspace_sid), t.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": t.workspace_sid, "sid": t.sid,
        "assignment_status": t.status.as_str(), "attributes": t.attributes,
        "age": (engine.now_ms() - t.date_created_ms).max(0) / 1000, "priority": t.priority,
        "reason": t.reason, "timeout": t.timeout, "addons": "{}",
        "task_queue_sid": t.queue_sid,
        "task_queue_friendly_name": engine.queues.get(&t.queue_sid).map(|q| q.friendly_name.clone()),
        "workflow_sid": t.workflow_sid,
        "workflow_friendly_name": engine.workflows.get(&t.workflow_sid).map(|w| w.friendly_name.clone()),
        "task_channel_sid": null, "task_channel_unique_name": "default", "routing_target": null,
        "ignore_capacity": false,
        "date_created": iso(t.date_created_ms), "date_updated": iso(t.date_updated_ms),
        "task_queue_entered_date": iso(t.queue_entered_ms), "virtual_start_time": iso(t.date_created_ms),
        "url": url,
        "links": {
            "task_queue": format!("{}/TaskQueues/{}", ws_url(state, &t.workspace_sid), t.queue_sid),
            "workflow": format!("{}/Workflows/{}", ws_url(state, &t.workspace_sid), t.workflow_sid),
            "workspace": ws_url(state, &t.workspace_sid),
            "reservations": format!("{url}/Reservations"),
        },
    })
}

fn reservation_json(state: &RestState, engine: &Engine, r: &Reservation) -> Value {
    let task_url = format!("{}/Tasks/{}", ws_url(state, &r.workspace_sid), r.task_sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": r.workspace_sid, "sid": r.sid,
        "task_sid": r.task_sid, "worker_sid": r.worker_sid,
        "worker_name": engine.workers.get(&r.worker_sid).map(|w| w.friendly_name.clone()),
        "reservation_status": r.status.as_str(),
        "date_created": iso(r.date_created_ms), "date_updated": iso(r.date_updated_ms),
        "url": format!("{task_url}/Reservations/{}", r.sid),
        "links": {
            "task": task_url,
            "worker": format!("{}/Workers/{}", ws_url(state, &r.workspace_sid), r.worker_sid),
            "workspace": ws_url(state, &r.workspace_sid),
        },
    })
}

fn event_json(state: &RestState, engine: &Engine, e: &EventRecord) -> Value {
    let resource_collection = match e.resource_type.as_str() {
        "reservation" => format!("Tasks/{}/Reservations", e.param("TaskSid").unwrap_or_default()),
        "worker" => "Workers".into(),
        "workflow" => "Workflows".into(),
        _ => "Tasks".into(),
    };
    json!({
        "account_sid": engine.account_sid, "workspace_sid": e.workspace_sid, "sid": e.sid,
        "event_type": e.event_type, "description": e.description,
        "event_date": iso(e.date_ms), "event_date_ms": e.date_ms,
        "event_data": e.event_data(engine.now_ms() - e.date_ms > REDACTION_AGE_MS),
        "resource_type": e.resource_type, "resource_sid": e.resource_sid,
        "resource_url": format!("{}/{resource_collection}/{}", ws_url(state, &e.workspace_sid), e.resource_sid),
        "actor_type": "workspace", "actor_sid": e.workspace_sid, "actor_url": ws_url(state, &e.workspace_sid),
        "source": "twilio", "source_ip_address": "127.0.0.1",
        "url": format!("{}/Events/{}", ws_url(state, &e.workspace_sid), e.sid),
    })
}

// ---- handlers -------------------------------------------------------------------------------

async fn ground_truth(state: web::Data<RestState>) -> HttpResponse {
    HttpResponse::Ok().json(state.simulator.ground_truth())
}

async fn list_workspaces(request: HttpRequest, state: web::Data<RestState>) -> Reply {
    authorize(&request, &state)?;
    let items = {
        let engine = state.simulator.engine();
        engine.workspaces.values().map(|w| workspace_json(&state, &engine, w)).collect()
    };
    paged(&state, &request, "workspaces", items)
}

async fn fetch_workspace(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let engine = state.simulator.engine();
    let workspace = engine.workspace(&path).map_err(fail)?;
    Ok(HttpResponse::Ok().json(workspace_json(&state, &engine, workspace)))
}

/// Renders every item of a workspace's collection that passes `keep`.
fn collect<T>(
    state: &RestState,
    workspace: &str,
    render: impl Fn(&RestState, &Engine, &T) -> Value,
    items: impl Fn(&Engine) -> Vec<&T>,
) -> Result<Vec<Value>, ApiError> {
    let engine = state.simulator.engine();
    engine.workspace(workspace).map_err(fail)?;
    Ok(items(&engine).into_iter().map(|item| render(state, &engine, item)).collect())
}

async fn list_activities(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let items = collect(&state, &ws, activity_json, |e| {
        e.activities.values().filter(|a| a.workspace_sid == ws).collect()
    })?;
    paged(&state, &request, "activities", items)
}

async fn list_workers(request: HttpRequest, path: web::Path<String>, state: web::Data<RestState>) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let activity = first(&query, "ActivitySid").map(str::to_string);
    let available = first(&query, "Available").map(|v| v == "true" || v == "1");
    let items = collect(&state, &ws, worker_json, |e| {
        e.workers
            .values()
            .filter(|w| w.workspace_sid == ws)
            .filter(|w| activity.as_ref().is_none_or(|a| *a == w.activity_sid))
            .filter(|w| {
                available.is_none_or(|v| e.activities.get(&w.activity_sid).is_some_and(|a| a.available) == v)
            })
            .collect()
    })?;
    paged(&state, &request, "workers", items)
}

async fn fetch_worker(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let engine = state.simulator.engine();
    let worker = engine.worker_in(&ws, &sid).map_err(fail)?;
    Ok(HttpResponse::Ok().json(worker_json(&state, &engine, worker)))
}

async fn update_worker(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let params = pairs(&body);
    let rendered = {
        let mut engine = state.simulator.engine();
        engine.worker_in(&ws, &sid).map_err(fail)?;
        if let Some(activity) = first(&params, "ActivitySid") {
            engine.update_worker_activity(&ws, &sid, activity).map_err(fail)?;
        }
        worker_json(&state, &engine, engine.worker_in(&ws, &sid).map_err(fail)?)
    };
    state.simulator.wake_delivery();
    Ok(HttpResponse::Ok().json(rendered))
}

/// A URL parameter: empty clears it, as on TaskRouter.
fn url_param(params: &[(String, String)], name: &str) -> Option<Option<String>> {
    first(params, name).map(|v| Some(v.trim().to_string()).filter(|v| !v.is_empty()))
}

fn refuse_if_asked(state: &RestState, sid: &str) -> Result<(), ApiError> {
    if state.refused_updates.lock().unwrap_or_else(|p| p.into_inner()).contains(sid) {
        return Err(fail(SimError::bad_request(format!("Update of {sid} refused (simulated failure)"))));
    }
    Ok(())
}

/// `POST /v1/Workspaces/{WS}`: `EventCallbackUrl`, `EventsFilter`, `FriendlyName`; later
/// events go to the new URL.
async fn update_workspace(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let params = pairs(&body);
    refuse_if_asked(&state, &ws)?;
    let mut engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let workspace = engine.workspaces.get_mut(&ws).expect("checked above");
    if let Some(url) = url_param(&params, "EventCallbackUrl") {
        workspace.event_callback_url = url;
    }
    if let Some(filter) = first(&params, "EventsFilter") {
        workspace.events_filter = Some(filter.trim().to_string()).filter(|f| !f.is_empty());
    }
    if let Some(name) = first(&params, "FriendlyName") {
        workspace.friendly_name = name.to_string();
    }
    let rendered = workspace_json(&state, &engine, &engine.workspaces[&ws]);
    Ok(HttpResponse::Ok().json(rendered))
}

/// `POST …/Workflows/{WW}`: `AssignmentCallbackUrl`, `FallbackAssignmentCallbackUrl`,
/// `TaskReservationTimeout`, `FriendlyName`; later reservations call the new URL.
async fn update_workflow(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let params = pairs(&body);
    refuse_if_asked(&state, &sid)?;
    let timeout = match first(&params, "TaskReservationTimeout") {
        Some(raw) => {
            Some(raw.trim().parse::<u64>().ok().filter(|t| (1..=86_400).contains(t)).ok_or_else(|| {
                fail(SimError::bad_request("TaskReservationTimeout must be between 1 and 86400"))
            })?)
        }
        None => None,
    };
    let mut engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let workflow = engine
        .workflows
        .get_mut(&sid)
        .filter(|w| w.workspace_sid == ws)
        .ok_or_else(|| fail(SimError::not_found("Workflow", &sid)))?;
    if let Some(url) = url_param(&params, "AssignmentCallbackUrl") {
        workflow.assignment_callback_url = url;
    }
    if let Some(url) = url_param(&params, "FallbackAssignmentCallbackUrl") {
        workflow.fallback_assignment_callback_url = url;
    }
    if let Some(timeout) = timeout {
        workflow.task_reservation_timeout = timeout;
    }
    if let Some(name) = first(&params, "FriendlyName") {
        workflow.friendly_name = name.to_string();
    }
    let rendered = workflow_json(&state, &engine, &engine.workflows[&sid]);
    Ok(HttpResponse::Ok().json(rendered))
}

/// `POST /sim/refuse-updates` with `Sid=WS…|WW…`: later updates of it are refused with 400.
async fn refuse_updates(body: web::Bytes, state: web::Data<RestState>) -> HttpResponse {
    let params = pairs(&body);
    let mut refused = state.refused_updates.lock().unwrap_or_else(|p| p.into_inner());
    for sid in all(&params, "Sid") {
        refused.insert(sid.to_string());
    }
    HttpResponse::NoContent().finish()
}

async fn list_queues(request: HttpRequest, path: web::Path<String>, state: web::Data<RestState>) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let items =
        collect(&state, &ws, queue_json, |e| e.queues.values().filter(|q| q.workspace_sid == ws).collect())?;
    paged(&state, &request, "task_queues", items)
}

async fn list_workflows(request: HttpRequest, path: web::Path<String>, state: web::Data<RestState>) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let items = collect(&state, &ws, workflow_json, |e| {
        e.workflows.values().filter(|w| w.workspace_sid == ws).collect()
    })?;
    paged(&state, &request, "workflows", items)
}

async fn fetch_workflow(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let workflow = engine
        .workflows
        .get(&sid)
        .filter(|w| w.workspace_sid == ws)
        .ok_or_else(|| fail(SimError::not_found("Workflow", &sid)))?;
    Ok(HttpResponse::Ok().json(workflow_json(&state, &engine, workflow)))
}

async fn list_tasks(request: HttpRequest, path: web::Path<String>, state: web::Data<RestState>) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let statuses = all(&query, "AssignmentStatus");
    let workflow = first(&query, "WorkflowSid");
    let queue = first(&query, "TaskQueueSid");
    let items = collect(&state, &ws, task_json, |e| {
        let mut tasks: Vec<&Task> = e
            .tasks
            .values()
            .filter(|t| t.workspace_sid == ws)
            .filter(|t| statuses.is_empty() || statuses.contains(&t.status.as_str()))
            .filter(|t| workflow.is_none_or(|w| w == t.workflow_sid))
            .filter(|t| queue.is_none_or(|q| q == t.queue_sid))
            .collect();
        tasks.sort_by_key(|t| t.sequence);
        tasks
    })?;
    paged(&state, &request, "tasks", items)
}

async fn create_task(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let params = pairs(&body);
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        first(&params, name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| fail(SimError::bad_request(format!("{name} must be an integer"))))
            })
            .transpose()
    };
    let priority = number("Priority")?.unwrap_or(0);
    let timeout = number("Timeout")?.map(|t| t.max(0) as u64);
    let rendered = {
        let mut engine = state.simulator.engine();
        engine.workspace(&ws).map_err(fail)?;
        let workflow = match first(&params, "WorkflowSid") {
            Some(sid) => sid.to_string(),
            None => {
                let mut workflows = engine.workflows.values().filter(|w| w.workspace_sid == ws);
                match (workflows.next(), workflows.next()) {
                    (Some(only), None) => only.sid.clone(),
                    _ => return Err(fail(SimError::bad_request("WorkflowSid is required"))),
                }
            }
        };
        let attributes = first(&params, "Attributes").unwrap_or("{}");
        let sid = engine.create_task(&ws, &workflow, attributes, priority, timeout).map_err(fail)?;
        task_json(&state, &engine, &engine.tasks[&sid])
    };
    state.simulator.wake_delivery();
    Ok(HttpResponse::Created().json(rendered))
}

async fn fetch_task(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let engine = state.simulator.engine();
    let task = engine.task_in(&ws, &sid).map_err(fail)?;
    Ok(HttpResponse::Ok().json(task_json(&state, &engine, task)))
}

async fn update_task(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let params = pairs(&body);
    let priority = first(&params, "Priority")
        .map(|v| v.parse::<i64>().map_err(|_| fail(SimError::bad_request("Priority must be an integer"))))
        .transpose()?;
    let update = TaskUpdate {
        assignment_status: first(&params, "AssignmentStatus").map(str::to_string),
        reason: first(&params, "Reason").map(str::to_string),
        attributes: first(&params, "Attributes").map(str::to_string),
        priority,
    };
    let rendered = {
        let mut engine = state.simulator.engine();
        let result = engine.update_task(&ws, &sid, update);
        // Events of a partly applied update still have to go out.
        drop(engine);
        state.simulator.wake_delivery();
        result.map_err(fail)?;
        let engine = state.simulator.engine();
        task_json(&state, &engine, engine.task_in(&ws, &sid).map_err(fail)?)
    };
    Ok(HttpResponse::Ok().json(rendered))
}

async fn list_reservations(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, task) = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let status = first(&query, "ReservationStatus");
    let worker = first(&query, "WorkerSid");
    let items = {
        let engine = state.simulator.engine();
        engine.task_in(&ws, &task).map_err(fail)?;
        engine
            .task_reservations
            .get(&task)
            .into_iter()
            .flatten()
            .filter_map(|sid| engine.reservations.get(sid))
            .filter(|r| status.is_none_or(|s| s == r.status.as_str()))
            .filter(|r| worker.is_none_or(|w| w == r.worker_sid))
            .map(|r| reservation_json(&state, &engine, r))
            .collect()
    };
    paged(&state, &request, "reservations", items)
}

async fn fetch_reservation(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, task, sid) = path.into_inner();
    let engine = state.simulator.engine();
    engine.task_in(&ws, &task).map_err(fail)?;
    let reservation = engine.reservation_of(&ws, &task, &sid).map_err(fail)?;
    Ok(HttpResponse::Ok().json(reservation_json(&state, &engine, reservation)))
}

async fn update_reservation(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, task, sid) = path.into_inner();
    let rendered = {
        let mut engine = state.simulator.engine();
        engine.task_in(&ws, &task).map_err(fail)?;
        engine.reservation_of(&ws, &task, &sid).map_err(fail)?;
        apply_reservation_update(&mut engine, &sid, &pairs(&body))?;
        reservation_json(&state, &engine, engine.reservation_of(&ws, &task, &sid).map_err(fail)?)
    };
    state.simulator.wake_delivery();
    Ok(HttpResponse::Ok().json(rendered))
}

/// `ReservationStatus=accepted|rejected` (with `WorkerActivitySid` on reject).
fn apply_reservation_update(
    engine: &mut Engine,
    sid: &str,
    params: &[(String, String)],
) -> Result<(), ApiError> {
    match first(params, "ReservationStatus") {
        Some("accepted") => engine.accept_reservation(sid).map_err(fail),
        Some("rejected") => engine
            .reject_reservation(sid, first(params, "WorkerActivitySid").map(str::to_string))
            .map_err(fail),
        Some(other) => Err(fail(SimError::bad_request(format!(
            "ReservationStatus {other} is not supported by the simulator (accepted, rejected)"
        )))),
        None => Ok(()),
    }
}

/// A worker's reservation, by worker and reservation SID.
fn worker_reservation<'a>(
    engine: &'a Engine,
    ws: &str,
    worker: &str,
    sid: &str,
) -> Result<&'a Reservation, ApiError> {
    engine.worker_in(ws, worker).map_err(fail)?;
    engine
        .reservations
        .get(sid)
        .filter(|r| r.workspace_sid == ws && r.worker_sid == worker)
        .ok_or_else(|| fail(SimError::not_found("Reservation", sid)))
}

async fn list_worker_reservations(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, worker) = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let status = first(&query, "ReservationStatus");
    let items = {
        let engine = state.simulator.engine();
        engine.worker_in(&ws, &worker).map_err(fail)?;
        let mut reservations: Vec<&Reservation> = engine
            .reservations
            .values()
            .filter(|r| r.worker_sid == worker && status.is_none_or(|s| s == r.status.as_str()))
            .collect();
        reservations.sort_by_key(|r| (r.date_created_ms, r.sid.clone()));
        reservations.into_iter().map(|r| worker_reservation_json(&state, &engine, r)).collect()
    };
    paged(&state, &request, "reservations", items)
}

/// A reservation as the worker-scoped resource shows it (its `url` under the worker).
fn worker_reservation_json(state: &RestState, engine: &Engine, r: &Reservation) -> Value {
    let mut value = reservation_json(state, engine, r);
    value["url"] =
        format!("{}/Workers/{}/Reservations/{}", ws_url(state, &r.workspace_sid), r.worker_sid, r.sid).into();
    value
}

async fn fetch_worker_reservation(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, worker, sid) = path.into_inner();
    let engine = state.simulator.engine();
    let reservation = worker_reservation(&engine, &ws, &worker, &sid)?;
    Ok(HttpResponse::Ok().json(worker_reservation_json(&state, &engine, reservation)))
}

async fn update_worker_reservation(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, worker, sid) = path.into_inner();
    let rendered = {
        let mut engine = state.simulator.engine();
        worker_reservation(&engine, &ws, &worker, &sid)?;
        apply_reservation_update(&mut engine, &sid, &pairs(&body))?;
        worker_reservation_json(&state, &engine, worker_reservation(&engine, &ws, &worker, &sid)?)
    };
    state.simulator.wake_delivery();
    Ok(HttpResponse::Ok().json(rendered))
}

fn parse_date(value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis())
        })
        .map_err(|_| fail(SimError::bad_request(format!("Invalid date {value}"))))
}

async fn list_events(request: HttpRequest, path: web::Path<String>, state: web::Data<RestState>) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let start = first(&query, "StartDate").map(parse_date).transpose()?;
    let end = first(&query, "EndDate").map(parse_date).transpose()?;
    let minutes: Option<i64> = first(&query, "Minutes").and_then(|m| m.parse().ok());
    let field_filters: Vec<(&str, &str)> =
        ["TaskSid", "ReservationSid", "WorkerSid", "WorkflowSid", "TaskQueueSid", "Sid"]
            .into_iter()
            .filter_map(|name| first(&query, name).map(|v| (name, v)))
            .collect();
    let event_type = first(&query, "EventType");
    let task_channel = first(&query, "TaskChannel");
    let engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let now = engine.now_ms();
    // Minutes defaults to 15 unless a StartDate is given, as on Twilio; nothing older than
    // the 30 days TaskRouter keeps is served.
    let from = match (start, minutes) {
        (Some(start), _) => start,
        (None, Some(m)) => now - m * 60_000,
        (None, None) => now - 15 * 60_000,
    }
    .max(now - RETENTION_MS);
    let to = end.unwrap_or(i64::MAX);
    let matching: Vec<&EventRecord> = engine
        .events
        .iter()
        .rev()
        .filter(|e| e.workspace_sid == ws && e.date_ms >= from && e.date_ms <= to)
        .filter(|e| event_type.is_none_or(|t| t == e.event_type))
        .filter(|e| {
            task_channel.is_none_or(|channel| {
                e.param("TaskChannelUniqueName") == Some(channel)
                    || e.param("TaskChannelSid") == Some(channel)
            })
        })
        .filter(|e| {
            field_filters.iter().all(|(name, value)| {
                (*name == "Sid" && e.sid == *value)
                    || e.param(name) == Some(*value)
                    || e.resource_sid == *value
            })
        })
        .collect();
    paged_with(&state, &request, "events", matching.len(), |start, count| {
        matching.iter().skip(start).take(count).map(|e| event_json(&state, &engine, e)).collect()
    })
}

async fn fetch_event(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let event = engine
        .events
        .iter()
        .find(|e| e.sid == sid && e.workspace_sid == ws)
        .ok_or_else(|| fail(SimError::not_found("Event", &sid)))?;
    Ok(HttpResponse::Ok().json(event_json(&state, &engine, event)))
}
