//! The projections' SQL on the writer's connection: reading a task's facts back from the log,
//! reading and writing the fold state stored beside task and reservation rows, the worker
//! tables, and writing a task's changed rows one by one. The engine decides what to write;
//! this module only knows the tables.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::explain::ActivityChange;
use super::fact::Fact;
use super::fold::{
    self, AcceptAttempt, Flag, ReservationState, ReservationView, TaskFold, TaskView, TimelineEntry, Totals,
};
use crate::storage::event_log::sid_key;
use crate::storage::payload;
use taskrouter_protocol::stored_event;
use taskrouter_protocol::{OccurredAt, ReservationStatus, TimeSource, WebhookFacts};

/// The `events` columns a fact is rebuilt from (see [`fact_from_row`]).
pub(super) const FACT_COLUMNS: &str = "e.id, e.event_type, e.event_sid, e.account_sid, e.workspace_sid, \
    e.task_sid, e.reservation_sid, e.worker_sid, e.task_queue_sid, e.workflow_sid, e.occurred_at_ms, \
    e.occurred_at_raw, e.occurred_at_source, e.body, e.response_body, e.payload_encoding, e.endpoint, \
    e.received_at_ms";

/// The fact of one stored `events` row selected with [`FACT_COLUMNS`].
pub(super) fn fact_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Fact> {
    let id: i64 = row.get(0)?;
    let source = row.get_ref(12)?.as_str_or_null()?;
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
            source: if source == Some(TimeSource::Arrival.as_str()) {
                TimeSource::Arrival
            } else {
                TimeSource::TimestampMs
            },
        },
    };
    let encoding = row.get_ref(15)?.as_str_or_null()?;
    let body = payload::decode(encoding, row.get_ref(13)?.as_blob()?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(13, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    let response_body = row.get_ref(14)?.as_str_or_null()?;
    let endpoint = row.get_ref(16)?.as_str_or_null()?.unwrap_or_default();
    if stored_event::is_mapped(endpoint) {
        // Stored as the JSON received; mapped as at ingest.
        let params = stored_event::callback_params(endpoint, &body, row.get(17)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(13, rusqlite::types::Type::Blob, e.into())
        })?;
        return Ok(Fact::from_parts(id, &facts, Some(&params), response_body));
    }
    Ok(Fact::from_body(id, &facts, &body, response_body))
}

/// The facts of log rows `ids`, in the order given.
pub(super) fn read_facts_by_id(conn: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<Fact>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {FACT_COLUMNS} FROM events e WHERE e.id = ?1"))?;
    let mut facts = Vec::with_capacity(ids.len());
    for id in ids {
        facts.push(statement.query_row([id], fact_from_row)?);
    }
    Ok(facts)
}

/// The facts among log rows `from_id..to_id`, in log order.
pub(super) fn read_facts_between(conn: &Connection, from_id: i64, to_id: i64) -> rusqlite::Result<Vec<Fact>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {FACT_COLUMNS} FROM events e WHERE e.id >= ?1 AND e.id < ?2 AND e.is_fact = 1 ORDER BY e.id"
    ))?;
    let mut rows = statement.query(params![from_id, to_id])?;
    let mut facts = Vec::new();
    while let Some(row) = rows.next()? {
        facts.push(fact_from_row(row)?);
    }
    Ok(facts)
}

/// The id of the log's last row (0 for an empty log).
pub(super) fn last_event_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))
}

/// Secondary indexes of the projection tables that only pages read: a rebuild drops them while
/// it writes and creates them again, sorted in one pass, before it commits, which is cheaper
/// than keeping them up to date row by row. Indexes the rebuild's own statements use stay.
const INDEXES_BUILT_AFTER_REBUILD: [&str; 4] =
    ["proj_reservations_worker", "proj_reservations_attention", "proj_tasks_first", "proj_tasks_flagged"];

