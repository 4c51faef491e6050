//! Hand-computed cases for every figure of the fold.

use super::*;

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

/// Builds facts by name, as a test reads them.
#[derive(Default)]
struct Log {
    names: Names,
    facts: Vec<ReportFact>,
}

impl Log {
    fn add(
        &mut self,
        kind: EventType,
        at_ms: i64,
        task: &str,
        reservation: &str,
        worker: &str,
        queue: &str,
    ) -> &mut ReportFact {
        let id = self.facts.len() as i64 + 1;
        let mut fact = ReportFact::new(id, kind, at_ms);
        let mut sid = |s: &str| (!s.is_empty()).then(|| self.names.intern(s));
        fact.task = sid(task);
        fact.reservation = sid(reservation);
        fact.worker = sid(worker);
        fact.queue = sid(queue);
        fact.workflow = sid("WW1");
        self.facts.push(fact);
        self.facts.last_mut().unwrap()
    }

    fn task(&mut self, kind: EventType, at: i64, task: &str) {
        self.add(kind, at, task, "", "", "WQ1");
    }

    fn reservation(&mut self, kind: EventType, at: i64, task: &str, reservation: &str, worker: &str) {
        self.add(kind, at, task, reservation, worker, "WQ1");
    }

    fn activity(&mut self, at: i64, worker: &str, from: (&str, &str), to: (&str, &str), spent_ms: i64) {
        let names = &mut self.names;
        let (prev, prev_name, next, next_name) =
            (names.intern(from.0), names.intern(from.1), names.intern(to.0), names.intern(to.1));
        let fact = self.add(EventType::WorkerActivityUpdate, at, "", "", worker, "");
        fact.workflow = None;
        fact.previous_activity = Some(prev);
        fact.previous_activity_name = Some(prev_name);
        fact.previous_activity_ms = Some(spent_ms);
        fact.activity = Some(next);
        fact.activity_name = Some(next_name);
    }

    fn compute(&self, start: i64, end: i64, by: By, split: &[u64]) -> Vec<Figures> {
        compute(
            &self.facts,
            &self.names,
            &Request {
                start_ms: start,
                end_ms: end,
                by,
                only: None,
                split_by_wait_time: split.to_vec(),
                task_channel: None,
                buckets: 4,
            },
        )
    }
}

fn workspace(log: &Log, start: i64, end: i64) -> Figures {
    log.compute(start, end, By::Workspace, &[]).remove(0)
}

/// A task created at `t`, entered into WQ1, offered to ann after 2 s, accepted after 5 s more.
fn accepted_task(log: &mut Log, task: &str, t: i64) {
    log.task(EventType::TaskCreated, t, task);
    log.task(EventType::WorkflowEntered, t, task);
    log.task(EventType::TaskQueueEntered, t, task);
    let r = format!("WR{task}");
    log.reservation(EventType::ReservationCreated, t + 2_000, task, &r, "WKann");
    log.reservation(EventType::ReservationAccepted, t + 7_000, task, &r, "WKann");
    log.task(EventType::TaskCompleted, t + 60_000, task);
}

#[test]
fn an_empty_window_gives_one_report_of_zeros() {
    let log = Log::default();
    let figures = workspace(&log, T0, T0 + 15 * MIN);
    assert_eq!(figures.counters, Counters::default());
    assert_eq!(figures.wait_until_accepted.stats(), DurationStats { avg: 0, min: 0, max: 0, total: 0 });
    assert_eq!(figures.acceptance_latency, Percentiles::default());
    assert_eq!(figures.reservations_per_task.mean, None);
    assert_eq!(figures.outcomes_over_time.len(), 4);
    assert!(figures.outcomes_over_time.iter().all(|b| b.reservations_accepted == 0));
    // Scopes of a breakdown appear only when seen.
    assert!(log.compute(T0, T0 + MIN, By::Worker, &[]).is_empty());
}

