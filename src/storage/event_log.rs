//! The append-only, hash-chained `events` table: the only code that writes it, and the code
//! that verifies it.
//!
//! There is no update or delete function here, and SQLite triggers refuse both. Each row's
//! `hash` is SHA-256 over the previous row's hash and a canonical, length-prefixed encoding of
//! every other column, so editing the file behind the triggers' back breaks the chain at the
//! first edited row, which [`verify`] names.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

use super::payload;
use taskrouter_protocol::WebhookFacts;

/// A 32-byte chain hash.
pub type ChainHash = [u8; 32];

/// The hash "before" the first row.
pub const GENESIS: ChainHash = [0; 32];

/// What kind of thing a log row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A request that reached a webhook endpoint.
    Webhook,
    /// A REST call the tracer made to TaskRouter on a user's behalf.
    Action,
    /// A recorded request sent again.
    Replay,
    /// An event fetched from TaskRouter's Events API (`GET …/Events`), stored as the JSON it
    /// came as.
    EventsApi,
    /// One TaskRouter CloudEvent of an Event Streams request, stored as the JSON it came as
    /// and related to the request's row, which holds the whole body.
    CloudEvent,
    /// An alert the tracer POSTed (or tried to) to an alert webhook.
    Alert,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Webhook => "webhook",
            RecordKind::Action => "action",
            RecordKind::Replay => "replay",
            RecordKind::EventsApi => "events-api",
            RecordKind::CloudEvent => "cloudevent",
            RecordKind::Alert => "alert",
        }
    }
}

/// A row to append. The writer fills in `duplicate_of` and `is_fact` (and `related_to` for the
/// CloudEvents of a request); everything else is decided at the HTTP edge before the row is
/// queued.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub kind: RecordKind,
    pub received_at_ms: i64,
    pub endpoint: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_truncated: bool,
    pub remote_addr: Option<String>,
    pub signature_verdict: &'static str,
    pub signature_detail: Option<String>,
    pub rejection: Option<String>,
    pub response_status: u16,
    pub response_body: Option<String>,
    pub upstream: Option<String>,
    pub related_to: Option<i64>,
    /// Present when the body is a well-formed callback (whatever its signature), so even a
    /// rejected request can be found by its SIDs.
    pub facts: Option<WebhookFacts>,
    /// The decoded parameters of a well-formed body (not stored: the body is).
    pub params: Option<taskrouter_protocol::FormParams>,
    /// Well-formed, with a valid or unchecked signature, and answered 2xx: only such a row can
    /// become a TaskRouter fact.
    pub trusted: bool,
    pub idempotency_token: Option<String>,
    /// `headers` and `body` as stored, when already encoded off the writer thread (see
    /// [`NewRecord::encode_payload`]); the writer encodes them itself otherwise.
    pub encoded: Option<EncodedPayload>,
    /// Store nothing when the log already holds this record's fact (an event fetched again
    /// from the Events API): the writer answers with the row that holds it.
    pub skip_if_known: bool,
}

/// A record's headers (as JSON) and body in their stored, compressed form.
#[derive(Debug, Clone)]
pub struct EncodedPayload {
    headers_json: String,
    headers: Vec<u8>,
    body: Vec<u8>,
}

impl NewRecord {
    /// A call the tracer made to TaskRouter's REST API at `now_ms` (an `action` row: the form
    /// `body` POSTed to `path`). Never a fact: TaskRouter's own callbacks report the effect. The
    /// caller sets the SIDs of its `facts` it is to be found by, and what came of the call.
    pub fn action(endpoint: &str, path: &str, body: Vec<u8>, now_ms: i64) -> Self {
        use taskrouter_protocol::{OccurredAt, TimeSource};
        Self {
            kind: RecordKind::Action,
            received_at_ms: now_ms,
            endpoint: endpoint.to_string(),
            method: "POST".into(),
            path: path.to_string(),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body,
            body_truncated: false,
            remote_addr: None,
            signature_verdict: "unchecked",
            signature_detail: None,
            rejection: None,
            response_status: 0,
            response_body: None,
            upstream: None,
            related_to: None,
            facts: Some(WebhookFacts {
                event_type: endpoint.to_string(),
                event_sid: None,
                account_sid: None,
                workspace_sid: None,
                task_sid: None,
                reservation_sid: None,
                worker_sid: None,
                task_queue_sid: None,
                workflow_sid: None,
                occurred_at: OccurredAt { epoch_ms: now_ms, source: TimeSource::Arrival, raw: None },
            }),
            params: None,
            trusted: false,
            idempotency_token: None,
            encoded: None,
            skip_if_known: false,
        }
    }

