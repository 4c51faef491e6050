//! `GET /healthz` (is the database writable right now?) and `GET /metrics` (Prometheus text).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::startup::AppState;
use crate::storage;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).route("/metrics", web::get().to(metrics));
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let problem = state.writer_health.problem();
    let readable = state.store.is_readable().await;
    let body = json!({
        "status": if problem.is_none() && readable { "ok" } else { "degraded" },
        "database": state.store.path.display().to_string(),
        "writable": problem.is_none(),
        "readable": readable,
        "problem": problem,
    });
    if problem.is_none() && readable {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let bytes = storage::database_bytes(&state.store.path);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(bytes, storage::sqlite_memory_bytes()))
}
