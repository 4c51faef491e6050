//! Noticing alerts: a tokio task that, twice a second, reads the log rows the projections have
//! taken in since its mark (timeout facts, bad signatures, relayed assignment callbacks), asks
//! the projections for reservations pending past their timeout, watches the writer's storage
//! health, and every few seconds evaluates the threshold rules.
//!
//! Exactly once: every alert about a reservation or a rule is recorded in `alert_state` in the
//! same transaction that queues its deliveries and moves the log mark, so a duplicate delivery,
//! a replay (never a fact), an import of the same event (never a second fact), a rebuild (which
//! appends nothing and does not run this) or a restart (the mark and the state are stored) never
//! alerts again. It never runs on the writer thread and never waits for a webhook's answer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{now_ms, Alert, AlertKind, Alerts};
use crate::alerts::store::{self as store, LogCandidate, PendingReservation, ThresholdRule};
use crate::relay::UpstreamAnswer;
use crate::reports::compute::TimeoutRate;
use crate::storage::progress::ProjectionProgress;
use crate::storage::writer::StorageHealth;
use taskrouter_protocol::instruction::Severity;

/// How often detection runs.
const TICK: Duration = Duration::from_millis(500);
/// Candidate rows of each kind read at once at most (the next read goes on from there)...
const ROWS_PER_ROUND: i64 = 500;
/// ...and reads per tick at most.
const CATCH_UP_READS: usize = 8;
/// A timeout that happened this long before the tracer received it is history being imported,
/// not news: it is not alerted.
const STALE_AFTER_MS: i64 = 3_600_000;
/// Bad signatures are gathered this long before the first alert about them, so a burst is one
/// alert with its count...
const SIGNATURE_GATHER_MS: i64 = 3_000;
/// ...and there is at most one such alert a minute.
const SIGNATURE_EVERY_MS: i64 = 60_000;
/// A reservation is overdue once pending past its timeout by this much (or by its timeout, if
/// shorter): TaskRouter's own `reservation.timeout` usually arrives within it.
const OVERDUE_GRACE_MS: i64 = 15_000;
/// How far back the overdue clock looks (TaskRouter's longest reservation timeout is a day).
const OVERDUE_HORIZON_MS: i64 = 86_400_000;
/// Overdue reservations read per round at most.
const PENDING_PER_ROUND: i64 = 200;
/// How often the marks are saved at most when nothing else is written with them (no alert, no
/// bad signature counted): rows read again after a restart alert nothing, and the write lock
/// is the writer's to use.
const MARKS_SAVE_EVERY: Duration = Duration::from_secs(10);
/// How often the threshold rules are evaluated (at once after a change).
const THRESHOLD_EVERY: Duration = Duration::from_secs(5);

/// The names of the marks this module keeps in `alert_marks`.
const LOG_MARK: &str = "log_through";
const OVERDUE_SINCE: &str = "overdue_since_ms";
const SIGNATURES_PENDING: &str = "signatures_pending";
const SIGNATURES_SINCE: &str = "signatures_pending_since_ms";
const SIGNATURES_LAST_SENT: &str = "signatures_last_sent_ms";

/// The timeout rates of one window.
#[derive(Default)]
struct WindowRates {
    by_queue: Vec<TimeoutRate>,
    by_worker: Vec<TimeoutRate>,
}

/// What detection keeps between rounds (the marks mirror `alert_marks`).
struct Detector {
    alerts: Arc<Alerts>,
    /// The marks have been read (they are, at the first round storage allows).
    loaded: bool,
    log_through: i64,
    overdue_since_ms: i64,
    signatures_pending: i64,
    signatures_since_ms: i64,
    signatures_last_sent_ms: i64,
    /// TaskRouter's clock: the latest fact's time, and when it was first seen.
    latest_fact: Option<(i64, Instant)>,
    storage_problem: Option<String>,
    thresholds_at: Option<Instant>,
    /// When the marks were last saved, and the log's and overdue marks then.
    marks_saved: Option<(Instant, i64, i64)>,
}

