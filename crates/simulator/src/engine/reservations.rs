//! A reservation's outcomes (accepted, rejected, timed out) and what they do to its worker
//! and task, including the app's answers to assignment callbacks.

use super::*;
use taskrouter_protocol::EventType;

impl Engine {
    pub(super) fn pending_reservation(
        &self,
        reservation_sid: &str,
        to: &str,
    ) -> Result<Reservation, SimError> {
        let reservation = self
            .reservations
            .get(reservation_sid)
            .ok_or_else(|| SimError::not_found("Reservation", reservation_sid))?;
        if reservation.status != ReservationStatus::Pending {
            return Err(SimError::bad_request(format!(
                "Reservation {reservation_sid} not in expected state [pending] and cannot be updated to [{to}]"
            )));
        }
        Ok(reservation.clone())
    }

    pub(super) fn set_reservation_status(&mut self, reservation_sid: &str, status: ReservationStatus) {
        if let Some(reservation) = self.reservations.get_mut(reservation_sid) {
            reservation.status = status;
            reservation.version += 1;
            reservation.date_updated_ms = self.now_ms;
        }
    }

    pub(super) fn free_worker(&mut self, worker_sid: &str, reservation_sid: &str) {
        if let Some(worker) = self.workers.get_mut(worker_sid) {
            if worker.current_reservation.as_deref() == Some(reservation_sid) {
                worker.current_reservation = None;
            }
        }
    }

    /// After a reservation ends unaccepted: the task is pending again once none is left.
    pub(super) fn reopen_task_if_unreserved(&mut self, task_sid: &str) {
        let none_pending = self.pending_reservations(task_sid).is_empty();
        if let Some(task) = self.tasks.get_mut(task_sid) {
            if task.status == TaskStatus::Reserved && none_pending {
                task.status = TaskStatus::Pending;
                task.version += 1;
                task.date_updated_ms = self.now_ms;
            }
        }
    }

    /// Moves a worker to `activity_sid`, emitting `worker.activity.update` with the time spent
    /// in the previous activity.
    pub(super) fn move_worker(&mut self, worker_sid: &str, activity_sid: &str) {
        let now = self.now_ms;
        let Some(worker) = self.workers.get_mut(worker_sid) else { return };
        if worker.activity_sid == activity_sid {
            return;
        }
        let previous = std::mem::replace(&mut worker.activity_sid, activity_sid.to_string());
        let spent_ms = (now - worker.activity_changed_ms).max(0);
        worker.activity_changed_ms = now;
        worker.version += 1;
        worker.date_updated_ms = now;
        let workspace = worker.workspace_sid.clone();
        let name = worker.friendly_name.clone();
        let mut fields = Vec::new();
        self.worker_fields(worker_sid, &mut fields);
        fields.push(("WorkerPreviousActivitySid".into(), previous.clone()));
        fields.push(("WorkerPreviousActivityName".into(), self.activity_name(&previous)));
        fields.push(("WorkerTimeInPreviousActivity".into(), (spent_ms / 1000).to_string()));
        fields.push(("WorkerTimeInPreviousActivityMs".into(), spent_ms.to_string()));
        let description = format!("Worker {name} updated to {} Activity", self.activity_name(activity_sid));
        self.emit(&workspace, EventType::WorkerActivityUpdate, ("worker", worker_sid), description, fields);
    }

    /// Applies an assignment callback's instruction.
    pub fn apply_instruction(
        &mut self,
        reservation_sid: &str,
        instruction: Instruction,
    ) -> Result<(), SimError> {
        match instruction {
            Instruction::Accept => self.accept_reservation(reservation_sid),
            Instruction::Reject { activity_sid } => self.reject_reservation(reservation_sid, activity_sid),
        }
    }

