//! The programs under test, run as child processes of this same binary (`serve`, `generate`,
//! `rebuild`), so the benchmark measures the build users run, in its own process: its memory
//! from `/proc/<pid>/status`, its CPU from `/proc/<pid>/stat`, and at exit its peak RSS and CPU
//! from `wait4`.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// `taskrouter-bench tracer` adds the baseline and the floor (`reference`) to the server.
pub const REFERENCE_ENDPOINTS_OPTION: &str = "reference-endpoints";

/// How a child process ended and what it used.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_rss_bytes: u64,
    /// `None` when it ended by a signal.
    pub exit_code: Option<i32>,
}

/// Memory of a running process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_bytes: u64,
    /// The peak RSS so far (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// Reads a process's memory; `None` once it is gone.
pub fn memory(pid: i32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some(Memory { rss_bytes: field("VmRSS:")?, peak_rss_bytes: field("VmHWM:")? })
}

/// CPU time a process has used so far (user + system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks_to_duration(ticks))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_second)
}

/// The whole machine's CPU time so far, from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    /// Time not idle.
    pub busy: Duration,
    /// Of that, time running niced processes (which yield to ours when both want a CPU).
    pub niced: Duration,
    pub total: Duration,
}

/// Reads `/proc/stat`'s first line.
pub fn machine_cpu() -> Option<MachineCpu> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let field = |i: usize| values.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = field(3) + field(4);
    Some(MachineCpu {
        busy: ticks_to_duration(total - idle),
        niced: ticks_to_duration(field(1)),
        total: ticks_to_duration(total),
    })
}

/// Watches who uses the CPU while a phase runs: the processes under test, this one (the load
/// generator), and everything else. Other work on a shared machine makes timings unreliable.
pub struct CpuWatch {
    machine_start: MachineCpu,
    watched_start: Vec<(String, Duration)>,
    own_start: Duration,
}

/// Shares of the machine's whole capacity (all CPUs) over a phase, 0–1.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuShares {
    /// The processes under test.
    pub tested: f64,
    /// This process: the load generator.
    pub bench: f64,
    /// Everything else on the machine.
    pub others: f64,
    /// Of `others`, niced processes.
    pub others_niced: f64,
}

impl CpuWatch {
    /// Starts watching `pids` (the processes under test) and this process.
    pub fn start(pids: &[i32]) -> Self {
        Self {
            machine_start: machine_cpu().unwrap_or_default(),
            watched_start: pids
                .iter()
                .map(|p| (p.to_string(), cpu_time(&p.to_string()).unwrap_or_default()))
                .collect(),
            own_start: cpu_time("self").unwrap_or_default(),
        }
    }

    /// The shares since the start; `children` is CPU used by reaped children under test.
    pub fn shares(&self, children: Duration) -> CpuShares {
        let now = machine_cpu().unwrap_or_default();
        let busy = now.busy.saturating_sub(self.machine_start.busy);
        let niced = now.niced.saturating_sub(self.machine_start.niced);
        let total = now.total.saturating_sub(self.machine_start.total).as_secs_f64();
        if total <= 0.0 {
            return CpuShares::default();
        }
        let tested: Duration = self
            .watched_start
            .iter()
            .map(|(pid, start)| cpu_time(pid).unwrap_or(*start).saturating_sub(*start))
            .sum::<Duration>()
            + children;
        let bench = cpu_time("self").unwrap_or(self.own_start).saturating_sub(self.own_start);
        let others = busy.saturating_sub(tested + bench);
        let share = |d: Duration| (d.as_secs_f64() / total).clamp(0.0, 1.0);
        CpuShares {
            tested: share(tested),
            bench: share(bench),
            others: share(others),
            others_niced: share(niced.min(others)),
        }
    }
}

