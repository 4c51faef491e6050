//! `connect` and `disconnect`: putting the tracer in front of a workspace (its
//! `EventCallbackUrl` and each Workflow's `AssignmentCallbackUrl` pointed at the tracer) and
//! putting everything back.
//!
//! The originals are recorded in the log before anything is changed (a plan row), and each
//! write is recorded before it is sent and after its answer, so `disconnect` works after a
//! crash of whatever ran `connect`. Nothing else is touched (not `EventsFilter`, not the
//! fallback URLs). A write refused midway rolls back what was changed, or says precisely what
//! is left and how to finish. `disconnect` restores a value only while it is still the one
//! `connect` set; one changed since is left and named, unless forced.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::storage::connections::{self, DONE_ENDPOINT, PLAN_ENDPOINT};
use crate::storage::event_log::NewRecord;
use crate::storage::writer::Writer;
use crate::taskrouter_client::{ApiError, Exchange, TaskRouterClient};
use taskrouter_protocol::webhook::encode_form;

/// Event types the timelines need; an `EventsFilter` without them hides steps.
pub const NEEDED_EVENT_TYPES: [&str; 12] = [
    "task.created",
    "task.canceled",
    "task.completed",
    "task.wrapup",
    "reservation.created",
    "reservation.accepted",
    "reservation.rejected",
    "reservation.timeout",
    "reservation.canceled",
    "reservation.rescinded",
    "reservation.completed",
    "worker.activity.update",
];

/// What `connect` recorded: the originals and what it set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub workspace_sid: String,
    pub public_url: String,
    /// The Workspace's `EventCallbackUrl` before (`None`: empty).
    pub original_event_callback_url: Option<String>,
    /// Each Workflow's `AssignmentCallbackUrl` before.
    pub original_assignment_callback_urls: BTreeMap<String, Option<String>>,
    pub event_callback_url: String,
    pub assignment_callback_url: String,
}

impl Plan {
    fn for_url(workspace_sid: &str, public_url: &str) -> Self {
        let base = public_url.trim_end_matches('/');
        Self {
            workspace_sid: workspace_sid.to_string(),
            public_url: base.to_string(),
            original_event_callback_url: None,
            original_assignment_callback_urls: BTreeMap::new(),
            event_callback_url: format!("{base}/webhooks/events"),
            assignment_callback_url: format!("{base}/webhooks/assignment"),
        }
    }
}

/// Where the user's own endpoints were, for forwarding while connected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginalTargets {
    pub event_callback_url: Option<String>,
    pub assignment_callback_urls: HashMap<String, String>,
}

/// The targets shared with ingest (empty while not connected).
pub type SharedTargets = Arc<RwLock<OriginalTargets>>;

impl OriginalTargets {
    fn of(plan: &Plan) -> Self {
        Self {
            event_callback_url: plan.original_event_callback_url.clone(),
            assignment_callback_urls: plan
                .original_assignment_callback_urls
                .iter()
                .filter_map(|(sid, url)| url.clone().map(|url| (sid.clone(), url)))
                .collect(),
        }
    }
}

/// One field change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `WS…` or `WW…`.
    pub resource: String,
    /// `EventCallbackUrl` or `AssignmentCallbackUrl`.
    pub field: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Change {
    fn describe(&self) -> String {
        let show = |v: &Option<String>| v.clone().map_or_else(|| "(empty)".to_string(), |v| format!("{v:?}"));
        format!("{} {}: {} → {}", self.resource, self.field, show(&self.from), show(&self.to))
    }
}

/// What a `connect` or `disconnect` did, in words.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Done (or, for a dry run, to do).
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
    /// Values left alone because someone changed them since `connect` (`disconnect` without
    /// `--force`).
    pub conflicts: Vec<String>,
    /// What failed and how to finish, when it did not end well.
    pub failure: Option<String>,
}

/// The context every operation needs.
#[derive(Clone)]
pub struct Connector {
    pub client: TaskRouterClient,
    pub writer: Writer,
    pub pool: SqlitePool,
    /// Forwarding targets for ingest, kept in step.
    pub targets: SharedTargets,
}

fn field_of(resource: &str) -> &'static str {
    if resource.starts_with("WS") {
        "EventCallbackUrl"
    } else {
        "AssignmentCallbackUrl"
    }
}

