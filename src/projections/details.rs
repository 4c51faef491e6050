//! One task's or worker's details, and the task list, read from the projection tables (never
//! written here): what the task and worker pages, the JSON API and `timeline` show.
//! The overdue flag is computed here, against the latest fact time in the log.

use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use taskrouter_protocol::{ReservationStatus, TaskStatus};

use super::fold::{self, Flag, ReservationView, TaskView, TimelineEntry};

/// A task with everything known about it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDetail {
    pub task: TaskView,
    pub reservations: Vec<ReservationView>,
    pub timeline: Vec<TimelineEntry>,
    pub flags: Vec<Flag>,
    /// The latest fact time in the log, which "overdue" is judged against.
    pub as_of_ms: Option<i64>,
}

/// Filters of the task list; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<String>,
    pub flag: Option<String>,
    pub queue: Option<String>,
    /// A workflow's SID or name.
    pub workflow: Option<String>,
    pub worker: Option<String>,
    /// Tasks first seen at or after this epoch ms.
    pub since: Option<i64>,
    /// Tasks first seen before this epoch ms.
    pub until: Option<i64>,
    /// Keyset cursor from a previous page (`next_before`).
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// One page of tasks, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct TaskPage {
    pub tasks: Vec<TaskSummary>,
    pub next_before: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskSummary {
    #[serde(flatten)]
    pub task: TaskView,
    pub flags: Vec<String>,
}

fn ids(text: &str) -> Vec<i64> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The status in the row's `status` column, read with `parse`; a text it does not know (a row
/// written by something else, or damaged) is a decoding error, as a column of the wrong type is.
pub(crate) fn status_column<T>(
    row: &SqliteRow,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> Result<T, sqlx::Error> {
    let text: &str = row.try_get("status")?;
    parse(text).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "status".into(),
        source: format!("{text:?} is not a {what} status").into(),
    })
}

