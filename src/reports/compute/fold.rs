//! The streaming fold: facts go in one at a time in TaskRouter-time order and are counted as
//! they arrive, so a report over any window holds only what is still open (tasks and
//! reservations not yet ended), the scopes and names seen, and the distinct latency values,
//! never the window's facts.
//!
//! Where a figure needs an earlier fact (an accept's task creation, queue entry and
//! reservation creation; a cancel's task creation) it is taken from the open task's or
//! reservation's state. When that state does not have it (the lifecycle began before the
//! window, or the log is out of order), the sample waits until the end and is then completed
//! from [`Origin`]s the caller looks up, exactly as the batch definition in the parent module
//! says. Facts of the same millisecond are settled together, so an origin logged in the same
//! millisecond as the accept counts whatever order the log lists them in.

use std::collections::BTreeMap;

use super::fold_state::{
    Accumulator, Counted, Distribution, HeldFact, InternedActivity, LogFact, OpenTask, Origin,
    PendingLatency, PendingTask, PerTask, Waiting,
};
use super::{
    ActivityDuration, Bucket, By, Counters, EventType, Figures, HashMap, HistogramBin, Name, Names,
    Percentiles, Request, ReservationsPerTask, Samples, Split, TimeoutRate, HISTOGRAM_BOUNDS_MS,
};

/// The whole report's computation: push the window's facts in time order, then [`Fold::finish`].
#[derive(Debug)]
pub struct Fold {
    start_ms: i64,
    end_ms: i64,
    by: By,
    buckets: usize,
    bucket_width: i64,
    thresholds_ms: Vec<i64>,
    thresholds: Vec<u64>,
    channel: Option<String>,
    /// The one scope asked for, if any (interned before any fact, so never missing).
    only: Option<Name>,
    names: Names,
    scopes: BTreeMap<Option<Name>, Accumulator>,
    tasks: HashMap<Box<str>, OpenTask>,
    /// Open reservations: earliest `reservation.created` in the window.
    reservations: HashMap<Box<str>, i64>,
    /// The millisecond being read, and what waits for its end.
    group_ms: i64,
    waiting: Vec<Waiting>,
    closing_tasks: Vec<Box<str>>,
    closing_reservations: Vec<Box<str>>,
    pending_tasks: HashMap<Box<str>, Vec<PendingTask>>,
    pending_latencies: HashMap<Box<str>, Vec<PendingLatency>>,
}

/// Runs `update` on the task's open state, opening it first if needed (one hash when open).
fn with_task<R>(
    tasks: &mut HashMap<Box<str>, OpenTask>,
    sid: &str,
    update: impl FnOnce(&mut OpenTask) -> R,
) -> R {
    match tasks.get_mut(sid) {
        Some(state) => update(state),
        None => {
            let mut state = OpenTask::default();
            let result = update(&mut state);
            tasks.insert(sid.into(), state);
            result
        }
    }
}

impl Fold {
    pub fn new(request: &Request) -> Self {
        let buckets = request.buckets.max(1);
        let span = (request.end_ms - request.start_ms).max(1);
        let mut names = Names::default();
        let only = request.only.as_deref().map(|sid| names.intern(sid));
        let mut fold = Fold {
            start_ms: request.start_ms,
            end_ms: request.end_ms,
            by: request.by,
            buckets,
            bucket_width: (span + buckets as i64 - 1) / buckets as i64,
            thresholds_ms: request.split_by_wait_time.iter().map(|&t| t as i64 * 1000).collect(),
            thresholds: request.split_by_wait_time.clone(),
            channel: request.task_channel.clone(),
            only,
            names,
            scopes: BTreeMap::new(),
            tasks: HashMap::default(),
            reservations: HashMap::default(),
            group_ms: i64::MIN,
            waiting: Vec::new(),
            closing_tasks: Vec::new(),
            closing_reservations: Vec::new(),
            pending_tasks: HashMap::default(),
            pending_latencies: HashMap::default(),
        };
        if fold.by == By::Workspace || only.is_some() {
            let accumulator = fold.new_accumulator();
            fold.scopes.insert(only, accumulator);
        }
        fold
    }

