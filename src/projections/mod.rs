//! Read models derived only from the log (tasks, reservations, workers, timelines), updated in
//! the writer's transaction for every new fact and rebuildable from the log at any time.
//!
//! Projections are pure folds ([`fold`]) plus this thin SQL shell: nothing here reads the
//! clock, draws random numbers or calls out, so a rebuild yields exactly what incremental
//! updates did. Each new fact is indexed in `proj_facts`; its task is then re-folded from all
//! of that task's facts in causal order (tasks have tens of facts), so a late or out-of-order
//! delivery lands in its right place. Worker activity rows are keyed by time, so they need no
//! re-fold; their durations are the gaps between consecutive rows.

pub mod fact;
pub mod fold;
pub mod overview;
pub mod reads;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use rusqlite::{params, Connection, OptionalExtension};

pub use fact::Fact;
pub use fold::{ProjectionConfig, TaskProjection};

use crate::domain::{OccurredAt, TimeSource, WebhookFacts};
use crate::storage::event_log::NewRecord;

/// The projection tables, in the order they are cleared and compared.
pub const TABLES: [&str; 7] = [
    "proj_facts",
    "proj_tasks",
    "proj_reservations",
    "proj_timeline",
    "proj_flags",
    "proj_workers",
    "proj_worker_activity",
];

/// Applies one newly appended fact (log row `id`) to every projection, inside the writer's
/// transaction.
///
/// # Errors
/// Any SQLite error; the whole transaction, the append included, is then rolled back.
pub fn apply(
    conn: &Connection,
    id: i64,
    record: &NewRecord,
    config: &ProjectionConfig,
) -> rusqlite::Result<()> {
    let Some(facts) = record.facts.as_ref() else { return Ok(()) };
    let fact = Fact::from_parts(id, facts, record.params.as_ref(), record.response_body.as_deref());
    apply_fact(conn, &fact, config)
}

/// Indexes `fact` and refreshes what it touches: its task, its worker, and the tasks whose
/// timeout or rejection explanation mentions this worker's next activity.
///
/// # Errors
/// Any SQLite error.
pub fn apply_fact(conn: &Connection, fact: &Fact, config: &ProjectionConfig) -> rusqlite::Result<()> {
    index_fact(conn, fact)?;
    if let Some(task_sid) = fact.task_sid.as_deref() {
        refresh_task(conn, task_sid, config)?;
    }
    if let Some(worker_sid) = fact.worker_sid.as_deref() {
        refresh_worker(conn, worker_sid)?;
        if fact.event_type == "worker.activity.update" {
            for task_sid in tasks_explaining_activity(conn, worker_sid, fact.occurred_at_ms)? {
                refresh_task(conn, &task_sid, config)?;
            }
        }
    }
    Ok(())
}

fn index_fact(conn: &Connection, fact: &Fact) -> rusqlite::Result<()> {
    let json = serde_json::to_string(fact).expect("facts serialise");
    conn.prepare_cached(
        "INSERT OR REPLACE INTO proj_facts (event_id, task_sid, worker_sid, worker_name, event_type, \
         occurred_at_ms, timed_by_arrival, fact) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        fact.event_id,
        fact.task_sid,
        fact.worker_sid,
        fact.worker_name,
        fact.event_type,
        fact.occurred_at_ms,
        fact.time_is_arrival,
        json
    ])?;
    let changes_activity = matches!(fact.event_type.as_str(), "worker.activity.update" | "worker.created");
    if let (true, Some(worker_sid)) = (changes_activity, fact.worker_sid.as_deref()) {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO proj_worker_activity (worker_sid, started_at_ms, event_id, activity_sid, \
             activity_name, previous_activity_name, reported_previous_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            worker_sid,
            fact.occurred_at_ms,
            fact.event_id,
            fact.activity_sid,
            fact.activity_name,
            fact.previous_activity_name,
            fact.time_in_previous_activity_ms
        ])?;
    }
    Ok(())
}

