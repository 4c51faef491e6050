//! `spawn_app` and typed helpers, so tests read like scripts.

use std::path::PathBuf;
use std::time::Duration;

use taskrouter_protocol::signature;
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::rest;
use taskrouter_simulator::runtime::ClockMode;
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
use taskrouter_simulator::{start_scenario, RunningSimulator, ScenarioOptions};
use taskrouter_tracer::ingest::SignatureMode;
use taskrouter_tracer::settings::Settings;
use taskrouter_tracer::startup::Application;

pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";
/// The account the test simulators run as.
pub const SIM_ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A seeded simulator for tests: accounts and signatures as [`SIM_ACCOUNT`] / [`AUTH_TOKEN`],
/// virtual time as fast as possible, its REST API on `listener` (from `rest::bind`) or on a
/// random port.
pub fn start_simulator(
    seed: u64,
    callbacks: CallbackUrls,
    traffic: DemoTraffic,
    faults: Faults,
    listener: Option<std::net::TcpListener>,
) -> RunningSimulator {
    let mut options = simulator_options(seed, callbacks, traffic, faults);
    if let Some(listener) = listener {
        options.listener = listener;
    }
    start_scenario(options).expect("simulator starts")
}

/// [`start_simulator`]'s options (its REST API on a random port), for a test to change more.
pub fn simulator_options(
    seed: u64,
    callbacks: CallbackUrls,
    traffic: DemoTraffic,
    faults: Faults,
) -> ScenarioOptions {
    ScenarioOptions {
        seed,
        account_sid: Some(SIM_ACCOUNT.into()),
        auth_token: AUTH_TOKEN.into(),
        callbacks,
        traffic,
        faults,
        callback_timeouts: None,
        clock: ClockMode::AsFastAsPossible,
        listener: rest::bind("127.0.0.1:0".parse().unwrap()).unwrap().0,
        event_streams: None,
    }
}

/// Traffic-free simulator settings: nothing arrives unless a test creates it.
pub fn no_traffic(reservation_timeout: u64) -> DemoTraffic {
    DemoTraffic { tasks_per_minute: 0.0, arrivals_for_ms: 0, reservation_timeout }
}

pub struct TestApp {
    pub address: String,
    pub database: PathBuf,
    pub client: reqwest::Client,
    server: actix_web::dev::ServerHandle,
    progress: std::sync::Arc<taskrouter_tracer::storage::progress::ProjectionProgress>,
    /// `connect`/`disconnect` through this server (with REST credentials).
    pub connector: Option<taskrouter_tracer::connect::Connector>,
    _dir: tempfile::TempDir,
}

/// Starts the tracer with signature enforcement and a throwaway database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("tracer.db");
    let mut args = Settings::for_tests(database.clone());
    args.listen = "127.0.0.1:0".parse().unwrap();
    args.twilio.auth_token = Some(AUTH_TOKEN.into());
    args.signature_check = Some(SignatureMode::Enforce);
    args.workers = Some(2);
    configure(&mut args);
    let database = args.database.clone();
    let application = Application::build(args).await.expect("application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let server = application.handle();
    let progress = application.projection_progress();
    let connector = application.connector();
    tokio::spawn(application.run_until_stopped());
    TestApp { address, database, client: reqwest::Client::new(), server, progress, connector, _dir: dir }
}

impl TestApp {
    /// Stops the server gracefully, as a restart would, once its projections hold every row
    /// acknowledged so far (tests then read the database directly).
    pub async fn stop(&self) {
        self.projections_caught_up().await;
        self.server.stop(true).await;
    }

    /// Rows the server counts as committed (what read-your-writes waits for).
    pub fn rows_counted(&self) -> i64 {
        self.progress.last_appended()
    }

    /// Waits until the projections hold every row acknowledged so far: they follow the log a
    /// moment after each answer.
    pub async fn projections_caught_up(&self) {
        assert!(
            self.progress.wait_for_rows_committed_so_far(Duration::from_secs(10)).await,
            "the projections did not catch up with the log within 10 s"
        );
    }

    /// Posts a signed form body to `path`, signed for this server's own URL.
    pub async fn post_signed(&self, path: &str, params: &[(String, String)]) -> reqwest::Response {
        let url = format!("{}{}", self.address, path);
        let signature = signature::compute(AUTH_TOKEN, &url, params);
        self.post_form(path, params, Some(&signature)).await
    }

    pub async fn post_form(
        &self,
        path: &str,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let body = taskrouter_protocol::webhook::encode_form(params);
        self.post_raw(path, "application/x-www-form-urlencoded", body.into_bytes(), signature).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{}", self.address, path))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        request.send().await.expect("request sent")
    }

    /// The body of `GET path` as text (a page, `/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        let response =
            self.client.get(format!("{}{}", self.address, path)).send().await.expect("request sent");
        response.text().await.expect("a text body")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response =
            self.client.get(format!("{}{}", self.address, path)).send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Reads rows straight from the database file, as an auditor would.
    pub fn query<T>(&self, sql: &str, map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Vec<T> {
        let connection = rusqlite::Connection::open(&self.database).expect("open database");
        let mut statement = connection.prepare(sql).expect("valid SQL");
        statement.query_map([], map).expect("query runs").collect::<Result<_, _>>().expect("rows read")
    }

    /// Column `column` of a row holding a stored body or headers, decoded with the row's
    /// `payload_encoding` at `encoding_column` (bodies and headers are stored compressed).
    pub fn payload(
        row: &rusqlite::Row<'_>,
        column: usize,
        encoding_column: usize,
    ) -> rusqlite::Result<Vec<u8>> {
        let encoding: Option<String> = row.get(encoding_column)?;
        let stored = match row.get_ref(column)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            _ => Vec::new(),
        };
        Ok(taskrouter_tracer::storage::payload::decode(encoding.as_deref(), &stored)
            .expect("payload decodes")
            .into_owned())
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.query(sql, |r| r.get(0))[0]
    }
}

/// The projections of the log at `database`, as text without row ids (two logs of the same
/// history, delivered differently, give the same text).
pub fn dump(database: &std::path::Path) -> String {
    let connection = rusqlite::Connection::open(database).unwrap();
    taskrouter_tracer::projections::dump_without_ids(&connection)
}

/// The first line where two dumps differ (or their line counts), to keep a failure readable.
pub fn first_difference(left: &str, right: &str) -> Option<(String, String)> {
    left.lines()
        .zip(right.lines())
        .find(|(l, r)| l != r)
        .map(|(l, r)| (l.to_string(), r.to_string()))
        .or_else(|| {
            (left.lines().count() != right.lines().count()).then(|| {
                (format!("{} lines", left.lines().count()), format!("{} lines", right.lines().count()))
            })
        })
}
