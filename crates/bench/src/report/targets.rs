//! The targets table: each target beside this run's figure, and whether it was met.

use std::fmt::Write as _;
use std::time::Duration;

use super::format::{count, ms, optional_rate, quantile, rate};
use super::ingest::target_rate;
use crate::hot::HotResult;
use crate::scale::ScaleResult;
use crate::{BenchRun, Target};

/// Events the hot task must reach for its targets to be judged.
const HOT_JUDGED_AT: u64 = 100_000;
/// Connections at which every shape's throughput is judged.
const SHAPES_JUDGED_AT: usize = 32;

/// The targets beside this run's figures.
pub(super) fn render_targets(out: &mut String, run: &BenchRun) {
    let _ = writeln!(out, "## Targets\n");
    if cfg!(debug_assertions) {
        let _ = writeln!(out, "*A debug build: these verdicts say nothing about the product.*\n");
    }
    let _ = writeln!(out, "| target | measured | |\n|---|---|---|");
    let mut line = |target: &str, measured: Option<(String, Option<bool>)>| {
        let (text, mark) = match measured {
            Some((text, Some(true))) => (text, "met"),
            Some((text, Some(false))) => (text, "**missed**"),
            Some((text, None)) => (text, "not judged"),
            None => ("not measured in this run".to_string(), ""),
        };
        let _ = writeln!(out, "| {target} | {text} | {mark} |");
    };
    let throughput = shape_target_lines(run);
    if throughput.is_empty() {
        line(
            &format!(
                "every shape × {SHAPES_JUDGED_AT} connections: events ≥ 50 % of the floor, assignment ≥ 40 %"
            ),
            None,
        );
    }
    for (target, measured) in throughput {
        line(&target, measured);
    }
    let hot = |measure: &dyn Fn(&HotResult) -> Option<(String, bool)>| -> Option<(String, Option<bool>)> {
        let r = run.hot.as_ref()?;
        let (text, met) = measure(r)?;
        let reached = count(r.load.acknowledged);
        Some(match (r.events >= HOT_JUDGED_AT, r.stopped_at_limit) {
            (true, false) => (format!("{text} at {} events", count(r.events)), Some(met)),
            // Already missed on the way there, it cannot be met; otherwise it is not known.
            (true, true) => (
                format!("{text} after {reached} events, when the time limit stopped it"),
                (!met).then_some(false),
            ),
            (false, _) => (format!("{text} at {reached} events only"), None),
        })
    };
    line(
        "hot task: rate over the last 1,000 of 100,000 events ≥ 0.8× the first 1,000",
        hot(&|r| {
            let ratio = r.ratio()?;
            Some((
                format!(
                    "{ratio:.2}× ({} vs {} req/s)",
                    optional_rate(r.last_rate),
                    optional_rate(r.first_rate)
                ),
                ratio >= 0.8,
            ))
        }),
    );
    line(
        "other tasks' assignment callbacks during the hot task: p99 ≤ 10 ms",
        hot(&|r| {
            let p99 = quantile(&r.others.latency, 0.99);
            (!r.others.latency.is_empty()).then(|| {
                (
                    format!("p99 {} at {} req/s", ms(p99), rate(r.others_rate)),
                    p99 <= Duration::from_millis(10),
                )
            })
        }),
    );
    line(
        "assignment at 1,000 req/s: p99 ≤ 5 ms",
        run.rate.as_ref().map(|r| {
            let p99 = quantile(&r.load.latency, 0.99);
            (format!("p99 {} at {} req/s", ms(p99), rate(r.rate)), Some(p99 <= Duration::from_millis(5)))
        }),
    );
    let largest = run.scales.iter().max_by_key(|s| s.events);
    let read = |s: &ScaleResult, prefix: &str| s.reads.iter().find(|r| r.name.starts_with(prefix)).cloned();
    let at_1m = run.scales.iter().find(|s| s.events == 1_000_000);
    // A 10,000,000-event target is judged only at that scale; a smaller one is shown, unjudged.
    let at_10m =
        |measure: &dyn Fn(&ScaleResult) -> Option<(String, bool)>| -> Option<(String, Option<bool>)> {
            match run.scales.iter().find(|s| s.events >= 10_000_000) {
                Some(s) => measure(s).map(|(text, met)| (text, Some(met))),
                None => largest.and_then(|s| {
                    measure(s).map(|(text, _)| (format!("{text} at {} events only", count(s.events)), None))
                }),
            }
        };
    let judged = |m: Option<(String, bool)>| m.map(|(text, met)| (text, Some(met)));
    line(
        "task API, one task, 10,000,000 events: p50 ≤ 5 ms",
        at_10m(&|s| {
            read(s, "task API")
                .map(|r| (format!("p50 {}", ms(r.median)), r.median <= Duration::from_millis(5)))
        }),
    );
    line(
        "request list by SID, 10,000,000 events: ≤ 20 ms",
        at_10m(&|s| {
            read(s, "request list, by task SID")
                .map(|r| (format!("median {}", ms(r.median)), r.median <= Duration::from_millis(20)))
        }),
    );
    line(
        "workspace statistics over 1,000,000 events: ≤ 1 s",
        judged(at_1m.and_then(|s| {
            read(s, "workspace statistics")
                .map(|r| (format!("median {}", ms(r.median)), r.median <= Duration::from_secs(1)))
        })),
    );
    line(
        "rebuild of 1,000,000 events: ≤ 20 s",
        judged(at_1m.map(|s| {
            (format!("{:.1} s", s.rebuild.wall.as_secs_f64()), s.rebuild.wall <= Duration::from_secs(20))
        })),
    );
    line(
        "server peak RSS with 10,000,000 events stored: ≤ 150 MB",
        at_10m(&|s| {
            let megabytes = s.server_peak_rss as f64 / 1e6;
            Some((format!("{megabytes:.0} MB"), megabytes <= 150.0))
        }),
    );
    line(
        "database ≤ 1.5× the raw body bytes per event",
        judged(largest.map(|s| {
            let ratio = s.database_bytes as f64 / s.rows.max(1) as f64 / s.raw_body_bytes_per_event.max(1.0);
            (format!("{ratio:.2}× at {} events", count(s.events)), ratio <= 1.5)
        })),
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "The ingest's share of the no-storage baseline is not a target: the floor, what durable SQLite alone \
         reaches in the same run, is the reference.\n"
    );
}