    /// Compresses the headers and body now, so the writer thread, which every request waits
    /// for in turn, does not have to. Call after the last change to `headers` or `body`.
    pub fn encode_payload(&mut self) {
        self.encoded = Some(EncodedPayload::of(&self.headers, &self.body));
    }
}

impl EncodedPayload {
    fn of(headers: &[(String, String)], body: &[u8]) -> Self {
        let headers_json = headers_json(headers);
        Self { headers: payload::encode(headers_json.as_bytes()), body: payload::encode(body), headers_json }
    }
}

/// The columns the writer decides when appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendDecision {
    pub duplicate_of: Option<i64>,
    pub is_fact: bool,
    /// The record's own `related_to`, or for a CloudEvent the row of the request it came in.
    pub related_to: Option<i64>,
}

/// One stored row as the chain sees it: every column but `id` and `hash`, in canonical order.
#[derive(Debug, Clone, PartialEq)]
enum Field<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

fn encode_fields(fields: &[Field<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for field in fields {
        match field {
            Field::Null => out.push(0),
            Field::Int(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Text(s) => {
                out.push(2);
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Field::Bytes(b) => {
                out.push(3);
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    out
}

fn chain(previous: &ChainHash, id: i64, fields: &[Field<'_>]) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(id.to_le_bytes());
    hasher.update(encode_fields(fields));
    hasher.finalize().into()
}

fn opt_text(v: &Option<String>) -> Field<'_> {
    v.as_deref().map_or(Field::Null, Field::Text)
}

fn opt_int(v: Option<i64>) -> Field<'static> {
    v.map_or(Field::Null, Field::Int)
}

/// The JSON stored in `headers`.
pub fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).expect("strings serialise")
}

/// The columns [`append`] writes besides `id` and `hash`, in the order [`verify`] reads them.
/// Where `headers` and `body` sit among the chained fields (0-based, after `id`).
const HEADERS_FIELD: usize = 5;
const BODY_FIELD: usize = 6;

const COLUMNS: &str = "kind, received_at_ms, endpoint, method, path, headers, body, body_truncated, \
    remote_addr, signature_verdict, signature_detail, rejection, response_status, response_body, \
    upstream, related_to, duplicate_of, is_fact, event_type, event_sid, account_sid, workspace_sid, \
    task_sid, reservation_sid, worker_sid, task_queue_sid, workflow_sid, occurred_at_ms, \
    occurred_at_raw, occurred_at_source, idempotency_token";

/// The last row of the chain: its id (0 for an empty log) and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub id: i64,
    pub hash: ChainHash,
}

/// Appends `record` after `previous`, returning the new head.
///
/// # Errors
/// Any SQLite error; the caller's transaction then must be rolled back.
pub fn append(
    tx: &Transaction<'_>,
    previous: Head,
    record: &NewRecord,
    decision: AppendDecision,
) -> rusqlite::Result<Head> {
    let id = previous.id + 1;
    let encoded_here;
    let encoded = match &record.encoded {
        Some(encoded) => encoded,
        None => {
            encoded_here = EncodedPayload::of(&record.headers, &record.body);
            &encoded_here
        }
    };
    let headers = &encoded.headers_json;
    let facts = record.facts.as_ref();
    let fact_text = |f: fn(&WebhookFacts) -> &Option<String>| facts.map_or(Field::Null, |x| opt_text(f(x)));
    let fields = [
        Field::Text(record.kind.as_str()),
        Field::Int(record.received_at_ms),
        Field::Text(&record.endpoint),
        Field::Text(&record.method),
        Field::Text(&record.path),
        Field::Text(headers),
        Field::Bytes(&record.body),
        Field::Int(record.body_truncated as i64),
        opt_text(&record.remote_addr),
        Field::Text(record.signature_verdict),
        opt_text(&record.signature_detail),
        opt_text(&record.rejection),
        Field::Int(i64::from(record.response_status)),
        opt_text(&record.response_body),
        opt_text(&record.upstream),
        opt_int(decision.related_to),
        opt_int(decision.duplicate_of),
        Field::Int(decision.is_fact as i64),
        facts.map_or(Field::Null, |f| Field::Text(&f.event_type)),
        fact_text(|f| &f.event_sid),
        fact_text(|f| &f.account_sid),
        fact_text(|f| &f.workspace_sid),
        fact_text(|f| &f.task_sid),
        fact_text(|f| &f.reservation_sid),
        fact_text(|f| &f.worker_sid),
        fact_text(|f| &f.task_queue_sid),
        fact_text(|f| &f.workflow_sid),
        facts.map_or(Field::Null, |f| Field::Int(f.occurred_at.epoch_ms)),
        facts.map_or(Field::Null, |f| opt_text(&f.occurred_at.raw)),
        facts.map_or(Field::Null, |f| Field::Text(f.occurred_at.source.as_str())),
        opt_text(&record.idempotency_token),
    ];
    let hash = chain(&previous.hash, id, &fields);
    // Stored compressed; the chain above covers the bytes as received.
    let mut stored = fields;
    stored[HEADERS_FIELD] = Field::Bytes(&encoded.headers);
    stored[BODY_FIELD] = Field::Bytes(&encoded.body);
    let mut statement = tx.prepare_cached(&format!(
        "INSERT INTO events (id, {COLUMNS}, hash, payload_encoding) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
         ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, \
         ?29, ?30, ?31, ?32, ?33, ?34)"
    ))?;
    let id_field = Field::Int(id);
    let hash_field = Field::Bytes(&hash);
    let encoding_field = Field::Text(payload::ENCODING);
    let values = std::iter::once(&id_field).chain(stored.iter()).chain([&hash_field, &encoding_field]);
    statement.execute(rusqlite::params_from_iter(values))?;
    // The event Sid is referenced at once: the next delivery of the same event is found
    // through it. The row's other SIDs follow with the projections ([`index_sids`]).
    if let Some(event_sid) = facts.and_then(|f| f.event_sid.as_deref()) {
        index_sids(tx, id, [event_sid])?;
    }
    Ok(Head { id, hash })
}

/// The SIDs of a row that [`append`] leaves to the projector to reference in `sid_refs`:
/// every one it names but its event Sid.
pub fn sids_referenced_later(facts: &WebhookFacts) -> Vec<String> {
    [&facts.task_sid, &facts.reservation_sid, &facts.worker_sid, &facts.task_queue_sid, &facts.workflow_sid]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

/// References row `id` under each of `sids` in `sid_refs` (a reference already there stays).
///
/// # Errors
/// Any SQLite error.
pub fn index_sids<'a>(
    conn: &Connection,
    id: i64,
    sids: impl IntoIterator<Item = &'a str>,
) -> rusqlite::Result<()> {
    let mut reference =
        conn.prepare_cached("INSERT OR IGNORE INTO sid_refs (sid_key, event_id) VALUES (?1, ?2)")?;
    for sid in sids {
        reference.execute(rusqlite::params![sid_key(sid), id])?;
    }
    Ok(())
}

/// The rows after `after_id` up to `through_id` with the SIDs [`sids_referenced_later`] gives,
/// in log order (rows naming none are left out).
///
/// # Errors
/// Any SQLite error.
pub fn sids_of_rows(
    conn: &Connection,
    after_id: i64,
    through_id: i64,
) -> rusqlite::Result<Vec<(i64, Vec<String>)>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, task_sid, reservation_sid, worker_sid, task_queue_sid, workflow_sid FROM events \
         WHERE id > ?1 AND id <= ?2 ORDER BY id",
    )?;
    let mut rows = statement.query(params![after_id, through_id])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let mut sids = Vec::new();
        for column in 1..=5 {
            if let Some(sid) = row.get::<_, Option<String>>(column)? {
                sids.push(sid);
            }
        }
        if !sids.is_empty() {
            found.push((row.get(0)?, sids));
        }
    }
    Ok(found)
}

