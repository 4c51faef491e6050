//! The pages' actions: accept or reject a reservation, look up any SID through the REST API
//! beside the log, create a task, and set how assignment callbacks are answered (posted from
//! `/settings`, drawn by `settings_page`).
//! Every POST checks its CSRF token; every change is recorded in the log by `crate::actions`.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use taskrouter_protocol::{ReservationSid, ReservationStatus, TaskSid, TaskStatus};

use super::html::{format_ms, render};
use super::security::{csrf_for, csrf_refusal};
use super::settings_page::{settings_view, settings_view_with};
use super::AppState;
use crate::actions::{ActionContext, Lookup};
use crate::instructions::{rule_from_form, InstructionForm};
use crate::projections::details;
use crate::projections::fold::ReservationView;
use crate::storage::requests::{RecordedRequest, RequestFilter};
use crate::storage::settings;
use crate::taskrouter_client::{NewTask, ReservationAnswer, Workflow};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks/new", web::get().to(new_task_page))
        .route("/tasks/new", web::post().to(create_task))
        .route("/tasks/{task_sid}/reservations/{reservation_sid}/accept", web::post().to(accept))
        .route("/tasks/{task_sid}/reservations/{reservation_sid}/reject", web::post().to(reject))
        .route("/lookup", web::get().to(lookup))
        .route("/settings", web::post().to(save_setting))
        .route("/settings/delete", web::post().to(delete_setting))
        .route("/settings/disconnect", web::post().to(disconnect));
}

fn context(http: &HttpRequest, related_to: Option<i64>) -> ActionContext {
    ActionContext { remote_addr: http.peer_addr().map(|a| a.to_string()), related_to }
}

fn plain(status: actix_web::http::StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(message)
}

#[derive(Deserialize)]
struct AnswerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    activity_sid: String,
}

/// Whether the log knows the task, and the row an accept or reject concerns: the
/// reservation's assignment callback, else its `reservation.created` event.
async fn reservation_evidence(
    state: &AppState,
    task_sid: &str,
    reservation_sid: &str,
) -> (bool, Option<i64>) {
    let Some(detail) = details::task_detail(&state.store.pool, task_sid).await.ok().flatten() else {
        return (false, None);
    };
    let related = detail
        .reservations
        .iter()
        .find(|r| r.reservation_sid == reservation_sid)
        .and_then(|r| r.callback_event_id.or(r.created_event_id));
    (true, related)
}

async fn answer(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<AnswerForm>,
    state: web::Data<AppState>,
    answer: ReservationAnswer,
) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    let (task_sid, reservation_sid) = path.into_inner();
    // Nothing malformed is sent to TaskRouter: it would only answer that it is not found.
    let (task, reservation) = match (TaskSid::parse(&task_sid), ReservationSid::parse(&reservation_sid)) {
        (Ok(task), Ok(reservation)) => (task, reservation),
        (Err(error), _) | (_, Err(error)) => {
            return plain(actix_web::http::StatusCode::BAD_REQUEST, format!("Nothing was sent: {error}."))
        }
    };
    let (known, related) = reservation_evidence(&state, &task_sid, &reservation_sid).await;
    let outcome = state.actions.answer(&task, &reservation, answer, context(&http, related)).await;
    match outcome.log_id {
        // Back to the task page, which shows the recorded outcome on its timeline.
        Some(id) if known => HttpResponse::SeeOther()
            .insert_header(("Location", format!("/tasks/{task_sid}?action={id}")))
            .finish(),
        _ => plain(actix_web::http::StatusCode::BAD_GATEWAY, outcome.message),
    }
}

async fn accept(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<AnswerForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    answer(http, path, form, state, ReservationAnswer::Accept).await
}

async fn reject(
    http: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<AnswerForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let activity = Some(form.activity_sid.trim().to_string()).filter(|a| !a.is_empty());
    answer(http, path, form, state, ReservationAnswer::Reject { worker_activity_sid: activity }).await
}

#[derive(Deserialize)]
struct LookupQuery {
    #[serde(default)]
    sid: String,
    /// The action that led here (a task just created), whose outcome is shown.
    action: Option<i64>,
}

/// A reservation TaskRouter reports, and whether the log knows it.
struct RestReservationRow {
    sid: String,
    status: String,
    worker: String,
    worker_sid: Option<String>,
    created: String,
    /// Its status as the log's callbacks left it.
    in_log: Option<ReservationStatus>,
}

#[derive(Template)]
#[template(path = "lookup.html")]
struct LookupPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    sid: String,
    error: Option<String>,
    task_sid: Option<String>,
    lookup: Option<Lookup>,
    rest_reservations: Vec<RestReservationRow>,
    log_reservations: Vec<ReservationView>,
    log_task_status: Option<TaskStatus>,
    recorded: Vec<(i64, String, String, String)>,
    notice: Option<(bool, String)>,
}

