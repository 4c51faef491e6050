//! The SQL shell: incremental == rebuild == in order. Ingest as the writer does it (in chunks,
//! with a bounded cache, left unprojected by a crash, ended early) gives exactly what a rebuild of
//! the log and in-order delivery give.

use proptest::prelude::*;

use super::*;

/// A log file holding 400 lifecycles, ingested: more rows than the rebuild's readers take in
/// two rounds of chunks. The directory must outlive the connection.
fn file_log(config: &ProjectionConfig) -> (tempfile::TempDir, rusqlite::Connection, Vec<Delivery>) {
    let directory = tempfile::tempdir().unwrap();
    let mut connection = rusqlite::Connection::open(directory.path().join("log.db")).unwrap();
    crate::storage::apply_schema(&connection).unwrap();
    let deliveries = lifecycles(&(0..400).collect::<Vec<_>>());
    ingest(&mut connection, &deliveries, config);
    (directory, connection, deliveries)
}

#[test]
fn a_rebuild_of_a_file_database_reads_on_other_threads_and_matches_ingest() {
    let config = ProjectionConfig::default();
    let (_directory, mut connection, deliveries) = file_log(&config);
    // Every reader reads more than one chunk, and the last chunk is partial.
    let rows = deliveries.len() as i64;
    assert!(rows > 2 * super::REBUILD_READERS as i64 * super::REBUILD_CHUNK_IDS, "{rows} deliveries");
    assert_ne!(rows % super::REBUILD_CHUNK_IDS, 0);
    let incremental = super::dump(&connection).unwrap();
    let indexes = |connection: &rusqlite::Connection| -> Vec<(String, Option<String>)> {
        let mut statement = connection
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name")
            .unwrap();
        statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    let indexes_before = indexes(&connection);
    assert!(indexes_before.iter().any(|(name, _)| name == "proj_tasks_flagged"));

    let report = super::rebuild(&mut connection, &config, |_, _| {}).unwrap();
    assert_eq!(report.facts, deliveries.len() as u64);
    assert_eq!(super::dump(&connection).unwrap(), incremental);
    // The indexes dropped while it wrote are back, as they were.
    assert_eq!(indexes(&connection), indexes_before);
}

#[test]
fn a_rebuild_whose_reader_fails_changes_nothing_and_says_why() {
    let config = ProjectionConfig::default();
    let (_directory, mut connection, _) = file_log(&config);
    let before = super::dump(&connection).unwrap();
    // A stored payload that no longer decodes, in the second reader's second chunk (the log's
    // guard against edits is lifted for the test).
    let damaged = 3 * super::REBUILD_CHUNK_IDS + 7;
    connection.execute_batch("DROP TRIGGER events_reject_update").unwrap();
    connection
        .execute(
            "UPDATE events SET body = x'28b52ffd00', payload_encoding = 'zstd-d1' WHERE id = ?1",
            [damaged],
        )
        .unwrap();

    let error = super::rebuild(&mut connection, &config, |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("corrupt"), "{error}");
    assert_eq!(super::dump(&connection).unwrap(), before, "a failed rebuild is rolled back");
}

#[test]
fn a_byte_budget_bounds_the_cache_and_changes_no_projection() {
    let config = ProjectionConfig::default();
    let deliveries = lifecycles(&(0..24).collect::<Vec<_>>());
    let mut roomy = open_database();
    ingest(&mut roomy, &deliveries, &config);

    // Room for about two facts: most tasks leave memory between their facts and come back.
    let budget = 2 * 2_048;
    let mut bounded = open_database();
    let mut most_cached = 0;
    let engine = super::Engine::new(config.clone()).with_byte_budget(budget);
    ingest_with_engine(&mut bounded, &deliveries, 3, engine, |engine| {
        let (_, bytes) = engine.cached();
        most_cached = most_cached.max(bytes);
        assert!(bytes <= budget, "{bytes} bytes cached over a budget of {budget}");
    });
    assert!(most_cached > 0, "the cache was used at all");
    assert_eq!(super::dump(&roomy).unwrap(), super::dump(&bounded).unwrap());
}

#[test]
fn finished_tasks_leave_memory_before_tasks_still_in_flight() {
    let config = ProjectionConfig::default();
    // One long task waits in its queue while eight short ones come and go, then it is served.
    let waiting = happy("WT00000000000000000000000000000a11", T0);
    let (opened, served) = waiting.split_at(4);
    let mut deliveries = opened.to_vec();
    for i in 0..8 {
        deliveries.extend(canceled_in_queue(&format!("WT{:032x}", 0xb0 + i), T0 + 1_000 + i as i64 * 100));
    }
    deliveries.extend_from_slice(served);
    let mut roomy = open_database();
    ingest(&mut roomy, &deliveries, &config);

    // Room for four tasks: past it, a least-recently-used policy would drop the waiting task
    // (touched longest ago) and read it back from the log for its reservation.
    let mut bounded = open_database();
    let mut read_back = 0;
    let engine = super::Engine::new(config.clone()).with_capacity(4);
    ingest_with_engine(&mut bounded, &deliveries, 5, engine, |engine| read_back = engine.stats.loads);
    // A task restored from its stored state would count: none was, as none came back.
    assert_eq!(read_back, 0, "the waiting task stayed in memory; finished ones left");
    assert_eq!(super::dump(&roomy).unwrap(), super::dump(&bounded).unwrap());
}

#[test]
fn late_earlier_facts_update_the_indexed_columns_they_change() {
    // Delivered newest first, one per transaction: each later delivery is an earlier fact, so
    // it moves the task's first fact back and (for reservation.created, after the assignment
    // callback and the accept) sets the reservation's creation time. Those columns are written
    // by their own statements, only when they change (see `store::write_changes`).
    let config = ProjectionConfig::default();
    let mut deliveries = three_parallel(TASK, T0);
    deliveries.reverse();
    let mut incremental = open_database();
    ingest_in_chunks(&mut incremental, &deliveries, &config, 1, super::engine::TASK_CACHE_CAPACITY);
    let mut rebuilt = open_database();
    ingest(&mut rebuilt, &deliveries, &config);
    super::rebuild(&mut rebuilt, &config, |_, _| {}).unwrap();
    assert_eq!(super::dump(&incremental).unwrap(), super::dump(&rebuilt).unwrap());

    // Read through the indexes themselves, not the table: the task is found under its first
    // fact (the earliest delivered last).
    let earliest = deliveries.iter().map(|d| to_fact(1, d).occurred_at_ms).min().unwrap();
    let found: String = incremental
        .query_row(
            "SELECT task_sid FROM proj_tasks INDEXED BY proj_tasks_first WHERE first_fact_at_ms = ?1",
            [earliest],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, TASK);
    let created: Vec<(String, Option<i64>)> = incremental
        .prepare("SELECT reservation_sid, created_at_ms FROM proj_reservations INDEXED BY proj_reservations_task WHERE task_sid = ?1 ORDER BY 1")
        .unwrap()
        .query_map([TASK], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(created.len(), 3, "{created:?}");
    assert!(created.iter().all(|(_, at)| at.is_some_and(|at| at > T0)), "{created:?}");
}

#[test]
fn a_reservation_sid_filed_under_two_tasks_rebuilds_as_it_was_ingested() {
    // Malformed input: another task's events carry this task's reservation Sid. A rebuild's
    // first write of the second task finds the row taken, and falls back to the statements
    // that move it (see `store::write_changes`), as ingest did.
    let config = ProjectionConfig::default();
    let other = "WT00000000000000000000000000000002";
    let shared = wr(TASK, 1);
    let mut deliveries = happy(TASK, T0);
    deliveries.extend(opening(other, T0 + 20_000));
    deliveries.push(reservation_event("reservation.created", other, &shared, BOB, T0 + 20_056));
    let mut database = open_database();
    ingest(&mut database, &deliveries, &config);
    let incremental = super::dump(&database).unwrap();
    super::rebuild(&mut database, &config, |_, _| {}).unwrap();
    assert_eq!(incremental, super::dump(&database).unwrap());
    let filed: Vec<(String, String)> = database
        .prepare("SELECT task_sid, worker_sid FROM proj_reservations WHERE reservation_sid = ?1")
        .unwrap()
        .query_map([&shared], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(filed, vec![(other.to_string(), BOB.0.to_string())]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_order_matches_in_order_and_rebuild(
        picks in proptest::collection::vec(0usize..8, 1..4),
        order_seed in any::<u64>(),
        duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        drops in proptest::collection::vec(any::<prop::sample::Index>(), 0..2),
    ) {
        let config = ProjectionConfig::default();
        let canonical = lifecycles(&picks);
        let mut delivered: Vec<Delivery> = canonical.clone();
        let dropped: HashSet<usize> = drops.iter().map(|i| i.index(canonical.len())).collect();
        delivered = delivered.into_iter().enumerate().filter(|(i, _)| !dropped.contains(i)).map(|(_, d)| d).collect();
        for index in &duplicates {
            if !delivered.is_empty() {
                let copy = delivered[index.index(delivered.len())].clone();
                delivered.push(copy);
            }
        }
        // A deterministic shuffle from the seed (Fisher–Yates over a xorshift stream).
        let mut state = order_seed | 1;
        for i in (1..delivered.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            delivered.swap(i, (state % (i as u64 + 1)) as usize);
        }

        let mut shuffled = open_database();
        ingest(&mut shuffled, &delivered, &config);
        let incremental = super::dump(&shuffled).unwrap();
        let incremental_without_ids = super::dump_without_ids(&shuffled);
        super::rebuild(&mut shuffled, &config, |_, _| {}).unwrap();
        prop_assert_eq!(&incremental, &super::dump(&shuffled).unwrap());

        // One fact per transaction and room for one task: every other fact reads its task back
        // from the log, and evictions write tasks out mid-stream.
        let mut evicting = open_database();
        ingest_in_chunks(&mut evicting, &delivered, &config, 1 + (order_seed % 3) as usize, 1);
        prop_assert_eq!(&incremental, &super::dump(&evicting).unwrap());

        if dropped.is_empty() {
            let mut in_order = open_database();
            ingest(&mut in_order, &canonical, &config);
            prop_assert_eq!(incremental_without_ids, super::dump_without_ids(&in_order));
        }
    }
}

/// Appends every delivery as the writer's transaction does, and takes in only the first
/// `projected` of them as the projections' transactions that follow would: what a kill -9
/// between the two leaves on disk.
fn append_leaving_unprojected(
    connection: &mut rusqlite::Connection,
    deliveries: &[Delivery],
    projected: usize,
) {
    let mut engine = super::Engine::new(ProjectionConfig::default());
    let tx = connection.transaction().expect("transaction");
    let mut head = event_log::head(&tx).expect("head");
    let mut follow_ups = Vec::new();
    for delivery in deliveries {
        let record = record(delivery);
        head = event_log::append(
            &tx,
            head,
            &record,
            AppendDecision { duplicate_of: None, is_fact: true, related_to: None },
        )
        .expect("append");
        follow_ups.push(FollowUp::of(head.id, &record, true, 0));
    }
    follow_ups.truncate(projected);
    projector::follow_in(&tx, &mut engine, follow_ups).expect("project");
    tx.commit().expect("commit");
}

#[test]
fn rows_left_unprojected_by_a_crash_are_taken_in_at_start_exactly_as_a_rebuild_gives_them() {
    let config = ProjectionConfig::default();
    let deliveries = lifecycles(&(0..12).collect::<Vec<_>>());
    let projected = deliveries.len() / 3;
    let mut crashed = open_database();
    append_leaving_unprojected(&mut crashed, &deliveries, projected);
    let through = super::projected_through(&crashed).unwrap();
    assert_eq!(through, projected as i64);
    // The unprojected rows' task SIDs are not referenced yet: the request list could not find them.
    let last_task = deliveries.last().unwrap().params.iter().find(|(k, _)| k == "TaskSid").unwrap().1.clone();
    let references = |connection: &rusqlite::Connection| -> i64 {
        connection
            .query_row(
                "SELECT COUNT(*) FROM sid_refs WHERE sid_key = ?1",
                [event_log::sid_key(&last_task)],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(references(&crashed), 0);

    // What the writer does before it takes requests, with an engine that remembers nothing.
    let read = projector::catch_up(&mut crashed, &mut super::Engine::new(config.clone())).unwrap().rows;
    assert_eq!(read, (deliveries.len() - projected) as u64);
    assert_eq!(super::projected_through(&crashed).unwrap(), deliveries.len() as i64);
    assert!(references(&crashed) > 0, "the rows read back are referenced under their SIDs");

    let mut whole = open_database();
    ingest(&mut whole, &deliveries, &config);
    assert_eq!(super::dump(&crashed).unwrap(), super::dump(&whole).unwrap(), "as if never interrupted");
    let resumed = super::dump(&crashed).unwrap();
    super::rebuild(&mut crashed, &config, |_, _| {}).unwrap();
    assert_eq!(resumed, super::dump(&crashed).unwrap(), "as a rebuild gives them");
}

#[test]
fn a_rebuild_references_the_rows_the_projections_had_not_reached() {
    let config = ProjectionConfig::default();
    let deliveries = lifecycles(&(0..6).collect::<Vec<_>>());
    let mut crashed = open_database();
    append_leaving_unprojected(&mut crashed, &deliveries, 5);
    let unreferenced: i64 = crashed.query_row("SELECT COUNT(*) FROM sid_refs", [], |r| r.get(0)).unwrap();
    super::rebuild(&mut crashed, &config, |_, _| {}).unwrap();
    let mut whole = open_database();
    ingest(&mut whole, &deliveries, &config);
    let count = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT COUNT(*) FROM sid_refs", [], |r| r.get(0)).unwrap()
    };
    assert!(count(&crashed) > unreferenced);
    assert_eq!(count(&crashed), count(&whole));
    assert_eq!(super::dump(&crashed).unwrap(), super::dump(&whole).unwrap());
}

#[test]
fn a_task_offered_again_and_again_without_outcomes_keeps_few_reservations_in_memory() {
    // Only the assignment callbacks arrive (no event callbacks configured): every reservation
    // stays pending in the projections, and the task must not keep them all in memory.
    let config = ProjectionConfig::default();
    let mut deliveries = opening(TASK, T0);
    for n in 0..2_000u32 {
        let reservation = format!("WR{}{:08x}", &TASK[10..34], n + 1);
        let worker = [ALICE, BOB, CAROL][n as usize % 3];
        deliveries.push(assignment(TASK, &reservation, worker, T0 + 100 + i64::from(n) * 50, "{}"));
    }
    let mut database = open_database();
    let mut most_cached = 0;
    ingest_with_engine(&mut database, &deliveries, 1, super::Engine::new(config.clone()), |engine| {
        most_cached = most_cached.max(engine.cached().1);
    });
    // Its capped checkpoints, its window and at most 64 open reservations, not 2,000 of them.
    let bound = super::task_entry::CHECKPOINT_BYTES + 100_000;
    assert!(most_cached < bound, "{most_cached} bytes cached for one task (bound {bound})");
    let pending: i64 = database
        .query_row("SELECT COUNT(*) FROM proj_reservations WHERE status = 'pending'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 2_000);
    let incremental = super::dump(&database).unwrap();
    super::rebuild(&mut database, &config, |_, _| {}).unwrap();
    assert_eq!(incremental, super::dump(&database).unwrap());
}

#[test]
fn a_projection_transaction_ends_early_when_asked_and_takes_the_rest_later() {
    let config = ProjectionConfig::default();
    let deliveries = lifecycles(&[0, 1]);
    let mut database = open_database();
    append_leaving_unprojected(&mut database, &deliveries, 0);
    let mut backlog: std::collections::VecDeque<FollowUp> = deliveries
        .iter()
        .enumerate()
        .map(|(at, delivery)| FollowUp::of(at as i64 + 1, &record(delivery), true, 0))
        .collect();
    // The writer records the mark before it follows (a new log has none).
    super::set_projected_through(&database, 0).unwrap();
    let mut engine = super::Engine::new(config.clone());
    // Another process moved the mark: nothing is taken, the rows are to be read back.
    let moved = projector::follow(&mut database, &mut engine, &mut backlog, 64, 5, || false).unwrap();
    assert_eq!(moved, crate::storage::follower::Followed::MarkMoved);
    assert_eq!(backlog.len(), deliveries.len());
    // An assignment callback is waiting: one row, then the transaction ends.
    let done = projector::follow(&mut database, &mut engine, &mut backlog, 64, 0, || true).unwrap();
    assert_eq!(done, crate::storage::follower::Followed::Done);
    assert_eq!(backlog.len(), deliveries.len() - 1);
    assert_eq!(super::projected_through(&database).unwrap(), 1);
    // None waits: the rest, at most `count` a transaction.
    projector::follow(&mut database, &mut engine, &mut backlog, 3, 1, || false).unwrap();
    assert_eq!(backlog.len(), deliveries.len() - 4);
    let rest = backlog.len();
    projector::follow(&mut database, &mut engine, &mut backlog, rest, 4, || false).unwrap();
    assert!(backlog.is_empty());
    let mut whole = open_database();
    ingest(&mut whole, &deliveries, &config);
    assert_eq!(super::dump(&database).unwrap(), super::dump(&whole).unwrap());
}

#[test]
fn a_reservation_row_with_a_status_it_does_not_know_is_folded_again_from_the_log() {
    // A damaged row: its reservation's state cannot be read back, so its next fact folds the
    // task again from the log, as an unreadable fold state does, and the row is written anew.
    let config = ProjectionConfig::default();
    let deliveries = happy(TASK, T0);
    let (before, after) = deliveries.split_at(7);
    let mut damaged = open_database();
    ingest(&mut damaged, before, &config);
    let sid = wr(TASK, 1);
    let changed = damaged
        .execute("UPDATE proj_reservations SET status = 'on hold' WHERE reservation_sid = ?1", [&sid])
        .unwrap();
    assert_eq!(changed, 1);
    let read_back = super::store::read_reservation(&damaged, &sid).unwrap();
    assert!(matches!(read_back, Some((ref task, None)) if task == TASK), "{read_back:?}");
    // A new engine, as after a restart: nothing of the task is in memory.
    let mut log_refolds = 0;
    ingest_with_engine(&mut damaged, after, after.len(), super::Engine::new(config.clone()), |engine| {
        log_refolds = engine.stats.log_refolds;
    });
    assert_eq!(log_refolds, 1, "the first fact naming the reservation folded the task from the log");
    let mut whole = open_database();
    ingest(&mut whole, &deliveries, &config);
    assert_eq!(super::dump(&damaged).unwrap(), super::dump(&whole).unwrap());
}

#[tokio::test]
async fn the_reads_refuse_a_stored_status_they_do_not_know() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("log.db");
    let store = crate::storage::open(&path).await.unwrap();
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    ingest(&mut connection, &happy(TASK, T0), &ProjectionConfig::default());
    let pool = &store.pool;
    assert_eq!(details::task_detail(pool, TASK).await.unwrap().unwrap().task.status, TaskStatus::Completed);

    connection.execute("UPDATE proj_reservations SET status = 'on hold'", []).unwrap();
    let error = details::task_detail(pool, TASK).await.unwrap_err();
    assert!(error.to_string().contains("\"on hold\" is not a reservation status"), "{error}");
    assert!(super::overview::worker_reservations(pool, ALICE.0, 10).await.is_err());

    connection.execute("UPDATE proj_tasks SET status = 'on hold'", []).unwrap();
    let error = details::list_tasks(pool, &details::TaskFilter { limit: 10, ..Default::default() })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("\"on hold\" is not a task status"), "{error}");
    assert!(super::overview::tasks_by_status(pool).await.is_err(), "the counts follow the task's row");
}