    fn new_accumulator(&self) -> Accumulator {
        Accumulator {
            counters: Counters::default(),
            wait_until_accepted: Samples::default(),
            wait_in_queue_until_accepted: Samples::default(),
            wait_until_canceled: Samples::default(),
            splits: vec![Split::default(); self.thresholds.len()],
            samples_without_origin: 0,
            activities: BTreeMap::new(),
            latencies: Distribution::default(),
            by_worker: BTreeMap::new(),
            by_queue: BTreeMap::new(),
            per_task: PerTask::default(),
            buckets: (0..self.buckets)
                .map(|i| Bucket {
                    start_ms: self.start_ms + i as i64 * self.bucket_width,
                    ..Bucket::default()
                })
                .collect(),
        }
    }

    /// Open tasks and reservations held right now (what the fold's memory grows with).
    pub fn open_lifecycles(&self) -> usize {
        self.tasks.len() + self.reservations.len()
    }

    /// Takes the next fact. Facts must come in non-decreasing `at_ms`; facts outside the
    /// window are ignored.
    pub fn push(&mut self, fact: &LogFact<'_>) {
        if fact.at_ms < self.start_ms || fact.at_ms >= self.end_ms {
            return;
        }
        if fact.at_ms != self.group_ms {
            self.settle();
            self.group_ms = fact.at_ms;
        }
        let names = &mut self.names;
        let counted = Counted {
            kind: fact.kind,
            at_ms: fact.at_ms,
            task: fact.task,
            reservation: fact.reservation,
            worker: fact.worker.map(|s| names.intern(s)),
            queue: fact.queue.map(|s| names.intern(s)),
            // Only a breakdown by workflow reads the workflow.
            workflow: fact.workflow.filter(|_| self.by == By::Workflow).map(|s| names.intern(s)),
        };
        self.note_origin(&counted);
        if fact.kind == EventType::WorkerActivityUpdate {
            let change = &fact.activity;
            let names = &mut self.names;
            let activity = InternedActivity {
                previous: change.previous.map(|s| names.intern(s)),
                previous_name: change.previous_name.map(|s| names.intern(s)),
                previous_ms: change.previous_ms,
                current: change.current.map(|s| names.intern(s)),
                current_name: change.current_name.map(|s| names.intern(s)),
            };
            // Activity changes belong to no task, so to no channel.
            if self.channel.is_none() {
                self.count_activity(&counted, &activity);
            }
        } else if self.channel.is_some() {
            self.count_on_channel(&counted, &fact.channels);
        } else {
            self.count(&counted);
        }
        self.close(&counted);
    }

    /// Origins are kept for every fact, whatever scope or channel is asked for.
    fn note_origin(&mut self, fact: &Counted<'_>) {
        match (fact.kind, fact.task, fact.reservation) {
            (EventType::TaskCreated, Some(task), _) => with_task(&mut self.tasks, task, |state| {
                state.created_ms = Some(state.created_ms.map_or(fact.at_ms, |c| c.min(fact.at_ms)));
            }),
            (EventType::TaskQueueEntered, Some(task), _) => with_task(&mut self.tasks, task, |state| {
                state.any_entered = true;
                if let Some(queue) = fact.queue {
                    state.entered.push((queue, fact.at_ms));
                }
            }),
            (EventType::ReservationCreated, _, Some(reservation)) => {
                match self.reservations.get_mut(reservation) {
                    Some(created) => *created = (*created).min(fact.at_ms),
                    None => drop(self.reservations.insert(reservation.into(), fact.at_ms)),
                }
            }
            _ => {}
        }
    }

    /// A task's facts count once one of them names the channel (by unique name or Sid).
    fn count_on_channel(&mut self, fact: &Counted<'_>, channels: &[Option<&str>; 2]) {
        let Some(task) = fact.task else { return };
        let channel = self.channel.as_deref();
        let names_channel = channels.iter().any(|c| c.is_some() && *c == channel);
        let held = with_task(&mut self.tasks, task, |state| {
            if !state.on_channel && !names_channel {
                state.held.push(HeldFact::of(fact));
                return None;
            }
            state.on_channel = true;
            Some(std::mem::take(&mut state.held))
        });
        let Some(held) = held else { return };
        for earlier in &held {
            self.count(&earlier.counted());
        }
        self.count(fact);
    }