/// References every row after `after_id` under the SIDs [`sids_referenced_later`] gives.
///
/// # Errors
/// Any SQLite error.
pub fn index_sids_of_rows_after(conn: &Connection, after_id: i64) -> rusqlite::Result<()> {
    let through = head(conn)?.id;
    for (id, sids) in sids_of_rows(conn, after_id, through)? {
        index_sids(conn, id, sids.iter().map(String::as_str))?;
    }
    Ok(())
}

/// The row that made the event `event_sid` a fact (its first trusted delivery), if any: found
/// through `sid_refs`, the column re-checked because the lookup key is a hash.
///
/// # Errors
/// Any SQLite error.
pub fn fact_with_event_sid(tx: &Transaction<'_>, event_sid: &str) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached(
        "SELECT e.id FROM sid_refs r JOIN events e ON e.id = r.event_id \
         WHERE r.sid_key = ?1 AND e.event_sid = ?2 AND e.is_fact = 1 ORDER BY r.event_id LIMIT 1",
    )?
    .query_row(params![sid_key(event_sid), event_sid], |row| row.get(0))
    .optional()
}

/// The lookup key of a SID in `sid_refs`.
pub fn sid_key(sid: &str) -> i64 {
    let digest = Sha256::digest(sid.as_bytes());
    i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl rusqlite::ToSql for Field<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Field::Null => ValueRef::Null,
            Field::Int(v) => ValueRef::Integer(*v),
            Field::Text(s) => ValueRef::Text(s.as_bytes()),
            Field::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

/// The hash of the last row, or [`GENESIS`] for an empty log.
///
/// # Errors
/// Any SQLite error.
pub fn head(conn: &Connection) -> rusqlite::Result<Head> {
    let row: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        Some((id, hash)) => Head { id, hash: to_hash(&hash) },
        None => Head { id: 0, hash: GENESIS },
    })
}

