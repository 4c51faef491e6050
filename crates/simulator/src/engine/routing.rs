//! Tasks entering the workspace and being routed: creation, matching open tasks to available
//! workers, reservations and their assignment callbacks.

use super::*;
use taskrouter_protocol::EventType;
use taskrouter_protocol::{ReservationSid, TaskSid};

impl Engine {
    /// Creates a task and routes it: task.created, task-queue.entered, workflow.entered and
    /// workflow.target-matched share one timestamp, in the order real callbacks arrive.
    pub fn create_task(
        &mut self,
        workspace_sid: &str,
        workflow_sid: &str,
        attributes: &str,
        priority: i64,
        timeout: Option<u64>,
    ) -> Result<String, SimError> {
        self.workspace(workspace_sid)?;
        let workflow = self
            .workflows
            .get(workflow_sid)
            .filter(|w| w.workspace_sid == workspace_sid)
            .cloned()
            .ok_or_else(|| SimError::not_found("Workflow", workflow_sid))?;
        let parsed: Value = serde_json::from_str(attributes)
            .map_err(|_| SimError::bad_request("Attributes must be a JSON object"))?;
        if !parsed.is_object() {
            return Err(SimError::bad_request("Attributes must be a JSON object"));
        }
        let timeout = timeout.unwrap_or(86_400);
        if !(1..=1_209_600).contains(&timeout) {
            return Err(SimError::bad_request("Timeout must be between 1 and 1209600"));
        }
        let matched = workflow.filters.iter().find(|f| expression::matches(&f.expression, &parsed)).cloned();
        let queue_sid = matched.as_ref().map_or(workflow.default_queue_sid.clone(), |f| f.queue_sid.clone());
        let sid = self.new_sid(TaskSid::PREFIX);
        self.task_sequence += 1;
        self.tasks.insert(
            sid.clone(),
            Task {
                sid: sid.clone(),
                workspace_sid: workspace_sid.into(),
                workflow_sid: workflow_sid.into(),
                queue_sid: queue_sid.clone(),
                filter_name: matched.as_ref().map(|f| f.friendly_name.clone()),
                filter_timeout: matched.as_ref().and_then(|f| f.timeout),
                attributes: parsed.to_string(),
                priority,
                timeout,
                status: TaskStatus::Pending,
                reason: None,
                date_created_ms: self.now_ms,
                date_updated_ms: self.now_ms,
                queue_entered_ms: self.now_ms,
                version: 0,
                sequence: self.task_sequence,
                rejections: 0,
            },
        );
        self.open_tasks.insert((-priority, self.task_sequence, sid.clone()));
        self.count(&sid, None, |c| c.tasks_created += 1);
        let queue_name = self.queues.get(&queue_sid).map(|q| q.friendly_name.clone()).unwrap_or_default();
        self.emit_task_event(&sid, EventType::TaskCreated, format!("Task {sid} created"), vec![]);
        self.emit_task_event(
            &sid,
            EventType::TaskQueueEntered,
            format!("Task {sid} entered TaskQueue {queue_name}"),
            vec![],
        );
        self.emit_task_event(
            &sid,
            EventType::WorkflowEntered,
            format!("Task {sid} entered Workflow {}", workflow.friendly_name),
            vec![],
        );
        let filter_fields = matched
            .as_ref()
            .map(|f| {
                vec![
                    ("WorkflowFilterName".to_string(), f.friendly_name.clone()),
                    ("WorkflowFilterExpression".to_string(), f.expression.clone()),
                ]
            })
            .unwrap_or_default();
        self.emit_task_event(
            &sid,
            EventType::WorkflowTargetMatched,
            format!("Task {sid} matched a workflow target"),
            filter_fields,
        );
        self.schedule(self.now_ms + timeout as i64 * 1000, Timer::TaskTtl(sid.clone()));
        if let Some(seconds) = matched.and_then(|f| f.timeout) {
            self.schedule(self.now_ms + seconds as i64 * 1000, Timer::WorkflowTimeout(sid.clone()));
        }
        self.assign();
        Ok(sid)
    }

