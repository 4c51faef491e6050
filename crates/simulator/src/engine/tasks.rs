//! A task's own transitions (wrapping, completed, canceled, updated) and a worker's activity
//! changes requested through the REST API.

use super::*;
use taskrouter_protocol::EventType;

impl Engine {
    pub(super) fn cancel_open_task(&mut self, task_sid: &str, cause: CancelCause) -> Result<(), SimError> {
        let task = self.tasks.get(task_sid).ok_or_else(|| SimError::not_found("Task", task_sid))?;
        if !task.status.is_open() {
            return Err(SimError::bad_request(format!(
                "Cannot cancel task {task_sid} in workspace {} for account {} because it is not pending or reserved.",
                task.workspace_sid, self.account_sid
            )));
        }
        let workflow_name =
            self.workflows.get(&task.workflow_sid).map(|w| w.friendly_name.clone()).unwrap_or_default();
        let (reason, description) = match cause {
            CancelCause::Api(reason) => (reason, format!("Task {task_sid} canceled")),
            CancelCause::Ttl => ("Task TTL Exceeded".to_string(), "Task TTL Exceeded".to_string()),
            CancelCause::WorkflowTimeout => {
                self.emit_task_event(
                    task_sid,
                    EventType::WorkflowTimeout,
                    format!("Task {task_sid} timed out of Workflow {workflow_name}"),
                    vec![],
                );
                ("Workflow Timeout".to_string(), format!("Task {task_sid} canceled"))
            }
        };
        self.close_task(task_sid);
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.status = TaskStatus::Canceled;
            task.reason = Some(reason.clone());
            task.version += 1;
            task.date_updated_ms = self.now_ms;
        }
        let pending: Vec<Reservation> = self.pending_reservations(task_sid).into_iter().cloned().collect();
        for reservation in pending {
            self.set_reservation_status(&reservation.sid, ReservationStatus::Canceled);
            self.free_worker(&reservation.worker_sid, &reservation.sid);
            self.count(task_sid, Some(&reservation.worker_sid), |c| c.reservations_canceled += 1);
            self.emit_reservation_event(&reservation.sid, EventType::ReservationCanceled, "canceled");
        }
        self.count(task_sid, None, |c| c.tasks_canceled += 1);
        self.emit_task_event(
            task_sid,
            EventType::TaskCanceled,
            description,
            vec![("TaskCanceledReason".into(), reason.clone()), ("Reason".into(), reason)],
        );
        self.assign();
        Ok(())
    }

    /// The `AssignmentStatus` update of the Task resource: canceled, wrapping or completed.
    pub(super) fn set_task_status(
        &mut self,
        task_sid: &str,
        to: TaskStatus,
        reason: Option<String>,
    ) -> Result<(), SimError> {
        let task = self.tasks.get(task_sid).ok_or_else(|| SimError::not_found("Task", task_sid))?.clone();
        match to {
            TaskStatus::Canceled => {
                return self.cancel_open_task(
                    task_sid,
                    CancelCause::Api(reason.unwrap_or_else(|| "canceled".into())),
                )
            }
            TaskStatus::Wrapping if task.status == TaskStatus::Assigned => {}
            TaskStatus::Completed if matches!(task.status, TaskStatus::Assigned | TaskStatus::Wrapping) => {}
            _ => {
                return Err(SimError::bad_request(format!(
                    "Task {task_sid} is {} and cannot be updated to [{}]",
                    task.status.as_str(),
                    to.as_str()
                )))
            }
        }
        let accepted = self
            .task_reservations
            .get(task_sid)
            .and_then(|sids| {
                sids.iter().find(|s| {
                    matches!(
                        self.reservations[*s].status,
                        ReservationStatus::Accepted | ReservationStatus::Wrapping
                    )
                })
            })
            .cloned();
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.status = to;
            task.version += 1;
            task.date_updated_ms = self.now_ms;
            if reason.is_some() {
                task.reason = reason.clone();
            }
        }
        let worker_sid = accepted.as_ref().map(|r| self.reservations[r].worker_sid.clone());
        if to == TaskStatus::Wrapping {
            self.emit_task_event(
                task_sid,
                EventType::TaskWrapup,
                format!("Task {task_sid} wrapping up"),
                vec![],
            );
            if let Some(reservation) = &accepted {
                self.set_reservation_status(reservation, ReservationStatus::Wrapping);
                self.emit_reservation_event(reservation, EventType::ReservationWrapup, "wrapping");
            }
            if let Some(behaviour) = self.behaviour.clone() {
                let at = self.now_ms + self.uniform(behaviour.wrapup_ms);
                self.schedule(at, Timer::PersonCompletes(task_sid.into()));
            }
        } else {
            if let Some(reservation) = &accepted {
                self.set_reservation_status(reservation, ReservationStatus::Completed);
                if let Some(worker) = &worker_sid {
                    self.free_worker(worker, reservation);
                }
                self.emit_reservation_event(reservation, EventType::ReservationCompleted, "completed");
            }
            self.count(task_sid, worker_sid.as_deref(), |c| c.tasks_completed += 1);
            let reason = reason.unwrap_or_default();
            self.emit_task_event(
                task_sid,
                EventType::TaskCompleted,
                format!("Task {task_sid} completed"),
                vec![("TaskCompletedReason".into(), reason.clone()), ("Reason".into(), reason)],
            );
            // The person sets themselves available again after a short pause.
            if let Some(worker) = worker_sid {
                if let Some(behaviour) = self.behaviour.clone() {
                    let at = self.now_ms + self.uniform(behaviour.think_ms);
                    self.schedule(at, Timer::PersonReturns(worker));
                }
            }
            self.assign();
        }
        Ok(())
    }

    /// The Task resource's update: status (with reason), attributes, priority.
    pub fn update_task(
        &mut self,
        workspace_sid: &str,
        task_sid: &str,
        update: TaskUpdate,
    ) -> Result<(), SimError> {
        self.task_in(workspace_sid, task_sid)?;
        if let Some(attributes) = &update.attributes {
            let parsed: Value = serde_json::from_str(attributes)
                .map_err(|_| SimError::bad_request("Attributes must be a JSON object"))?;
            let task = self.tasks.get_mut(task_sid).expect("checked");
            task.attributes = parsed.to_string();
            task.version += 1;
        }
        if let Some(priority) = update.priority {
            let task = self.tasks.get_mut(task_sid).expect("checked");
            let old_key = (-task.priority, task.sequence, task.sid.clone());
            task.priority = priority;
            task.version += 1;
            let new_key = (-priority, task.sequence, task.sid.clone());
            if self.open_tasks.remove(&old_key) {
                self.open_tasks.insert(new_key);
            }
        }
        if update.attributes.is_some() || update.priority.is_some() {
            self.emit_task_event(
                task_sid,
                EventType::TaskUpdated,
                format!("Task {task_sid} updated"),
                vec![],
            );
        }
        if let Some(status) = update.assignment_status.as_deref() {
            let to = match status {
                "canceled" => TaskStatus::Canceled,
                "wrapping" => TaskStatus::Wrapping,
                "completed" => TaskStatus::Completed,
                other => return Err(SimError::bad_request(format!("Invalid AssignmentStatus {other}"))),
            };
            self.set_task_status(task_sid, to, update.reason)?;
        }
        self.assign();
        Ok(())
    }

    /// The Task resource's cancel through the API, with a reason.
    pub fn cancel_task(&mut self, task_sid: &str, reason: &str) -> Result<(), SimError> {
        self.cancel_open_task(task_sid, CancelCause::Api(reason.into()))
    }

    pub fn update_worker_activity(
        &mut self,
        workspace_sid: &str,
        worker_sid: &str,
        activity_sid: &str,
    ) -> Result<(), SimError> {
        self.worker_in(workspace_sid, worker_sid)?;
        if !self.activity_in(workspace_sid, activity_sid) {
            return Err(SimError::bad_request(format!(
                "Activity {activity_sid} does not exist in this workspace"
            )));
        }
        self.move_worker(worker_sid, activity_sid);
        self.assign();
        Ok(())
    }
}
