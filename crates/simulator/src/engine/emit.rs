//! What the engine sends: event callbacks with the fields TaskRouter puts in them, and the
//! ground truth's counters beside each.

use super::*;
use taskrouter_protocol::EventSid;
use taskrouter_protocol::EventType;

impl Engine {
    pub(super) fn task_fields(&self, task_sid: &str, out: &mut Vec<(String, String)>) {
        let Some(task) = self.tasks.get(task_sid) else { return };
        let secs = |ms: i64| (ms / 1000).to_string();
        let mut push = |n: &str, v: String| out.push((n.to_string(), v));
        push("TaskSid", task.sid.clone());
        push("TaskAttributes", task.attributes.clone());
        push("TaskAge", ((self.now_ms - task.date_created_ms).max(0) / 1000).to_string());
        push("TaskPriority", task.priority.to_string());
        push("TaskAssignmentStatus", task.status.as_str().into());
        push("TaskVersion", task.version.to_string());
        push("TaskDateCreated", secs(task.date_created_ms));
        push("TaskChannelUniqueName", "default".into());
        if let Some(queue) = self.queues.get(&task.queue_sid) {
            push("TaskQueueSid", queue.sid.clone());
            push("TaskQueueName", queue.friendly_name.clone());
            push("TaskQueueTargetExpression", queue.target_workers.clone());
            push("TaskQueueEnteredDate", secs(task.queue_entered_ms));
        }
        if let Some(workflow) = self.workflows.get(&task.workflow_sid) {
            push("WorkflowSid", workflow.sid.clone());
            push("WorkflowName", workflow.friendly_name.clone());
        }
    }

    pub(super) fn worker_fields(&self, worker_sid: &str, out: &mut Vec<(String, String)>) {
        let Some(worker) = self.workers.get(worker_sid) else { return };
        out.push(("WorkerSid".into(), worker.sid.clone()));
        out.push(("WorkerName".into(), worker.friendly_name.clone()));
        out.push(("WorkerAttributes".into(), worker.attributes.to_string()));
        out.push(("WorkerActivitySid".into(), worker.activity_sid.clone()));
        out.push(("WorkerActivityName".into(), self.activity_name(&worker.activity_sid)));
        out.push(("WorkerVersion".into(), worker.version.to_string()));
    }

    /// Records an event and queues its callback when the workspace has an EventCallbackUrl.
    pub(super) fn emit(
        &mut self,
        workspace_sid: &str,
        event_type: EventType,
        resource: (&str, &str),
        description: String,
        fields: Vec<(String, String)>,
    ) {
        let Some(workspace) = self.workspaces.get(workspace_sid).cloned() else { return };
        let sid = self.new_sid(EventSid::PREFIX);
        let token = self.idempotency_token();
        let mut params: Vec<(String, String)> = vec![
            ("Sid".into(), sid.clone()),
            ("EventType".into(), event_type.as_str().into()),
            ("AccountSid".into(), self.account_sid.clone()),
            ("WorkspaceSid".into(), workspace.sid.clone()),
            ("WorkspaceName".into(), workspace.friendly_name.clone()),
            ("EventDescription".into(), description.clone()),
            ("ResourceType".into(), resource.0.into()),
            ("ResourceSid".into(), resource.1.into()),
            ("Timestamp".into(), (self.now_ms / 1000).to_string()),
            ("TimestampMs".into(), self.now_ms.to_string()),
        ];
        for (name, value) in fields {
            if !params.iter().any(|(n, _)| *n == name) {
                params.push((name, value));
            }
        }
        *self.ground_truth.events_emitted.entry(event_type.as_str().to_string()).or_default() += 1;
        let filtered_out = workspace
            .events_filter
            .as_deref()
            .is_some_and(|filter| !filter.split(',').any(|t| t.trim() == event_type.as_str()));
        if let (Some(url), false) = (workspace.event_callback_url, filtered_out) {
            self.outbox.push_back(Outbound {
                kind: OutboundKind::Event { event_type: event_type.as_str().into() },
                url,
                params: params.clone(),
                idempotency_token: token,
            });
        }
        if self.events.len() >= EVENT_RETENTION {
            self.events.pop_front();
        }
        self.events.push_back(EventRecord {
            sid,
            workspace_sid: workspace.sid,
            event_type: event_type.as_str().into(),
            description,
            resource_type: resource.0.into(),
            resource_sid: resource.1.into(),
            date_ms: self.now_ms,
            params,
        });
    }

    pub(super) fn emit_task_event(
        &mut self,
        task_sid: &str,
        event_type: EventType,
        description: String,
        extra: Vec<(String, String)>,
    ) {
        let Some(workspace) = self.tasks.get(task_sid).map(|t| t.workspace_sid.clone()) else { return };
        let mut fields = Vec::new();
        self.task_fields(task_sid, &mut fields);
        fields.extend(extra);
        self.emit(&workspace, event_type, ("task", task_sid), description, fields);
    }

    pub(super) fn emit_reservation_event(
        &mut self,
        reservation_sid: &str,
        event_type: EventType,
        verb: &str,
    ) {
        let Some(reservation) = self.reservations.get(reservation_sid).cloned() else { return };
        let mut fields = vec![("ReservationSid".to_string(), reservation.sid.clone())];
        self.task_fields(&reservation.task_sid, &mut fields);
        self.worker_fields(&reservation.worker_sid, &mut fields);
        fields.push(("ReservationVersion".into(), reservation.version.to_string()));
        self.emit(
            &reservation.workspace_sid,
            event_type,
            ("reservation", reservation_sid),
            format!("Reservation {reservation_sid} {verb}"),
            fields,
        );
    }

    // ---- counting ---------------------------------------------------------------------------

    pub(super) fn count(&mut self, task_sid: &str, worker_sid: Option<&str>, bump: impl Fn(&mut Counters)) {
        let (queue, workflow) = self
            .tasks
            .get(task_sid)
            .map(|t| (Some(t.queue_sid.clone()), Some(t.workflow_sid.clone())))
            .unwrap_or((None, None));
        self.ground_truth.count(queue.as_deref(), workflow.as_deref(), worker_sid, bump);
    }

    // ---- transitions ------------------------------------------------------------------------
}
