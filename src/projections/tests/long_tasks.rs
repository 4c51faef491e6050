//! Long tasks: cost that does not grow with history. A task of hundreds of reservations is
//! folded one fact at a time, re-folded from its window or its checkpoints when facts come late,
//! and restored from its stored state, never read back from the log.

use proptest::prelude::*;

use super::*;

/// A reservation loop: `rounds` reservations of one task, each reserved, called back, then
/// rejected or timed out (alternately, with the worker's activity change after it), with a
/// `task.updated` between rounds; the last one is accepted and the task completes.
fn reservation_loop(task: &str, t: i64, rounds: u32) -> Vec<Delivery> {
    let mut d = opening(task, t);
    let mut at = t + 100;
    for n in 0..rounds {
        let r = format!("WR{}{:08x}", &task[10..34], n + 1);
        let worker = [ALICE, BOB, CAROL][n as usize % 3];
        d.push(reservation_event("reservation.created", task, &r, worker, at));
        d.push(assignment(task, &r, worker, at + 3, "{}"));
        if n + 1 == rounds {
            d.push(reservation_event("reservation.accepted", task, &r, worker, at + 900));
            d.push(task_event("task.updated", task, at + 2_000));
            d.push(reservation_event("reservation.completed", task, &r, worker, at + 5_000));
            d.push(task_event("task.completed", task, at + 5_000));
            break;
        } else if n % 2 == 0 {
            d.push(reservation_event("reservation.rejected", task, &r, worker, at + 700));
            d.push(activity_update(worker, at + 701, "Available", "Break"));
        } else {
            d.push(reservation_event("reservation.timeout", task, &r, worker, at + 1_500));
            d.push(activity_update(worker, at + 1_502, "Available", "Offline"));
        }
        d.push(task_event("task.updated", task, at + 2_000));
        at += 2_100;
    }
    d
}

/// The first line where two dumps differ, with the table it is in.
fn first_difference(a: &str, b: &str) -> Option<Difference> {
    let mut table = String::new();
    for (x, y) in a.lines().zip(b.lines()) {
        if x.starts_with("== ") || x == "--" {
            table = x.to_string();
        }
        if x != y {
            return Some((table, x.chars().take(600).collect(), y.chars().take(600).collect()));
        }
    }
    (a.lines().count() != b.lines().count()).then(|| (table, "(line counts differ)".into(), String::new()))
}

/// The table where two dumps first differ, and that line of each.
type Difference = (String, String, String);

/// How the projections of `ingested` differ from a rebuild of its log, and (ids aside) from
/// `canonical` delivered in order: the first difference of each.
fn differences_from_rebuild_and_in_order(
    ingested: &mut rusqlite::Connection,
    canonical: &[Delivery],
    config: &ProjectionConfig,
) -> (Option<Difference>, Option<Difference>) {
    let incremental = super::dump(ingested).unwrap();
    let without_ids = super::dump_without_ids(ingested);
    super::rebuild(ingested, config, |_, _| {}).unwrap();
    let from_rebuild = first_difference(&incremental, &super::dump(ingested).unwrap());
    let mut in_order = open_database();
    ingest(&mut in_order, canonical, config);
    (from_rebuild, first_difference(&without_ids, &super::dump_without_ids(&in_order)))
}

/// Moves each delivery up to `distance` places later, as a network reorders a stream.
fn reorder_locally(deliveries: &mut [Delivery], distance: usize, seed: u64) {
    let mut state = seed | 1;
    for i in (0..deliveries.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (i + (state % (distance as u64 + 1)) as usize).min(deliveries.len() - 1);
        deliveries.swap(i, j);
    }
}

#[test]
fn a_hot_task_is_folded_one_fact_at_a_time_and_never_read_back_from_the_log() {
    let config = ProjectionConfig::default();
    let deliveries = reservation_loop(TASK, T0, 400);
    let mut database = open_database();
    let mut most_cached = 0;
    let engine = super::Engine::new(config.clone());
    let mut stats = super::engine::EngineStats::default();
    ingest_with_engine(&mut database, &deliveries, 1, engine, |engine| {
        most_cached = most_cached.max(engine.cached().1);
        stats = engine.stats;
    });
    assert_eq!(stats.facts, deliveries.len() as u64);
    // Only the captured opening comes out of order (task.created after the queue and workflow
    // events, the target match stamped before it): in memory, so its window re-folds.
    assert_eq!((stats.log_refolds, stats.loads), (0, 0), "{stats:?}");
    assert!(stats.window_refolds <= 3, "{stats:?}");
    // The task's state, its reorder window and a few reservations: not its history.
    assert!(most_cached < 160_000, "{most_cached} bytes cached for one task");
    let incremental = super::dump(&database).unwrap();
    super::rebuild(&mut database, &config, |_, _| {}).unwrap();
    assert_eq!(incremental, super::dump(&database).unwrap());
    // Every timeout and rejection is flagged with the worker's next activity.
    let flags: Vec<(String, String)> = database
        .prepare("SELECT kind, explanation FROM proj_flags ORDER BY position")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(flags.len(), 399);
    assert!(flags.iter().all(|(kind, explanation)| {
        matches!(kind.as_str(), "rejected" | "timeout") && explanation.contains(" then went to ")
    }));
}

