//! The simulated people and customers: arrivals, think and talk times, coming back from a
//! break, all drawn from the engine's seeded RNG.

use super::*;

impl Engine {
    pub(super) fn uniform(&mut self, (low, high): (i64, i64)) -> i64 {
        if high <= low {
            low
        } else {
            self.rng.gen_range(low..=high)
        }
    }

    pub(super) fn interarrival_ms(&mut self) -> i64 {
        let rate = self.behaviour.as_ref().map_or(0.0, |b| b.tasks_per_minute);
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        ((-u.ln() / rate) * 60_000.0).round().max(1.0) as i64
    }

    pub(super) fn arrive(&mut self) -> Result<(), SimError> {
        let Some(behaviour) = self.behaviour.clone() else { return Ok(()) };
        if self.now_ms >= behaviour.arrivals_until_ms {
            return Ok(());
        }
        let next = self.now_ms + self.interarrival_ms();
        self.schedule(next, Timer::NextArrival);
        let template = if behaviour.task_templates.is_empty() {
            serde_json::json!({})
        } else {
            let i = self.rng.gen_range(0..behaviour.task_templates.len());
            attributes::with_origin(&behaviour.task_templates[i], &mut self.rng, &self.account_sid)
        };
        let ttl = if self.rng.gen_bool(behaviour.short_ttl_probability.clamp(0.0, 1.0)) {
            behaviour.short_ttl_seconds
        } else {
            3600
        };
        let task = self.create_task(
            &behaviour.workspace_sid,
            &behaviour.workflow_sid,
            &template.to_string(),
            0,
            Some(ttl),
        )?;
        if self.rng.gen_bool(behaviour.hangup_probability.clamp(0.0, 1.0)) {
            let at = self.now_ms + self.uniform(behaviour.hangup_after_ms);
            self.schedule(at, Timer::CustomerHangsUp(task));
        }
        Ok(())
    }

    pub(super) fn person_returns(&mut self, worker_sid: &str) -> Result<(), SimError> {
        let Some(available) = self.behaviour.as_ref().map(|b| b.available_activity_sid.clone()) else {
            return Ok(());
        };
        let Some(worker) = self.workers.get(worker_sid) else { return Ok(()) };
        if worker.current_reservation.is_some() || self.activity_available(&worker.activity_sid) {
            return Ok(());
        }
        let workspace = worker.workspace_sid.clone();
        self.update_worker_activity(&workspace, worker_sid, &available)
    }

    // ---- events -----------------------------------------------------------------------------
}
