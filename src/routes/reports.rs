//! Audit reports over HTTP: TaskRouter's own `…/CumulativeStatistics` endpoints (same paths
//! under `/api`, same parameters and JSON), our full report (`/api/reports`, JSON or CSV) and
//! the printable report page (`/reports`).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::reports::render::{self, Resource};
use crate::reports::{self, By, Report, ReportSpec, StatisticsParams};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/Workspaces/{workspace}/CumulativeStatistics", web::get().to(workspace_statistics))
        .route(
            "/api/v1/Workspaces/{workspace}/TaskQueues/{queue}/CumulativeStatistics",
            web::get().to(queue_statistics),
        )
        .route(
            "/api/v1/Workspaces/{workspace}/Workflows/{workflow}/CumulativeStatistics",
            web::get().to(workflow_statistics),
        )
        .route(
            "/api/v1/Workspaces/{workspace}/Workers/CumulativeStatistics",
            web::get().to(workers_statistics),
        )
        .route("/api/reports", web::get().to(report_api))
        .route("/reports", web::get().to(report_page));
}

/// Computes a report off the async runtime (it reads up to millions of rows).
async fn run(state: &web::Data<AppState>, spec: ReportSpec) -> Result<Report, HttpResponse> {
    let path = state.store.path.clone();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let result = web::block(move || {
        let mut conn = reports::open_read_only(&path)?;
        reports::generate(&mut conn, &spec, now_ms, |_| {})
    })
    .await;
    match result {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(error)) => Err(HttpResponse::ServiceUnavailable().json(
            json!({"code": 20500, "message": format!("the log could not be read: {error}"), "status": 503}),
        )),
        Err(error) => {
            Err(HttpResponse::InternalServerError()
                .json(json!({"message": error.to_string(), "status": 500})))
        }
    }
}

fn self_url(request: &HttpRequest) -> String {
    let info = request.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), request.path())
}

async fn statistics(
    request: HttpRequest,
    state: web::Data<AppState>,
    params: StatisticsParams,
    workspace: String,
    scope: Option<(By, String)>,
    resource: Resource,
) -> HttpResponse {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut window = match params.window(now_ms) {
        Ok(window) => window,
        Err(error) => return HttpResponse::BadRequest().json(error.twilio_json()),
    };
    if resource == Resource::Workers && !window.split_by_wait_time.is_empty() {
        // TaskRouter supports SplitByWaitTime on the Workspace, TaskQueue and Workflow resources only.
        window.split_by_wait_time.clear();
    }
    let (by, only) = match scope {
        Some((by, sid)) => (by, Some(sid)),
        None => (By::Workspace, None),
    };
    let spec = ReportSpec {
        workspace_sid: Some(workspace),
        window,
        by,
        only,
        verify: false,
        buckets: 1,
        activity_durations: resource == Resource::Workers,
    };
    match run(&state, spec).await {
        Ok(report) => {
            let Some(figures) = report.figures.first() else {
                return HttpResponse::InternalServerError().finish();
            };
            HttpResponse::Ok().json(render::twilio_json(&report, figures, resource, &self_url(&request)))
        }
        Err(response) => response,
    }
}

async fn workspace_statistics(
    request: HttpRequest,
    path: web::Path<String>,
    params: web::Query<StatisticsParams>,
    state: web::Data<AppState>,
) -> HttpResponse {
    statistics(request, state, params.into_inner(), path.into_inner(), None, Resource::Workspace).await
}

async fn queue_statistics(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    params: web::Query<StatisticsParams>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (workspace, queue) = path.into_inner();
    statistics(request, state, params.into_inner(), workspace, Some((By::Queue, queue)), Resource::TaskQueue)
        .await
}

async fn workflow_statistics(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    params: web::Query<StatisticsParams>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (workspace, workflow) = path.into_inner();
    statistics(
        request,
        state,
        params.into_inner(),
        workspace,
        Some((By::Workflow, workflow)),
        Resource::Workflow,
    )
    .await
}

async fn workers_statistics(
    request: HttpRequest,
    path: web::Path<String>,
    params: web::Query<StatisticsParams>,
    state: web::Data<AppState>,
) -> HttpResponse {
    statistics(request, state, params.into_inner(), path.into_inner(), None, Resource::Workers).await
}

/// The full report's parameters: TaskRouter's window parameters plus scope and options.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct ReportQuery {
    #[serde(default)]
    pub workspace: String,
    #[serde(default)]
    pub by: String,
    /// One queue, workflow or worker Sid (else every one seen).
    #[serde(default)]
    pub sid: String,
    #[serde(default, rename = "StartDate")]
    pub start_date: String,
    #[serde(default, rename = "EndDate")]
    pub end_date: String,
    #[serde(default, rename = "Minutes")]
    pub minutes: String,
    #[serde(default, rename = "SplitByWaitTime")]
    pub split_by_wait_time: String,
    #[serde(default, rename = "TaskChannel")]
    pub task_channel: String,
    /// `true`: walk the whole hash chain and say whether it held.
    #[serde(default)]
    pub verify: String,
    #[serde(default)]
    pub format: String,
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `datetime-local` inputs give `YYYY-MM-DDTHH:MM`; TaskRouter's dates carry seconds.
fn with_seconds(raw: &str) -> Option<String> {
    non_empty(raw).map(|s| if s.len() == 16 { format!("{s}:00") } else { s })
}

