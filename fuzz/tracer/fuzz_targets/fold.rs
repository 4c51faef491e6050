//! Fuzzes the projection fold with sequences of facts of one task drawn from a small alphabet
//! (event types, three reservations, two workers, a few event Sids, times that often tie), so
//! that it reaches deep lifecycle states: reservations answered twice, outcomes after the end,
//! accepts after timeouts, duplicates that slipped through.
//!
//! Input: a 10-byte header (settings, a shuffle seed, which fact to redeliver), then 8 bytes per
//! fact. Checks: nothing panics; the projection is internally consistent (counts, positions,
//! statuses, evidence that points at real facts); and it does not depend on delivery order —
//! folding the same facts in a shuffled order, with log ids given in that order, gives the same
//! projection once ids are mapped back to facts, whenever the facts' causal-order keys are
//! distinct; redelivering a fact with an event Sid changes nothing.

#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use taskrouter_protocol::TaskStatus;
use taskrouter_tracer::projections::fold::{fold_task, ProjectionConfig, TaskProjection};
use taskrouter_tracer::projections::Fact;

const TASK: &str = "WTfuzz0000000000000000000000000000";
const BASE_MS: i64 = 1_700_000_000_000;

/// Event types: the task's lifecycle, an unknown one, and worker activity (not a task fact).
const EVENT_TYPES: [&str; 32] = [
    "task.created",
    "workflow.entered",
    "task-queue.entered",
    "task-queue.moved",
    "workflow.target-matched",
    "task.updated",
    "reservation.created",
    "assignment",
    "reservation.accepted",
    "reservation.rescinded",
    "reservation.rejected",
    "reservation.timeout",
    "reservation.canceled",
    "reservation.failed",
    "task-queue.timeout",
    "workflow.timeout",
    "workflow.skipped",
    "task.transfer-initiated",
    "task.transfer-failed",
    "reservation.wrapup",
    "task.wrapup",
    "reservation.completed",
    "task.completed",
    "task.canceled",
    "task.deleted",
    "task.system-deleted",
    "task.something-new",
    "worker.activity.update",
    "worker.activity.update",
    "reservation.created",
    "reservation.accepted",
    "reservation.timeout",
];
const WORKERS: [&str; 2] = ["WKalice000000000000000000000000000", "WKbob00000000000000000000000000000"];
const WORKFLOWS: [&str; 2] = ["WWshort00000000000000000000000000", "WWdefault000000000000000000000000"];
const ANSWERS: [&str; 4] = ["{}", r#"{"instruction":"accept"}"#, r#"{"instruction":"reject"}"#, "not json"];

#[derive(Debug, Arbitrary)]
struct Header {
    short_timeouts: bool,
    shuffle_seed: u64,
    redeliver: u8,
}

/// One fact, one byte per choice (so seeds can be written by hand: 8 bytes a fact).
#[derive(Debug, Arbitrary)]
struct FactSpec {
    kind: u8,
    /// 0 → none, else one of three reservations.
    reservation: u8,
    /// bit 0–1: worker (0 → none); bit 2: worker name; bit 3: workflow; bit 4: queue name.
    who: u8,
    /// Seconds after the base time, in half-second steps: ties are frequent.
    time: u8,
    /// 0 → no event Sid, 1–3 → a shared Sid (a duplicate that slipped through), else unique.
    sid: u8,
    /// The assignment callback's answer; a TTL cancel description; priority.
    detail: u8,
    /// bit 0: timed by arrival (assignment callbacks).
    flags: u8,
    attributes: u8,
}

fn build(index: usize, spec: &FactSpec) -> Fact {
    let event_type = EVENT_TYPES[spec.kind as usize % EVENT_TYPES.len()].to_string();
    let worker = match spec.who & 3 {
        0 => None,
        w => Some(WORKERS[(w as usize - 1) % 2].to_string()),
    };
    let is_worker_event = event_type.starts_with("worker.");
    Fact {
        event_id: 0,
        event_sid: match spec.sid {
            0 => None,
            1..=3 => Some(format!("EVshared{}", spec.sid)),
            _ => Some(format!("EVfact{index}")),
        },
        occurred_at_ms: BASE_MS + i64::from(spec.time) * 500,
        time_is_arrival: event_type == "assignment" && spec.flags & 1 == 1,
        task_sid: (!is_worker_event).then(|| TASK.to_string()),
        reservation_sid: match spec.reservation % 4 {
            0 => None,
            r => Some(format!("WRres{r}")),
        },
        worker_name: (spec.who & 4 != 0).then(|| format!("name of {}", worker.as_deref().unwrap_or("?"))),
        worker_sid: worker,
        workflow_sid: Some(WORKFLOWS[usize::from(spec.who >> 3 & 1)].to_string()),
        workflow_name: None,
        task_queue_sid: Some("WQqueue000000000000000000000000000".into()),
        task_queue_name: (spec.who & 16 != 0).then(|| "Support".to_string()),
        priority: Some(i64::from(spec.detail % 3)),
        attributes: Some(format!("{{\"n\":{}}}", spec.attributes)),
        assignment_status: None,
        description: (spec.detail & 4 != 0).then(|| "Task TTL Exceeded".to_string()),
        canceled_reason: (spec.detail & 8 != 0).then(|| "hangup".to_string()),
        activity_sid: is_worker_event.then(|| "WAidle".to_string()),
        activity_name: is_worker_event
            .then(|| ["Idle", "Offline", "Busy"][spec.detail as usize % 3].to_string()),
        previous_activity_name: is_worker_event.then(|| "Available".to_string()),
        time_in_previous_activity_ms: is_worker_event.then_some(1000),
        response_body: (event_type == "assignment").then(|| ANSWERS[spec.detail as usize % 4].to_string()),
        event_type,
    }
}

/// The log as it would hold `facts` delivered in `order`: ids 1, 2, … in delivery order.
/// Returns the task's facts, the worker activity facts, and each id's fact index.
fn deliver(facts: &[Fact], order: &[usize]) -> (Vec<Fact>, Vec<Fact>, HashMap<i64, usize>) {
    let (mut task, mut activity, mut identity) = (Vec::new(), Vec::new(), HashMap::new());
    for (position, &index) in order.iter().enumerate() {
        let mut fact = facts[index].clone();
        fact.event_id = position as i64 + 1;
        identity.insert(fact.event_id, index);
        if fact.task_sid.is_some() {
            task.push(fact);
        } else {
            activity.push(fact);
        }
    }
    (task, activity, identity)
}

/// The projection with every log id replaced by the index of the fact it names.
fn by_fact(mut projection: TaskProjection, identity: &HashMap<i64, usize>) -> TaskProjection {
    let map = |id: &mut i64| *id = identity[id] as i64;
    for r in &mut projection.reservations {
        r.created_event_id.as_mut().map(map);
        r.callback_event_id.as_mut().map(map);
    }
    projection.timeline.iter_mut().flat_map(|e| e.evidence.iter_mut()).for_each(map);
    projection.flags.iter_mut().flat_map(|f| f.evidence.iter_mut()).for_each(map);
    projection
}

fn shuffled(n: usize, mut seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // xorshift: deterministic per input, no dependency on a random source.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    order
}

fn check_consistent(projection: &TaskProjection, task_facts: &[Fact], activity: &[Fact]) {
    let task = &projection.task;
    let ids: BTreeSet<i64> = task_facts.iter().chain(activity).map(|f| f.event_id).collect();
    assert_eq!(task.task_sid, TASK);
    assert_eq!(task.reservation_count as usize, projection.reservations.len());
    assert_eq!(task.fact_count as usize, projection.timeline.len());
    assert!(projection.timeline.len() <= task_facts.len());
    assert!(task.first_fact_at_ms <= task.last_fact_at_ms);
    assert!(matches!(
        task.status.as_str(),
        "pending" | "reserved" | "assigned" | "wrapping" | "completed" | "canceled"
    ));
    let finished = matches!(task.status.as_str(), "completed" | "canceled");
    assert_eq!(task.finished_at_ms.is_some(), finished, "finished_at_ms iff a final status");
    assert_eq!(task.cancel_cause.is_some(), task.status == TaskStatus::Canceled);
    for (position, entry) in projection.timeline.iter().enumerate() {
        assert_eq!(entry.position, position as i64);
        assert!(!entry.summary.is_empty());
        assert!(entry.evidence.iter().all(|id| ids.contains(id)));
    }
    let mut sids = BTreeSet::new();
    for r in &projection.reservations {
        assert!(sids.insert(r.reservation_sid.as_str()), "one row per reservation");
        assert_eq!(r.task_sid, TASK);
        assert!(matches!(
            r.status.as_str(),
            "pending"
                | "accepted"
                | "wrapping"
                | "completed"
                | "rejected"
                | "timeout"
                | "canceled"
                | "rescinded"
                | "failed"
        ));
        assert!(r.timeout_ms == 120_000 || r.timeout_ms == 5_000);
        assert!([r.created_event_id, r.callback_event_id].iter().flatten().all(|id| ids.contains(id)));
    }
    for flag in &projection.flags {
        assert!(!flag.explanation.is_empty() && !flag.evidence.is_empty());
        assert!(flag.evidence.iter().all(|id| ids.contains(id)), "{flag:?}");
    }
    // Without duplicates every fact counts, and every reservation named by a reservation event
    // or an assignment callback has its row.
    let sids_distinct = {
        let named: Vec<_> = task_facts.iter().filter_map(|f| f.event_sid.as_deref()).collect();
        named.iter().collect::<BTreeSet<_>>().len() == named.len()
    };
    if sids_distinct {
        assert_eq!(task.fact_count as usize, task_facts.len());
        let named: BTreeSet<&str> = task_facts
            .iter()
            .filter(|f| f.event_type.starts_with("reservation.") || f.is_assignment())
            .filter_map(|f| f.reservation_sid.as_deref())
            .collect();
        assert_eq!(named, sids);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Unstructured::new(data);
    let Ok(header) = Header::arbitrary(&mut input) else { return };
    let mut specs = Vec::new();
    while input.len() >= 8 && specs.len() < 64 {
        specs.push(FactSpec::arbitrary(&mut input).expect("8 bytes make a fact"));
    }
    let facts: Vec<Fact> = specs.iter().enumerate().map(|(i, s)| build(i, s)).collect();
    let config = ProjectionConfig {
        default_reservation_timeout_ms: 120_000,
        workflow_reservation_timeouts_ms: if header.short_timeouts {
            BTreeMap::from([(WORKFLOWS[0].to_string(), 5_000)])
        } else {
            BTreeMap::new()
        },
    };

    let in_order: Vec<usize> = (0..facts.len()).collect();
    let (task_facts, activity, identity) = deliver(&facts, &in_order);
    let first = fold_task(TASK, &task_facts, &activity, &config);
    check_consistent(&first, &task_facts, &activity);
    let first = by_fact(first, &identity);

    // The causal-order key of a fact is everything the fold sorts by except its log id; a
    // worker's activity changes are picked by (worker, time).
    let keys_distinct = {
        let task_keys: BTreeSet<_> = facts
            .iter()
            .filter(|f| f.task_sid.is_some())
            .map(|f| (&f.event_type, f.occurred_at_ms, &f.reservation_sid, &f.event_sid))
            .collect();
        let activity_keys: BTreeSet<_> = facts
            .iter()
            .filter(|f| f.task_sid.is_none())
            .map(|f| (&f.worker_sid, f.occurred_at_ms))
            .collect();
        task_keys.len() + activity_keys.len() == facts.len()
    };
    if keys_distinct {
        let order = shuffled(facts.len(), header.shuffle_seed);
        let (task_facts, activity, identity) = deliver(&facts, &order);
        let again = fold_task(TASK, &task_facts, &activity, &config);
        check_consistent(&again, &task_facts, &activity);
        assert_eq!(by_fact(again, &identity), first, "delivery order changed the projection");
    }

    // A redelivery that slipped past the writer (same event Sid, a later log id) changes nothing.
    if let Some(index) = (!facts.is_empty()).then(|| header.redeliver as usize % facts.len()) {
        if facts[index].event_sid.is_some() && facts[index].task_sid.is_some() {
            let mut order = in_order.clone();
            order.push(index);
            let (task_facts, activity, identity) = deliver(&facts, &order);
            let again = fold_task(TASK, &task_facts, &activity, &config);
            check_consistent(&again, &task_facts, &activity);
            assert_eq!(by_fact(again, &identity), first, "a redelivery changed the projection");
        }
    }
});
