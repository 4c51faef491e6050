//! One run over a window of a workspace's events: fetch each page from the Events API (paging
//! by `meta.next_page_url`), turn each event into its own log row holding the JSON as fetched,
//! and append, through the one writer, the events the log does not hold yet.
//!
//! The writer decides "already in the log" inside its transaction (by event Sid, whichever way
//! the event came first), so an import racing a webhook never stores a fact twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use chrono::{SecondsFormat, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::storage::event_log::{NewRecord, RecordKind};
use crate::storage::writer::{WriteError, Writer};
use crate::taskrouter_client::{ApiError, EventsPage, TaskRouterClient};
use taskrouter_protocol::event_resource::{self, EVENTS_API_ENDPOINT, RETENTION_MS};

/// The largest page TaskRouter serves.
pub const PAGE_SIZE: &str = "1000";

/// The events to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// From (epoch ms); `None`: TaskRouter's default, the last 15 minutes (the whole retention
    /// when a task is named).
    pub since_ms: Option<i64>,
    /// Until (epoch ms); `None`: now.
    pub until_ms: Option<i64>,
    /// Only this task's events (`TaskSid=`).
    pub task_sid: Option<String>,
}

/// Which path fetched an event; recorded with its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Via {
    /// `import`, from the command line or a page.
    Import,
    /// `serve --follow-events-api`.
    Follow,
    /// `serve --reconcile-every`: what the webhooks missed.
    Reconcile,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Import => "import",
            Via::Follow => "follow",
            Via::Reconcile => "reconcile",
        }
    }
}

/// Counts that move while a run goes, for a progress bar or a page.
#[derive(Debug, Default)]
pub struct Progress {
    pub pages: AtomicU64,
    pub fetched: AtomicU64,
    pub new: AtomicU64,
    pub known: AtomicU64,
    pub redacted: AtomicU64,
    pub unreadable: AtomicU64,
    pub finished: AtomicBool,
    /// The window (epoch ms) and the oldest event fetched so far: TaskRouter lists newest
    /// first, so how far back the pages have reached is how much of the window is done.
    pub window_from_ms: AtomicI64,
    pub window_to_ms: AtomicI64,
    pub oldest_fetched_ms: AtomicI64,
}

impl Progress {
    /// The share of the window fetched so far, 0–1 (the API gives no total to count against).
    pub fn fraction(&self) -> f64 {
        let (from, to) =
            (self.window_from_ms.load(Ordering::Relaxed), self.window_to_ms.load(Ordering::Relaxed));
        let oldest = self.oldest_fetched_ms.load(Ordering::Relaxed);
        if self.finished.load(Ordering::Relaxed) {
            return 1.0;
        }
        if to <= from || oldest == 0 {
            return 0.0;
        }
        ((to - oldest.clamp(from, to)) as f64 / (to - from) as f64).clamp(0.0, 1.0)
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub workspace_sid: String,
    pub pages: u64,
    /// Events TaskRouter returned.
    pub fetched: u64,
    /// Appended as new facts.
    pub new: u64,
    /// Already in the log (by event Sid), whichever way they came.
    pub known: u64,
    /// Older than TaskRouter's redaction age: stored without their task attributes.
    pub redacted: u64,
    /// Not readable as an event (recorded, not facts).
    pub unreadable: u64,
    /// The newest event's time (epoch ms).
    pub newest_event_ms: Option<i64>,
    /// Said when the window asked for more than TaskRouter keeps.
    pub retention_note: Option<String>,
}

impl Summary {
    /// One line for a terminal or a page.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "{}: {} events fetched in {} pages, {} new, {} already in the log",
            self.workspace_sid, self.fetched, self.pages, self.new, self.known
        );
        if self.redacted > 0 {
            line.push_str(&format!(
                ", {} older than 30 days stored without their task attributes (TaskRouter redacts them)",
                self.redacted
            ));
        }
        if self.unreadable > 0 {
            line.push_str(&format!(", {} unreadable (recorded, not facts)", self.unreadable));
        }
        if let Some(note) = &self.retention_note {
            line.push_str(&format!(". {note}"));
        }
        line
    }
}

