//! The command line: every option, its environment variable and its help text. Parsing only;
//! `commands` runs them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

use crate::alerts::AlertUrl;
use crate::ingest::SignatureMode;
use crate::settings::{
    RestSettings, Settings, TwilioCredentials, DEFAULT_BODY_LIMIT, DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_DATABASE,
    DEFAULT_LISTEN, DEFAULT_QUEUE_CAPACITY, DEFAULT_TASKROUTER_BASE_URL, DEFAULT_TASKROUTER_TIMEOUT_MS,
    DEFAULT_WAL_LIMIT_MIB,
};
use crate::storage::writer::{Synchronous, DEFAULT_COMMIT_BATCH};
use taskrouter_simulator::event_streams::EventStreamsSink;

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
    Demo(Box<DemoArgs>),
    /// Drive a tracer (or any endpoint) with simulated TaskRouter traffic; prints the ground truth.
    Simulate(Box<SimulateArgs>),
    /// Clear the projections (tasks, reservations, workers, timelines) and replay the whole log.
    Rebuild(RebuildArgs),
    /// Print one task's timeline, reservations and flags.
    Timeline(TimelineArgs),
    /// TaskRouter's cumulative statistics (and more) for a window, recomputed from the log.
    Report(ReportArgs),
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
    #[arg(long, env = "TRACER_TASKROUTER_BASE_URL", default_value = DEFAULT_TASKROUTER_BASE_URL)]
    pub taskrouter_base_url: String,
    /// How long one REST call may take before it counts as timed out, in ms (reads are tried up
    /// to 3 times; a write is sent once).
    #[arg(long, env = "TRACER_TASKROUTER_TIMEOUT_MS", default_value_t = DEFAULT_TASKROUTER_TIMEOUT_MS)]
    pub taskrouter_timeout_ms: u64,
}