impl Connector {
    /// The plan in force for `workspace`, from the log.
    ///
    /// # Errors
    /// A sentence when the log cannot be read.
    pub async fn active_plan(&self, workspace: &str) -> Result<Option<(i64, Plan)>, String> {
        let row =
            connections::active_plan(&self.pool, workspace).await.map_err(|e| format!("the log: {e}"))?;
        row.map(|row| {
            serde_json::from_slice::<Plan>(&row.body)
                .map(|plan| (row.id, plan))
                .map_err(|e| format!("plan #{}: {e}", row.id))
        })
        .transpose()
    }

    /// Loads the forwarding targets of `workspace`'s plan in force (a restart while connected).
    pub async fn load_targets(&self, workspace: &str) {
        if let Ok(Some((_, plan))) = self.active_plan(workspace).await {
            *self.targets.write().unwrap_or_else(|p| p.into_inner()) = OriginalTargets::of(&plan);
        }
    }

    /// Points `workspace` at `public_url`; with `dry_run`, only says what it would do.
    ///
    /// # Errors
    /// A sentence when the workspace or its workflows cannot be read, or the log written.
    pub async fn connect(&self, workspace: &str, public_url: &str, dry_run: bool) -> Result<Report, String> {
        let current =
            self.client.fetch_workspace(workspace).await.map_err(|e| read_failure(workspace, &e))?;
        let workflows =
            self.client.all_workflows(workspace).await.map_err(|e| read_failure(workspace, &e))?;
        let mut report = Report::default();
        if let Some(filter) = current.events_filter.as_deref().filter(|f| !f.trim().is_empty()) {
            let kept: Vec<&str> = filter.split(',').map(str::trim).collect();
            let dropped: Vec<&str> =
                NEEDED_EVENT_TYPES.iter().copied().filter(|t| !kept.contains(t)).collect();
            if !dropped.is_empty() {
                report.warnings.push(format!(
                    "the Workspace's EventsFilter leaves out {}: those steps will be missing from the timelines \
                     (connect does not change EventsFilter)",
                    dropped.join(", ")
                ));
            }
        }
        // Connected already: the originals recorded then stay the originals.
        let previous = self.active_plan(workspace).await?;
        let mut plan = match &previous {
            Some((_, plan)) => Plan { public_url: plan.public_url.clone(), ..plan.clone() },
            None => {
                let mut plan = Plan::for_url(workspace, public_url);
                plan.original_event_callback_url =
                    current.event_callback_url.clone().filter(|u| !u.is_empty());
                plan
            }
        };
        let wanted = Plan::for_url(workspace, public_url);
        plan.event_callback_url = wanted.event_callback_url.clone();
        plan.assignment_callback_url = wanted.assignment_callback_url.clone();
        plan.public_url = wanted.public_url.clone();
        for workflow in &workflows {
            plan.original_assignment_callback_urls
                .entry(workflow.sid.clone())
                .or_insert_with(|| workflow.assignment_callback_url.clone().filter(|u| !u.is_empty()));
        }
        for url in std::iter::once(&plan.original_event_callback_url)
            .chain(plan.original_assignment_callback_urls.values())
            .flatten()
        {
            if url.starts_with(&plan.public_url) && previous.is_none() {
                report.warnings.push(format!(
                    "{url} already points at the tracer, and no earlier connect is recorded in this log: \
                     disconnect will leave it as it is"
                ));
            }
        }
        let mut changes = Vec::new();
        if current.event_callback_url.as_deref() != Some(plan.event_callback_url.as_str()) {
            changes.push(Change {
                resource: workspace.to_string(),
                field: "EventCallbackUrl",
                from: current.event_callback_url.clone().filter(|u| !u.is_empty()),
                to: Some(plan.event_callback_url.clone()),
            });
        }
        for workflow in &workflows {
            if workflow.assignment_callback_url.as_deref() != Some(plan.assignment_callback_url.as_str()) {
                changes.push(Change {
                    resource: workflow.sid.clone(),
                    field: "AssignmentCallbackUrl",
                    from: workflow.assignment_callback_url.clone().filter(|u| !u.is_empty()),
                    to: Some(plan.assignment_callback_url.clone()),
                });
            }
        }
        if dry_run {
            report.changes = changes.iter().map(Change::describe).collect();
            return Ok(report);
        }
        let plan_id = self.record_plan(&plan, previous.as_ref().map(|(id, _)| *id)).await?;
        *self.targets.write().unwrap_or_else(|p| p.into_inner()) = OriginalTargets::of(&plan);
        let mut applied: Vec<Change> = Vec::new();
        for change in changes {
            match self.write(workspace, &change, "action.connect", plan_id).await {
                Ok(()) => {
                    report.changes.push(change.describe());
                    applied.push(change);
                }
                Err(error) => {
                    report.failure = Some(self.roll_back(workspace, plan_id, &change, &error, applied).await);
                    return Ok(report);
                }
            }
        }
        Ok(report)
    }

