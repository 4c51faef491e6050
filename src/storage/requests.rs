//! The recorded requests, read from the log (never written here): one by id, and pages of
//! them by endpoint, verdict, status, time and text, as the inspector's pages and API list them.

use serde::Serialize;
use sqlx::Row;

use super::{event_log, payload, ReadStore};

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
    /// A forward target's or replay target's answer.
    pub upstream: Option<crate::relay::UpstreamAnswer>,
    pub related_to: Option<i64>,
    pub duplicate_of: Option<i64>,
    pub is_fact: bool,
    pub event_type: Option<String>,
    pub event_sid: Option<String>,
    pub task_sid: Option<String>,
    pub reservation_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub task_queue_sid: Option<String>,
    pub workflow_sid: Option<String>,
    pub occurred_at_raw: Option<String>,
    pub occurred_at_ms: Option<i64>,
    pub occurred_at_source: Option<String>,
    /// `I-Twilio-Idempotency-Token`, or a CloudEvent row's CloudEvent `id`.
    pub idempotency_token: Option<String>,
}

/// What the request list can be narrowed by; every field is optional and they combine (AND).
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct RequestFilter {
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    /// Any SID: event, task, reservation, worker, queue or workflow.
    pub sid: Option<String>,
    pub status: Option<i64>,
    pub verdict: Option<String>,
    pub duplicate: Option<bool>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Free text over the body (as typed or form-encoded), headers and path.
    pub text: Option<String>,
    /// Keyset paging: only rows older than this id.
    pub before: Option<i64>,
    /// Only rows at or after this id (bounds a free-text scan; see [`TEXT_SCAN_ROWS`]).
    #[serde(skip)]
    pub min_id: Option<i64>,
}

/// A page of the request list.
#[derive(Debug, Clone)]
pub struct RequestsPage {
    pub rows: Vec<RecordedRequest>,
    /// Where the next, older page starts; `None` when the log is exhausted.
    pub next_before: Option<i64>,
    /// For a free-text search: the lowest log id this page looked at.
    pub searched_from: Option<i64>,
}

/// Rows one free-text page looks through at most: a text search is a scan of bodies, so each
/// page is bounded and the user continues older from where it stopped.
pub const TEXT_SCAN_ROWS: i64 = 100_000;

enum Bind {
    Int(i64),
    Text(String),
}

const REQUEST_COLUMNS: &str = "e.id, e.kind, e.received_at_ms, e.endpoint, e.method, e.path, e.headers, e.body, \
    e.body_truncated, e.remote_addr, e.signature_verdict, e.signature_detail, e.rejection, e.response_status, \
    e.response_body, r.handling_us, e.upstream, e.related_to, e.duplicate_of, e.is_fact, e.event_type, e.event_sid, e.task_sid, \
    e.reservation_sid, e.worker_sid, e.task_queue_sid, e.workflow_sid, e.occurred_at_raw, e.occurred_at_ms, e.occurred_at_source, \
    e.payload_encoding, e.idempotency_token";

