//! What the streaming fold holds: the facts as read from the log, each open task's and
//! reservation's state, the samples that wait for an origin, and each scope's accumulated
//! counts and distributions. `fold` steps through the facts; this is only the state.

use std::collections::BTreeMap;

use super::{Bucket, Counters, EventType, Name, Samples, Split};

/// One counted fact as read from the log, borrowing its text from the row.
#[derive(Debug, Clone, Copy)]
pub struct LogFact<'a> {
    pub kind: EventType,
    /// TaskRouter's time of the event, epoch ms.
    pub at_ms: i64,
    pub task: Option<&'a str>,
    pub reservation: Option<&'a str>,
    pub worker: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub workflow: Option<&'a str>,
    /// `worker.activity.update` only, and only when activity durations were asked for.
    pub activity: ActivityChange<'a>,
    /// `TaskChannelUniqueName` and `TaskChannelSid`, read only when a channel filter is asked for.
    pub channels: [Option<&'a str>; 2],
}

/// What a `worker.activity.update` says: the activity left, time spent in it, the one entered.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivityChange<'a> {
    pub previous: Option<&'a str>,
    pub previous_name: Option<&'a str>,
    pub previous_ms: Option<i64>,
    pub current: Option<&'a str>,
    pub current_name: Option<&'a str>,
}

/// A fact where a task or reservation began (`task.created`, `task-queue.entered`,
/// `reservation.created`), as a lookup in the log returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub kind: EventType,
    pub at_ms: i64,
    pub queue: Option<String>,
}

/// A fact with its low-cardinality names interned; task and reservation SIDs stay text (they
/// are many, and live only as keys of open state).
#[derive(Debug, Clone, Copy)]
pub(super) struct Counted<'a> {
    pub(super) kind: EventType,
    pub(super) at_ms: i64,
    pub(super) task: Option<&'a str>,
    pub(super) reservation: Option<&'a str>,
    pub(super) worker: Option<Name>,
    pub(super) queue: Option<Name>,
    pub(super) workflow: Option<Name>,
}

/// An [`ActivityChange`] with its SIDs and names interned.
#[derive(Debug, Clone, Copy)]
pub(super) struct InternedActivity {
    pub(super) previous: Option<Name>,
    pub(super) previous_name: Option<Name>,
    pub(super) previous_ms: Option<i64>,
    pub(super) current: Option<Name>,
    pub(super) current_name: Option<Name>,
}

/// A fact kept while its task's channel is not yet known (channel-filtered reports only).
#[derive(Debug, Clone)]
pub(super) struct HeldFact {
    pub(super) kind: EventType,
    pub(super) at_ms: i64,
    pub(super) task: Option<Box<str>>,
    pub(super) reservation: Option<Box<str>>,
    pub(super) worker: Option<Name>,
    pub(super) queue: Option<Name>,
    pub(super) workflow: Option<Name>,
}

impl HeldFact {
    pub(super) fn of(fact: &Counted<'_>) -> Self {
        Self {
            kind: fact.kind,
            at_ms: fact.at_ms,
            task: fact.task.map(Into::into),
            reservation: fact.reservation.map(Into::into),
            worker: fact.worker,
            queue: fact.queue,
            workflow: fact.workflow,
        }
    }

    pub(super) fn counted(&self) -> Counted<'_> {
        Counted {
            kind: self.kind,
            at_ms: self.at_ms,
            task: self.task.as_deref(),
            reservation: self.reservation.as_deref(),
            worker: self.worker,
            queue: self.queue,
            workflow: self.workflow,
        }
    }
}

/// What the fold keeps of a task until its `task.canceled`, `task.completed` or `task.deleted`.
#[derive(Debug, Default)]
pub(super) struct OpenTask {
    /// Its earliest `task.created` in the window.
    pub(super) created_ms: Option<i64>,
    /// Its `task-queue.entered` facts in the window: (queue, time).
    pub(super) entered: Vec<(Name, i64)>,
    /// Whether any `task-queue.entered` named it (with or without a queue).
    pub(super) any_entered: bool,
    /// `reservation.created` facts counted per scope, for reservations per task.
    pub(super) reservations: Vec<(Option<Name>, u32)>,
    /// Channel-filtered reports: a fact of this task named the channel.
    pub(super) on_channel: bool,
    pub(super) held: Vec<HeldFact>,
}

/// An accept or cancel whose waits are computed at the end of its millisecond or later.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    pub(super) accept: bool,
    pub(super) scope: Option<Name>,
    pub(super) at_ms: i64,
    pub(super) task: Option<Box<str>>,
    pub(super) reservation: Option<Box<str>>,
    pub(super) queue: Option<Name>,
}

/// A sample that needs a task's origins from before the window (or from an ended state).
#[derive(Debug, Clone)]
pub(super) struct PendingTask {
    pub(super) accept: bool,
    pub(super) scope: Option<Name>,
    pub(super) at_ms: i64,
    pub(super) queue: Option<Name>,
    pub(super) needs_created: bool,
    pub(super) needs_entry: bool,
}

/// An acceptance latency that needs its reservation's creation from before the window.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingLatency {
    pub(super) scope: Option<Name>,
    pub(super) at_ms: i64,
}

/// Acceptance latencies kept exactly but compactly: each distinct value and how often it
/// occurred (nearest-rank percentiles need every value; a log repeats values).
#[derive(Debug, Default)]
pub(super) struct Distribution {
    pub(super) counts: BTreeMap<i64, u64>,
    pub(super) len: u64,
}

impl Distribution {
    pub(super) fn add(&mut self, ms: i64) {
        *self.counts.entry(ms).or_default() += 1;
        self.len += 1;
    }

    /// The smallest sample with at least `percent` % of the samples at or below it.
    pub(super) fn nearest_rank(&self, percent: u32) -> Option<i64> {
        let rank = (u64::from(percent) * self.len).div_ceil(100).max(1);
        let mut seen = 0;
        for (&value, &count) in &self.counts {
            seen += count;
            if seen >= rank {
                return Some(value);
            }
        }
        None
    }

    pub(super) fn count_in(&self, from: i64, to: Option<i64>) -> u64 {
        let range = match to {
            Some(to) if to <= from => return 0,
            Some(to) => self.counts.range(from..to),
            None => self.counts.range(from..),
        };
        range.map(|(_, count)| count).sum()
    }
}

#[derive(Debug, Default)]
pub(super) struct PerTask {
    pub(super) tasks: u64,
    pub(super) reservations: u64,
    pub(super) max: u64,
}

/// Every figure of one scope, as it accumulates.
#[derive(Debug)]
pub(super) struct Accumulator {
    pub(super) counters: Counters,
    pub(super) wait_until_accepted: Samples,
    pub(super) wait_in_queue_until_accepted: Samples,
    pub(super) wait_until_canceled: Samples,
    /// Per threshold of `split_by_wait_time`, in the order asked.
    pub(super) splits: Vec<Split>,
    pub(super) samples_without_origin: u64,
    pub(super) activities: BTreeMap<Name, (Option<Name>, Samples)>,
    pub(super) latencies: Distribution,
    pub(super) by_worker: BTreeMap<Name, (u64, u64)>,
    pub(super) by_queue: BTreeMap<Name, (u64, u64)>,
    pub(super) per_task: PerTask,
    pub(super) buckets: Vec<Bucket>,
}
