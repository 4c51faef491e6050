//! Alerts: telling operations teams, as it happens, that a reservation timed out or is overdue,
//! that callbacks arrive badly signed, that the tracer cannot store, that the app's answer to an
//! assignment callback would be rejected, or that a timeout rate crossed a threshold.
//!
//! Owns what an alert is ([`Alert`], the JSON POSTed), which kinds exist and can be switched
//! off, and the running alerter ([`Alerts`]): [`detect`] notices alerts and decides exactly
//! once per kind and subject, [`deliver`] POSTs them with retries and records every attempt in
//! the log. Neither runs on the writer thread, and neither delays ingest: detection reads the
//! log and the projections through the read pool, after the writer has committed and projected.

pub mod deliver;
pub mod detect;
pub mod store;
pub mod targets;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use sqlx::SqlitePool;

pub use targets::{redact_url, AlertUrl};

use crate::storage::progress::ProjectionProgress;
use crate::storage::writer::{StorageHealth, Writer};

/// What happened, as the `kind` field of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// A `reservation.timeout` fact arrived.
    ReservationTimeout,
    /// A reservation stays pending past its timeout, with no outcome recorded.
    ReservationOverdue,
    /// Callbacks arrived with a bad or missing signature (at most one alert a minute).
    SignatureInvalid,
    /// The tracer cannot store webhooks (TaskRouter is answered 503).
    StorageUnhealthy,
    /// Storage works again.
    StorageRecovered,
    /// With `--forward-to`: the app's answer to an assignment callback is one TaskRouter
    /// would not act on.
    AssignmentAnswer,
    /// A threshold rule's timeout rate went above its limit.
    TimeoutRateExceeded,
    /// ...and back under it.
    TimeoutRateCleared,
    /// Sent from the settings page's button.
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ReservationTimeout => "reservation.timeout",
            AlertKind::ReservationOverdue => "reservation.overdue",
            AlertKind::SignatureInvalid => "signature.invalid",
            AlertKind::StorageUnhealthy => "storage.unhealthy",
            AlertKind::StorageRecovered => "storage.recovered",
            AlertKind::AssignmentAnswer => "assignment.answer",
            AlertKind::TimeoutRateExceeded => "timeout_rate.exceeded",
            AlertKind::TimeoutRateCleared => "timeout_rate.cleared",
            AlertKind::Test => "test",
        }
    }

    /// The switch on `/settings` that turns this kind on and off (`None`: always on).
    pub fn switch(self) -> Option<&'static str> {
        match self {
            AlertKind::ReservationTimeout => Some("reservation.timeout"),
            AlertKind::ReservationOverdue => Some("reservation.overdue"),
            AlertKind::SignatureInvalid => Some("signature.invalid"),
            AlertKind::StorageUnhealthy | AlertKind::StorageRecovered => Some("storage.unhealthy"),
            AlertKind::AssignmentAnswer => Some("assignment.answer"),
            AlertKind::TimeoutRateExceeded | AlertKind::TimeoutRateCleared => Some("timeout_rate"),
            AlertKind::Test => None,
        }
    }

    /// The kind `as_str` names.
    pub fn parse(name: &str) -> Option<Self> {
        ALL_KINDS.into_iter().find(|kind| kind.as_str() == name)
    }
}

const ALL_KINDS: [AlertKind; 9] = [
    AlertKind::ReservationTimeout,
    AlertKind::ReservationOverdue,
    AlertKind::SignatureInvalid,
    AlertKind::StorageUnhealthy,
    AlertKind::StorageRecovered,
    AlertKind::AssignmentAnswer,
    AlertKind::TimeoutRateExceeded,
    AlertKind::TimeoutRateCleared,
    AlertKind::Test,
];

/// Every switch, with what it covers in words (the settings page lists them in this order).
pub const SWITCHES: [(&str, &str); 6] = [
    ("reservation.timeout", "a reservation timed out"),
    ("reservation.overdue", "a reservation is pending past its timeout with no outcome"),
    ("signature.invalid", "callbacks arrive with a bad or missing signature (at most one a minute)"),
    ("storage.unhealthy", "the tracer cannot store webhooks, and when it can again"),
    ("assignment.answer", "with --forward-to: your app's answer would be rejected by TaskRouter"),
    ("timeout_rate", "a threshold rule below is crossed, and when it clears"),
];

/// The JSON body of an alert: `text` is one line a Slack incoming webhook shows as it is.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AlertBody {
    pub text: String,
    pub kind: String,
    pub task_sid: Option<String>,
    pub reservation_sid: Option<String>,
    pub worker_sid: Option<String>,
    /// The evidence page, under `--public-url`.
    pub url: String,
    /// For `signature.invalid`: how many requests the alert covers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<u64>,
}

