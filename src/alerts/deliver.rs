//! Delivering alerts: a tokio task that POSTs each queued alert to each webhook (reqwest, with
//! timeouts), retries failures with backoff for a day, and appends every attempt — sent or
//! failed — to the log as an `alert` row, so the audit trail shows who was told what and when.
//!
//! A webhook that fails is backed off as a whole (1 s, doubling, at most 10 minutes), and the
//! moment it answers again everything waiting for it is sent. Ingest never waits for any of
//! this: the only shared resource is the writer's queue, which takes one row per attempt.
//! While storage itself fails, the rows of the attempts wait in memory and are appended once
//! it recovers.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{now_ms, redact_url, Alert, AlertBody, AlertKind, Alerts, TargetHealth};
use crate::alerts::store::{self as store, OutboxRow};
use crate::storage::event_log::{NewRecord, RecordKind};
use crate::storage::writer::WriteError;

/// How long a webhook may take to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's delay, doubled after each failure up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 600_000;
/// How long an alert is retried before it is given up.
const GIVE_UP_AFTER_MS: i64 = 86_400_000;
/// Deliveries taken from the outbox per round at most.
const DELIVERIES_PER_ROUND: i64 = 100;
/// Log rows of attempts kept in memory at most while storage fails (the oldest dropped).
const MAX_UNLOGGED_ROWS: usize = 10_000;
/// Bytes of a webhook's answer kept in the log row.
const KEPT_ANSWER_BYTES: usize = 4_096;

/// One alert to send to one webhook.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its `alert_outbox` row; `None` for alerts held in memory (storage alerts).
    pub outbox_id: Option<i64>,
    pub kind: String,
    pub target_url: String,
    pub payload: String,
    pub related_to: Option<i64>,
    pub created_at_ms: i64,
    /// Attempts already made.
    pub attempts: i64,
}

impl From<OutboxRow> for Delivery {
    fn from(row: OutboxRow) -> Self {
        Self {
            outbox_id: Some(row.id),
            kind: row.kind,
            target_url: row.target_url,
            payload: row.payload,
            related_to: row.related_to,
            created_at_ms: row.created_at_ms,
            attempts: row.attempts,
        }
    }
}

impl Alerts {
    /// Queues `alert` for every webhook in memory (storage alerts, which cannot wait in the
    /// database that is failing; lost if the process stops before they are delivered).
    pub(super) fn queue_unstored(&self, alert: Alert) {
        let payload = serde_json::to_string(&alert.body).expect("an alert serialises");
        let created_at_ms = now_ms();
        let mut unstored = self.unstored.lock().unwrap_or_else(|p| p.into_inner());
        for target in self.webhooks() {
            unstored.push(Delivery {
                outbox_id: None,
                kind: alert.kind.as_str().to_string(),
                target_url: target,
                payload: payload.clone(),
                related_to: alert.related_to,
                created_at_ms,
                attempts: 0,
            });
        }
        drop(unstored);
        self.queued.notify_one();
    }
}

/// What one attempt got.
struct Attempt {
    status: Option<u16>,
    answer: String,
    error: Option<String>,
}