/// A target's figure and verdict (`None`: not judged), or `None` when it was not measured.
type Measured = Option<(String, Option<bool>)>;

/// One target line per shape and endpoint at [`SHAPES_JUDGED_AT`] connections: events ≥ 50 %
/// of the floor's rate, assignment callbacks ≥ 40 %. Without the shapes phase, the ingest
/// phase's runs stand for the realistic shape.
fn shape_target_lines(run: &BenchRun) -> Vec<(String, Measured)> {
    let runs = if run.shapes.is_empty() { &run.ingest } else { &run.shapes };
    runs.iter()
        .filter(|r| {
            r.connections == SHAPES_JUDGED_AT && matches!(r.target, Target::Events | Target::Assignment)
        })
        .map(|r| {
            let wanted = if r.target == Target::Events { 0.5 } else { 0.4 };
            let target = format!(
                "{}, {} × {}: ≥ {:.0} % of the floor",
                r.shape.label(),
                r.target.short_label(),
                r.connections,
                wanted * 100.0
            );
            let measured =
                target_rate(runs, Target::Floor, r.connections).filter(|f| *f > 0.0).map(|floor| {
                    let share = r.projected_rate() / floor;
                    (
                        format!(
                            "{:.0} % ({} until projected, of the floor's {} req/s)",
                            share * 100.0,
                            rate(r.projected_rate()),
                            rate(floor)
                        ),
                        Some(share >= wanted),
                    )
                });
            (target, measured)
        })
        .collect()
}
