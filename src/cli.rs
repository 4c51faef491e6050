//! The command line: every option, its environment variable and its help text. Parsing only;
//! `commands` runs them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::ingest::SignatureMode;
use crate::storage::writer::Synchronous;

#[derive(Parser, Debug)]
#[command(
    name = "taskrouter-tracer",
    version,
    about = "Records every Twilio TaskRouter webhook in a tamper-evident log and explains what happened to each task."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Receive webhooks and serve the pages and APIs.
    Serve(Box<ServeArgs>),
    /// Walk the log's hash chain; exits non-zero naming the first tampered row.
    Verify(DatabaseArgs),
    /// Run the tracer together with a simulated TaskRouter that keeps realistic traffic flowing.
    Demo(Box<crate::demo::DemoArgs>),
    /// Drive a tracer (or any endpoint) with simulated TaskRouter traffic; prints the ground truth.
    Simulate(Box<crate::demo::SimulateArgs>),
    /// Clear the projections (tasks, reservations, workers, timelines) and replay the whole log.
    Rebuild(RebuildArgs),
    /// Print one task's timeline, reservations and flags.
    Timeline(TimelineArgs),
    /// TaskRouter's cumulative statistics (and more) for a window, recomputed from the log.
    Report(crate::reports::cli::ReportArgs),
    /// Point a workspace's EventCallbackUrl and every Workflow's AssignmentCallbackUrl at the
    /// tracer, recording the originals in the log first.
    Connect(Box<ConnectArgs>),
    /// Restore what `connect` changed (only values still as connect set them, unless --force).
    Disconnect(Box<ConnectArgs>),
    /// Fetch a workspace's events from TaskRouter's Events API into the log: timelines from
    /// credentials alone, no tunnel, no webhook. Safe while `serve` runs on the same database.
    Import(Box<ImportArgs>),
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The Workspace to import (WS…; repeatable, or a comma-separated list).
    #[arg(long = "workspace-sid", env = "TWILIO_WORKSPACE_SID", value_delimiter = ',', required = true)]
    pub workspace_sids: Vec<String>,
    /// Events since this time (ISO 8601, e.g. 2026-12-05T09:00:00Z). TaskRouter keeps 30 days.
    #[arg(long, value_parser = parse_instant, conflicts_with = "minutes")]
    pub since: Option<i64>,
    /// Events of the last N minutes (TaskRouter's default when neither this nor --since is given: 15;
    /// with --task-sid: the whole 30 days).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    pub minutes: Option<u32>,
    /// Events until this time (ISO 8601); default: now.
    #[arg(long, value_parser = parse_instant)]
    pub until: Option<i64>,
    /// Only this task's events (WT…; repeatable, or a comma-separated list).
    #[arg(long = "task-sid", value_delimiter = ',')]
    pub task_sids: Vec<String>,
    #[command(flatten)]
    pub rest: RestArgs,
    #[command(flatten)]
    pub projection: ProjectionArgs,
}

/// The REST client's options for the commands that call TaskRouter and serve nothing
/// (`import`, `connect`, `disconnect`).
#[derive(Args, Debug, Clone)]
pub struct RestArgs {
    #[command(flatten)]
    pub twilio: TwilioArgs,
    /// Where the REST calls go: TaskRouter, or the simulator's REST API.
    #[arg(long, env = "TRACER_TASKROUTER_BASE_URL", default_value = crate::taskrouter_client::DEFAULT_BASE_URL)]
    pub taskrouter_base_url: String,
    /// How long one REST call may take before it counts as timed out, in ms (reads are tried up
    /// to 3 times; a write is sent once).
    #[arg(long, env = "TRACER_TASKROUTER_TIMEOUT_MS", default_value_t = 10_000)]
    pub taskrouter_timeout_ms: u64,
}

impl RestArgs {
    /// The client these options give; `None` without credentials.
    pub fn client(&self) -> Option<crate::taskrouter_client::TaskRouterClient> {
        crate::taskrouter_client::TaskRouterClient::configured(
            &self.twilio,
            &self.taskrouter_base_url,
            self.taskrouter_timeout_ms,
        )
    }
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The Workspace (WS…).
    #[arg(long = "workspace-sid", env = "TWILIO_WORKSPACE_SID")]
    pub workspace_sid: String,
    /// The tracer's URL as TaskRouter reaches it (connect: required).
    #[arg(long, env = "TRACER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Print what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// disconnect: restore the originals even where a value changed since connect.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub rest: RestArgs,
}

/// An ISO 8601 instant (a date alone is its midnight UTC), as epoch milliseconds.
fn parse_instant(raw: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis())
        })
        .map_err(|_| format!("{raw:?} is not an ISO 8601 time such as 2026-12-05T09:00:00Z"))
}