pub(crate) fn to_task(row: &SqliteRow) -> Result<TaskView, sqlx::Error> {
    Ok(TaskView {
        task_sid: row.try_get("task_sid")?,
        status: status_column(row, TaskStatus::parse, "task")?,
        workflow_sid: row.try_get("workflow_sid")?,
        workflow_name: row.try_get("workflow_name")?,
        task_queue_sid: row.try_get("task_queue_sid")?,
        task_queue_name: row.try_get("task_queue_name")?,
        priority: row.try_get("priority")?,
        attributes: row.try_get("attributes")?,
        created_at_ms: row.try_get("created_at_ms")?,
        first_reserved_at_ms: row.try_get("first_reserved_at_ms")?,
        assigned_at_ms: row.try_get("assigned_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        cancel_cause: row.try_get("cancel_cause")?,
        deleted: row.try_get("deleted")?,
        reservation_count: row.try_get("reservation_count")?,
        transfer_count: row.try_get("transfer_count")?,
        first_fact_at_ms: row.try_get("first_fact_at_ms")?,
        last_fact_at_ms: row.try_get("last_fact_at_ms")?,
        fact_count: row.try_get("fact_count")?,
    })
}

pub(crate) fn to_reservation(row: &SqliteRow) -> Result<ReservationView, sqlx::Error> {
    Ok(ReservationView {
        reservation_sid: row.try_get("reservation_sid")?,
        task_sid: row.try_get("task_sid")?,
        worker_sid: row.try_get("worker_sid")?,
        worker_name: row.try_get("worker_name")?,
        status: status_column(row, ReservationStatus::parse, "reservation")?,
        created_at_ms: row.try_get("created_at_ms")?,
        answered_at_ms: row.try_get("answered_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        pending_ms: row.try_get("pending_ms")?,
        timeout_ms: row.try_get("timeout_ms")?,
        created_event_id: row.try_get("created_event_id")?,
        callback_event_id: row.try_get("callback_event_id")?,
        callback_answer: row.try_get("callback_answer")?,
        outcome: row.try_get("outcome")?,
    })
}

/// The occurrence time of the latest fact in the log, by TaskRouter's clock.
///
/// # Errors
/// Any database error.
pub async fn latest_fact_ms(pool: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM proj_meta WHERE key = 'latest_event_ms'").fetch_optional(pool).await
}

/// One task with its reservations, timeline and flags (overdue ones included).
///
/// # Errors
/// Any database error.
pub async fn task_detail(pool: &SqlitePool, task_sid: &str) -> Result<Option<TaskDetail>, sqlx::Error> {
    let Some(row) = sqlx::query("SELECT * FROM proj_tasks WHERE task_sid = ?1")
        .bind(task_sid)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let task = to_task(&row)?;
    let reservations = sqlx::query(
        "SELECT * FROM proj_reservations WHERE task_sid = ?1 ORDER BY created_at_ms IS NULL, created_at_ms, \
         reservation_sid",
    )
    .bind(task_sid)
    .fetch_all(pool)
    .await?
    .iter()
    .map(to_reservation)
    .collect::<Result<Vec<_>, _>>()?;
    let timeline = sqlx::query("SELECT * FROM proj_timeline WHERE task_sid = ?1 ORDER BY position")
        .bind(task_sid)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| {
            Ok(TimelineEntry {
                position: row.try_get("position")?,
                occurred_at_ms: row.try_get("occurred_at_ms")?,
                time_source: row.try_get("time_source")?,
                kind: row.try_get("kind")?,
                reservation_sid: row.try_get("reservation_sid")?,
                worker_sid: row.try_get("worker_sid")?,
                summary: row.try_get("summary")?,
                evidence: ids(&row.try_get::<String, _>("evidence")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let mut flags = sqlx::query("SELECT * FROM proj_flags WHERE task_sid = ?1 ORDER BY position")
        .bind(task_sid)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Flag {
                kind: row.try_get("kind")?,
                reservation_sid: row.try_get("reservation_sid")?,
                explanation: row.try_get("explanation")?,
                evidence: ids(&row.try_get::<String, _>("evidence")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let as_of_ms = latest_fact_ms(pool).await?;
    if let Some(as_of) = as_of_ms {
        flags.extend(reservations.iter().filter_map(|r| fold::overdue_flag(r, as_of)));
    }
    Ok(Some(TaskDetail { task, reservations, timeline, flags, as_of_ms }))
}

/// A page of tasks, newest first by when they were first seen.
///
/// # Errors
/// Any database error.
pub async fn list_tasks(pool: &SqlitePool, filter: &TaskFilter) -> Result<TaskPage, sqlx::Error> {
    let as_of = latest_fact_ms(pool).await?.unwrap_or(i64::MIN);
    let overdue =
        "EXISTS (SELECT 1 FROM proj_reservations r WHERE r.task_sid = t.task_sid AND r.status = 'pending' \
                   AND r.created_at_ms IS NOT NULL AND ?1 - r.created_at_ms > r.timeout_ms)";
    let mut sql = format!("SELECT t.*, {overdue} AS overdue FROM proj_tasks t WHERE 1 = 1");
    if filter.status.is_some() {
        sql.push_str(" AND t.status = ?2");
    }
    match filter.flag.as_deref() {
        Some("overdue") => sql.push_str(&format!(" AND {overdue}")),
        Some(_) => sql.push_str(" AND instr(t.flag_kinds, ',' || ?3 || ',') > 0"),
        None => {}
    }
    if filter.queue.is_some() {
        sql.push_str(" AND (t.task_queue_sid = ?4 OR t.task_queue_name = ?4)");
    }
    if filter.worker.is_some() {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM proj_reservations w WHERE w.task_sid = t.task_sid \
             AND (w.worker_sid = ?5 OR w.worker_name = ?5))",
        );
    }
    if filter.since.is_some() {
        sql.push_str(" AND t.first_fact_at_ms >= ?6");
    }
    if filter.until.is_some() {
        sql.push_str(" AND t.first_fact_at_ms < ?7");
    }
    if filter.before.is_some() {
        sql.push_str(" AND (t.first_fact_at_ms < ?8 OR (t.first_fact_at_ms = ?8 AND t.task_sid < ?9))");
    }
    if filter.workflow.is_some() {
        sql.push_str(" AND (t.workflow_sid = ?11 OR t.workflow_name = ?11)");
    }
    sql.push_str(" ORDER BY t.first_fact_at_ms DESC, t.task_sid DESC LIMIT ?10");
    let limit = filter.limit.clamp(1, 500);
    let rows = sqlx::query(&sql)
        .bind(as_of)
        .bind(&filter.status)
        .bind(&filter.flag)
        .bind(&filter.queue)
        .bind(&filter.worker)
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.before.as_ref().map(|b| b.0))
        .bind(filter.before.as_ref().map(|b| b.1.clone()))
        .bind(i64::from(limit))
        .bind(&filter.workflow)
        .fetch_all(pool)
        .await?;
    let mut tasks = Vec::with_capacity(rows.len());
    for row in &rows {
        let kinds: String = row.try_get("flag_kinds")?;
        let mut flags: Vec<String> = kinds.split(',').filter(|k| !k.is_empty()).map(str::to_string).collect();
        if row.try_get::<bool, _>("overdue")? {
            flags.push("overdue".into());
        }
        tasks.push(TaskSummary { task: to_task(row)?, flags });
    }
    let next_before = (tasks.len() == limit as usize)
        .then(|| tasks.last().map(|t| format!("{}:{}", t.task.first_fact_at_ms, t.task.task_sid)))
        .flatten();
    Ok(TaskPage { tasks, next_before })
}

/// Parses a `next_before` cursor (`MS:TaskSid`, or just `MS`).
pub fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    match raw.split_once(':') {
        Some((ms, sid)) => Some((ms.parse().ok()?, sid.to_string())),
        // A bare time includes every task first seen at that millisecond on the next page.
        None => Some((raw.parse::<i64>().ok()?.checked_add(1)?, String::new())),
    }
}

/// One stretch of a worker's activity.
#[derive(Debug, Clone, Serialize)]
pub struct ActivitySpan {
    pub activity_sid: Option<String>,
    pub activity_name: Option<String>,
    pub started_at_ms: i64,
    /// Until the next change; `None` for the current activity.
    pub duration_ms: Option<i64>,
    /// What TaskRouter reported for the previous stretch (`WorkerTimeInPreviousActivityMs`).
    pub reported_previous_ms: Option<i64>,
    pub event_id: i64,
}

/// A worker: name, current activity and its activity history with durations.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerDetail {
    pub worker_sid: String,
    pub name: Option<String>,
    pub activity_name: Option<String>,
    pub activity_since_ms: Option<i64>,
    pub history: Vec<ActivitySpan>,
}

/// One worker with its activity history, oldest first.
///
/// # Errors
/// Any database error.
pub async fn worker_detail(pool: &SqlitePool, worker_sid: &str) -> Result<Option<WorkerDetail>, sqlx::Error> {
    let Some(row) = sqlx::query("SELECT * FROM proj_workers WHERE worker_sid = ?1")
        .bind(worker_sid)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT * FROM proj_worker_activity WHERE worker_sid = ?1 ORDER BY started_at_ms, event_id LIMIT 1000",
    )
    .bind(worker_sid)
    .fetch_all(pool)
    .await?;
    let mut history: Vec<ActivitySpan> = Vec::with_capacity(rows.len());
    for row in &rows {
        let started: i64 = row.try_get("started_at_ms")?;
        if let Some(previous) = history.last_mut() {
            previous.duration_ms = Some(started - previous.started_at_ms);
        }
        history.push(ActivitySpan {
            activity_sid: row.try_get("activity_sid")?,
            activity_name: row.try_get("activity_name")?,
            started_at_ms: started,
            duration_ms: None,
            reported_previous_ms: row.try_get("reported_previous_ms")?,
            event_id: row.try_get("event_id")?,
        });
    }
    Ok(Some(WorkerDetail {
        worker_sid: row.try_get("worker_sid")?,
        name: row.try_get("name")?,
        activity_name: row.try_get("activity_name")?,
        activity_since_ms: row.try_get("activity_since_ms")?,
        history,
    }))
}

fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
}

/// The `timeline` command's text: the task, its timeline with evidence row ids, its
/// reservations and its flags.
pub fn render_text(detail: &TaskDetail) -> String {
    use std::fmt::Write;
    let task = &detail.task;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Task {}  status {}{}  queue {}  workflow {}  reservations {}",
        task.task_sid,
        task.status,
        task.cancel_cause.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        task.task_queue_name.as_deref().or(task.task_queue_sid.as_deref()).unwrap_or("?"),
        task.workflow_name.as_deref().or(task.workflow_sid.as_deref()).unwrap_or("?"),
        task.reservation_count
    );
    let _ = writeln!(out, "\nTimeline:");
    for entry in &detail.timeline {
        let _ = writeln!(
            out,
            "  {}{}  {:<26} {}  [log {}]",
            clock(entry.occurred_at_ms),
            if entry.time_source == "arrival" { "*" } else { " " },
            entry.kind,
            entry.summary,
            entry.evidence.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    if detail.timeline.iter().any(|e| e.time_source == "arrival") {
        let _ = writeln!(out, "  (* our arrival time: assignment callbacks carry no timestamp)");
    }
    let _ = writeln!(out, "\nReservations:");
    for r in &detail.reservations {
        let _ = writeln!(
            out,
            "  {} {:<10} {:<10} pending {} of {} s  answered {}",
            r.reservation_sid,
            r.worker_name.as_deref().or(r.worker_sid.as_deref()).unwrap_or("?"),
            r.status,
            r.pending_ms.map_or("?".to_string(), |p| format!("{:.1} s", p as f64 / 1000.0)),
            r.timeout_ms / 1000,
            r.callback_answer.as_deref().unwrap_or("(no assignment callback)")
        );
    }
    if !detail.flags.is_empty() {
        let _ = writeln!(out, "\nFlags:");
        for flag in &detail.flags {
            let _ = writeln!(
                out,
                "  [{}] {}  (evidence: log {})",
                flag.kind,
                flag.explanation,
                flag.evidence.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            );
        }
    }
    out
}