/// The triggers that keep `proj_task_status_counts` and `proj_task_routes` in step with
/// `proj_tasks` (migration 0008): a rebuild inserts every task once, so it drops them and
/// counts once at the end ([`RECOUNT_AFTER_REBUILD`]) instead of three upserts per task.
const TRIGGERS_REPLACED_BY_RECOUNT: [&str; 5] = [
    "proj_tasks_status_insert",
    "proj_tasks_status_update",
    "proj_tasks_routes_insert",
    "proj_tasks_queue_update",
    "proj_tasks_workflow_update",
];

/// What the triggers above leave after inserting every task into empty tables (the same
/// statements migration 0008 fills the tables with).
const RECOUNT_AFTER_REBUILD: [&str; 3] = [
    "INSERT INTO proj_task_status_counts (status, tasks) SELECT status, COUNT(*) FROM proj_tasks GROUP BY status",
    "INSERT INTO proj_task_routes (kind, sid, name, tasks) \
     SELECT 'queue', task_queue_sid, COALESCE(task_queue_name, ''), COUNT(*) FROM proj_tasks \
     WHERE task_queue_sid IS NOT NULL GROUP BY 2, 3",
    "INSERT INTO proj_task_routes (kind, sid, name, tasks) \
     SELECT 'workflow', workflow_sid, COALESCE(workflow_name, ''), COUNT(*) FROM proj_tasks \
     WHERE workflow_sid IS NOT NULL GROUP BY 2, 3",
];

/// Schema a rebuild sets aside while it writes (see [`set_aside_for_rebuild`]).
pub(super) struct SetAside {
    indexes: Vec<String>,
    triggers: Vec<String>,
}

/// Drops [`INDEXES_BUILT_AFTER_REBUILD`] and [`TRIGGERS_REPLACED_BY_RECOUNT`] (those that exist)
/// and returns what creates them again, for [`restore_after_rebuild`].
pub(super) fn set_aside_for_rebuild(conn: &Connection) -> rusqlite::Result<SetAside> {
    Ok(SetAside {
        indexes: drop_schema_objects(conn, "index", &INDEXES_BUILT_AFTER_REBUILD)?,
        triggers: drop_schema_objects(conn, "trigger", &TRIGGERS_REPLACED_BY_RECOUNT)?,
    })
}

fn drop_schema_objects(conn: &Connection, kind: &str, names: &[&str]) -> rusqlite::Result<Vec<String>> {
    let mut statements = Vec::new();
    for name in names {
        let definition: Option<String> = conn
            .query_row("SELECT sql FROM sqlite_master WHERE type = ?1 AND name = ?2", [kind, name], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(definition) = definition {
            conn.execute(&format!("DROP {kind} {name}"), [])?;
            statements.push(definition);
        }
    }
    Ok(statements)
}

/// Creates the indexes again and, if the triggers were set aside, fills the tables they keep
/// and creates them again.
pub(super) fn restore_after_rebuild(conn: &Connection, set_aside: &SetAside) -> rusqlite::Result<()> {
    for statement in &set_aside.indexes {
        conn.execute(statement, [])?;
    }
    if !set_aside.triggers.is_empty() {
        for statement in RECOUNT_AFTER_REBUILD {
            conn.execute(statement, [])?;
        }
    }
    for statement in &set_aside.triggers {
        conn.execute(statement, [])?;
    }
    Ok(())
}

/// Deletes every row of the projection table `table`.
pub(super) fn clear_table(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    conn.execute(&format!("DELETE FROM {table}"), []).map(|_| ())
}

/// Reads every page of the projection table `table` (not its indexes), which brings them
/// into the OS page cache.
pub(super) fn read_every_page(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    conn.query_row(&format!("SELECT count(*) FROM {table} NOT INDEXED"), [], |_| Ok(()))
}

/// Every fact of `task_sid` logged before row `before_id`, in log order.
pub(super) fn task_facts_before(
    conn: &Connection,
    task_sid: &str,
    before_id: i64,
) -> rusqlite::Result<Vec<Fact>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {FACT_COLUMNS} FROM sid_refs r JOIN events e ON e.id = r.event_id \
         WHERE r.sid_key = ?1 AND r.event_id < ?2 AND e.is_fact = 1 AND e.task_sid = ?3 ORDER BY e.id"
    ))?;
    let mut rows = statement.query(params![sid_key(task_sid), before_id, task_sid])?;
    let mut facts = Vec::new();
    while let Some(row) = rows.next()? {
        facts.push(fact_from_row(row)?);
    }
    Ok(facts)
}