fn load_facts(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<Vec<Fact>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params, |row| row.get::<_, String>(0))?;
    let mut facts = Vec::new();
    for json in rows {
        let json = json?;
        let fact = serde_json::from_str(&json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?;
        facts.push(fact);
    }
    Ok(facts)
}

/// Tasks with a timeout or rejection of `worker_sid` shortly before `at_ms`, whose explanation
/// names the worker's next activity.
fn tasks_explaining_activity(
    conn: &Connection,
    worker_sid: &str,
    at_ms: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT task_sid FROM proj_facts WHERE worker_sid = ?1 AND occurred_at_ms BETWEEN ?2 AND ?3 \
         AND event_type IN ('reservation.timeout', 'reservation.rejected') AND task_sid IS NOT NULL",
    )?;
    let rows = statement
        .query_map(params![worker_sid, at_ms - fold::ACTIVITY_FOLLOW_WINDOW_MS, at_ms], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

/// Re-folds `task_sid` from all its facts and rewrites its rows.
///
/// # Errors
/// Any SQLite error.
pub fn refresh_task(conn: &Connection, task_sid: &str, config: &ProjectionConfig) -> rusqlite::Result<()> {
    let facts = load_facts(conn, "SELECT fact FROM proj_facts WHERE task_sid = ?1", [task_sid])?;
    let mut worker_activity = Vec::new();
    let consequences: BTreeSet<(&str, i64)> = facts
        .iter()
        .filter(|f| fold::ACTIVITY_CAUSING_EVENTS.contains(&f.event_type.as_str()))
        .filter_map(|f| f.worker_sid.as_deref().map(|w| (w, f.occurred_at_ms)))
        .collect();
    for (worker_sid, at_ms) in consequences {
        worker_activity.extend(load_facts(
            conn,
            "SELECT fact FROM proj_facts WHERE worker_sid = ?1 AND occurred_at_ms BETWEEN ?2 AND ?3 \
             AND event_type = 'worker.activity.update'",
            params![worker_sid, at_ms, at_ms + fold::ACTIVITY_FOLLOW_WINDOW_MS],
        )?);
    }
    let projection = fold::fold_task(task_sid, &facts, &worker_activity, config);
    write_task(conn, &projection)
}

fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("ids serialise")
}

fn write_task(conn: &Connection, projection: &TaskProjection) -> rusqlite::Result<()> {
    let task = &projection.task;
    for table in ["proj_reservations", "proj_flags"] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE task_sid = ?1"))?
            .execute([&task.task_sid])?;
    }
    let kinds: BTreeSet<&str> = projection.flags.iter().map(|f| f.kind.as_str()).collect();
    let flag_kinds = if kinds.is_empty() {
        String::new()
    } else {
        format!(",{},", kinds.into_iter().collect::<Vec<_>>().join(","))
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO proj_tasks (task_sid, status, workflow_sid, workflow_name, task_queue_sid, \
         task_queue_name, priority, attributes, created_at_ms, first_reserved_at_ms, assigned_at_ms, \
         finished_at_ms, cancel_cause, deleted, reservation_count, transfer_count, first_fact_at_ms, \
         last_fact_at_ms, fact_count, flag_kinds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
         ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        task.task_sid,
        task.status,
        task.workflow_sid,
        task.workflow_name,
        task.task_queue_sid,
        task.task_queue_name,
        task.priority,
        task.attributes,
        task.created_at_ms,
        task.first_reserved_at_ms,
        task.assigned_at_ms,
        task.finished_at_ms,
        task.cancel_cause,
        task.deleted,
        task.reservation_count,
        task.transfer_count,
        task.first_fact_at_ms,
        task.last_fact_at_ms,
        task.fact_count,
        flag_kinds
    ])?;
    let mut insert_reservation = conn.prepare_cached(
        "INSERT OR REPLACE INTO proj_reservations (reservation_sid, task_sid, worker_sid, worker_name, status, \
         created_at_ms, answered_at_ms, finished_at_ms, pending_ms, timeout_ms, created_event_id, \
         callback_event_id, callback_answer, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         ?12, ?13, ?14)",
    )?;
    for r in &projection.reservations {
        insert_reservation.execute(params![
            r.reservation_sid,
            r.task_sid,
            r.worker_sid,
            r.worker_name,
            r.status,
            r.created_at_ms,
            r.answered_at_ms,
            r.finished_at_ms,
            r.pending_ms,
            r.timeout_ms,
            r.created_event_id,
            r.callback_event_id,
            r.callback_answer,
            r.outcome
        ])?;
    }
    write_timeline(conn, &task.task_sid, &projection.timeline)?;
    let mut insert_flag = conn.prepare_cached(
        "INSERT INTO proj_flags (task_sid, position, kind, reservation_sid, explanation, evidence) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (position, f) in projection.flags.iter().enumerate() {
        insert_flag.execute(params![
            task.task_sid,
            position as i64,
            f.kind,
            f.reservation_sid,
            f.explanation,
            json_ids(&f.evidence)
        ])?;
    }
    Ok(())
}

