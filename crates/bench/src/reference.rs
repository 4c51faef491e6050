//! The two endpoints ingest is measured against, added to the tracer's own server through its
//! route hook when the bench runs it (`taskrouter-bench tracer serve …`): the baseline (the
//! same server stack reading the body, storing nothing) and the floor (the body appended
//! durably to a one-table SQLite file beside the log, nothing else).

use std::path::Path;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use taskrouter_tracer::startup::ExtraRoutes;

use crate::floor::{floor_path, FloorLog};

/// Where the baseline answers.
pub const BASELINE_PATH: &str = "/webhooks/bench-baseline";
/// Where the floor answers.
pub const FLOOR_PATH: &str = "/webhooks/bench-floor";

/// The baseline and the floor, the floor's file beside `database`.
///
/// # Errors
/// When the floor's file cannot be opened.
pub fn routes(database: &Path) -> anyhow::Result<ExtraRoutes> {
    let floor = web::Data::new(FloorLog::start(&floor_path(database))?);
    Ok(Arc::new(move |config: &mut web::ServiceConfig| {
        config
            .app_data(floor.clone())
            .route(BASELINE_PATH, web::post().to(baseline))
            .route(FLOOR_PATH, web::post().to(floor_append));
    }))
}

/// Reads the body as the webhook endpoints do and answers 204, storing nothing.
async fn baseline(mut payload: web::Payload) -> HttpResponse {
    let mut length = 0;
    while let Some(Ok(chunk)) = payload.next().await {
        length += chunk.len();
    }
    HttpResponse::NoContent().insert_header(("X-Body-Length", length.to_string())).finish()
}

/// Reads the body as the baseline does and answers 204 once [`FloorLog`] has committed it, 503
/// with the reason when it could not.
async fn floor_append(mut payload: web::Payload, floor: web::Data<FloorLog>) -> HttpResponse {
    let mut body = Vec::with_capacity(2048);
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(error) => {
                return HttpResponse::BadRequest().body(format!("the body could not be read: {error}"))
            }
        }
    }
    match floor.append(body).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(problem) => HttpResponse::ServiceUnavailable().body(problem),
    }
}
