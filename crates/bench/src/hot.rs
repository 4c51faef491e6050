//! The hot task: one task driven to many events (`--hot-events`), sent in order by a closed
//! loop, while an open loop sends assignment callbacks for other, fresh tasks to the same
//! server at a constant rate. It tells whether a task's growing history slows its own ingest
//! (the rate over its first and its last thousand events) and whether it delays every other
//! task (their latency, each from when its callback was due).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;

use super::load::{self, LoadOutcome, OpenLoop};
use super::server::{CpuShares, CpuWatch, RssSampler, Usage};
use super::shapes::{Shape, Workloads};
use super::{
    check_stored, discard_database, load_problem, prepare, PhaseContext, StoredCheck, Target, MAX_PREPARED,
    OPEN_LOOP_CONNECTIONS,
};

/// Connections sending the hot task's events.
pub const HOT_CONNECTIONS: usize = 32;
/// Assignment callbacks per second for other tasks meanwhile.
pub const OTHERS_RATE: f64 = 100.0;
/// Events in each of the first and the last window.
pub const WINDOW_EVENTS: usize = 1_000;
/// Longer than any hot task takes: the other tasks' load stops when the hot task is done.
const OTHERS_AT_MOST: Duration = Duration::from_secs(24 * 3600);
/// Other tasks' callbacks prepared before the run; the rest are rendered as they are due.
const OTHERS_PREPARED: usize = 2_000;

/// How many events, and how the load is sent.
#[derive(Debug, Clone, Copy)]
pub struct HotPlan {
    pub events: u64,
    /// Most time the events are sent for.
    pub limit: Duration,
    pub connections: usize,
    pub others_rate: f64,
}

/// What the hot-task phase measured.
#[derive(Debug, Clone)]
pub struct HotResult {
    /// Events asked for.
    pub events: u64,
    /// The most time the events were to be sent for, and whether it stopped them before
    /// every one was sent.
    pub limit: Duration,
    pub stopped_at_limit: bool,
    pub connections: usize,
    /// The hot task's events; the window runs from the first sent to the last answered.
    pub load: LoadOutcome,
    /// Events per second over the first and the last [`WINDOW_EVENTS`] acknowledged.
    pub first_rate: Option<f64>,
    pub last_rate: Option<f64>,
    /// Events per second over each tenth of the events acknowledged, in order.
    pub tenths: Vec<f64>,
    pub others_rate: f64,
    /// The other tasks' assignment callbacks, latency from when each was due.
    pub others: LoadOutcome,
    pub rss_after_start: u64,
    pub rss_at_end: u64,
    /// (time since the load started, RSS bytes), once a second.
    pub rss: Vec<(Duration, u64)>,
    pub server: Usage,
    pub stored: StoredCheck,
    pub cpu: CpuShares,
    /// Requests rendered while the load ran (beyond the prepared ones), of both loads.
    pub rendered_live: usize,
    /// The projections' lag when the events stopped, and their catch-up.
    pub projection: super::CatchUp,
}

impl HotResult {
    /// The rate over the last window as a multiple of the rate over the first.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.first_rate, self.last_rate)
    }
}

/// `last ÷ first`, when both were measured and the first is not zero.
pub fn ratio(first: Option<f64>, last: Option<f64>) -> Option<f64> {
    match (first, last) {
        (Some(first), Some(last)) if first > 0.0 => Some(last / first),
        _ => None,
    }
}

/// Requests per second over acknowledgements `from..to` (indexes into `acknowledged_at`, the
/// times since the load started, ascending), timed from the acknowledgement before `from` (the
/// start of the load for the first): `None` for an empty or impossible window.
pub fn window_rate(acknowledged_at: &[Duration], from: usize, to: usize) -> Option<f64> {
    if from >= to || to > acknowledged_at.len() {
        return None;
    }
    let start = if from == 0 { Duration::ZERO } else { acknowledged_at[from - 1] };
    let span = acknowledged_at[to - 1].saturating_sub(start).as_secs_f64();
    (span > 0.0).then(|| (to - from) as f64 / span)
}

/// The rates over the first and the last `window` acknowledgements.
pub fn first_and_last(acknowledged_at: &[Duration], window: usize) -> (Option<f64>, Option<f64>) {
    let n = acknowledged_at.len();
    if n < window {
        return (None, None);
    }
    (window_rate(acknowledged_at, 0, window), window_rate(acknowledged_at, n - window, n))
}

/// The rate over each tenth of the acknowledgements (none when there are fewer than ten).
pub fn tenths(acknowledged_at: &[Duration]) -> Vec<f64> {
    let n = acknowledged_at.len();
    if n < 10 {
        return Vec::new();
    }
    (0..10).filter_map(|i| window_rate(acknowledged_at, n * i / 10, n * (i + 1) / 10)).collect()
}

/// Why the phase counts as failed: either load's problems, or events not acknowledged.
pub fn problems(result: &HotResult) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(problem) = load_problem(&result.load) {
        problems.push(format!("the hot task: {problem}"));
    }
    if result.load.acknowledged < result.events && !result.stopped_at_limit {
        problems.push(format!("only {} of {} events acknowledged", result.load.acknowledged, result.events));
    }
    if let Some(problem) = load_problem(&result.others) {
        problems.push(format!("other tasks' assignment callbacks: {problem}"));
    }
    problems
}