    fn scope_of(
        &self,
        worker: Option<Name>,
        queue: Option<Name>,
        workflow: Option<Name>,
    ) -> Option<Option<Name>> {
        let key = match self.by {
            By::Workspace => Some(None),
            By::Queue => queue.map(Some),
            By::Workflow => workflow.map(Some),
            By::Worker => worker.map(Some),
        }?;
        (self.only.is_none() || key == self.only).then_some(key)
    }

    fn accumulator(&mut self, key: Option<Name>) -> &mut Accumulator {
        if !self.scopes.contains_key(&key) {
            let accumulator = self.new_accumulator();
            self.scopes.insert(key, accumulator);
        }
        self.scopes.get_mut(&key).expect("inserted above")
    }

    fn bucket(&self, at_ms: i64) -> usize {
        (((at_ms - self.start_ms) / self.bucket_width) as usize).min(self.buckets - 1)
    }

    fn count_activity(&mut self, fact: &Counted<'_>, change: &InternedActivity) {
        let Some(key) = self.scope_of(fact.worker, fact.queue, fact.workflow) else { return };
        let InternedActivity { previous, previous_name, previous_ms, current, current_name } = *change;
        let window_start = self.start_ms;
        let acc = self.accumulator(key);
        if let (Some(activity), Some(spent)) = (previous, previous_ms) {
            let entry = acc.activities.entry(activity).or_insert((previous_name, Samples::default()));
            if entry.0.is_none() {
                entry.0 = previous_name;
            }
            // A stint begun before the window counts only for its part inside it.
            entry.1.add(spent.clamp(0, fact.at_ms - window_start));
        }
        if let Some(activity) = current {
            // The activity entered is listed too, even before any stint of it ends.
            let entry = acc.activities.entry(activity).or_insert((current_name, Samples::default()));
            if entry.0.is_none() {
                entry.0 = current_name;
            }
        }
    }

    fn count(&mut self, fact: &Counted<'_>) {
        let Some(key) = self.scope_of(fact.worker, fact.queue, fact.workflow) else { return };
        let bucket = self.bucket(fact.at_ms);
        self.accumulator(key);
        let Fold { by, scopes, tasks, waiting, thresholds_ms, .. } = self;
        let acc = scopes.get_mut(&key).expect("ensured above");
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
        let wait_for_origins = |waiting: &mut Vec<Waiting>, accept: bool| {
            waiting.push(Waiting {
                accept,
                scope: key,
                at_ms: fact.at_ms,
                task: fact.task.map(Into::into),
                reservation: fact.reservation.filter(|_| accept).map(Into::into),
                queue: fact.queue,
            });
        };
        match fact.kind {
            EventType::TaskCreated => c.tasks_created += 1,
            EventType::TaskQueueEntered if *by == By::Queue => c.tasks_entered += 1,
            EventType::WorkflowEntered if *by == By::Workflow => c.tasks_entered += 1,
            EventType::TaskQueueEntered | EventType::WorkflowEntered => {}
            EventType::TaskCanceled => {
                c.tasks_canceled += 1;
                acc.buckets[bucket].tasks_canceled += 1;
                // A creation already seen is the earliest (the log is in time order); else
                // the sample waits for the end of the millisecond, or for a lookup.
                match fact.task.and_then(|t| tasks.get(t)).and_then(|t| t.created_ms) {
                    Some(created) => add_wait(acc, thresholds_ms, false, fact.at_ms - created),
                    None => wait_for_origins(waiting, false),
                }
            }
            EventType::TaskCompleted => {
                c.tasks_completed += 1;
                acc.buckets[bucket].tasks_completed += 1;
            }
            EventType::TaskDeleted => c.tasks_deleted += 1,
            EventType::TaskQueueMoved => c.tasks_moved += 1,
            EventType::WorkflowTimeout => c.tasks_timed_out_in_workflow += 1,
            EventType::ReservationCreated => {
                c.reservations_created += 1;
                if let Some(task) = fact.task {
                    with_task(tasks, task, |state| {
                        match state.reservations.iter_mut().find(|(scope, _)| *scope == key) {
                            Some((_, n)) => *n += 1,
                            None => state.reservations.push((key, 1)),
                        }
                    });
                }
            }
            EventType::ReservationAccepted => {
                c.reservations_accepted += 1;
                acc.buckets[bucket].reservations_accepted += 1;
                waited_on_worker(acc, false);
                // Its waits are read at the end of the millisecond: an origin logged in the
                // same millisecond may be listed after it.
                wait_for_origins(waiting, true);
            }
            EventType::ReservationRejected => {
                c.reservations_rejected += 1;
                acc.buckets[bucket].reservations_rejected += 1;
                waited_on_worker(acc, false);
            }
            EventType::ReservationTimeout => {
                c.reservations_timed_out += 1;
                acc.buckets[bucket].reservations_timed_out += 1;
                waited_on_worker(acc, true);
            }
            EventType::ReservationCanceled => {
                c.reservations_canceled += 1;
                acc.buckets[bucket].reservations_canceled += 1;
            }
            EventType::ReservationRescinded => {
                c.reservations_rescinded += 1;
                acc.buckets[bucket].reservations_rescinded += 1;
            }
            // Activities are the activity fold's; other types are not read (`REPORTED`).
            _ => {}
        }
    }

