//! The pure fold from facts to report figures: no database, clock or I/O, so every figure can
//! be re-derived by hand from the facts listed in a test. [`Fold`] computes them in one pass
//! over the window in time order, holding only open lifecycles (see its module); [`compute`]
//! runs it over a list of facts.
//!
//! # How each figure is computed
//!
//! The window is half-open, `[start, end)`, in **TaskRouter's own time** (`TimestampMs` of
//! the event; assignment callbacks carry none and are not statistics events). Only counted
//! facts (`is_fact = 1`) are used: duplicates and rejected requests never count. A fact
//! belongs to a scope when its own `WorkspaceSid` / `TaskQueueSid` / `WorkflowSid` /
//! `WorkerSid` names it (the queue a task event names is the queue the task was in when the
//! event happened, so a moved task counts in each queue for what happened there).
//!
//! * **Counters** count events in the window: `reservations_created` = `reservation.created`,
//!   `reservations_accepted` = `reservation.accepted`, `…_rejected` = `reservation.rejected`,
//!   `…_timed_out` = `reservation.timeout`, `…_canceled` = `reservation.canceled`,
//!   `…_rescinded` = `reservation.rescinded`; `tasks_created` = `task.created`;
//!   `tasks_entered` = `task-queue.entered` for a queue and `workflow.entered` for a workflow;
//!   `tasks_canceled` = `task.canceled`, `tasks_completed` = `task.completed`,
//!   `tasks_deleted` = `task.deleted` (API deletions only; `task.system-deleted` is TaskRouter's
//!   own purge and is not counted), `tasks_moved` = `task-queue.moved`,
//!   `tasks_timed_out_in_workflow` = `workflow.timeout`.
//! * **`wait_duration_until_accepted`**: one sample per `reservation.accepted` in the window:
//!   accept time − the task's `task.created` time. The creation may lie before the window
//!   (a lifecycle cut by the window start still gives its true wait: the storage layer supplies
//!   the earlier `task.created`). A task accepted after an earlier reservation timed out or was
//!   rejected waits from creation, so the lost time is included. An accept whose task's
//!   creation is not in the log at all gives no sample (counted in `samples_without_origin`).
//!   `avg_task_acceptance_time` is that sample set's average.
//! * **`wait_duration_in_queue_until_accepted`**: the same accepts, measured from the task's
//!   latest `task-queue.entered` into the accept's queue at or before the accept.
//! * **`wait_duration_until_canceled`**: one sample per `task.canceled` in the window, cancel
//!   time − creation time.
//! * **Origins** (a task's creation and queue entries, a reservation's creation) are read
//!   lifecycle by lifecycle: a task or reservation is remembered from its first fact until it
//!   ends (`task.canceled` / `completed` / `deleted`; a reservation's outcome). An accept or
//!   cancel uses the origin seen earlier in the window (the earliest creation, the latest entry
//!   into the accept's queue at or before it); when its task or reservation has none (it
//!   began before the window), the earliest creation and latest entry the log holds before the
//!   window's end. Facts of one millisecond are taken together. This is the same as "the
//!   task's `task.created`" for every log TaskRouter writes (one creation per SID); a log that
//!   creates one SID twice is measured from each lifecycle's own creation.
//! * **`TaskChannel`**: only the facts of tasks one of whose facts in the window names the
//!   channel (`TaskChannelUniqueName` or `TaskChannelSid`; TaskRouter names it on every task
//!   and reservation event). Activity changes belong to no task and are left out.
//! * Durations are kept in milliseconds and shown in whole seconds, rounded half up:
//!   `min`, `max`, `total` of the samples and `avg` = total ÷ count. No samples: all 0.
//! * **`split_by_wait_time`**: for each threshold T seconds, `below` counts the samples with
//!   wait ≤ T (within the threshold) and `above` those with wait > T, for
//!   `reservations_accepted` (accept waits) and `tasks_canceled` (cancel waits). Twilio does not
//!   document which side T itself falls on; this is our choice.
//! * **`activity_durations`** (workers): each `worker.activity.update` in the window closes a
//!   stint of `WorkerPreviousActivitySid` lasting `WorkerTimeInPreviousActivityMs`. A stint
//!   that began before the window is clipped to the part inside it. Stints still open at the
//!   window's end are not counted (TaskRouter reports a duration only when an activity ends).
//!   Per activity: `min`, `max`, `avg`, `total` over stints, in seconds.
//!
//! # Beyond TaskRouter
//!
//! * **Acceptance latency**: per accepted reservation, `reservation.accepted` − its
//!   `reservation.created` (how long the worker took to say yes); p50/p90/p99 by nearest rank
//!   (the smallest sample with at least p % of samples at or below it).
//! * **Timeout rate** per worker and per queue: `reservation.timeout` ÷ (accepted + rejected +
//!   timed out) reservations in the window, i.e. of the offers that waited on a worker's answer
//!   (canceled and rescinded offers were withdrawn, not ignored).
//! * **Reservations per task**: `reservation.created` in the window ÷ distinct tasks they
//!   belong to, and the most any task had.
//! * **Outcomes over time**: the window in equal buckets, each counting the reservation outcomes
//!   and task completions/cancellations that happened in it.

