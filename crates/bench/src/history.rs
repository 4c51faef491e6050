//! The Events API phase: how fast `import` takes a workspace's history from the simulator's
//! Events API (the import a child process, the simulator serving pages in this one), and how
//! long after an event a follower (`serve --follow-events-api 1`, no webhook) shows it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::Rng;

use super::corpus::AUTH_TOKEN;
use super::scale::nearest_rank;
use super::server::{self, CpuShares, CpuWatch, Server, ServerOptions, Usage};
use taskrouter_simulator::delivery::Faults;
use taskrouter_simulator::rest;
use taskrouter_simulator::runtime::ClockMode;
use taskrouter_simulator::scenario::{CallbackUrls, DemoTraffic};
use taskrouter_simulator::{start_scenario, RunningSimulator, ScenarioOptions};
use taskrouter_tracer::history::import::iso;

/// The account the phase's simulators run as.
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

/// What to measure.
#[derive(Debug, Clone)]
pub struct HistoryPlan {
    /// Events in the simulator's Events API to import (it keeps at most 100,000).
    pub events: u64,
    /// Events timed from TaskRouter to the follower's timeline.
    pub follow_samples: usize,
    pub port: u16,
    pub work_dir: PathBuf,
}

/// What it measured.
#[derive(Debug, Clone)]
pub struct HistoryResult {
    /// Events the import fetched and stored.
    pub events: u64,
    pub import: Usage,
    /// The import's own summary line.
    pub summary: String,
    /// The import (tested), the simulator serving its pages (this process), the rest.
    pub cpu: CpuShares,
    /// Seconds between the follower's polls.
    pub follow_every: Duration,
    /// From a task's creation in the simulator to its page in the tracer, each sample.
    pub follow_latencies: Vec<Duration>,
}

impl HistoryResult {
    pub fn import_rate(&self) -> f64 {
        self.events as f64 / self.import.wall.as_secs_f64().max(f64::EPSILON)
    }

    /// The follower's latency at `percent` (nearest rank).
    pub fn follow_percentile(&self, percent: f64) -> Duration {
        let mut sorted = self.follow_latencies.clone();
        sorted.sort();
        nearest_rank(&sorted, percent)
    }
}

fn simulator(clock: ClockMode, tasks_per_minute: f64, seed: u64) -> anyhow::Result<RunningSimulator> {
    Ok(start_scenario(ScenarioOptions {
        seed,
        account_sid: Some(ACCOUNT.into()),
        auth_token: AUTH_TOKEN.into(),
        callbacks: CallbackUrls { assignment: None, events: None },
        traffic: DemoTraffic { tasks_per_minute, arrivals_for_ms: i64::MAX / 4, reservation_timeout: 30 },
        faults: Faults::default(),
        callback_timeouts: None,
        clock,
        listener: rest::bind("127.0.0.1:0".parse().expect("an address"))?.0,
        event_streams: None,
    })?)
}

/// Runs the phase.
///
/// # Errors
/// When a server or the import fails, or the follower never shows an event.
pub async fn run(plan: &HistoryPlan, bar: &indicatif::ProgressBar) -> anyhow::Result<HistoryResult> {
    // A busy workspace's history, as fast as the simulator can make it.
    let sim = simulator(ClockMode::AsFastAsPossible, 600.0, 5)?;
    let started_ms = sim.simulator.engine().now_ms();
    while (sim.simulator.engine().events.len() as u64) < plan.events {
        sim.simulator.run_for(60_000).await;
        bar.set_message(format!("{} events in the simulator", sim.simulator.engine().events.len()));
    }
    let events_listed = sim.simulator.engine().events.len() as u64;
    bar.set_message(format!("importing {events_listed} events"));
    let database = plan.work_dir.join("import.db");
    let args: Vec<OsString> = [
        "tracer",
        "import",
        "--database",
        &database.to_string_lossy(),
        "--workspace-sid",
        &sim.sids.workspace,
        "--since",
        &iso(started_ms - 60_000),
        "--taskrouter-base-url",
        sim.rest_base_url(),
        "--account-sid",
        ACCOUNT,
        "--auth-token",
        AUTH_TOKEN,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let watch = CpuWatch::start(&[]);
    let (import, summary) = server::run_to_completion(args).await?;
    let cpu = watch.shares(import.cpu);
    sim.stop().await;
    let stored: i64 = rusqlite::Connection::open(&database)?.query_row(
        "SELECT COUNT(*) FROM events WHERE endpoint = 'events-api' AND is_fact = 1",
        [],
        |r| r.get(0),
    )?;
    if stored as u64 != events_listed {
        anyhow::bail!("the import stored {stored} facts of the {events_listed} events listed: {summary}");
    }

    // The follower: a simulator on the wall clock, no webhook, a task created now and then.
    let sim = simulator(ClockMode::Scaled(1.0), 0.0, 6)?;
    let clock = tokio::spawn({
        let driver = sim.simulator.clone();
        async move { driver.run_until(i64::MAX / 2).await }
    });
    let follow_every = Duration::from_secs(1);
    let mut server = Server::start(
        &ServerOptions {
            database: plan.work_dir.join("follow.db"),
            port: plan.port,
            auth_token: AUTH_TOKEN.into(),
            baseline: false,
            log: plan.work_dir.join("serve-follow.log"),
            extra_args: [
                "--follow-events-api",
                &follow_every.as_secs().to_string(),
                "--workspace-sid",
                &sim.sids.workspace,
                "--taskrouter-base-url",
                sim.rest_base_url(),
                "--account-sid",
                ACCOUNT,
                "--reconcile-every",
                "0",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
        },
        Duration::from_secs(30),
    )
    .await?;
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build()?;
    let mut follow_latencies = Vec::with_capacity(plan.follow_samples);
    for sample in 0..plan.follow_samples {
        bar.set_message(format!("follower: event {} of {}", sample + 1, plan.follow_samples));
        // Anywhere in the poll's cycle.
        let pause = rand::thread_rng().gen_range(0..follow_every.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let created: serde_json::Value = client
            .post(format!("{}/v1/Workspaces/{}/Tasks", sim.rest_base_url(), sim.sids.workspace))
            .basic_auth(ACCOUNT, Some(AUTH_TOKEN))
            .form(&[("WorkflowSid", sim.sids.workflow.as_str()), ("Attributes", "{}")])
            .send()
            .await?
            .json()
            .await?;
        let at = Instant::now();
        let task = created["sid"].as_str().unwrap_or_default().to_string();
        loop {
            let page = client.get(format!("{}/api/tasks/{task}", server.base_url)).send().await?;
            if page.status().is_success() {
                follow_latencies.push(at.elapsed());
                break;
            }
            if at.elapsed() > Duration::from_secs(30) {
                let log = server.log_tail();
                let _ = server.stop().await;
                anyhow::bail!("the follower did not show task {task} within 30 s: {log}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    server.stop().await?;
    clock.abort();
    sim.stop().await;
    Ok(HistoryResult {
        events: events_listed,
        import,
        summary: summary.trim().to_string(),
        cpu,
        follow_every,
        follow_latencies,
    })
}
