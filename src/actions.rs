//! What the pages do to TaskRouter on a user's behalf — accept, reject, create a task, look up
//! a SID, change an assignment instruction — through the one REST client, each change recorded
//! in the log as an `action` row (findable by its SIDs, shown on the task's timeline).
//!
//! An accept or reject is sent only after a fresh fetch shows the reservation still pending, so
//! a stale page cannot answer twice; a refusal is recorded too. Writes are sent once; when
//! TaskRouter's answer does not say what happened (a timeout, a cut connection, a 5xx), the
//! page and the log say the outcome is unknown and to check before trying again.

use std::time::Instant;
use taskrouter_protocol::{ReservationSid, ReservationStatus, TaskSid};

use serde::Serialize;
use sqlx::SqlitePool;

use crate::relay::UpstreamAnswer;
use crate::storage::event_log::NewRecord;
use crate::storage::log_summary;
use crate::storage::writer::Writer;
use crate::taskrouter_client::{
    Activity, ApiError, Exchange, NewTask, Reservation, ReservationAnswer, Task, TaskRouterClient, Workflow,
    WriteOutcome,
};
use taskrouter_protocol::webhook::encode_form;

/// The REST client (when credentials are configured), the workspace, and the log.
#[derive(Clone)]
pub struct Actions {
    client: Option<TaskRouterClient>,
    workspace_sid: Option<String>,
    writer: Writer,
    pool: SqlitePool,
}

/// What an action did, for the page that asked.
#[derive(Debug, Clone, Serialize)]
pub struct ActionOutcome {
    /// The log row recording it (none when nothing was attempted).
    pub log_id: Option<i64>,
    pub ok: bool,
    /// One sentence in plain words, with what to do next when it failed.
    pub message: String,
}

/// Who asked, and which earlier log row the action concerns.
#[derive(Debug, Clone, Default)]
pub struct ActionContext {
    pub remote_addr: Option<String>,
    pub related_to: Option<i64>,
}

/// What one action row says about its subject.
#[derive(Debug, Clone, Default)]
struct Subject {
    workspace_sid: Option<String>,
    task_sid: Option<String>,
    reservation_sid: Option<String>,
    worker_sid: Option<String>,
    task_queue_sid: Option<String>,
    workflow_sid: Option<String>,
}

/// What the REST API holds about a SID, beside what the log holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lookup {
    pub sid: String,
    pub workspace_sid: Option<String>,
    pub task: Option<Task>,
    pub reservations: Vec<Reservation>,
    /// Why the REST side is missing or partial.
    pub problem: Option<String>,
}

/// The status an action row records for a failed call: TaskRouter's, else 504 for a timeout
/// and 502 for a failed connection.
fn status_for_log(error: &ApiError) -> u16 {
    match (error.status, error.timed_out) {
        (None, true) => 504,
        // A 2xx whose body could not be read is no answer either.
        (None, false) | (Some(200..=299), _) => 502,
        (Some(status), _) => status,
    }
}

/// Whether a write's result counts as done: it succeeded, or TaskRouter accepted it and only
/// its answer was unreadable.
fn failure_is_none<T>(result: &Result<T, ApiError>) -> bool {
    match result {
        Ok(_) => true,
        Err(error) => error.write_outcome == Some(WriteOutcome::AppliedUnreadable),
    }
}

/// What the log records as the failure of a write: the user's message, unless it was applied.
fn failure_to_record<T>(result: &Result<T, ApiError>, message: &str) -> Option<String> {
    (!failure_is_none(result)).then(|| message.to_string())
}

/// The REST path of a URL (the log's `path` column).
fn path_of(url: &str, base: &str) -> String {
    url.strip_prefix(base).unwrap_or(url).to_string()
}

impl Actions {
    /// `client`: the server's one REST client, when credentials are configured.
    pub fn new(
        client: Option<TaskRouterClient>,
        workspace_sid: Option<String>,
        writer: Writer,
        pool: SqlitePool,
    ) -> Self {
        let workspace_sid = workspace_sid.filter(|w| !w.is_empty());
        Self { client, workspace_sid, writer, pool }
    }

    fn client(&self) -> Result<&TaskRouterClient, String> {
        self.client.as_ref().ok_or_else(|| {
            "No REST credentials are configured: start the tracer with --account-sid and --auth-token \
             (or --api-key and --api-secret)."
                .to_string()
        })
    }

