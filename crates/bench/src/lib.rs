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
pub mod load;
pub mod reference;
pub mod report;
pub mod scale;
pub mod server;
pub mod shapes;
pub mod soak;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use corpus::{Corpus, Feed, RequestSource, Stream, AUTH_TOKEN};
use load::{ClosedLoop, LoadOutcome, OpenLoop};
use server::{CpuShares, CpuWatch, Server, ServerOptions, Usage};
use shapes::{Shape, Workloads};

/// Most requests prepared for one closed-loop run (about 2.3 KB each).
const MAX_PREPARED: usize = 1_000_000;
/// Most requests prepared for one `--quick` run, whose timings do not matter.
const QUICK_PREPARED: usize = 3_000;
/// Connections the constant-rate run may use (TaskRouter opens as many as it needs).
const OPEN_LOOP_CONNECTIONS: usize = 64;
/// Fewest events of the hot task: its first and last thousand must not overlap.
const MIN_HOT_EVENTS: u64 = 2_000;

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Closed-loop ingest on both endpoints and the baseline handler.
    Ingest,
    /// Closed-loop ingest of each workload shape, beside the baseline and the floor.
    Shapes,
    /// The assignment endpoint at a constant rate.
    Rate,
    /// One task driven to many events while other tasks' assignment callbacks are timed.
    Hot,
    /// Mixed traffic for a minute: errors, RSS over time, page latency.
    Soak,
    /// Reads, size and rebuild on logs of each scale.
    Scale,
    /// `import` from the simulator's Events API, and a follower's latency.
    History,
    /// Events through Event Streams batches of 10 and 100, beside form callbacks.
    EventStreams,
}

/// `taskrouter-tracer bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A smoke run (what CI runs): 2 s per ingest phase, 0.5 s per workload shape, a hot task of
    /// 2,000 events, a 20,000-event scale, a 5 s soak.
    #[arg(long)]
    pub quick: bool,
    /// Seconds each closed-loop ingest phase is measured, after a warm-up of a fifth of it
    /// (0.2–1 s) [default: 10, or 2 with --quick].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Log sizes for the reads at scale, comma-separated; k and M allowed
    /// [default: 1M,10M, or 20k with --quick].
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    pub scales: Option<Vec<u64>>,
    /// Connection counts of the closed-loop ingest runs.
    #[arg(long, value_delimiter = ',', default_value = "32,256")]
    pub connections: Vec<usize>,
    /// Requests per second of the constant-rate run on the assignment endpoint.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds each closed-loop run of the workload shapes is measured, after a warm-up of a
    /// fifth of it (0.2–1 s) [default: --seconds, or 0.5 with --quick].
    #[arg(long)]
    pub shape_seconds: Option<f64>,
    /// Events the hot task is driven to (at least 2,000); k and M allowed [default: 100k, or
    /// 2k with --quick].
    #[arg(long, value_parser = parse_count)]
    pub hot_events: Option<u64>,
    /// Most seconds the hot task's events are sent; past that the phase stops where it got to
    /// (a slow tracer never fails it) [default: 600, or 120 with --quick].
    #[arg(long)]
    pub hot_seconds: Option<f64>,
    /// Seconds the constant-rate run is measured, after the same warm-up [default: 30, or 2
    /// with --quick]. Its p99 is decided by the slowest hundredth of its requests: over 10 s at
    /// 1,000/s that is 100 requests, so one stall of the disk's longer than 0.1 s decides it;
    /// 30 s gives a steadier figure, and p99.9 and the maximum still show every stall.
    #[arg(long)]
    pub rate_seconds: Option<f64>,
    /// Seconds of the soak [default: 60, or 5 with --quick].
    #[arg(long)]
    pub soak_seconds: Option<f64>,
    /// Connections of the soak.
    #[arg(long, default_value_t = 256)]
    pub soak_connections: usize,
    /// Timed requests per read at scale; a read slower than 250 ms gets a twentieth (at least
    /// 3) [default: 100, or 10 with --quick].
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Events imported from the simulator's Events API (at most 100k, what it keeps); k allowed
    /// [default: 100k, or 5k with --quick].
    #[arg(long, value_parser = parse_count)]
    pub history_events: Option<u64>,
    /// Events timed from the simulator to a follower's timeline [default: 20, or 3 with --quick].
    #[arg(long)]
    pub follow_samples: Option<usize>,
    /// The phases to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ingest,shapes,rate,hot,soak,scale,history,event-streams"
    )]
    pub phases: Vec<Phase>,
    /// Where the report is written.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub output: PathBuf,
    /// Where built logs are kept, named after the last commit (and uncommitted changes) of the
    /// code that generates them; reused while that code is unchanged.
    #[arg(long, default_value = "bench/out/logs")]
    pub log_cache: PathBuf,
    /// Use the logs DIR/log-<events>.db whatever built them (building any that are missing).
    #[arg(long, value_name = "DIR")]
    pub reuse: Option<PathBuf>,
}