    /// A task or reservation that ended is forgotten, at the end of its millisecond.
    fn close(&mut self, fact: &Counted<'_>) {
        match fact.kind {
            EventType::TaskCanceled | EventType::TaskCompleted | EventType::TaskDeleted => {
                if let Some(task) = fact.task.filter(|t| self.tasks.contains_key(*t)) {
                    self.closing_tasks.push(task.into());
                }
            }
            EventType::ReservationAccepted
            | EventType::ReservationRejected
            | EventType::ReservationTimeout
            | EventType::ReservationCanceled
            | EventType::ReservationRescinded => {
                if let Some(reservation) = fact.reservation.filter(|r| self.reservations.contains_key(*r)) {
                    self.closing_reservations.push(reservation.into());
                }
            }
            _ => {}
        }
    }

    /// Ends the current millisecond: computes what waited for it, then forgets what ended.
    fn settle(&mut self) {
        // Called at almost every fact: the lists keep their buffers.
        if !self.waiting.is_empty() {
            let mut waiting = std::mem::take(&mut self.waiting);
            for sample in waiting.drain(..) {
                self.complete(sample);
            }
            self.waiting = waiting;
        }
        if !self.closing_tasks.is_empty() {
            let mut closing = std::mem::take(&mut self.closing_tasks);
            for task in closing.drain(..) {
                if let Some(state) = self.tasks.remove(&task) {
                    self.retire(state);
                }
            }
            self.closing_tasks = closing;
        }
        for reservation in self.closing_reservations.drain(..) {
            self.reservations.remove(&reservation);
        }
    }

    /// Adds a task's reservations-per-task counts to its scopes (its held facts, never on the
    /// channel, are dropped).
    fn retire(&mut self, state: OpenTask) {
        for (scope, n) in state.reservations {
            if let Some(acc) = self.scopes.get_mut(&scope) {
                acc.per_task.tasks += 1;
                acc.per_task.reservations += u64::from(n);
                acc.per_task.max = acc.per_task.max.max(u64::from(n));
            }
        }
    }

    fn complete(&mut self, waiting: Waiting) {
        let thresholds = &self.thresholds_ms;
        let acc = self.scopes.get_mut(&waiting.scope).expect("a waiting sample's scope exists");
        let state = waiting.task.as_deref().and_then(|t| self.tasks.get(t));
        let (needs_created, needs_entry) = match (&waiting.task, state) {
            (None, _) => {
                acc.samples_without_origin += 1;
                (false, false)
            }
            (Some(_), None) => (true, waiting.accept && waiting.queue.is_some()),
            (Some(_), Some(state)) => {
                let needs_created = match state.created_ms {
                    Some(created) => {
                        add_wait(acc, thresholds, waiting.accept, waiting.at_ms - created);
                        false
                    }
                    None => true,
                };
                let needs_entry = match waiting.queue.filter(|_| waiting.accept) {
                    None => false,
                    // The task began in the window: its latest entry into this queue counts.
                    Some(queue) if state.any_entered && state.created_ms.is_some() => {
                        let latest = state
                            .entered
                            .iter()
                            .filter(|(q, at)| *q == queue && *at <= waiting.at_ms)
                            .map(|(_, at)| *at)
                            .max();
                        if let Some(entered) = latest {
                            acc.wait_in_queue_until_accepted.add(waiting.at_ms - entered);
                        }
                        false
                    }
                    Some(_) => true,
                };
                (needs_created, needs_entry)
            }
        };
        if needs_created || needs_entry {
            let task = waiting.task.clone().expect("a task is named");
            self.pending_tasks.entry(task).or_default().push(PendingTask {
                accept: waiting.accept,
                scope: waiting.scope,
                at_ms: waiting.at_ms,
                queue: waiting.queue,
                needs_created,
                needs_entry,
            });
        }
        if !waiting.accept {
            return;
        }
        if let Some(reservation) = waiting.reservation {
            let acc = self.scopes.get_mut(&waiting.scope).expect("a waiting sample's scope exists");
            match self.reservations.get(&reservation) {
                Some(created) => acc.latencies.add(waiting.at_ms - created),
                None => self
                    .pending_latencies
                    .entry(reservation)
                    .or_default()
                    .push(PendingLatency { scope: waiting.scope, at_ms: waiting.at_ms }),
            }
        }
    }

