//! Read queries over the log for pages and JSON APIs (never writes).

use serde::Serialize;
use sqlx::Row;

use super::ReadStore;

/// One recorded request, as the inspector and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub id: i64,
    pub kind: String,
    pub received_at_ms: i64,
    pub endpoint: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub body_truncated: bool,
    pub remote_addr: Option<String>,
    pub signature_verdict: String,
    pub signature_detail: Option<String>,
    pub rejection: Option<String>,
    pub response_status: i64,
    pub response_body: Option<String>,
    pub handling_us: Option<i64>,
    pub duplicate_of: Option<i64>,
    pub is_fact: bool,
    pub event_type: Option<String>,
    pub event_sid: Option<String>,
    pub task_sid: Option<String>,
    pub reservation_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub occurred_at_ms: Option<i64>,
    pub occurred_at_source: Option<String>,
}

const REQUEST_COLUMNS: &str = "e.id, e.kind, e.received_at_ms, e.endpoint, e.method, e.path, e.headers, e.body, \
    e.body_truncated, e.remote_addr, e.signature_verdict, e.signature_detail, e.rejection, e.response_status, \
    e.response_body, r.handling_us, e.duplicate_of, e.is_fact, e.event_type, e.event_sid, e.task_sid, \
    e.reservation_sid, e.worker_sid, e.occurred_at_ms, e.occurred_at_source";

fn to_request(row: &sqlx::sqlite::SqliteRow) -> Result<RecordedRequest, sqlx::Error> {
    let headers: String = row.try_get("headers")?;
    Ok(RecordedRequest {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        received_at_ms: row.try_get("received_at_ms")?,
        endpoint: row.try_get("endpoint")?,
        method: row.try_get("method")?,
        path: row.try_get("path")?,
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body: row.try_get("body")?,
        body_truncated: row.try_get("body_truncated")?,
        remote_addr: row.try_get("remote_addr")?,
        signature_verdict: row.try_get("signature_verdict")?,
        signature_detail: row.try_get("signature_detail")?,
        rejection: row.try_get("rejection")?,
        response_status: row.try_get("response_status")?,
        response_body: row.try_get("response_body")?,
        handling_us: row.try_get("handling_us")?,
        duplicate_of: row.try_get("duplicate_of")?,
        is_fact: row.try_get("is_fact")?,
        event_type: row.try_get("event_type")?,
        event_sid: row.try_get("event_sid")?,
        task_sid: row.try_get("task_sid")?,
        reservation_sid: row.try_get("reservation_sid")?,
        worker_sid: row.try_get("worker_sid")?,
        occurred_at_ms: row.try_get("occurred_at_ms")?,
        occurred_at_source: row.try_get("occurred_at_source")?,
    })
}

impl ReadStore {
    /// One recorded request by its log id.
    ///
    /// # Errors
    /// Any database error.
    pub async fn request(&self, id: i64) -> Result<Option<RecordedRequest>, sqlx::Error> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM events e LEFT JOIN response_times r ON r.event_id = e.id WHERE e.id = ?1"
        );
        sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?.as_ref().map(to_request).transpose()
    }

    /// The newest requests, newest first, before log id `before` (keyset paging).
    ///
    /// # Errors
    /// Any database error.
    pub async fn recent_requests(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RecordedRequest>, sqlx::Error> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM events e LEFT JOIN response_times r ON r.event_id = e.id \
             WHERE e.id < ?1 ORDER BY e.id DESC LIMIT ?2"
        );
        let rows = sqlx::query(&sql)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(to_request).collect()
    }

    /// Whether the database answers a query.
    pub async fn is_readable(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