/// Runs detection until the alerter stops.
pub(super) async fn run(alerts: Arc<Alerts>, health: Arc<StorageHealth>, progress: Arc<ProjectionProgress>) {
    let mut detector = Detector {
        alerts: alerts.clone(),
        loaded: false,
        log_through: 0,
        overdue_since_ms: 0,
        signatures_pending: 0,
        signatures_since_ms: 0,
        signatures_last_sent_ms: 0,
        latest_fact: None,
        storage_problem: None,
        thresholds_at: None,
        marks_saved: None,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if alerts.is_stopped() {
            return;
        }
        // Watched from the first tick, even before the marks can be read.
        detector.storage(&health);
        // While storage fails the marks cannot move: the rows wait for it to recover.
        if detector.storage_problem.is_some() {
            continue;
        }
        let done = match detector.loaded {
            false => detector.load(&progress).await,
            true => detector.round(&progress).await,
        };
        if let Err(error) = done {
            tracing::warn!(%error, "alerts: a detection round failed; it is tried again");
        }
    }
}

impl Detector {
    /// Reads the stored marks; on the first start, takes the log's current end and
    /// TaskRouter's current time, so a tracer given alerts on an old log does not alert its
    /// whole history (saved with the first write, or after [`MARKS_SAVE_EVERY`]: a start only
    /// reads, and leaves the write lock to the writer).
    async fn load(&mut self, progress: &ProjectionProgress) -> Result<(), sqlx::Error> {
        let pool = &self.alerts.pool;
        let mark = |name| async move { store::mark(pool, name).await };
        let saved_at = Instant::now();
        match mark(LOG_MARK).await? {
            Some(log_through) => {
                self.log_through = log_through;
                self.overdue_since_ms = mark(OVERDUE_SINCE).await?.unwrap_or_default();
                self.marks_saved = Some((saved_at, self.log_through, self.overdue_since_ms));
            }
            None => {
                self.log_through = progress.last_projected();
                self.overdue_since_ms = crate::projections::details::latest_fact_ms(pool).await?.unwrap_or(0);
                // Not saved yet: any value differs, so the next write or the first period saves them.
                self.marks_saved = Some((saved_at, -1, -1));
            }
        }
        self.signatures_pending = mark(SIGNATURES_PENDING).await?.unwrap_or_default();
        self.signatures_since_ms = mark(SIGNATURES_SINCE).await?.unwrap_or_default();
        self.signatures_last_sent_ms = mark(SIGNATURES_LAST_SENT).await?.unwrap_or_default();
        self.loaded = true;
        Ok(())
    }

    /// Alerts when storage starts failing and when it recovers. These cannot wait in the
    /// database (it is what fails), so they are delivered from memory.
    fn storage(&mut self, health: &StorageHealth) {
        let problem = health.problem();
        let alert = match (&self.storage_problem, &problem) {
            (None, Some(now_failing)) => Some(Alert::new(
                AlertKind::StorageUnhealthy,
                &format!(
                    "taskrouter-tracer cannot store webhooks: {now_failing}. TaskRouter is answered 503 and \
                     retries, so nothing is lost while it clears."
                ),
                self.alerts.link("/healthz"),
            )),
            (Some(was), None) => Some(Alert::new(
                AlertKind::StorageRecovered,
                &format!("taskrouter-tracer stores webhooks again (it could not: {was})."),
                self.alerts.link("/healthz"),
            )),
            _ => None,
        };
        self.storage_problem = problem;
        if let Some(alert) = alert.filter(|a| self.alerts.enabled(a.kind)) {
            self.alerts.queue_unstored(alert);
        }
    }

    async fn round(&mut self, progress: &ProjectionProgress) -> Result<(), sqlx::Error> {
        if self.alerts.webhooks().is_empty() {
            return self.idle(progress).await;
        }
        // Behind (a burst of timeouts): a few more reads now rather than one per tick.
        for _ in 0..CATCH_UP_READS {
            if self.log(progress).await? {
                break;
            }
        }
        let Some(as_of) = self.taskrouter_now().await? else { return Ok(()) };
        self.overdue(as_of).await?;
        let rules_changed = self.alerts.rules_changed.swap(false, Ordering::AcqRel);
        if rules_changed || self.thresholds_at.is_none_or(|at| at.elapsed() >= THRESHOLD_EVERY) {
            self.thresholds_at = Some(Instant::now());
            self.thresholds(as_of).await?;
        }
        Ok(())
    }