/// The reservations (and their tasks) that `worker_sid` timed out or rejected shortly before
/// `at_ms`, whose outcome flags name the worker's next activity change.
pub(super) fn outcomes_explained_by_activity(
    conn: &Connection,
    worker_sid: &str,
    at_ms: i64,
) -> rusqlite::Result<Vec<(String, String)>> {
    // Deduplicated here: `DISTINCT` would make SQLite build a temporary B-tree on every call.
    let mut statement = conn.prepare_cached(
        "SELECT task_sid, reservation_sid FROM proj_worker_outcomes WHERE worker_sid = ?1 AND at_ms BETWEEN ?2 AND ?3",
    )?;
    let mut outcomes = statement
        .query_map(params![worker_sid, at_ms - fold::ACTIVITY_FOLLOW_WINDOW_MS, at_ms], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
    outcomes.sort_unstable();
    outcomes.dedup();
    Ok(outcomes)
}

pub(super) fn insert_worker_outcome(
    conn: &Connection,
    worker_sid: &str,
    at_ms: i64,
    task_sid: &str,
    reservation_sid: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO proj_worker_outcomes (worker_sid, at_ms, task_sid, reservation_sid) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![worker_sid, at_ms, task_sid, reservation_sid])?;
    Ok(())
}

pub(super) fn insert_worker_activity(
    conn: &Connection,
    worker_sid: &str,
    fact: &Fact,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO proj_worker_activity (worker_sid, started_at_ms, event_id, activity_sid, \
         activity_name, previous_activity_name, reported_previous_ms, event_type, worker_name) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        worker_sid,
        fact.occurred_at_ms,
        fact.event_id,
        fact.activity_sid,
        fact.activity_name,
        fact.previous_activity_name,
        fact.time_in_previous_activity_ms,
        fact.event_type,
        fact.worker_name
    ])?;
    Ok(())
}

/// A worker's row as stored: its name and current activity with the (time, log id) each was
/// taken from, so a later-arriving older fact never overrides a newer one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct StoredWorker {
    pub name: Option<String>,
    pub name_key: Option<(i64, i64)>,
    pub activity_sid: Option<String>,
    pub activity_name: Option<String>,
    pub activity_key: Option<(i64, i64)>,
}

fn pair(a: Option<i64>, b: Option<i64>) -> Option<(i64, i64)> {
    a.zip(b)
}

pub(super) fn read_worker(conn: &Connection, worker_sid: &str) -> rusqlite::Result<Option<StoredWorker>> {
    conn.prepare_cached(
        "SELECT name, name_at_ms, name_event_id, activity_sid, activity_name, activity_since_ms, \
         activity_event_id FROM proj_workers WHERE worker_sid = ?1",
    )?
    .query_row([worker_sid], |r| {
        Ok(StoredWorker {
            name: r.get(0)?,
            name_key: pair(r.get(1)?, r.get(2)?),
            activity_sid: r.get(3)?,
            activity_name: r.get(4)?,
            activity_key: pair(r.get(5)?, r.get(6)?),
        })
    })
    .optional()
}