    /// Undoes `applied` (newest first) after `failed` was refused; says what happened.
    async fn roll_back(
        &self,
        workspace: &str,
        plan_id: i64,
        failed: &Change,
        error: &str,
        applied: Vec<Change>,
    ) -> String {
        let mut left = Vec::new();
        for change in applied.iter().rev() {
            let undo = Change {
                resource: change.resource.clone(),
                field: change.field,
                from: change.to.clone(),
                to: change.from.clone(),
            };
            if let Err(undo_error) = self.write(workspace, &undo, "action.connect.rollback", plan_id).await {
                left.push(format!(
                    "{} is still {:?}: set its {} back to {} by hand, or run `disconnect --workspace-sid {workspace}` ({undo_error})",
                    change.resource,
                    change.to.clone().unwrap_or_default(),
                    change.field,
                    change.from.clone().map_or_else(|| "empty".to_string(), |u| format!("{u:?}"))
                ));
            }
        }
        if left.is_empty() {
            // Nothing is connected any more: the plan is closed.
            let _ = self.record_done(workspace, plan_id, "rolled back after a refused change").await;
            *self.targets.write().unwrap_or_else(|p| p.into_inner()) = OriginalTargets::default();
            format!(
                "{} was refused ({error}); the {} change(s) made before it were rolled back: the workspace is as it was",
                failed.describe(),
                applied.len()
            )
        } else {
            format!(
                "{} was refused ({error}), and rolling back failed: {}. The plan stays recorded, so `disconnect` can finish it.",
                failed.describe(),
                left.join("; ")
            )
        }
    }

    /// Puts back what `connect` changed in `workspace`.
    ///
    /// # Errors
    /// A sentence when the workspace cannot be read or the log written.
    pub async fn disconnect(&self, workspace: &str, force: bool) -> Result<Report, String> {
        let mut report = Report::default();
        let Some((plan_id, plan)) = self.active_plan(workspace).await? else {
            report
                .warnings
                .push(format!("{workspace} is not connected (no connect in force is recorded in this log)"));
            return Ok(report);
        };
        let current =
            self.client.fetch_workspace(workspace).await.map_err(|e| read_failure(workspace, &e))?;
        let workflows =
            self.client.all_workflows(workspace).await.map_err(|e| read_failure(workspace, &e))?;
        let mut wanted: Vec<(String, Option<String>, Option<String>, String)> = vec![(
            workspace.to_string(),
            current.event_callback_url.clone().filter(|u| !u.is_empty()),
            plan.original_event_callback_url.clone(),
            plan.event_callback_url.clone(),
        )];
        for workflow in &workflows {
            if let Some(original) = plan.original_assignment_callback_urls.get(&workflow.sid) {
                wanted.push((
                    workflow.sid.clone(),
                    workflow.assignment_callback_url.clone().filter(|u| !u.is_empty()),
                    original.clone(),
                    plan.assignment_callback_url.clone(),
                ));
            }
        }
        let mut failures = Vec::new();
        for (resource, now, original, set) in wanted {
            if now == original {
                continue;
            }
            let field = field_of(&resource);
            if now.as_deref() != Some(set.as_str()) && !force {
                report.conflicts.push(format!(
                    "{resource} {field} is {} now, not the {set:?} connect set: left as it is (--force restores {})",
                    now.clone().map_or_else(|| "empty".to_string(), |u| format!("{u:?}")),
                    original.clone().map_or_else(|| "it to empty".to_string(), |u| format!("{u:?}"))
                ));
                continue;
            }
            let change = Change { resource, field, from: now, to: original };
            match self.write(workspace, &change, "action.disconnect", plan_id).await {
                Ok(()) => report.changes.push(change.describe()),
                Err(error) => failures.push(format!("{}: {error}", change.describe())),
            }
        }
        if !failures.is_empty() {
            report.failure = Some(format!(
                "not everything was restored: {}. Run disconnect again to finish.",
                failures.join("; ")
            ));
        } else if report.conflicts.is_empty() {
            self.record_done(workspace, plan_id, "every original restored").await?;
            *self.targets.write().unwrap_or_else(|p| p.into_inner()) = OriginalTargets::default();
        }
        Ok(report)
    }