    /// No webhook, so nobody to tell and nothing is read or claimed: the marks follow the log
    /// and TaskRouter's time (saved now and then), so a webhook added later is told what
    /// happens from then on, not the backlog.
    async fn idle(&mut self, progress: &ProjectionProgress) -> Result<(), sqlx::Error> {
        self.log_through = self.log_through.max(progress.last_projected());
        (self.signatures_pending, self.signatures_since_ms) = (0, 0);
        // TaskRouter's latest time, not the clock's estimate: without traffic nothing moves.
        self.taskrouter_now().await?;
        if let Some((latest, _)) = self.latest_fact {
            self.overdue_since_ms = self.overdue_since_ms.max(latest);
        }
        if self.marks_save_due() {
            let saved = [
                (LOG_MARK, self.log_through),
                (OVERDUE_SINCE, self.overdue_since_ms),
                (SIGNATURES_PENDING, 0),
                (SIGNATURES_SINCE, 0),
            ];
            store::record_alerts(&self.alerts.pool, &[], &[], &saved, now_ms()).await?;
            self.marks_saved = Some((Instant::now(), self.log_through, self.overdue_since_ms));
        }
        Ok(())
    }

    /// Whether the marks moved since they were last saved, long enough ago.
    fn marks_save_due(&self) -> bool {
        self.marks_saved.is_none_or(|(at, log, since)| {
            (log, since) != (self.log_through, self.overdue_since_ms) && at.elapsed() >= MARKS_SAVE_EVERY
        })
    }

    /// TaskRouter's time now: the latest fact's time plus the wall-clock time since it was
    /// first seen, so "overdue" advances with no further fact (`None` before any fact).
    async fn taskrouter_now(&mut self) -> Result<Option<i64>, sqlx::Error> {
        let Some(latest) = crate::projections::details::latest_fact_ms(&self.alerts.pool).await? else {
            return Ok(None);
        };
        let seen = match self.latest_fact {
            Some((known, seen)) if known == latest => seen,
            _ => {
                self.latest_fact = Some((latest, Instant::now()));
                Instant::now()
            }
        };
        Ok(Some(latest + seen.elapsed().as_millis() as i64))
    }

    /// The log rows the projections have taken in since the mark.
    /// Returns whether it reached the projections' end (else more rows wait).
    async fn log(&mut self, progress: &ProjectionProgress) -> Result<bool, sqlx::Error> {
        let through = progress.last_projected();
        let now = now_ms();
        let flush_signatures = self.signatures_pending > 0
            && now >= self.signatures_since_ms + SIGNATURE_GATHER_MS
            && now >= self.signatures_last_sent_ms + SIGNATURE_EVERY_MS;
        if through <= self.log_through && !flush_signatures {
            return Ok(true);
        }
        let pool = &self.alerts.pool;
        let (rows, reached) =
            store::log_candidates(pool, self.log_through, through.max(self.log_through), ROWS_PER_ROUND)
                .await?;
        let mut alerts = Vec::new();
        let (mut pending, mut since, mut last_sent) =
            (self.signatures_pending, self.signatures_since_ms, self.signatures_last_sent_ms);
        for row in &rows {
            if matches!(row.signature_verdict.as_str(), "invalid" | "missing") {
                if pending == 0 {
                    since = now;
                }
                pending += 1;
            } else if row.is_fact && row.event_type.as_deref() == Some("reservation.timeout") {
                alerts.extend(self.timeout_alert(row).await?);
            } else if row.endpoint == "assignment" {
                alerts.extend(self.answer_alert(row));
            }
        }
        if pending > 0 && now >= since + SIGNATURE_GATHER_MS && now >= last_sent + SIGNATURE_EVERY_MS {
            if self.alerts.enabled(AlertKind::SignatureInvalid) {
                alerts.push(self.signature_alert(pending));
            }
            (pending, since, last_sent) = (0, 0, now);
        }
        let signatures_changed = (pending, since, last_sent)
            != (self.signatures_pending, self.signatures_since_ms, self.signatures_last_sent_ms);
        let previous = self.log_through;
        self.log_through = reached;
        if alerts.is_empty() && !signatures_changed && !self.marks_save_due() {
            // Nothing to write: the mark moves in memory and is saved with the next write.
            return Ok(reached >= through);
        }
        let marks = [
            (LOG_MARK, reached),
            (OVERDUE_SINCE, self.overdue_since_ms),
            (SIGNATURES_PENDING, pending),
            (SIGNATURES_SINCE, since),
            (SIGNATURES_LAST_SENT, last_sent),
        ];
        if let Err(error) = self.record(&alerts, &marks).await {
            self.log_through = previous;
            return Err(error);
        }
        self.marks_saved = Some((Instant::now(), reached, self.overdue_since_ms));
        (self.signatures_pending, self.signatures_since_ms, self.signatures_last_sent_ms) =
            (pending, since, last_sent);
        Ok(reached >= through)
    }

