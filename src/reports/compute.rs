//! The pure fold from facts to report figures: no database, clock or I/O, so every figure can
//! be re-derived by hand from the facts listed in a test.
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

use std::collections::BTreeMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;

/// A multiplicative hasher (the Fx hash of rustc) for interned numbers and SIDs: a report
/// hashes millions of keys, and SipHash's protection against chosen keys buys nothing for
/// keys read from our own log.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
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

/// The event types reports read; everything else is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    TaskCreated,
    TaskCanceled,
    TaskCompleted,
    TaskDeleted,
    TaskQueueEntered,
    TaskQueueMoved,
    WorkflowEntered,
    WorkflowTimeout,
    ReservationCreated,
    ReservationAccepted,
    ReservationRejected,
    ReservationTimeout,
    ReservationCanceled,
    ReservationRescinded,
    WorkerActivityUpdate,
}

impl Kind {
    /// Every kind with its `EventType`.
    pub const ALL: [(Kind, &'static str); 15] = [
        (Kind::TaskCreated, "task.created"),
        (Kind::TaskCanceled, "task.canceled"),
        (Kind::TaskCompleted, "task.completed"),
        (Kind::TaskDeleted, "task.deleted"),
        (Kind::TaskQueueEntered, "task-queue.entered"),
        (Kind::TaskQueueMoved, "task-queue.moved"),
        (Kind::WorkflowEntered, "workflow.entered"),
        (Kind::WorkflowTimeout, "workflow.timeout"),
        (Kind::ReservationCreated, "reservation.created"),
        (Kind::ReservationAccepted, "reservation.accepted"),
        (Kind::ReservationRejected, "reservation.rejected"),
        (Kind::ReservationTimeout, "reservation.timeout"),
        (Kind::ReservationCanceled, "reservation.canceled"),
        (Kind::ReservationRescinded, "reservation.rescinded"),
        (Kind::WorkerActivityUpdate, "worker.activity.update"),
    ];

    pub fn from_event_type(event_type: &str) -> Option<Kind> {
        Kind::ALL.iter().find(|(_, name)| *name == event_type).map(|(kind, _)| *kind)
    }
}

/// An interned SID or name (reports hold a million facts; strings are stored once).
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

/// One counted fact, with only what the figures need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFact {
    pub event_id: i64,
    pub kind: Kind,
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
    pub fn new(event_id: i64, kind: Kind, at_ms: i64) -> Self {
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

#[derive(Default)]
struct Accumulator {
    counters: Counters,
    wait_until_accepted: Samples,
    wait_in_queue_until_accepted: Samples,
    wait_until_canceled: Samples,
    accept_waits: Vec<i64>,
    cancel_waits: Vec<i64>,
    samples_without_origin: u64,
    activities: BTreeMap<Name, (Option<Name>, Samples)>,
    latencies: Vec<i64>,
    by_worker: BTreeMap<Name, (u64, u64)>,
    by_queue: BTreeMap<Name, (u64, u64)>,
    reservations_by_task: HashMap<Name, u64>,
    buckets: Vec<Bucket>,
}

/// Where each task and reservation began, from every fact supplied (inside the window or not).
struct Origins {
    task_created: HashMap<Name, i64>,
    queue_entered: HashMap<(Name, Name), Vec<i64>>,
    reservation_created: HashMap<Name, i64>,
}

impl Origins {
    fn of(facts: &[ReportFact]) -> Self {
        let mut origins = Origins {
            task_created: HashMap::default(),
            queue_entered: HashMap::default(),
            reservation_created: HashMap::default(),
        };
        for fact in facts {
            match (fact.kind, fact.task, fact.reservation, fact.queue) {
                (Kind::TaskCreated, Some(task), _, _) => {
                    let at = origins.task_created.entry(task).or_insert(fact.at_ms);
                    *at = (*at).min(fact.at_ms);
                }
                (Kind::TaskQueueEntered, Some(task), _, Some(queue)) => {
                    origins.queue_entered.entry((task, queue)).or_default().push(fact.at_ms);
                }
                (Kind::ReservationCreated, _, Some(reservation), _) => {
                    let at = origins.reservation_created.entry(reservation).or_insert(fact.at_ms);
                    *at = (*at).min(fact.at_ms);
                }
                _ => {}
            }
        }
        origins
    }

    /// The latest entry of `task` into `queue` at or before `at_ms`.
    fn entered_queue(&self, task: Name, queue: Name, at_ms: i64) -> Option<i64> {
        self.queue_entered.get(&(task, queue))?.iter().copied().filter(|t| *t <= at_ms).max()
    }
}

/// Tasks whose facts name the channel asked for (by unique name or Sid).
fn tasks_on_channel(facts: &[ReportFact], channel: Name) -> HashSet<Name> {
    facts.iter().filter(|f| f.channels.contains(&Some(channel))).filter_map(|f| f.task).collect()
}

fn scope_key(fact: &ReportFact, by: By) -> Option<Option<Name>> {
    match by {
        By::Workspace => Some(None),
        By::Queue => fact.queue.map(Some),
        By::Workflow => fact.workflow.map(Some),
        By::Worker => fact.worker.map(Some),
    }
}

/// Computes the figures of every scope of `request.by` seen in the window (or only
/// `request.only`), from `facts`: the window's facts plus, outside it, the facts where the
/// window's tasks and reservations began. Facts outside the window are never counted.
pub fn compute(facts: &[ReportFact], names: &Names, request: &Request) -> Vec<Figures> {
    let origins = Origins::of(facts);
    let channel_tasks = request.task_channel.as_deref().map(|c| match names.get(c) {
        Some(channel) => tasks_on_channel(facts, channel),
        None => HashSet::default(),
    });
    let only = match request.only.as_deref() {
        Some(sid) => match names.get(sid) {
            Some(n) => Some(n),
            // Asked for a scope the log never mentions: one empty report.
            None => return vec![finish(Accumulator::default(), Some(sid.to_string()), names, request)],
        },
        None => None,
    };
    let buckets = request.buckets.max(1);
    let span = (request.end_ms - request.start_ms).max(1);
    let bucket_width = (span + buckets as i64 - 1) / buckets as i64;
    let new_accumulator = || Accumulator {
        buckets: (0..buckets)
            .map(|i| Bucket { start_ms: request.start_ms + i as i64 * bucket_width, ..Bucket::default() })
            .collect(),
        ..Accumulator::default()
    };
    let mut scopes: BTreeMap<Option<Name>, Accumulator> = BTreeMap::new();
    if request.by == By::Workspace || only.is_some() {
        scopes.insert(only, new_accumulator());
    }
    for fact in facts {
        if fact.at_ms < request.start_ms || fact.at_ms >= request.end_ms {
            continue;
        }
        if let Some(tasks) = &channel_tasks {
            // Activity changes belong to no task and so to no channel.
            if fact.kind == Kind::WorkerActivityUpdate || !fact.task.is_some_and(|t| tasks.contains(&t)) {
                continue;
            }
        }
        let Some(key) = scope_key(fact, request.by) else { continue };
        if only.is_some() && key != only {
            continue;
        }
        let accumulator = scopes.entry(key).or_insert_with(new_accumulator);
        let bucket = ((fact.at_ms - request.start_ms) / bucket_width) as usize;
        accumulate(accumulator, fact, &origins, request.by, request.start_ms, bucket.min(buckets - 1));
    }
    scopes
        .into_iter()
        .map(|(key, accumulator)| finish(accumulator, key.map(|k| names.text(k).to_string()), names, request))
        .collect()
}

fn accumulate(
    acc: &mut Accumulator,
    fact: &ReportFact,
    origins: &Origins,
    by: By,
    window_start: i64,
    bucket: usize,
) {
    let c = &mut acc.counters;
    let waited_on_worker = |acc: &mut Accumulator, timed_out: bool| {
        for (map, key) in [(&mut acc.by_worker, fact.worker), (&mut acc.by_queue, fact.queue)] {
            if let Some(key) = key {
                let entry = map.entry(key).or_default();
                entry.0 += 1;
                entry.1 += u64::from(timed_out);
            }
        }
    };
    match fact.kind {
        Kind::TaskCreated => c.tasks_created += 1,
        Kind::TaskQueueEntered if by == By::Queue => c.tasks_entered += 1,
        Kind::WorkflowEntered if by == By::Workflow => c.tasks_entered += 1,
        Kind::TaskQueueEntered | Kind::WorkflowEntered => {}
        Kind::TaskCanceled => {
            c.tasks_canceled += 1;
            acc.buckets[bucket].tasks_canceled += 1;
            match fact.task.and_then(|t| origins.task_created.get(&t)) {
                Some(created) => {
                    let wait = fact.at_ms - created;
                    acc.wait_until_canceled.add(wait);
                    acc.cancel_waits.push(wait);
                }
                None => acc.samples_without_origin += 1,
            }
        }
        Kind::TaskCompleted => {
            c.tasks_completed += 1;
            acc.buckets[bucket].tasks_completed += 1;
        }
        Kind::TaskDeleted => c.tasks_deleted += 1,
        Kind::TaskQueueMoved => c.tasks_moved += 1,
        Kind::WorkflowTimeout => c.tasks_timed_out_in_workflow += 1,
        Kind::ReservationCreated => {
            c.reservations_created += 1;
            if let Some(task) = fact.task {
                *acc.reservations_by_task.entry(task).or_default() += 1;
            }
        }
        Kind::ReservationAccepted => {
            c.reservations_accepted += 1;
            acc.buckets[bucket].reservations_accepted += 1;
            waited_on_worker(acc, false);
            match fact.task.and_then(|t| origins.task_created.get(&t)) {
                Some(created) => {
                    let wait = fact.at_ms - created;
                    acc.wait_until_accepted.add(wait);
                    acc.accept_waits.push(wait);
                }
                None => acc.samples_without_origin += 1,
            }
            if let (Some(task), Some(queue)) = (fact.task, fact.queue) {
                if let Some(entered) = origins.entered_queue(task, queue, fact.at_ms) {
                    acc.wait_in_queue_until_accepted.add(fact.at_ms - entered);
                }
            }
            if let Some(created) = fact.reservation.and_then(|r| origins.reservation_created.get(&r)) {
                acc.latencies.push(fact.at_ms - created);
            }
        }
        Kind::ReservationRejected => {
            c.reservations_rejected += 1;
            acc.buckets[bucket].reservations_rejected += 1;
            waited_on_worker(acc, false);
        }
        Kind::ReservationTimeout => {
            c.reservations_timed_out += 1;
            acc.buckets[bucket].reservations_timed_out += 1;
            waited_on_worker(acc, true);
        }
        Kind::ReservationCanceled => {
            c.reservations_canceled += 1;
            acc.buckets[bucket].reservations_canceled += 1;
        }
        Kind::ReservationRescinded => {
            c.reservations_rescinded += 1;
            acc.buckets[bucket].reservations_rescinded += 1;
        }
        Kind::WorkerActivityUpdate => {
            if let (Some(activity), Some(spent)) = (fact.previous_activity, fact.previous_activity_ms) {
                let entry = acc
                    .activities
                    .entry(activity)
                    .or_insert((fact.previous_activity_name, Samples::default()));
                if entry.0.is_none() {
                    entry.0 = fact.previous_activity_name;
                }
                // A stint begun before the window counts only for its part inside it.
                entry.1.add(spent.clamp(0, fact.at_ms - window_start));
            }
            if let Some(activity) = fact.activity {
                // The activity entered is listed too, even before any stint of it ends.
                let entry =
                    acc.activities.entry(activity).or_insert((fact.activity_name, Samples::default()));
                if entry.0.is_none() {
                    entry.0 = fact.activity_name;
                }
            }
        }
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

fn rates(map: &BTreeMap<Name, (u64, u64)>, names: &Names) -> Vec<TimeoutRate> {
    map.iter()
        .map(|(sid, (answerable, timed_out))| TimeoutRate {
            sid: names.text(*sid).to_string(),
            reservations_answerable: *answerable,
            reservations_timed_out: *timed_out,
            rate: (*answerable > 0).then(|| *timed_out as f64 / *answerable as f64),
        })
        .collect()
}

fn finish(mut acc: Accumulator, sid: Option<String>, names: &Names, request: &Request) -> Figures {
    let split_by_wait_time = request
        .split_by_wait_time
        .iter()
        .map(|&threshold| {
            let limit = threshold as i64 * 1000;
            let mut split = Split::default();
            for &wait in &acc.accept_waits {
                let side = if wait <= limit { &mut split.below } else { &mut split.above };
                side.reservations_accepted += 1;
            }
            for &wait in &acc.cancel_waits {
                let side = if wait <= limit { &mut split.below } else { &mut split.above };
                side.tasks_canceled += 1;
            }
            (threshold, split)
        })
        .collect();
    acc.latencies.sort_unstable();
    let latencies = &acc.latencies;
    let mut histogram: Vec<HistogramBin> = Vec::with_capacity(HISTOGRAM_BOUNDS_MS.len() + 1);
    let mut from = 0;
    for bound in HISTOGRAM_BOUNDS_MS.iter().copied().map(Some).chain(std::iter::once(None)) {
        let count = latencies.iter().filter(|&&l| l >= from && bound.is_none_or(|b| l < b)).count() as u64;
        histogram.push(HistogramBin { from_ms: from, to_ms: bound, count });
        from = bound.unwrap_or(from);
    }
    // Negative latencies (clock skew) fall in the first bar.
    histogram[0].count += latencies.iter().filter(|&&l| l < 0).count() as u64;
    let per_task = &acc.reservations_by_task;
    let reservations: u64 = per_task.values().sum();
    Figures {
        sid,
        counters: acc.counters,
        wait_until_accepted: acc.wait_until_accepted,
        wait_in_queue_until_accepted: acc.wait_in_queue_until_accepted,
        wait_until_canceled: acc.wait_until_canceled,
        samples_without_origin: acc.samples_without_origin,
        split_by_wait_time,
        activity_durations: acc
            .activities
            .into_iter()
            .map(|(sid, (name, samples))| ActivityDuration {
                sid: names.text(sid).to_string(),
                friendly_name: name.map(|n| names.text(n).to_string()).unwrap_or_default(),
                samples,
            })
            .collect(),
        acceptance_latency: Percentiles {
            count: latencies.len() as u64,
            p50_ms: nearest_rank(latencies, 50),
            p90_ms: nearest_rank(latencies, 90),
            p99_ms: nearest_rank(latencies, 99),
            max_ms: latencies.last().copied(),
        },
        latency_histogram: histogram,
        timeout_rate_by_worker: rates(&acc.by_worker, names),
        timeout_rate_by_queue: rates(&acc.by_queue, names),
        reservations_per_task: ReservationsPerTask {
            tasks: per_task.len() as u64,
            reservations,
            mean: (!per_task.is_empty()).then(|| reservations as f64 / per_task.len() as f64),
            max: per_task.values().copied().max().unwrap_or(0),
        },
        outcomes_over_time: acc.buckets,
    }
}

#[cfg(test)]
mod tests;
