//! `taskrouter-bench`: one command that measures ingest, ingest under other workload
//! shapes, constant-rate latency, one hot task, a soak under load, and reads at scale on this
//! machine, and writes `BENCHMARKS.md`.
//!
//! Everything under test runs as a child process of this same binary (`tracer serve`, `generate`,
//! `tracer rebuild`), with signature checking on and the default `synchronous=FULL`, each ingest phase
//! on a fresh database; the requests are the simulator's, signed and unique (`corpus`), spread
//! over tasks as a shape says (`shapes`), sent by a lean keep-alive HTTP/1.1 generator (`load`).
//! `hot`, `scale` and `soak` run their phases; `report` writes the file. A phase that fails (a child that fails, an answer that is not 2xx, a
//! request lost) is reported and makes the command exit 1; timings never do.

pub mod corpus;
pub mod event_streams;
pub mod floor;
pub mod generate;
pub mod history;
pub mod hot;
mod ingest;
pub mod load;
pub mod reference;
pub mod report;
pub mod scale;
pub mod server;
mod settings;
pub mod shapes;
pub mod soak;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use corpus::{Corpus, Feed, Stream, AUTH_TOKEN};
use ingest::{ingest_series, prepare, rate_phase};
use load::LoadOutcome;
use server::{CpuShares, Server, ServerOptions, Usage};
use shapes::{Shape, Workloads};

pub use settings::{BenchArgs, Phase, Settings};

/// Most requests prepared for one closed-loop run (about 2.3 KB each).
const MAX_PREPARED: usize = 1_000_000;
/// Connections the constant-rate run may use (TaskRouter opens as many as it needs).
const OPEN_LOOP_CONNECTIONS: usize = 64;

/// What the server under test is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/webhooks/bench-baseline`: the same stack, reading the body, storing nothing.
    Baseline,
    /// `/webhooks/bench-floor`: the same stack appending the raw body durably to a one-table
    /// SQLite file, nothing else: what durable SQLite alone allows here.
    Floor,
    Events,
    Assignment,
}

impl Target {
    pub fn label(self) -> &'static str {
        match self {
            Target::Baseline => "baseline (no storage)",
            Target::Floor => "floor (raw body, one SQLite table)",
            Target::Events => "POST /webhooks/events",
            Target::Assignment => "POST /webhooks/assignment",
        }
    }

    /// The label within a sentence.
    pub fn short_label(self) -> &'static str {
        match self {
            Target::Baseline => "baseline",
            Target::Floor => "floor",
            Target::Events => "events",
            Target::Assignment => "assignment",
        }
    }
}

/// What a durable server's log held after a load.
#[derive(Debug, Clone, Default)]
pub struct StoredCheck {
    pub rows: u64,
    pub acknowledged: u64,
}

/// One closed-loop ingest run.
#[derive(Debug, Clone)]
pub struct IngestResult {
    pub target: Target,
    /// How its requests met tasks (the baseline's and the floor's are always realistic).
    pub shape: Shape,
    pub connections: usize,
    pub load: LoadOutcome,
    pub server: Usage,
    /// Requests rendered while the load ran (the prepared ones ran out).
    pub rendered_live: usize,
    pub stored: Option<StoredCheck>,
    pub cpu: CpuShares,
    /// The projections' lag when the load stopped and how long they took to take it in
    /// (durable endpoints only).
    pub projection: Option<CatchUp>,
}

impl IngestResult {
    /// The rate that counts: the requests acknowledged in the window over the time until every
    /// one of them was projected (a backlog is not throughput).
    pub fn projected_rate(&self) -> f64 {
        match self.projection {
            Some(catch_up) => catch_up.rate_of(&self.load),
            None => self.load.rate(),
        }
    }
}

/// How far behind the log the projections were when a load stopped, and how long they took to
/// take in every row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatchUp {
    pub lag_rows: u64,
    pub took: Duration,
}

impl CatchUp {
    /// `load`'s requests answered in its window over the window and this catch-up.
    pub fn rate_of(&self, load: &LoadOutcome) -> f64 {
        load.ok as f64 / (load.window + self.took).as_secs_f64().max(1e-9)
    }
}