    /// The workspace to act in: configured, else recorded with `sid`, else the latest recorded.
    ///
    /// # Errors
    /// A sentence when none is known.
    pub async fn workspace_for(&self, sid: Option<&str>) -> Result<String, String> {
        if let Some(workspace) = &self.workspace_sid {
            return Ok(workspace.clone());
        }
        let recorded = match sid {
            Some(sid) => log_summary::workspace_of(&self.pool, sid).await.ok().flatten(),
            None => None,
        };
        let recorded = match recorded {
            Some(w) => Some(w),
            None => log_summary::latest_workspace(&self.pool).await.ok().flatten(),
        };
        recorded.ok_or_else(|| {
            "The workspace is unknown: set --workspace-sid (TWILIO_WORKSPACE_SID), or wait for a callback \
             that names it."
                .to_string()
        })
    }

    /// The workspace's activities, for the reject form.
    ///
    /// # Errors
    /// A sentence for the user.
    pub async fn activities(&self, workspace: &str) -> Result<Vec<Activity>, String> {
        self.client()?.list_activities(workspace).await.map_err(|e| e.summary)
    }

    /// The workspace's workflows, for the create-task form.
    ///
    /// # Errors
    /// A sentence for the user.
    pub async fn workflows(&self, workspace: &str) -> Result<Vec<Workflow>, String> {
        self.client()?.list_workflows(workspace).await.map_err(|e| e.summary)
    }

    /// Accepts or rejects `reservation` if, freshly fetched, it is still pending.
    pub async fn answer(
        &self,
        task_sid: &TaskSid,
        reservation_sid: &ReservationSid,
        answer: ReservationAnswer,
        context: ActionContext,
    ) -> ActionOutcome {
        let (task_sid, reservation_sid) = (task_sid.as_str(), reservation_sid.as_str());
        let started = Instant::now();
        let endpoint = match answer {
            ReservationAnswer::Accept => "action.accept",
            ReservationAnswer::Reject { .. } => "action.reject",
        };
        let verb = if endpoint == "action.accept" { "accept" } else { "reject" };
        let (client, workspace) = match (self.client(), self.workspace_for(Some(task_sid)).await) {
            (Ok(client), Ok(workspace)) => (client, workspace),
            (Err(message), _) | (_, Err(message)) => {
                return ActionOutcome { log_id: None, ok: false, message }
            }
        };
        let mut subject = Subject {
            workspace_sid: Some(workspace.clone()),
            task_sid: Some(task_sid.to_string()),
            reservation_sid: Some(reservation_sid.to_string()),
            ..Subject::default()
        };
        let intended = match &answer {
            ReservationAnswer::Accept => {
                vec![("ReservationStatus".to_string(), ReservationStatus::Accepted.as_str().to_string())]
            }
            ReservationAnswer::Reject { worker_activity_sid } => {
                let mut form =
                    vec![("ReservationStatus".to_string(), ReservationStatus::Rejected.as_str().to_string())];
                if let Some(activity) = worker_activity_sid {
                    form.push(("WorkerActivitySid".to_string(), activity.clone()));
                }
                form
            }
        };
        let rest_path = format!("/v1/Workspaces/{workspace}/Tasks/{task_sid}/Reservations/{reservation_sid}");
        // The fresh look: only a pending reservation is answered.
        let refusal = match client.fetch_reservation(&workspace, task_sid, reservation_sid).await {
            Err(error) => Some((
                status_for_log(&error),
                error.message.clone(),
                format!("Nothing was sent: the reservation could not be checked first. {}", error.summary),
            )),
            Ok(fresh) => {
                subject.worker_sid = fresh.worker_sid.clone();
                (fresh.reservation_status != ReservationStatus::Pending.as_str()).then(|| {
                    (
                        409,
                        serde_json::to_string(&fresh).unwrap_or_default(),
                        format!(
                            "Nothing was sent: reservation {reservation_sid} is no longer pending — TaskRouter says it \
                             is {} now. Refresh the page to see what happened.",
                            fresh.reservation_status
                        ),
                    )
                })
            }
        };
        if let Some((status, body, message)) = refusal {
            let url = format!("{}{rest_path}", client.base_url());
            let upstream = UpstreamAnswer {
                url,
                status: Some(status),
                content_type: Some("application/json".into()),
                headers: Vec::new(),
                body: body.clone(),
                latency_ms: started.elapsed().as_millis() as u64,
                error: Some(message.clone()),
                check: None,
                resigned: false,
            };
            let log_id = self
                .record(
                    endpoint,
                    &rest_path,
                    &intended,
                    status,
                    body,
                    Some(upstream),
                    Some(message.clone()),
                    &subject,
                    &context,
                    started,
                )
                .await;
            return ActionOutcome { log_id, ok: false, message };
        }
        let (result, exchange) =
            client.answer_reservation(&workspace, task_sid, reservation_sid, &answer).await;
        let message = match &result {
            Ok(reservation) => format!(
                "Sent {verb}: TaskRouter answered {} — reservation {reservation_sid} is {} now.",
                exchange.status.unwrap_or(200),
                reservation.reservation_status
            ),
            Err(error) => match error.write_outcome {
                Some(WriteOutcome::Unknown) => {
                    format!("The {verb} was sent once and not retried. {}", error.summary)
                }
                Some(WriteOutcome::AppliedUnreadable) => format!("Sent {verb}. {}", error.summary),
                _ => format!("The {verb} failed. {}", error.summary),
            },
        };
        let failure = failure_to_record(&result, &message);
        let log_id = self
            .record_exchange(endpoint, &exchange, client.base_url(), failure, &subject, &context, started)
            .await;
        ActionOutcome { log_id, ok: failure_is_none(&result), message }
    }