    /// Completes the samples whose origins were not in the window's state, with `lookup(sid)`:
    /// every `task.created` / `task-queue.entered` of that task and `reservation.created` of
    /// that reservation before the window's end. Then gives every scope's figures.
    ///
    /// # Errors
    /// The first error `lookup` returns.
    pub fn finish<E>(
        mut self,
        mut lookup: impl FnMut(&str) -> Result<Vec<Origin>, E>,
    ) -> Result<Vec<Figures>, E> {
        self.settle();
        for (_, state) in std::mem::take(&mut self.tasks) {
            self.retire(state);
        }
        for (task, samples) in std::mem::take(&mut self.pending_tasks) {
            let origins = lookup(&task)?;
            let created = origins.iter().filter(|o| o.kind == EventType::TaskCreated).map(|o| o.at_ms).min();
            for sample in samples {
                let acc = self.scopes.get_mut(&sample.scope).expect("exists");
                if sample.needs_created {
                    match created {
                        Some(created) => {
                            add_wait(acc, &self.thresholds_ms, sample.accept, sample.at_ms - created)
                        }
                        None => acc.samples_without_origin += 1,
                    }
                }
                if sample.needs_entry {
                    let queue = sample.queue.map(|q| self.names.text(q));
                    let latest = origins
                        .iter()
                        .filter(|o| o.kind == EventType::TaskQueueEntered && o.queue.as_deref() == queue)
                        .filter(|o| o.at_ms <= sample.at_ms)
                        .map(|o| o.at_ms)
                        .max();
                    if let Some(entered) = latest {
                        acc.wait_in_queue_until_accepted.add(sample.at_ms - entered);
                    }
                }
            }
        }
        for (reservation, samples) in std::mem::take(&mut self.pending_latencies) {
            let origins = lookup(&reservation)?;
            let created =
                origins.iter().filter(|o| o.kind == EventType::ReservationCreated).map(|o| o.at_ms).min();
            if let Some(created) = created {
                for sample in samples {
                    let acc = self.scopes.get_mut(&sample.scope).expect("exists");
                    acc.latencies.add(sample.at_ms - created);
                }
            }
        }
        let names = &self.names;
        let thresholds = &self.thresholds;
        Ok(std::mem::take(&mut self.scopes)
            .into_iter()
            .map(|(key, acc)| figures(acc, key.map(|k| names.text(k).to_string()), names, thresholds))
            .collect())
    }
}

fn add_wait(acc: &mut Accumulator, thresholds_ms: &[i64], accept: bool, wait: i64) {
    if accept {
        acc.wait_until_accepted.add(wait);
        for (split, &limit) in acc.splits.iter_mut().zip(thresholds_ms) {
            let side = if wait <= limit { &mut split.below } else { &mut split.above };
            side.reservations_accepted += 1;
        }
    } else {
        add_cancel_wait(acc, thresholds_ms, wait);
    }
}