    /// Sends one change, recorded before it is sent and after its answer.
    async fn write(
        &self,
        workspace: &str,
        change: &Change,
        endpoint: &str,
        plan_id: i64,
    ) -> Result<(), String> {
        let form = vec![(change.field.to_string(), change.to.clone().unwrap_or_default())];
        let path = if change.resource.starts_with("WS") {
            format!("/v1/Workspaces/{workspace}")
        } else {
            format!("/v1/Workspaces/{workspace}/Workflows/{}", change.resource)
        };
        let intent = self
            .append(
                endpoint,
                workspace,
                &change.resource,
                &path,
                encode_form(&form).into_bytes(),
                0,
                Some(format!("about to send: {}", change.describe())),
                Some(plan_id),
            )
            .await?;
        let (outcome, exchange): (Result<(), ApiError>, Exchange) = if change.resource.starts_with("WS") {
            let (result, exchange) = self.client.update_workspace(workspace, form).await;
            (result.map(|_| ()), exchange)
        } else {
            let (result, exchange) = self.client.update_workflow(workspace, &change.resource, form).await;
            (result.map(|_| ()), exchange)
        };
        let status = exchange.status.unwrap_or(if exchange.timed_out { 504 } else { 502 });
        let note = match &outcome {
            Ok(()) => format!("sent: {}", change.describe()),
            Err(error) => format!("refused or failed: {}", error.summary),
        };
        self.append(
            endpoint,
            workspace,
            &change.resource,
            &path,
            encode_form(&exchange.form).into_bytes(),
            status,
            Some(note),
            Some(intent),
        )
        .await?;
        outcome.map_err(|e| e.summary)
    }

    async fn record_plan(&self, plan: &Plan, superseding: Option<i64>) -> Result<i64, String> {
        let body = serde_json::to_vec(plan).expect("a plan serialises");
        self.append(
            PLAN_ENDPOINT,
            &plan.workspace_sid,
            &plan.workspace_sid,
            &format!("/v1/Workspaces/{}", plan.workspace_sid),
            body,
            200,
            Some("connect: the originals, recorded before anything is changed".into()),
            superseding,
        )
        .await
    }

    async fn record_done(&self, workspace: &str, plan_id: i64, why: &str) -> Result<i64, String> {
        self.append(
            DONE_ENDPOINT,
            workspace,
            workspace,
            &format!("/v1/Workspaces/{workspace}"),
            Vec::new(),
            200,
            Some(format!("disconnect: {why}")),
            Some(plan_id),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn append(
        &self,
        endpoint: &str,
        workspace: &str,
        resource: &str,
        path: &str,
        body: Vec<u8>,
        status: u16,
        note: Option<String>,
        related_to: Option<i64>,
    ) -> Result<i64, String> {
        let mut record = NewRecord {
            signature_detail: Some("a change the tracer made to the workspace (connect/disconnect)".into()),
            rejection: note,
            response_status: status,
            related_to,
            ..NewRecord::action(endpoint, path, body, chrono::Utc::now().timestamp_millis())
        };
        if let Some(facts) = record.facts.as_mut() {
            facts.workspace_sid = Some(workspace.to_string());
            facts.workflow_sid = resource.starts_with("WW").then(|| resource.to_string());
        }
        self.writer
            .append(record, Instant::now())
            .await
            .map(|appended| appended.id)
            .map_err(|e| format!("the log could not record the change, so it was not made: {e}"))
    }
}

fn read_failure(workspace: &str, error: &ApiError) -> String {
    error.clone().about_workspace(workspace).summary
}