pub(super) fn write_worker(
    conn: &Connection,
    worker_sid: &str,
    worker: &StoredWorker,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        // An upsert keeps the row where it is (a REPLACE moves it to a new rowid: two more pages).
        "INSERT INTO proj_workers (worker_sid, name, activity_sid, activity_name, activity_since_ms, \
         activity_event_id, name_at_ms, name_event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (worker_sid) DO UPDATE SET name = excluded.name, activity_sid = excluded.activity_sid, \
         activity_name = excluded.activity_name, activity_since_ms = excluded.activity_since_ms, \
         activity_event_id = excluded.activity_event_id, name_at_ms = excluded.name_at_ms, \
         name_event_id = excluded.name_event_id",
    )?
    .execute(params![
        worker_sid,
        worker.name,
        worker.activity_sid,
        worker.activity_name,
        worker.activity_key.map(|k| k.0),
        worker.activity_key.map(|k| k.1),
        worker.name_key.map(|k| k.0),
        worker.name_key.map(|k| k.1)
    ])?;
    Ok(())
}

/// The last log row the projections have taken in (`None`: never recorded, so every row is:
/// the projections were written in the append's transaction by older versions).
pub(super) fn projected_through(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    meta_value(conn, "projected_through")
}

pub(super) fn set_projected_through(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    set_meta_value(conn, "projected_through", id)
}

pub(super) fn latest_event_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    meta_value(conn, "latest_event_ms")
}

pub(super) fn set_latest_event_ms(conn: &Connection, at_ms: i64) -> rusqlite::Result<()> {
    set_meta_value(conn, "latest_event_ms", at_ms)
}

fn meta_value(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT value FROM proj_meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

fn set_meta_value(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO proj_meta (key, value) VALUES (?1, ?2)")?
        .execute(rusqlite::params![key, value])?;
    Ok(())
}

fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("ids serialise")
}

/// The INSERT of a reservation row, which both statements that write one begin with; its
/// values are [`reservation_values`] and the fold state.
macro_rules! insert_reservation {
    () => {
        "INSERT INTO proj_reservations (reservation_sid, task_sid, worker_sid, worker_name, status, \
         created_at_ms, answered_at_ms, finished_at_ms, pending_ms, timeout_ms, created_event_id, \
         callback_event_id, callback_answer, outcome, fold_state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
         ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    };
}

/// A reservation row's values, in the order of [`insert_reservation!`]; `status` is
/// `r.status.as_str()`, the text its column holds.
fn reservation_values<'a>(r: &'a ReservationView, status: &'a &'static str) -> [&'a dyn rusqlite::ToSql; 14] {
    [
        &r.reservation_sid,
        &r.task_sid,
        &r.worker_sid,
        &r.worker_name,
        status,
        &r.created_at_ms,
        &r.answered_at_ms,
        &r.finished_at_ms,
        &r.pending_ms,
        &r.timeout_ms,
        &r.created_event_id,
        &r.callback_event_id,
        &r.callback_answer,
        &r.outcome,
    ]
}