#[test]
fn every_counter_counts_its_event_type_in_the_window() {
    let mut log = Log::default();
    // Every reported type but the worker's, whose activity durations are checked on their own.
    let kinds: Vec<EventType> =
        REPORTED.iter().copied().filter(|kind| *kind != EventType::WorkerActivityUpdate).collect();
    for (i, kind) in kinds.iter().enumerate() {
        // i + 1 of each kind, each on its own task (so no wait samples interfere).
        for n in 0..=i {
            log.reservation(*kind, T0 + n as i64, &format!("WT{i}-{n}"), &format!("WR{i}-{n}"), "WKann");
        }
    }
    // Outside the window: never counted.
    log.task(EventType::TaskCreated, T0 - 1, "WTbefore");
    log.task(EventType::TaskCreated, T0 + MIN, "WTafter");
    let c = workspace(&log, T0, T0 + MIN).counters;
    assert_eq!([c.tasks_created, c.tasks_canceled, c.tasks_completed, c.tasks_deleted], [1, 2, 3, 4]);
    assert_eq!(c.tasks_entered, 0, "the workspace counts tasks_created, not entries");
    assert_eq!([c.tasks_moved, c.tasks_timed_out_in_workflow], [6, 8]);
    assert_eq!(
        [
            c.reservations_created,
            c.reservations_accepted,
            c.reservations_rejected,
            c.reservations_timed_out,
            c.reservations_canceled,
            c.reservations_rescinded
        ],
        [9, 10, 11, 12, 13, 14]
    );
    let queue = log.compute(T0, T0 + MIN, By::Queue, &[]).remove(0);
    assert_eq!(queue.sid.as_deref(), Some("WQ1"));
    assert_eq!(queue.counters.tasks_entered, 5, "task-queue.entered");
    let workflow = log.compute(T0, T0 + MIN, By::Workflow, &[]).remove(0);
    assert_eq!(workflow.counters.tasks_entered, 7, "workflow.entered");
}

#[test]
fn acceptance_waits_are_from_task_creation_and_rounded_to_seconds() {
    let mut log = Log::default();
    accepted_task(&mut log, "WTa", T0); // waits 7.0 s
    accepted_task(&mut log, "WTb", T0 + 1_000); // waits 7.0 s
    log.task(EventType::TaskCreated, T0 + 2_000, "WTc");
    log.reservation(EventType::ReservationCreated, T0 + 2_100, "WTc", "WRc", "WKbob");
    log.reservation(EventType::ReservationAccepted, T0 + 14_600, "WTc", "WRc", "WKbob"); // 12.6 s
    let f = workspace(&log, T0, T0 + 15 * MIN);
    assert_eq!(f.wait_until_accepted, Samples { count: 3, min_ms: 7_000, max_ms: 12_600, total_ms: 26_600 });
    // avg 8,866.7 ms → 9 s; max 12.6 s → 13 s; total 26.6 s → 27 s.
    assert_eq!(f.wait_until_accepted.stats(), DurationStats { avg: 9, min: 7, max: 13, total: 27 });
    // Acceptance latency: reservation created → accepted: 5 s, 5 s, 12.5 s.
    assert_eq!(f.acceptance_latency.count, 3);
    assert_eq!(f.acceptance_latency.p50_ms, Some(5_000));
    assert_eq!(f.acceptance_latency.p90_ms, Some(12_500));
    assert_eq!(f.acceptance_latency.max_ms, Some(12_500));
    assert_eq!(f.latency_histogram.iter().find(|b| b.to_ms == Some(10_000)).unwrap().count, 2);
    assert_eq!(f.latency_histogram.iter().find(|b| b.to_ms == Some(15_000)).unwrap().count, 1);
    assert_eq!(f.reservations_per_task.mean, Some(1.0));
}

