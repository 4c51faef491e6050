//! The fold as it was first written (every fact of the window in memory, origins in hash
//! maps), kept only as the oracle the streaming fold is checked against: both must give the
//! same figures for any log.

use std::collections::BTreeMap;

use super::{
    nearest_rank, ActivityDuration, Bucket, By, Counters, EventType, Figures, HashMap, HashSet, HistogramBin,
    Name, Names, Percentiles, ReportFact, Request, ReservationsPerTask, Samples, Split, TimeoutRate,
    HISTOGRAM_BOUNDS_MS,
};

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
                (EventType::TaskCreated, Some(task), _, _) => {
                    let at = origins.task_created.entry(task).or_insert(fact.at_ms);
                    *at = (*at).min(fact.at_ms);
                }
                (EventType::TaskQueueEntered, Some(task), _, Some(queue)) => {
                    origins.queue_entered.entry((task, queue)).or_default().push(fact.at_ms);
                }
                (EventType::ReservationCreated, _, Some(reservation), _) => {
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
pub fn compute_reference(facts: &[ReportFact], names: &Names, request: &Request) -> Vec<Figures> {
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
            if fact.kind == EventType::WorkerActivityUpdate || !fact.task.is_some_and(|t| tasks.contains(&t))
            {
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
        EventType::TaskCreated => c.tasks_created += 1,
        EventType::TaskQueueEntered if by == By::Queue => c.tasks_entered += 1,
        EventType::WorkflowEntered if by == By::Workflow => c.tasks_entered += 1,
        EventType::TaskQueueEntered | EventType::WorkflowEntered => {}
        EventType::TaskCanceled => {
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
                *acc.reservations_by_task.entry(task).or_default() += 1;
            }
        }
        EventType::ReservationAccepted => {
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
        EventType::WorkerActivityUpdate => {
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
        // Only the reported types are read (`REPORTED`).
        _ => {}
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

/// The facts the first store gave this fold for a window: the window's facts, plus the facts
/// before it where the tasks and reservations its accepts and cancels concern began, when the
/// window lacked them (its `load_origins`, verbatim in meaning).
fn as_first_loaded(log: &[ReportFact], start_ms: i64, end_ms: i64) -> Vec<ReportFact> {
    let mut facts: Vec<ReportFact> =
        log.iter().filter(|f| f.at_ms >= start_ms && f.at_ms < end_ms).cloned().collect();
    let mut created_tasks = HashSet::default();
    let mut entered = HashSet::default();
    let mut created_reservations = HashSet::default();
    for fact in &facts {
        match fact.kind {
            EventType::TaskCreated => drop(created_tasks.insert(fact.task)),
            EventType::TaskQueueEntered => drop(entered.insert(fact.task)),
            EventType::ReservationCreated => drop(created_reservations.insert(fact.reservation)),
            _ => {}
        }
    }
    let mut missing_tasks = HashSet::default();
    let mut missing_reservations = HashSet::default();
    for fact in &facts {
        if matches!(fact.kind, EventType::ReservationAccepted | EventType::TaskCanceled) {
            if let Some(task) = fact.task {
                if !created_tasks.contains(&Some(task)) || !entered.contains(&Some(task)) {
                    missing_tasks.insert(task);
                }
            }
        }
        if fact.kind == EventType::ReservationAccepted && !created_reservations.contains(&fact.reservation) {
            missing_reservations.extend(fact.reservation);
        }
    }
    let earlier: Vec<ReportFact> = log
        .iter()
        .filter(|f| f.at_ms < start_ms)
        .filter(|f| match f.kind {
            EventType::TaskCreated | EventType::TaskQueueEntered => {
                f.task.is_some_and(|t| missing_tasks.contains(&t))
            }
            EventType::ReservationCreated => f.reservation.is_some_and(|r| missing_reservations.contains(&r)),
            _ => false,
        })
        .map(|f| {
            let mut origin = ReportFact::new(f.event_id, f.kind, f.at_ms);
            (origin.task, origin.reservation, origin.queue) = (f.task, f.reservation, f.queue);
            origin
        })
        .collect();
    facts.extend(earlier);
    facts
}

#[cfg(test)]
mod equivalence {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::reports::compute::compute;

    const T0: i64 = 1_700_000_000_000;

    /// A log as TaskRouter would write it (one creation per task and reservation, lifecycles in
    /// time order), on a coarse clock so many facts share a millisecond, in index order.
    fn random_log(rng: &mut SmallRng) -> (Vec<ReportFact>, Names) {
        struct Row {
            kind: EventType,
            at: i64,
            task: String,
            reservation: String,
            worker: String,
            queue: String,
            channel: String,
            activity: Option<(String, String, i64)>,
        }
        let mut rows: Vec<Row> = Vec::new();
        let tick = |rng: &mut SmallRng| rng.gen_range(0..4) * 500;
        let row = |kind, at, task: &str, queue: &str| Row {
            kind,
            at,
            task: task.into(),
            reservation: String::new(),
            worker: String::new(),
            queue: queue.into(),
            channel: String::new(),
            activity: None,
        };
        for t in 0..rng.gen_range(0..40) {
            let task = format!("WT{t}");
            let channel = ["voice", "chat", ""][rng.gen_range(0..3)];
            let mut at = T0 + rng.gen_range(0..60) * 1000;
            let mut queue = format!("WQ{}", rng.gen_range(0..3));
            let mut lifecycle = Vec::new();
            // Some tasks' beginnings are not in the log at all.
            if rng.gen_bool(0.9) {
                lifecycle.push(row(EventType::TaskCreated, at, &task, &queue));
                lifecycle.push(row(EventType::WorkflowEntered, at, &task, &queue));
                if rng.gen_bool(0.9) {
                    lifecycle.push(row(EventType::TaskQueueEntered, at, &task, &queue));
                }
            }
            let mut accepted = false;
            for r in 0..rng.gen_range(0..4) {
                if accepted {
                    break;
                }
                if rng.gen_bool(0.15) {
                    at += tick(rng);
                    queue = format!("WQ{}", rng.gen_range(0..3));
                    lifecycle.push(row(EventType::TaskQueueMoved, at, &task, &queue));
                    lifecycle.push(row(EventType::TaskQueueEntered, at, &task, &queue));
                }
                at += tick(rng);
                let reservation = format!("WR{t}-{r}");
                let worker = format!("WK{}", rng.gen_range(0..3));
                let offer = |kind, at| {
                    let mut fact = row(kind, at, &task, &queue);
                    (fact.reservation, fact.worker) = (reservation.clone(), worker.clone());
                    fact
                };
                if rng.gen_bool(0.9) {
                    lifecycle.push(offer(EventType::ReservationCreated, at));
                }
                at += tick(rng);
                let outcome = [
                    EventType::ReservationAccepted,
                    EventType::ReservationRejected,
                    EventType::ReservationTimeout,
                    EventType::ReservationCanceled,
                    EventType::ReservationRescinded,
                ][rng.gen_range(0..5)];
                accepted = outcome == EventType::ReservationAccepted;
                lifecycle.push(offer(outcome, at));
            }
            at += tick(rng);
            match rng.gen_range(0..4) {
                0 => lifecycle.push(row(EventType::TaskCanceled, at, &task, &queue)),
                1 => lifecycle.push(row(EventType::TaskCompleted, at, &task, &queue)),
                2 => {
                    lifecycle.push(row(EventType::WorkflowTimeout, at, &task, &queue));
                    lifecycle.push(row(EventType::TaskCanceled, at, &task, &queue));
                }
                _ => {}
            }
            if rng.gen_bool(0.05) {
                lifecycle.push(row(EventType::TaskDeleted, at + tick(rng), &task, &queue));
            }
            for mut fact in lifecycle {
                // A fact that does not carry the task's channel, now and then, but the task's
                // end does (after it, the streaming fold has forgotten the task).
                let ends = matches!(
                    fact.kind,
                    EventType::TaskCanceled | EventType::TaskCompleted | EventType::TaskDeleted
                );
                if ends || rng.gen_bool(0.9) {
                    fact.channel = channel.into();
                }
                rows.push(fact);
            }
        }
        for _ in 0..rng.gen_range(0..10) {
            let worker = format!("WK{}", rng.gen_range(0..4));
            let activity = |rng: &mut SmallRng| ["Available", "Busy", "Offline"][rng.gen_range(0..3)];
            let mut fact = row(EventType::WorkerActivityUpdate, T0 + rng.gen_range(0..80) * 1000, "", "");
            fact.queue = String::new();
            fact.worker = worker;
            fact.activity = Some((activity(rng).into(), activity(rng).into(), rng.gen_range(0..100_000)));
            rows.push(fact);
        }
        // Index order: time, then event type.
        rows.sort_by(|a, b| a.at.cmp(&b.at).then(a.kind.cmp(&b.kind)));
        let mut names = Names::default();
        let mut facts = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let mut fact = ReportFact::new(i as i64 + 1, row.kind, row.at);
            let mut name = |s: &str| (!s.is_empty()).then(|| names.intern(s));
            fact.task = name(&row.task);
            fact.reservation = name(&row.reservation);
            fact.worker = name(&row.worker);
            fact.queue = name(&row.queue);
            fact.workflow = name(if row.task.is_empty() { "" } else { "WW1" });
            if let Some((from, to, spent)) = &row.activity {
                fact.previous_activity = name(&format!("WA{from}"));
                fact.previous_activity_name = name(from);
                fact.activity = name(&format!("WA{to}"));
                fact.activity_name = name(to);
                fact.previous_activity_ms = Some(*spent);
            }
            fact.channels[0] = name(&row.channel);
            facts.push(fact);
        }
        (facts, names)
    }

    /// The facts with names numbered as the first store numbered them: in the order it read
    /// them, column by column (scopes are listed in that order).
    fn interned_as_read(facts: &[ReportFact], names: &Names) -> (Vec<ReportFact>, Names) {
        let mut read = Names::default();
        let facts = facts
            .iter()
            .map(|f| {
                let mut again = |n: Option<Name>| n.map(|n| read.intern(names.text(n)));
                let mut fact = f.clone();
                fact.task = again(f.task);
                fact.reservation = again(f.reservation);
                fact.worker = again(f.worker);
                fact.queue = again(f.queue);
                fact.workflow = again(f.workflow);
                fact.previous_activity = again(f.previous_activity);
                fact.previous_activity_name = again(f.previous_activity_name);
                fact.activity = again(f.activity);
                fact.activity_name = again(f.activity_name);
                fact.channels = [again(f.channels[0]), again(f.channels[1])];
                fact
            })
            .collect();
        (facts, read)
    }

    #[test]
    fn the_streaming_fold_gives_the_first_folds_figures() {
        for seed in 0..2000 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let (log, names) = random_log(&mut rng);
            let start_ms = T0 + rng.gen_range(-5..60) * 1000;
            let end_ms = start_ms + rng.gen_range(1..90) * 1000;
            let by = [By::Workspace, By::Queue, By::Workflow, By::Worker][rng.gen_range(0..4)];
            let only = match by {
                By::Workspace => None,
                By::Queue => rng.gen_bool(0.3).then(|| "WQ1".to_string()),
                By::Workflow => rng.gen_bool(0.3).then(|| "WW1".to_string()),
                By::Worker => rng.gen_bool(0.3).then(|| "WK1".to_string()),
            };
            let (loaded, loaded_names) = interned_as_read(&as_first_loaded(&log, start_ms, end_ms), &names);
            let request = Request {
                start_ms,
                end_ms,
                by,
                // A scope the window never names got no buckets from the first fold.
                only: only.filter(|sid| loaded_names.get(sid).is_some()),
                split_by_wait_time: [vec![], vec![2], vec![1, 3, 10]][rng.gen_range(0..3)].clone(),
                task_channel: rng.gen_bool(0.2).then(|| ["voice", "chat"][rng.gen_range(0..2)].into()),
                buckets: rng.gen_range(1..6),
            };
            let expected = compute_reference(&loaded, &loaded_names, &request);
            let got = compute(&log, &names, &request);
            assert_eq!(got, expected, "seed {seed}: {request:?}");
        }
    }
}
