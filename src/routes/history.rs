//! `/import`: fetch TaskRouter's events from its Events API into the log from a page (a task,
//! or a time range), with each run's progress; `/api/imports/{id}` for the same as JSON. The
//! task page's "fetch this task's events" button posts here. Every POST checks its CSRF token.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::html::{format_ms, render};
use super::security::{csrf_for, csrf_refusal};
use super::AppState;
use crate::history::import::Window;
use crate::history::JobView;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/import", web::get().to(import_page))
        .route("/import", web::post().to(start_import))
        .route("/api/imports/{id}", web::get().to(import_json));
}

#[derive(Debug, Default, Deserialize)]
struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    workspace_sid: String,
    #[serde(default)]
    task_sid: String,
    /// `YYYY-MM-DDTHH:MM` (UTC, as a datetime-local input sends it) or ISO 8601.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    minutes: String,
}

#[derive(Debug, Default, Deserialize)]
struct ImportQuery {
    job: Option<u64>,
}

struct JobRow {
    job: JobView,
    started: String,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    csrf: String,
    has_credentials: bool,
    default_workspace: String,
    jobs: Vec<JobRow>,
    /// The job just started, shown first.
    current: Option<u64>,
    any_running: bool,
    problem: Option<String>,
}

fn page(http: &HttpRequest, state: &AppState, current: Option<u64>, problem: Option<String>) -> HttpResponse {
    let jobs: Vec<JobRow> = state
        .history
        .jobs()
        .into_iter()
        .map(|job| JobRow { started: format_ms(job.started_ms), job })
        .collect();
    let mut response = render(&ImportPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        csrf: csrf_for(http, state),
        has_credentials: state.history.has_credentials(),
        default_workspace: state.history.workspaces().first().cloned().unwrap_or_default(),
        any_running: jobs.iter().any(|row| row.job.running),
        jobs,
        current,
        problem: problem.clone(),
    });
    if problem.is_some() {
        *response.status_mut() = actix_web::http::StatusCode::BAD_REQUEST;
    }
    response
}

async fn import_page(
    http: HttpRequest,
    query: web::Query<ImportQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    page(&http, &state, query.job, None)
}

/// A time as the form sends it: ISO 8601, or a `datetime-local` value read as UTC.
fn parse_time(raw: &str, name: &str) -> Result<Option<i64>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
                .map(|t| t.and_utc().timestamp_millis())
        })
        .map(Some)
        .map_err(|_| {
            format!(
                "Nothing was fetched: the {name} time {raw:?} is not a time such as 2026-12-05T09:00 (UTC)."
            )
        })
}

fn window_of(form: &ImportForm) -> Result<Window, String> {
    let task_sid = Some(form.task_sid.trim().to_string()).filter(|t| !t.is_empty());
    if let Some(task) = &task_sid {
        if !task.starts_with("WT") {
            return Err(format!("Nothing was fetched: {task:?} is not a Task Sid (WT…)."));
        }
    }
    let mut since_ms = parse_time(&form.since, "from")?;
    let until_ms = parse_time(&form.until, "until")?;
    let minutes = form.minutes.trim();
    if !minutes.is_empty() {
        let minutes: i64 = minutes.parse().ok().filter(|m| (1..=43_200).contains(m)).ok_or_else(|| {
            "Nothing was fetched: minutes must be a whole number from 1 to 43,200 (30 days).".to_string()
        })?;
        since_ms = Some(chrono::Utc::now().timestamp_millis() - minutes * 60_000);
    }
    if let (Some(since), Some(until)) = (since_ms, until_ms) {
        if since > until {
            return Err("Nothing was fetched: the range ends before it begins.".to_string());
        }
    }
    Ok(Window { since_ms, until_ms, task_sid })
}

async fn start_import(
    http: HttpRequest,
    form: web::Form<ImportForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    let window = match window_of(&form) {
        Ok(window) => window,
        Err(problem) => return page(&http, &state, None, Some(problem)),
    };
    let workspace = Some(form.workspace_sid.clone()).filter(|w| !w.trim().is_empty());
    match state.history.start_import(workspace, window).await {
        Ok(job) => {
            HttpResponse::SeeOther().insert_header(("Location", format!("/import?job={job}"))).finish()
        }
        Err(problem) => page(&http, &state, None, Some(problem)),
    }
}

async fn import_json(id: web::Path<u64>, state: web::Data<AppState>) -> HttpResponse {
    match state.history.job(id.into_inner()) {
        Some(job) => HttpResponse::Ok().json(job),
        None => HttpResponse::NotFound()
            .json(serde_json::json!({"error": "no such import (the page keeps the last 20)"})),
    }
}
