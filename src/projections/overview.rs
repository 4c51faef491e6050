//! Read queries over the projection tables for the lifecycle pages (never writes): tasks by
//! status, recent flags, timed-out and overdue reservations, and workers with their reservation
//! statistics.

use serde::Serialize;
use sqlx::{Row, SqlitePool};
use taskrouter_protocol::{ReservationStatus, TaskStatus};

use super::details::{latest_fact_ms, status_column, to_reservation};
use super::fold::{self, ReservationView};

/// How many tasks are in each status now.
///
/// # Errors
/// Any database error; a status that is not a task's is a decoding error.
pub async fn tasks_by_status(pool: &SqlitePool) -> Result<Vec<(TaskStatus, i64)>, sqlx::Error> {
    sqlx::query("SELECT status, tasks FROM proj_task_status_counts ORDER BY tasks DESC, status")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| Ok((status_column(row, TaskStatus::parse, "task")?, row.try_get("tasks")?)))
        .collect()
}

/// A flag with the task it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct RecentFlag {
    pub task_sid: String,
    pub kind: String,
    pub reservation_sid: Option<String>,
    pub explanation: String,
    pub evidence: Vec<i64>,
    pub at_ms: i64,
}

/// The flags of the most recently active tasks, newest first.
///
/// # Errors
/// Any database error.
pub async fn recent_flags(pool: &SqlitePool, limit: u32) -> Result<Vec<RecentFlag>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT f.task_sid, f.kind, f.reservation_sid, f.explanation, f.evidence, t.last_fact_at_ms \
         FROM proj_tasks t JOIN proj_flags f ON f.task_sid = t.task_sid \
         WHERE t.flag_kinds != ',' AND t.flag_kinds != '' \
         ORDER BY t.last_fact_at_ms DESC, f.position LIMIT ?1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecentFlag {
                task_sid: row.try_get("task_sid")?,
                kind: row.try_get("kind")?,
                reservation_sid: row.try_get("reservation_sid")?,
                explanation: row.try_get("explanation")?,
                evidence: serde_json::from_str(&row.try_get::<String, _>("evidence")?).unwrap_or_default(),
                at_ms: row.try_get("last_fact_at_ms")?,
            })
        })
        .collect()
}

/// A reservation that timed out, or is pending past its timeout, with why.
#[derive(Debug, Clone, Serialize)]
pub struct TimedOut {
    pub reservation: ReservationView,
    pub task_queue: Option<String>,
    /// `timeout` or `overdue`.
    pub kind: String,
    pub explanation: String,
    pub evidence: Vec<i64>,
}

/// Every timed-out or overdue reservation, newest first (at most `limit`).
///
/// # Errors
/// Any database error.
pub async fn timeouts(pool: &SqlitePool, limit: u32) -> Result<Vec<TimedOut>, sqlx::Error> {
    let as_of = latest_fact_ms(pool).await?.unwrap_or(i64::MIN);
    let rows = sqlx::query(
        "SELECT r.*, COALESCE(t.task_queue_name, t.task_queue_sid) AS queue, \
                (SELECT f.explanation FROM proj_flags f WHERE f.task_sid = r.task_sid AND f.kind = 'timeout' \
                   AND f.reservation_sid = r.reservation_sid LIMIT 1) AS flag_explanation, \
                (SELECT f.evidence FROM proj_flags f WHERE f.task_sid = r.task_sid AND f.kind = 'timeout' \
                   AND f.reservation_sid = r.reservation_sid LIMIT 1) AS flag_evidence \
         FROM proj_reservations r LEFT JOIN proj_tasks t ON t.task_sid = r.task_sid \
         WHERE (r.status = 'timeout' OR r.status = 'pending') \
           AND (r.status = 'timeout' OR (r.created_at_ms IS NOT NULL AND ?1 - r.created_at_ms > r.timeout_ms)) \
         ORDER BY r.created_at_ms DESC LIMIT ?2",
    )
    .bind(as_of)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let reservation = to_reservation(row)?;
        let (kind, explanation, evidence) = if reservation.status == ReservationStatus::Pending {
            let flag = fold::overdue_flag(&reservation, as_of);
            let (explanation, evidence) = flag.map(|f| (f.explanation, f.evidence)).unwrap_or_default();
            ("overdue".to_string(), explanation, evidence)
        } else {
            let explanation: Option<String> = row.try_get("flag_explanation")?;
            let evidence: Option<String> = row.try_get("flag_evidence")?;
            (
                "timeout".to_string(),
                explanation.unwrap_or_else(|| describe_timeout(&reservation)),
                evidence.and_then(|e| serde_json::from_str(&e).ok()).unwrap_or_default(),
            )
        };
        found.push(TimedOut { task_queue: row.try_get("queue")?, reservation, kind, explanation, evidence });
    }
    Ok(found)
}