    /// Creates a task after checking its attributes are a JSON object.
    pub async fn create_task(
        &self,
        task: NewTask,
        context: ActionContext,
    ) -> (ActionOutcome, Option<String>) {
        let started = Instant::now();
        match serde_json::from_str::<serde_json::Value>(&task.attributes) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                let message = "Nothing was sent: the attributes must be a JSON object, e.g. {\"selected_language\":\"es\"}.".to_string();
                return (ActionOutcome { log_id: None, ok: false, message }, None);
            }
            Err(error) => {
                let message = format!(
                    "Nothing was sent: the attributes are not valid JSON ({error}). Write an object such as {{\"selected_language\":\"es\"}}."
                );
                return (ActionOutcome { log_id: None, ok: false, message }, None);
            }
        }
        if !(task.workflow_sid.starts_with("WW") && task.workflow_sid.len() == 34) {
            let message = format!("Nothing was sent: {:?} is not a Workflow SID (WW…).", task.workflow_sid);
            return (ActionOutcome { log_id: None, ok: false, message }, None);
        }
        let (client, workspace) = match (self.client(), self.workspace_for(None).await) {
            (Ok(client), Ok(workspace)) => (client, workspace),
            (Err(message), _) | (_, Err(message)) => {
                return (ActionOutcome { log_id: None, ok: false, message }, None)
            }
        };
        let (result, exchange) = client.create_task(&workspace, &task).await;
        let created = result.as_ref().ok().map(|t| t.sid.clone());
        let subject = Subject {
            workspace_sid: Some(workspace),
            task_sid: created.clone(),
            workflow_sid: Some(task.workflow_sid.clone()),
            task_queue_sid: result.as_ref().ok().and_then(|t| t.task_queue_sid.clone()),
            ..Subject::default()
        };
        let message = match &result {
            Ok(t) => format!("Created task {} ({}).", t.sid, t.assignment_status),
            Err(error) => match error.write_outcome {
                Some(WriteOutcome::Unknown) => format!(
                    "The create was sent once and not retried. {} Look for the task (Tasks, or Look up) \
                     before creating it again: a second create makes a second task.",
                    error.summary
                ),
                Some(WriteOutcome::AppliedUnreadable) => {
                    format!("The task was created, but its SID is unknown. {}", error.summary)
                }
                _ => format!("The task was not created. {}", error.summary),
            },
        };
        let failure = failure_to_record(&result, &message);
        let log_id = self
            .record_exchange(
                "action.create_task",
                &exchange,
                client.base_url(),
                failure,
                &subject,
                &context,
                started,
            )
            .await;
        (ActionOutcome { log_id, ok: failure_is_none(&result), message }, created)
    }

    /// What the REST API holds about `sid`: a task and its reservations (a reservation SID is
    /// found through the task the log names with it).
    pub async fn lookup(&self, sid: &str, task_hint: Option<&str>) -> Lookup {
        let mut lookup = Lookup { sid: sid.to_string(), ..Lookup::default() };
        let client = match self.client() {
            Ok(client) => client,
            Err(message) => {
                lookup.problem = Some(message);
                return lookup;
            }
        };
        let workspace = match self.workspace_for(Some(sid)).await {
            Ok(workspace) => workspace,
            Err(message) => {
                lookup.problem = Some(message);
                return lookup;
            }
        };
        lookup.workspace_sid = Some(workspace.clone());
        let Some(task_sid) =
            task_hint.map(str::to_string).or_else(|| sid.starts_with("WT").then(|| sid.to_string()))
        else {
            lookup.problem = Some(
                "The REST API is searched by task: this SID is not a task, and no recorded callback links it to one."
                    .into(),
            );
            return lookup;
        };
        match client.fetch_task(&workspace, &task_sid).await {
            Ok(task) => lookup.task = Some(task),
            Err(error) => {
                lookup.problem = Some(error.summary);
                return lookup;
            }
        }
        match client.list_reservations(&workspace, &task_sid).await {
            Ok(reservations) => lookup.reservations = reservations,
            Err(error) => lookup.problem = Some(error.summary),
        }
        lookup
    }

    /// Records a settings change (the assignment instruction) in the log.
    pub async fn record_setting(
        &self,
        form: &[(String, String)],
        answer: &str,
        scope: &str,
        target: &str,
        context: &ActionContext,
    ) -> Option<i64> {
        let subject = Subject {
            task_queue_sid: (scope == "queue").then(|| target.to_string()),
            workflow_sid: (scope == "workflow").then(|| target.to_string()),
            ..Subject::default()
        };
        self.record(
            "action.settings",
            "/settings",
            form,
            200,
            answer.to_string(),
            None,
            None,
            &subject,
            context,
            Instant::now(),
        )
        .await
    }

    /// Records a REST write and TaskRouter's answer; `failure` is what the user was told when
    /// it did not clearly succeed.
    #[allow(clippy::too_many_arguments)]
    async fn record_exchange(
        &self,
        endpoint: &str,
        exchange: &Exchange,
        base_url: &str,
        failure: Option<String>,
        subject: &Subject,
        context: &ActionContext,
        started: Instant,
    ) -> Option<i64> {
        // No answer: 504 when it timed out, 502 when the connection failed.
        let status = exchange.status.unwrap_or(if exchange.timed_out { 504 } else { 502 });
        let upstream = UpstreamAnswer {
            url: exchange.url.clone(),
            status: exchange.status,
            content_type: Some("application/json".into()),
            headers: Vec::new(),
            body: exchange.body.clone(),
            latency_ms: started.elapsed().as_millis() as u64,
            error: failure.clone(),
            check: None,
            resigned: false,
        };
        self.record(
            endpoint,
            &path_of(&exchange.url, base_url),
            &exchange.form,
            status,
            exchange.body.clone(),
            Some(upstream),
            failure,
            subject,
            context,
            started,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        endpoint: &str,
        path: &str,
        form: &[(String, String)],
        status: u16,
        response_body: String,
        upstream: Option<UpstreamAnswer>,
        failure: Option<String>,
        subject: &Subject,
        context: &ActionContext,
        started: Instant,
    ) -> Option<i64> {
        let mut record = NewRecord {
            remote_addr: context.remote_addr.clone(),
            signature_detail: Some(
                "an action sent from the tracer's pages, not a TaskRouter delivery".into(),
            ),
            rejection: Some(failure.unwrap_or_else(|| "an action, not a TaskRouter fact".into())),
            response_status: status,
            response_body: Some(response_body),
            upstream: upstream.and_then(|u| serde_json::to_string(&u).ok()),
            related_to: context.related_to,
            ..NewRecord::action(
                endpoint,
                path,
                encode_form(form).into_bytes(),
                chrono::Utc::now().timestamp_millis(),
            )
        };
        if let Some(facts) = record.facts.as_mut() {
            facts.workspace_sid.clone_from(&subject.workspace_sid);
            facts.task_sid.clone_from(&subject.task_sid);
            facts.reservation_sid.clone_from(&subject.reservation_sid);
            facts.worker_sid.clone_from(&subject.worker_sid);
            facts.task_queue_sid.clone_from(&subject.task_queue_sid);
            facts.workflow_sid.clone_from(&subject.workflow_sid);
        }
        match self.writer.append(record, started).await {
            Ok(appended) => Some(appended.id),
            Err(error) => {
                tracing::error!(%error, endpoint, "an action was sent but could not be recorded");
                None
            }
        }
    }
}
