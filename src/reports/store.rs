//! The report's SQL: streams a window's statistics facts from the log (through the partial
//! covering index `events_report`, migration 0005) into the [`Fold`], looks up where the
//! window's tasks and reservations began when that lies before it (through `sid_refs`), and
//! reads the window's flagged tasks and the chain head, all in one read transaction so they
//! describe one log state. Nothing is kept per fact: memory follows open lifecycles.

use std::borrow::Cow;
use std::sync::LazyLock;

use rusqlite::{params, Connection, OptionalExtension};

use super::compute::{ActivityChange, By, Figures, Fold, LogFact, Origin, Request, REPORTED};
use crate::storage::{event_log, payload};
use taskrouter_protocol::webhook::FormParams;
use taskrouter_protocol::{stored_event, EventType};

/// The event-type term of the index's `WHERE` (migration 0010), written the same way so SQLite
/// can use it.
static REPORT_TYPES: LazyLock<String> = LazyLock::new(|| {
    let terms: Vec<String> = REPORTED.iter().map(|event| format!("event_type = '{event}'")).collect();
    format!("({})", terms.join(" OR "))
});

/// What one report read from the log.
#[derive(Debug, Default)]
pub struct Loaded {
    pub figures: Vec<Figures>,
    pub account_sid: Option<String>,
    /// The lowest and highest log row read in the window (`None`: no fact in it).
    pub first_event_id: Option<i64>,
    pub last_event_id: Option<i64>,
    pub facts_in_window: u64,
    /// The chain's last row and hash when the report was read.
    pub head_id: i64,
    pub head_hash: String,
    pub flags: Vec<FlaggedTask>,
    pub flags_total: u64,
}

/// One anomaly the projections flagged on a task active in the window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlaggedTask {
    pub task_sid: String,
    pub kind: String,
    pub reservation_sid: Option<String>,
    pub explanation: String,
    /// Log rows (events.id) the flag rests on.
    pub evidence: Vec<i64>,
}

/// Which facts to read.
#[derive(Debug, Clone)]
pub struct Selection {
    pub start_ms: i64,
    pub end_ms: i64,
    /// `None`: every workspace.
    pub workspace_sid: Option<String>,
    /// Read `TaskChannel*` from bodies (only when a channel filter is asked for: it costs a
    /// body read per fact).
    pub read_channels: bool,
    /// Read `worker.activity.update` bodies for activity durations (a table read per activity
    /// change; only outputs that show durations ask).
    pub read_activities: bool,
    /// Narrows the flags listed: (column of proj_tasks or a worker, Sid).
    pub flags_for: Option<(super::compute::By, String)>,
    pub flag_limit: u32,
}

/// The column of the window query holding the body (its encoding, endpoint and arrival follow).
const BODY: usize = 8;

/// Most flags listed in one report (the total is always given).
pub const FLAG_LIMIT: u32 = 500;

/// A stored body's bytes, decoded (`None`: not read, or it does not decode, in which case it
/// contributes nothing, as `verify` names such rows). Every body the reports read goes
/// through here, so how bodies are stored is decided in one place.
fn body_of<'r>(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<Option<Cow<'r, [u8]>>> {
    let Some(stored) = row.get_ref(BODY)?.as_blob_or_null()? else { return Ok(None) };
    Ok(payload::decode(row.get_ref(BODY + 1)?.as_str_or_null()?, stored).ok())
}

/// The callback parameters of the row's body, when it was read (see [`body_of`]), whichever
/// path the event came by.
fn params_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<FormParams>> {
    let Some(body) = body_of(row)? else { return Ok(None) };
    let endpoint = row.get_ref(BODY + 2)?.as_str_or_null()?.unwrap_or_default();
    let received_at_ms = row.get::<_, Option<i64>>(BODY + 3)?.unwrap_or_default();
    Ok(stored_event::callback_params(endpoint, &body, received_at_ms).ok())
}

/// The activity change a `worker.activity.update` body describes.
fn activity_change(params: &FormParams) -> ActivityChange<'_> {
    ActivityChange {
        previous: params.non_empty("WorkerPreviousActivitySid"),
        previous_name: params.non_empty("WorkerPreviousActivityName"),
        previous_ms: params
            .non_empty("WorkerTimeInPreviousActivityMs")
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| {
                params
                    .non_empty("WorkerTimeInPreviousActivity")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .map(|s| s.saturating_mul(1000))
            }),
        current: params.non_empty("WorkerActivitySid"),
        current_name: params.non_empty("WorkerActivityName"),
    }
}