/// Runs delivery until the alerter stops.
pub(super) async fn run(alerts: Arc<Alerts>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent(concat!("taskrouter-tracer/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with a plain configuration builds");
    let mut unlogged: VecDeque<NewRecord> = VecDeque::new();
    loop {
        tokio::select! {
            () = alerts.queued.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if alerts.is_stopped() {
            return;
        }
        append_unlogged(&alerts, &mut unlogged).await;
        let due = due_deliveries(&alerts).await;
        let mut by_target: Vec<(String, Vec<Delivery>)> = Vec::new();
        for delivery in due {
            match by_target.iter_mut().find(|(target, _)| *target == delivery.target_url) {
                Some((_, list)) => list.push(delivery),
                None => by_target.push((delivery.target_url.clone(), vec![delivery])),
            }
        }
        // Webhooks are served side by side; each one's alerts in order, stopping at a failure.
        let rounds = by_target.into_iter().map(|(_, list)| deliver_in_order(&alerts, &client, list));
        for rows in futures_util::future::join_all(rounds).await {
            unlogged.extend(rows);
        }
        append_unlogged(&alerts, &mut unlogged).await;
        let stored = store::pending_deliveries(&alerts.pool).await.unwrap_or(0).max(0) as u64;
        let in_memory = alerts.unstored.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        alerts.stats.pending.store(stored + in_memory, Ordering::Relaxed);
    }
}

/// The deliveries to attempt now: those held in memory and those due in the outbox, less
/// those for a webhook still backing off; outbox rows for a webhook no longer configured are
/// dropped.
async fn due_deliveries(alerts: &Alerts) -> Vec<Delivery> {
    let now = now_ms();
    let webhooks = alerts.webhooks();
    // When the webhook backing off `url` may be tried again (`None`: now).
    let backing_off = |url: &str| {
        let targets = alerts.stats.targets.lock().unwrap_or_else(|p| p.into_inner());
        targets.get(url).map(|health| health.retry_at_ms).filter(|at| *at > now)
    };
    let mut due = Vec::new();
    {
        let mut unstored = alerts.unstored.lock().unwrap_or_else(|p| p.into_inner());
        let (now_due, later): (Vec<Delivery>, Vec<Delivery>) =
            unstored.drain(..).partition(|d| backing_off(&d.target_url).is_none());
        *unstored = later;
        due.extend(now_due);
    }
    match store::due_deliveries(&alerts.pool, now, DELIVERIES_PER_ROUND).await {
        Ok(rows) => {
            for row in rows {
                if !webhooks.contains(&row.target_url) {
                    let _ = store::remove_delivery(&alerts.pool, row.id).await;
                } else if let Some(until) = backing_off(&row.target_url) {
                    // Queued since its webhook started failing: it waits with the others.
                    let _ = store::hold_target(&alerts.pool, &row.target_url, until).await;
                } else {
                    due.push(row.into());
                }
            }
        }
        Err(error) => tracing::warn!(%error, "alerts: the deliveries waiting could not be read"),
    }
    due
}

/// Delivers `list` (all to one webhook) in order, stopping at the first failure; returns the
/// log rows the writer could not take.
async fn deliver_in_order(alerts: &Alerts, client: &reqwest::Client, list: Vec<Delivery>) -> Vec<NewRecord> {
    let mut unlogged = Vec::new();
    let mut failed = false;
    for delivery in list {
        if failed {
            // Not attempted: back where it came from, for the webhook's next try.
            if delivery.outbox_id.is_none() {
                alerts.unstored.lock().unwrap_or_else(|p| p.into_inner()).push(delivery);
            }
            continue;
        }
        let started = now_ms();
        let attempt = attempt(client, &delivery).await;
        let record = settle(alerts, &delivery, &attempt, started).await;
        failed = attempt.error.is_some();
        if let Err(record) = append(alerts, record).await {
            unlogged.push(record);
        }
    }
    unlogged
}

async fn attempt(client: &reqwest::Client, delivery: &Delivery) -> Attempt {
    let sent = client
        .post(&delivery.target_url)
        .header("content-type", "application/json")
        .body(delivery.payload.clone())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            let answer =
                response.bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let answer: String = answer.chars().take(KEPT_ANSWER_BYTES).collect();
            let error =
                (!status.is_success()).then(|| format!("the webhook answered HTTP {}", status.as_u16()));
            Attempt { status: Some(status.as_u16()), answer, error }
        }
        Err(error) => {
            let why = if error.is_timeout() {
                format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
            } else if error.is_connect() {
                "could not connect".to_string()
            } else {
                "the request failed".to_string()
            };
            // reqwest's message names the URL, which may hold a secret: only its kind is kept.
            Attempt { status: None, answer: String::new(), error: Some(why) }
        }
    }
}