/// Inserts a reservation row that should not exist yet; `false`, having changed nothing, when
/// one with its Sid does.
fn insert_new_reservation(conn: &Connection, r: &ReservationView, extras: &str) -> rusqlite::Result<bool> {
    let status = r.status.as_str();
    let mut values = reservation_values(r, &status).to_vec();
    values.push(&extras);
    match conn.prepare_cached(insert_reservation!())?.execute(&values[..]) {
        Ok(_) => Ok(true),
        // SQLite undoes just the failed statement; the transaction goes on.
        Err(error) if error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// A task's fold state as stored beside its row (its attributes are in their own column).
#[derive(Serialize)]
struct StoredTaskState<'a> {
    fold: &'a TaskFold,
    totals: &'a Totals,
}

#[derive(Deserialize)]
struct ReadTaskState {
    fold: TaskFold,
    totals: Totals,
}

/// The JSON stored in `proj_tasks.fold_state`.
pub(super) fn task_state_json(fold: &TaskFold, totals: &Totals) -> String {
    serde_json::to_string(&StoredTaskState { fold, totals }).expect("a task state serialises")
}

/// A task's stored fold state: `None` without a row, `Some(None)` with a row whose state
/// cannot be read (written by an older version, or damaged).
pub(super) fn read_task_state(
    conn: &Connection,
    task_sid: &str,
) -> rusqlite::Result<Option<Option<(TaskFold, Totals)>>> {
    let row: Option<(Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT fold_state, attributes FROM proj_tasks WHERE task_sid = ?1")?
        .query_row([task_sid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.map(|(state, attributes)| {
        let state: ReadTaskState = serde_json::from_str(state.as_deref()?).ok()?;
        let mut fold = state.fold;
        fold.attributes = attributes.map(Arc::from);
        Some((fold, state.totals))
    }))
}

/// What a reservation's fold state holds beyond its row's columns.
#[derive(Serialize, Deserialize)]
struct ReservationExtras {
    ordinal: i64,
    accept_attempt: Option<AcceptAttempt>,
    outcome_event_id: Option<i64>,
    outcome_at_ms: Option<i64>,
    missing_created_flagged: bool,
    created_min_ms: Option<i64>,
    first_placement_ms: i64,
}

fn reservation_extras_json(state: &ReservationState) -> String {
    serde_json::to_string(&ReservationExtras {
        ordinal: state.ordinal,
        accept_attempt: state.accept_attempt.clone(),
        outcome_event_id: state.outcome_event_id,
        outcome_at_ms: state.outcome_at_ms,
        missing_created_flagged: state.missing_created_flagged,
        created_min_ms: state.created_min_ms,
        first_placement_ms: state.first_placement_ms,
    })
    .expect("a reservation state serialises")
}

/// A reservation's row: the task it is filed under and its fold state (`None` when that cannot
/// be read: its stored state is missing or damaged, or its status is not one TaskRouter gives,
/// so the task is folded again from the log).
pub(super) fn read_reservation(
    conn: &Connection,
    sid: &str,
) -> rusqlite::Result<Option<(String, Option<ReservationState>)>> {
    conn.prepare_cached(
        "SELECT reservation_sid, task_sid, worker_sid, worker_name, status, created_at_ms, answered_at_ms, \
         finished_at_ms, pending_ms, timeout_ms, created_event_id, callback_event_id, callback_answer, outcome, \
         fold_state FROM proj_reservations WHERE reservation_sid = ?1",
    )?
    .query_row([sid], |r| {
        let task_sid: String = r.get(1)?;
        let Some(status) = ReservationStatus::parse(r.get_ref(4)?.as_str()?) else {
            return Ok((task_sid, None));
        };
        let view = ReservationView {
            reservation_sid: r.get(0)?,
            task_sid,
            worker_sid: r.get(2)?,
            worker_name: r.get(3)?,
            status,
            created_at_ms: r.get(5)?,
            answered_at_ms: r.get(6)?,
            finished_at_ms: r.get(7)?,
            pending_ms: r.get(8)?,
            timeout_ms: r.get(9)?,
            created_event_id: r.get(10)?,
            callback_event_id: r.get(11)?,
            callback_answer: r.get(12)?,
            outcome: r.get(13)?,
        };
        let extras: Option<String> = r.get(14)?;
        let extras = extras.and_then(|json| serde_json::from_str::<ReservationExtras>(&json).ok());
        let task_sid = view.task_sid.clone();
        Ok((
            task_sid,
            extras.map(|e| ReservationState {
                view,
                ordinal: e.ordinal,
                accept_attempt: e.accept_attempt,
                outcome_event_id: e.outcome_event_id,
                outcome_at_ms: e.outcome_at_ms,
                missing_created_flagged: e.missing_created_flagged,
                created_min_ms: e.created_min_ms,
                first_placement_ms: e.first_placement_ms,
            }),
        ))
    })
    .optional()
}

/// The Sids of the task's rescinded reservations, as written.
pub(super) fn rescinded_reservations(conn: &Connection, task_sid: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT reservation_sid FROM proj_reservations WHERE task_sid = ?1 AND status = 'rescinded'",
    )?
    .query_map([task_sid], |r| r.get(0))?
    .collect()
}

/// The first activity change of `worker_sid` within the follow window after `at_ms`.
pub(super) fn next_activity(
    conn: &Connection,
    worker_sid: Option<&str>,
    at_ms: i64,
) -> rusqlite::Result<Option<ActivityChange>> {
    let Some(worker_sid) = worker_sid else { return Ok(None) };
    conn.prepare_cached(
        "SELECT event_id, started_at_ms, worker_name, activity_name, previous_activity_name \
         FROM proj_worker_activity WHERE worker_sid = ?1 AND started_at_ms BETWEEN ?2 AND ?3 \
         AND event_type = 'worker.activity.update' ORDER BY started_at_ms, event_id LIMIT 1",
    )?
    .query_row(params![worker_sid, at_ms, at_ms + fold::ACTIVITY_FOLLOW_WINDOW_MS], |r| {
        Ok(ActivityChange {
            event_id: r.get(0)?,
            occurred_at_ms: r.get(1)?,
            worker_name: r.get(2)?,
            activity_name: r.get(3)?,
            previous_activity_name: r.get(4)?,
        })
    })
    .optional()
}

/// Deletes every row of the task in the tables it owns (before they are written anew).
pub(super) fn delete_task_rows(conn: &Connection, task_sid: &str) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM proj_reservations WHERE task_sid = ?1",
        "DELETE FROM proj_timeline WHERE task_sid = ?1",
        "DELETE FROM proj_flags WHERE task_sid = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([task_sid])?;
    }
    Ok(())
}

