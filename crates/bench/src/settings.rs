//! The command line of a run (`BenchArgs`, its phases) and the settings it comes to after
//! `--quick` and the defaults (`Settings`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

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

/// `taskrouter-bench`: what to measure and for how long.
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
    pub(crate) fn from_args(args: &BenchArgs) -> anyhow::Result<Self> {
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
