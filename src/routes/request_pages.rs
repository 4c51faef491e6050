//! The request inspector's pages: the list of recorded requests (`/requests`), one request
//! with what it became, and the replay form. Server-rendered, escaped, usable without
//! JavaScript.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::error::{AppError, PageError};
use super::html::{format_ms, render};
use super::requests_query::RequestQuery;
use super::AppState;
use crate::storage::requests::RecordedRequest;
use crate::storage::requests::TEXT_SCAN_ROWS;
use taskrouter_protocol::cloud_event::{self, EVENT_STREAMS_ENDPOINT};
use taskrouter_protocol::stored_event;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/requests", web::get().to(requests))
        .route("/requests/{id}", web::get().to(request_detail))
        .route("/requests/{id}/replay", web::post().to(replay_form));
}

/// One line of the request list.
struct RequestRow {
    id: i64,
    received: String,
    endpoint: String,
    event_type: String,
    subject: String,
    status: i64,
    status_class: String,
    verdict: String,
    duplicate_of: Option<i64>,
    handling: String,
}

impl From<&RecordedRequest> for RequestRow {
    fn from(r: &RecordedRequest) -> Self {
        let subject = [&r.task_sid, &r.reservation_sid, &r.worker_sid]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" · ");
        Self {
            id: r.id,
            received: format_ms(r.received_at_ms),
            endpoint: r.endpoint.clone(),
            event_type: r.event_type.clone().unwrap_or_else(|| "—".into()),
            subject,
            status: r.response_status,
            status_class: format!("s{}", r.response_status / 100),
            verdict: r.signature_verdict.clone(),
            duplicate_of: r.duplicate_of,
            handling: r.handling_us.map(|us| format!("{:.1} ms", us as f64 / 1000.0)).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "requests/index.html")]
struct RequestsPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    query: RequestQuery,
    error: Option<String>,
    rows: Vec<RequestRow>,
    older: Option<String>,
    newest_id: i64,
    first_page: bool,
    export_query: String,
    /// A free-text search looked at rows from this id up only (each page is bounded).
    searched_from: Option<i64>,
}

async fn requests(query: web::Query<RequestQuery>, state: web::Data<AppState>) -> HttpResponse {
    let query = query.into_inner();
    let limit = query.limit();
    let (rows, error, older, searched_from) = match query.to_filter() {
        Err(message) => (Vec::new(), Some(message), None, None),
        Ok(filter) => match state.store.requests_page(filter, limit, TEXT_SCAN_ROWS).await {
            Ok(page) => (
                page.rows.iter().map(RequestRow::from).collect(),
                None,
                page.next_before.map(|before| query.with_before(before)),
                page.searched_from,
            ),
            Err(error) => (Vec::new(), Some(format!("the log could not be read: {error}")), None, None),
        },
    };
    let mut export = query.clone();
    export.before.clear();
    export.limit.clear();
    let page = RequestsPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        searched_from,
        export_query: serde_urlencoded::to_string(&export).unwrap_or_default(),
        first_page: query.before.trim().is_empty(),
        newest_id: rows.first().map_or(0, |r| r.id),
        query,
        error,
        rows,
        older,
    };
    render(&page)
}

/// A parameter of a recorded body, with JSON values pretty-printed.
struct ParamRow {
    name: String,
    value: String,
    pretty_json: Option<String>,
    is_sid: bool,
}

#[derive(Template)]
#[template(path = "requests/show.html")]
struct RequestPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    request: RecordedRequest,
    received: String,
    occurred: String,
    params: Vec<ParamRow>,
    body_text: String,
    sids: Vec<(&'static str, String)>,
    handling: String,
    /// The parameters were mapped from JSON (an Events API event, a CloudEvent).
    params_mapped: bool,
    /// For an Event Streams request: each CloudEvent it held and what it became.
    cloudevents: Vec<CloudEventRow>,
    replays: Vec<RequestRow>,
    /// The replay form's defaults.
    replay_url: String,
    replay_params: String,
    csrf: String,
}

