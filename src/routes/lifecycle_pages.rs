//! The lifecycle pages: the dashboard (`/`), tasks (`/tasks`, `/tasks/{WT…}` with its SVG
//! timeline, reservations, flags and action forms), workers (`/workers`, `/workers/{WK…}`) and
//! timeouts (`/timeouts`). Server-rendered and escaped; a little script refreshes the live parts.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use taskrouter_protocol::{ReservationStatus, TaskStatus};

use super::error::{AppError, PageError};
use super::html::{format_ms, render};
use super::security::csrf_for;
use super::svg_timeline::{self, Chart};
use super::AppState;
use crate::projections::details::{self, ActivitySpan, TaskFilter, TaskSummary};
use crate::projections::fold::{Flag, ReservationView, TaskView, TimelineEntry};
use crate::projections::overview::{self, RecentFlag, TimedOut, WorkerSummary};
use crate::storage::log_summary::{self, IngestRate};
use crate::storage::requests::{RecordedRequest, RequestFilter};
use crate::taskrouter_client::Activity;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(dashboard))
        .route("/tasks", web::get().to(tasks))
        .route("/tasks/{task_sid}", web::get().to(task))
        .route("/workers", web::get().to(workers))
        .route("/workers/{worker_sid}", web::get().to(worker))
        .route("/timeouts", web::get().to(timeouts));
}

fn seconds(ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

fn time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "—".to_string(), format_ms)
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    by_status: Vec<(TaskStatus, i64)>,
    total_tasks: i64,
    timeouts: Vec<TimedOut>,
    flags: Vec<RecentFlag>,
    rate: IngestRate,
    signature_failures: i64,
    now: String,
    follower: Option<crate::history::PollerView>,
    reconciler: Option<crate::history::PollerView>,
    imported: u64,
    /// `demo` runs an alert receiver of its own (linked from here).
    demo_alerts: bool,
}

async fn dashboard(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let pool = &state.store.pool;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let loaded = async {
        Ok::<_, sqlx::Error>((
            overview::tasks_by_status(pool).await?,
            overview::timeouts(pool, 10).await?,
            overview::recent_flags(pool, 15).await?,
            log_summary::ingest_rate(pool, now_ms).await?,
            log_summary::signature_failures(pool).await?,
        ))
    }
    .await;
    let (by_status, timeouts, flags, rate, signature_failures) = loaded?;
    Ok(render(&DashboardPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        total_tasks: by_status.iter().map(|(_, n)| n).sum(),
        by_status,
        timeouts,
        flags,
        rate,
        signature_failures,
        now: format_ms(now_ms),
        follower: state.history.follower(),
        reconciler: state.history.reconciler(),
        imported: state.history.imported(),
        demo_alerts: state.alerts.demo_receiver().is_some(),
    }))
}

/// The task list's filters, as typed in the form (empty means "any").
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
struct TaskQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    workflow: String,
    #[serde(default)]
    worker: String,
    #[serde(default)]
    flag: String,
    /// `YYYY-MM-DDTHH:MM` (UTC) or epoch ms.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: String,
}

fn parse_time(raw: &str) -> Result<Option<i64>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(Some(ms));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(raw, format) {
            return Ok(Some(t.and_utc().timestamp_millis()));
        }
    }
    Err(format!("{raw:?} is not a time: use YYYY-MM-DDTHH:MM (UTC) or epoch milliseconds"))
}

impl TaskQuery {
    fn to_filter(&self) -> Result<TaskFilter, String> {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let before = match some(&self.before) {
            Some(raw) => Some(details::parse_cursor(&raw).ok_or("the page cursor is malformed")?),
            None => None,
        };
        Ok(TaskFilter {
            status: some(&self.status),
            flag: some(&self.flag),
            queue: some(&self.queue),
            workflow: some(&self.workflow),
            worker: some(&self.worker),
            since: parse_time(&self.since)?,
            until: parse_time(&self.until)?,
            before,
            limit: 50,
        })
    }
}

struct TaskRow {
    summary: TaskSummary,
    first_seen: String,
}

