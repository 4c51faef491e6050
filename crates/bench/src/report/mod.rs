//! `BENCHMARKS.md`: the machine, the date, the commit and the exact command, then one table per
//! phase, the soak's memory curve, and the targets beside what this run measured. Also the
//! one-line summaries printed as phases finish.
//!
//! This module owns the report as a whole ([`render`]: its header and the order of its
//! sections). The machine it ran on is read in `machine`, the printed one-line summaries are in
//! `summary`, the ingest and workload-shape tables in `ingest`, the other phases' sections in
//! `phases`, the targets in `targets`, and the cell formatting they share in `format`.

mod format;
mod ingest;
mod machine;
mod phases;
mod summary;
mod targets;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use super::{BenchRun, Phase};
use format::seconds;
use ingest::{render_ingest, render_shapes};
use machine::load_average;
use phases::{render_event_streams, render_history, render_hot, render_rate, render_scales, render_soak};
use targets::render_targets;

pub use format::{count, ms, rss_chart, rss_trend};
pub use machine::Machine;
pub use summary::{
    event_streams_line, history_text, hot_text, ingest_line, rate_line, scale_text, shape_line, soak_text,
};

/// The whole report.
pub fn render(run: &BenchRun) -> String {
    let m = &run.machine;
    let s = &run.settings;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Every figure below comes from one run of the command below on the machine described; \
         rerun it to refresh this file (see README, \"Benchmarks\").\n"
    );
    let _ = writeln!(out, "- **Command:** `{}`", run.command);
    let _ = writeln!(out, "- **Date:** {}", m.date);
    let _ = writeln!(out, "- **Commit:** {}", m.commit);
    let _ = writeln!(out, "- **Build:** {}", m.build);
    let _ = writeln!(
        out,
        "- **Machine:** {} CPUs (shared by the server and the load generator), {}, {:.1} GiB memory, Linux {}",
        m.cpus,
        m.cpu_model,
        m.memory_bytes as f64 / (1u64 << 30) as f64,
        m.kernel
    );
    let _ = writeln!(
        out,
        "- **Load average at start:** {}; at the end: {}",
        m.load_average_at_start,
        load_average()
    );
    let _ = writeln!(
        out,
        "- **Settings:** {} measured per ingest phase and {} at a constant rate, each after {} of \
         warm-up, each workload shape {} after {}; the hot task to {} events (for at most {}); reads \
         repeated {} times \
         (reads slower than 250 ms {} times); soak {} × {} connections{}",
        seconds(s.seconds),
        seconds(s.rate_seconds),
        seconds(s.warmup),
        seconds(s.shape_seconds),
        seconds(s.shape_warmup),
        count(s.hot_events),
        seconds(s.hot_limit),
        s.repeat,
        s.slow_repeat,
        seconds(s.soak_seconds),
        s.soak_connections,
        if s.quick { "; `--quick` (a smoke run)" } else { "" }
    );
    let _ = writeln!(
        out,
        "\nThe server is this binary's `serve` in a child process: signature checking on (every request \
         signed for its URL), `synchronous=FULL`, group commit, projections, one worker per CPU, a fresh \
         database per phase. Requests are the simulator's callbacks (bodies {:.0} bytes on average for \
         events, {:.0} for assignment callbacks), signed, every one unique. \"CPU\" is how the machine's whole capacity was shared during a phase: the server (or the command \
         measured), this benchmark process (the load generator), and every other process; where others \
         used much, the timings are not reliable (niced processes yield to the measured ones, so \
         they disturb less).\n",
        run.body_bytes.0, run.body_bytes.1
    );
    if !run.failures.is_empty() {
        let _ = writeln!(out, "## Failures\n");
        for failure in &run.failures {
            let _ = writeln!(out, "- {}", failure.replace('\n', " "));
        }
        out.push('\n');
    }
    if s.phases.contains(&Phase::Ingest) {
        render_ingest(&mut out, run);
    }
    if s.phases.contains(&Phase::Shapes) {
        render_shapes(&mut out, run);
    }
    if let Some(result) = &run.rate {
        render_rate(&mut out, result);
    }
    if let Some(result) = &run.hot {
        render_hot(&mut out, result);
    }
    if let Some(result) = &run.soak {
        render_soak(&mut out, result);
    }
    if !run.scales.is_empty() {
        render_scales(&mut out, &run.scales);
    }
    if let Some(result) = &run.history {
        render_history(&mut out, result);
    }
    if !run.event_streams.is_empty() {
        render_event_streams(&mut out, &run.event_streams);
    }
    render_targets(&mut out, run);
    out
}