/// Why a run stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImportError {
    #[error("workspace {workspace}: {error}")]
    Api { workspace: String, error: ApiError },
    #[error(
        "the log could not store the events fetched ({0}); what was stored before stays, and running \
         the import again fetches the rest"
    )]
    Storage(WriteError),
}

impl ImportError {
    /// An error of the API call for `workspace`, with a 404 said in this call's terms.
    fn api(workspace: &str, error: ApiError) -> Self {
        ImportError::Api { workspace: workspace.to_string(), error: error.about_workspace(workspace) }
    }
}

/// `epoch_ms` as the Events API's `StartDate`/`EndDate` take it (whole seconds, UTC).
pub fn iso(epoch_ms: i64) -> String {
    Utc.timestamp_millis_opt(epoch_ms).single().unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Event Sids fetched lately, so a follower's overlapping polls do not hand the writer the
/// same events again and again.
#[derive(Debug, Default)]
pub struct RecentSids {
    seen: HashMap<String, i64>,
}

impl RecentSids {
    fn contains(&self, sid: &str) -> bool {
        self.seen.contains_key(sid)
    }

    fn insert(&mut self, sid: &str, date_ms: i64) {
        self.seen.insert(sid.to_string(), date_ms);
    }

    /// Forgets events older than `before_ms` (outside every later window).
    pub fn forget_before(&mut self, before_ms: i64) {
        self.seen.retain(|_, date| *date >= before_ms);
    }
}

/// Fetches `window` of `workspace`'s events and appends those the log lacks.
///
/// # Errors
/// [`ImportError`] for an API call that failed after its retries, or a write that failed; the
/// events appended before it stay.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &TaskRouterClient,
    writer: &Writer,
    workspace: &str,
    window: &Window,
    via: Via,
    progress: &Progress,
    mut recent: Option<&mut RecentSids>,
    now_ms: i64,
) -> Result<Summary, ImportError> {
    let mut summary = Summary { workspace_sid: workspace.to_string(), ..Summary::default() };
    let oldest_kept = now_ms - RETENTION_MS + 60_000;
    let since = match (window.since_ms, &window.task_sid) {
        (Some(since), _) if since < oldest_kept => {
            summary.retention_note = Some(format!(
                "TaskRouter keeps events for 30 days: asked from {}, imported what exists since {}",
                iso(since),
                iso(oldest_kept)
            ));
            Some(oldest_kept)
        }
        (Some(since), _) => Some(since),
        (None, Some(_)) => Some(oldest_kept),
        (None, None) => None,
    };
    progress.window_from_ms.store(since.unwrap_or(now_ms - 15 * 60_000), Ordering::Relaxed);
    progress.window_to_ms.store(window.until_ms.unwrap_or(now_ms).min(now_ms), Ordering::Relaxed);
    let start = since.map(iso);
    let end = window.until_ms.map(iso);
    let mut query: Vec<(&str, &str)> = vec![("PageSize", PAGE_SIZE)];
    if let Some(start) = &start {
        query.push(("StartDate", start));
    }
    if let Some(end) = &end {
        query.push(("EndDate", end));
    }
    if let Some(task) = &window.task_sid {
        query.push(("TaskSid", task));
    }
    let (mut page, mut page_path) =
        client.first_events_page(workspace, &query).await.map_err(|e| ImportError::api(workspace, e))?;
    loop {
        summary.pages += 1;
        progress.pages.fetch_add(1, Ordering::Relaxed);
        // The next page is fetched while this one is appended: the writer, not TaskRouter, is
        // what an import waits for.
        let next = page.meta.next_page_url.take().filter(|url| !url.is_empty());
        let fetch_next = async {
            match &next {
                Some(url) => Some(client.next_events_page(url).await),
                None => None,
            }
        };
        let (appended, fetched) = tokio::join!(
            append_page(writer, &mut page, &page_path, via, progress, recent.as_deref_mut(), &mut summary),
            fetch_next
        );
        appended?;
        match fetched {
            Some(fetched) => (page, page_path) = fetched.map_err(|e| ImportError::api(workspace, e))?,
            None => break,
        }
    }
    Ok(summary)
}

