//! What a server runs with, as plain values: `Settings`, built from the command line by `cli`
//! (or in code: `Settings::default`, `Settings::for_tests`). Nothing here reads the environment
//! or parses arguments, so a stray `TRACER_*` variable in the shell cannot change a test.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::alerts::AlertUrl;
use crate::ingest::SignatureMode;
use crate::projections::ProjectionConfig;
use crate::storage::writer::{Synchronous, WriterConfig, DEFAULT_COMMIT_BATCH};
use crate::taskrouter_client::{Credentials, TaskRouterClient};

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// The log's file unless told otherwise.
pub const DEFAULT_DATABASE: &str = "taskrouter-tracer.db";
/// Where REST calls go unless told otherwise: TaskRouter itself.
pub const DEFAULT_TASKROUTER_BASE_URL: &str = "https://taskrouter.twilio.com";
/// How long one REST call may take, in ms.
pub const DEFAULT_TASKROUTER_TIMEOUT_MS: u64 = 10_000;
/// The largest webhook body stored whole, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// How long a write waits for another process's lock, in ms.
pub const DEFAULT_BUSY_TIMEOUT_MS: u64 = 2000;
/// Requests that may wait for the writer at once.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16384;
/// The WAL's size past which it restarts, in MiB.
pub const DEFAULT_WAL_LIMIT_MIB: u32 = 1024;

/// A secret (auth token, API secret, UI password): it has no `Display`, and its `Debug` never
/// shows it, so it cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it (signing, authenticating).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// The Twilio credentials: the auth token checks signatures and, with the account SID,
/// authenticates REST calls; an API key and its secret may authenticate them instead.
#[derive(Debug, Clone, Default)]
pub struct TwilioCredentials {
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    pub api_key: Option<String>,
    pub api_secret: Option<Secret>,
}

impl TwilioCredentials {
    /// Whether REST calls can be authenticated: an API key and its secret, or the account SID
    /// and auth token.
    pub fn can_authenticate(&self) -> bool {
        self.rest_credentials().is_some()
    }

    /// What authenticates REST calls: an API key and secret, else the account SID and auth
    /// token; `None` when neither pair is complete.
    pub fn rest_credentials(&self) -> Option<Credentials> {
        match (&self.api_key, &self.api_secret, &self.account_sid, &self.auth_token) {
            (Some(key), Some(secret), _, _) => {
                Some(Credentials::ApiKey { key: key.clone(), secret: secret.expose().to_string() })
            }
            (_, _, Some(account_sid), Some(auth_token)) => Some(Credentials::AuthToken {
                account_sid: account_sid.clone(),
                auth_token: auth_token.expose().to_string(),
            }),
            _ => None,
        }
    }
}

/// Where the tracer's REST calls to TaskRouter go (TaskRouter, or the simulator's API).
#[derive(Debug, Clone)]
pub struct RestSettings {
    pub base_url: String,
    /// How long one call may take before it counts as timed out, in ms.
    pub timeout_ms: u64,
}

impl RestSettings {
    /// The REST client these settings and `twilio`'s credentials give; `None` without
    /// credentials.
    pub fn client(&self, twilio: &TwilioCredentials) -> Option<TaskRouterClient> {
        let timeout = Duration::from_millis(self.timeout_ms.max(1));
        twilio
            .rest_credentials()
            .map(|credentials| TaskRouterClient::new(&self.base_url, credentials, timeout))
    }
}

impl Default for RestSettings {
    fn default() -> Self {
        Self { base_url: DEFAULT_TASKROUTER_BASE_URL.into(), timeout_ms: DEFAULT_TASKROUTER_TIMEOUT_MS }
    }
}