/// Polls the server's `/healthz` from the moment a load stopped until the projections have
/// taken in every row.
///
/// # Errors
/// When the server does not answer, or has not caught up within five minutes.
pub async fn wait_for_projections(base: &str) -> anyhow::Result<CatchUp> {
    let started = std::time::Instant::now();
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
    let mut lag_at_stop = None;
    loop {
        // `/healthz` answers 503 when the projections are far behind, with the same body.
        let health: serde_json::Value = client.get(format!("{base}/healthz")).send().await?.json().await?;
        let lag = health["projection_lag_rows"].as_u64().unwrap_or(0);
        let lag_rows = *lag_at_stop.get_or_insert(lag);
        if lag == 0 {
            return Ok(CatchUp { lag_rows, took: started.elapsed() });
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the projections were still {lag} rows behind five minutes after the load stopped");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The constant-rate run.
#[derive(Debug, Clone)]
pub struct RateResult {
    pub rate: f64,
    pub connections: usize,
    pub load: LoadOutcome,
    pub server: Usage,
    pub rendered_live: usize,
    pub stored: StoredCheck,
    pub cpu: CpuShares,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct BenchRun {
    pub settings: Settings,
    pub machine: report::Machine,
    pub command: String,
    pub ingest: Vec<IngestResult>,
    /// The workload shapes' runs, with their own baseline and floor runs.
    pub shapes: Vec<IngestResult>,
    pub rate: Option<RateResult>,
    pub hot: Option<hot::HotResult>,
    pub soak: Option<soak::SoakResult>,
    pub scales: Vec<scale::ScaleResult>,
    pub history: Option<history::HistoryResult>,
    /// Form callbacks, then Event Streams batches, of the same events.
    pub event_streams: Vec<event_streams::StreamsResult>,
    /// Mean body bytes of the event and of the assignment callbacks sent.
    pub body_bytes: (f64, f64),
    /// Phases that failed, and why.
    pub failures: Vec<String>,
}

/// Runs the benchmark and writes the report.
///
/// # Errors
/// When the report cannot be written or the settings are wrong; a failed phase is reported
/// (exit code 1), not an error.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_args(&args)?;
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; its figures say nothing about performance (use --release)"
        );
    }
    let work = tempfile::Builder::new().prefix("taskrouter-bench-").tempdir()?;
    // One port for every server of the run: the requests are signed for its URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let store = match &args.reuse {
        Some(dir) => scale::LogStore::Reuse { dir: dir.clone() },
        None => scale::LogStore::Cache {
            dir: args.log_cache.clone(),
            key: scale::generator_key().unwrap_or_else(|| "unversioned".into()),
        },
    };
    let body_bytes = tokio::task::spawn_blocking(move || {
        let base = format!("http://127.0.0.1:{port}");
        let mean = |stream, len| Corpus::new(&base, stream, len, 1).mean_body_bytes();
        (mean(Stream::Events, 2_000), mean(Stream::Assignments, 300))
    })
    .await?;
    let mut run = BenchRun {
        body_bytes,
        machine: report::Machine::read(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        settings: settings.clone(),
        ingest: Vec::new(),
        shapes: Vec::new(),
        rate: None,
        hot: None,
        soak: None,
        scales: Vec::new(),
        history: None,
        event_streams: Vec::new(),
        failures: Vec::new(),
    };
    let context = PhaseContext { port, work_dir: work.path().to_path_buf() };
    // Every phase that loads the server sends the same simulation's requests.
    let workloads = if [Phase::Ingest, Phase::Shapes, Phase::Rate, Phase::Hot, Phase::EventStreams]
        .iter()
        .any(|p| settings.phases.contains(p))
    {
        let (base_url, quick) = (context.base_url(), settings.quick);
        Some(Arc::new(tokio::task::spawn_blocking(move || Workloads::simulate(&base_url, quick)).await?))
    } else {
        None
    };

    if let (true, Some(workloads)) = (settings.phases.contains(&Phase::Ingest), &workloads) {
        let duration = (settings.warmup, settings.seconds);
        let runs = [Target::Baseline, Target::Floor, Target::Events, Target::Assignment]
            .map(|target| (Shape::Realistic, target));
        for &connections in &settings.connections {
            let results =
                ingest_series(&mut run, &context, workloads, &runs, connections, duration, false).await;
            run.ingest.extend(results);
        }
    }
    if let (true, Some(workloads)) = (settings.phases.contains(&Phase::Shapes), &workloads) {
        let duration = (settings.shape_warmup, settings.shape_seconds);
        let mut runs = vec![(Shape::Realistic, Target::Baseline), (Shape::Realistic, Target::Floor)];
        for shape in Shape::ALL {
            runs.extend([(shape, Target::Events), (shape, Target::Assignment)]);
        }
        for &connections in &settings.connections {
            let results =
                ingest_series(&mut run, &context, workloads, &runs, connections, duration, true).await;
            run.shapes.extend(results);
        }
    }
    if let (true, Some(workloads)) = (settings.phases.contains(&Phase::Rate), &workloads) {
        let name = format!("assignment at {} req/s", settings.rate);
        settle_disk().await;
        let bar = phase_bar(&name, settings.warmup + settings.rate_seconds);
        match rate_phase(&context, &settings, workloads, &bar).await {
            Ok(result) => {
                bar.finish_and_clear();
                println!("{}", report::rate_line(&result));
                if let Some(problem) = load_problem(&result.load) {
                    run.failures.push(format!("{name}: {problem}"));
                }
                run.rate = Some(result);
            }
            Err(error) => fail(&mut run, &bar, &name, error),
        }
    }
    if let (true, Some(workloads)) = (settings.phases.contains(&Phase::Hot), &workloads) {
        let name = format!("one task to {} events", report::count(settings.hot_events));
        settle_disk().await;
        let bar = ProgressBar::new_spinner()
            .with_style(
                ProgressStyle::with_template("{prefix:>38} {spinner} {elapsed:>4} {msg}")
                    .expect("valid template"),
            )
            .with_prefix(name.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        let plan = hot::HotPlan {
            events: settings.hot_events,
            limit: settings.hot_limit,
            connections: hot::HOT_CONNECTIONS,
            others_rate: hot::OTHERS_RATE,
        };
        match hot::run(&context, workloads, &plan, &bar).await {
            Ok(result) => {
                bar.finish_and_clear();
                println!("{}", report::hot_text(&result));
                run.failures.extend(hot::problems(&result).into_iter().map(|p| format!("{name}: {p}")));
                run.hot = Some(result);
            }
            Err(error) => fail(&mut run, &bar, &name, error),
        }
    }
    if let (true, Some(workloads)) = (settings.phases.contains(&Phase::EventStreams), &workloads) {
        let duration = (settings.shape_warmup, settings.shape_seconds);
        let connections = event_streams::CONNECTIONS;
        let deliveries = std::iter::once(None).chain(event_streams::BATCH_SIZES.map(Some));
        for batch in deliveries {
            let name = match batch {
                None => format!("event callbacks × {connections}"),
                Some(batch) => format!("Event Streams, {batch} a body × {connections}"),
            };
            settle_disk().await;
            let bar = phase_bar(&name, duration.0 + duration.1);
            match event_streams::run_one(
                &context,
                workloads,
                batch,
                connections,
                duration,
                settings.quick,
                &bar,
            )
            .await
            {
                Ok(result) => {
                    bar.finish_and_clear();
                    println!("{}", report::event_streams_line(&result));
                    if let Some(problem) = load_problem(&result.load) {
                        run.failures.push(format!("{name}: {problem}"));
                    }
                    run.event_streams.push(result);
                }
                Err(error) => fail(&mut run, &bar, &name, error),
            }
        }
    }
    if settings.phases.contains(&Phase::Soak) {
        let name = format!("soak × {}", settings.soak_connections);
        settle_disk().await;
        let bar = phase_bar(&name, settings.soak_seconds);
        let plan = soak::SoakPlan {
            connections: settings.soak_connections,
            duration: settings.soak_seconds,
            port,
            work_dir: context.work_dir.clone(),
        };
        match soak::run(&plan, &bar).await {
            Ok(result) => {
                bar.finish_and_clear();
                println!("{}", report::soak_text(&result));
                if let Some(problem) = load_problem(&result.load) {
                    run.failures.push(format!("{name}: {problem}"));
                }
                for page in result.pages.iter().filter(|p| p.failures > 0) {
                    run.failures.push(format!("{name}: GET {} failed {} times", page.path, page.failures));
                }
                run.soak = Some(result);
            }
            Err(error) => fail(&mut run, &bar, &name, error),
        }
    }
    if settings.phases.contains(&Phase::History) {
        let name = format!("Events API: import {} events, follow", report::count(settings.history_events));
        settle_disk().await;
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        let plan = history::HistoryPlan {
            events: settings.history_events,
            follow_samples: settings.follow_samples,
            port,
            work_dir: context.work_dir.clone(),
        };
        match history::run(&plan, &bar).await {
            Ok(result) => {
                bar.finish_and_clear();
                println!("{}", report::history_text(&result));
                run.history = Some(result);
            }
            Err(error) => fail(&mut run, &bar, &name, error),
        }
    }
    if settings.phases.contains(&Phase::Scale) {
        for &events in &settings.scales {
            let name = format!("reads at {events} events");
            let bar = ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            settle_disk().await;
            let plan = scale::ScalePlan {
                events,
                store: store.clone(),
                port,
                work_dir: context.work_dir.clone(),
                repeat: settings.repeat,
                slow_repeat: settings.slow_repeat,
            };
            match scale::run(&plan, &bar).await {
                Ok(result) => {
                    bar.finish_and_clear();
                    println!("{}", report::scale_text(&result));
                    run.scales.push(result);
                }
                Err(error) => fail(&mut run, &bar, &name, error),
            }
        }
    }

    std::fs::write(&args.output, report::render(&run))
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("wrote {}", args.output.display());
    if run.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} phase(s) failed:", run.failures.len());
        for failure in &run.failures {
            eprintln!("  {failure}");
        }
        Ok(ExitCode::FAILURE)
    }
}

