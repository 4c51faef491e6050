//! The report's SQL: reads a window's statistics facts from the log (through the partial
//! covering index `events_report`, migration 0005), the facts where the window's tasks and
//! reservations began when those lie before it (through `sid_refs`), the window's flagged
//! tasks, and the chain head, all in one read transaction so they describe one log state.

use rusqlite::{params, Connection, OptionalExtension};

use super::compute::{HashSet, Kind, Names, ReportFact};
use crate::domain::webhook::parse_form;
use crate::storage::event_log;
use crate::storage::payload;

/// The event types of the index's `WHERE`, written exactly as there so SQLite can use it.
const REPORT_TYPES: &str =
    "('task.created', 'task.canceled', 'task.completed', 'task.deleted', 'task-queue.entered', \
    'task-queue.moved', 'workflow.entered', 'workflow.timeout', 'reservation.created', \
    'reservation.accepted', 'reservation.rejected', 'reservation.timeout', 'reservation.canceled', \
    'reservation.rescinded', 'worker.activity.update')";

/// What the log held for one report.
#[derive(Debug, Default)]
pub struct Loaded {
    pub facts: Vec<ReportFact>,
    pub names: Names,
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
    /// Narrows the flags listed: (column of proj_tasks or a worker, Sid).
    pub flags_for: Option<(super::compute::By, String)>,
    pub flag_limit: u32,
}

/// Most flags listed in one report (the total is always given).
pub const FLAG_LIMIT: u32 = 500;

fn activity_fields(fact: &mut ReportFact, body: &[u8], names: &mut Names, read_channels: bool) {
    let Ok(params) = parse_form(body) else { return };
    let mut name = |field: &str| params.non_empty(field).map(|v| names.intern(v));
    if fact.kind == Kind::WorkerActivityUpdate {
        fact.previous_activity = name("WorkerPreviousActivitySid");
        fact.previous_activity_name = name("WorkerPreviousActivityName");
        fact.activity = name("WorkerActivitySid");
        fact.activity_name = name("WorkerActivityName");
        fact.previous_activity_ms = params
            .non_empty("WorkerTimeInPreviousActivityMs")
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| {
                params
                    .non_empty("WorkerTimeInPreviousActivity")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .map(|s| s.saturating_mul(1000))
            });
    }
    if read_channels {
        fact.channels = [name("TaskChannelUniqueName"), name("TaskChannelSid")];
    }
}