/// An alert to send, with what makes it once-only.
#[derive(Debug, Clone)]
pub struct Alert {
    pub kind: AlertKind,
    /// The exactly-once key beside the kind (a reservation, a rule and what it measures);
    /// `None` for alerts that are not deduplicated (the test alert, signature counts).
    pub subject: Option<String>,
    /// What `alert_state` holds for the subject once sent (`sent`, `firing`, `cleared`).
    pub status: &'static str,
    pub body: AlertBody,
    /// The log row the alert is about.
    pub related_to: Option<i64>,
}

impl Alert {
    /// An alert about `kind` saying `text` (made one line), pointing at `url`.
    pub fn new(kind: AlertKind, text: &str, url: String) -> Self {
        Self {
            kind,
            subject: None,
            status: "sent",
            body: AlertBody {
                text: one_line(text),
                kind: kind.as_str().to_string(),
                task_sid: None,
                reservation_sid: None,
                worker_sid: None,
                url,
                count: None,
            },
            related_to: None,
        }
    }
}

/// `text` on one line (a Slack message's first line is its preview).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How the alerter runs, fixed at start.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Webhooks from `--alert-webhook` / `TRACER_ALERT_WEBHOOKS`.
    pub webhooks: Vec<AlertUrl>,
    /// `demo`'s own receiver, which also gets every alert.
    pub demo_receiver: Option<String>,
    /// The base of evidence links (`--public-url`, else the address listened on).
    pub public_url: String,
    /// The database file (threshold rules read it through a read-only connection).
    pub database: std::path::PathBuf,
}

/// How deliveries to one webhook are going.
#[derive(Debug, Clone, Default)]
struct TargetHealth {
    consecutive_failures: u32,
    /// No attempt to this webhook before this (epoch ms): a receiver that is down is backed
    /// off as a whole, not once per alert.
    retry_at_ms: i64,
    last_error: Option<String>,
}

/// Counters for `/metrics` and the banner.
#[derive(Default)]
struct DeliveryStats {
    sent: Mutex<BTreeMap<&'static str, u64>>,
    failures: AtomicU64,
    pending: AtomicU64,
    targets: Mutex<HashMap<String, TargetHealth>>,
}

/// The running alerter, shared by the server's handlers.
pub struct Alerts {
    config: AlertsConfig,
    pool: SqlitePool,
    writer: Writer,
    stats: DeliveryStats,
    /// Webhooks added on `/settings` (reloaded after each change).
    stored_webhooks: RwLock<Vec<String>>,
    /// Switches turned off on `/settings`.
    disabled: RwLock<HashSet<String>>,
    /// Rules changed: evaluate them at the next tick instead of waiting.
    rules_changed: AtomicBool,
    /// Alerts that cannot wait for the database (storage itself is failing), delivered from
    /// memory.
    unstored: Mutex<Vec<deliver::Delivery>>,
    /// Wakes the delivery loop when something was queued.
    queued: tokio::sync::Notify,
    stopped: AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Alerts {
    /// Loads the stored settings.
    ///
    /// # Errors
    /// Any database error.
    pub async fn load(
        config: AlertsConfig,
        pool: SqlitePool,
        writer: Writer,
    ) -> Result<Arc<Self>, sqlx::Error> {
        let alerts = Arc::new(Self {
            config,
            pool,
            writer,
            stats: DeliveryStats::default(),
            stored_webhooks: RwLock::default(),
            disabled: RwLock::default(),
            rules_changed: AtomicBool::new(true),
            unstored: Mutex::default(),
            queued: tokio::sync::Notify::new(),
            stopped: AtomicBool::new(false),
            tasks: Mutex::default(),
        });
        alerts.reload_settings().await?;
        Ok(alerts)
    }

    /// Starts detection and delivery on the current runtime.
    pub fn start(self: &Arc<Self>, health: Arc<StorageHealth>, progress: Arc<ProjectionProgress>) {
        let detector = tokio::spawn(detect::run(self.clone(), health, progress));
        let deliverer = tokio::spawn(deliver::run(self.clone()));
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).extend([detector, deliverer]);
    }