#[derive(Template)]
#[template(path = "tasks/index.html")]
struct TasksPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    query: TaskQuery,
    error: Option<String>,
    rows: Vec<TaskRow>,
    older: Option<String>,
    queues: Vec<(String, Option<String>)>,
    workflows: Vec<(String, Option<String>)>,
    statuses: &'static [TaskStatus],
    flags: &'static [&'static str],
}

const FLAG_KINDS: &[&str] =
    &["timeout", "overdue", "rejected", "rescinded", "canceled-after-accept", "gap", "impossible"];

async fn tasks(query: web::Query<TaskQuery>, state: web::Data<AppState>) -> HttpResponse {
    let query = query.into_inner();
    let pool = &state.store.pool;
    let (queues, workflows) = overview::queues_and_workflows(pool).await.unwrap_or_default();
    let (rows, error, older) = match query.to_filter() {
        Err(message) => (Vec::new(), Some(message), None),
        Ok(filter) => match details::list_tasks(pool, &filter).await {
            Ok(page) => {
                let older = page.next_before.map(|cursor| {
                    let mut next = query.clone();
                    next.before = cursor;
                    serde_urlencoded::to_string(&next).unwrap_or_default()
                });
                let rows = page
                    .tasks
                    .into_iter()
                    .map(|summary| TaskRow { first_seen: format_ms(summary.task.first_fact_at_ms), summary })
                    .collect();
                (rows, None, older)
            }
            Err(error) => (Vec::new(), Some(format!("the log could not be read: {error}")), None),
        },
    };
    render(&TasksPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        query,
        error,
        rows,
        older,
        queues,
        workflows,
        statuses: TaskStatus::ALL,
        flags: FLAG_KINDS,
    })
}

/// The task page may show the outcome of the action just taken (`?action=LOG_ID`).
#[derive(Deserialize)]
struct TaskPageQuery {
    action: Option<i64>,
}

/// What an action row says happened, in one sentence.
pub fn action_summary(row: &RecordedRequest) -> (bool, String) {
    if row.kind == "alert" {
        return alert_summary(row);
    }
    let verb = row.endpoint.strip_prefix("action.").unwrap_or(&row.endpoint).replace('_', " ");
    match row.upstream.as_ref().and_then(|u| u.error.clone()) {
        Some(error) => (false, format!("{verb}: {error}")),
        None => {
            let answer =
                row.response_body.as_deref().and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok());
            let state = match &answer {
                Some(v) => v
                    .get("reservation_status")
                    .or_else(|| v.get("assignment_status"))
                    .and_then(|s| s.as_str().map(|s| format!(" ({s})")))
                    .unwrap_or_default(),
                // A setting's row holds no JSON answer; a REST call's unreadable answer says so.
                None if row.upstream.is_some() => {
                    ", but its answer could not be read: refresh to see the new state".to_string()
                }
                None => String::new(),
            };
            (
                (200..300).contains(&row.response_status),
                format!(
                    "{verb} sent through the REST API: TaskRouter answered {}{state}",
                    row.response_status
                ),
            )
        }
    }
}

/// Whether an alert was delivered, and to whom (the webhook as logged: redacted).
fn alert_summary(row: &RecordedRequest) -> (bool, String) {
    let kind = row.event_type.as_deref().and_then(|t| t.strip_prefix("alert.")).unwrap_or("alert");
    match &row.rejection {
        None => (true, format!("alert {kind} sent to {}: answered {}", row.path, row.response_status)),
        Some(failure) => (false, format!("alert {kind} to {} not delivered: {failure}", row.path)),
    }
}

/// The actions and alerts recorded for `sid`, oldest first, as timeline entries.
async fn action_entries(state: &AppState, sid: &str) -> Vec<(TimelineEntry, RecordedRequest)> {
    let filter = RequestFilter { sid: Some(sid.to_string()), ..RequestFilter::default() };
    let mut rows: Vec<RecordedRequest> = state
        .store
        .requests(&filter, 500)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.kind == "action" || r.kind == "alert")
        .collect();
    rows.reverse();
    rows.into_iter()
        .map(|row| {
            let (_, summary) = action_summary(&row);
            let entry = TimelineEntry {
                position: -1,
                occurred_at_ms: row.received_at_ms,
                time_source: "action".into(),
                kind: row.endpoint.clone(),
                reservation_sid: row.reservation_sid.clone(),
                worker_sid: row.worker_sid.clone(),
                summary,
                evidence: vec![row.id],
            };
            (entry, row)
        })
        .collect()
}