/// Reads everything a report over `selection` needs. `progress(done)` counts facts read.
///
/// # Errors
/// Any SQLite error.
pub fn load(
    conn: &mut Connection,
    selection: &Selection,
    mut progress: impl FnMut(u64),
) -> rusqlite::Result<Loaded> {
    // One read transaction: the head, the window and the flags are one snapshot of the log.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
    let head = event_log::head(&tx)?;
    let mut loaded = Loaded { head_id: head.id, head_hash: hex::encode(head.hash), ..Loaded::default() };
    {
        let sql = format!(
            "SELECT id, event_type, occurred_at_ms, task_sid, reservation_sid, worker_sid, task_queue_sid, \
             workflow_sid, CASE WHEN ?5 OR event_type = 'worker.activity.update' THEN body END, \
             CASE WHEN ?5 OR event_type = 'worker.activity.update' THEN payload_encoding END \
             FROM events INDEXED BY events_report \
             WHERE is_fact = 1 AND event_type IN {REPORT_TYPES} AND occurred_at_ms >= ?1 AND occurred_at_ms < ?2 \
             AND (?3 IS NULL OR workspace_sid = ?3) AND id <= ?4"
        );
        let mut statement = tx.prepare(&sql)?;
        let mut rows = statement.query(params![
            selection.start_ms,
            selection.end_ms,
            selection.workspace_sid,
            head.id,
            selection.read_channels
        ])?;
        while let Some(row) = rows.next()? {
            let event_id: i64 = row.get(0)?;
            let Some(kind) = Kind::from_event_type(row.get_ref(1)?.as_str()?) else { continue };
            let mut fact = ReportFact::new(event_id, kind, row.get(2)?);
            let names = &mut loaded.names;
            let mut sid = |i: usize| -> rusqlite::Result<Option<u32>> {
                Ok(row.get_ref(i)?.as_str_or_null()?.map(|s| names.intern(s)))
            };
            fact.task = sid(3)?;
            fact.reservation = sid(4)?;
            fact.worker = sid(5)?;
            fact.queue = sid(6)?;
            fact.workflow = sid(7)?;
            if let Some(stored) = row.get_ref(8)?.as_blob_or_null()? {
                // A body that does not decode contributes no activity fields (`verify` names it).
                if let Ok(body) = payload::decode(row.get_ref(9)?.as_str_or_null()?, stored) {
                    activity_fields(&mut fact, &body, &mut loaded.names, selection.read_channels);
                }
            }
            loaded.first_event_id = Some(loaded.first_event_id.map_or(event_id, |f: i64| f.min(event_id)));
            loaded.last_event_id = Some(loaded.last_event_id.map_or(event_id, |l: i64| l.max(event_id)));
            loaded.facts_in_window += 1;
            if loaded.facts_in_window.is_multiple_of(50_000) {
                progress(loaded.facts_in_window);
            }
            loaded.facts.push(fact);
        }
    }
    progress(loaded.facts_in_window);
    load_origins(&tx, selection, head.id, &mut loaded)?;
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

/// Adds, for tasks and reservations the window's accepts and cancels concern whose beginning
/// (`task.created`, `task-queue.entered`, `reservation.created`) lies before the window, those
/// earlier facts: a lifecycle cut by the window start still gets its true wait.
fn load_origins(
    tx: &Connection,
    selection: &Selection,
    head_id: i64,
    loaded: &mut Loaded,
) -> rusqlite::Result<()> {
    let mut created_tasks = HashSet::default();
    let mut entered = HashSet::default();
    let mut created_reservations = HashSet::default();
    for fact in &loaded.facts {
        match fact.kind {
            Kind::TaskCreated => drop(created_tasks.insert(fact.task)),
            Kind::TaskQueueEntered => drop(entered.insert(fact.task)),
            Kind::ReservationCreated => drop(created_reservations.insert(fact.reservation)),
            _ => {}
        }
    }
    let mut missing_tasks = HashSet::default();
    let mut missing_reservations = HashSet::default();
    for fact in &loaded.facts {
        if matches!(fact.kind, Kind::ReservationAccepted | Kind::TaskCanceled) {
            if let Some(task) = fact.task {
                if !created_tasks.contains(&Some(task)) || !entered.contains(&Some(task)) {
                    missing_tasks.insert(task);
                }
            }
        }
        if fact.kind == Kind::ReservationAccepted && !created_reservations.contains(&fact.reservation) {
            missing_reservations.extend(fact.reservation);
        }
    }
    let mut statement = tx.prepare(
        "SELECT e.id, e.event_type, e.occurred_at_ms, e.task_sid, e.reservation_sid, e.task_queue_sid \
         FROM sid_refs r JOIN events e ON e.id = r.event_id \
         WHERE r.sid_key = ?1 AND e.is_fact = 1 AND e.occurred_at_ms < ?2 AND e.id <= ?3 \
         AND e.event_type IN ('task.created', 'task-queue.entered', 'reservation.created') \
         AND (e.task_sid = ?4 OR e.reservation_sid = ?4)",
    )?;
    let lookups: Vec<String> = missing_tasks
        .into_iter()
        .chain(missing_reservations)
        .map(|n| loaded.names.text(n).to_string())
        .collect();
    for sid in lookups {
        let mut rows =
            statement.query(params![event_log::sid_key(&sid), selection.start_ms, head_id, sid])?;
        while let Some(row) = rows.next()? {
            let event_type: String = row.get(1)?;
            let Some(kind) = Kind::from_event_type(&event_type) else { continue };
            // A reservation lookup only wants the reservation's creation, a task lookup its origins.
            let reservation: Option<String> = row.get(4)?;
            if (kind == Kind::ReservationCreated) != (reservation.as_deref() == Some(sid.as_str())) {
                continue;
            }
            let mut fact = ReportFact::new(row.get(0)?, kind, row.get(2)?);
            let names = &mut loaded.names;
            fact.task = row.get::<_, Option<String>>(3)?.map(|s| names.intern(&s));
            fact.reservation = reservation.map(|s| names.intern(&s));
            fact.queue = row.get::<_, Option<String>>(5)?.map(|s| names.intern(&s));
            loaded.facts.push(fact);
        }
    }
    Ok(())
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
    // Flagged tasks are few; start from the flags and keep those whose task was active in the window.
    let from = format!(
        "FROM proj_flags f JOIN proj_tasks t ON t.task_sid = f.task_sid \
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