async fn lookup(query: web::Query<LookupQuery>, state: web::Data<AppState>) -> HttpResponse {
    let sid = query.sid.trim().to_string();
    let mut page = LookupPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        sid: sid.clone(),
        error: None,
        task_sid: None,
        lookup: None,
        rest_reservations: Vec::new(),
        log_reservations: Vec::new(),
        log_task_status: None,
        recorded: Vec::new(),
        notice: None,
    };
    if let Some(id) = query.action {
        if let Ok(Some(row)) = state.store.request(id).await {
            page.notice = (row.kind == "action").then(|| super::lifecycle_pages::action_summary(&row));
        }
    }
    if sid.is_empty() {
        return render(&page);
    }
    if !taskrouter_protocol::sid::looks_like_any(&sid) {
        page.error =
            Some(format!("{sid:?} is not a SID: two capital letters and 32 hex digits, e.g. WT… or WR…"));
        return render(&page);
    }
    let filter = RequestFilter { sid: Some(sid.clone()), ..RequestFilter::default() };
    let rows: Vec<RecordedRequest> = state.store.requests(&filter, 100).await.unwrap_or_default();
    // The task: the SID itself, or the task the log names with it.
    let task_sid =
        if sid.starts_with("WT") { Some(sid.clone()) } else { rows.iter().find_map(|r| r.task_sid.clone()) };
    page.recorded = rows
        .iter()
        .map(|r| {
            (
                r.id,
                format_ms(r.received_at_ms),
                r.event_type.clone().unwrap_or_else(|| r.endpoint.clone()),
                r.kind.clone(),
            )
        })
        .collect();
    if let Some(task_sid) = &task_sid {
        if let Ok(Some(detail)) = details::task_detail(&state.store.pool, task_sid).await {
            page.log_task_status = Some(detail.task.status);
            page.log_reservations = detail.reservations;
        }
    }
    if sid.starts_with("WT") || task_sid.is_some() {
        let lookup = state.actions.lookup(&sid, task_sid.as_deref()).await;
        page.rest_reservations = lookup
            .reservations
            .iter()
            .map(|r| RestReservationRow {
                sid: r.sid.clone(),
                status: r.reservation_status.clone(),
                worker: r.worker_name.clone().or_else(|| r.worker_sid.clone()).unwrap_or_default(),
                worker_sid: r.worker_sid.clone(),
                created: r.date_created.clone().unwrap_or_default(),
                in_log: page.log_reservations.iter().find(|l| l.reservation_sid == r.sid).map(|l| l.status),
            })
            .collect();
        page.lookup = Some(lookup);
    } else if sid.starts_with("WK") {
        page.error = Some("A worker: see its page for its reservations and activity.".into());
    } else {
        page.error = Some(
            "No recorded request links this SID to a task, so TaskRouter cannot be asked about it by task."
                .into(),
        );
    }
    page.task_sid = task_sid;
    render(&page)
}

#[derive(Template)]
#[template(path = "tasks/new.html")]
struct NewTaskPage {
    storage_problem: Option<String>,
    projection_lag: Option<String>,
    /// Alerts cannot be delivered (the banner).
    alert_problem: Option<String>,
    csrf: String,
    workflows: Vec<Workflow>,
    problem: Option<String>,
    form: NewTaskForm,
}

#[derive(Debug, Clone, Deserialize)]
struct NewTaskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    workflow_sid: String,
    #[serde(default)]
    attributes: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    timeout: String,
}

impl Default for NewTaskForm {
    fn default() -> Self {
        Self {
            csrf: String::new(),
            workflow_sid: String::new(),
            attributes: r#"{"selected_language":"es"}"#.into(),
            priority: String::new(),
            timeout: String::new(),
        }
    }
}

async fn new_task_form(
    http: &HttpRequest,
    state: &AppState,
    form: NewTaskForm,
    problem: Option<String>,
) -> HttpResponse {
    let (workflows, listing_problem) = match state.actions.workspace_for(None).await {
        Ok(workspace) => match state.actions.workflows(&workspace).await {
            Ok(list) => (list, None),
            Err(problem) => (Vec::new(), Some(problem)),
        },
        Err(problem) => (Vec::new(), Some(problem)),
    };
    let mut response = render(&NewTaskPage {
        storage_problem: state.writer_health.problem(),
        projection_lag: state.projection_lag(),
        alert_problem: state.alert_problem(),
        csrf: csrf_for(http, state),
        workflows,
        problem: problem.clone().or(listing_problem),
        form,
    });
    if problem.is_some() {
        *response.status_mut() = actix_web::http::StatusCode::BAD_REQUEST;
    }
    response
}

