//! Read models derived only from the log (tasks, reservations, workers, timelines), updated in
//! the writer's transaction for every new fact and rebuildable from the log at any time.
//!
//! Projections are pure folds ([`fold`], their words in [`explain`]) driven by the incremental
//! [`engine`], which keeps each task's folded state ([`task_entry`]), with their SQL in
//! [`store`]: nothing here reads the clock, draws random numbers or calls out, so a rebuild
//! yields exactly what incremental updates did. Each fact is folded into its task's state in
//! causal order at a cost that does not grow with the task's history; a late or out-of-order
//! delivery undoes the task's last facts back to its place and folds them again. Worker
//! activity rows are keyed by time, so they need no re-fold; their durations are the gaps
//! between consecutive rows.

pub mod details;
pub mod engine;
pub mod explain;
pub mod fact;
pub mod fold;
mod fold_state;
pub mod overview;
pub mod projector;
mod store;
mod task_entry;
#[cfg(test)]
mod tests;

use rusqlite::{Connection, OptionalExtension};

pub use engine::Engine;
pub use fact::Fact;
pub use fold::{ProjectionConfig, TaskProjection};
pub use projector::Projector;

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

/// The last log row the projections have taken in.
///
/// # Errors
/// Any SQLite error.
pub fn projected_through(conn: &Connection) -> rusqlite::Result<i64> {
    match store::projected_through(conn)? {
        Some(id) => Ok(id),
        None => store::last_event_id(conn),
    }
}

/// Writes down the mark [`projected_through`] reads when none is stored yet (a new log, or one
/// from before the mark, whose projections took in every row as it was appended), so a writer
/// can tell the mark it left from one another process moved.
///
/// # Errors
/// Any SQLite error.
pub fn record_projected_through(conn: &Connection) -> rusqlite::Result<()> {
    if store::projected_through(conn)?.is_none() {
        store::set_projected_through(conn, store::last_event_id(conn)?)?;
    }
    Ok(())
}

/// Records that the projections have taken in every row up to `id` (in the transaction that
/// wrote what they took in).
///
/// # Errors
/// Any SQLite error.
pub fn set_projected_through(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    store::set_projected_through(conn, id)
}