#[test]
fn a_task_accepted_after_a_timeout_waits_from_creation_and_counts_both_outcomes() {
    let mut log = Log::default();
    log.task(EventType::TaskCreated, T0, "WT1");
    log.task(EventType::TaskQueueEntered, T0, "WT1");
    log.reservation(EventType::ReservationCreated, T0 + 50, "WT1", "WR1", "WKann");
    log.reservation(EventType::ReservationTimeout, T0 + 120_050, "WT1", "WR1", "WKann");
    log.activity(T0 + 120_060, "WKann", ("WAidle", "Available"), ("WAoff", "Offline"), 300_000);
    log.reservation(EventType::ReservationCreated, T0 + 120_100, "WT1", "WR2", "WKbob");
    log.reservation(EventType::ReservationAccepted, T0 + 123_100, "WT1", "WR2", "WKbob");
    let f = workspace(&log, T0, T0 + 15 * MIN);
    assert_eq!(f.counters.reservations_timed_out, 1);
    assert_eq!(f.counters.reservations_accepted, 1);
    assert_eq!(f.counters.reservations_created, 2);
    // 123.1 s from creation, the timed-out offer's two minutes included.
    assert_eq!(f.wait_until_accepted.stats().avg, 123);
    assert_eq!(f.wait_in_queue_until_accepted.avg_ms(), 123_100);
    // Bob took 3 s to accept his own offer.
    assert_eq!(f.acceptance_latency.p50_ms, Some(3_000));
    assert_eq!(
        f.reservations_per_task,
        ReservationsPerTask { tasks: 1, reservations: 2, mean: Some(2.0), max: 2 }
    );
    let rate = |sid: &str| f.timeout_rate_by_worker.iter().find(|r| r.sid == sid).unwrap().rate;
    assert_eq!(rate("WKann"), Some(1.0));
    assert_eq!(rate("WKbob"), Some(0.0));
    assert_eq!(f.timeout_rate_by_queue[0].rate, Some(0.5));
    let by_worker = log.compute(T0, T0 + 15 * MIN, By::Worker, &[]);
    assert_eq!(by_worker.len(), 2);
    assert_eq!(by_worker[0].sid.as_deref(), Some("WKann"));
    assert_eq!(by_worker[0].counters.reservations_timed_out, 1);
    assert_eq!(by_worker[1].counters.reservations_accepted, 1);
}

#[test]
fn a_window_boundary_cutting_a_lifecycle() {
    let mut log = Log::default();
    // Created 10 min before the window, accepted 1 min into it; its completion falls after it.
    log.task(EventType::TaskCreated, T0 - 10 * MIN, "WTcut");
    log.task(EventType::TaskQueueEntered, T0 - 10 * MIN, "WTcut");
    log.reservation(EventType::ReservationCreated, T0 - 30_000, "WTcut", "WRcut", "WKann");
    log.reservation(EventType::ReservationAccepted, T0 + MIN, "WTcut", "WRcut", "WKann");
    log.task(EventType::TaskCompleted, T0 + 20 * MIN, "WTcut");
    // Created in the window, canceled after it.
    log.task(EventType::TaskCreated, T0 + 2 * MIN, "WTlate");
    log.task(EventType::TaskCanceled, T0 + 16 * MIN, "WTlate");
    let f = workspace(&log, T0, T0 + 15 * MIN);
    assert_eq!(f.counters.tasks_created, 1, "only WTlate was created in the window");
    assert_eq!(f.counters.reservations_created, 0);
    assert_eq!(f.counters.reservations_accepted, 1);
    assert_eq!(f.counters.tasks_completed, 0);
    assert_eq!(f.counters.tasks_canceled, 0);
    // The accept's wait is its true wait: 11 minutes from creation, 90 s of acceptance latency.
    assert_eq!(f.wait_until_accepted.stats().total, 660);
    assert_eq!(f.acceptance_latency.p99_ms, Some(90_000));
    assert_eq!(f.wait_until_canceled.count, 0);
    // With no origin in the log at all, there is no sample, and that is said.
    let mut orphan = Log::default();
    orphan.reservation(EventType::ReservationAccepted, T0 + 1, "WTx", "WRx", "WKann");
    let f = workspace(&orphan, T0, T0 + MIN);
    assert_eq!((f.wait_until_accepted.count, f.samples_without_origin), (0, 1));
    assert_eq!(f.acceptance_latency.count, 0);
}

#[test]
fn split_by_wait_time_puts_a_wait_at_the_threshold_below() {
    let mut log = Log::default();
    for (task, wait) in [("WT1", 4_999), ("WT2", 5_000), ("WT3", 5_001), ("WT4", 30_000)] {
        log.task(EventType::TaskCreated, T0, task);
        log.reservation(EventType::ReservationAccepted, T0 + wait, task, &format!("R{task}"), "WKann");
    }
    for (task, wait) in [("WT5", 1_000), ("WT6", 10_000)] {
        log.task(EventType::TaskCreated, T0, task);
        log.task(EventType::TaskCanceled, T0 + wait, task);
    }
    let f = log.compute(T0, T0 + MIN, By::Workspace, &[5, 10]).remove(0);
    let (five, ten) = (f.split_by_wait_time[0], f.split_by_wait_time[1]);
    assert_eq!(five.0, 5);
    assert_eq!(five.1.below, SplitCounts { reservations_accepted: 2, tasks_canceled: 1 });
    assert_eq!(five.1.above, SplitCounts { reservations_accepted: 2, tasks_canceled: 1 });
    assert_eq!(ten.1.below, SplitCounts { reservations_accepted: 3, tasks_canceled: 2 });
    assert_eq!(ten.1.above, SplitCounts { reservations_accepted: 1, tasks_canceled: 0 });
    assert_eq!(f.wait_until_canceled.stats(), DurationStats { avg: 6, min: 1, max: 10, total: 11 });
}