fn add_cancel_wait(acc: &mut Accumulator, thresholds_ms: &[i64], wait: i64) {
    acc.wait_until_canceled.add(wait);
    for (split, &limit) in acc.splits.iter_mut().zip(thresholds_ms) {
        let side = if wait <= limit { &mut split.below } else { &mut split.above };
        side.tasks_canceled += 1;
    }
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

fn figures(acc: Accumulator, sid: Option<String>, names: &Names, thresholds: &[u64]) -> Figures {
    let latencies = &acc.latencies;
    let mut histogram: Vec<HistogramBin> = Vec::with_capacity(HISTOGRAM_BOUNDS_MS.len() + 1);
    let mut from = 0;
    for bound in HISTOGRAM_BOUNDS_MS.iter().copied().map(Some).chain(std::iter::once(None)) {
        histogram.push(HistogramBin { from_ms: from, to_ms: bound, count: latencies.count_in(from, bound) });
        from = bound.unwrap_or(from);
    }
    // Negative latencies (clock skew) fall in the first bar.
    histogram[0].count += latencies.count_in(i64::MIN, Some(0));
    let per_task = &acc.per_task;
    Figures {
        sid,
        counters: acc.counters,
        wait_until_accepted: acc.wait_until_accepted,
        wait_in_queue_until_accepted: acc.wait_in_queue_until_accepted,
        wait_until_canceled: acc.wait_until_canceled,
        samples_without_origin: acc.samples_without_origin,
        split_by_wait_time: thresholds.iter().copied().zip(acc.splits).collect(),
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
            count: latencies.len,
            p50_ms: latencies.nearest_rank(50),
            p90_ms: latencies.nearest_rank(90),
            p99_ms: latencies.nearest_rank(99),
            max_ms: latencies.counts.keys().next_back().copied(),
        },
        latency_histogram: histogram,
        timeout_rate_by_worker: rates(&acc.by_worker, names),
        timeout_rate_by_queue: rates(&acc.by_queue, names),
        reservations_per_task: ReservationsPerTask {
            tasks: per_task.tasks,
            reservations: per_task.reservations,
            mean: (per_task.tasks > 0).then(|| per_task.reservations as f64 / per_task.tasks as f64),
            max: per_task.max,
        },
        outcomes_over_time: acc.buckets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::compute::ActivityChange;

    fn fact<'a>(kind: EventType, at_ms: i64, task: &'a str, reservation: &'a str) -> LogFact<'a> {
        LogFact {
            kind,
            at_ms,
            task: Some(task),
            reservation: (!reservation.is_empty()).then_some(reservation),
            worker: Some("WKann"),
            queue: Some("WQ1"),
            workflow: Some("WW1"),
            activity: ActivityChange::default(),
            channels: [None, None],
        }
    }

    #[test]
    fn memory_follows_open_lifecycles_not_facts() {
        let request = Request {
            start_ms: 0,
            end_ms: 1_000_000_000_000,
            by: By::Workspace,
            only: None,
            split_by_wait_time: vec![10],
            task_channel: None,
            buckets: 24,
        };
        let mut fold = Fold::new(&request);
        let mut most_open = 0;
        // 20,000 tasks, three in flight at any time: each is created, offered, accepted after
        // 2 s and completed after 60 s.
        let sids: Vec<(String, String)> = (0..20_000).map(|i| (format!("WT{i}"), format!("WR{i}"))).collect();
        let mut events = Vec::new();
        for (i, (task, reservation)) in sids.iter().enumerate() {
            let t = i as i64 * 20_000;
            events.push(fact(EventType::TaskCreated, t, task, ""));
            events.push(fact(EventType::TaskQueueEntered, t, task, ""));
            events.push(fact(EventType::ReservationCreated, t + 1_000, task, reservation));
            events.push(fact(EventType::ReservationAccepted, t + 3_000, task, reservation));
            events.push(fact(EventType::TaskCompleted, t + 60_000, task, ""));
        }
        events.sort_by_key(|f| f.at_ms);
        for event in &events {
            fold.push(event);
            most_open = most_open.max(fold.open_lifecycles());
        }
        assert!(most_open <= 6, "{most_open} lifecycles held at once");
        let figures = fold.finish(|_| Ok::<_, ()>(Vec::new())).unwrap().remove(0);
        assert_eq!(figures.counters.tasks_completed, 20_000);
        assert_eq!(figures.wait_until_accepted.stats().avg, 3);
        assert_eq!(figures.acceptance_latency.p99_ms, Some(2_000));
        assert_eq!(figures.reservations_per_task.tasks, 20_000);
        assert_eq!(figures.split_by_wait_time[0].1.below.reservations_accepted, 20_000);
    }
}