struct TimelineRow {
    entry: TimelineEntry,
    at: String,
    is_action: bool,
    /// Its evidence was fetched from TaskRouter's Events API, not delivered as a webhook.
    from_events_api: bool,
}

struct ReservationRow {
    view: ReservationView,
    created: String,
    pending: String,
    timeout: String,
}

#[derive(Template)]
#[template(path = "tasks/show.html")]
struct TaskPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    task: TaskView,
    attributes_pretty: String,
    timeline: Vec<TimelineRow>,
    chart: Chart,
    reservations: Vec<ReservationRow>,
    flags: Vec<Flag>,
    notice: Option<(bool, String)>,
    has_pending: bool,
    activities: Vec<Activity>,
    activities_problem: Option<String>,
    csrf: String,
    as_of: String,
    /// A step is missing (a `gap` flag): the page offers to fetch the task's events.
    missing_step: bool,
    /// REST credentials are configured, so the events can be fetched.
    can_fetch_events: bool,
}

async fn task(
    http: HttpRequest,
    task_sid: web::Path<String>,
    query: web::Query<TaskPageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let task_sid = task_sid.into_inner();
    let detail = match details::task_detail(&state.store.pool, &task_sid).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            return Err(AppError::not_found(format!(
                "No task {task_sid} in the log. To ask TaskRouter about it, open /lookup?sid={task_sid}"
            ))
            .into())
        }
        Err(error) => return Err(error.into()),
    };
    let actions = action_entries(&state, &task_sid).await;
    let notice = query
        .action
        .and_then(|id| actions.iter().find(|(_, row)| row.id == id))
        .map(|(_, row)| action_summary(row));
    let mut entries: Vec<TimelineEntry> = detail.timeline.clone();
    entries.extend(actions.into_iter().map(|(entry, _)| entry));
    // Stable: TaskRouter's order is kept, actions slot in by time.
    entries.sort_by_key(|e| e.occurred_at_ms);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let chart_end = detail.as_of_ms.unwrap_or(now_ms).max(entries.last().map_or(0, |e| e.occurred_at_ms));
    let chart = svg_timeline::layout(&detail.reservations, &entries, chart_end);
    let has_pending = detail.reservations.iter().any(|r| r.status == ReservationStatus::Pending);
    let (activities, activities_problem) = if has_pending {
        match state.actions.workspace_for(Some(&task_sid)).await {
            Ok(workspace) => match state.actions.activities(&workspace).await {
                Ok(list) => (list, None),
                Err(problem) => (Vec::new(), Some(problem)),
            },
            Err(problem) => (Vec::new(), Some(problem)),
        }
    } else {
        (Vec::new(), None)
    };
    let evidence: Vec<i64> = entries.iter().flat_map(|e| e.evidence.iter().copied()).collect();
    let from_events_api =
        log_summary::fetched_from_events_api(&state.store.pool, &evidence).await.unwrap_or_default();
    let attributes_pretty = detail
        .task
        .attributes
        .as_deref()
        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .or_else(|| detail.task.attributes.clone())
        .unwrap_or_default();
    Ok(render(&TaskPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        attributes_pretty,
        timeline: entries
            .into_iter()
            .map(|entry| TimelineRow {
                at: format_ms(entry.occurred_at_ms),
                is_action: entry.kind.starts_with("action."),
                from_events_api: entry.evidence.iter().any(|id| from_events_api.contains(id)),
                entry,
            })
            .collect(),
        chart,
        reservations: detail
            .reservations
            .iter()
            .map(|r| ReservationRow {
                created: time(r.created_at_ms),
                pending: seconds(r.pending_ms),
                timeout: seconds(Some(r.timeout_ms)),
                view: r.clone(),
            })
            .collect(),
        missing_step: detail.flags.iter().any(|f| f.kind == "gap"),
        flags: detail.flags,
        notice,
        has_pending,
        activities,
        activities_problem,
        csrf: csrf_for(&http, &state),
        as_of: time(detail.as_of_ms),
        can_fetch_events: state.history.has_credentials(),
        task: detail.task,
    }))
}

