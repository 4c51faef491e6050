//! The JSON API over the lifecycle projections: one task explained, a filtered list of tasks,
//! and a worker's activity history.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::error::{AppError, JsonError};
use super::AppState;
use crate::projections::details::{self, TaskFilter};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/tasks", web::get().to(list))
        .route("/api/tasks/{task_sid}", web::get().to(detail))
        .route("/api/workers/{worker_sid}", web::get().to(worker));
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    flag: Option<String>,
    queue: Option<String>,
    workflow: Option<String>,
    worker: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
    before: Option<String>,
}

async fn list(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, JsonError> {
    let query = query.into_inner();
    let before = match query.before.as_deref().map(details::parse_cursor) {
        Some(None) => return Err(AppError::bad_request("before must be MS or MS:TaskSid").into()),
        Some(cursor) => cursor,
        None => None,
    };
    let filter = TaskFilter {
        status: query.status,
        flag: query.flag,
        queue: query.queue,
        workflow: query.workflow,
        worker: query.worker,
        since: query.since,
        until: query.until,
        before,
        limit: query.limit.unwrap_or(50),
    };
    Ok(HttpResponse::Ok().json(details::list_tasks(&state.store.pool, &filter).await?))
}

async fn detail(task_sid: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, JsonError> {
    match details::task_detail(&state.store.pool, &task_sid).await? {
        Some(detail) => Ok(HttpResponse::Ok().json(detail)),
        None => Err(AppError::not_found("no such task").with("task_sid", task_sid.into_inner()).into()),
    }
}

async fn worker(
    worker_sid: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, JsonError> {
    match details::worker_detail(&state.store.pool, &worker_sid).await? {
        Some(detail) => Ok(HttpResponse::Ok().json(detail)),
        None => Err(AppError::not_found("no such worker").with("worker_sid", worker_sid.into_inner()).into()),
    }
}