    /// Reserves free, eligible, available workers for open tasks: highest priority first, then
    /// oldest; the longest-idle worker first.
    pub(super) fn assign(&mut self) {
        // Free, available workers, longest idle first; usually few, so routing stays cheap.
        let mut free: Vec<(i64, String)> = self
            .workers
            .values()
            .filter(|w| w.current_reservation.is_none() && self.activity_available(&w.activity_sid))
            .map(|w| (w.activity_changed_ms, w.sid.clone()))
            .collect();
        if free.is_empty() {
            return;
        }
        free.sort();
        let open: Vec<String> = self.open_tasks.iter().map(|(_, _, sid)| sid.clone()).collect();
        for task_sid in open {
            if free.is_empty() {
                break;
            }
            let task = &self.tasks[&task_sid];
            let Some(queue) = self.queues.get(&task.queue_sid).cloned() else { continue };
            let pending = self.pending_reservations(&task_sid).len() as u32;
            let slots = queue.max_reserved_workers.saturating_sub(pending) as usize;
            if slots == 0 {
                continue;
            }
            let Ok(target) = expression::parse(&queue.target_workers) else { continue };
            let chosen: Vec<String> = free
                .iter()
                .filter(|(_, sid)| {
                    let worker = &self.workers[sid];
                    worker.workspace_sid == task.workspace_sid && target.matches(&worker.attributes)
                })
                .take(slots)
                .map(|(_, sid)| sid.clone())
                .collect();
            free.retain(|(_, sid)| !chosen.contains(sid));
            for worker_sid in chosen {
                self.reserve(&task_sid, &worker_sid);
            }
        }
    }

    /// Takes a task out of routing (accepted or canceled).
    pub(super) fn close_task(&mut self, task_sid: &str) {
        if let Some(task) = self.tasks.get(task_sid) {
            self.open_tasks.remove(&(-task.priority, task.sequence, task.sid.clone()));
        }
    }

    pub(super) fn pending_reservations(&self, task_sid: &str) -> Vec<&Reservation> {
        self.task_reservations
            .get(task_sid)
            .map(|sids| {
                sids.iter()
                    .filter_map(|s| self.reservations.get(s))
                    .filter(|r| r.status == ReservationStatus::Pending)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn reserve(&mut self, task_sid: &str, worker_sid: &str) {
        let sid = self.new_sid(ReservationSid::PREFIX);
        let task = self.tasks.get_mut(task_sid).expect("open task");
        task.status = TaskStatus::Reserved;
        task.version += 1;
        task.date_updated_ms = self.now_ms;
        let workspace_sid = task.workspace_sid.clone();
        let workflow_sid = task.workflow_sid.clone();
        self.reservations.insert(
            sid.clone(),
            Reservation {
                sid: sid.clone(),
                workspace_sid: workspace_sid.clone(),
                task_sid: task_sid.into(),
                worker_sid: worker_sid.into(),
                status: ReservationStatus::Pending,
                date_created_ms: self.now_ms,
                date_updated_ms: self.now_ms,
                version: 0,
            },
        );
        self.task_reservations.entry(task_sid.into()).or_default().push(sid.clone());
        if let Some(worker) = self.workers.get_mut(worker_sid) {
            worker.current_reservation = Some(sid.clone());
        }
        self.count(task_sid, Some(worker_sid), |c| c.reservations_created += 1);
        self.emit_reservation_event(&sid, EventType::ReservationCreated, "created");
        let workflow = self.workflows.get(&workflow_sid).cloned();
        if let Some(url) = workflow.as_ref().and_then(|w| w.assignment_callback_url.clone()) {
            let params = self.assignment_params(&sid);
            let token = self.idempotency_token();
            self.outbox.push_back(Outbound {
                kind: OutboundKind::Assignment { reservation_sid: sid.clone() },
                url,
                params,
                idempotency_token: token,
            });
        }
        let timeout = workflow.map_or(120, |w| w.task_reservation_timeout);
        self.schedule(self.now_ms + timeout as i64 * 1000, Timer::ReservationTimeout(sid.clone()));
        if let Some(behaviour) = self.behaviour.clone() {
            let roll: f64 = self.rng.gen();
            let decision = if roll < behaviour.accept_probability {
                Some(Decision::Accept)
            } else if roll < behaviour.accept_probability + behaviour.reject_probability {
                Some(Decision::Reject)
            } else {
                None // never answers: the reservation times out
            };
            if let Some(decision) = decision {
                let at = self.now_ms + self.uniform(behaviour.think_ms);
                self.schedule(at, Timer::PersonAnswers(sid, decision));
            }
        }
    }

    /// Exactly the fields real assignment callbacks carry.
    pub(super) fn assignment_params(&self, reservation_sid: &str) -> Vec<(String, String)> {
        let reservation = &self.reservations[reservation_sid];
        let task = &self.tasks[&reservation.task_sid];
        let worker = &self.workers[&reservation.worker_sid];
        [
            ("AccountSid", self.account_sid.clone()),
            ("WorkspaceSid", task.workspace_sid.clone()),
            ("WorkflowSid", task.workflow_sid.clone()),
            ("TaskQueueSid", task.queue_sid.clone()),
            ("TaskSid", task.sid.clone()),
            ("ReservationSid", reservation.sid.clone()),
            ("WorkerSid", worker.sid.clone()),
            ("TaskAge", ((self.now_ms - task.date_created_ms).max(0) / 1000).to_string()),
            ("TaskPriority", task.priority.to_string()),
            ("TaskAttributes", task.attributes.clone()),
            ("WorkerAttributes", worker.attributes.to_string()),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
    }
}