/// Reads everything a report over `selection` needs and folds it into `request`'s figures.
/// `progress(done)` counts facts read.
///
/// # Errors
/// Any SQLite error.
pub fn load(
    conn: &mut Connection,
    selection: &Selection,
    request: &Request,
    mut progress: impl FnMut(u64),
) -> rusqlite::Result<Loaded> {
    // One read transaction: the head, the window and the flags are one snapshot of the log.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
    let head = event_log::head(&tx)?;
    let mut loaded = Loaded { head_id: head.id, head_hash: hex::encode(head.hash), ..Loaded::default() };
    let mut fold = Fold::new(request);
    {
        // The index is ordered by occurred_at_ms, the order the fold needs. Only what this
        // report uses is selected (every column and condition is paid on every row); bodies
        // are read (a seek into the table) only where a figure needs them. No `id <= head`:
        // the head was read in this transaction, so later rows are not visible anyway.
        let body = if selection.read_channels {
            "body, payload_encoding, endpoint, received_at_ms".to_string()
        } else if selection.read_activities {
            let when = "CASE WHEN event_type = 'worker.activity.update' THEN";
            format!("{when} body END, {when} payload_encoding END, {when} endpoint END, {when} received_at_ms END")
        } else {
            "NULL, NULL, NULL, NULL".to_string()
        };
        let workflow = if request.by == By::Workflow { "workflow_sid" } else { "NULL" };
        let workspace = if selection.workspace_sid.is_some() { "AND workspace_sid = ?3" } else { "" };
        let sql = format!(
            "SELECT id, event_type, occurred_at_ms, task_sid, reservation_sid, worker_sid, task_queue_sid, \
             {workflow}, {body} \
             FROM events INDEXED BY events_report \
             WHERE is_fact = 1 AND {report_types} AND occurred_at_ms >= ?1 AND occurred_at_ms < ?2 \
             {workspace} ORDER BY occurred_at_ms",
            report_types = &*REPORT_TYPES
        );
        let mut statement = tx.prepare(&sql)?;
        let mut rows = match &selection.workspace_sid {
            Some(workspace) => statement.query(params![selection.start_ms, selection.end_ms, workspace])?,
            None => statement.query(params![selection.start_ms, selection.end_ms])?,
        };
        while let Some(row) = rows.next()? {
            let event_id: i64 = row.get(0)?;
            let Some(kind) = EventType::parse(row.get_ref(1)?.as_str()?) else { continue };
            let text = |i: usize| -> rusqlite::Result<Option<&str>> { Ok(row.get_ref(i)?.as_str_or_null()?) };
            let params = params_of(row)?;
            let mut fact = LogFact {
                kind,
                at_ms: row.get(2)?,
                task: text(3)?,
                reservation: text(4)?,
                worker: text(5)?,
                queue: text(6)?,
                workflow: text(7)?,
                activity: ActivityChange::default(),
                channels: [None, None],
            };
            if let Some(params) = &params {
                if kind == EventType::WorkerActivityUpdate {
                    fact.activity = activity_change(params);
                }
                if selection.read_channels {
                    fact.channels =
                        [params.non_empty("TaskChannelUniqueName"), params.non_empty("TaskChannelSid")];
                }
            }
            fold.push(&fact);
            loaded.first_event_id = Some(loaded.first_event_id.map_or(event_id, |f: i64| f.min(event_id)));
            loaded.last_event_id = Some(loaded.last_event_id.map_or(event_id, |l: i64| l.max(event_id)));
            loaded.facts_in_window += 1;
            if loaded.facts_in_window.is_multiple_of(50_000) {
                progress(loaded.facts_in_window);
            }
        }
    }
    progress(loaded.facts_in_window);
    loaded.figures = {
        let mut statement = tx.prepare(&ORIGINS_SQL)?;
        fold.finish(|sid| origins(&mut statement, sid, selection.end_ms, head.id))?
    };
    loaded.account_sid = tx
        .query_row(
            "SELECT account_sid FROM events WHERE id = ?1",
            [loaded.first_event_id.unwrap_or(0)],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten();
    load_flags(&tx, selection, &mut loaded)?;
    tx.commit()?;
    Ok(loaded)
}

/// Where a task or reservation began: its `task.created` and `task-queue.entered` facts, or a
/// reservation's `reservation.created`, before the window's end (a lifecycle cut by the window
/// start still gets its true wait).
static ORIGINS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT e.event_type, e.occurred_at_ms, e.task_queue_sid \
         FROM sid_refs r JOIN events e ON e.id = r.event_id \
         WHERE r.sid_key = ?1 AND e.is_fact = 1 AND e.occurred_at_ms < ?2 AND e.id <= ?3 \
         AND ((e.event_type IN ('{}', '{}') AND e.task_sid = ?4) \
           OR (e.event_type = '{}' AND e.reservation_sid = ?4))",
        EventType::TaskCreated,
        EventType::TaskQueueEntered,
        EventType::ReservationCreated
    )
});

