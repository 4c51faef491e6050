//! Read queries over the log for the dashboard and the actions (never writes): ingest rates,
//! the signature-failure count, and which workspace a SID was recorded in.

use sqlx::SqlitePool;

use super::event_log;

/// Rows scanned from the end of the log when counting recent requests, so the dashboard costs
/// the same on a huge log (a count that reaches it is shown as "at least").
pub const RECENT_SCAN_ROWS: i64 = 100_000;

/// Webhook requests received in the last minute and the last hour, as of `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IngestRate {
    pub last_minute: i64,
    pub last_hour: i64,
    /// The hour's count reached [`RECENT_SCAN_ROWS`]: the true figure may be higher.
    pub capped: bool,
}

/// Counts recent webhook requests by arrival time.
///
/// # Errors
/// Any database error.
pub async fn ingest_rate(pool: &SqlitePool, now_ms: i64) -> Result<IngestRate, sqlx::Error> {
    let (last_minute, last_hour, scanned): (i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(kind = 'webhook' AND received_at_ms >= ?1), 0), \
                COALESCE(SUM(kind = 'webhook' AND received_at_ms >= ?2), 0), COUNT(*) \
         FROM (SELECT kind, received_at_ms FROM events ORDER BY id DESC LIMIT ?3)",
    )
    .bind(now_ms - 60_000)
    .bind(now_ms - 3_600_000)
    .bind(RECENT_SCAN_ROWS)
    .fetch_one(pool)
    .await?;
    Ok(IngestRate { last_minute, last_hour, capped: scanned == RECENT_SCAN_ROWS })
}

/// Requests whose signature was bad or missing, over the whole log (a partial index).
///
/// # Errors
/// Any database error.
pub async fn signature_failures(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE signature_verdict IN ('invalid', 'missing')")
        .fetch_one(pool)
        .await
}

/// The workspace recorded with any row naming `sid` (a task, reservation, worker…).
///
/// # Errors
/// Any database error.
pub async fn workspace_of(pool: &SqlitePool, sid: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT e.workspace_sid FROM sid_refs s JOIN events e ON e.id = s.event_id \
         WHERE s.sid_key = ?1 AND e.workspace_sid IS NOT NULL \
           AND ?2 IN (e.task_sid, e.reservation_sid, e.worker_sid, e.event_sid, e.task_queue_sid, e.workflow_sid) \
         ORDER BY s.event_id DESC LIMIT 1",
    )
    .bind(event_log::sid_key(sid))
    .bind(sid)
    .fetch_optional(pool)
    .await
}

/// The workspace of the most recent row that names one.
///
/// # Errors
/// Any database error.
pub async fn latest_workspace(pool: &SqlitePool) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT workspace_sid FROM (SELECT workspace_sid FROM events ORDER BY id DESC LIMIT 10000) \
         WHERE workspace_sid IS NOT NULL LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}