/// Appends one page's events, oldest first (TaskRouter lists newest first).
async fn append_page(
    writer: &Writer,
    page: &mut EventsPage,
    page_path: &str,
    via: Via,
    progress: &Progress,
    mut recent: Option<&mut RecentSids>,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    let fetched_at_ms = Utc::now().timestamp_millis();
    let date_of = |event: &Value| event.get("event_date_ms").and_then(Value::as_i64).unwrap_or(i64::MAX);
    // Each event parsed once, beside its text as it came.
    let mut events: Vec<(Value, Box<serde_json::value::RawValue>)> = std::mem::take(&mut page.events)
        .into_iter()
        .map(|raw| (serde_json::from_str(raw.get()).unwrap_or(Value::Null), raw))
        .collect();
    events.sort_by_key(|(event, _)| date_of(event));
    summary.fetched += events.len() as u64;
    progress.fetched.fetch_add(events.len() as u64, Ordering::Relaxed);
    let mut records = Vec::with_capacity(events.len());
    for (event, raw) in &events {
        let sid = event.get("sid").and_then(Value::as_str);
        if let (Some(sid), Some(recent)) = (sid, recent.as_deref()) {
            if recent.contains(sid) {
                summary.known += 1;
                progress.known.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        let date = date_of(event);
        if date != i64::MAX {
            summary.newest_event_ms = Some(summary.newest_event_ms.map_or(date, |newest| newest.max(date)));
            let oldest = progress.oldest_fetched_ms.load(Ordering::Relaxed);
            if oldest == 0 || date < oldest {
                progress.oldest_fetched_ms.store(date, Ordering::Relaxed);
            }
        }
        let (record, redacted) = record_of(event, raw.get(), page_path, via, fetched_at_ms);
        if record.rejection.is_some() {
            summary.unreadable += 1;
            progress.unreadable.fetch_add(1, Ordering::Relaxed);
        }
        records.push((sid.map(str::to_string), date, redacted, record));
    }
    let arrived = Instant::now();
    let appends = records.into_iter().map(|(sid, date, redacted, mut record)| {
        record.encode_payload();
        async move { (sid, date, redacted, writer.append(record, arrived).await) }
    });
    for (sid, date, redacted, outcome) in futures_util::future::join_all(appends).await {
        let appended = outcome.map_err(ImportError::Storage)?;
        if appended.new_row && appended.is_fact {
            summary.new += 1;
            progress.new.fetch_add(1, Ordering::Relaxed);
            if redacted {
                summary.redacted += 1;
                progress.redacted.fetch_add(1, Ordering::Relaxed);
            }
        } else if !appended.new_row {
            summary.known += 1;
            progress.known.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(sid), Some(recent)) = (sid, recent.as_deref_mut()) {
            recent.insert(&sid, date);
        }
    }
    Ok(())
}

/// The log row of one fetched event: `raw`, its JSON text as fetched, and the facts its event
/// callback would have given (from `event`, the same JSON parsed); and whether its task
/// attributes were left out as redacted.
pub fn record_of(
    event: &Value,
    raw: &str,
    page_path: &str,
    via: Via,
    fetched_at_ms: i64,
) -> (NewRecord, bool) {
    let mapped =
        event_resource::map_event(event, fetched_at_ms).map_err(|e| e.to_string()).and_then(|mapped| {
            let facts = event_resource::facts_of(&mapped, fetched_at_ms).map_err(|e| e.to_string())?;
            Ok((mapped, facts))
        });
    let mut detail = format!(
        "fetched by {} from TaskRouter's Events API with the account's credentials (no signature to check)",
        via.as_str()
    );
    let (facts, params, rejection, redacted) = match mapped {
        Ok((mapped, facts)) => {
            if mapped.attributes_redacted {
                detail.push_str(
                    "; older than 30 days when fetched, so its task attributes were left out (TaskRouter redacts them)",
                );
            }
            (Some(facts), Some(mapped.params), None, mapped.attributes_redacted)
        }
        Err(error) => (None, None, Some(format!("not a TaskRouter event: {error}")), false),
    };
    let record = NewRecord {
        kind: RecordKind::EventsApi,
        received_at_ms: fetched_at_ms,
        endpoint: EVENTS_API_ENDPOINT.to_string(),
        method: "GET".into(),
        path: page_path.to_string(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: raw.as_bytes().to_vec(),
        body_truncated: false,
        remote_addr: None,
        signature_verdict: "unchecked",
        signature_detail: Some(detail),
        trusted: facts.is_some(),
        rejection,
        response_status: 200,
        response_body: None,
        upstream: None,
        related_to: None,
        facts,
        params,
        idempotency_token: None,
        encoded: None,
        skip_if_known: true,
    };
    (record, redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetched_event_becomes_a_trusted_row_with_its_callback_facts() {
        let event = serde_json::json!({
            "sid": "EV0123456789abcdef0123456789abcdef", "event_type": "task.created",
            "event_date_ms": 1_796_000_000_000_i64, "workspace_sid": "WS1",
            "resource_type": "task", "resource_sid": "WT1",
            "event_data": {"task_sid": "WT1", "task_attributes": "{\"a\":1}"}
        });
        let raw = event.to_string();
        let (record, redacted) = record_of(
            &event,
            &raw,
            "/v1/Workspaces/WS1/Events?PageSize=1000",
            Via::Import,
            1_796_000_060_000,
        );
        assert!(!redacted);
        assert!(record.trusted && record.skip_if_known);
        assert_eq!(record.endpoint, "events-api");
        assert_eq!(record.facts.as_ref().unwrap().task_sid.as_deref(), Some("WT1"));
        assert_eq!(record.body, raw.as_bytes(), "stored as fetched, byte for byte");
        let (unreadable, _) =
            record_of(&serde_json::json!({"event_type": "x"}), r#"{"event_type":"x"}"#, "/", Via::Follow, 0);
        assert!(!unreadable.trusted);
        assert!(unreadable.rejection.unwrap().contains("no sid"));
    }

    #[test]
    fn progress_is_how_far_back_the_newest_first_pages_reached() {
        let progress = Progress::default();
        assert_eq!(progress.fraction(), 0.0);
        progress.window_from_ms.store(1_000, Ordering::Relaxed);
        progress.window_to_ms.store(2_000, Ordering::Relaxed);
        progress.oldest_fetched_ms.store(1_750, Ordering::Relaxed);
        assert!((progress.fraction() - 0.25).abs() < 1e-9);
        progress.oldest_fetched_ms.store(500, Ordering::Relaxed);
        assert_eq!(progress.fraction(), 1.0);
        progress.oldest_fetched_ms.store(1_900, Ordering::Relaxed);
        progress.finished.store(true, Ordering::Relaxed);
        assert_eq!(progress.fraction(), 1.0, "a finished run is done whatever the dates");
    }

    #[test]
    fn the_summary_says_what_happened_in_plain_words() {
        let summary = Summary {
            workspace_sid: "WS1".into(),
            pages: 2,
            fetched: 1500,
            new: 1000,
            known: 500,
            redacted: 3,
            retention_note: Some("TaskRouter keeps events for 30 days".into()),
            ..Summary::default()
        };
        let line = summary.describe();
        assert!(
            line.starts_with("WS1: 1500 events fetched in 2 pages, 1000 new, 500 already in the log"),
            "{line}"
        );
        assert!(line.contains("3 older than 30 days"), "{line}");
        assert!(line.ends_with("TaskRouter keeps events for 30 days"), "{line}");
    }
}