    /// Records `alerts` (those not sent before) and queues their deliveries, with `marks`.
    async fn record(&self, alerts: &[Alert], marks: &[(&str, i64)]) -> Result<(), sqlx::Error> {
        let targets = self.alerts.webhooks();
        let recorded = store::record_alerts(&self.alerts.pool, alerts, &targets, marks, now_ms()).await?;
        if !recorded.is_empty() {
            for index in &recorded {
                let alert = &alerts[*index];
                tracing::info!(kind = alert.kind.as_str(), subject = ?alert.subject, "alert queued");
            }
            self.alerts.queued.notify_one();
        }
        Ok(())
    }

    async fn timeout_alert(&self, row: &LogCandidate) -> Result<Option<Alert>, sqlx::Error> {
        let Some(reservation) = row.reservation_sid.clone() else { return Ok(None) };
        let stale = row.occurred_at_ms.is_some_and(|at| at < row.received_at_ms - STALE_AFTER_MS);
        if stale || !self.alerts.enabled(AlertKind::ReservationTimeout) {
            return Ok(None);
        }
        let context = store::reservation_context(&self.alerts.pool, &reservation).await?.unwrap_or_default();
        let task = row.task_sid.as_deref().unwrap_or("(unknown task)");
        let explanation = context.timeout_explanation.unwrap_or_else(|| {
            let who = context.worker_name.as_deref().or(row.worker_sid.as_deref()).unwrap_or("a worker");
            format!("Reservation {reservation} for {who} timed out.")
        });
        let queue = context.queue_name.map(|q| format!(" in {q}")).unwrap_or_default();
        let text = format!("TaskRouter: a reservation of task {task}{queue} timed out. {explanation}");
        let mut alert =
            Alert::new(AlertKind::ReservationTimeout, &text, self.task_link(row.task_sid.as_deref()));
        alert.subject = Some(reservation.clone());
        alert.related_to = Some(row.id);
        fill_sids(&mut alert, row.task_sid.clone(), Some(reservation), row.worker_sid.clone());
        Ok(Some(alert))
    }

    /// An alert when the app's answer to an assignment callback is one TaskRouter would not
    /// act on (or there was none), judged as the request's page judges it.
    fn answer_alert(&self, row: &LogCandidate) -> Option<Alert> {
        if !self.alerts.enabled(AlertKind::AssignmentAnswer) {
            return None;
        }
        let reservation = row.reservation_sid.clone()?;
        let answer: UpstreamAnswer = serde_json::from_str(row.upstream.as_deref()?).ok()?;
        let problem = match (&answer.error, &answer.check) {
            (Some(error), _) => format!("your app did not answer it ({error}), so TaskRouter got 502"),
            (None, Some(check)) => {
                let finding = check.findings.iter().find(|f| f.severity == Severity::Error)?;
                let code = finding.twilio_code.map(|c| format!(" (Twilio {c})")).unwrap_or_default();
                format!(
                    "TaskRouter would not act on your app's answer: {}{code}. {}",
                    finding.problem, finding.fix
                )
            }
            (None, None) => return None,
        };
        let text = format!(
            "TaskRouter: the assignment callback for reservation {reservation} (task {}): {problem}",
            row.task_sid.as_deref().unwrap_or("unknown")
        );
        let mut alert = Alert::new(
            AlertKind::AssignmentAnswer,
            &text,
            self.alerts.link(&format!("/requests/{}", row.id)),
        );
        alert.subject = Some(reservation.clone());
        alert.related_to = Some(row.id);
        fill_sids(&mut alert, row.task_sid.clone(), Some(reservation), row.worker_sid.clone());
        Some(alert)
    }