impl RestArgs {
    /// The client these options give; `None` without credentials.
    pub fn client(&self) -> Option<crate::taskrouter_client::TaskRouterClient> {
        RestSettings { base_url: self.taskrouter_base_url.clone(), timeout_ms: self.taskrouter_timeout_ms }
            .client(&self.twilio.credentials())
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
    #[arg(long, env = "TRACER_DATABASE", default_value = DEFAULT_DATABASE)]
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
    #[arg(long, env = "TRACER_LISTEN", default_value = DEFAULT_LISTEN)]
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
    #[arg(long, env = "TRACER_SIGNATURE_CHECK", value_parser = signature_mode_parser())]
    pub signature_check: Option<SignatureMode>,
    /// Largest webhook body stored whole, in bytes; a longer one is answered 413 and stored truncated.
    #[arg(long, env = "TRACER_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// SQLite synchronous mode for the log: full survives power loss, normal only a process crash.
    #[arg(long, env = "TRACER_SYNCHRONOUS", value_parser = synchronous_parser(), default_value = "full")]
    pub synchronous: Synchronous,
    /// Most requests committed in one transaction (group commit); 1 means one fsync per request.
    #[arg(long, env = "TRACER_COMMIT_BATCH", default_value_t = DEFAULT_COMMIT_BATCH)]
    pub commit_batch: usize,
    /// How long a write waits for a lock held by another process before answering 503, in ms.
    #[arg(long, env = "TRACER_BUSY_TIMEOUT_MS", default_value_t = DEFAULT_BUSY_TIMEOUT_MS)]
    pub busy_timeout_ms: u64,
    /// Requests that may wait for the writer at once; beyond that they are answered 503 at once.
    #[arg(long, env = "TRACER_QUEUE_CAPACITY", default_value_t = DEFAULT_QUEUE_CAPACITY)]
    pub queue_capacity: usize,
    /// Size of the write-ahead log, in MiB, past which it is started again from its beginning
    /// (under load each restart holds the next writes back for 20-30 ms, as it syncs the
    /// database file; smaller keeps less on disk).
    #[arg(long, env = "TRACER_WAL_LIMIT_MIB", default_value_t = DEFAULT_WAL_LIMIT_MIB, value_parser = clap::value_parser!(u32).range(1..))]
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
    pub alert_webhooks: Vec<AlertUrl>,
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
    #[arg(long, env = "TRACER_TASKROUTER_BASE_URL", default_value = DEFAULT_TASKROUTER_BASE_URL)]
    pub taskrouter_base_url: String,
    /// How long one REST call to TaskRouter may take before it counts as timed out, in ms
    /// (reads are tried up to 3 times; a write that times out is reported as of unknown outcome).
    #[arg(long, env = "TRACER_TASKROUTER_TIMEOUT_MS", default_value_t = DEFAULT_TASKROUTER_TIMEOUT_MS)]
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
    /// The settings these options give.
    pub fn into_settings(self) -> Settings {
        Settings {
            listen: self.listen,
            database: self.database.database,
            public_url: self.public_url,
            twilio: self.twilio.credentials(),
            signature_check: self.signature_check,
            body_limit: self.body_limit,
            synchronous: self.synchronous,
            commit_batch: self.commit_batch,
            busy_timeout_ms: self.busy_timeout_ms,
            queue_capacity: self.queue_capacity,
            wal_limit_mib: self.wal_limit_mib,
            forward_to: self.forward_to,
            follow_events_api: self.follow_events_api,
            reconcile_every: self.reconcile_every,
            connect: self.connect,
            workspace_known_later: false,
            alert_webhooks: self.alert_webhooks,
            demo_alert_receiver: false,
            workers: self.workers,
            projection: self.projection.config(),
            rest: RestSettings {
                base_url: self.web.taskrouter_base_url,
                timeout_ms: self.web.taskrouter_timeout_ms,
            },
            workspace_sid: self.web.workspace_sid,
            ui_password: self.web.ui_password.map(Into::into),
        }
    }
}

impl TwilioArgs {
    /// The credentials these options give, secrets wrapped so they cannot be printed.
    pub fn credentials(&self) -> TwilioCredentials {
        TwilioCredentials {
            account_sid: self.account_sid.clone(),
            auth_token: self.auth_token.clone().map(Into::into),
            api_key: self.api_key.clone(),
            api_secret: self.api_secret.clone().map(Into::into),
        }
    }
}

fn signature_mode_parser() -> impl TypedValueParser<Value = SignatureMode> {
    clap::builder::PossibleValuesParser::new(["enforce", "record", "off"])
        .map(|mode| mode.parse().expect("one of the possible values"))
}

fn synchronous_parser() -> impl TypedValueParser<Value = Synchronous> {
    clap::builder::PossibleValuesParser::new(["full", "normal"])
        .map(|mode| mode.parse().expect("one of the possible values"))
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Address the tracer listens on.
    #[arg(long, env = "TRACER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The SQLite database file holding the demo's log (created if missing).
    #[arg(long, env = "TRACER_DEMO_DATABASE", default_value = "taskrouter-tracer-demo.db")]
    pub database: PathBuf,
    /// Address the simulator's TaskRouter REST API listens on (port 0: any free port).
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:0")]
    pub simulator_listen: SocketAddr,
    #[command(flatten)]
    pub twilio: TwilioArgs,
    /// New tasks per minute.
    #[arg(long, env = "SIM_RATE", default_value_t = 20.0)]
    pub rate: f64,
    /// Seed for SIDs and simulated people (default: random).
    #[arg(long, env = "SIM_SEED")]
    pub seed: Option<u64>,
    /// Seconds a reservation may stay pending before it times out.
    #[arg(long, env = "SIM_RESERVATION_TIMEOUT", default_value_t = 30)]
    pub reservation_timeout: u64,
    /// Simulated seconds per real second (1 is real time).
    #[arg(long, env = "SIM_SPEED", default_value_t = 1.0)]
    pub speed: f64,
    /// Fraction of webhooks the simulator never sends (0 to 1): reconciliation with its Events
    /// API heals them every --reconcile-every minutes (1 in the demo).
    #[arg(long, env = "SIM_DROP_RATE", default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Send no webhook at all: the tracer follows the simulator's Events API every second instead.
    #[arg(long, env = "SIM_NO_WEBHOOKS")]
    pub no_webhooks: bool,
    /// Minutes between reconciliations with the Events API (0: off).
    #[arg(long, env = "TRACER_RECONCILE_EVERY", default_value_t = 1)]
    pub reconcile_every: u64,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Base URL of the tracer (or any endpoint) to call: callbacks go to TARGET/webhooks/assignment
    /// and TARGET/webhooks/events.
    #[arg(long, env = "SIM_TARGET")]
    pub target: String,
    /// New tasks per minute (simulated time).
    #[arg(long, env = "SIM_RATE", default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds of simulated time during which tasks arrive.
    #[arg(long, env = "SIM_DURATION", default_value_t = 60)]
    pub duration: u64,
    /// Seconds of simulated time after arrivals stop, for open tasks to finish.
    #[arg(long, env = "SIM_DRAIN", default_value_t = 600)]
    pub drain: u64,
    /// Seed for SIDs, simulated people and faults: the same seed gives the same run.
    #[arg(long, env = "SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Simulated seconds per real second; 0 runs as fast as the target answers.
    #[arg(long, env = "SIM_SPEED", default_value_t = 0.0)]
    pub speed: f64,
    /// Address the simulator's TaskRouter REST API listens on (port 0: any free port).
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Account SID the simulator reports and accepts for REST (default: generated).
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub account_sid: Option<String>,
    /// Auth token that signs callbacks and authenticates REST calls (default: generated).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Share of event callbacks sent twice (same body, Sid and idempotency token).
    #[arg(long, env = "SIM_DUPLICATE_RATE", default_value_t = 0.0)]
    pub duplicate_rate: f64,
    /// Share of event callbacks held back and sent after the next one.
    #[arg(long, env = "SIM_REORDER_RATE", default_value_t = 0.0)]
    pub reorder_rate: f64,
    /// Share of event callbacks never sent.
    #[arg(long, env = "SIM_DROP_RATE", default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Seconds a reservation may stay pending before it times out.
    #[arg(long, env = "SIM_RESERVATION_TIMEOUT", default_value_t = 30)]
    pub reservation_timeout: u64,
    /// How long an assignment callback's answer is awaited, in ms (TaskRouter: 5000).
    #[arg(long, env = "SIM_ASSIGNMENT_TIMEOUT_MS", default_value_t = 5000)]
    pub assignment_timeout_ms: u64,
    /// How long an event callback's answer is awaited before its one retry, in ms (TaskRouter: 15000).
    #[arg(long, env = "SIM_EVENT_TIMEOUT_MS", default_value_t = 15000)]
    pub event_timeout_ms: u64,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// Which paths carry the workspace's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeliveryPaths {
    /// Event callbacks (form webhooks to the workspace's EventCallbackUrl).
    #[default]
    Webhooks,
    /// An Event Streams webhook sink only: signed CloudEvent batches, out of order, some twice.
    EventStreams,
    /// Both, so every event arrives twice, once each way.
    Both,
}

/// How Event Streams is simulated: batch size and share of bodies delivered twice.
#[derive(Args, Debug, Clone)]
pub struct DeliveryArgs {
    /// Which paths carry the workspace's events.
    #[arg(long, env = "SIM_DELIVERY", value_enum, default_value_t = DeliveryPaths::Webhooks)]
    pub delivery: DeliveryPaths,
    /// CloudEvents per Event Streams body at most (bodies also stay under 64 KB).
    #[arg(long, env = "SIM_STREAM_BATCH", default_value_t = 10)]
    pub stream_batch: usize,
    /// Share of Event Streams bodies delivered a second time.
    #[arg(long, env = "SIM_STREAM_REDELIVERY", default_value_t = 0.05)]
    pub stream_redelivery: f64,
}

impl DeliveryArgs {
    /// The sink at `base`'s `/webhooks/event-streams`, when Event Streams is one of the paths.
    pub fn sink(&self, base: &str) -> Option<EventStreamsSink> {
        (self.delivery != DeliveryPaths::Webhooks).then(|| EventStreamsSink {
            url: format!("{}/webhooks/event-streams", base.trim_end_matches('/')),
            batch_size: self.stream_batch.max(1),
            also_webhooks: self.delivery == DeliveryPaths::Both,
            redelivery_rate: self.stream_redelivery.clamp(0.0, 1.0),
        })
    }
}

/// `report`'s output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// `report`'s rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ByArg {
    Workspace,
    Queue,
    Workflow,
    Worker,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The SQLite database file holding the log.
    #[arg(long, env = "TRACER_DATABASE", default_value = DEFAULT_DATABASE)]
    pub database: PathBuf,
    /// Window start (ISO-8601, TaskRouter's time); default: --minutes before --until.
    #[arg(long)]
    pub since: Option<String>,
    /// Window end (ISO-8601, exclusive); default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// Window length when --since is not given (TaskRouter's default is 15).
    #[arg(long)]
    pub minutes: Option<String>,
    /// One row per workspace, queue, workflow or worker.
    #[arg(long, value_enum, default_value = "workspace")]
    pub by: ByArg,
    /// Only this workspace (WS…); default: every workspace in the log.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Only this queue, workflow or worker (with --by).
    #[arg(long)]
    pub sid: Option<String>,
    /// Comma-separated wait thresholds in seconds (TaskRouter's SplitByWaitTime).
    #[arg(long)]
    pub split_by_wait_time: Option<String>,
    /// Only tasks of this channel (unique name or TC… Sid).
    #[arg(long)]
    pub task_channel: Option<String>,
    /// Walk the whole hash chain too and report whether it held.
    #[arg(long)]
    pub verify: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn commands_parse_with_their_defaults() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from([
            "taskrouter-tracer",
            "simulate",
            "--target",
            "http://127.0.0.1:1",
            "--seed",
            "9",
        ]);
        let Command::Simulate(args) = cli.command else { panic!("simulate") };
        assert_eq!((args.seed, args.rate, args.speed), (9, 20.0, 0.0));
        let cli = Cli::parse_from(["taskrouter-tracer", "demo"]);
        let Command::Demo(args) = cli.command else { panic!("demo") };
        assert_eq!(args.database.to_str(), Some("taskrouter-tracer-demo.db"));
        assert_eq!(args.speed, 1.0);
    }

    #[test]
    fn serve_takes_repeated_alert_webhooks_and_refuses_one_that_is_not_http() {
        use crate::alerts::AlertUrl;

        let parse = |urls: &[&str]| {
            let mut argv = vec!["taskrouter-tracer", "serve"];
            for url in urls {
                argv.extend(["--alert-webhook", url]);
            }
            Cli::try_parse_from(argv)
        };
        let Ok(Cli { command: Command::Serve(args) }) =
            parse(&["https://a.example/secretpath1234", "https://b.example/y"])
        else {
            panic!("two webhooks parse")
        };
        let urls: Vec<&str> = args.alert_webhooks.iter().map(AlertUrl::as_str).collect();
        assert_eq!(urls, ["https://a.example/secretpath1234", "https://b.example/y"]);
        let shown = format!("{args:?}");
        assert!(shown.contains("https://a.example/…1234") && !shown.contains("secretpath"), "redacted");
        assert!(parse(&["ftp://a.example/x"]).is_err());
    }

    #[test]
    fn reservation_timeouts_come_from_the_command_line_and_environment() {
        let cli = Cli::parse_from([
            "taskrouter-tracer",
            "rebuild",
            "--reservation-timeout",
            "WW00000000000000000000000000000001=30",
            "--reservation-timeout",
            "WW00000000000000000000000000000002=600",
            "--default-reservation-timeout",
            "90",
        ]);
        let Command::Rebuild(args) = cli.command else { panic!("rebuild") };
        let config = args.projection.config();
        assert_eq!(config.reservation_timeout_ms(Some("WW00000000000000000000000000000001")), 30_000);
        assert_eq!(config.reservation_timeout_ms(Some("WW00000000000000000000000000000002")), 600_000);
        assert_eq!(config.reservation_timeout_ms(None), 90_000);
        assert!(
            Cli::try_parse_from(["taskrouter-tracer", "rebuild", "--reservation-timeout", "WQ1=30"]).is_err()
        );
    }
}
