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
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for table in TABLES {
        tx.execute(&format!("DELETE FROM {table}"), [])?;
    }
    let total: i64 = tx.query_row("SELECT COUNT(*) FROM events WHERE is_fact = 1", [], |r| r.get(0))?;
    let total = total as u64;
    let mut report = RebuildReport::default();
    let mut engine = Engine::for_rebuild(config.clone());
    {
        let mut statement = tx.prepare(&format!(
            "SELECT {} FROM events e WHERE e.is_fact = 1 ORDER BY e.id",
            store::FACT_COLUMNS
        ))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            engine.apply_fact(&tx, store::fact_from_row(row)?)?;
            report.facts += 1;
            if report.facts.is_multiple_of(10_000) {
                progress(report.facts, total);
            }
        }
    }
    let (tasks, workers) = engine.finish(&tx)?;
    report.tasks = tasks;
    report.workers = workers;
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