struct WorkerRow {
    worker: WorkerSummary,
    since: String,
    mean_accept: String,
}

#[derive(Template)]
#[template(path = "workers/index.html")]
struct WorkersPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    rows: Vec<WorkerRow>,
}

async fn workers(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    match overview::workers(&state.store.pool).await {
        Ok(list) => Ok(render(&WorkersPage {
            storage_problem: state.writer_health.problem(),
            projection_lag: state.projection_lag(),
            alert_problem: state.alert_problem(),
            rows: list
                .into_iter()
                .map(|worker| WorkerRow {
                    since: time(worker.activity_since_ms),
                    mean_accept: seconds(worker.mean_accept_ms),
                    worker,
                })
                .collect(),
        })),
        Err(error) => Err(error.into()),
    }
}

struct SpanRow {
    span: ActivitySpan,
    started: String,
    duration: String,
    /// Bar geometry on the 0–1000 wide activity chart.
    x: i64,
    width: i64,
    class: String,
}

#[derive(Template)]
#[template(path = "workers/show.html")]
struct WorkerPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    summary: WorkerSummary,
    since: String,
    mean_accept: String,
    max_accept: String,
    spans: Vec<SpanRow>,
    reservations: Vec<ReservationRow>,
}

async fn worker(
    worker_sid: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let pool = &state.store.pool;
    let (summary, detail, reservations) = match tokio::try_join!(
        overview::worker_summary(pool, &worker_sid),
        details::worker_detail(pool, &worker_sid),
        overview::worker_reservations(pool, &worker_sid, 200)
    ) {
        Ok((Some(summary), Some(detail), reservations)) => (summary, detail, reservations),
        Ok(_) => return Err(AppError::not_found(format!("No worker {worker_sid} in the log.")).into()),
        Err(error) => return Err(error.into()),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let start = detail.history.first().map_or(now_ms, |s| s.started_at_ms);
    let end = detail
        .history
        .last()
        .map_or(now_ms, |s| s.started_at_ms + s.duration_ms.unwrap_or(0))
        .max(reservations.iter().filter_map(|r| r.finished_at_ms.or(r.created_at_ms)).max().unwrap_or(0))
        .max(start + 1000);
    let scale = |ms: i64| ((ms - start) as f64 / (end - start) as f64 * 1000.0).round() as i64;
    let spans = detail
        .history
        .into_iter()
        .map(|span| {
            let finish = span.started_at_ms + span.duration_ms.unwrap_or(end - span.started_at_ms);
            let name = span.activity_name.clone().unwrap_or_default().to_ascii_lowercase();
            SpanRow {
                started: format_ms(span.started_at_ms),
                duration: span.duration_ms.map_or_else(|| "now".to_string(), |ms| seconds(Some(ms))),
                x: scale(span.started_at_ms),
                width: (scale(finish) - scale(span.started_at_ms)).max(1),
                class: if name.contains("avail") || name.contains("idle") {
                    "ok".into()
                } else if name.contains("off") {
                    "off".into()
                } else {
                    "busy".into()
                },
                span,
            }
        })
        .collect();
    Ok(render(&WorkerPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        since: time(summary.activity_since_ms),
        mean_accept: seconds(summary.mean_accept_ms),
        max_accept: seconds(summary.max_accept_ms),
        summary,
        spans,
        reservations: reservations
            .into_iter()
            .map(|r| ReservationRow {
                created: time(r.created_at_ms),
                pending: seconds(r.pending_ms),
                timeout: seconds(Some(r.timeout_ms)),
                view: r,
            })
            .collect(),
    }))
}

struct TimeoutRow {
    item: TimedOut,
    created: String,
}

#[derive(Template)]
#[template(path = "timeouts.html")]
struct TimeoutsPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    rows: Vec<TimeoutRow>,
}

async fn timeouts(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    match overview::timeouts(&state.store.pool, 500).await {
        Ok(list) => Ok(render(&TimeoutsPage {
            storage_problem: state.writer_health.problem(),
            projection_lag: state.projection_lag(),
            alert_problem: state.alert_problem(),
            rows: list
                .into_iter()
                .map(|item| TimeoutRow { created: time(item.reservation.created_at_ms), item })
                .collect(),
        })),
        Err(error) => Err(error.into()),
    }
}
