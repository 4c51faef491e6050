//! Read models derived only from the log (tasks, reservations, workers, timelines), updated in
//! the writer's transaction for every new fact and rebuildable from the log at any time.
//!
//! Projections are pure folds ([`fold`]) driven by the incremental [`engine`], with their SQL in
//! [`store`]: nothing here reads the clock, draws random numbers or calls out, so a rebuild
//! yields exactly what incremental updates did. A task is re-folded from all its facts in
//! causal order whenever one arrives (tasks have tens of facts), so a late or out-of-order
//! delivery lands in its right place. Worker activity rows are keyed by time, so they need no
//! re-fold; their durations are the gaps between consecutive rows.

pub mod engine;
pub mod fact;
pub mod fold;
pub mod overview;
pub mod reads;
mod store;
#[cfg(test)]
mod tests;

use rusqlite::{Connection, OptionalExtension};

pub use engine::Engine;
pub use fact::Fact;
pub use fold::{ProjectionConfig, TaskProjection};

/// The projection tables, in the order they are cleared and compared.
pub const TABLES: [&str; 10] = [
    "proj_tasks",
    "proj_task_status_counts",
    "proj_task_routes",
    "proj_reservations",
    "proj_timeline",
    "proj_flags",
    "proj_workers",
    "proj_worker_activity",
    "proj_worker_outcomes",
    "proj_meta",
];

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RebuildReport {
    pub facts: u64,
    pub tasks: u64,
    pub workers: u64,
    /// Times a task that had left memory was read back from the log.
    pub read_back: u64,
}

/// Clears every projection table and replays the log's facts, in one transaction.
///
/// The replay runs the same [`Engine`] as ingest, in log order, writing each task once when it
/// leaves memory instead of once per transaction. `progress(done, total)` counts facts.
///
/// # Errors
/// Any SQLite error; nothing is changed then.
pub fn rebuild(
    conn: &mut Connection,
    config: &ProjectionConfig,
    mut progress: impl FnMut(u64, u64),
) -> rusqlite::Result<RebuildReport> {
    // The whole replay is one transaction: with SQLite's small default cache its dirty pages
    // would be spilled to the WAL and read back over and over. Restored afterwards (the
    // writer rebuilds on its own connection at start).
    let cache_size: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |r| r.get(0))?;
    conn.pragma_update(None, "cache_size", REBUILD_CACHE_KIB)?;
    // Statement journals (upserts that fire triggers need them) in memory, not in temp files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let rebuilt = replay(conn, config, &mut progress);
    conn.pragma_update(None, "cache_size", cache_size)?;
    conn.pragma_update(None, "temp_store", temp_store)?;
    rebuilt
}

/// Facts per batch handed from the rebuild's reader to its writer, and batches in flight.
const REBUILD_READ_BATCH: usize = 1_024;
const REBUILD_READ_AHEAD: usize = 8;

/// SQLite's page cache during a rebuild (negative: KiB), 256 MiB.
const REBUILD_CACHE_KIB: i64 = -262_144;

fn replay(
    conn: &mut Connection,
    config: &ProjectionConfig,
    progress: &mut impl FnMut(u64, u64),
) -> rusqlite::Result<RebuildReport> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for table in TABLES {
        tx.execute(&format!("DELETE FROM {table}"), [])?;
    }
    let total: i64 = tx.query_row("SELECT COUNT(*) FROM events WHERE is_fact = 1", [], |r| r.get(0))?;
    let total = total as u64;
    let mut report = RebuildReport::default();
    let mut engine = Engine::for_rebuild(config.clone());
    let mut apply = |facts: Vec<Fact>| -> rusqlite::Result<()> {
        for fact in facts {
            engine.apply_fact(&tx, fact)?;
            report.facts += 1;
            if report.facts.is_multiple_of(10_000) {
                progress(report.facts, total);
            }
        }
        Ok(())
    };
    // Reading, decompressing and decoding the log is about half the work: on a file database
    // another thread does it on its own connection (the log does not change meanwhile: this
    // transaction holds the write lock) while this one folds and writes.
    match tx.path().filter(|path| !path.is_empty()).map(std::path::PathBuf::from) {
        Some(path) => std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::sync_channel(REBUILD_READ_AHEAD);
            let reader = scope.spawn(move || {
                let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                store::read_facts(&conn, REBUILD_READ_BATCH, |facts| sender.send(facts).is_ok())
            });
            let applied = receiver.iter().try_for_each(&mut apply);
            // Dropping the receiver stops the reader early when applying failed.
            drop(receiver);
            let read = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            applied.and(read)
        })?,
        None => {
            let mut failed = None;
            store::read_facts(&tx, REBUILD_READ_BATCH, |facts| {
                failed = apply(facts).err();
                failed.is_none()
            })?;
            if let Some(error) = failed {
                return Err(error);
            }
        }
    }
    let (tasks, workers) = engine.finish(&tx)?;
    report.tasks = tasks;
    report.workers = workers;
    report.read_back = engine.stats.loads;
    tx.execute("DELETE FROM maintenance WHERE key = 'rebuild_projections'", [])?;
    tx.commit()?;
    progress(report.facts, total);
    Ok(report)
}

/// Why the projections must be rebuilt before serving, if they must (an upgrade that changed
/// their tables leaves a note in `maintenance`).
///
/// # Errors
/// Any SQLite error.
pub fn stale_reason(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT reason FROM maintenance WHERE key = 'rebuild_projections'", [], |r| r.get(0))
        .optional()
}

/// Rebuilds the projections if [`stale_reason`] says so; returns what it did.
///
/// # Errors
/// Any SQLite error.
pub fn rebuild_if_stale(
    conn: &mut Connection,
    config: &ProjectionConfig,
) -> rusqlite::Result<Option<RebuildReport>> {
    let Some(reason) = stale_reason(conn)? else { return Ok(None) };
    // A new database gets the note from its migrations: there is nothing to rebuild, or to say.
    let empty = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM events)", [], |r| r.get::<_, bool>(0))?;
    if empty {
        conn.execute("DELETE FROM maintenance WHERE key = 'rebuild_projections'", [])?;
        return Ok(None);
    }
    tracing::info!(%reason, "rebuilding the projections from the log before serving");
    let started = std::time::Instant::now();
    let report = rebuild(conn, config, |_, _| {})?;
    tracing::info!(
        facts = report.facts,
        tasks = report.tasks,
        seconds = started.elapsed().as_secs_f64(),
        "projections rebuilt"
    );
    Ok(Some(report))
}

/// Every projection row as text, table by table in a fixed order: two databases hold the same
/// projections exactly when their dumps are equal.
///
/// # Errors
/// Any SQLite error.
pub fn dump(conn: &Connection) -> rusqlite::Result<String> {
    let mut out = String::new();
    for table in TABLES {
        out.push_str(&format!("== {table}\n"));
        let order = if matches!(table, "proj_meta" | "proj_task_status_counts") { "1" } else { "1, 2, 3" };
        let mut statement = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let columns = statement.column_count();
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let mut line = Vec::with_capacity(columns);
            for i in 0..columns {
                line.push(format!("{:?}", row.get::<_, rusqlite::types::Value>(i)?));
            }
            out.push_str(&line.join(" | "));
            out.push('\n');
        }
    }
    Ok(out)
}