use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;
use taskrouter_protocol::EventType;

/// A multiplicative hasher (the Fx hash of rustc) for interned numbers and SIDs: a report
/// hashes millions of keys, and SipHash's protection against chosen keys buys nothing for
/// keys read from our own log.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.write_u64(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;
pub type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<FastHasher>>;

/// The event types reports read (the scan's SQL selects only these); everything else is ignored.
pub const REPORTED: [EventType; 15] = [
    EventType::TaskCreated,
    EventType::TaskCanceled,
    EventType::TaskCompleted,
    EventType::TaskDeleted,
    EventType::TaskQueueEntered,
    EventType::TaskQueueMoved,
    EventType::WorkflowEntered,
    EventType::WorkflowTimeout,
    EventType::ReservationCreated,
    EventType::ReservationAccepted,
    EventType::ReservationRejected,
    EventType::ReservationTimeout,
    EventType::ReservationCanceled,
    EventType::ReservationRescinded,
    EventType::WorkerActivityUpdate,
];

/// An interned SID or name (queues, workers, workflows, activities: few, and compared often).
pub type Name = u32;

/// Strings by number, so facts stay small and comparisons cheap.
#[derive(Debug, Default, Clone)]
pub struct Names {
    strings: Vec<String>,
    index: HashMap<String, Name>,
}

impl Names {
    pub fn intern(&mut self, s: &str) -> Name {
        if let Some(&n) = self.index.get(s) {
            return n;
        }
        let n = self.strings.len() as Name;
        self.strings.push(s.to_string());
        self.index.insert(s.to_string(), n);
        n
    }

    pub fn get(&self, s: &str) -> Option<Name> {
        self.index.get(s).copied()
    }

    pub fn text(&self, n: Name) -> &str {
        &self.strings[n as usize]
    }
}

/// One counted fact with interned names, as a test lists it for [`compute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFact {
    pub event_id: i64,
    pub kind: EventType,
    /// TaskRouter's time of the event, epoch ms.
    pub at_ms: i64,
    pub task: Option<Name>,
    pub reservation: Option<Name>,
    pub worker: Option<Name>,
    pub queue: Option<Name>,
    pub workflow: Option<Name>,
    /// `TaskChannelUniqueName` or `TaskChannelSid`, read only when a channel filter is asked for.
    pub channels: [Option<Name>; 2],
    /// `worker.activity.update`: the activity the worker left, its name and time spent in it.
    pub previous_activity: Option<Name>,
    pub previous_activity_name: Option<Name>,
    pub previous_activity_ms: Option<i64>,
    /// `worker.activity.update`: the activity the worker entered and its name.
    pub activity: Option<Name>,
    pub activity_name: Option<Name>,
}

impl ReportFact {
    pub fn new(event_id: i64, kind: EventType, at_ms: i64) -> Self {
        Self {
            event_id,
            kind,
            at_ms,
            task: None,
            reservation: None,
            worker: None,
            queue: None,
            workflow: None,
            channels: [None, None],
            previous_activity: None,
            previous_activity_name: None,
            previous_activity_ms: None,
            activity: None,
            activity_name: None,
        }
    }
}

/// What a report is broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Workspace,
    Queue,
    Workflow,
    Worker,
}

/// The window and options of one computation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub start_ms: i64,
    pub end_ms: i64,
    pub by: By,
    /// Only this queue / workflow / worker (else every one seen).
    pub only: Option<String>,
    pub split_by_wait_time: Vec<u64>,
    pub task_channel: Option<String>,
    /// Buckets of the outcomes-over-time series.
    pub buckets: usize,
}

/// `{avg, min, max, total}` in whole seconds, plus the exact milliseconds behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DurationStats {
    pub avg: i64,
    pub min: i64,
    pub max: i64,
    pub total: i64,
}

/// Milliseconds to whole seconds, rounded half up.
pub fn seconds(ms: i64) -> i64 {
    (ms + 500).div_euclid(1000)
}

/// Exact duration figures of a sample set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Samples {
    pub count: u64,
    pub min_ms: i64,
    pub max_ms: i64,
    pub total_ms: i64,
}

impl Samples {
    fn add(&mut self, ms: i64) {
        if self.count == 0 {
            self.min_ms = ms;
            self.max_ms = ms;
        } else {
            self.min_ms = self.min_ms.min(ms);
            self.max_ms = self.max_ms.max(ms);
        }
        self.count += 1;
        self.total_ms += ms;
    }

    pub fn avg_ms(&self) -> i64 {
        if self.count == 0 {
            0
        } else {
            (self.total_ms as f64 / self.count as f64).round() as i64
        }
    }

