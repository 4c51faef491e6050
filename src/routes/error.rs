//! The HTTP edge's one error type: what went wrong, in words, and the status it is answered
//! with. Handlers return it through [`JsonError`] (JSON, `{"error": …}` and any details, under
//! `/api`) or [`PageError`] (the `error.html` page), so every error a user meets reads the same
//! way wherever it comes from.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    status: StatusCode,
    message: String,
    /// A detail for the JSON answer, as a key and value (the SID that was not found).
    detail: Option<(&'static str, String)>,
}

impl AppError {
    /// Nothing of that name is in the log.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.into(), detail: None }
    }

    /// The request itself is wrong: saying so again will not help.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), detail: None }
    }

    /// The log cannot be read right now (the request may succeed later).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, message: message.into(), detail: None }
    }

    /// Adds a detail the JSON answer carries beside the message.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.detail = Some((key, value.into()));
        self
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self::unavailable(format!("the log could not be read: {error}"))
    }
}

/// An [`AppError`] answered as JSON.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub AppError);

impl<E: Into<AppError>> From<E> for JsonError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl ResponseError for JsonError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = serde_json::json!({ "error": self.0.message });
        if let Some((key, value)) = &self.0.detail {
            body[*key] = value.clone().into();
        }
        HttpResponse::build(self.0.status).json(body)
    }
}

/// An [`AppError`] answered as an HTML page.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    // The layout's banners: the error itself says what is wrong.
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    alert_problem: Option<String>,
    heading: &'a str,
    message: &'a str,
    status: u16,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let heading = match self.0.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::SERVICE_UNAVAILABLE => "The log cannot be read right now",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            storage_problem: None,
            projection_lag: None,
            alert_problem: None,
            heading,
            message: &self.0.message,
            status: self.0.status.as_u16(),
        };
        match page.render() {
            Ok(html) => {
                HttpResponse::build(self.0.status).content_type("text/html; charset=utf-8").body(html)
            }
            Err(_) => HttpResponse::build(self.0.status)
                .content_type("text/plain; charset=utf-8")
                .body(self.0.message.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    fn body_text(response: HttpResponse) -> String {
        String::from_utf8(response.into_body().try_into_bytes().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn the_api_answers_json_with_its_detail() {
        let error = JsonError(AppError::not_found("no such task").with("task_sid", "WT1"));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value = serde_json::from_str(&body_text(response)).unwrap();
        assert_eq!(body, serde_json::json!({ "error": "no such task", "task_sid": "WT1" }));
    }

    #[test]
    fn a_page_answers_an_escaped_html_page() {
        let error = PageError(AppError::unavailable("disk <gone>"));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
        let html = body_text(response);
        assert!(html.contains("disk &#60;gone&#62;") && !html.contains("<gone>"), "{html}");
        assert!(html.contains("HTTP 503"), "{html}");
    }
}
