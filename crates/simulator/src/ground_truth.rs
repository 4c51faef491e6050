//! What really happened in the simulation, counted as it happened: the yardstick the tracer's
//! log is compared against. Delivery counters are kept apart, because a dropped callback still
//! happened.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lifecycle counters for one scope (everything, one queue, one workflow or one worker).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub tasks_created: u64,
    pub tasks_canceled: u64,
    pub tasks_completed: u64,
    pub reservations_created: u64,
    pub reservations_accepted: u64,
    pub reservations_rejected: u64,
    pub reservations_timed_out: u64,
    pub reservations_canceled: u64,
    pub reservations_rescinded: u64,
}

/// What each callback delivery came to. Events count once per event however often sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStats {
    /// Events answered 2xx at least once, by event type.
    pub events_delivered: BTreeMap<String, u64>,
    /// Events deliberately not sent (fault injection), by event type.
    pub events_dropped: BTreeMap<String, u64>,
    /// Events whose every attempt (first and one retry) failed, by event type.
    pub events_failed: BTreeMap<String, u64>,
    /// Extra identical deliveries sent on purpose.
    pub duplicates_sent: u64,
    /// Events held back and sent after the next one.
    pub reordered: u64,
    /// Retries after a 5xx or a timeout.
    pub retries: u64,
    pub assignment_callbacks_sent: u64,
    /// Answered 200 in time (whatever the instruction).
    pub assignment_callbacks_answered: u64,
    /// Non-200, non-JSON, slow or unreachable: no instruction processed.
    pub assignment_callbacks_failed: u64,
    pub instructions_accept: u64,
    pub instructions_reject: u64,
    pub instructions_deferred: u64,
    /// Event Streams bodies sent (first attempts; each holds a batch of CloudEvents).
    #[serde(default)]
    pub stream_batches_sent: u64,
    /// CloudEvents in bodies answered 2xx.
    #[serde(default)]
    pub stream_events_delivered: u64,
    /// CloudEvents in bodies never answered 2xx.
    #[serde(default)]
    pub stream_events_failed: u64,
    /// Bodies sent again after an answer other than 2xx.
    #[serde(default)]
    pub stream_retries: u64,
    /// Bodies delivered a second time on purpose (at least once).
    #[serde(default)]
    pub stream_redeliveries: u64,
}

/// The full ground truth.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub total: Counters,
    pub by_queue: BTreeMap<String, Counters>,
    pub by_workflow: BTreeMap<String, Counters>,
    pub by_worker: BTreeMap<String, Counters>,
    /// Every task's assignment_status when the snapshot was taken (final once the run is over).
    pub task_status: BTreeMap<String, String>,
    /// Events that happened (whether delivered or not), by event type.
    pub events_emitted: BTreeMap<String, u64>,
    pub delivery: DeliveryStats,
}

impl GroundTruth {
    /// Counts one change in every scope it belongs to.
    pub(crate) fn count(
        &mut self,
        queue: Option<&str>,
        workflow: Option<&str>,
        worker: Option<&str>,
        bump: impl Fn(&mut Counters),
    ) {
        bump(&mut self.total);
        for (map, key) in
            [(&mut self.by_queue, queue), (&mut self.by_workflow, workflow), (&mut self.by_worker, worker)]
        {
            if let Some(key) = key {
                bump(map.entry(key.to_string()).or_default());
            }
        }
    }

    /// Events that happened but were not delivered (dropped or failed), by type.
    pub fn undelivered(&self) -> BTreeMap<String, u64> {
        let mut missing = BTreeMap::new();
        for (event_type, emitted) in &self.events_emitted {
            let delivered = self.delivery.events_delivered.get(event_type).copied().unwrap_or(0);
            if *emitted > delivered {
                missing.insert(event_type.clone(), emitted - delivered);
            }
        }
        missing
    }
}