/// Reaps `pid` if it has ended (`block`: wait until it has), with what it used.
fn wait4(pid: i32, block: bool) -> anyhow::Result<Option<(Option<i32>, Duration, u64)>> {
    let mut status = 0;
    // SAFETY: rusage is plain old data, fully written by wait4 on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: valid pointers to local variables.
    let reaped = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
    if reaped < 0 {
        bail!("wait4({pid}): {}", std::io::Error::last_os_error());
    }
    if reaped == 0 {
        return Ok(None);
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = time(usage.ru_utime) + time(usage.ru_stime);
    Ok(Some((code, cpu, usage.ru_maxrss as u64 * 1024)))
}

/// Runs this binary with `args` (`tracer …` for one of the tracer's commands) to completion: stdout captured and returned, stderr shown (so
/// the command's own progress bar is visible on a terminal).
///
/// # Errors
/// When it cannot start or does not exit 0.
pub async fn run_to_completion(args: Vec<OsString>) -> anyhow::Result<(Usage, String)> {
    let output = tempfile::NamedTempFile::new()?;
    let started = Instant::now();
    let child = Command::new(std::env::current_exe()?)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(output.reopen()?)
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {args:?}"))?;
    let pid = child.id() as i32;
    let observed = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn({
        let observed = observed.clone();
        async move {
            loop {
                if let Some(memory) = memory(pid) {
                    observed.fetch_max(memory.peak_rss_bytes, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let (code, cpu, reported) =
        tokio::task::spawn_blocking(move || wait4(pid, true)).await??.expect("a blocking wait4 reaps");
    sampler.abort();
    let peak = peak_rss(reported, own_peak_rss(), observed.load(Ordering::Relaxed));
    let usage = Usage { wall: started.elapsed(), cpu, peak_rss_bytes: peak, exit_code: code };
    let stdout = std::fs::read_to_string(output.path()).unwrap_or_default();
    if code != Some(0) {
        bail!("{args:?} failed ({}): {stdout}", describe_exit(code));
    }
    Ok((usage, stdout))
}

/// This process's peak RSS so far.
fn own_peak_rss() -> u64 {
    memory(std::process::id() as i32).map_or(u64::MAX, |m| m.peak_rss_bytes)
}

/// A child's peak RSS. `wait4` reports the larger of the child's own peak and this process's
/// (Linux carries the spawning process's peak over at exec), so it is believed only when it
/// exceeds this process's peak read after the child was reaped (read at spawn, a peak this
/// process reached meanwhile would be taken for the child's); otherwise the peak observed in
/// `/proc/<pid>/status` (VmHWM) while it ran is used.
fn peak_rss(reported: u64, parent_peak_since: u64, observed: u64) -> u64 {
    if reported > parent_peak_since {
        reported.max(observed)
    } else {
        observed
    }
}

fn describe_exit(code: Option<i32>) -> String {
    code.map_or("killed by a signal".to_string(), |c| format!("exit code {c}"))
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub database: PathBuf,
    pub port: u16,
    pub auth_token: String,
    /// Also serve the baseline and the floor (`reference`).
    pub baseline: bool,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// More `serve` options (the Events API follower's).
    pub extra_args: Vec<OsString>,
}

/// A running `tracer serve` child.
pub struct Server {
    pub pid: i32,
    pub base_url: String,
    started: Instant,
    log: PathBuf,
    ended: Option<Usage>,
}

impl Server {
    /// Starts the tracer's `serve` (as `taskrouter-bench tracer serve`) with signature checking on (signed for `http://127.0.0.1:PORT`), the
    /// default `synchronous=FULL`, and waits until `/healthz` answers.
    ///
    /// # Errors
    /// When it does not start, exits, or is not healthy within `ready_within`.
    pub async fn start(options: &ServerOptions, ready_within: Duration) -> anyhow::Result<Self> {
        let base_url = format!("http://127.0.0.1:{}", options.port);
        let mut args: Vec<OsString> = vec!["tracer".into()];
        if options.baseline {
            args.push(format!("--{REFERENCE_ENDPOINTS_OPTION}").into());
        }
        args.extend::<[OsString; 9]>([
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", options.port).into(),
            "--database".into(),
            options.database.clone().into(),
            "--public-url".into(),
            base_url.clone().into(),
            "--signature-check".into(),
            "enforce".into(),
        ]);
        args.extend(options.extra_args.iter().cloned());
        let log = File::create(&options.log)?;
        let started = Instant::now();
        let child = Command::new(std::env::current_exe()?)
            .args(&args)
            // The token through the environment, as users pass it, never on the command line.
            .env("TWILIO_AUTH_TOKEN", &options.auth_token)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the server")?;
        let mut server =
            Server { pid: child.id() as i32, base_url, started, log: options.log.clone(), ended: None };
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build()?;
        loop {
            if let Some((code, cpu, peak)) = wait4(server.pid, false)? {
                server.ended = Some(Usage {
                    wall: started.elapsed(),
                    cpu,
                    peak_rss_bytes: peak_rss(peak, own_peak_rss(), 0),
                    exit_code: code,
                });
                bail!("the server exited ({}): {}", describe_exit(code), server.log_tail());
            }
            let healthy = client.get(format!("{}/healthz", server.base_url)).send().await;
            if healthy.is_ok_and(|r| r.status().is_success()) {
                return Ok(server);
            }
            if started.elapsed() > ready_within {
                server.stop().await.ok();
                bail!(
                    "the server was not healthy within {ready_within:?}: {}",
                    server_log_tail(&options.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its memory now.
    pub fn memory(&self) -> Option<Memory> {
        memory(self.pid)
    }

    /// The last lines it logged.
    pub fn log_tail(&self) -> String {
        server_log_tail(&self.log)
    }

    /// Stops it with SIGTERM (SIGKILL after 30 s) and reaps it.
    ///
    /// # Errors
    /// When it cannot be reaped.
    pub async fn stop(&mut self) -> anyhow::Result<Usage> {
        if let Some(usage) = &self.ended {
            return Ok(usage.clone());
        }
        let pid = self.pid;
        let observed = self.memory().map_or(0, |m| m.peak_rss_bytes);
        // SAFETY: signalling our own child, not yet reaped, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let ended = loop {
            if let Some(ended) = wait4(pid, false)? {
                break ended;
            }
            if Instant::now() > deadline {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break tokio::task::spawn_blocking(move || wait4(pid, true)).await??.expect("reaped");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let usage = Usage {
            wall: self.started.elapsed(),
            cpu: ended.1,
            peak_rss_bytes: peak_rss(ended.2, own_peak_rss(), observed),
            exit_code: ended.0,
        };
        self.ended = Some(usage.clone());
        Ok(usage)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.ended.is_none() {
            // SAFETY: our own unreaped child; an abandoned benchmark must not leave it running.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = wait4(self.pid, true);
        }
    }
}

fn server_log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    if tail.is_empty() {
        "(it logged nothing)".into()
    } else {
        tail
    }
}

/// Samples a process's RSS at a fixed interval until told to stop.
pub struct RssSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<(Duration, u64)>>,
}

impl RssSampler {
    pub fn start(pid: i32, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        match memory(pid) {
                            Some(m) => samples.push((started.elapsed(), m.rss_bytes)),
                            None => break,
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
            samples
        });
        Self { stop, task }
    }

    /// Stops sampling: (time since start, RSS bytes) per sample.
    pub async fn finish(self) -> Vec<(Duration, u64)> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory_and_cpu() {
        let own = memory(std::process::id() as i32).expect("own /proc status");
        assert!(own.rss_bytes > 0 && own.peak_rss_bytes >= own.rss_bytes);
        assert!(cpu_time("self").is_some());
        let machine = machine_cpu().expect("/proc/stat");
        assert!(machine.niced <= machine.busy && machine.busy <= machine.total && !machine.total.is_zero());
    }

    #[test]
    fn a_child_peak_no_larger_than_the_parents_is_not_believed() {
        assert_eq!(peak_rss(500, 400, 120), 500, "larger than the parent: the child's own");
        assert_eq!(peak_rss(400, 400, 120), 120, "could be the parent's: what was observed");
    }
}
