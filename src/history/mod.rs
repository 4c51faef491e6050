//! TaskRouter's own history, from its Events REST API: `import` (a window or a task, from the
//! command line or a page), following the API instead of receiving webhooks
//! (`--follow-events-api`), and reconciliation that appends what the webhooks missed
//! (`--reconcile-every`). Every event goes through [`import::run`] and the one writer, so it
//! becomes the same fact its webhook would have been, deduplicated against it by event Sid.
//!
//! This module owns the server's side: the pollers, the jobs started from pages, and their
//! counts for the dashboard and `/metrics`.

pub mod import;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::SqlitePool;

use crate::storage::log_summary;
use crate::storage::writer::Writer;
use crate::taskrouter_client::TaskRouterClient;
use import::{Progress, RecentSids, Summary, Via, Window};

/// How far back each poll of the follower reaches before the previous poll began, at least:
/// an event TaskRouter lists a little late is still in the next window.
pub const FOLLOW_OVERLAP: Duration = Duration::from_secs(15);
/// The same for reconciliation, whose windows are minutes apart.
pub const RECONCILE_OVERLAP: Duration = Duration::from_secs(120);
/// Jobs started from pages that the import page keeps listing.
const JOBS_KEPT: usize = 20;

/// What the pollers and jobs need, fixed at start.
pub struct HistoryConfig {
    pub client: Option<TaskRouterClient>,
    /// `--workspace-sid`: the workspaces followed and reconciled, and the default for imports.
    pub workspaces: Vec<String>,
    pub follow_every: Option<Duration>,
    pub reconcile_every: Option<Duration>,
}

/// Counts of one poller.
#[derive(Debug, Default)]
struct PollerStatus {
    polls: AtomicU64,
    failures: AtomicU64,
    new_events: AtomicU64,
    /// When the last poll ended (epoch ms; 0: never).
    last_poll_ms: AtomicI64,
    /// When the last successful poll began: everything TaskRouter listed before it is in the log.
    last_ok_started_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
}

/// An import started from a page.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    /// What it fetches, in words.
    pub what: String,
    pub started_ms: i64,
    pub progress: Progress,
    outcome: Mutex<Option<Result<Vec<Summary>, String>>>,
}

/// A job as a page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: u64,
    pub what: String,
    pub started_ms: i64,
    pub running: bool,
    pub pages: u64,
    pub fetched: u64,
    pub new: u64,
    pub known: u64,
    pub redacted: u64,
    /// How much of its time window is fetched, 0–100.
    pub percent: u64,
    /// The summary lines when it ended well, else the error.
    pub result: Option<Result<Vec<String>, String>>,
}

/// A poller as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PollerView {
    pub every_seconds: u64,
    pub polls: u64,
    pub failures: u64,
    pub new_events: u64,
    /// Seconds since the last poll ended.
    pub last_poll_ago_seconds: Option<i64>,
    /// Seconds since the last successful poll began: how stale what the log holds may be.
    pub lag_seconds: Option<i64>,
    pub last_error: Option<String>,
}