/// Parses 20000, 20k, 1M, 10m.
fn parse_count(raw: &str) -> Result<u64, String> {
    let raw = raw.trim().replace('_', "");
    let (digits, multiplier) = match raw.chars().last() {
        Some('k' | 'K') => (&raw[..raw.len() - 1], 1_000),
        Some('m' | 'M') => (&raw[..raw.len() - 1], 1_000_000),
        _ => (raw.as_str(), 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{raw:?} is not a count like 20000, 20k or 1M"))
}

/// The settings a run used, after `--quick` and the defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    pub seconds: Duration,
    pub warmup: Duration,
    pub connections: Vec<usize>,
    pub shape_seconds: Duration,
    pub shape_warmup: Duration,
    pub hot_events: u64,
    pub hot_limit: Duration,
    pub rate: f64,
    pub rate_seconds: Duration,
    pub soak_seconds: Duration,
    pub soak_connections: usize,
    pub scales: Vec<u64>,
    pub repeat: usize,
    pub slow_repeat: usize,
    pub history_events: u64,
    pub follow_samples: usize,
    pub phases: Vec<Phase>,
}

impl Settings {
    fn from_args(args: &BenchArgs) -> anyhow::Result<Self> {
        let seconds = args.seconds.unwrap_or(if args.quick { 2.0 } else { 10.0 });
        let rate_seconds = args.rate_seconds.unwrap_or(if args.quick { 2.0 } else { 30.0 });
        let soak = args.soak_seconds.unwrap_or(if args.quick { 5.0 } else { 60.0 });
        let shape_seconds = args.shape_seconds.unwrap_or(if args.quick { 0.5 } else { seconds });
        let hot_seconds = args.hot_seconds.unwrap_or(if args.quick { 120.0 } else { 600.0 });
        let durations = [seconds, shape_seconds, rate_seconds, soak, hot_seconds];
        if !(durations.iter().all(|d| *d > 0.0) && args.rate > 0.0) {
            bail!(
                "--seconds, --shape-seconds, --rate-seconds, --soak-seconds, --hot-seconds and --rate must be \
                 positive"
            );
        }
        let hot_events = args.hot_events.unwrap_or(if args.quick { MIN_HOT_EVENTS } else { 100_000 });
        if hot_events < MIN_HOT_EVENTS {
            bail!("--hot-events must be at least {MIN_HOT_EVENTS}");
        }
        if args.connections.is_empty() || args.connections.contains(&0) || args.soak_connections == 0 {
            bail!("connection counts must be positive");
        }
        let repeat = args.repeat.unwrap_or(if args.quick { 10 } else { 100 }).max(1);
        Ok(Self {
            quick: args.quick,
            seconds: Duration::from_secs_f64(seconds),
            warmup: warmup_for(seconds),
            connections: args.connections.clone(),
            shape_seconds: Duration::from_secs_f64(shape_seconds),
            shape_warmup: warmup_for(shape_seconds),
            hot_events,
            hot_limit: Duration::from_secs_f64(hot_seconds),
            rate: args.rate,
            rate_seconds: Duration::from_secs_f64(rate_seconds),
            soak_seconds: Duration::from_secs_f64(soak),
            soak_connections: args.soak_connections,
            scales: args.scales.clone().unwrap_or_else(|| {
                if args.quick {
                    vec![20_000]
                } else {
                    vec![1_000_000, 10_000_000]
                }
            }),
            repeat,
            slow_repeat: (repeat / 20).max(3),
            history_events: args
                .history_events
                .unwrap_or(if args.quick { 5_000 } else { 100_000 })
                .min(taskrouter_simulator::engine::EVENT_RETENTION as u64),
            follow_samples: args.follow_samples.unwrap_or(if args.quick { 3 } else { 20 }).max(1),
            phases: args.phases.clone(),
        })
    }
}

/// The warm-up before a closed-loop run measured for `seconds`.
fn warmup_for(seconds: f64) -> Duration {
    Duration::from_secs_f64((seconds / 5.0).clamp(0.2, 1.0))
}

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

/// Renders the first `count` requests of `shape` for `target` off the async runtime; the
/// source is returned to render more if the load needs them.
async fn prepare(
    workloads: &Arc<Workloads>,
    shape: Shape,
    target: Target,
    count: usize,
) -> anyhow::Result<(Vec<Vec<u8>>, Box<dyn RequestSource>)> {
    let mut source = workloads.source(shape, target);
    Ok(tokio::task::spawn_blocking(move || (source.take(count), source)).await?)
}

/// Runs `runs` (shape, target) in order at `connections`, each for `duration` (warm-up,
/// measured), printing each and recording its failures; the durable runs are sized from the
/// baseline's rate when it ran first.
async fn ingest_series(
    run: &mut BenchRun,
    context: &PhaseContext,
    workloads: &Arc<Workloads>,
    runs: &[(Shape, Target)],
    connections: usize,
    duration: (Duration, Duration),
    shaped: bool,
) -> Vec<IngestResult> {
    let mut results = Vec::new();
    let mut baseline_rate = None;
    for &(shape, target) in runs {
        let name = match target {
            Target::Events | Target::Assignment if shaped => {
                format!("{} × {} × {connections}", shape.label(), target.short_label())
            }
            _ => format!("{} × {connections}", target.label()),
        };
        settle_disk().await;
        let bar = phase_bar(&name, duration.0 + duration.1);
        let plan =
            IngestPlan { shape, target, connections, warmup: duration.0, seconds: duration.1, baseline_rate };
        match ingest_phase(context, run.settings.quick, workloads, &plan, &bar).await {
            Ok(result) => {
                bar.finish_and_clear();
                let line = if shaped { report::shape_line(&result) } else { report::ingest_line(&result) };
                println!("{line}");
                if target == Target::Baseline {
                    baseline_rate = Some(result.load.rate());
                }
                if let Some(problem) = load_problem(&result.load) {
                    run.failures.push(format!("{name}: {problem}"));
                }
                results.push(result);
            }
            Err(error) => fail(run, &bar, &name, error),
        }
    }
    results
}

/// One closed-loop run: what it sends, how hard and how long.
struct IngestPlan {
    shape: Shape,
    target: Target,
    connections: usize,
    warmup: Duration,
    seconds: Duration,
    /// The baseline's rate at these connections, to size what is prepared.
    baseline_rate: Option<f64>,
}

async fn ingest_phase(
    context: &PhaseContext,
    quick: bool,
    workloads: &Arc<Workloads>,
    plan: &IngestPlan,
    bar: &ProgressBar,
) -> anyhow::Result<IngestResult> {
    let IngestPlan { shape, target, connections, .. } = *plan;
    let window = (plan.warmup + plan.seconds).as_secs_f64();
    bar.set_message("preparing requests");
    let feed = match target {
        // Neither looks at what it receives (the floor stores every body as it comes, with no
        // dedup), so repeating requests flatters nothing.
        Target::Baseline | Target::Floor => {
            let pool = if quick { 1_000 } else { 5_000 };
            Feed::prepared(prepare(workloads, shape, target, pool).await?.0, true)
        }
        _ => {
            // The durable server cannot outrun the baseline: that many, and a tenth more, are
            // prepared (a smoke run prepares fewer and renders the rest as needed).
            let rate = plan.baseline_rate.filter(|r| *r > 0.0).unwrap_or(50_000.0);
            let limit = if quick { QUICK_PREPARED } else { MAX_PREPARED };
            let count = ((rate * window * 1.1) as usize + connections).min(limit);
            let (requests, source) = prepare(workloads, shape, target, count).await?;
            Feed::prepared_then(requests, source)
        }
    };
    let feed = Arc::new(feed);
    let name = match (target, shape) {
        (Target::Baseline, _) => format!("baseline-{connections}"),
        (Target::Floor, _) => format!("floor-{connections}"),
        (Target::Events, Shape::Realistic) => format!("events-{connections}"),
        (Target::Assignment, Shape::Realistic) => format!("assignment-{connections}"),
        (Target::Events, _) => format!("{}-events-{connections}", shape.slug()),
        (Target::Assignment, _) => format!("{}-assignment-{connections}", shape.slug()),
    };
    let mut server = context.start_server(&name, matches!(target, Target::Baseline | Target::Floor)).await?;
    bar.set_message("");
    let watch = CpuWatch::start(&[server.pid]);
    let load = load::closed_loop(
        context.address(),
        feed.clone(),
        ClosedLoop { connections, warmup: plan.warmup, duration: plan.seconds },
        bar,
    )
    .await;
    // The projections' catch-up counts in the time (before anything else reads the server).
    let projection = match target {
        Target::Events | Target::Assignment => Some(wait_for_projections(&context.base_url()).await?),
        Target::Baseline | Target::Floor => None,
    };
    let cpu = watch.shares(Duration::ZERO);
    // The log is read through the running server's API; the floor's file once its server stopped.
    let logged = match target {
        Target::Events | Target::Assignment => {
            Some(check_stored(&context.base_url(), load.acknowledged).await)
        }
        Target::Baseline | Target::Floor => None,
    };
    let usage = server.stop().await?;
    let stored = match target {
        Target::Floor => {
            Some(check_floor_stored(&crate::floor::floor_path(&context.database(&name)), load.acknowledged))
        }
        _ => logged,
    };
    discard_database(&context.database(&name));
    Ok(IngestResult {
        target,
        shape,
        connections,
        load,
        server: usage,
        rendered_live: feed.rendered_live(),
        stored: stored.transpose()?,
        cpu,
        projection,
    })
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

async fn rate_phase(
    context: &PhaseContext,
    settings: &Settings,
    workloads: &Arc<Workloads>,
    bar: &ProgressBar,
) -> anyhow::Result<RateResult> {
    bar.set_message("preparing requests");
    let count =
        (settings.rate * (settings.warmup + settings.rate_seconds).as_secs_f64()).ceil() as usize + 16;
    let (requests, source) = prepare(workloads, Shape::Realistic, Target::Assignment, count).await?;
    let feed = Arc::new(Feed::prepared_then(requests, source));
    let mut server = context.start_server("constant-rate", false).await?;
    bar.set_message("");
    let watch = CpuWatch::start(&[server.pid]);
    let load = load::open_loop(
        context.address(),
        feed.clone(),
        OpenLoop {
            rate: settings.rate,
            connections: OPEN_LOOP_CONNECTIONS,
            warmup: settings.warmup,
            duration: settings.rate_seconds,
        },
        bar,
    )
    .await;
    let cpu = watch.shares(Duration::ZERO);
    let stored = check_stored(&context.base_url(), load.acknowledged).await;
    let usage = server.stop().await?;
    discard_database(&context.database("constant-rate"));
    Ok(RateResult {
        rate: settings.rate,
        connections: OPEN_LOOP_CONNECTIONS,
        load,
        server: usage,
        rendered_live: feed.rendered_live(),
        stored: stored?,
        cpu,
    })
}

/// Checks that the floor's file holds every request it acknowledged (read once its server has
/// stopped).
///
/// # Errors
/// When it holds fewer, or cannot be read.
fn check_floor_stored(floor: &std::path::Path, acknowledged: u64) -> anyhow::Result<StoredCheck> {
    let rows = crate::floor::stored_rows(floor)
        .with_context(|| format!("reading the floor's file {}", floor.display()))?;
    if rows < acknowledged {
        bail!("the floor acknowledged {acknowledged} requests but its file holds {rows} rows");
    }
    Ok(StoredCheck { rows, acknowledged })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_k_and_m() {
        assert_eq!(parse_count("20000"), Ok(20_000));
        assert_eq!(parse_count("20k"), Ok(20_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("10_000_000"), Ok(10_000_000));
        assert!(parse_count("0").is_err());
        assert!(parse_count("lots").is_err());
    }

    #[test]
    fn quick_settings_are_short_and_skip_the_large_scales() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: BenchArgs,
        }
        let quick = Settings::from_args(&Wrapper::parse_from(["x", "--quick"]).args).unwrap();
        assert_eq!(quick.scales, vec![20_000]);
        assert_eq!(quick.seconds, Duration::from_secs(2));
        assert_eq!(quick.rate_seconds, Duration::from_secs(2));
        assert_eq!(quick.soak_seconds, Duration::from_secs(5));
        assert_eq!(
            (quick.shape_seconds, quick.shape_warmup),
            (Duration::from_millis(500), Duration::from_millis(200))
        );
        assert_eq!((quick.hot_events, quick.hot_limit), (2_000, Duration::from_secs(120)));
        let full = Settings::from_args(&Wrapper::parse_from(["x", "--scales", "1M"]).args).unwrap();
        assert_eq!(full.scales, vec![1_000_000]);
        assert_eq!(full.warmup, Duration::from_secs(1));
        assert_eq!(full.slow_repeat, 5);
        assert_eq!(full.seconds, Duration::from_secs(10));
        assert_eq!(full.rate_seconds, Duration::from_secs(30));
        assert_eq!((full.shape_seconds, full.hot_events), (Duration::from_secs(10), 100_000));
        assert_eq!(full.hot_limit, Duration::from_secs(600));
        assert_eq!(full.phases.len(), 8, "every phase by default");
        assert_eq!((quick.history_events, quick.follow_samples), (5_000, 3));
        assert_eq!((full.history_events, full.follow_samples), (100_000, 20));
        let hot = Settings::from_args(&Wrapper::parse_from(["x", "--hot-events", "1M"]).args).unwrap();
        assert_eq!(hot.hot_events, 1_000_000);
        assert!(Settings::from_args(&Wrapper::parse_from(["x", "--hot-events", "1k"]).args).is_err());
        assert!(Settings::from_args(&Wrapper::parse_from(["x", "--shape-seconds", "0"]).args).is_err());
        assert!(Settings::from_args(&Wrapper::parse_from(["x", "--hot-seconds", "0"]).args).is_err());
        assert!(Settings::from_args(&Wrapper::parse_from(["x", "--seconds", "0"]).args).is_err());
        assert!(Settings::from_args(&Wrapper::parse_from(["x", "--rate-seconds", "0"]).args).is_err());
    }
}
