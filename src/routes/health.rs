//! `GET /healthz` (is the database writable right now?) and `GET /metrics` (Prometheus text).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::storage;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).route("/metrics", web::get().to(metrics));
}

/// Projections further behind the log than this make `/healthz` answer 503.
const PROJECTION_LAG_UNHEALTHY_MS: i64 = 30_000;

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let writable = state.writer_health.problem();
    let readable = state.store.is_readable().await;
    let lag = state.progress.lag();
    let far_behind = lag.millis >= PROJECTION_LAG_UNHEALTHY_MS;
    let problem = writable.clone().or_else(|| lag.describe().filter(|_| far_behind));
    let body = json!({
        "status": if problem.is_none() && readable { "ok" } else { "degraded" },
        "database": state.store.path.display().to_string(),
        "writable": writable.is_none(),
        "readable": readable,
        "projection_lag_rows": lag.rows,
        "projection_lag_seconds": lag.millis as f64 / 1_000.0,
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
    let lag = state.progress.lag();
    let mut text = state.metrics.render(bytes, storage::sqlite_memory_bytes(), lag.rows, lag.millis);
    text.push_str(&state.history.render_metrics());
    text.push_str(&state.alerts.render_metrics());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text)
}