struct PhaseContext {
    port: u16,
    work_dir: PathBuf,
}

impl PhaseContext {
    fn address(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn database(&self, name: &str) -> PathBuf {
        self.work_dir.join(format!("{name}.db"))
    }

    async fn start_server(&self, name: &str, baseline: bool) -> anyhow::Result<Server> {
        self.start_server_with(name, baseline, Vec::new()).await
    }

    /// [`Self::start_server`] with more `serve` options.
    async fn start_server_with(
        &self,
        name: &str,
        baseline: bool,
        extra_args: Vec<std::ffi::OsString>,
    ) -> anyhow::Result<Server> {
        Server::start(
            &ServerOptions {
                database: self.database(name),
                port: self.port,
                auth_token: AUTH_TOKEN.into(),
                baseline,
                log: self.work_dir.join(format!("serve-{name}.log")),
                extra_args,
            },
            Duration::from_secs(60),
        )
        .await
    }
}

/// Deletes a phase's database once it is measured (durable phases write hundreds of MB).
fn discard_database(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-floor", "-floor-wal", "-floor-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

fn phase_bar(name: &str, length: Duration) -> ProgressBar {
    ProgressBar::new(length.as_millis() as u64)
        .with_style(
            ProgressStyle::with_template("{prefix:>38} {bar:30} {elapsed:>4} {msg}").expect("valid template"),
        )
        .with_prefix(name.to_string())
}

fn fail(run: &mut BenchRun, bar: &ProgressBar, name: &str, error: anyhow::Error) {
    bar.finish_and_clear();
    eprintln!("{name}: FAILED: {error:#}");
    run.failures.push(format!("{name}: {error:#}"));
}

/// Why a load run counts as failed: any error, any answer but 2xx, or requests running out.
fn load_problem(load: &LoadOutcome) -> Option<String> {
    if load.errors == 0 && load.non_2xx == 0 && load.ran_out_after.is_none() {
        return None;
    }
    let mut problem = format!("{} errors, {} answers not 2xx", load.errors, load.non_2xx);
    if let Some(after) = load.ran_out_after {
        problem.push_str(&format!(", prepared requests ran out after {:.1} s", after.as_secs_f64()));
    }
    if let Some(first) = &load.first_problem {
        problem.push_str(&format!(" (first: {first})"));
    }
    Some(problem)
}

/// Pause after [`settle_disk`]'s sync, for the trims and journal commits it set off.
const SETTLE_AFTER_SYNC: Duration = Duration::from_millis(500);

/// Puts what earlier phases wrote, and the databases they deleted, on disk before the next
/// phase is measured: otherwise the kernel writes and (on a file system mounted with `discard`)
/// trims them during that phase, and its fsyncs and reads wait behind the work. (The slower
/// rebuilds seen after a soak were the host's speed, not this: alone they were as slow.)
pub(crate) async fn settle_disk() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    let _ = tokio::task::spawn_blocking(|| unsafe { libc::sync() }).await;
    tokio::time::sleep(SETTLE_AFTER_SYNC).await;
}

/// Checks that the log holds every acknowledged request, none as a duplicate (the requests
/// were unique) and none with a bad signature (they were signed for this URL).
///
/// # Errors
/// When any of that is not so, or the API does not answer.
pub async fn check_stored(base: &str, acknowledged: u64) -> anyhow::Result<StoredCheck> {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
    let first = |query: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/requests?limit=1&{query}");
        async move {
            let page: serde_json::Value = client.get(&url).send().await?.error_for_status()?.json().await?;
            anyhow::Ok(page["requests"][0].clone())
        }
    };
    let rows = first("").await?["id"].as_u64().unwrap_or(0);
    if rows < acknowledged {
        bail!("{acknowledged} requests were acknowledged but the log holds {rows} rows");
    }
    if let Some(id) = first("duplicate=yes").await?["id"].as_u64() {
        bail!("row {id} was stored as a duplicate: the benchmark's requests must be unique");
    }
    for verdict in ["invalid", "missing"] {
        let query = if verdict == "invalid" { "verdict=invalid" } else { "verdict=missing" };
        if let Some(id) = first(query).await?["id"].as_u64() {
            bail!("row {id} has a {verdict} signature: the benchmark's requests must be signed for this URL");
        }
    }
    Ok(StoredCheck { rows, acknowledged })
}
