//! The JSON API over recorded requests.

use actix_web::{web, HttpResponse};
use base64::Engine;
use serde_json::json;

use super::error::{AppError, JsonError};
use super::requests_query::RequestQuery;
use super::AppState;
use crate::replay::ReplayRequest;
use crate::storage::requests::RecordedRequest;
use crate::storage::requests::TEXT_SCAN_ROWS;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/requests", web::get().to(list))
        .route("/api/requests/{id}", web::get().to(detail))
        .route("/api/requests/{id}/replay", web::post().to(replay));
}

/// A request as the API shows it: every recorded field, the body as base64 and, when it is
/// UTF-8, as text too.
pub fn to_json(request: &RecordedRequest) -> serde_json::Value {
    let mut value = serde_json::to_value(request).unwrap_or_default();
    value["body_base64"] = base64::engine::general_purpose::STANDARD.encode(&request.body).into();
    value
}

async fn list(
    query: web::Query<RequestQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    let filter = query.to_filter().map_err(AppError::bad_request)?;
    let page = state.store.requests_page(filter, query.limit(), TEXT_SCAN_ROWS).await?;
    Ok(HttpResponse::Ok().json(json!({
        "requests": page.rows.iter().map(to_json).collect::<Vec<_>>(),
        "next_before": page.next_before,
        "searched_from": page.searched_from,
    })))
}

/// Recorded request `id`, or why there is none to show.
pub(super) async fn recorded(state: &AppState, id: i64) -> Result<RecordedRequest, AppError> {
    state.store.request(id).await?.ok_or_else(|| AppError::not_found(format!("No request #{id} in the log.")))
}

async fn detail(id: web::Path<i64>, state: web::Data<AppState>) -> Result<HttpResponse, JsonError> {
    Ok(HttpResponse::Ok().json(to_json(&recorded(&state, id.into_inner()).await?)))
}

async fn replay(
    id: web::Path<i64>,
    body: Option<web::Json<ReplayRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    let original = recorded(&state, id.into_inner()).await?;
    let request = body.map(web::Json::into_inner).unwrap_or_default();
    let forward_to = state.ingest.config().forward_to.as_deref();
    let outcome = crate::replay::replay(&state.relay, state.ingest.writer(), forward_to, &original, request)
        .await
        .map_err(AppError::bad_request)?;
    Ok(HttpResponse::Ok().json(outcome))
}