#[derive(Args, Debug, Clone)]
pub struct ProjectionArgs {
    /// A Workflow's reservation timeout, as WW…=SECONDS (repeatable; the env var takes a comma-separated list).
    #[arg(long = "reservation-timeout", env = "TRACER_RESERVATION_TIMEOUTS", value_delimiter = ',',
          value_parser = parse_workflow_timeout, value_name = "WW…=SECONDS")]
    pub reservation_timeouts: Vec<(String, u64)>,
    /// The reservation timeout of every other Workflow, in seconds (TaskRouter's default is 120).
    #[arg(long, env = "TRACER_DEFAULT_RESERVATION_TIMEOUT", default_value_t = 120)]
    pub default_reservation_timeout: u64,
}

impl ProjectionArgs {
    /// The projections' configuration.
    pub fn config(&self) -> crate::projections::ProjectionConfig {
        crate::projections::ProjectionConfig {
            default_reservation_timeout_ms: (self.default_reservation_timeout as i64).saturating_mul(1000),
            workflow_reservation_timeouts_ms: self
                .reservation_timeouts
                .iter()
                .map(|(sid, seconds)| (sid.clone(), (*seconds as i64).saturating_mul(1000)))
                .collect(),
        }
    }
}

fn parse_workflow_timeout(raw: &str) -> Result<(String, u64), String> {
    let (sid, seconds) = raw.trim().split_once('=').ok_or_else(|| format!("{raw:?} is not WW…=SECONDS"))?;
    if !sid.starts_with("WW") {
        return Err(format!("{sid:?} is not a Workflow Sid (WW…)"));
    }
    let seconds = seconds.trim().parse().map_err(|_| format!("{seconds:?} is not a number of seconds"))?;
    Ok((sid.to_string(), seconds))
}

#[derive(Args, Debug, Clone)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Change nothing: rebuild a scratch copy of the database and compare its projections with
    /// the stored (incremental) ones; exits 2 and prints the first differing lines when they
    /// differ. Safe while the server runs.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub projection: ProjectionArgs,
}

#[derive(Args, Debug, Clone)]
pub struct TimelineArgs {
    /// The Task Sid (WT…).
    pub task_sid: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// The SQLite database file holding the log (created if missing).
    #[arg(long, env = "TRACER_DATABASE", default_value = "taskrouter-tracer.db")]
    pub database: PathBuf,
}

#[derive(Args, Clone)]
pub struct TwilioArgs {
    /// Your Twilio Account SID (AC…), for REST calls.
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub account_sid: Option<String>,
    /// Your Twilio auth token: checks X-Twilio-Signature and authenticates REST calls. Never logged or shown.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// An API key SID (SK…), used for REST calls instead of the account SID and auth token.
    #[arg(long, env = "TWILIO_API_KEY")]
    pub api_key: Option<String>,
    /// The API key's secret. Never logged or shown.
    #[arg(long, env = "TWILIO_API_SECRET", hide_env_values = true)]
    pub api_secret: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TRACER_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The base URL Twilio calls (e.g. your tunnel's https://abc.ngrok.app): signatures are checked
    /// against it plus the request's path. Unset: the request's own Host header is used.
    #[arg(long, env = "TRACER_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub twilio: TwilioArgs,
    /// enforce: answer 403 to a missing or bad signature; record: accept but mark it; off: do not check.
    /// Default: enforce when an auth token is set, else off.
    #[arg(long, env = "TRACER_SIGNATURE_CHECK", value_enum)]
    pub signature_check: Option<SignatureMode>,
    /// Largest webhook body stored whole, in bytes; a longer one is answered 413 and stored truncated.
    #[arg(long, env = "TRACER_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// SQLite synchronous mode for the log: full survives power loss, normal only a process crash.
    #[arg(long, env = "TRACER_SYNCHRONOUS", value_enum, default_value = "full")]
    pub synchronous: Synchronous,
    /// Most requests committed in one transaction (group commit); 1 means one fsync per request.
    #[arg(long, env = "TRACER_COMMIT_BATCH", default_value_t = crate::storage::writer::DEFAULT_COMMIT_BATCH)]
    pub commit_batch: usize,
    /// How long a write waits for a lock held by another process before answering 503, in ms.
    #[arg(long, env = "TRACER_BUSY_TIMEOUT_MS", default_value_t = 2000)]
    pub busy_timeout_ms: u64,
    /// Requests that may wait for the writer at once; beyond that they are answered 503 at once.
    #[arg(long, env = "TRACER_QUEUE_CAPACITY", default_value_t = 16384)]
    pub queue_capacity: usize,
    /// Size of the write-ahead log, in MiB, past which it is started again from its beginning
    /// (under load each restart holds the next writes back for 20-30 ms, as it syncs the
    /// database file; smaller keeps less on disk).
    #[arg(long, env = "TRACER_WAL_LIMIT_MIB", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub wal_limit_mib: u32,
    /// Relay every accepted webhook to your app (e.g. http://127.0.0.1:8080), re-signed for that
    /// URL, and answer Twilio with what the app answers (like ngrok, but recorded and checked).
    #[arg(long, env = "TRACER_FORWARD_TO")]
    pub forward_to: Option<String>,
    /// Poll TaskRouter's Events API every SECONDS for the --workspace-sid's new events, so the
    /// tracer works with no public URL and no webhook at all (needs REST credentials). Off by default.
    #[arg(long, env = "TRACER_FOLLOW_EVENTS_API", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub follow_events_api: Option<u64>,
    /// Every MINUTES, fetch the recent window from the Events API and append what the webhooks
    /// missed (0: off). Default: 5 when REST credentials and --workspace-sid are set.
    #[arg(long, env = "TRACER_RECONCILE_EVERY", value_name = "MINUTES")]
    pub reconcile_every: Option<u64>,
    /// Connect --workspace-sid to this server (--public-url) at start, and disconnect on
    /// SIGINT/SIGTERM; meanwhile each webhook is forwarded to its original URL.
    #[arg(long, env = "TRACER_CONNECT")]
    pub connect: bool,
    /// The workspace to follow is added once known (`demo`, whose simulator starts after the server).
    #[arg(skip)]
    pub workspace_known_later: bool,
    /// POST alerts here as JSON (a Slack incoming webhook takes them as they are): reservation
    /// timeouts and overdue reservations, bad signatures, storage failing, rejected assignment
    /// answers, threshold rules. Repeatable; the env var takes a comma-separated list. Shown
    /// only redacted (scheme://host/…last 4).
    #[arg(
        long = "alert-webhook",
        env = "TRACER_ALERT_WEBHOOKS",
        value_delimiter = ',',
        value_name = "URL",
        hide_env_values = true
    )]
    pub alert_webhooks: Vec<crate::alerts::AlertUrl>,
    /// `demo`: receive the alerts on a page of this server too (`/demo/alerts`).
    #[arg(skip)]
    pub demo_alert_receiver: bool,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "TRACER_WORKERS")]
    pub workers: Option<usize>,
    #[command(flatten)]
    pub projection: ProjectionArgs,
    #[command(flatten)]
    pub web: WebArgs,
}