fn to_hash(bytes: &[u8]) -> ChainHash {
    let mut hash = GENESIS;
    let n = bytes.len().min(32);
    hash[..n].copy_from_slice(&bytes[..n]);
    hash
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub rows_checked: u64,
    pub head_id: i64,
    pub head_hash: ChainHash,
    /// The first row whose stored hash does not match its contents, and why.
    pub first_bad_row: Option<(i64, String)>,
}

/// Walks the whole chain. `progress` is called with the number of rows checked so far.
///
/// # Errors
/// Any SQLite error (a tampered row is reported in the result, not as an error).
pub fn verify(conn: &Connection, mut progress: impl FnMut(u64)) -> rusqlite::Result<VerifyReport> {
    let mut statement =
        conn.prepare(&format!("SELECT id, {COLUMNS}, hash, payload_encoding FROM events ORDER BY id"))?;
    let mut rows = statement.query([])?;
    let mut previous = GENESIS;
    let mut expected_id = 1_i64;
    let mut report = VerifyReport { rows_checked: 0, head_id: 0, head_hash: GENESIS, first_bad_row: None };
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let mut owned: Vec<rusqlite::types::Value> = Vec::with_capacity(31);
        for i in 1..=31 {
            owned.push(row.get(i)?);
        }
        let stored: Vec<u8> = row.get(32)?;
        let encoding: Option<String> = row.get(33)?;
        let undecodable = decode_payload_fields(&mut owned, encoding.as_deref()).err();
        let fields: Vec<Field<'_>> = owned.iter().map(value_field).collect();
        let recomputed = chain(&previous, id, &fields);
        if report.first_bad_row.is_none() {
            if id != expected_id {
                report.first_bad_row =
                    Some((id, format!("row {expected_id} is missing: the log jumps to row {id}")));
            } else if let Some(problem) = undecodable {
                report.first_bad_row =
                    Some((id, format!("its stored body or headers do not decode ({problem})")));
            } else if recomputed[..] != stored[..] {
                report.first_bad_row = Some((id, "its contents do not match its hash".to_string()));
            }
        }
        previous = to_hash(&stored);
        expected_id = id + 1;
        report.rows_checked += 1;
        report.head_id = id;
        report.head_hash = previous;
        if report.rows_checked.is_multiple_of(10_000) {
            progress(report.rows_checked);
        }
    }
    progress(report.rows_checked);
    Ok(report)
}

/// Replaces the stored (possibly compressed) headers and body in `row` with what was received.
fn decode_payload_fields(
    row: &mut [rusqlite::types::Value],
    encoding: Option<&str>,
) -> Result<(), payload::DecodeError> {
    use rusqlite::types::Value;
    if encoding.is_none() {
        return Ok(());
    }
    let raw = |value: &Value| match value {
        Value::Blob(b) => b.clone(),
        Value::Text(t) => t.clone().into_bytes(),
        _ => Vec::new(),
    };
    let headers = payload::decode(encoding, &raw(&row[HEADERS_FIELD]))?.into_owned();
    let body = payload::decode(encoding, &raw(&row[BODY_FIELD]))?.into_owned();
    row[HEADERS_FIELD] = match String::from_utf8(headers) {
        Ok(text) => Value::Text(text),
        Err(bytes) => Value::Blob(bytes.into_bytes()),
    };
    row[BODY_FIELD] = Value::Blob(body);
    Ok(())
}

fn value_field(value: &rusqlite::types::Value) -> Field<'_> {
    use rusqlite::types::Value;
    match value {
        Value::Null => Field::Null,
        Value::Integer(v) => Field::Int(*v),
        Value::Real(v) => Field::Int(v.to_bits() as i64),
        Value::Text(s) => Field::Text(s),
        Value::Blob(b) => Field::Bytes(b),
    }
}

/// Records how long a row took to answer (outside the chain; see the migration).
///
/// # Errors
/// Any SQLite error.
pub fn record_response_times(tx: &Transaction<'_>, timings: &[(i64, u64)]) -> rusqlite::Result<()> {
    let mut statement =
        tx.prepare_cached("INSERT OR IGNORE INTO response_times (event_id, handling_us) VALUES (?1, ?2)")?;
    for (id, micros) in timings {
        statement.execute(params![id, *micros as i64])?;
    }
    Ok(())
}