async fn new_task_page(http: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    new_task_form(&http, &state, NewTaskForm::default(), None).await
}

async fn create_task(
    http: HttpRequest,
    form: web::Form<NewTaskForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    let form = form.into_inner();
    let number = |raw: &str, name: &str| -> Result<Option<i64>, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse().map(Some).map_err(|_| format!("Nothing was sent: the {name} must be a whole number."))
    };
    let (priority, timeout) = match (number(&form.priority, "priority"), number(&form.timeout, "timeout")) {
        (Ok(p), Ok(t)) => (p, t),
        (Err(message), _) | (_, Err(message)) => {
            return new_task_form(&http, &state, form, Some(message)).await
        }
    };
    let task = NewTask {
        workflow_sid: form.workflow_sid.trim().to_string(),
        attributes: form.attributes.clone(),
        priority,
        timeout,
    };
    let (outcome, created) = state.actions.create_task(task, context(&http, None)).await;
    match (created, outcome.log_id) {
        (Some(task_sid), Some(id)) => HttpResponse::SeeOther()
            .insert_header(("Location", format!("/lookup?sid={task_sid}&action={id}")))
            .finish(),
        _ => new_task_form(&http, &state, form, Some(outcome.message)).await,
    }
}

#[derive(Deserialize)]
struct DisconnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    workspace_sid: String,
    #[serde(default)]
    force: String,
}

/// Puts back what `connect` changed in a workspace (CSRF checked; recorded in the log).
async fn disconnect(
    http: HttpRequest,
    form: web::Form<DisconnectForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    let Some(connector) = &state.connector else {
        return settings_view(
            &http,
            &state,
            Some("No REST credentials are configured: disconnect needs them.".into()),
            false,
        )
        .await;
    };
    match connector.disconnect(form.workspace_sid.trim(), form.force == "on" || form.force == "true").await {
        Err(problem) => {
            settings_view(&http, &state, Some(format!("Nothing changed: {problem}")), false).await
        }
        Ok(report) => {
            let mut lines = report.changes.clone();
            lines.extend(report.warnings.iter().cloned());
            if let Some(failure) = &report.failure {
                return settings_view(&http, &state, Some(failure.clone()), false).await;
            }
            if !report.conflicts.is_empty() {
                let message = format!("Not disconnected: {}", report.conflicts.join("; "));
                return settings_view(&http, &state, Some(message), false).await;
            }
            let notice = if lines.is_empty() {
                "Disconnected: nothing needed restoring.".to_string()
            } else {
                format!("Disconnected, originals restored: {}", lines.join("; "))
            };
            settings_view_with(&http, &state, None, false, Some(notice)).await
        }
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    rule: InstructionForm,
}

async fn save_setting(http: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let form: SettingsForm = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(error) => {
            return plain(actix_web::http::StatusCode::BAD_REQUEST, format!("unreadable form: {error}"))
        }
    };
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    let rule = match rule_from_form(&form.rule, chrono::Utc::now().timestamp_millis()) {
        Ok(rule) => rule,
        Err(message) => return settings_view(&http, &state, Some(message), false).await,
    };
    if let Err(error) = settings::save_instruction_rule(&state.store.pool, &rule).await {
        return settings_view(&http, &state, Some(format!("not saved: {error}")), false).await;
    }
    if let Err(error) = state.instructions.refresh(&state.store.pool).await {
        tracing::error!(%error, "saved an instruction but could not reload the rules");
    }
    let sent: Vec<(String, String)> = pairs.into_iter().filter(|(name, _)| name != "csrf").collect();
    state.actions.record_setting(&sent, &rule.answer, &rule.scope, &rule.target, &context(&http, None)).await;
    HttpResponse::SeeOther().insert_header(("Location", "/settings?saved=true")).finish()
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
    scope: String,
    #[serde(default)]
    target: String,
}

async fn delete_setting(
    http: HttpRequest,
    form: web::Form<DeleteForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = csrf_refusal(&http, &state, &form.csrf) {
        return refused;
    }
    if let Err(error) = settings::delete_instruction_rule(&state.store.pool, &form.scope, &form.target).await
    {
        return settings_view(&http, &state, Some(format!("not removed: {error}")), false).await;
    }
    if let Err(error) = state.instructions.refresh(&state.store.pool).await {
        tracing::error!(%error, "removed an instruction but could not reload the rules");
    }
    let sent = vec![
        ("scope".to_string(), form.scope.clone()),
        ("target".to_string(), form.target.clone()),
        ("removed".to_string(), "true".to_string()),
    ];
    state
        .actions
        .record_setting(&sent, "(rule removed)", &form.scope, &form.target, &context(&http, None))
        .await;
    HttpResponse::SeeOther().insert_header(("Location", "/settings?saved=true")).finish()
}
