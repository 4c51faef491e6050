//! Exporting the filtered request set: HAR (for browser dev tools and HTTP tools) and NDJSON
//! (one API-shaped request a line). Both page through the log by keyset, so memory stays flat
//! however large the set.

use actix_web::{web, HttpResponse, ResponseError};
use futures_util::stream;
use serde_json::{json, Value};

use super::error::JsonError;
use super::request_api::to_json;
use super::requests_query::RequestQuery;
use super::AppState;
use crate::storage::requests::{RecordedRequest, RequestFilter};
use crate::storage::ReadStore;
use taskrouter_protocol::webhook::parse_form;

/// Rows per read while exporting.
const PAGE: u32 = 500;
/// Most entries in one HAR file (HAR is one JSON document, built in memory).
const HAR_MAX_ENTRIES: usize = 20_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/requests/export.ndjson", web::get().to(ndjson))
        .route("/api/requests/export.har", web::get().to(har));
}

fn bad_filter(message: String) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message }))
}

async fn ndjson(query: web::Query<RequestQuery>, state: web::Data<AppState>) -> HttpResponse {
    let filter = match query.to_filter() {
        Ok(filter) => filter,
        Err(message) => return bad_filter(message),
    };
    let store = state.store.clone();
    let pages = stream::unfold(Some(filter), move |filter| {
        let store = store.clone();
        async move {
            let mut filter = filter?;
            match store.requests(&filter, PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let mut chunk = String::new();
                    for row in &rows {
                        chunk.push_str(&to_json(row).to_string());
                        chunk.push('\n');
                    }
                    let next = (rows.len() == PAGE as usize).then(|| {
                        filter.before = rows.last().map(|r| r.id);
                        filter
                    });
                    Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk)), next))
                }
                Err(error) => Some((Err(actix_web::error::ErrorServiceUnavailable(error.to_string())), None)),
            }
        }
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("Content-Disposition", "attachment; filename=\"requests.ndjson\""))
        .streaming(pages)
}

async fn collect(
    store: &ReadStore,
    mut filter: RequestFilter,
    max: usize,
) -> Result<Vec<RecordedRequest>, sqlx::Error> {
    let mut all = Vec::new();
    loop {
        let rows = store.requests(&filter, PAGE).await?;
        let full = rows.len() == PAGE as usize;
        filter.before = rows.last().map(|r| r.id);
        all.extend(rows);
        if !full || all.len() >= max {
            all.truncate(max);
            return Ok(all);
        }
    }
}

fn har_entry(request: &RecordedRequest, host: &str) -> Value {
    let pairs = |list: &[(String, String)]| -> Vec<Value> {
        list.iter().map(|(name, value)| json!({ "name": name, "value": value })).collect()
    };
    let url = if request.path.starts_with("http") {
        request.path.clone()
    } else {
        format!("http://{host}{}", request.path)
    };
    let query: Vec<(String, String)> = request
        .path
        .split_once('?')
        .map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let content_type = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map_or("", |(_, v)| v.as_str());
    let params = parse_form(&request.body).map(|p| p.0).unwrap_or_default();
    let started = chrono::DateTime::from_timestamp_millis(request.received_at_ms).unwrap_or_default();
    let wait_ms = request.handling_us.map_or(0.0, |us| us as f64 / 1000.0);
    let answer = request.response_body.clone().unwrap_or_default();
    json!({
        "startedDateTime": started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "time": wait_ms,
        "request": {
            "method": request.method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": pairs(&request.headers),
            "queryString": pairs(&query),
            "postData": {
                "mimeType": content_type,
                "text": String::from_utf8_lossy(&request.body),
                "params": pairs(&params),
            },
            "headersSize": -1,
            "bodySize": request.body.len(),
        },
        "response": {
            "status": request.response_status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "content": { "size": answer.len(), "mimeType": "application/json", "text": answer },
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": answer.len(),
        },
        "cache": {},
        "timings": { "send": 0, "wait": wait_ms, "receive": 0 },
        "comment": format!(
            "#{} {} signature {}{}",
            request.id,
            request.event_type.as_deref().unwrap_or(&request.endpoint),
            request.signature_verdict,
            request.duplicate_of.map(|d| format!(", duplicate of #{d}")).unwrap_or_default()
        ),
    })
}

async fn har(
    request: actix_web::HttpRequest,
    query: web::Query<RequestQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let filter = match query.to_filter() {
        Ok(filter) => filter,
        Err(message) => return bad_filter(message),
    };
    let host = request.connection_info().host().to_string();
    match collect(&state.store, filter, HAR_MAX_ENTRIES).await {
        Ok(rows) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("Content-Disposition", "attachment; filename=\"requests.har\""))
            .json(json!({
                "log": {
                    "version": "1.2",
                    "creator": { "name": "taskrouter-tracer", "version": env!("CARGO_PKG_VERSION") },
                    "entries": rows.iter().rev().map(|r| har_entry(r, &host)).collect::<Vec<_>>(),
                }
            })),
        Err(error) => JsonError::from(error).error_response(),
    }
}