impl ReportQuery {
    /// The report to compute.
    ///
    /// # Errors
    /// A bad window parameter or an unknown `by`.
    pub fn spec(&self, now_ms: i64) -> Result<ReportSpec, reports::ParamError> {
        let params = StatisticsParams {
            start_date: with_seconds(&self.start_date),
            end_date: with_seconds(&self.end_date),
            minutes: non_empty(&self.minutes),
            split_by_wait_time: non_empty(&self.split_by_wait_time),
            task_channel: non_empty(&self.task_channel),
        };
        let window = params.window(now_ms)?;
        let by = match self.by.trim() {
            "" | "workspace" => By::Workspace,
            "queue" => By::Queue,
            "workflow" => By::Workflow,
            "worker" => By::Worker,
            other => {
                return Err(reports::ParamError {
                    message: format!("by must be workspace, queue, workflow or worker, got {other:?}"),
                })
            }
        };
        Ok(ReportSpec {
            workspace_sid: non_empty(&self.workspace),
            window,
            by,
            only: non_empty(&self.sid).filter(|_| by != By::Workspace),
            verify: matches!(self.verify.trim(), "true" | "1" | "on" | "yes"),
            buckets: 24,
            // The JSON report lists them; the CSV and the page do not.
            activity_durations: self.format != "csv",
        })
    }
}

async fn report_api(query: web::Query<ReportQuery>, state: web::Data<AppState>) -> HttpResponse {
    let spec = match query.spec(chrono::Utc::now().timestamp_millis()) {
        Ok(spec) => spec,
        Err(error) => return HttpResponse::BadRequest().json(error.twilio_json()),
    };
    let report = match run(&state, spec).await {
        Ok(report) => report,
        Err(response) => return response,
    };
    if query.format == "csv" {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(("Content-Disposition", "attachment; filename=\"taskrouter-report.csv\""))
            .body(render::csv(&report))
    } else {
        HttpResponse::Ok().json(report)
    }
}

/// One scope on the page.
struct ScopeView {
    label: String,
    c: reports::compute::Counters,
    avg_accept: i64,
    avg_cancel: i64,
    p50: String,
    p90: String,
    p99: String,
    per_task: String,
}

#[derive(Template)]
#[template(path = "reports/index.html")]
struct ReportPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    query: ReportQuery,
    error: Option<String>,
    report: Option<Report>,
    scopes: Vec<ScopeView>,
    latency_svg: String,
    outcomes_svg: String,
    chart_scope: String,
    verification: String,
    query_string: String,
    timeout_rows: Vec<(String, String, u64, u64)>,
}

fn seconds(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".into(), |v| format!("{:.1} s", v as f64 / 1000.0))
}

async fn report_page(query: web::Query<ReportQuery>, state: web::Data<AppState>) -> HttpResponse {
    let query = query.into_inner();
    let mut page = ReportPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        query_string: serde_urlencoded::to_string(&query).unwrap_or_default(),
        query: query.clone(),
        error: None,
        report: None,
        scopes: Vec::new(),
        latency_svg: String::new(),
        outcomes_svg: String::new(),
        chart_scope: String::new(),
        verification: String::new(),
        timeout_rows: Vec::new(),
    };
    match query.spec(chrono::Utc::now().timestamp_millis()) {
        Err(error) => page.error = Some(error.message),
        Ok(mut spec) => {
            // The page shows no activity durations.
            spec.activity_durations = false;
            let bucket_ms = (spec.window.end_ms - spec.window.start_ms) / spec.buckets as i64;
            match run(&state, spec).await {
                Err(_) => page.error = Some("the log could not be read".into()),
                Ok(report) => {
                    page.scopes = report
                        .figures
                        .iter()
                        .map(|f| ScopeView {
                            label: f
                                .sid
                                .clone()
                                .or_else(|| report.workspace_sid.clone())
                                .unwrap_or_else(|| "all workspaces".into()),
                            c: f.counters,
                            avg_accept: f.wait_until_accepted.stats().avg,
                            avg_cancel: f.wait_until_canceled.stats().avg,
                            p50: seconds(f.acceptance_latency.p50_ms),
                            p90: seconds(f.acceptance_latency.p90_ms),
                            p99: seconds(f.acceptance_latency.p99_ms),
                            per_task: f
                                .reservations_per_task
                                .mean
                                .map_or("–".into(), |m| format!("{m:.2}")),
                        })
                        .collect();
                    if let Some(first) = report.figures.first() {
                        page.chart_scope = first.sid.clone().unwrap_or_else(|| "the workspace".into());
                        page.latency_svg = render::latency_svg(first);
                        page.outcomes_svg = render::outcomes_svg(first, bucket_ms);
                        let rows = |list: &[reports::compute::TimeoutRate], what: &str| {
                            list.iter()
                                .map(|r| {
                                    let rate = r.rate.map_or("–".into(), |r| format!("{:.1} %", r * 100.0));
                                    (
                                        format!("{what} {}", r.sid),
                                        rate,
                                        r.reservations_timed_out,
                                        r.reservations_answerable,
                                    )
                                })
                                .collect::<Vec<_>>()
                        };
                        page.timeout_rows = rows(&first.timeout_rate_by_queue, "queue");
                        page.timeout_rows.extend(rows(&first.timeout_rate_by_worker, "worker"));
                    }
                    page.verification = match &report.provenance.verification {
                        reports::Verification::NotRun => {
                            "not run (tick “verify the chain” to walk it)".into()
                        }
                        reports::Verification::Passed { rows_checked } => {
                            format!("passed: {rows_checked} rows")
                        }
                        reports::Verification::Failed { first_bad_row, reason, .. } => {
                            format!("FAILED at row {first_bad_row}: {reason}")
                        }
                    };
                    page.report = Some(report);
                }
            }
        }
    }
    super::html::render(&page)
}