/// The whole of the server's Events API side.
pub struct History {
    config: HistoryConfig,
    /// The workspaces followed and reconciled (the configured ones, and any added once known).
    workspaces: std::sync::RwLock<Vec<String>>,
    writer: Writer,
    pool: SqlitePool,
    follow: PollerStatus,
    reconcile: PollerStatus,
    imported: AtomicU64,
    jobs: Mutex<Vec<Arc<Job>>>,
    next_job: AtomicU64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl History {
    pub fn new(mut config: HistoryConfig, writer: Writer, pool: SqlitePool) -> Arc<Self> {
        Arc::new(Self {
            // Kept here only: `demo` adds its workspace later.
            workspaces: std::sync::RwLock::new(std::mem::take(&mut config.workspaces)),
            config,
            writer,
            pool,
            follow: PollerStatus::default(),
            reconcile: PollerStatus::default(),
            imported: AtomicU64::new(0),
            jobs: Mutex::new(Vec::new()),
            next_job: AtomicU64::new(1),
        })
    }

    /// Whether REST credentials are configured.
    pub fn has_credentials(&self) -> bool {
        self.config.client.is_some()
    }

    /// The workspaces followed and reconciled.
    pub fn workspaces(&self) -> Vec<String> {
        self.workspaces.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Follows and reconciles `workspace` too (`demo` learns its workspace after the server
    /// is built).
    pub fn add_workspace(&self, workspace: &str) {
        let mut workspaces = self.workspaces.write().unwrap_or_else(|p| p.into_inner());
        if !workspaces.iter().any(|w| w == workspace) {
            workspaces.push(workspace.to_string());
        }
    }

    /// Starts the follower and the reconciler that are configured (on the current runtime);
    /// they poll the workspaces known at each round.
    pub fn start_pollers(self: &Arc<Self>) {
        if self.config.client.is_none() {
            return;
        }
        if let Some(every) = self.config.follow_every {
            let overlap = FOLLOW_OVERLAP.max(every * 3);
            tokio::spawn(self.clone().poll(Via::Follow, every, overlap));
        }
        if let Some(every) = self.config.reconcile_every {
            tokio::spawn(self.clone().poll(Via::Reconcile, every, RECONCILE_OVERLAP));
        }
    }

    fn status(&self, via: Via) -> &PollerStatus {
        match via {
            Via::Follow => &self.follow,
            _ => &self.reconcile,
        }
    }

    /// Polls every `every`, each window starting `overlap` before the previous successful poll
    /// began. The first poll starts from the log's newest fact of the workspace (for
    /// reconciliation, one interval earlier still: what was dropped just before a stop), so a
    /// tracer that was down fills the gap itself.
    async fn poll(self: Arc<Self>, via: Via, every: Duration, overlap: Duration) {
        let Some(client) = self.config.client.clone() else { return };
        let overlap_ms = overlap.as_millis() as i64;
        let first_reach_ms = overlap_ms + if via == Via::Reconcile { every.as_millis() as i64 } else { 0 };
        let mut since: HashMap<String, i64> = HashMap::new();
        let mut recent = RecentSids::default();
        loop {
            let workspaces = self.workspaces();
            if workspaces.is_empty() {
                // Not known yet (`demo` adds its workspace once its simulator runs).
                tokio::time::sleep(every.min(Duration::from_secs(1))).await;
                continue;
            }
            for workspace in &workspaces {
                let started = now_ms();
                let from = match since.get(workspace) {
                    Some(from) => *from,
                    None => match log_summary::newest_fact_ms(&self.pool, workspace).await {
                        Ok(Some(newest)) => newest.min(started) - first_reach_ms,
                        _ => started - every.as_millis() as i64 - overlap_ms,
                    },
                };
                let window = Window { since_ms: Some(from), ..Window::default() };
                let progress = Progress::default();
                let outcome = import::run(
                    &client,
                    &self.writer,
                    workspace,
                    &window,
                    via,
                    &progress,
                    Some(&mut recent),
                    started,
                )
                .await;
                let status = self.status(via);
                status.polls.fetch_add(1, Ordering::Relaxed);
                status.last_poll_ms.store(now_ms(), Ordering::Relaxed);
                match outcome {
                    Ok(summary) => {
                        status.new_events.fetch_add(summary.new, Ordering::Relaxed);
                        status.last_ok_started_ms.store(started, Ordering::Relaxed);
                        *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                        if summary.new > 0 && via == Via::Reconcile {
                            tracing::info!(
                                workspace,
                                healed = summary.new,
                                "reconciliation appended events the webhooks missed"
                            );
                        }
                        since.insert(workspace.clone(), started - overlap_ms);
                        recent.forget_before(started - 2 * overlap_ms);
                    }
                    Err(error) => {
                        // The window stays where it was, so the next poll covers the gap.
                        status.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(workspace, via = via.as_str(), %error, "polling the Events API failed");
                        *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(error.to_string());
                        since.entry(workspace.clone()).or_insert(from);
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Starts an import of `window` in `workspace` (else the configured one, else the one
    /// recorded with the task, else the latest recorded) and returns its job.
    ///
    /// # Errors
    /// A sentence when there are no credentials or no workspace is known.
    pub async fn start_import(
        self: &Arc<Self>,
        workspace: Option<String>,
        window: Window,
    ) -> Result<u64, String> {
        let client = self.config.client.clone().ok_or_else(|| {
            format!(
                "No REST credentials are configured: {} when starting the tracer, to fetch TaskRouter's events.",
                crate::taskrouter_client::SET_CREDENTIALS
            )
        })?;
        let workspace = match workspace.filter(|w| !w.trim().is_empty()) {
            Some(workspace) => workspace.trim().to_string(),
            None => self.default_workspace(window.task_sid.as_deref()).await?,
        };
        if !workspace.starts_with("WS") {
            return Err(format!("{workspace:?} is not a Workspace Sid (WS…)"));
        }
        let id = self.next_job.fetch_add(1, Ordering::Relaxed);
        let what = describe_window(&workspace, &window);
        let job = Arc::new(Job {
            id,
            what,
            started_ms: now_ms(),
            progress: Progress::default(),
            outcome: Mutex::new(None),
        });
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            jobs.push(job.clone());
            if jobs.len() > JOBS_KEPT {
                jobs.remove(0);
            }
        }
        let history = self.clone();
        tokio::spawn(async move {
            let outcome = import::run(
                &client,
                &history.writer,
                &workspace,
                &window,
                Via::Import,
                &job.progress,
                None,
                now_ms(),
            )
            .await;
            if let Ok(summary) = &outcome {
                history.imported.fetch_add(summary.new, Ordering::Relaxed);
            }
            job.progress.finished.store(true, Ordering::Release);
            *job.outcome.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(outcome.map(|s| vec![s]).map_err(|e| e.to_string()));
        });
        Ok(id)
    }

    async fn default_workspace(&self, task_sid: Option<&str>) -> Result<String, String> {
        if let Some(workspace) = self.workspaces().first() {
            return Ok(workspace.clone());
        }
        let recorded = match task_sid {
            Some(sid) => log_summary::workspace_of(&self.pool, sid).await.ok().flatten(),
            None => None,
        };
        let recorded = match recorded {
            Some(workspace) => Some(workspace),
            None => log_summary::latest_workspace(&self.pool).await.ok().flatten(),
        };
        recorded.ok_or_else(|| {
            "No workspace is known: give its Workspace Sid (WS…), or start the tracer with --workspace-sid."
                .to_string()
        })
    }

    /// The page's jobs, newest first.
    pub fn jobs(&self) -> Vec<JobView> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().rev().map(|job| job_view(job)).collect()
    }

    /// One job.
    pub fn job(&self, id: u64) -> Option<JobView> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().find(|job| job.id == id).map(|job| job_view(job))
    }

    /// The follower, when configured.
    pub fn follower(&self) -> Option<PollerView> {
        self.config.follow_every.filter(|_| self.polling()).map(|every| poller_view(&self.follow, every))
    }

    /// The reconciler, when configured.
    pub fn reconciler(&self) -> Option<PollerView> {
        self.config
            .reconcile_every
            .filter(|_| self.polling())
            .map(|every| poller_view(&self.reconcile, every))
    }

    fn polling(&self) -> bool {
        self.config.client.is_some()
    }

    /// Events appended by imports started from pages.
    pub fn imported(&self) -> u64 {
        self.imported.load(Ordering::Relaxed)
    }

    /// The Prometheus text of the Events API side.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tracer_events_api_events_total Events fetched from TaskRouter's Events API and appended as new facts, by path.\n\
             # TYPE tracer_events_api_events_total counter\n\
             tracer_events_api_events_total{{via=\"follow\"}} {}\n\
             tracer_events_api_events_total{{via=\"reconcile\"}} {}\n\
             tracer_events_api_events_total{{via=\"import\"}} {}\n\
             # HELP tracer_events_api_healed_total Events reconciliation found that no webhook had delivered.\n\
             # TYPE tracer_events_api_healed_total counter\n\
             tracer_events_api_healed_total {}",
            self.follow.new_events.load(Ordering::Relaxed),
            self.reconcile.new_events.load(Ordering::Relaxed),
            self.imported(),
            self.reconcile.new_events.load(Ordering::Relaxed),
        );
        for (via, status, configured) in [
            (Via::Follow, &self.follow, self.follower().is_some()),
            (Via::Reconcile, &self.reconcile, self.reconciler().is_some()),
        ] {
            if !configured {
                continue;
            }
            let name = via.as_str();
            let view = poller_view(status, Duration::ZERO);
            let _ = writeln!(
                out,
                "# HELP tracer_events_api_polls_total Polls of the Events API.\n\
                 # TYPE tracer_events_api_polls_total counter\n\
                 tracer_events_api_polls_total{{via=\"{name}\"}} {}\n\
                 # HELP tracer_events_api_poll_failures_total Polls of the Events API that failed.\n\
                 # TYPE tracer_events_api_poll_failures_total counter\n\
                 tracer_events_api_poll_failures_total{{via=\"{name}\"}} {}\n\
                 # HELP tracer_events_api_last_poll_timestamp_seconds When the last poll ended.\n\
                 # TYPE tracer_events_api_last_poll_timestamp_seconds gauge\n\
                 tracer_events_api_last_poll_timestamp_seconds{{via=\"{name}\"}} {:.3}\n\
                 # HELP tracer_events_api_lag_seconds Seconds since the last successful poll began: events since may not be in the log yet.\n\
                 # TYPE tracer_events_api_lag_seconds gauge\n\
                 tracer_events_api_lag_seconds{{via=\"{name}\"}} {}",
                view.polls,
                view.failures,
                status.last_poll_ms.load(Ordering::Relaxed) as f64 / 1000.0,
                view.lag_seconds.map_or_else(|| "NaN".to_string(), |s| s.to_string()),
            );
        }
        out
    }
}

fn poller_view(status: &PollerStatus, every: Duration) -> PollerView {
    let now = now_ms();
    let ago = |ms: i64| (ms > 0).then(|| (now - ms).max(0) / 1000);
    PollerView {
        every_seconds: every.as_secs(),
        polls: status.polls.load(Ordering::Relaxed),
        failures: status.failures.load(Ordering::Relaxed),
        new_events: status.new_events.load(Ordering::Relaxed),
        last_poll_ago_seconds: ago(status.last_poll_ms.load(Ordering::Relaxed)),
        lag_seconds: ago(status.last_ok_started_ms.load(Ordering::Relaxed)),
        last_error: status.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    }
}

fn job_view(job: &Job) -> JobView {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let outcome = job.outcome.lock().unwrap_or_else(|p| p.into_inner()).clone();
    JobView {
        id: job.id,
        what: job.what.clone(),
        started_ms: job.started_ms,
        running: outcome.is_none(),
        pages: load(&job.progress.pages),
        fetched: load(&job.progress.fetched),
        new: load(&job.progress.new),
        known: load(&job.progress.known),
        redacted: load(&job.progress.redacted),
        percent: (job.progress.fraction() * 100.0).round() as u64,
        result: outcome.map(|o| o.map(|summaries| summaries.iter().map(Summary::describe).collect())),
    }
}

/// `window` in words.
pub fn describe_window(workspace: &str, window: &Window) -> String {
    let iso = import::iso;
    let mut what = match &window.task_sid {
        Some(task) => format!("task {task}'s events in {workspace}"),
        None => format!("events of {workspace}"),
    };
    match (window.since_ms, window.until_ms) {
        (Some(since), Some(until)) => what.push_str(&format!(" from {} to {}", iso(since), iso(until))),
        (Some(since), None) => what.push_str(&format!(" since {}", iso(since))),
        (None, Some(until)) => what.push_str(&format!(" until {}", iso(until))),
        (None, None) if window.task_sid.is_some() => what.push_str(" (the last 30 days)"),
        (None, None) => what.push_str(" (the last 15 minutes)"),
    }
    what
}
