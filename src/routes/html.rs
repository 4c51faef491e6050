//! What every page shares: a template rendered into a response, and times as pages show them.

use actix_web::HttpResponse;
use askama::Template;

/// An epoch time in ms as pages show it (UTC, to the millisecond).
pub(crate) fn format_ms(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| epoch_ms.to_string())
}

/// `page` rendered as an HTML response; a template that fails is logged and answered 500.
pub(crate) fn render(page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        Err(error) => {
            tracing::error!(%error, "template failed");
            HttpResponse::InternalServerError().body("the page could not be rendered")
        }
    }
}