/// Writes the task's row; `inserting` when it has none yet.
pub(super) fn write_task(
    conn: &Connection,
    task: &TaskView,
    flag_kinds: &str,
    state: &str,
    inserting: bool,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        // An upsert, not a REPLACE: the status-count triggers (migration 0008) see updates.
        "INSERT INTO proj_tasks (task_sid, status, workflow_sid, workflow_name, task_queue_sid, \
         task_queue_name, priority, attributes, created_at_ms, first_reserved_at_ms, assigned_at_ms, \
         finished_at_ms, cancel_cause, deleted, reservation_count, transfer_count, first_fact_at_ms, \
         last_fact_at_ms, fact_count, flag_kinds, fold_state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
         ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) \
         ON CONFLICT (task_sid) DO UPDATE SET status = excluded.status, \
         workflow_sid = excluded.workflow_sid, workflow_name = excluded.workflow_name, \
         task_queue_sid = excluded.task_queue_sid, task_queue_name = excluded.task_queue_name, \
         priority = excluded.priority, attributes = excluded.attributes, \
         created_at_ms = excluded.created_at_ms, first_reserved_at_ms = excluded.first_reserved_at_ms, \
         assigned_at_ms = excluded.assigned_at_ms, finished_at_ms = excluded.finished_at_ms, \
         cancel_cause = excluded.cancel_cause, deleted = excluded.deleted, \
         reservation_count = excluded.reservation_count, transfer_count = excluded.transfer_count, \
         last_fact_at_ms = excluded.last_fact_at_ms, \
         fact_count = excluded.fact_count, flag_kinds = excluded.flag_kinds, fold_state = excluded.fold_state",
    )?
    .execute(params![
        task.task_sid,
        task.status.as_str(),
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
        flag_kinds,
        state
    ])?;
    // Apart, and only when it changed (a late delivery of an earlier fact): SQLite rewrites an
    // index whose column an UPDATE sets even to the same value, and `proj_tasks_first` would
    // then cost a page on every write of a task. A first write inserted it as it is.
    if !inserting {
        conn.prepare_cached(
            "UPDATE proj_tasks SET first_fact_at_ms = ?2 WHERE task_sid = ?1 AND first_fact_at_ms <> ?2",
        )?
        .execute(params![task.task_sid, task.first_fact_at_ms])?;
    }
    Ok(())
}