/// A fallback explanation built from the reservation alone.
fn describe_timeout(r: &ReservationView) -> String {
    format!(
        "pending {} against a {} s timeout; the assignment callback was answered {}",
        r.pending_ms.map_or("?".to_string(), |ms| format!("{:.0} s", ms as f64 / 1000.0)),
        r.timeout_ms / 1000,
        r.callback_answer.as_deref().unwrap_or("(no callback recorded)")
    )
}

/// A worker with what it did with its reservations.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSummary {
    pub worker_sid: String,
    pub name: Option<String>,
    pub activity_name: Option<String>,
    pub activity_since_ms: Option<i64>,
    pub reservations: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub timeouts: i64,
    /// Mean time from reservation to accept, over accepted reservations.
    pub mean_accept_ms: Option<i64>,
    pub max_accept_ms: Option<i64>,
}

const WORKER_STATS: &str = "SELECT w.worker_sid, w.name, w.activity_name, w.activity_since_ms, \
    COUNT(r.reservation_sid) AS reservations, \
    COALESCE(SUM(r.status IN ('accepted', 'completed', 'wrapping')), 0) AS accepted, \
    COALESCE(SUM(r.status = 'rejected'), 0) AS rejected, \
    COALESCE(SUM(r.status = 'timeout'), 0) AS timeouts, \
    CAST(AVG(CASE WHEN r.status IN ('accepted', 'completed', 'wrapping') AND r.answered_at_ms IS NOT NULL \
        AND r.created_at_ms IS NOT NULL THEN r.answered_at_ms - r.created_at_ms END) AS INTEGER) AS mean_accept_ms, \
    MAX(CASE WHEN r.status IN ('accepted', 'completed', 'wrapping') AND r.answered_at_ms IS NOT NULL \
        AND r.created_at_ms IS NOT NULL THEN r.answered_at_ms - r.created_at_ms END) AS max_accept_ms \
    FROM proj_workers w LEFT JOIN proj_reservations r ON r.worker_sid = w.worker_sid";

fn to_worker_summary(row: &sqlx::sqlite::SqliteRow) -> Result<WorkerSummary, sqlx::Error> {
    Ok(WorkerSummary {
        worker_sid: row.try_get("worker_sid")?,
        name: row.try_get("name")?,
        activity_name: row.try_get("activity_name")?,
        activity_since_ms: row.try_get("activity_since_ms")?,
        reservations: row.try_get("reservations")?,
        accepted: row.try_get("accepted")?,
        rejected: row.try_get("rejected")?,
        timeouts: row.try_get("timeouts")?,
        mean_accept_ms: row.try_get("mean_accept_ms")?,
        max_accept_ms: row.try_get("max_accept_ms")?,
    })
}

/// Every worker with reservation statistics, by name.
///
/// # Errors
/// Any database error.
pub async fn workers(pool: &SqlitePool) -> Result<Vec<WorkerSummary>, sqlx::Error> {
    let sql = format!("{WORKER_STATS} GROUP BY w.worker_sid ORDER BY w.name, w.worker_sid LIMIT 1000");
    sqlx::query(&sql).fetch_all(pool).await?.iter().map(to_worker_summary).collect()
}

/// One worker's statistics.
///
/// # Errors
/// Any database error.
pub async fn worker_summary(
    pool: &SqlitePool,
    worker_sid: &str,
) -> Result<Option<WorkerSummary>, sqlx::Error> {
    let sql = format!("{WORKER_STATS} WHERE w.worker_sid = ?1 GROUP BY w.worker_sid");
    sqlx::query(&sql).bind(worker_sid).fetch_optional(pool).await?.as_ref().map(to_worker_summary).transpose()
}

/// A worker's reservations, newest first.
///
/// # Errors
/// Any database error.
pub async fn worker_reservations(
    pool: &SqlitePool,
    worker_sid: &str,
    limit: u32,
) -> Result<Vec<ReservationView>, sqlx::Error> {
    sqlx::query("SELECT * FROM proj_reservations WHERE worker_sid = ?1 ORDER BY created_at_ms DESC LIMIT ?2")
        .bind(worker_sid)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(to_reservation)
        .collect()
}

/// The task queues and workflows seen, as (SID, name) pairs, for the task filters.
///
/// # Errors
/// Any database error.
pub async fn queues_and_workflows(
    pool: &SqlitePool,
) -> Result<(Vec<(String, Option<String>)>, Vec<(String, Option<String>)>), sqlx::Error> {
    let queues = sqlx::query_as(
        "SELECT sid, NULLIF(MAX(name), '') FROM proj_task_routes WHERE kind = 'queue' \
         GROUP BY sid ORDER BY 2, 1 LIMIT 500",
    )
    .fetch_all(pool)
    .await?;
    let workflows = sqlx::query_as(
        "SELECT sid, NULLIF(MAX(name), '') FROM proj_task_routes WHERE kind = 'workflow' \
         GROUP BY sid ORDER BY 2, 1 LIMIT 500",
    )
    .fetch_all(pool)
    .await?;
    Ok((queues, workflows))
}
