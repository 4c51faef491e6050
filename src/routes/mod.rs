//! The HTTP edge: turns requests into domain calls and results into responses, nothing more.

pub mod actions;
pub mod alerts;
pub mod api;
pub mod consistency;
pub mod export;
pub mod health;
pub mod history;
pub mod lifecycle;
pub mod pages;
pub mod reports;
pub mod requests_query;
pub mod security;
pub mod svg_timeline;
pub mod tasks;
pub mod webhooks;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(webhooks::configure)
        .configure(health::configure)
        .configure(export::configure)
        .configure(api::configure)
        .configure(tasks::configure)
        .configure(security::configure)
        .configure(actions::configure)
        .configure(alerts::configure)
        .configure(history::configure)
        .configure(lifecycle::configure)
        .configure(reports::configure)
        .configure(pages::configure);
}