/// Writes a reservation's row. `inserting` when its task has none yet: one plain INSERT, unless
/// its Sid is filed under another task (malformed input), which the statements below move.
pub(super) fn write_reservation(
    conn: &Connection,
    state: &ReservationState,
    inserting: bool,
) -> rusqlite::Result<()> {
    let r = &state.view;
    let extras = reservation_extras_json(state);
    if inserting && insert_new_reservation(conn, r, &extras)? {
        return Ok(());
    }
    // An upsert that leaves the indexed columns (task, worker, creation time) alone, and a
    // second statement that sets them only when they changed: a REPLACE would delete and
    // insert the row under a new rowid and rewrite all four indexes, a page each.
    conn.prepare_cached(
        "UPDATE proj_reservations SET task_sid = ?2, worker_sid = ?3, created_at_ms = ?4 \
         WHERE reservation_sid = ?1 AND (task_sid IS NOT ?2 OR worker_sid IS NOT ?3 OR created_at_ms IS NOT ?4)",
    )?
    .execute(params![r.reservation_sid, r.task_sid, r.worker_sid, r.created_at_ms])?;
    let status = r.status.as_str();
    let mut values = reservation_values(r, &status).to_vec();
    values.push(&extras);
    conn.prepare_cached(concat!(
        insert_reservation!(),
        " ON CONFLICT (reservation_sid) DO UPDATE SET worker_name = excluded.worker_name, \
         status = excluded.status, answered_at_ms = excluded.answered_at_ms, \
         finished_at_ms = excluded.finished_at_ms, pending_ms = excluded.pending_ms, \
         timeout_ms = excluded.timeout_ms, created_event_id = excluded.created_event_id, \
         callback_event_id = excluded.callback_event_id, callback_answer = excluded.callback_answer, \
         outcome = excluded.outcome, fold_state = excluded.fold_state"
    ))?
    .execute(&values[..])?;
    Ok(())
}

/// Writes timeline entries; `inserting` when the task has none at their positions.
pub(super) fn write_timeline<'a>(
    conn: &Connection,
    task_sid: &str,
    entries: impl Iterator<Item = &'a TimelineEntry>,
    inserting: bool,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(if inserting {
        "INSERT INTO proj_timeline (task_sid, position, occurred_at_ms, time_source, kind, \
         reservation_sid, worker_sid, summary, evidence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    } else {
        "INSERT OR REPLACE INTO proj_timeline (task_sid, position, occurred_at_ms, time_source, kind, \
         reservation_sid, worker_sid, summary, evidence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    })?;
    for e in entries {
        insert.execute(params![
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

/// Flags are stored by position: the missing `task.created` at 0, then the flags raised while
/// folding, then each reservation's outcome flag, so that reading them by position gives the
/// fold's order and each can be written alone.
const OUTCOME_FLAGS_FROM: i64 = 1 << 40;

pub(super) fn step_flag_position(index: i64) -> i64 {
    1 + index
}

pub(super) fn outcome_flag_position(ordinal: i64) -> i64 {
    OUTCOME_FLAGS_FROM + ordinal
}

pub(super) fn write_flag(
    conn: &Connection,
    task_sid: &str,
    position: i64,
    flag: &Flag,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO proj_flags (task_sid, position, kind, reservation_sid, explanation, evidence) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![task_sid, position, flag.kind, flag.reservation_sid, flag.explanation, json_ids(&flag.evidence)])?;
    Ok(())
}

pub(super) fn delete_flag(conn: &Connection, task_sid: &str, position: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM proj_flags WHERE task_sid = ?1 AND position = ?2")?
        .execute(params![task_sid, position])?;
    Ok(())
}

/// Deletes the step flags from index `from` on.
pub(super) fn delete_step_flags_from(conn: &Connection, task_sid: &str, from: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM proj_flags WHERE task_sid = ?1 AND position >= ?2 AND position < ?3")?
        .execute(params![task_sid, step_flag_position(from), OUTCOME_FLAGS_FROM])?;
    Ok(())
}

/// Deletes the outcome flags of reservations from ordinal `from` on.
pub(super) fn delete_outcome_flags_from(
    conn: &Connection,
    task_sid: &str,
    from: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM proj_flags WHERE task_sid = ?1 AND position >= ?2")?
        .execute(params![task_sid, outcome_flag_position(from)])?;
    Ok(())
}