/// Runs the phase on a fresh database.
///
/// # Errors
/// When the server does not start or its log cannot be checked; failures under load are in
/// the result (see [`problems`]).
pub(super) async fn run(
    context: &PhaseContext,
    workloads: &Arc<Workloads>,
    plan: &HotPlan,
    progress: &ProgressBar,
) -> anyhow::Result<HotResult> {
    progress.set_message("preparing requests");
    let prepared = (plan.events as usize).min(MAX_PREPARED);
    let (requests, source) = prepare(workloads, Shape::HotTask, Target::Events, prepared).await?;
    let hot_feed = Arc::new(super::Feed::prepared_then(requests, source));
    let (requests, source) =
        prepare(workloads, Shape::TaskPerEvent, Target::Assignment, OTHERS_PREPARED).await?;
    let others_feed = Arc::new(super::Feed::prepared_then(requests, source));
    let name = "hot-task";
    let mut server = context.start_server(name, false).await?;
    progress.set_message("");
    let rss_after_start = server.memory().map_or(0, |m| m.rss_bytes);
    let watch = CpuWatch::start(&[server.pid]);
    let sampler = RssSampler::start(server.pid, Duration::from_secs(1));
    let stop = Arc::new(AtomicBool::new(false));
    let others = tokio::spawn({
        let (address, feed, stop) = (context.address(), others_feed.clone(), stop.clone());
        let plan = OpenLoop {
            rate: plan.others_rate,
            connections: OPEN_LOOP_CONNECTIONS,
            warmup: Duration::ZERO,
            duration: OTHERS_AT_MOST,
        };
        async move { load::open_loop_until(address, feed, plan, stop, &ProgressBar::hidden()).await }
    });
    let hot = load::sequence(
        context.address(),
        hot_feed.clone(),
        plan.events,
        plan.connections,
        plan.limit,
        progress,
    )
    .await;
    // Sending stops at the limit: a slow tracer is a figure, not a failure.
    let stopped_at_limit =
        hot.load.acknowledged + hot.load.errors < plan.events && hot.load.window >= plan.limit;
    stop.store(true, Ordering::Relaxed);
    let others = others.await?;
    let projection = super::wait_for_projections(&context.base_url()).await?;
    let cpu = watch.shares(Duration::ZERO);
    let rss = sampler.finish().await;
    let rss_at_end = server.memory().map_or(0, |m| m.rss_bytes);
    let stored = check_stored(&context.base_url(), hot.load.acknowledged + others.acknowledged).await;
    let usage = server.stop().await?;
    discard_database(&context.database(name));
    let (first_rate, last_rate) = first_and_last(&hot.acknowledged_at, WINDOW_EVENTS);
    Ok(HotResult {
        projection,
        events: plan.events,
        limit: plan.limit,
        stopped_at_limit,
        connections: plan.connections,
        first_rate,
        last_rate,
        tenths: tenths(&hot.acknowledged_at),
        load: hot.load,
        others_rate: plan.others_rate,
        others,
        rss_after_start,
        rss_at_end,
        rss,
        server: usage,
        stored: stored?,
        cpu,
        rendered_live: hot_feed.rendered_live() + others_feed.rendered_live(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn a_window_is_timed_from_the_acknowledgement_before_it() {
        let at = ms(&[100, 200, 300, 400, 1_400]);
        // The first two: 2 in 0.2 s from the start.
        assert_eq!(window_rate(&at, 0, 2), Some(10.0));
        // The last two: from 300 ms to 1,400 ms.
        assert_eq!(window_rate(&at, 3, 5), Some(2.0 / 1.1));
        assert_eq!(window_rate(&at, 2, 2), None);
        assert_eq!(window_rate(&at, 4, 6), None);
        assert_eq!(window_rate(&ms(&[0, 0]), 0, 2), None, "no time passed");
    }

    #[test]
    fn first_and_last_windows_give_the_ratio() {
        // 1,000 events a millisecond apart, then 1,000 two milliseconds apart.
        let at: Vec<Duration> =
            (1..=1_000u64).chain((1..=1_000u64).map(|i| 1_000 + 2 * i)).map(Duration::from_millis).collect();
        let (first, last) = first_and_last(&at, 1_000);
        assert_eq!(first, Some(1_000.0));
        assert_eq!(last, Some(500.0));
        assert_eq!(ratio(first, last), Some(0.5));
        assert_eq!(first_and_last(&at[..999], 1_000), (None, None));
        assert_eq!(ratio(Some(0.0), Some(1.0)), None);
        let tenths = tenths(&at);
        assert_eq!(tenths.len(), 10);
        assert!((tenths[0] - 1_000.0).abs() < 1e-6 && (tenths[9] - 500.0).abs() < 1e-6, "{tenths:?}");
        assert!(super::tenths(&at[..9]).is_empty());
    }
}