#[test]
fn activity_durations_sum_closed_stints_clipped_to_the_window() {
    let mut log = Log::default();
    let available = ("WAavail", "Available");
    let busy = ("WAbusy", "Busy");
    // Began 4 min before the window, ended 1 min into it: only 60 s count.
    log.activity(T0 + MIN, "WKann", available, busy, 5 * MIN);
    // Two busy stints inside the window: 30 s and 90 s.
    log.activity(T0 + MIN + 30_000, "WKann", busy, available, 30_000);
    log.activity(T0 + 5 * MIN, "WKbob", busy, available, 90_000);
    // After the window: not counted.
    log.activity(T0 + 20 * MIN, "WKbob", available, busy, 15 * MIN);
    let f = workspace(&log, T0, T0 + 15 * MIN);
    let durations: Vec<(&str, &str, DurationStats)> = f
        .activity_durations
        .iter()
        .map(|a| (a.sid.as_str(), a.friendly_name.as_str(), a.samples.stats()))
        .collect();
    assert_eq!(
        durations,
        [
            ("WAavail", "Available", DurationStats { avg: 60, min: 60, max: 60, total: 60 }),
            ("WAbusy", "Busy", DurationStats { avg: 60, min: 30, max: 90, total: 120 }),
        ]
    );
}

#[test]
fn outcomes_over_time_fall_in_their_buckets() {
    let mut log = Log::default();
    log.reservation(EventType::ReservationAccepted, T0, "WT1", "WR1", "WKann");
    log.reservation(EventType::ReservationTimeout, T0 + 4 * MIN - 1, "WT2", "WR2", "WKann");
    log.reservation(EventType::ReservationRejected, T0 + 4 * MIN, "WT3", "WR3", "WKann");
    log.task(EventType::TaskCompleted, T0 + 16 * MIN - 1, "WT1");
    let f = workspace(&log, T0, T0 + 16 * MIN);
    let b = &f.outcomes_over_time;
    assert_eq!(b.iter().map(|b| b.start_ms - T0).collect::<Vec<_>>(), [0, 4 * MIN, 8 * MIN, 12 * MIN]);
    assert_eq!((b[0].reservations_accepted, b[0].reservations_timed_out), (1, 1));
    assert_eq!(b[1].reservations_rejected, 1);
    assert_eq!(b[3].tasks_completed, 1);
}

#[test]
fn a_channel_filter_keeps_only_that_channels_tasks() {
    let mut log = Log::default();
    accepted_task(&mut log, "WTvoice", T0);
    accepted_task(&mut log, "WTchat", T0);
    let voice = log.names.intern("voice");
    for fact in log.facts.iter_mut().filter(|f| f.task == log.names.get("WTvoice")) {
        fact.channels[0] = Some(voice);
    }
    let request = Request {
        start_ms: T0,
        end_ms: T0 + 15 * MIN,
        by: By::Workspace,
        only: None,
        split_by_wait_time: vec![],
        task_channel: Some("voice".into()),
        buckets: 1,
    };
    let f = compute(&log.facts, &log.names, &request).remove(0);
    assert_eq!((f.counters.tasks_created, f.counters.reservations_accepted), (1, 1));
    let unknown = compute(&log.facts, &log.names, &Request { task_channel: Some("sms".into()), ..request });
    assert_eq!(unknown[0].counters, Counters::default());
}

#[test]
fn nearest_rank_percentiles() {
    let samples: Vec<i64> = (1..=100).collect();
    assert_eq!(nearest_rank(&samples, 50), Some(50));
    assert_eq!(nearest_rank(&samples, 90), Some(90));
    assert_eq!(nearest_rank(&samples, 99), Some(99));
    assert_eq!(nearest_rank(&[7], 99), Some(7));
    assert_eq!(nearest_rank(&[], 50), None);
    assert_eq!(seconds(1_499), 1);
    assert_eq!(seconds(1_500), 2);
}
