//! The closed-loop ingest runs of the ingest and shapes phases, and the constant-rate run:
//! requests prepared, a fresh server started, the load sent, the projections' catch-up timed and
//! the stored rows checked.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::ProgressBar;

use crate::corpus::{Feed, RequestSource};
use crate::load::{self, ClosedLoop, OpenLoop};
use crate::server::CpuWatch;
use crate::shapes::{Shape, Workloads};
use crate::{
    check_stored, discard_database, fail, load_problem, phase_bar, report, settle_disk, wait_for_projections,
    BenchRun, IngestResult, PhaseContext, RateResult, Settings, StoredCheck, Target, MAX_PREPARED,
    OPEN_LOOP_CONNECTIONS,
};

/// Most requests prepared for one `--quick` run, whose timings do not matter.
const QUICK_PREPARED: usize = 3_000;

/// Renders the first `count` requests of `shape` for `target` off the async runtime; the
/// source is returned to render more if the load needs them.
pub(crate) async fn prepare(
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
pub(crate) async fn ingest_series(
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

pub(crate) async fn rate_phase(
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