    /// Stops detection and delivery (the server stopped): a server started again on the same
    /// database takes over without two alerters delivering the same rows.
    pub async fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Re-reads the webhooks and switches stored by `/settings`.
    ///
    /// # Errors
    /// Any database error; the previous settings stay in force.
    pub async fn reload_settings(&self) -> Result<(), sqlx::Error> {
        let webhooks = store::stored_webhooks(&self.pool).await?.into_iter().map(|(url, _)| url).collect();
        let disabled = store::disabled_switches(&self.pool).await?;
        *self.stored_webhooks.write().unwrap_or_else(|p| p.into_inner()) = webhooks;
        *self.disabled.write().unwrap_or_else(|p| p.into_inner()) = disabled;
        self.rules_changed.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether alerts of `kind` are sent.
    pub fn enabled(&self, kind: AlertKind) -> bool {
        kind.switch()
            .is_none_or(|switch| !self.disabled.read().unwrap_or_else(|p| p.into_inner()).contains(switch))
    }

    /// Every webhook an alert goes to now: the command line's, `/settings`', `demo`'s own.
    pub fn webhooks(&self) -> Vec<String> {
        let mut all: Vec<String> = self.config.webhooks.iter().map(|u| u.as_str().to_string()).collect();
        all.extend(self.stored_webhooks.read().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        all.extend(self.config.demo_receiver.iter().cloned());
        let mut seen = HashSet::new();
        all.retain(|url| seen.insert(url.clone()));
        all
    }

    /// The webhooks given on the command line, redacted (the settings page lists them).
    pub fn command_line_webhooks(&self) -> Vec<String> {
        self.config.webhooks.iter().map(|u| redact_url(u.as_str())).collect()
    }

    /// `demo`'s own receiver, if this server runs one.
    pub fn demo_receiver(&self) -> Option<&str> {
        self.config.demo_receiver.as_deref()
    }

    /// An evidence link under the public URL.
    pub fn link(&self, path: &str) -> String {
        format!("{}{}", self.config.public_url.trim_end_matches('/'), path)
    }

    /// Queues `alert` for every webhook (no exactly-once key: the test button).
    ///
    /// # Errors
    /// Any database error (nothing is queued then).
    pub async fn send_now(&self, alert: Alert) -> Result<usize, sqlx::Error> {
        let targets = self.webhooks();
        let recorded = store::record_alerts(&self.pool, &[alert], &targets, &[], now_ms()).await?;
        self.queued.notify_one();
        Ok(recorded.len() * targets.len())
    }

    /// What the banner says while deliveries are failing, else `None`.
    pub fn problem(&self) -> Option<String> {
        let targets = self.stats.targets.lock().unwrap_or_else(|p| p.into_inner());
        let failing: Vec<String> = targets
            .iter()
            .filter(|(_, health)| health.consecutive_failures > 0)
            .map(|(url, health)| {
                format!("{} ({})", redact_url(url), health.last_error.as_deref().unwrap_or("failed"))
            })
            .collect();
        if failing.is_empty() {
            return None;
        }
        Some(format!(
            "Alerts are not being delivered to {}; {} waiting, retried with backoff for a day",
            failing.join(", "),
            self.stats.pending.load(Ordering::Relaxed)
        ))
    }

    /// `tracer_alerts_sent_total{kind}`, `tracer_alert_delivery_failures_total` and
    /// `tracer_alerts_pending`, in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::from(
            "# HELP tracer_alerts_sent_total Alerts delivered to a webhook (2xx), by kind.\n\
             # TYPE tracer_alerts_sent_total counter\n",
        );
        for (kind, count) in self.stats.sent.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "tracer_alerts_sent_total{{kind=\"{kind}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP tracer_alert_delivery_failures_total Attempts to deliver an alert that failed.\n\
             # TYPE tracer_alert_delivery_failures_total counter\ntracer_alert_delivery_failures_total {}\n\
             # HELP tracer_alerts_pending Alert deliveries waiting (for a retry, or for their first attempt).\n\
             # TYPE tracer_alerts_pending gauge\ntracer_alerts_pending {}",
            self.stats.failures.load(Ordering::Relaxed),
            self.stats.pending.load(Ordering::Relaxed)
        );
        out
    }
}

/// The wall clock, epoch ms.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_body_is_the_documented_json_on_one_line() {
        let mut alert = Alert::new(
            AlertKind::ReservationTimeout,
            "Reservation WR1\ntimed out",
            "http://x/tasks/WT1".into(),
        );
        alert.body.task_sid = Some("WT1".into());
        let json = serde_json::to_value(&alert.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "text": "Reservation WR1 timed out", "kind": "reservation.timeout", "task_sid": "WT1",
                "reservation_sid": null, "worker_sid": null, "url": "http://x/tasks/WT1"
            })
        );
    }

    #[test]
    fn every_kind_names_itself_and_has_its_switch() {
        for kind in ALL_KINDS {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
            if let Some(switch) = kind.switch() {
                assert!(SWITCHES.iter().any(|(name, _)| *name == switch), "{switch}");
            }
        }
    }
}
