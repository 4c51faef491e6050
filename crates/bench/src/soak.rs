//! The soak: many connections of signed simulated traffic, both endpoints as TaskRouter
//! interleaves them, against the durable server for a minute. It reports errors (there must
//! be none), the server's RSS once a second (memory must stay flat), and how long the pages
//! take meanwhile, sampled by a separate client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::corpus::{Corpus, Feed, Stream, AUTH_TOKEN};
use super::load::{self, ClosedLoop, LoadOutcome};
use super::scale::nearest_rank;
use super::server::{CpuShares, CpuWatch, RssSampler, Server, ServerOptions, Usage};
use super::StoredCheck;

/// How long and how hard.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub connections: usize,
    pub duration: Duration,
    pub port: u16,
    pub work_dir: PathBuf,
}

/// One page's latency during the load.
#[derive(Debug, Clone)]
pub struct PageLatency {
    pub path: String,
    pub count: usize,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Answers other than 200, and failed requests.
    pub failures: usize,
}

#[derive(Debug, Clone)]
pub struct SoakResult {
    pub connections: usize,
    pub load: LoadOutcome,
    /// (time since the load started, RSS bytes), once a second.
    pub rss: Vec<(Duration, u64)>,
    pub server: Usage,
    pub pages: Vec<PageLatency>,
    pub stored: StoredCheck,
    pub cpu: CpuShares,
    /// Requests rendered while the load ran (beyond the prepared ones).
    pub rendered_live: usize,
}

/// Runs the soak on a fresh database.
///
/// # Errors
/// When the server does not start or its log cannot be checked; errors under load are
/// reported in the result, not here.
pub async fn run(plan: &SoakPlan, progress: &indicatif::ProgressBar) -> anyhow::Result<SoakResult> {
    let base_url = format!("http://127.0.0.1:{}", plan.port);
    progress.set_message("preparing requests");
    // A minute's worth is not known up front: some are prepared, the rest rendered as needed.
    let (requests, corpus) = tokio::task::spawn_blocking({
        let base_url = base_url.clone();
        move || {
            let mut corpus = Corpus::new(&base_url, Stream::Mixed, 5_000, 8);
            (corpus.take(20_000), corpus)
        }
    })
    .await?;
    let feed = Arc::new(Feed::prepared_then(requests, corpus));
    let mut server = Server::start(
        &ServerOptions {
            database: plan.work_dir.join("soak.db"),
            port: plan.port,
            auth_token: AUTH_TOKEN.into(),
            baseline: false,
            log: plan.work_dir.join("serve-soak.log"),
            extra_args: Vec::new(),
        },
        Duration::from_secs(60),
    )
    .await?;
    let address: SocketAddr = ([127, 0, 0, 1], plan.port).into();
    let watch = CpuWatch::start(&[server.pid]);
    let rss = RssSampler::start(server.pid, Duration::from_secs(1));
    let (stop_pages, pages_stopped) = tokio::sync::watch::channel(false);
    let pages = tokio::spawn(sample_pages(base_url.clone(), pages_stopped));
    progress.set_message("");
    let load = load::closed_loop(
        address,
        feed.clone(),
        ClosedLoop { connections: plan.connections, warmup: Duration::ZERO, duration: plan.duration },
        progress,
    )
    .await;
    let _ = stop_pages.send(true);
    let rss = rss.finish().await;
    let pages = pages.await?;
    let cpu = watch.shares(Duration::ZERO);
    let stored = super::check_stored(&base_url, load.acknowledged).await;
    let server_usage = server.stop().await?;
    super::discard_database(&plan.work_dir.join("soak.db"));
    Ok(SoakResult {
        connections: plan.connections,
        load,
        rss,
        server: server_usage,
        pages,
        stored: stored?,
        cpu,
        rendered_live: feed.rendered_live(),
    })
}

/// Every ~500 ms, GETs the dashboard, the task list, the request list and one task's page.
async fn sample_pages(base: String, mut stopped: tokio::sync::watch::Receiver<bool>) -> Vec<PageLatency> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client builds");
    let mut paths = vec!["/".to_string(), "/tasks".to_string(), "/requests".to_string()];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    let mut failures = [0usize; 4];
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => break,
        }
        if paths.len() == 3 {
            // The first task that has a reservation, once one is in the log.
            if let Some(task) = first_reserved_task(&client, &base).await {
                paths.push(format!("/tasks/{task}"));
            }
        }
        for (i, path) in paths.iter().enumerate() {
            let started = Instant::now();
            let answer = client.get(format!("{base}{path}")).send().await;
            let ok = match answer {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            if ok {
                times[i].push(started.elapsed());
            } else {
                failures[i] += 1;
            }
        }
    }
    paths
        .into_iter()
        .zip(times)
        .zip(failures)
        .map(|((path, mut times), failures)| {
            times.sort();
            PageLatency {
                path,
                count: times.len(),
                median: nearest_rank(&times, 50.0),
                p99: nearest_rank(&times, 99.0),
                max: times.last().copied().unwrap_or_default(),
                failures,
            }
        })
        .collect()
}

async fn first_reserved_task(client: &reqwest::Client, base: &str) -> Option<String> {
    let url = format!("{base}/api/requests?limit=1&event_type=reservation.created");
    let page: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    page["requests"][0]["task_sid"].as_str().map(str::to_string)
}
