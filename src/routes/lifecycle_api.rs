//! The JSON API over the lifecycle projections: one task explained, a filtered list of tasks,
//! and a worker's activity history.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::projections::reads::{self, TaskFilter};
use crate::startup::AppState;

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

fn unavailable(error: &sqlx::Error) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({ "error": error.to_string() }))
}

async fn list(query: web::Query<ListQuery>, state: web::Data<AppState>) -> HttpResponse {
    let query = query.into_inner();
    let before = match query.before.as_deref().map(reads::parse_cursor) {
        Some(None) => {
            return HttpResponse::BadRequest().json(json!({ "error": "before must be MS or MS:TaskSid" }))
        }
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
    match reads::list_tasks(&state.store.pool, &filter).await {
        Ok(page) => HttpResponse::Ok().json(page),
        Err(error) => unavailable(&error),
    }
}

async fn detail(task_sid: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    match reads::task_detail(&state.store.pool, &task_sid).await {
        Ok(Some(detail)) => HttpResponse::Ok().json(detail),
        Ok(None) => HttpResponse::NotFound().json(json!({ "error": "no such task", "task_sid": *task_sid })),
        Err(error) => unavailable(&error),
    }
}

async fn worker(worker_sid: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    match reads::worker_detail(&state.store.pool, &worker_sid).await {
        Ok(Some(detail)) => HttpResponse::Ok().json(detail),
        Ok(None) => {
            HttpResponse::NotFound().json(json!({ "error": "no such worker", "worker_sid": *worker_sid }))
        }
        Err(error) => unavailable(&error),
    }
}
