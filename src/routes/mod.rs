//! The HTTP edge: turns requests into domain calls and results into responses, nothing more.

pub mod api;
pub mod health;
pub mod tasks;
pub mod webhooks;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(webhooks::configure)
        .configure(health::configure)
        .configure(api::configure)
        .configure(tasks::configure);
}
