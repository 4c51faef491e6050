//! Reads at scale: a log of N events built by `generate` (or taken from the cache), the
//! server started on it, the pages and APIs a user opens timed over repeated requests, the
//! log's size per event, and `rebuild`'s time and memory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::server::{self, CpuShares, CpuWatch, Server, ServerOptions, Usage};

/// Where built logs are kept between runs.
#[derive(Debug, Clone)]
pub enum LogStore {
    /// `DIR/log-<events>-<key>.db`, where the key names the code that generates logs; a log
    /// built by other code is deleted before a new one is built.
    Cache { dir: PathBuf, key: String },
    /// `DIR/log-<events>.db`, used whatever built it, built when missing.
    Reuse { dir: PathBuf },
}

impl LogStore {
    fn path(&self, events: u64) -> PathBuf {
        match self {
            LogStore::Cache { dir, key } => dir.join(format!("log-{events}-{key}.db")),
            LogStore::Reuse { dir } => dir.join(format!("log-{events}.db")),
        }
    }
}

/// How a log was built, kept beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltLog {
    pub events: u64,
    pub generate_wall_s: f64,
    pub generate_cpu_s: f64,
    pub generate_peak_rss_bytes: u64,
    /// Share of the machine other processes used meanwhile (unknown for a log built by hand).
    #[serde(default = "unknown_share")]
    pub others_share: f64,
    /// What `generate` printed.
    pub summary: String,
    pub built_at: String,
}

fn unknown_share() -> f64 {
    f64::NAN
}

/// A read whose warm-up takes longer than this is timed fewer times.
const SLOW_READ: Duration = Duration::from_millis(250);

/// One timed request, repeated.
#[derive(Debug, Clone)]
pub struct ReadTiming {
    pub name: String,
    pub path: String,
    pub count: usize,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// What one scale measured.
#[derive(Debug, Clone)]
pub struct ScaleResult {
    pub events: u64,
    pub rows: u64,
    pub log: BuiltLog,
    /// Whether this run built the log (else it came from the store).
    pub built_now: bool,
    pub reads: Vec<ReadTiming>,
    pub server_rss_after_start: u64,
    pub server_peak_rss: u64,
    pub reads_cpu: CpuShares,
    pub database_bytes: u64,
    pub raw_body_bytes_per_event: f64,
    pub raw_body_samples: usize,
    pub rebuild: Usage,
    pub rebuild_summary: String,
    pub rebuild_cpu: CpuShares,
}

/// The knobs of a scale run.
#[derive(Debug, Clone)]
pub struct ScalePlan {
    pub events: u64,
    pub store: LogStore,
    pub port: u16,
    pub work_dir: PathBuf,
    /// Timed requests per read, and per read slower than [`SLOW_READ`].
    pub repeat: usize,
    pub slow_repeat: usize,
}

/// Builds (or finds) the log, measures reads on it, then `rebuild`.
///
/// # Errors
/// When a child fails, a read does not answer 200, or the log holds nothing to read.
pub async fn run(plan: &ScalePlan, progress: &indicatif::ProgressBar) -> anyhow::Result<ScaleResult> {
    let (database, log, built_now) = ensure_log(plan, progress).await?;
    progress.set_message(format!("{} events: starting the server", plan.events));
    let mut server = Server::start(
        &ServerOptions {
            database: database.clone(),
            port: plan.port,
            auth_token: super::corpus::AUTH_TOKEN.into(),
            baseline: false,
            log: plan.work_dir.join(format!("serve-{}.log", plan.events)),
            extra_args: Vec::new(),
        },
        Duration::from_secs(1800),
    )
    .await?;
    let server_rss_after_start = server.memory().map_or(0, |m| m.rss_bytes);
    let watch = CpuWatch::start(&[server.pid]);
    let measured = measure_reads(&server.base_url, plan, progress).await;
    let reads_cpu = watch.shares(Duration::ZERO);
    let usage = server.stop().await?;
    let (reads, rows, raw_body_bytes_per_event, raw_body_samples) = measured?;
    let database_bytes = taskrouter_tracer::storage::database_bytes(&database);

    progress.set_message(format!("{} events: rebuild", plan.events));
    super::settle_disk().await;
    let watch = CpuWatch::start(&[]);
    let (rebuild, rebuild_summary) =
        run_child(progress, vec!["tracer".into(), "rebuild".into(), "--database".into(), database.into()])
            .await?;
    let rebuild_cpu = watch.shares(rebuild.cpu);
    Ok(ScaleResult {
        events: plan.events,
        rows,
        log,
        built_now,
        reads,
        server_rss_after_start,
        server_peak_rss: usage.peak_rss_bytes,
        reads_cpu,
        database_bytes,
        raw_body_bytes_per_event,
        raw_body_samples,
        rebuild,
        rebuild_summary: rebuild_summary.trim().to_string(),
        rebuild_cpu,
    })
}

/// The log for `plan.events`, built by `generate` unless the store has it.
async fn ensure_log(
    plan: &ScalePlan,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(PathBuf, BuiltLog, bool)> {
    let database = plan.store.path(plan.events);
    let meta_path = database.with_extension("json");
    if database.exists() {
        let log = std::fs::read_to_string(&meta_path)
            .ok()
            .and_then(|text| serde_json::from_str::<BuiltLog>(&text).ok())
            .unwrap_or_else(|| BuiltLog {
                events: plan.events,
                generate_wall_s: f64::NAN,
                generate_cpu_s: f64::NAN,
                generate_peak_rss_bytes: 0,
                others_share: f64::NAN,
                summary: "built before this run; how is not recorded".into(),
                built_at: String::new(),
            });
        return Ok((database, log, false));
    }
    let dir = database.parent().expect("a log path has a directory").to_path_buf();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let LogStore::Cache { .. } = plan.store {
        remove_stale_logs(&dir, plan.events)?;
    }
    // Built under another name and renamed when complete, so a half-built log is never used.
    let partial = dir.join(format!("partial-{}.db", plan.events));
    remove_database(&partial);
    progress.set_message(format!("{} events: generate (its own progress below)", plan.events));
    let watch = CpuWatch::start(&[]);
    let started = chrono::Utc::now();
    let (usage, summary) = run_child(
        progress,
        vec![
            "generate".into(),
            "--database".into(),
            partial.clone().into(),
            "--events".into(),
            OsString::from(plan.events.to_string()),
        ],
    )
    .await?;
    let log = BuiltLog {
        events: plan.events,
        generate_wall_s: usage.wall.as_secs_f64(),
        generate_cpu_s: usage.cpu.as_secs_f64(),
        generate_peak_rss_bytes: usage.peak_rss_bytes,
        others_share: watch.shares(usage.cpu).others,
        summary: summary.trim().to_string(),
        built_at: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(&partial, suffix);
        if from.exists() {
            std::fs::rename(&from, with_suffix(&database, suffix))?;
        }
    }
    std::fs::rename(&partial, &database)?;
    std::fs::write(&meta_path, serde_json::to_string_pretty(&log)?)?;
    Ok((database, log, true))
}

/// Runs a command to completion with our bar hidden, so the command's own bar has the terminal.
async fn run_child(
    progress: &indicatif::ProgressBar,
    args: Vec<OsString>,
) -> anyhow::Result<(Usage, String)> {
    progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let result = server::run_to_completion(args).await;
    progress.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    result
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(path, suffix));
    }
}