fn origins(
    statement: &mut rusqlite::Statement<'_>,
    sid: &str,
    end_ms: i64,
    head_id: i64,
) -> rusqlite::Result<Vec<Origin>> {
    let rows = statement.query_map(params![event_log::sid_key(sid), end_ms, head_id, sid], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, Option<String>>(2)?))
    })?;
    let mut found = Vec::new();
    for row in rows {
        let (event_type, at_ms, queue) = row?;
        if let Some(kind) = EventType::parse(&event_type) {
            found.push(Origin { kind, at_ms, queue });
        }
    }
    Ok(found)
}

fn load_flags(tx: &Connection, selection: &Selection, loaded: &mut Loaded) -> rusqlite::Result<()> {
    use super::compute::By;
    let (filter, sid) = match &selection.flags_for {
        Some((By::Queue, sid)) => ("t.task_queue_sid = ?3", Some(sid.as_str())),
        Some((By::Workflow, sid)) => ("t.workflow_sid = ?3", Some(sid.as_str())),
        Some((By::Worker, sid)) => (
            "f.reservation_sid IN (SELECT reservation_sid FROM proj_reservations WHERE worker_sid = ?3)",
            Some(sid.as_str()),
        ),
        _ => ("?3 IS NULL", None),
    };
    // Flagged tasks are few: start from the flags and keep those whose task was active in the
    // window (CROSS JOIN keeps that order; left to itself SQLite walks every task of the window).
    let from = format!(
        "FROM proj_flags f CROSS JOIN proj_tasks t ON t.task_sid = f.task_sid \
         WHERE t.last_fact_at_ms >= ?1 AND t.first_fact_at_ms < ?2 AND {filter}"
    );
    loaded.flags_total = tx.query_row(
        &format!("SELECT COUNT(*) {from}"),
        params![selection.start_ms, selection.end_ms, sid],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let mut statement = tx.prepare(&format!(
        "SELECT f.task_sid, f.kind, f.reservation_sid, f.explanation, f.evidence {from} \
         ORDER BY t.first_fact_at_ms, f.task_sid, f.position LIMIT ?4"
    ))?;
    let rows = statement.query_map(
        params![selection.start_ms, selection.end_ms, sid, selection.flag_limit],
        |r| {
            let evidence: String = r.get(4)?;
            Ok(FlaggedTask {
                task_sid: r.get(0)?,
                kind: r.get(1)?,
                reservation_sid: r.get(2)?,
                explanation: r.get(3)?,
                evidence: serde_json::from_str(&evidence).unwrap_or_default(),
            })
        },
    )?;
    loaded.flags = rows.collect::<rusqlite::Result<_>>()?;
    Ok(())
}

/// Walks the whole chain (the `verify` command's check), for a report that asks for it.
///
/// # Errors
/// Any SQLite error.
pub fn verify(conn: &Connection) -> rusqlite::Result<event_log::VerifyReport> {
    event_log::verify(conn, |_| {})
}

#[cfg(test)]
mod tests {
    /// The report's scan names its partial index (`INDEXED BY events_report`): SQLite refuses
    /// the query unless its event-type term is the index's own, written the same way.
    #[test]
    fn the_reported_types_are_the_report_index_s_term() {
        let migration = include_str!("../../migrations/0010_report_index_predicate.sql");
        let flattened = migration.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flattened.contains(super::REPORT_TYPES.as_str()),
            "{} not in {flattened}",
            *super::REPORT_TYPES
        );
    }
}
