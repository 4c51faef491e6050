//! The acknowledged transaction's own work, row by row: dedup (by event Sid, else by delivery
//! keys), the append to the hash chain, and the delivery keys of facts without an event Sid.
//! The writer thread runs it for each batch of requests; bulk tools (`generate`) and tests run
//! it with the projections in the same transaction (`projections::projector::commit_records`),
//! so their rows are exactly what ingest writes.

use rusqlite::OptionalExtension;
use sha2::{Digest, Sha256};

use super::event_log::{self, AppendDecision, Head, NewRecord};

/// What the writer did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The new row, or for a record not stored again (see [`NewRecord::skip_if_known`]) the
    /// row that already holds it.
    pub id: i64,
    pub duplicate_of: Option<i64>,
    pub is_fact: bool,
    /// Whether a row was appended.
    pub new_row: bool,
}

/// For each request's records: dedup → append → delivery keys, inside `tx`; a request's later
/// records are related to its first row. The results are flat, in record order. The chain's
/// head is read here, under the write lock, because another process (an `import`) may have
/// appended since this one last did.
pub fn append_records<'a>(
    tx: &rusqlite::Transaction<'_>,
    requests: impl Iterator<Item = &'a [NewRecord]>,
    pending_timings: &[(i64, u64)],
) -> rusqlite::Result<(Head, Vec<Appended>)> {
    event_log::record_response_times(tx, pending_timings)?;
    let mut head = event_log::head(tx)?;
    let mut results = Vec::with_capacity(requests.size_hint().0);
    for request in requests {
        let mut request_row = None;
        for record in request {
            append_record(tx, &mut head, record, record.related_to.or(request_row), &mut results)?;
            request_row = request_row.or(results.last().map(|appended| appended.id));
        }
    }
    Ok((head, results))
}

fn append_record(
    tx: &rusqlite::Transaction<'_>,
    head: &mut Head,
    record: &NewRecord,
    related_to: Option<i64>,
    results: &mut Vec<Appended>,
) -> rusqlite::Result<()> {
    let keys = delivery_keys(record);
    let duplicate_of = match trusted_event_sid(record) {
        Some(sid) => event_log::fact_with_event_sid(tx, sid)?,
        None => find_first_delivery(tx, &keys)?,
    };
    if let (true, Some(known)) = (record.skip_if_known, duplicate_of) {
        results.push(Appended { id: known, duplicate_of, is_fact: false, new_row: false });
        return Ok(());
    }
    let decision = AppendDecision {
        duplicate_of,
        is_fact: record.trusted && record.facts.is_some() && duplicate_of.is_none(),
        related_to,
    };
    *head = event_log::append(tx, *head, record, decision)?;
    if !keys.is_empty() {
        let first = duplicate_of.unwrap_or(head.id);
        let mut insert =
            tx.prepare_cached("INSERT OR IGNORE INTO delivery_keys (key, first_id) VALUES (?1, ?2)")?;
        for key in &keys {
            insert.execute(rusqlite::params![&key[..], first])?;
        }
    }
    results.push(Appended { id: head.id, duplicate_of, is_fact: decision.is_fact, new_row: true });
    Ok(())
}

/// The Sid of a well-formed, trusted event callback, which names the event: a retry (same
/// token) or a re-delivery (new token) carries it, and the body cannot be the same without it,
/// so it alone finds an earlier delivery. It is looked up in the log's SID index, which every
/// event's Sid enters anyway, rather than in a key of its own (each key is a random B-tree
/// insert, a page per commit, the costliest write of an ingest).
fn trusted_event_sid(record: &NewRecord) -> Option<&str> {
    record.facts.as_ref().filter(|_| record.trusted)?.event_sid.as_deref()
}

/// The keys that identify a delivery of a fact without an event Sid (assignment callbacks).
/// Only well-formed, trusted requests have any. The idempotency token finds a retry whose body
/// changed (TaskAge advances) and the endpoint plus body finds a resend without the token.
fn delivery_keys(record: &NewRecord) -> Vec<[u8; 16]> {
    let Some(facts) = record.facts.as_ref().filter(|_| record.trusted) else { return Vec::new() };
    let key = |tag: &str, parts: &[&[u8]]| {
        let mut hasher = Sha256::new();
        hasher.update(tag.as_bytes());
        for part in parts {
            hasher.update([0]);
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    };
    if facts.event_sid.is_some() {
        return Vec::new();
    }
    let mut keys = Vec::with_capacity(2);
    if let Some(token) = &record.idempotency_token {
        keys.push(key("idempotency", &[token.as_bytes()]));
    }
    keys.push(key("body", &[record.endpoint.as_bytes(), &record.body]));
    keys
}

fn find_first_delivery(tx: &rusqlite::Transaction<'_>, keys: &[[u8; 16]]) -> rusqlite::Result<Option<i64>> {
    let mut lookup = tx.prepare_cached("SELECT first_id FROM delivery_keys WHERE key = ?1")?;
    let mut first: Option<i64> = None;
    for key in keys {
        if let Some(id) = lookup.query_row([&key[..]], |row| row.get::<_, i64>(0)).optional()? {
            first = Some(first.map_or(id, |f| f.min(id)));
        }
    }
    Ok(first)
}