    pub fn accept_reservation(&mut self, reservation_sid: &str) -> Result<(), SimError> {
        let reservation = self.pending_reservation(reservation_sid, "accepted")?;
        let task_sid = reservation.task_sid.clone();
        // The other reservations go first, while the task is still reserved (as captured).
        let losers: Vec<Reservation> = self
            .pending_reservations(&task_sid)
            .into_iter()
            .filter(|r| r.sid != reservation_sid)
            .cloned()
            .collect();
        for loser in losers {
            self.set_reservation_status(&loser.sid, ReservationStatus::Rescinded);
            self.free_worker(&loser.worker_sid, &loser.sid);
            self.count(&task_sid, Some(&loser.worker_sid), |c| c.reservations_rescinded += 1);
            self.emit_reservation_event(&loser.sid, EventType::ReservationRescinded, "rescinded");
        }
        self.set_reservation_status(reservation_sid, ReservationStatus::Accepted);
        self.close_task(&task_sid);
        if let Some(task) = self.tasks.get_mut(&task_sid) {
            task.status = TaskStatus::Assigned;
            task.version += 1;
            task.date_updated_ms = self.now_ms;
        }
        self.count(&task_sid, Some(&reservation.worker_sid), |c| c.reservations_accepted += 1);
        self.emit_reservation_event(reservation_sid, EventType::ReservationAccepted, "accepted");
        let busy = self
            .tasks
            .get(&task_sid)
            .and_then(|t| self.queues.get(&t.queue_sid))
            .and_then(|q| q.assignment_activity_sid.clone());
        if let Some(busy) = busy {
            self.move_worker(&reservation.worker_sid, &busy);
        }
        if let Some(behaviour) = self.behaviour.clone() {
            let at = self.now_ms + self.uniform(behaviour.talk_ms);
            self.schedule(at, Timer::PersonWrapsUp(task_sid));
        }
        self.assign();
        Ok(())
    }

    /// Rejects; the worker moves to `activity_sid` when given (else keeps its activity).
    pub fn reject_reservation(
        &mut self,
        reservation_sid: &str,
        activity_sid: Option<String>,
    ) -> Result<(), SimError> {
        let reservation = self.pending_reservation(reservation_sid, "rejected")?;
        if let Some(activity) = &activity_sid {
            if !self.activity_in(&reservation.workspace_sid, activity) {
                return Err(SimError::bad_request(format!(
                    "Activity {activity} does not exist in this workspace"
                )));
            }
        }
        self.set_reservation_status(reservation_sid, ReservationStatus::Rejected);
        self.free_worker(&reservation.worker_sid, reservation_sid);
        self.reopen_task_if_unreserved(&reservation.task_sid);
        self.count(&reservation.task_sid, Some(&reservation.worker_sid), |c| c.reservations_rejected += 1);
        self.emit_reservation_event(reservation_sid, EventType::ReservationRejected, "rejected");
        if let Some(activity) = activity_sid {
            self.move_worker(&reservation.worker_sid, &activity);
            self.schedule_return(&reservation.worker_sid);
        }
        let rejections = self.tasks.get_mut(&reservation.task_sid).map_or(0, |task| {
            task.rejections += 1;
            task.rejections
        });
        if rejections >= MAX_REJECTIONS {
            let reason = format!("Task rejected {MAX_REJECTIONS} times");
            return self.cancel_open_task(&reservation.task_sid, CancelCause::Api(reason));
        }
        self.assign();
        Ok(())
    }

    pub(super) fn schedule_return(&mut self, worker_sid: &str) {
        if let Some(behaviour) = self.behaviour.clone() {
            let at = self.now_ms + self.uniform(behaviour.away_ms);
            self.schedule(at, Timer::PersonReturns(worker_sid.into()));
        }
    }

    pub(super) fn time_out_reservation(&mut self, reservation_sid: &str) -> Result<(), SimError> {
        let reservation = self.pending_reservation(reservation_sid, "timeout")?;
        self.set_reservation_status(reservation_sid, ReservationStatus::Timeout);
        self.free_worker(&reservation.worker_sid, reservation_sid);
        self.reopen_task_if_unreserved(&reservation.task_sid);
        self.count(&reservation.task_sid, Some(&reservation.worker_sid), |c| c.reservations_timed_out += 1);
        self.emit_reservation_event(reservation_sid, EventType::ReservationTimeout, "timed out");
        let timeout_activity =
            self.workspaces.get(&reservation.workspace_sid).map(|w| w.timeout_activity_sid.clone());
        if let Some(activity) = timeout_activity {
            self.move_worker(&reservation.worker_sid, &activity);
        }
        self.schedule_return(&reservation.worker_sid);
        self.assign();
        Ok(())
    }
}
