//! The HTTP edge: turns requests into domain calls and results into responses, nothing more.

pub mod actions;
pub mod alerts;
pub mod consistency;
pub mod error;
pub mod export;
pub mod health;
pub mod history;
mod html;
pub mod lifecycle_api;
pub mod lifecycle_pages;
pub mod reports;
pub mod request_api;
pub mod request_pages;
pub mod requests_query;
pub mod security;
pub mod settings_page;
mod state;
pub mod svg_timeline;
pub mod webhooks;

pub use state::AppState;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(webhooks::configure)
        .configure(health::configure)
        .configure(export::configure)
        .configure(request_api::configure)
        .configure(lifecycle_api::configure)
        .configure(security::configure)
        .configure(actions::configure)
        .configure(settings_page::configure)
        .configure(alerts::configure)
        .configure(history::configure)
        .configure(lifecycle_pages::configure)
        .configure(reports::configure)
        .configure(request_pages::configure);
}