    fn signature_alert(&self, count: i64) -> Alert {
        let text = format!(
            "taskrouter-tracer: {count} webhook request{} arrived with a bad or missing X-Twilio-Signature \
             (a wrong --public-url or auth token, or someone else calling). They were recorded, never \
             counted as facts.",
            if count == 1 { "" } else { "s" }
        );
        let mut alert =
            Alert::new(AlertKind::SignatureInvalid, &text, self.alerts.link("/requests?verdict=invalid"));
        alert.body.count = Some(count as u64);
        alert
    }

    /// Reservations pending past their timeout (and a grace) at TaskRouter's time `as_of`.
    async fn overdue(&mut self, as_of: i64) -> Result<(), sqlx::Error> {
        if !self.alerts.enabled(AlertKind::ReservationOverdue) {
            return Ok(());
        }
        let pool = &self.alerts.pool;
        let since = as_of - OVERDUE_HORIZON_MS;
        let overdue =
            store::overdue_reservations(pool, since, as_of, OVERDUE_GRACE_MS, PENDING_PER_ROUND).await?;
        let (mut alerts, mut seen) = (Vec::new(), Vec::new());
        for reservation in &overdue {
            let due_at = reservation.created_at_ms + reservation.timeout_ms;
            let alert = self.overdue_alert(reservation, as_of);
            if due_at >= self.overdue_since_ms {
                alerts.push(alert);
            } else {
                seen.push(alert);
            }
        }
        if !seen.is_empty() {
            // Overdue before alerting began: remembered as seen, never sent, never read again.
            store::record_alerts(pool, &seen, &[], &[], now_ms()).await?;
        }
        if alerts.is_empty() {
            return Ok(());
        }
        self.record(&alerts, &[]).await
    }

    fn overdue_alert(&self, reservation: &PendingReservation, as_of: i64) -> Alert {
        let who =
            reservation.worker_name.as_deref().or(reservation.worker_sid.as_deref()).unwrap_or("a worker");
        let answered = reservation
            .callback_answer
            .as_deref()
            .map_or("no assignment callback was recorded".to_string(), |a| {
                format!("its assignment callback was answered {a}")
            });
        let text = format!(
            "TaskRouter: reservation {} for {who} (task {}) has been pending {} s against a {} s timeout, and no \
             accept, reject, timeout or cancel has arrived; {answered}.",
            reservation.reservation_sid,
            reservation.task_sid,
            (as_of - reservation.created_at_ms) / 1000,
            reservation.timeout_ms / 1000,
        );
        let mut alert =
            Alert::new(AlertKind::ReservationOverdue, &text, self.task_link(Some(&reservation.task_sid)));
        alert.subject = Some(reservation.reservation_sid.clone());
        alert.related_to = reservation.created_event_id;
        fill_sids(
            &mut alert,
            Some(reservation.task_sid.clone()),
            Some(reservation.reservation_sid.clone()),
            reservation.worker_sid.clone(),
        );
        alert
    }

    /// Evaluates every threshold rule over its window ending at `as_of`, from the log's
    /// statistics facts (the report's covering index: the window's facts, not the history).
    async fn thresholds(&mut self, as_of: i64) -> Result<(), sqlx::Error> {
        let pool = &self.alerts.pool;
        let rules = store::rules(pool).await?;
        if rules.is_empty() || !self.alerts.enabled(AlertKind::TimeoutRateExceeded) {
            return Ok(());
        }
        let firing = store::subjects_with_status(pool, AlertKind::TimeoutRateExceeded, "firing").await?;
        let mut alerts = Vec::new();
        // Rules over the same window share one read of it.
        let mut windows: HashMap<i64, Option<WindowRates>> = HashMap::new();
        for rule in &rules {
            let window = rule.window_minutes.max(1);
            if let std::collections::hash_map::Entry::Vacant(slot) = windows.entry(window) {
                slot.insert(self.window_rates(window, as_of).await);
            }
            let Some(Some(measured)) = windows.get(&window) else { continue };
            let of_scope = if rule.scope == "worker" { &measured.by_worker } else { &measured.by_queue };
            let rates: Vec<&TimeoutRate> =
                of_scope.iter().filter(|r| rule.target.is_empty() || r.sid == rule.target).collect();
            let prefix = format!("rule:{}:", rule.id);
            for rate in rates.iter().copied() {
                let subject = format!("{prefix}{}", rate.sid);
                let over = rate.reservations_answerable >= rule.min_reservations.max(1) as u64
                    && rate.rate.is_some_and(|r| r * 100.0 > rule.percent);
                let was_firing = firing.contains(&subject);
                if over != was_firing {
                    alerts.push(self.threshold_alert(rule, Some(rate), &subject, over));
                }
            }
            // A queue or worker with no reservation left in the window has cleared too.
            for subject in firing.iter().filter(|s| s.starts_with(&prefix)) {
                if !rates.iter().any(|r| subject[prefix.len()..] == r.sid) {
                    alerts.push(self.threshold_alert(rule, None, subject, false));
                }
            }
        }
        if alerts.is_empty() {
            return Ok(());
        }
        self.record(&alerts, &[]).await
    }