/// The facts among log rows after `after_id` up to `through_id`, in log order.
///
/// # Errors
/// Any SQLite error.
pub fn facts_between(conn: &Connection, after_id: i64, through_id: i64) -> rusqlite::Result<Vec<Fact>> {
    store::read_facts_between(conn, after_id + 1, through_id + 1)
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RebuildReport {
    pub facts: u64,
    pub tasks: u64,
    pub workers: u64,
    /// Times a task that had left memory was restored from its stored state.
    pub read_back: u64,
}

/// Clears every projection table and replays the log's facts, in one transaction.
///
/// The replay runs the same [`Engine`] as ingest, in log order, writing each task once when it
/// leaves memory instead of once per transaction. `progress(done, total)` counts log rows.
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

/// Log rows per chunk handed from a rebuild's readers to its writer, and chunks in flight per
/// reader.
const REBUILD_CHUNK_IDS: i64 = 1_024;
const REBUILD_READ_AHEAD: usize = 8;
/// Threads reading, decompressing and decoding the log during a rebuild, beside the one that
/// folds and writes: with only one reader the folding thread waits for it.
const REBUILD_READERS: usize = 2;

/// Log rows between two progress reports.
const PROGRESS_EVERY_ROWS: u64 = 10_000;

/// SQLite's page cache during a rebuild (negative: KiB), 256 MiB.
const REBUILD_CACHE_KIB: i64 = -262_144;

fn replay(
    conn: &mut Connection,
    config: &ProjectionConfig,
    progress: &mut impl FnMut(u64, u64),
) -> rusqlite::Result<RebuildReport> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Rows the projector had not reached yet still lack their SID references, which the
    // replay below does not write.
    if let Some(through) = store::projected_through(&tx)? {
        crate::storage::event_log::index_sids_of_rows_after(&tx, through)?;
    }
    clear_tables(&tx)?;
    let set_aside = store::set_aside_for_rebuild(&tx)?;
    let mut report = RebuildReport::default();
    let mut engine = Engine::for_rebuild(config.clone());
    engine.discard_on_a_thread();
    // Progress is counted in log rows, not facts: counting the facts first would read the
    // whole log once more.
    let last_id = store::last_event_id(&tx)?;
    let total_rows = last_id.max(0) as u64;
    let mut last_reported = 0;
    let mut apply = |facts: Vec<Fact>| -> rusqlite::Result<()> {
        let Some(chunk_end) = facts.last().map(|fact| fact.event_id as u64) else { return Ok(()) };
        for fact in facts {
            engine.apply_fact(&tx, fact)?;
            report.facts += 1;
        }
        if chunk_end >= last_reported + PROGRESS_EVERY_ROWS {
            last_reported = chunk_end;
            progress(chunk_end, total_rows);
        }
        Ok(())
    };
    // On a file database other threads read, decompress and decode the log on their own
    // connections (the log does not change meanwhile: this transaction holds the write lock)
    // while this one folds and writes.
    match tx.path().filter(|path| !path.is_empty()).map(std::path::PathBuf::from) {
        Some(path) => read_in_parallel(&path, last_id, REBUILD_READERS, REBUILD_CHUNK_IDS, &mut apply)?,
        // An in-memory database has no file for other connections: the same chunks, read here.
        None => {
            for from in (1..=last_id).step_by(REBUILD_CHUNK_IDS as usize) {
                apply(store::read_facts_between(&tx, from, from + REBUILD_CHUNK_IDS)?)?;
            }
        }
    }
    let (tasks, workers) = engine.finish(&tx)?;
    report.tasks = tasks;
    report.workers = workers;
    report.read_back = engine.stats.loads;
    store::restore_after_rebuild(&tx, &set_aside)?;
    store::set_projected_through(&tx, last_id)?;
    tx.execute("DELETE FROM maintenance WHERE key = 'rebuild_projections'", [])?;
    tx.commit()?;
    progress(total_rows, total_rows);
    Ok(report)
}

/// Threads reading projection tables into the page cache while a rebuild empties them.
const CLEAR_WARMERS: usize = 2;

/// Empties the projection tables. SQLite reads every page of a table to free it, one page at a
/// time, which is slow from a cold cache: on a file database, threads on their own read-only
/// connections meanwhile read the tables the DELETEs reach last (readers see the last commit:
/// the same pages), so those are cached when their turn comes, and are interrupted once all are
/// empty.
fn clear_tables(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let Some(path) = tx.path().filter(|path| !path.is_empty()).map(std::path::PathBuf::from) else {
        return TABLES.iter().try_for_each(|table| store::clear_table(tx, table));
    };
    let not_yet_cleared = std::sync::Mutex::new(TABLES.to_vec());
    let interrupts = std::sync::Mutex::new(Vec::new());
    let warming = std::sync::atomic::AtomicUsize::new(CLEAR_WARMERS);
    std::thread::scope(|scope| {
        for _ in 0..CLEAR_WARMERS {
            scope.spawn(|| {
                let _counted_out = CountedOut(&warming);
                if let Ok(conn) = open_helper(&path) {
                    lock(&interrupts).push(conn.get_interrupt_handle());
                    // The tables cleared last first; a failure or an interrupt only leaves
                    // pages uncached.
                    while let Some(table) = lock(&not_yet_cleared).pop() {
                        if store::read_every_page(&conn, table).is_err() {
                            break;
                        }
                    }
                }
            });
        }
        let cleared = TABLES.iter().try_for_each(|table| {
            lock(&not_yet_cleared).retain(|pending| pending != table);
            store::clear_table(tx, table)
        });
        lock(&not_yet_cleared).clear();
        // An interrupt only stops a statement already running: repeat it until every warmer
        // has stopped, so none that was just starting a read keeps the rebuild waiting.
        while warming.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            lock(&interrupts).iter().for_each(rusqlite::InterruptHandle::interrupt);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        cleared
    })
}