fn undecodable(error: payload::DecodeError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

fn to_request(row: &sqlx::sqlite::SqliteRow) -> Result<RecordedRequest, sqlx::Error> {
    let encoding: Option<String> = row.try_get("payload_encoding")?;
    let headers: Vec<u8> = row.try_get("headers")?;
    let headers = payload::decode_text(encoding.as_deref(), &headers).map_err(undecodable)?;
    let body: Vec<u8> = row.try_get("body")?;
    let body = payload::decode(encoding.as_deref(), &body).map_err(undecodable)?.into_owned();
    let signature_verdict: String = row.try_get("signature_verdict")?;
    // Only a failed check's detail is stored; the others follow from the verdict.
    let signature_detail: Option<String> =
        row.try_get::<Option<String>, _>("signature_detail")?.or_else(|| {
            taskrouter_protocol::signature::Verdict::standard_explanation(&signature_verdict)
                .map(str::to_string)
        });
    Ok(RecordedRequest {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        received_at_ms: row.try_get("received_at_ms")?,
        endpoint: row.try_get("endpoint")?,
        method: row.try_get("method")?,
        path: row.try_get("path")?,
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body,
        body_truncated: row.try_get("body_truncated")?,
        remote_addr: row.try_get("remote_addr")?,
        signature_verdict,
        signature_detail,
        rejection: row.try_get("rejection")?,
        response_status: row.try_get("response_status")?,
        response_body: row.try_get("response_body")?,
        handling_us: row.try_get("handling_us")?,
        upstream: row
            .try_get::<Option<String>, _>("upstream")?
            .and_then(|json| serde_json::from_str(&json).ok()),
        related_to: row.try_get("related_to")?,
        duplicate_of: row.try_get("duplicate_of")?,
        is_fact: row.try_get("is_fact")?,
        event_type: row.try_get("event_type")?,
        event_sid: row.try_get("event_sid")?,
        task_sid: row.try_get("task_sid")?,
        reservation_sid: row.try_get("reservation_sid")?,
        worker_sid: row.try_get("worker_sid")?,
        task_queue_sid: row.try_get("task_queue_sid")?,
        workflow_sid: row.try_get("workflow_sid")?,
        occurred_at_raw: row.try_get("occurred_at_raw")?,
        occurred_at_ms: row.try_get("occurred_at_ms")?,
        occurred_at_source: row.try_get("occurred_at_source")?,
        idempotency_token: row.try_get("idempotency_token")?,
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

    /// Requests matching `filter`, newest first, before log id `filter.before` (keyset paging,
    /// so a page costs the same on the millionth row as on the first).
    ///
    /// # Errors
    /// Any database error.
    pub async fn requests(
        &self,
        filter: &RequestFilter,
        limit: u32,
    ) -> Result<Vec<RecordedRequest>, sqlx::Error> {
        match filter.text.as_deref().filter(|t| !t.is_empty()) {
            None => {
                self.select_requests(filter, REQUEST_COLUMNS, limit).await?.iter().map(to_request).collect()
            }
            Some(text) => self.search_text(filter, text, limit).await,
        }
    }

    /// Free text: bodies and headers are stored compressed, so candidates are read in chunks
    /// (with every other filter applied in SQL), decoded and searched here, and only the
    /// matching rows are then read in full.
    async fn search_text(
        &self,
        filter: &RequestFilter,
        text: &str,
        limit: u32,
    ) -> Result<Vec<RecordedRequest>, sqlx::Error> {
        const CHUNK: u32 = 2_000;
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        let needles =
            [memchr::memmem::Finder::new(text.as_bytes()), memchr::memmem::Finder::new(encoded.as_bytes())];
        let mut scan = RequestFilter { text: None, ..filter.clone() };
        let mut matching: Vec<i64> = Vec::new();
        loop {
            let chunk = self
                .select_requests(&scan, "e.id, e.path, e.headers, e.body, e.payload_encoding", CHUNK)
                .await?;
            for row in &chunk {
                let encoding: Option<String> = row.try_get("payload_encoding")?;
                let encoding = encoding.as_deref();
                let path: String = row.try_get("path")?;
                let headers: Vec<u8> = row.try_get("headers")?;
                let body: Vec<u8> = row.try_get("body")?;
                let headers = payload::decode(encoding, &headers).map_err(undecodable)?;
                let body = payload::decode(encoding, &body).map_err(undecodable)?;
                let found = needles[1].find(&body).is_some()
                    || needles[0].find(&body).is_some()
                    || needles[0].find(&headers).is_some()
                    || path.contains(text);
                if found {
                    matching.push(row.try_get("id")?);
                    if matching.len() >= limit as usize {
                        break;
                    }
                }
            }
            if matching.len() >= limit as usize || chunk.len() < CHUNK as usize {
                break;
            }
            scan.before = chunk.last().map(|row| row.try_get::<i64, _>("id")).transpose()?;
        }
        if matching.is_empty() {
            return Ok(Vec::new());
        }
        let ids = matching.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM events e LEFT JOIN response_times r ON r.event_id = e.id \
             WHERE e.id IN ({ids}) ORDER BY e.id DESC"
        );
        sqlx::query(&sql).fetch_all(&self.pool).await?.iter().map(to_request).collect()
    }

    /// `columns` of the rows matching every filter but free text, newest first.
    async fn select_requests(
        &self,
        filter: &RequestFilter,
        columns: &str,
        limit: u32,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>, sqlx::Error> {
        let mut conditions = vec!["e.id < ?".to_string()];
        let mut binds: Vec<Bind> = vec![Bind::Int(filter.before.unwrap_or(i64::MAX))];
        let mut text = |condition: &str, value: &Option<String>, binds: &mut Vec<Bind>| {
            if let Some(value) = value {
                conditions.push(condition.to_string());
                binds.push(Bind::Text(value.clone()));
            }
        };
        text("e.endpoint = ?", &filter.endpoint, &mut binds);
        text("e.event_type = ?", &filter.event_type, &mut binds);
        text("e.signature_verdict = ?", &filter.verdict, &mut binds);
        // A SID narrows through `sid_refs` (newest first, stops at the page size); the columns
        // are re-checked because the lookup key is a hash.
        let mut from = "events e".to_string();
        if let Some(sid) = &filter.sid {
            from = "sid_refs s JOIN events e ON e.id = s.event_id".into();
            conditions[0] = "s.sid_key = ? AND s.event_id < ?".into();
            binds.insert(0, Bind::Int(event_log::sid_key(sid)));
            let columns =
                ["event_sid", "task_sid", "reservation_sid", "worker_sid", "task_queue_sid", "workflow_sid"];
            let any = columns.iter().map(|c| format!("e.{c} = ?")).collect::<Vec<_>>().join(" OR ");
            conditions.push(format!("({any})"));
            binds.extend(columns.iter().map(|_| Bind::Text(sid.clone())));
        }
        if let Some(status) = filter.status {
            conditions.push("e.response_status = ?".into());
            binds.push(Bind::Int(status));
        }
        match filter.duplicate {
            Some(true) => conditions.push("e.duplicate_of IS NOT NULL".into()),
            Some(false) => conditions.push("e.duplicate_of IS NULL".into()),
            None => {}
        }
        if let Some(min_id) = filter.min_id {
            conditions.push("e.id >= ?".into());
            binds.push(Bind::Int(min_id));
        }
        if let Some(since) = filter.since_ms {
            conditions.push("e.received_at_ms >= ?".into());
            binds.push(Bind::Int(since));
        }
        if let Some(until) = filter.until_ms {
            conditions.push("e.received_at_ms < ?".into());
            binds.push(Bind::Int(until));
        }
        let join_times =
            if columns.contains("r.") { "LEFT JOIN response_times r ON r.event_id = e.id" } else { "" };
        let sql = format!(
            "SELECT {columns} FROM {from} {join_times} WHERE {} ORDER BY {} DESC LIMIT ?",
            conditions.join(" AND "),
            if filter.sid.is_some() { "s.event_id" } else { "e.id" }
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        query.bind(i64::from(limit)).fetch_all(&self.pool).await
    }

    /// The rows that point back at `id` (its replays), oldest first.
    ///
    /// # Errors
    /// Any database error.
    pub async fn related_to(&self, id: i64) -> Result<Vec<RecordedRequest>, sqlx::Error> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM events e LEFT JOIN response_times r ON r.event_id = e.id \
             WHERE e.related_to = ?1 ORDER BY e.id LIMIT 1200"
        );
        let rows = sqlx::query(&sql).bind(id).fetch_all(&self.pool).await?;
        rows.iter().map(to_request).collect()
    }

    /// Bounds `filter` when it is a free-text search without a SID: it then looks through the
    /// `scan_rows` rows before `filter.before` only ([`TEXT_SCAN_ROWS`] for pages). Returns the
    /// lowest id searched.
    ///
    /// # Errors
    /// Any database error.
    pub async fn bound_text_search(
        &self,
        filter: &mut RequestFilter,
        scan_rows: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        if filter.text.is_none() || filter.sid.is_some() {
            return Ok(None);
        }
        let newest: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&self.pool).await?;
        let top = filter.before.unwrap_or(i64::MAX).min(newest + 1);
        let floor = (top - scan_rows.max(1)).max(1);
        filter.min_id = Some(floor);
        Ok(Some(floor))
    }

    /// One page of the request list as the inspector shows it: the rows, where the next (older)
    /// page starts, and — for a bounded free-text search — the lowest id this page searched.
    ///
    /// # Errors
    /// Any database error.
    pub async fn requests_page(
        &self,
        mut filter: RequestFilter,
        limit: u32,
        text_scan_rows: i64,
    ) -> Result<RequestsPage, sqlx::Error> {
        let searched_from = self.bound_text_search(&mut filter, text_scan_rows).await?;
        let rows = self.requests(&filter, limit).await?;
        let next_before = if rows.len() == limit as usize {
            rows.last().map(|r| r.id)
        } else {
            searched_from.filter(|floor| *floor > 1)
        };
        Ok(RequestsPage { rows, next_before, searched_from })
    }

    /// Whether the database answers a query.
    pub async fn is_readable(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