#[test]
fn a_fact_far_older_than_the_window_refolds_from_a_checkpoint_never_from_the_log() {
    let config = ProjectionConfig::default();
    let canonical = reservation_loop(TASK, T0, 200);
    let mut delivered = canonical.clone();
    // A reservation's creation held back until 300 facts after its place: past the window of
    // 32, well within the checkpoints.
    let held_back = delivered
        .iter()
        .enumerate()
        .filter(|(_, d)| d.params.iter().any(|(k, v)| k == "EventType" && v == "reservation.created"))
        .nth(40)
        .map(|(at, _)| at)
        .unwrap();
    let late = delivered.remove(held_back);
    delivered.insert(held_back + 300, late);

    let mut shuffled = open_database();
    let engine = super::Engine::new(config.clone());
    let mut stats = super::engine::EngineStats::default();
    ingest_with_engine(&mut shuffled, &delivered, 3, engine, |engine| stats = engine.stats);
    assert_eq!((stats.checkpoint_refolds, stats.log_refolds), (1, 0), "{stats:?}");
    let (from_rebuild, from_in_order) =
        differences_from_rebuild_and_in_order(&mut shuffled, &canonical, &config);
    assert_eq!(from_rebuild, None);
    assert_eq!(from_in_order, None);
}

#[test]
fn a_task_that_leaves_memory_is_restored_from_its_stored_state() {
    let config = ProjectionConfig::default();
    let deliveries = reservation_loop(TASK, T0, 60);
    let mut roomy = open_database();
    ingest(&mut roomy, &deliveries, &config);

    // Room for almost nothing: the task leaves memory after every transaction and comes back.
    let mut bounded = open_database();
    let engine = super::Engine::new(config.clone()).with_byte_budget(1);
    let mut stats = Vec::new();
    ingest_with_engine(&mut bounded, &deliveries, 4, engine, |engine| stats.push(engine.stats));
    let (opening, last) = (stats[0], stats[stats.len() - 1]);
    assert!(last.loads > 60, "{last:?}");
    // The opening's out-of-order facts found no window once the task had left memory; every
    // fact after it was folded into the restored state, never from the log.
    assert_eq!(last.log_refolds, opening.log_refolds, "{last:?}");
    assert_eq!(super::dump(&roomy).unwrap(), super::dump(&bounded).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Long tasks delivered out of order within a few places, or far out of order, in
    /// transactions of a few facts, with room for few tasks and reservations: the window
    /// re-folds (beyond it, its checkpoints and the log) give exactly what in-order delivery and
    /// a rebuild give.
    #[test]
    fn long_tasks_delivered_out_of_order_match_in_order_and_rebuild(
        rounds in 10u32..40,
        distance in prop_oneof![Just(2usize), Just(8), Just(60)],
        order_seed in any::<u64>(),
        per_transaction in 1usize..5,
        capacity in prop_oneof![Just(1usize), Just(3), Just(64)],
    ) {
        let config = ProjectionConfig::default();
        let other = "WT00000000000000000000000000000009";
        let mut canonical = reservation_loop(TASK, T0, rounds);
        canonical.extend(reservation_loop(other, T0 + 500, rounds / 2 + 1));
        canonical.sort_by_key(|d| d.arrival_ms);
        let mut delivered = canonical.clone();
        reorder_locally(&mut delivered, distance, order_seed);

        let mut shuffled = open_database();
        let engine = super::Engine::new(config.clone()).with_capacity(capacity);
        let mut stats = super::engine::EngineStats::default();
        ingest_with_engine(&mut shuffled, &delivered, per_transaction, engine, |engine| stats = engine.stats);
        let (from_rebuild, from_in_order) =
            differences_from_rebuild_and_in_order(&mut shuffled, &canonical, &config);
        prop_assert_eq!(from_rebuild, None);
        prop_assert_eq!(from_in_order, None);
        if distance == 2 && capacity == 64 {
            prop_assert_eq!(stats.log_refolds, 0, "{:?}", stats);
        }
    }
}