/// A read-only connection for one of a rebuild's helper threads. Only that thread uses it, so
/// SQLite's per-call connection mutex would only cost.
fn open_helper(path: &std::path::Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Takes one off the count when dropped, however the thread holding it ends.
struct CountedOut<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for CountedOut<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The guarded value, even if a thread panicked holding it (these lists stay valid).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hands the facts of log rows `1..=last_id` to `apply` in log order, read by `readers` threads
/// on their own read-only connections to `path`: reader `r` reads chunks `r`, `r + readers`, …
/// of `chunk_ids` rows each, and chunks are taken from the readers in turn.
fn read_in_parallel(
    path: &std::path::Path,
    last_id: i64,
    readers: usize,
    chunk_ids: i64,
    apply: &mut impl FnMut(Vec<Fact>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    std::thread::scope(|scope| {
        let mut inboxes = Vec::with_capacity(readers);
        let mut threads = Vec::with_capacity(readers);
        for reader in 0..readers {
            let (sender, inbox) = std::sync::mpsc::sync_channel(REBUILD_READ_AHEAD);
            inboxes.push(inbox);
            threads.push(scope.spawn(move || -> rusqlite::Result<()> {
                let conn = open_helper(path)?;
                let mut from = 1 + reader as i64 * chunk_ids;
                while from <= last_id {
                    let facts = store::read_facts_between(&conn, from, from + chunk_ids)?;
                    if sender.send(facts).is_err() {
                        break; // applying failed
                    }
                    from += readers as i64 * chunk_ids;
                }
                Ok(())
            }));
        }
        // A reader's channel closes after its last chunk, or early when it failed (its join
        // says why): either way the chunks in order end there.
        let mut applied = Ok(());
        for chunk in 0.. {
            match inboxes[chunk % readers].recv() {
                Ok(facts) => {
                    if let Err(error) = apply(facts) {
                        applied = Err(error);
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        // Dropping the inboxes stops the readers early when applying failed.
        drop(inboxes);
        let mut read = Ok(());
        for thread in threads {
            let outcome = thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            read = read.and(outcome);
        }
        applied.and(read)
    })
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

/// The projection tables without log ids, which differ between delivery orders and between
/// the paths an event came by (webhook or Events API).
///
/// # Panics
/// On a SQLite error (it serves tests and checks).
pub fn dump_without_ids(connection: &Connection) -> String {
    let queries = [
        "SELECT task_sid, status, workflow_sid, workflow_name, task_queue_sid, task_queue_name, priority, \
         attributes, created_at_ms, first_reserved_at_ms, assigned_at_ms, finished_at_ms, cancel_cause, deleted, \
         reservation_count, transfer_count, first_fact_at_ms, last_fact_at_ms, fact_count, flag_kinds \
         FROM proj_tasks ORDER BY task_sid",
        "SELECT reservation_sid, task_sid, worker_sid, worker_name, status, created_at_ms, answered_at_ms, \
         finished_at_ms, pending_ms, timeout_ms, callback_answer, outcome FROM proj_reservations ORDER BY 1",
        "SELECT task_sid, position, occurred_at_ms, time_source, kind, reservation_sid, worker_sid, summary \
         FROM proj_timeline ORDER BY 1, 2",
        "SELECT task_sid, position, kind, reservation_sid, explanation FROM proj_flags ORDER BY 1, 2",
        "SELECT worker_sid, name, activity_sid, activity_name, activity_since_ms FROM proj_workers ORDER BY 1",
        "SELECT worker_sid, started_at_ms, activity_name FROM proj_worker_activity ORDER BY 1, 2, 3",
    ];
    let mut out = String::new();
    for sql in queries {
        let mut statement = connection.prepare(sql).unwrap();
        let columns = statement.column_count();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                out.push_str(&format!("{:?}|", row.get::<_, rusqlite::types::Value>(i).unwrap()));
            }
            out.push('\n');
        }
        out.push_str("--\n");
    }
    out
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