/// Everything `serve` runs with. The command line's options say what each means.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: PathBuf,
    /// The base URL Twilio calls; signatures are checked against it (else the Host header).
    pub public_url: Option<String>,
    pub twilio: TwilioCredentials,
    /// As given; `None`: enforce with an auth token, else off ([`Settings::signature_mode`]).
    pub signature_check: Option<SignatureMode>,
    pub body_limit: usize,
    pub synchronous: Synchronous,
    pub commit_batch: usize,
    pub busy_timeout_ms: u64,
    pub queue_capacity: usize,
    pub wal_limit_mib: u32,
    /// Relay every accepted webhook to this app and answer with what it answers.
    pub forward_to: Option<String>,
    /// Poll the Events API every this many seconds.
    pub follow_events_api: Option<u64>,
    /// Reconcile with the Events API every this many minutes (0: never; `None`: the default).
    pub reconcile_every: Option<u64>,
    /// Connect the workspace at start and disconnect at the end.
    pub connect: bool,
    /// The workspace to follow is added once known (`demo`, whose simulator starts later).
    pub workspace_known_later: bool,
    pub alert_webhooks: Vec<AlertUrl>,
    /// `demo`: receive the alerts on a page of this server too.
    pub demo_alert_receiver: bool,
    /// HTTP worker threads (`None`: one per core).
    pub workers: Option<usize>,
    pub projection: ProjectionConfig,
    pub rest: RestSettings,
    /// The Workspace the actions act in and the Events API follows.
    pub workspace_sid: Option<String>,
    /// The password of the pages and the JSON API.
    pub ui_password: Option<Secret>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            database: DEFAULT_DATABASE.into(),
            public_url: None,
            twilio: TwilioCredentials::default(),
            signature_check: None,
            body_limit: DEFAULT_BODY_LIMIT,
            synchronous: Synchronous::Full,
            commit_batch: DEFAULT_COMMIT_BATCH,
            busy_timeout_ms: DEFAULT_BUSY_TIMEOUT_MS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            wal_limit_mib: DEFAULT_WAL_LIMIT_MIB,
            forward_to: None,
            follow_events_api: None,
            reconcile_every: None,
            connect: false,
            workspace_known_later: false,
            alert_webhooks: Vec::new(),
            demo_alert_receiver: false,
            workers: None,
            projection: ProjectionConfig::default(),
            rest: RestSettings::default(),
            workspace_sid: None,
            ui_password: None,
        }
    }
}

impl Settings {
    /// The defaults, on `database`, listening on a free loopback port.
    pub fn for_tests(database: impl Into<PathBuf>) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("a loopback address parses"),
            database: database.into(),
            ..Self::default()
        }
    }

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
    pub fn reconcile_interval(&self) -> Option<Duration> {
        let configured =
            self.twilio.can_authenticate() && self.workspace_sid.as_deref().is_some_and(|w| !w.is_empty());
        match self.reconcile_every {
            Some(0) => None,
            Some(minutes) => Some(Duration::from_secs(minutes * 60)),
            None if configured => Some(Duration::from_secs(300)),
            None => None,
        }
    }

    /// The writer's configuration.
    pub fn writer_config(&self) -> WriterConfig {
        WriterConfig {
            database: self.database.clone(),
            synchronous: self.synchronous,
            max_batch: self.commit_batch.max(1),
            busy_timeout: Duration::from_millis(self.busy_timeout_ms),
            queue_capacity: self.queue_capacity.max(1),
            wal_restart_frames: i64::from(self.wal_limit_mib) * 256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let mut settings = Settings::for_tests("t.db");
        settings.twilio.auth_token = Some("tok-12345".into());
        settings.twilio.api_secret = Some("api-67890".into());
        settings.ui_password = Some("correct horse".into());
        let shown = format!("{settings:?} {:#?}", settings.twilio);
        for secret in ["tok-12345", "api-67890", "correct horse"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(settings.twilio.auth_token.as_ref().map(Secret::expose), Some("tok-12345"));
    }

    #[test]
    fn defaults_are_those_of_the_command_line_without_options() {
        let settings = Settings::default();
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(settings.signature_mode(), SignatureMode::Off);
        assert_eq!(settings.reconcile_interval(), None);
        assert_eq!(settings.projection.default_reservation_timeout_ms, 120_000);
    }
}