/// Deletes logs of `events` built by other code (they would only fill the disk).
fn remove_stale_logs(dir: &Path, events: u64) -> anyhow::Result<()> {
    let prefix = format!("log-{events}-");
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".db") {
            remove_database(&path);
            let _ = std::fs::remove_file(path.with_extension("json"));
        }
    }
    Ok(())
}

/// Names the code that decides what `generate` writes: the last commit touching it, plus a
/// digest of uncommitted changes to it. `None` outside a git checkout.
pub fn generator_key() -> Option<String> {
    // Relative to the workspace root: git runs from wherever the bench was started in it.
    const PATHS: [&str; 9] = [
        ":/crates/bench/src/generate.rs",
        ":/crates/simulator",
        ":/crates/protocol",
        ":/src/storage",
        ":/src/projections",
        ":/src/ingest",
        ":/src/relay.rs",
        ":/migrations",
        ":/Cargo.lock",
    ];
    let git = |args: &[&str]| -> Option<Vec<u8>> {
        let output = Command::new("git").args(args).args(["--"]).args(PATHS).output().ok()?;
        output.status.success().then_some(output.stdout)
    };
    let commit = String::from_utf8(git(&["log", "-1", "--format=%h"])?).ok()?.trim().to_string();
    if commit.is_empty() {
        return None;
    }
    let mut changes = git(&["diff", "HEAD"])?;
    for untracked in String::from_utf8(git(&["ls-files", "--others", "--exclude-standard"])?).ok()?.lines() {
        changes.extend_from_slice(untracked.as_bytes());
        changes.extend(std::fs::read(untracked).unwrap_or_default());
    }
    Some(if changes.is_empty() {
        commit
    } else {
        format!("{commit}-changed-{}", &hex::encode(Sha256::digest(&changes))[..8])
    })
}