    /// TaskRouter's `{avg, min, max, total}` in seconds.
    pub fn stats(&self) -> DurationStats {
        if self.count == 0 {
            return DurationStats::default();
        }
        DurationStats {
            avg: seconds(self.avg_ms()),
            min: seconds(self.min_ms),
            max: seconds(self.max_ms),
            total: seconds(self.total_ms),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SplitCounts {
    pub tasks_canceled: u64,
    pub reservations_accepted: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Split {
    pub above: SplitCounts,
    pub below: SplitCounts,
}

/// The counters TaskRouter keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub reservations_created: u64,
    pub reservations_accepted: u64,
    pub reservations_rejected: u64,
    pub reservations_timed_out: u64,
    pub reservations_canceled: u64,
    pub reservations_rescinded: u64,
    pub tasks_created: u64,
    /// `task-queue.entered` (queue scope) or `workflow.entered` (workflow scope).
    pub tasks_entered: u64,
    pub tasks_canceled: u64,
    pub tasks_completed: u64,
    pub tasks_deleted: u64,
    pub tasks_moved: u64,
    pub tasks_timed_out_in_workflow: u64,
}

/// One activity's stints in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivityDuration {
    pub sid: String,
    pub friendly_name: String,
    #[serde(skip)]
    pub samples: Samples,
}

/// A reservation timeout rate for one worker or queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeoutRate {
    pub sid: String,
    pub reservations_answerable: u64,
    pub reservations_timed_out: u64,
    /// `None` when no reservation waited on an answer.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

/// One bar of the acceptance-latency histogram: samples in `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistogramBin {
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub count: u64,
}

/// What happened in one slice of the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub start_ms: i64,
    pub reservations_accepted: u64,
    pub reservations_rejected: u64,
    pub reservations_timed_out: u64,
    pub reservations_canceled: u64,
    pub reservations_rescinded: u64,
    pub tasks_completed: u64,
    pub tasks_canceled: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReservationsPerTask {
    pub tasks: u64,
    pub reservations: u64,
    pub mean: Option<f64>,
    pub max: u64,
}

/// Every figure of one scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// The queue, workflow or worker Sid (`None` for the workspace).
    pub sid: Option<String>,
    pub counters: Counters,
    pub wait_until_accepted: Samples,
    pub wait_in_queue_until_accepted: Samples,
    pub wait_until_canceled: Samples,
    /// Accepts whose task creation is nowhere in the log (no wait sample).
    pub samples_without_origin: u64,
    /// Threshold (s) → counts, in the order asked.
    pub split_by_wait_time: Vec<(u64, Split)>,
    pub activity_durations: Vec<ActivityDuration>,
    pub acceptance_latency: Percentiles,
    pub latency_histogram: Vec<HistogramBin>,
    pub timeout_rate_by_worker: Vec<TimeoutRate>,
    pub timeout_rate_by_queue: Vec<TimeoutRate>,
    pub reservations_per_task: ReservationsPerTask,
    pub outcomes_over_time: Vec<Bucket>,
}

/// Upper bounds (ms) of the latency histogram's bars; the last bar is open-ended.
pub const HISTOGRAM_BOUNDS_MS: [i64; 10] =
    [1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000];

mod fold;
mod fold_state;

pub use fold::Fold;
pub use fold_state::{ActivityChange, LogFact, Origin};

/// Computes the figures of every scope of `request.by` seen in the window (or only
/// `request.only`) from a list of facts in any order: the window's facts plus, outside it,
/// the facts where the window's tasks and reservations began. Facts outside the window are
/// never counted. This is [`Fold`] fed from a slice (the store feeds it from the log).
pub fn compute(facts: &[ReportFact], names: &Names, request: &Request) -> Vec<Figures> {
    let text = |n: Option<Name>| n.map(|n| names.text(n));
    let mut in_window: Vec<&ReportFact> =
        facts.iter().filter(|f| f.at_ms >= request.start_ms && f.at_ms < request.end_ms).collect();
    in_window.sort_by_key(|f| f.at_ms);
    let mut fold = Fold::new(request);
    for f in in_window {
        fold.push(&LogFact {
            kind: f.kind,
            at_ms: f.at_ms,
            task: text(f.task),
            reservation: text(f.reservation),
            worker: text(f.worker),
            queue: text(f.queue),
            workflow: text(f.workflow),
            activity: ActivityChange {
                previous: text(f.previous_activity),
                previous_name: text(f.previous_activity_name),
                previous_ms: f.previous_activity_ms,
                current: text(f.activity),
                current_name: text(f.activity_name),
            },
            channels: [text(f.channels[0]), text(f.channels[1])],
        });
    }
    let lookup = |sid: &str| -> Result<Vec<Origin>, std::convert::Infallible> {
        Ok(facts
            .iter()
            .filter(|f| f.at_ms < request.end_ms)
            .filter(|f| match f.kind {
                EventType::TaskCreated | EventType::TaskQueueEntered => text(f.task) == Some(sid),
                EventType::ReservationCreated => text(f.reservation) == Some(sid),
                _ => false,
            })
            .map(|f| Origin { kind: f.kind, at_ms: f.at_ms, queue: text(f.queue).map(str::to_string) })
            .collect())
    };
    match fold.finish(lookup) {
        Ok(figures) => figures,
        Err(never) => match never {},
    }
}

/// The nearest-rank percentile of sorted samples.
pub fn nearest_rank(sorted: &[i64], percent: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(percent) * sorted.len() as u64).div_ceil(100).max(1);
    sorted.get(rank as usize - 1).copied()
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