    /// The timeout rates of every queue and worker over the `minutes` ending at `as_of`
    /// (`None`: the log could not be read; said in the tracer's log).
    async fn window_rates(&self, minutes: i64, as_of: i64) -> Option<WindowRates> {
        use crate::reports::{compute::By, ReportSpec, Window};
        let path = self.alerts.config.database.clone();
        let spec = ReportSpec {
            workspace_sid: None,
            window: Window {
                start_ms: as_of - minutes * 60_000,
                end_ms: as_of + 1,
                split_by_wait_time: Vec::new(),
                task_channel: None,
            },
            by: By::Workspace,
            only: None,
            verify: false,
            buckets: 1,
            activity_durations: false,
        };
        let report = tokio::task::spawn_blocking(move || {
            let mut connection = crate::reports::open_read_only(&path)?;
            crate::reports::generate(&mut connection, &spec, now_ms(), |_| {})
        })
        .await;
        let figures = match report {
            Ok(Ok(report)) => report.figures.into_iter().next(),
            Ok(Err(error)) => {
                tracing::warn!(%error, "alerts: the threshold rules' window could not be read");
                return None;
            }
            Err(_) => return None,
        };
        Some(figures.map_or_else(WindowRates::default, |figures| WindowRates {
            by_queue: figures.timeout_rate_by_queue,
            by_worker: figures.timeout_rate_by_worker,
        }))
    }

    fn threshold_alert(
        &self,
        rule: &ThresholdRule,
        rate: Option<&TimeoutRate>,
        subject: &str,
        over: bool,
    ) -> Alert {
        let sid = &subject[format!("rule:{}:", rule.id).len()..];
        let what = if rule.scope == "worker" { "Worker" } else { "Task queue" };
        let measured = match rate {
            Some(r) => format!(
                "{} of {} reservations ({:.0} %) timed out over the last {} min",
                r.reservations_timed_out,
                r.reservations_answerable,
                r.rate.unwrap_or(0.0) * 100.0,
                rule.window_minutes
            ),
            None => format!("no reservation in the last {} min", rule.window_minutes),
        };
        let (kind, status, verdict) = if over {
            (AlertKind::TimeoutRateExceeded, "firing", format!("above the rule's {} %", rule.percent))
        } else {
            (
                AlertKind::TimeoutRateCleared,
                "cleared",
                format!("back under the rule's {} % (cleared)", rule.percent),
            )
        };
        let text = format!("TaskRouter: {what} {sid}: {measured}, {verdict}.");
        let url = if rule.scope == "worker" {
            self.alerts.link(&format!("/workers/{sid}"))
        } else {
            self.alerts.link(&format!("/tasks?queue={sid}"))
        };
        let mut alert = Alert::new(kind, &text, url);
        alert.subject = Some(subject.to_string());
        alert.status = status;
        if rule.scope == "worker" {
            alert.body.worker_sid = Some(sid.to_string());
        }
        alert
    }

    fn task_link(&self, task_sid: Option<&str>) -> String {
        match task_sid {
            Some(task) => self.alerts.link(&format!("/tasks/{task}")),
            None => self.alerts.link("/timeouts"),
        }
    }
}

fn fill_sids(alert: &mut Alert, task: Option<String>, reservation: Option<String>, worker: Option<String>) {
    alert.body.task_sid = task;
    alert.body.reservation_sid = reservation;
    alert.body.worker_sid = worker;
}