/// The pages' actions (REST calls to TaskRouter) and who may use them.
#[derive(Args, Clone)]
pub struct WebArgs {
    /// Where the tracer's REST calls (accept, reject, look up, create) go: TaskRouter, or the
    /// simulator's REST API.
    #[arg(long, env = "TRACER_TASKROUTER_BASE_URL", default_value = crate::taskrouter_client::DEFAULT_BASE_URL)]
    pub taskrouter_base_url: String,
    /// How long one REST call to TaskRouter may take before it counts as timed out, in ms
    /// (reads are tried up to 3 times; a write that times out is reported as of unknown outcome).
    #[arg(long, env = "TRACER_TASKROUTER_TIMEOUT_MS", default_value_t = 10_000)]
    pub taskrouter_timeout_ms: u64,
    /// The Workspace (WS…) the actions act in; unset: the workspace recorded with the task.
    #[arg(long, env = "TWILIO_WORKSPACE_SID")]
    pub workspace_sid: Option<String>,
    /// The password of the pages and the JSON API; required when listening on anything but
    /// loopback. Never logged or shown.
    #[arg(long, env = "TRACER_UI_PASSWORD", hide_env_values = true)]
    pub ui_password: Option<String>,
}

impl std::fmt::Debug for WebArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebArgs")
            .field("taskrouter_base_url", &self.taskrouter_base_url)
            .field("taskrouter_timeout_ms", &self.taskrouter_timeout_ms)
            .field("workspace_sid", &self.workspace_sid)
            .field("ui_password", &if self.ui_password.is_some() { "[set]" } else { "[unset]" })
            .finish()
    }
}

/// Secrets are shown only as whether they are set, so a `{:?}` can never leak them.
impl std::fmt::Debug for TwilioArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| if s.is_some() { "[set]" } else { "[unset]" };
        f.debug_struct("TwilioArgs")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &secret(&self.auth_token))
            .field("api_key", &self.api_key)
            .field("api_secret", &secret(&self.api_secret))
            .finish()
    }
}

impl ServeArgs {
    /// The signature mode in force: as given, else enforce with a token and off without.
    pub fn signature_mode(&self) -> SignatureMode {
        self.signature_check.unwrap_or(if self.twilio.auth_token.is_some() {
            SignatureMode::Enforce
        } else {
            SignatureMode::Off
        })
    }

    /// How often reconciliation runs: as given (0: never), else every 5 minutes when there
    /// are REST credentials and a workspace.
    pub fn reconcile_interval(&self) -> Option<std::time::Duration> {
        let configured = crate::taskrouter_client::Credentials::from_args(&self.twilio).is_some()
            && self.web.workspace_sid.as_deref().is_some_and(|w| !w.is_empty());
        match self.reconcile_every {
            Some(0) => None,
            Some(minutes) => Some(std::time::Duration::from_secs(minutes * 60)),
            None if configured => Some(std::time::Duration::from_secs(300)),
            None => None,
        }
    }

    /// Defaults for a server on `database`, as the command line would give them.
    pub fn defaults_for(database: PathBuf) -> Self {
        let mut args = Cli::parse_from(["taskrouter-tracer", "serve"]);
        let Command::Serve(ref mut serve) = args.command else { unreachable!("parsed serve") };
        serve.database.database = database;
        (**serve).clone()
    }
}
