//! The closed-loop sections: the ingest table with the CPU budget the ratio target leaves a
//! request, and the workload shapes' table; and the rates and shares they and the targets compare.

use std::fmt::Write as _;

use super::format::{catch_up_cell, count, cpu, mib, ms, quantile, rate};
use crate::shapes::{Shape, BUSY_TASKS};
use crate::{BenchRun, IngestResult, Target};

/// The rate of `target` at `connections` until every request was projected, if it ran.
pub(super) fn target_rate(ingest: &[IngestResult], target: Target, connections: usize) -> Option<f64> {
    ingest
        .iter()
        .find(|r| r.target == target && r.connections == connections)
        .map(IngestResult::projected_rate)
}

/// `result`'s rate as a share of `reference`'s at the same connections: "—" for the reference
/// itself and for the runs before it, "?" when it did not run or answered nothing.
pub(super) fn share_of(ingest: &[IngestResult], result: &IngestResult, reference: Target) -> String {
    if result.target == reference || (reference == Target::Floor && result.target == Target::Baseline) {
        return "—".into();
    }
    match target_rate(ingest, reference, result.connections) {
        Some(rate) if rate > 0.0 => format!("{:.0} %", result.projected_rate() / rate * 100.0),
        _ => "?".into(),
    }
}

pub(super) fn render_ingest(out: &mut String, run: &BenchRun) {
    let _ = writeln!(out, "## Ingest, closed loop\n");
    let _ = writeln!(
        out,
        "Each connection sends its next request as soon as the previous one is answered. The baseline is \
         the same server stack (`POST /webhooks/bench-baseline`, added by the bench to the tracer it runs) reading the body and \
         answering 204 without storage; the durable endpoints answer only after the commit. The floor \
         (`POST /webhooks/bench-floor`, added the same way) is the same stack appending the raw body to a one-table \
         SQLite file with the log's durability (WAL, `synchronous=FULL`, one writer, group commit, answered \
         after COMMIT) and nothing else (no parsing, signature, hash chain, dedup, index or projection): \
         what durable SQLite alone allows on this machine. The tracer answers once a request's row is \
         appended; its projections follow in transactions of their own, so each run also waits, once the \
         load stops, until they have taken in every row: the rate that counts (and is compared) is the \
         requests answered over the time until every one of them was projected.\n"
    );
    let _ = writeln!(
        out,
        "| endpoint | connections | req/s answered | projections behind at the end / caught up in | req/s until projected | of baseline | of floor | p50 | p99 | p99.9 | non-2xx | errors | rows stored | server peak RSS | CPU: server / bench / others | CPU per request: server + bench |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &run.ingest {
        let stored = r.stored.as_ref().map_or("—".to_string(), |s| count(s.rows));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.target.label(),
            r.connections,
            rate(r.load.rate()),
            catch_up_cell(r.projection.as_ref()),
            rate(r.projected_rate()),
            share_of(&run.ingest, r, Target::Baseline),
            share_of(&run.ingest, r, Target::Floor),
            ms(quantile(&r.load.latency, 0.5)),
            ms(quantile(&r.load.latency, 0.99)),
            ms(quantile(&r.load.latency, 0.999)),
            r.load.non_2xx,
            r.load.errors,
            stored,
            mib(r.server.peak_rss_bytes),
            cpu(&r.cpu),
            cost_per_request(r, run.machine.cpus)
                .map_or("—".into(), |(server, bench)| format!("{server:.0} + {bench:.0} µs")),
        );
    }
    out.push('\n');
    render_ratio_budget(out, run);
    for r in run.ingest.iter().filter(|r| r.rendered_live > 0) {
        let _ = writeln!(
            out,
            "{}\n",
            rendered_live_note(&format!("{} × {}", r.target.label(), r.connections), r.rendered_live)
        );
    }
}

/// CPU time per answered request (µs) of the server and of the load generator during a run:
/// its shares of the machine, over its rate.
pub(super) fn cost_per_request(result: &IngestResult, cpus: usize) -> Option<(f64, f64)> {
    let rate = result.load.rate();
    let per_request = |share: f64| share * cpus as f64 / rate * 1e6;
    (rate > 0.0).then(|| (per_request(result.cpu.tested), per_request(result.cpu.bench)))
}

/// What the ratio target leaves to a durable request, in CPU time, beside what each run's
/// requests cost, written under the ingest table.
fn render_ratio_budget(out: &mut String, run: &BenchRun) {
    let lines = ratio_budget_lines(&run.ingest, run.machine.cpus);
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "What half the baseline's rate would leave per request, in CPU time, beside what each run's requests cost (each run's \
         CPU shares over its rate; CPUs the server and the load generator left unused, to other processes or idle, \
         mean requests waited: for the disk, or for the single writer thread):\n"
    );
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

