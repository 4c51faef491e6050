//! What the log says in summary (never written here): ingest rates, the signature-failure
//! count, which workspace a SID was recorded in, the newest fact of a workspace, and which rows
//! came from the Events API.

use sqlx::SqlitePool;

use super::event_log;

/// Requests recorded in the last minute and the last hour, as of `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IngestRate {
    pub last_minute: i64,
    pub last_hour: i64,
}

/// Counts the requests recorded since a minute and an hour ago (webhooks, actions and replays).
///
/// Rows are appended in arrival order and never deleted, so the first row of a window is found
/// by bisecting the log's ids (a few dozen primary-key lookups, whatever the log's size) and the
/// count is the distance to the last id. Arrival times within one group commit may be a few
/// milliseconds out of order, which moves a window's edge by as much.
///
/// # Errors
/// Any database error.
pub async fn ingest_rate(pool: &SqlitePool, now_ms: i64) -> Result<IngestRate, sqlx::Error> {
    let (last_minute, last_hour): (i64, i64) = sqlx::query_as(
        "WITH RECURSIVE \
           log(first_id, next_id) AS ( \
             SELECT COALESCE((SELECT MIN(id) FROM events), 1), COALESCE((SELECT MAX(id) FROM events), 0) + 1), \
           bisect(since, lo, hi) AS ( \
             SELECT since, first_id, next_id FROM log, (SELECT ?1 AS since UNION ALL SELECT ?2) \
             UNION ALL \
             SELECT since, \
                    CASE WHEN (SELECT received_at_ms FROM events WHERE id >= (lo + hi) / 2 ORDER BY id LIMIT 1) \
                         >= since THEN lo ELSE (lo + hi) / 2 + 1 END, \
                    CASE WHEN (SELECT received_at_ms FROM events WHERE id >= (lo + hi) / 2 ORDER BY id LIMIT 1) \
                         >= since THEN (lo + hi) / 2 ELSE hi END \
             FROM bisect WHERE lo < hi) \
         SELECT COALESCE(MAX(CASE WHEN since = ?1 THEN next_id - lo END), 0), \
                COALESCE(MAX(CASE WHEN since = ?2 THEN next_id - lo END), 0) \
         FROM bisect, log WHERE lo >= hi",
    )
    .bind(now_ms - 60_000)
    .bind(now_ms - 3_600_000)
    .fetch_one(pool)
    .await?;
    Ok(IngestRate { last_minute, last_hour })
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

/// When the newest fact recorded for `workspace` happened (epoch ms), among the log's last
/// 100,000 rows: where following the Events API picks up after a restart.
///
/// # Errors
/// Any database error.
pub async fn newest_fact_ms(pool: &SqlitePool, workspace: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MAX(occurred_at_ms) FROM (SELECT occurred_at_ms, workspace_sid, is_fact FROM events \
         ORDER BY id DESC LIMIT 100000) WHERE is_fact = 1 AND workspace_sid = ?1",
    )
    .bind(workspace)
    .fetch_one(pool)
    .await
}

/// Which of the log rows `ids` were fetched from the Events API (rather than delivered as
/// webhooks).
///
/// # Errors
/// Any database error.
pub async fn fetched_from_events_api(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(ids).expect("integers serialise");
    sqlx::query_scalar(
        "SELECT e.id FROM events e JOIN json_each(?1) j ON e.id = j.value WHERE e.endpoint = ?2",
    )
    .bind(list)
    .bind(taskrouter_protocol::event_resource::EVENTS_API_ENDPOINT)
    .fetch_all(pool)
    .await
}