/// Rewrites a task's timeline from the first entry that changed. A fold is a left fold, so a new
/// fact usually changes only the entries from its own position on (most often just the last).
fn write_timeline(
    conn: &Connection,
    task_sid: &str,
    entries: &[fold::TimelineEntry],
) -> rusqlite::Result<()> {
    let unchanged = {
        let mut statement = conn.prepare_cached(
            "SELECT position, occurred_at_ms, time_source, kind, reservation_sid, worker_sid, summary, evidence \
             FROM proj_timeline WHERE task_sid = ?1 ORDER BY position",
        )?;
        let mut rows = statement.query([task_sid])?;
        let mut unchanged = 0;
        while let Some(row) = rows.next()? {
            let Some(entry) = entries.get(unchanged) else { break };
            let same = row.get::<_, i64>(0)? == entry.position
                && row.get::<_, i64>(1)? == entry.occurred_at_ms
                && row.get_ref(2)?.as_str()? == entry.time_source
                && row.get_ref(3)?.as_str()? == entry.kind
                && row.get::<_, Option<String>>(4)? == entry.reservation_sid
                && row.get::<_, Option<String>>(5)? == entry.worker_sid
                && row.get_ref(6)?.as_str()? == entry.summary
                && row.get_ref(7)?.as_str()? == json_ids(&entry.evidence);
            if !same {
                break;
            }
            unchanged += 1;
        }
        unchanged
    };
    conn.prepare_cached("DELETE FROM proj_timeline WHERE task_sid = ?1 AND position >= ?2")?
        .execute(params![task_sid, unchanged as i64])?;
    let mut insert_entry = conn.prepare_cached(
        "INSERT INTO proj_timeline (task_sid, position, occurred_at_ms, time_source, kind, reservation_sid, \
         worker_sid, summary, evidence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for e in &entries[unchanged..] {
        insert_entry.execute(params![
            task_sid,
            e.position,
            e.occurred_at_ms,
            e.time_source,
            e.kind,
            e.reservation_sid,
            e.worker_sid,
            e.summary,
            json_ids(&e.evidence)
        ])?;
    }
    Ok(())
}