/// One line per connection count with a baseline: at half the baseline's rate the machine's
/// `cpus` allow `cpus / rate` of CPU time per request in all, load generator included; then what
/// each run's requests cost, and how much of the machine the server and the load generator left
/// unused.
pub(super) fn ratio_budget_lines(ingest: &[IngestResult], cpus: usize) -> Vec<String> {
    let mut connection_counts: Vec<usize> = Vec::new();
    for r in ingest {
        if !connection_counts.contains(&r.connections) {
            connection_counts.push(r.connections);
        }
    }
    let mut lines = Vec::new();
    for connections in connection_counts {
        let Some(baseline) = target_rate(ingest, Target::Baseline, connections).filter(|rate| *rate > 0.0)
        else {
            continue;
        };
        let half = baseline / 2.0;
        let costs: Vec<String> = ingest
            .iter()
            .filter(|r| r.connections == connections)
            .filter_map(|r| {
                let (server, bench) = cost_per_request(r, cpus)?;
                let unused = (1.0 - r.cpu.tested - r.cpu.bench).max(0.0);
                Some(format!(
                    "{} {:.0} µs ({:.0} + {:.0}; CPUs left unused {:.0} %)",
                    r.target.short_label(),
                    server + bench,
                    server,
                    bench,
                    unused * 100.0
                ))
            })
            .collect();
        lines.push(format!(
            "- {connections} connections: half the baseline's rate is {} req/s, which leaves at most {:.0} µs of \
             CPU time per request ({cpus} CPUs, load generator included). Measured per request (server + load \
             generator): {}.",
            rate(half),
            cpus as f64 / half * 1e6,
            costs.join("; ")
        ));
    }
    lines
}

/// Says that requests were rendered during a phase, taking CPU from the server.
pub(super) fn rendered_live_note(phase: &str, rendered: usize) -> String {
    format!(
        "*{phase}: {} requests were rendered while the load ran (more than were prepared), taking some CPU \
         from the server.*",
        count(rendered as u64)
    )
}

pub(super) fn render_shapes(out: &mut String, run: &BenchRun) {
    let _ = writeln!(out, "## Workload shapes, closed loop\n");
    let _ = writeln!(
        out,
        "The same closed loop, baseline and floor as the ingest table, in one series per connection count, \
         each run on a fresh database; only how the requests meet tasks changes (every request signed, every \
         event Sid unique, bodies the simulator's):\n\n\
         - **{}:** the simulation, as in the ingest table;\n\
         - **{}:** every request names a task (and reservation) never seen before: the simulation's event \
         types, or its assignment callbacks;\n\
         - **{}:** requests round-robin over {} tasks, each going through task-queue.entered, reservation \
         created then rejected, task.updated, created then timed out, a worker.activity.update (which names \
         no task), created then accepted, a fresh reservation each time, its clock moving forward;\n\
         - **{}:** every request names the same task: reservation.created, then .rejected (one in four \
         .timeout), then task.updated, a new reservation each round, its clock moving forward; the \
         assignment runs send that task's callbacks, a new reservation each.\n",
        Shape::Realistic.label(),
        Shape::TaskPerEvent.label(),
        Shape::BusyTasks.label(),
        BUSY_TASKS,
        Shape::HotTask.label(),
    );
    let _ = writeln!(
        out,
        "| shape | endpoint | connections | req/s answered | projections behind at the end / caught up in | req/s until projected | of floor | of baseline | p50 | p99 | p99.9 | non-2xx | errors | rows stored | server peak RSS | CPU: server / bench / others |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &run.shapes {
        let (shape, endpoint) = match r.target {
            Target::Events | Target::Assignment => (r.shape.label(), r.target.label()),
            Target::Baseline | Target::Floor => ("—", r.target.label()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            shape,
            endpoint,
            r.connections,
            rate(r.load.rate()),
            catch_up_cell(r.projection.as_ref()),
            rate(r.projected_rate()),
            share_of(&run.shapes, r, Target::Floor),
            share_of(&run.shapes, r, Target::Baseline),
            ms(quantile(&r.load.latency, 0.5)),
            ms(quantile(&r.load.latency, 0.99)),
            ms(quantile(&r.load.latency, 0.999)),
            r.load.non_2xx,
            r.load.errors,
            r.stored.as_ref().map_or("—".to_string(), |s| count(s.rows)),
            mib(r.server.peak_rss_bytes),
            cpu(&r.cpu),
        );
    }
    out.push('\n');
    for r in run.shapes.iter().filter(|r| r.rendered_live > 0) {
        let phase = format!("{} × {} × {}", r.shape.label(), r.target.short_label(), r.connections);
        let _ = writeln!(out, "{}\n", rendered_live_note(&phase, r.rendered_live));
    }
}