/// Updates the outbox, the webhook's health and the counters after an attempt; returns the
/// attempt's log row.
async fn settle(alerts: &Alerts, delivery: &Delivery, attempt: &Attempt, started_ms: i64) -> NewRecord {
    let pool = &alerts.pool;
    let now = now_ms();
    let kind = AlertKind::parse(&delivery.kind).map_or("unknown", AlertKind::as_str);
    let shown = redact_url(&delivery.target_url);
    let outcome = match &attempt.error {
        None => {
            if let Some(id) = delivery.outbox_id {
                let _ = store::remove_delivery(pool, id).await;
            }
            *alerts.stats.sent.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_insert(0) += 1;
            let was_failing = {
                let mut targets = alerts.stats.targets.lock().unwrap_or_else(|p| p.into_inner());
                let health = targets.entry(delivery.target_url.clone()).or_default();
                let was_failing = health.consecutive_failures > 0;
                *health = TargetHealth::default();
                was_failing
            };
            if was_failing {
                tracing::info!(webhook = %shown, "alerts: the webhook answers again; sending what waited");
                let _ = store::bring_forward(pool, &delivery.target_url, now).await;
            }
            None
        }
        Some(error) => {
            alerts.stats.failures.fetch_add(1, Ordering::Relaxed);
            let retry_at = {
                let mut targets = alerts.stats.targets.lock().unwrap_or_else(|p| p.into_inner());
                let health = targets.entry(delivery.target_url.clone()).or_default();
                health.consecutive_failures += 1;
                let exponent = health.consecutive_failures.saturating_sub(1).min(20);
                health.retry_at_ms = now + (FIRST_BACKOFF_MS << exponent).min(MAX_BACKOFF_MS);
                health.last_error = Some(error.clone());
                health.retry_at_ms
            };
            let given_up = now - delivery.created_at_ms >= GIVE_UP_AFTER_MS;
            tracing::warn!(webhook = %shown, kind, %error, given_up, "alerts: delivery failed");
            match (delivery.outbox_id, given_up) {
                (Some(id), true) => {
                    let _ = store::remove_delivery(pool, id).await;
                }
                (Some(id), false) => {
                    let _ = store::retry_later(pool, id, &delivery.target_url, retry_at, error).await;
                }
                (None, false) => {
                    let mut retry = delivery.clone();
                    retry.attempts += 1;
                    alerts.unstored.lock().unwrap_or_else(|p| p.into_inner()).push(retry);
                }
                (None, true) => {}
            }
            Some(if given_up {
                format!("attempt {} failed: {error}; given up (retried for a day)", delivery.attempts + 1)
            } else {
                format!(
                    "attempt {} failed: {error}; retried in {} s",
                    delivery.attempts + 1,
                    (retry_at - now).max(0) / 1000
                )
            })
        }
    };
    log_row(delivery, attempt, outcome, &shown, started_ms)
}

/// The `alert` row recording one attempt: the JSON sent, to whom (redacted), what came back.
fn log_row(
    delivery: &Delivery,
    attempt: &Attempt,
    failure: Option<String>,
    shown: &str,
    at_ms: i64,
) -> NewRecord {
    let body: Option<AlertBody> = serde_json::from_str(&delivery.payload).ok();
    let mut record = NewRecord::action("alert", shown, delivery.payload.clone().into_bytes(), at_ms);
    record.kind = RecordKind::Alert;
    record.headers = vec![("content-type".into(), "application/json".into())];
    record.response_status = attempt.status.unwrap_or(0);
    record.response_body = Some(attempt.answer.clone());
    record.rejection = failure;
    record.related_to = delivery.related_to;
    if let Some(facts) = record.facts.as_mut() {
        facts.event_type = format!("alert.{}", delivery.kind);
        if let Some(body) = body {
            facts.task_sid = body.task_sid;
            facts.reservation_sid = body.reservation_sid;
            facts.worker_sid = body.worker_sid;
        }
    }
    record
}

/// Appends `record`; gives it back when storage cannot take it now (while it is failing,
/// without adding to the writer's attempts).
async fn append(alerts: &Alerts, record: NewRecord) -> Result<(), NewRecord> {
    if alerts.writer.health.problem().is_some() {
        return Err(record);
    }
    match alerts.writer.append(record.clone(), Instant::now()).await {
        Ok(_) | Err(WriteError::Stopped) => Ok(()),
        Err(WriteError::Storage(_) | WriteError::Overloaded(_)) => Err(record),
    }
}

/// Appends the rows that waited for storage, oldest first, until one is refused again.
async fn append_unlogged(alerts: &Alerts, unlogged: &mut VecDeque<NewRecord>) {
    while unlogged.len() > MAX_UNLOGGED_ROWS {
        unlogged.pop_front();
    }
    if alerts.writer.health.problem().is_some() {
        return;
    }
    while let Some(record) = unlogged.pop_front() {
        if let Err(record) = append(alerts, record).await {
            unlogged.push_front(record);
            return;
        }
    }
}