async fn request_detail(
    http: actix_web::HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let request = super::request_api::recorded(&state, id.into_inner()).await?;
    let params_mapped = stored_event::is_mapped(&request.endpoint);
    let params: Vec<ParamRow> =
        stored_event::callback_params(&request.endpoint, &request.body, request.received_at_ms)
            .map(|form| {
                form.0
                    .into_iter()
                    .map(|(name, value)| {
                        let pretty_json = (value.starts_with('{') || value.starts_with('['))
                            .then(|| serde_json::from_str::<serde_json::Value>(&value).ok())
                            .flatten()
                            .and_then(|v| serde_json::to_string_pretty(&v).ok());
                        ParamRow {
                            is_sid: taskrouter_protocol::sid::looks_like_any(&value),
                            name,
                            value,
                            pretty_json,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
    let sids = [
        ("Event", &request.event_sid),
        ("Task", &request.task_sid),
        ("Reservation", &request.reservation_sid),
        ("Worker", &request.worker_sid),
        ("Queue", &request.task_queue_sid),
        ("Workflow", &request.workflow_sid),
    ]
    .into_iter()
    .filter_map(|(label, sid)| sid.clone().map(|s| (label, s)))
    .collect();
    let related = state.store.related_to(request.id).await.unwrap_or_default();
    let replays = related.iter().filter(|r| r.kind == "replay").map(RequestRow::from).collect();
    let cloudevents = if request.endpoint == EVENT_STREAMS_ENDPOINT {
        cloudevent_rows(&request, &related)
    } else {
        Vec::new()
    };
    let replay_url = state
        .ingest
        .config()
        .forward_to
        .as_ref()
        .map(|target| format!("{}{}", target.trim_end_matches('/'), request.path))
        .unwrap_or_default();
    let replay_params =
        params.iter().map(|p: &ParamRow| format!("{}={}", p.name, p.value)).collect::<Vec<_>>().join("\n");
    let page = RequestPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        csrf: super::security::csrf_for(&http, &state),
        replays,
        replay_url,
        replay_params,
        received: format_ms(request.received_at_ms),
        occurred: request
            .occurred_at_ms
            .map(|ms| {
                format!("{} (from {})", format_ms(ms), request.occurred_at_source.as_deref().unwrap_or("?"))
            })
            .unwrap_or_default(),
        body_text: String::from_utf8_lossy(&request.body).into_owned(),
        handling: request
            .handling_us
            .map(|us| format!("{:.2} ms", us as f64 / 1000.0))
            .unwrap_or_else(|| "—".into()),
        params,
        params_mapped,
        cloudevents,
        sids,
        request,
    };
    Ok(render(&page))
}

/// One CloudEvent of an Event Streams request and the row it became.
struct CloudEventRow {
    index: usize,
    id: String,
    event_type: String,
    event_sid: String,
    task_sid: String,
    /// The row holding it as a fact (or as a duplicate), if it became one.
    row: Option<i64>,
    outcome: String,
}

/// The CloudEvents of `request` (an Event Streams request), each matched with the row it
/// became among `related` (by CloudEvent id, in order).
fn cloudevent_rows(request: &RecordedRequest, related: &[RecordedRequest]) -> Vec<CloudEventRow> {
    let Ok(delivery) = cloud_event::parse_delivery(&request.body, request.received_at_ms) else {
        return Vec::new();
    };
    let mut rows: Vec<&RecordedRequest> = related.iter().filter(|r| r.kind == "cloudevent").collect();
    delivery
        .events
        .iter()
        .map(|event| {
            let position =
                rows.iter().position(|r| r.idempotency_token.as_deref() == Some(event.id.as_str()));
            let row = position.map(|at| rows.remove(at));
            let facts = event.taskrouter.as_ref().map(|mapped| &mapped.facts);
            let outcome = match (row, facts) {
                (_, None) => "not a TaskRouter event: recorded with the request, never a fact".to_string(),
                (Some(row), _) if row.is_fact => "a new fact".to_string(),
                (Some(row), _) => match row.duplicate_of {
                    Some(first) => format!("already known: a duplicate of #{first}"),
                    None => row.rejection.clone().unwrap_or_else(|| "not a fact".into()),
                },
                (None, Some(_)) => "not stored as a fact (the request was refused)".to_string(),
            };
            CloudEventRow {
                index: event.index,
                id: event.id.clone(),
                event_type: event.event_type.clone(),
                event_sid: facts.and_then(|f| f.event_sid.clone()).unwrap_or_default(),
                task_sid: facts.and_then(|f| f.task_sid.clone()).unwrap_or_default(),
                row: row.map(|r| r.id),
                outcome,
            }
        })
        .collect()
}

/// The replay form: `url`, `mode` (`unchanged` or `edited`) and `params`, one `Name=Value` a line.
#[derive(serde::Deserialize)]
struct ReplayForm {
    url: String,
    mode: String,
    #[serde(default)]
    params: String,
    #[serde(default)]
    csrf: String,
}

async fn replay_form(
    http: actix_web::HttpRequest,
    id: web::Path<i64>,
    form: web::Form<ReplayForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    // Forms that change something must come from this site's own pages.
    if let Some(refused) = super::security::csrf_refusal(&http, &state, &form.csrf) {
        return Ok(refused);
    }
    let original = super::request_api::recorded(&state, id.into_inner()).await?;
    let params = (form.mode == "edited").then(|| {
        form.params
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let (name, value) = line.split_once('=').unwrap_or((line, ""));
                (name.trim().to_string(), value.trim_end_matches('\r').to_string())
            })
            .collect()
    });
    let request = crate::replay::ReplayRequest { url: Some(form.url.clone()), params };
    let forward_to = state.ingest.config().forward_to.as_deref();
    let outcome = crate::replay::replay(&state.relay, state.ingest.writer(), forward_to, &original, request)
        .await
        .map_err(AppError::bad_request)?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", format!("/requests/{}", outcome.replay_id)))
        .finish())
}