/// Times the reads; also counts the rows and the raw body bytes per event.
async fn measure_reads(
    base: &str,
    plan: &ScalePlan,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(Vec<ReadTiming>, u64, f64, usize)> {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(600)).build()?;
    let newest: serde_json::Value = get_json(&client, &format!("{base}/api/requests?limit=1")).await?;
    let rows = newest["requests"][0]["id"].as_u64().context("the log is empty")?;
    // A task from the middle of the log, with its reservations.
    let middle: serde_json::Value = get_json(
        &client,
        &format!("{base}/api/requests?limit=1&event_type=reservation.created&before={}", rows / 2 + 1),
    )
    .await?;
    let row = &middle["requests"][0];
    let task = row["task_sid"].as_str().context("no reservation.created before the middle of the log")?;
    let body =
        base64::engine::general_purpose::STANDARD.decode(row["body_base64"].as_str().unwrap_or_default())?;
    let workspace = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "WorkspaceSid")
        .map(|(_, value)| value.into_owned())
        .context("the reservation has no WorkspaceSid")?;
    // A fragment of the task's SID matches almost nothing: the free-text search's worst case.
    let rare = &task[2..14];
    let everything = "StartDate=2000-01-01T00:00:00Z&EndDate=2100-01-01T00:00:00Z";
    let reads: Vec<(&str, String)> = vec![
        ("task API, one task", format!("/api/tasks/{task}")),
        ("task page, one task", format!("/tasks/{task}")),
        ("request list, unfiltered", "/requests".into()),
        ("request list, by task SID", format!("/requests?sid={task}")),
        ("requests API, by task SID", format!("/api/requests?sid={task}")),
        ("request list, free text matching recent rows", "/requests?q=selected_language".into()),
        ("request list, free text matching almost nothing", format!("/requests?q={rare}")),
        (
            "workspace statistics, whole log",
            format!("/api/v1/Workspaces/{workspace}/CumulativeStatistics?{everything}"),
        ),
    ];
    let mut timings = Vec::new();
    for (name, path) in reads {
        progress.set_message(format!("{} events: {name}", plan.events));
        timings.push(time_get(&client, base, name, &path, (plan.repeat, plan.slow_repeat)).await?);
    }
    progress.set_message(format!("{} events: raw body sizes", plan.events));
    let (raw, samples) = raw_body_bytes_per_event(&client, base, rows).await?;
    Ok((timings, rows, raw, samples))
}

/// One warm-up request, then timed ones, each of which must answer 200: `repeat.0` of them, or
/// `repeat.1` when the warm-up took longer than [`SLOW_READ`].
async fn time_get(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    path: &str,
    repeat: (usize, usize),
) -> anyhow::Result<ReadTiming> {
    let url = format!("{base}{path}");
    let mut count = repeat.0;
    let mut times = Vec::with_capacity(count);
    let mut i = 0;
    while i <= count {
        let started = Instant::now();
        let response = client.get(&url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            bail!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        if i == 0 && elapsed > SLOW_READ {
            count = repeat.1;
        } else if i > 0 {
            times.push(elapsed);
        }
        i += 1;
    }
    times.sort();
    Ok(ReadTiming {
        name: name.into(),
        path: path.into(),
        count,
        median: nearest_rank(&times, 50.0),
        p99: nearest_rank(&times, 99.0),
        max: times.last().copied().unwrap_or_default(),
    })
}

/// The `percentile`th of sorted `values` by nearest rank.
pub fn nearest_rank(sorted: &[Duration], percentile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((percentile / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The mean raw (as received) body size per row, from up to 400 rows spread evenly over the
/// log, read through the API so it stays right however the database stores bodies.
async fn raw_body_bytes_per_event(
    client: &reqwest::Client,
    base: &str,
    rows: u64,
) -> anyhow::Result<(f64, usize)> {
    let samples = rows.clamp(1, 400);
    let mut total = 0usize;
    for i in 0..samples {
        let id = 1 + i * rows / samples;
        let row: serde_json::Value = get_json(client, &format!("{base}/api/requests/{id}")).await?;
        let body = row["body_base64"].as_str().context("a request without body_base64")?;
        total += base64::engine::general_purpose::STANDARD.decode(body)?.len();
    }
    Ok((total as f64 / samples as f64, samples as usize))
}

async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let response = client.get(url).send().await?;
    let status = response.status();
    if !status.is_success() {
        bail!("GET {url} answered {status}");
    }
    Ok(response.json().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_description_written_by_hand_may_leave_the_cpu_share_out() {
        let text = r#"{"events": 10, "generate_wall_s": 1.5, "generate_cpu_s": 2.0,
            "generate_peak_rss_bytes": 1024, "summary": "rows written: 10", "built_at": "2026-11-29T06:31:50Z"}"#;
        let log: BuiltLog = serde_json::from_str(text).unwrap();
        assert_eq!((log.events, log.generate_peak_rss_bytes), (10, 1024));
        assert!(log.others_share.is_nan(), "unknown, shown as a dash");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(nearest_rank(&values, 50.0), Duration::from_millis(50));
        assert_eq!(nearest_rank(&values, 99.0), Duration::from_millis(99));
        assert_eq!(nearest_rank(&values[..5], 99.0), Duration::from_millis(5));
        assert_eq!(nearest_rank(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn stale_logs_of_the_same_size_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["log-100-old.db", "log-100-old.db-wal", "log-100-old.json", "log-200-old.db"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_stale_logs(dir.path(), 100).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["log-200-old.db"]);
    }
}
