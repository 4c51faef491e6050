//! Measurements (run explicitly; see the commands in each doc comment): what the projections
//! add per ingested fact, and a large log for timing a rebuild.

use super::*;

/// Realistic deliveries: the scenarios above cycled over `tasks` tasks, 7 s apart.
fn bench_deliveries(tasks: usize) -> Vec<Delivery> {
    let picks: Vec<usize> = (0..tasks).collect();
    lifecycles(&picks)
}

fn append_batches(connection: &mut rusqlite::Connection, records: &[NewRecord], batch: usize, project: bool) {
    let mut engine = super::Engine::new(ProjectionConfig::default());
    for chunk in records.chunks(batch) {
        let tx = connection.transaction().expect("transaction");
        let mut head = event_log::head(&tx).expect("head");
        let mut follow_ups = Vec::new();
        for record in chunk {
            head = event_log::append(
                &tx,
                head,
                record,
                AppendDecision { duplicate_of: None, is_fact: true, related_to: None },
            )
            .expect("append");
            follow_ups.push(FollowUp::of(head.id, record, true, 0));
        }
        if project {
            projector::follow_in(&tx, &mut engine, follow_ups).expect("project");
        }
        tx.commit().expect("commit");
    }
}

/// What the projections add per ingested fact, in the writer's batch shape (512 per transaction).
/// `cargo test --lib measure_projection_cost -- --ignored --nocapture`
#[test]
#[ignore = "measurement"]
fn measure_projection_cost_per_event() {
    let tasks: usize = std::env::var("TRACER_BENCH_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let records: Vec<NewRecord> = bench_deliveries(tasks).iter().map(record).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut timings = Vec::new();
    for project in [false, true] {
        let path = dir.path().join(format!("bench-{project}.db"));
        let mut connection = rusqlite::Connection::open(&path).unwrap();
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
        connection.pragma_update(None, "synchronous", "NORMAL").unwrap();
        crate::storage::apply_schema(&connection).unwrap();
        let started = std::time::Instant::now();
        append_batches(&mut connection, &records, 512, project);
        timings.push(started.elapsed());
    }
    let per_event = |d: std::time::Duration| d.as_secs_f64() * 1e6 / records.len() as f64;
    println!(
        "{} facts ({tasks} tasks): append only {:.1} µs/fact, append + projections {:.1} µs/fact, projections add {:.1} µs/fact",
        records.len(),
        per_event(timings[0]),
        per_event(timings[1]),
        per_event(timings[1]) - per_event(timings[0])
    );
}

/// Writes a log of about `TRACER_BENCH_EVENTS` facts (no projections) to `TRACER_BENCH_DB`, for
/// timing `taskrouter-tracer rebuild --database $TRACER_BENCH_DB`.
/// `TRACER_BENCH_DB=/tmp/x.db TRACER_BENCH_EVENTS=1000000 cargo test --lib generate_bench_log -- --ignored --nocapture`
#[test]
#[ignore = "measurement"]
fn generate_bench_log() {
    let path = std::path::PathBuf::from(std::env::var("TRACER_BENCH_DB").expect("TRACER_BENCH_DB"));
    let target: usize =
        std::env::var("TRACER_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async { crate::storage::open(&path).await.unwrap().pool.close().await });
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    connection.pragma_update(None, "synchronous", "OFF").unwrap();
    let started = std::time::Instant::now();
    let mut written = 0;
    let mut next_task = 0usize;
    while written < target {
        // 2,000 tasks (about 20,000 facts) per transaction.
        let picks: Vec<usize> = (next_task..next_task + 2_000).collect();
        let deliveries: Vec<Delivery> = picks
            .iter()
            .flat_map(|i| {
                let task = format!("WT{i:032x}");
                SCENARIOS[i % SCENARIOS.len()](&task, T0 + *i as i64 * 7_000)
            })
            .take(target - written)
            .collect();
        let records: Vec<NewRecord> = deliveries.iter().map(record).collect();
        append_batches(&mut connection, &records, records.len().max(1), false);
        written += records.len();
        next_task += 2_000;
    }
    println!("wrote {written} facts ({next_task} tasks at most) in {:.1} s", started.elapsed().as_secs_f64());
}