/// Sets a worker's name (from its latest named fact) and current activity (its latest change).
///
/// # Errors
/// Any SQLite error.
pub fn refresh_worker(conn: &Connection, worker_sid: &str) -> rusqlite::Result<()> {
    let name: Option<String> = conn
        .prepare_cached(
            "SELECT worker_name FROM proj_facts WHERE worker_sid = ?1 AND worker_name IS NOT NULL \
             ORDER BY occurred_at_ms DESC, event_id DESC LIMIT 1",
        )?
        .query_row([worker_sid], |r| r.get(0))
        .optional()?;
    let activity: Option<(Option<String>, Option<String>, i64, i64)> = conn
        .prepare_cached(
            "SELECT activity_sid, activity_name, started_at_ms, event_id FROM proj_worker_activity \
             WHERE worker_sid = ?1 ORDER BY started_at_ms DESC, event_id DESC LIMIT 1",
        )?
        .query_row([worker_sid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let (activity_sid, activity_name, since, event_id) = match activity {
        Some((sid, name, since, id)) => (sid, name, Some(since), Some(id)),
        None => (None, None, None, None),
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO proj_workers (worker_sid, name, activity_sid, activity_name, activity_since_ms, \
         activity_event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![worker_sid, name, activity_sid, activity_name, since, event_id])?;
    Ok(())
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RebuildReport {
    pub facts: u64,
    pub tasks: u64,
    pub workers: u64,
}

/// Clears every projection table and replays the log's facts, in one transaction.
///
/// Facts are indexed in log order, then each task and worker is folded once from its complete
/// set of facts: the same [`refresh_task`] / [`refresh_worker`] the incremental path runs, so
/// the result is the same, in one fold per task instead of one per fact.
/// `progress(done, total)` counts facts read, then tasks folded, on one scale.
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
    let mut tasks = BTreeSet::new();
    let mut workers = BTreeSet::new();
    {
        let mut statement = tx.prepare(
            "SELECT id, event_type, event_sid, account_sid, workspace_sid, task_sid, reservation_sid, worker_sid, \
             task_queue_sid, workflow_sid, occurred_at_ms, occurred_at_raw, occurred_at_source, body, \
             response_body FROM events WHERE is_fact = 1 ORDER BY id",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let fact = fact_from_row(row)?;
            index_fact(&tx, &fact)?;
            if let Some(task) = fact.task_sid {
                tasks.insert(task);
            }
            if let Some(worker) = fact.worker_sid {
                workers.insert(worker);
            }
            report.facts += 1;
            if report.facts.is_multiple_of(10_000) {
                progress(report.facts, total);
            }
        }
    }
    // The second phase counts on the same bar: one step per task folded.
    let steps = report.facts + tasks.len() as u64;
    progress(report.facts, steps);
    for task in &tasks {
        refresh_task(&tx, task, config)?;
        report.tasks += 1;
        if report.tasks.is_multiple_of(1_000) {
            progress(report.facts + report.tasks, steps);
        }
    }
    progress(steps, steps);
    for worker in &workers {
        refresh_worker(&tx, worker)?;
        report.workers += 1;
    }
    tx.commit()?;
    Ok(report)
}

/// The fact of one stored `events` row (the columns [`rebuild`] selects).
fn fact_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Fact> {
    let id: i64 = row.get(0)?;
    let source: Option<String> = row.get(12)?;
    let facts = WebhookFacts {
        event_type: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
        event_sid: row.get(2)?,
        account_sid: row.get(3)?,
        workspace_sid: row.get(4)?,
        task_sid: row.get(5)?,
        reservation_sid: row.get(6)?,
        worker_sid: row.get(7)?,
        task_queue_sid: row.get(8)?,
        workflow_sid: row.get(9)?,
        occurred_at: OccurredAt {
            epoch_ms: row.get::<_, Option<i64>>(10)?.unwrap_or(0),
            raw: row.get(11)?,
            source: if source.as_deref() == Some(TimeSource::Arrival.as_str()) {
                TimeSource::Arrival
            } else {
                TimeSource::TimestampMs
            },
        },
    };
    let body: Vec<u8> = row.get(13)?;
    let params = crate::domain::webhook::parse_form(&body).ok();
    let response_body: Option<String> = row.get(14)?;
    Ok(Fact::from_parts(id, &facts, params.as_ref(), response_body.as_deref()))
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
        let mut statement = conn.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3"))?;
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
