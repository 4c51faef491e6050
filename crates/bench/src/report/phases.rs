//! The sections of the phases after the closed-loop ones: the hot task, the constant rate, the
//! soak, the reads at scale, the Events API, and Event Streams beside event callbacks.

use std::fmt::Write as _;
use std::time::Duration;

use super::format::{
    catch_up_cell, count, cpu, mib, ms, optional_rate, percent, quantile, rate, rss_chart, rss_trend, seconds,
};
use super::ingest::rendered_live_note;
use crate::event_streams::StreamsResult;
use crate::history::HistoryResult;
use crate::hot::{HotResult, WINDOW_EVENTS};
use crate::scale::ScaleResult;
use crate::soak::SoakResult;
use crate::RateResult;

pub(super) fn render_hot(out: &mut String, r: &HotResult) {
    let window = count(WINDOW_EVENTS as u64);
    let _ = writeln!(out, "## Hot task: one task to {} events\n", count(r.events));
    if r.stopped_at_limit {
        let _ = writeln!(
            out,
            "*Stopped at the {} limit (`--hot-seconds`) after {} events: the windows and figures below are \
             of the events sent.*\n",
            seconds(r.limit),
            count(r.load.acknowledged)
        );
    }
    let _ = writeln!(
        out,
        "One task's events (the hot-task shape: reservation created, rejected or timed out, task updated, a new \
         reservation each round) sent in order by a closed loop of {} connections, each once, on a fresh \
         database; meanwhile assignment callbacks for other tasks, each a task never seen before, are due at \
         {} a second (open loop, latency from when each was due). The first and last {window} are counted in \
         the order they were acknowledged, each window timed from the acknowledgement before it (the first from \
         the start): a last window as fast as the first means the task's growing history costs its ingest \
         nothing.\n",
        r.connections,
        rate(r.others_rate),
    );
    let _ = writeln!(
        out,
        "| events | connections | wall time | req/s overall | projections behind at the end / caught up in | req/s until projected | first {window} | last {window} | last ÷ first | non-2xx | errors | rows stored | server RSS after start / at end / peak | CPU: server / bench / others |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {} | {:.1} s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} |\n",
        if r.stopped_at_limit {
            format!("{} of {}", count(r.load.acknowledged), count(r.events))
        } else {
            count(r.events)
        },
        r.connections,
        r.load.window.as_secs_f64(),
        rate(r.load.rate()),
        catch_up_cell(Some(&r.projection)),
        rate(r.projection.rate_of(&r.load)),
        optional_rate(r.first_rate),
        optional_rate(r.last_rate),
        r.ratio().map_or("–".into(), |ratio| format!("{ratio:.2}×")),
        r.load.non_2xx,
        r.load.errors,
        count(r.stored.rows),
        mib(r.rss_after_start),
        mib(r.rss_at_end),
        mib(r.server.peak_rss_bytes),
        cpu(&r.cpu),
    );
    if !r.tenths.is_empty() {
        let tenths: Vec<String> = r.tenths.iter().map(|t| rate(*t)).collect();
        let _ = writeln!(
            out,
            "Events per second over each tenth of the events, in order: {}.\n",
            tenths.join(", ")
        );
    }
    let _ = writeln!(out, "{}\n", rss_trend(&r.rss));
    let latency = &r.others.latency;
    let _ = writeln!(
        out,
        "| other tasks' assignment callbacks | answered | req/s | p50 | p99 | p99.9 | max | non-2xx | errors |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| due at {} req/s | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        rate(r.others_rate),
        count(r.others.ok + r.others.non_2xx),
        rate(r.others.rate()),
        ms(quantile(latency, 0.5)),
        ms(quantile(latency, 0.99)),
        ms(quantile(latency, 0.999)),
        ms(Duration::from_micros(latency.max())),
        r.others.non_2xx,
        r.others.errors,
    );
    if r.rendered_live > 0 {
        let _ = writeln!(out, "{}\n", rendered_live_note("hot task", r.rendered_live));
    }
}

pub(super) fn render_rate(out: &mut String, r: &RateResult) {
    let latency = &r.load.latency;
    let _ = writeln!(out, "## Assignment callback at a constant rate\n");
    let _ = writeln!(
        out,
        "Requests are due at a fixed rate whatever the server does (open loop, up to {} connections); each \
         latency runs from when the request was due, so a stall counts in full for every request it delays \
         (no coordinated omission).\n",
        r.connections
    );
    let _ = writeln!(
        out,
        "| rate | answered req/s | p50 | p99 | p99.9 | max | non-2xx | errors | rows stored | server peak RSS | CPU: server / bench / others |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} req/s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        rate(r.rate),
        rate(r.load.rate()),
        ms(quantile(latency, 0.5)),
        ms(quantile(latency, 0.99)),
        ms(quantile(latency, 0.999)),
        ms(Duration::from_micros(latency.max())),
        r.load.non_2xx,
        r.load.errors,
        count(r.stored.rows),
        mib(r.server.peak_rss_bytes),
        cpu(&r.cpu),
    );
    if r.rendered_live > 0 {
        let _ = writeln!(out, "{}\n", rendered_live_note("constant rate", r.rendered_live));
    }
}

pub(super) fn render_soak(out: &mut String, r: &SoakResult) {
    let latency = &r.load.latency;
    let _ = writeln!(out, "## Soak: {} connections, {}\n", r.connections, seconds(r.load.window));
    let _ = writeln!(
        out,
        "Signed simulated traffic on both endpoints, as TaskRouter interleaves them, against the durable \
         server; meanwhile a separate client GETs four pages every 500 ms.\n"
    );
    let _ = writeln!(out, "| answered | req/s | errors | non-2xx | p50 | p99 | p99.9 | rows stored | server peak RSS | CPU: server / bench / others |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        count(r.load.ok + r.load.non_2xx),
        rate(r.load.rate()),
        r.load.errors,
        r.load.non_2xx,
        ms(quantile(latency, 0.5)),
        ms(quantile(latency, 0.99)),
        ms(quantile(latency, 0.999)),
        count(r.stored.rows),
        mib(r.server.peak_rss_bytes),
        cpu(&r.cpu),
    );
    if r.rendered_live > 0 {
        let _ = writeln!(out, "{}\n", rendered_live_note("soak", r.rendered_live));
    }
    let _ = writeln!(out, "Server RSS, one sample a second:\n\n```text\n{}```\n", rss_chart(&r.rss, 8));
    let _ = writeln!(out, "{}\n", rss_trend(&r.rss));
    let _ = writeln!(out, "| second | RSS |\n|---:|---:|");
    let step = (r.rss.len() / 12).max(1);
    for (i, (t, rss)) in r.rss.iter().enumerate() {
        if i % step == 0 || i + 1 == r.rss.len() {
            let _ = writeln!(out, "| {} | {} |", t.as_secs(), mib(*rss));
        }
    }
    let _ = writeln!(out, "\nPages during the load:\n");
    let _ = writeln!(out, "| page | samples | median | p99 | max | failed |\n|---|---:|---:|---:|---:|---:|");
    for page in &r.pages {
        let _ = writeln!(
            out,
            "| `GET {}` | {} | {} | {} | {} | {} |",
            page.path,
            page.count,
            ms(page.median),
            ms(page.p99),
            ms(page.max),
            page.failures
        );
    }
    out.push('\n');
}

pub(super) fn render_scales(out: &mut String, scales: &[ScaleResult]) {
    let _ = writeln!(out, "## Reads at scale\n");
    let _ = writeln!(
        out,
        "Logs built by `taskrouter-bench generate --database DB --events N` (the simulator's callbacks \
         through ingest's decision and write transaction: hash chain, dedup, projections). Each read is \
         timed over repeated sequential requests after one warm-up request, through a keep-alive client. \
         Database bytes are the file plus its WAL; raw body bytes are the bodies as received, read back \
         through the API from rows spread over the log.\n"
    );
    let _ = writeln!(
        out,
        "| | {} |",
        scales.iter().map(|s| format!("{} events", count(s.events))).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---:|".repeat(scales.len()));
    let row = |out: &mut String, name: &str, cell: &dyn Fn(&ScaleResult) -> String| {
        let _ = writeln!(out, "| {name} | {} |", scales.iter().map(cell).collect::<Vec<_>>().join(" | "));
    };
    row(out, "rows in the log", &|s| count(s.rows));
    row(out, "`generate` wall time", &|s| {
        let built = if s.built_now { "" } else { " (cached)" };
        if s.log.generate_wall_s.is_nan() {
            format!("unknown{built}")
        } else {
            format!("{:.1} s{built}", s.log.generate_wall_s)
        }
    });
    row(out, "`generate` peak RSS", &|s| match s.log.generate_peak_rss_bytes {
        0 => "unknown".into(),
        bytes => mib(bytes),
    });
    row(out, "database bytes per event", &|s| {
        format!("{:.0}", s.database_bytes as f64 / s.rows.max(1) as f64)
    });
    row(out, "raw body bytes per event", &|s| {
        format!("{:.0} ({} rows sampled)", s.raw_body_bytes_per_event, s.raw_body_samples)
    });
    row(out, "database ÷ raw bodies", &|s| {
        format!(
            "{:.2}×",
            s.database_bytes as f64 / s.rows.max(1) as f64 / s.raw_body_bytes_per_event.max(1.0)
        )
    });
    let names: Vec<String> =
        scales.first().map(|s| s.reads.iter().map(|r| r.name.clone()).collect()).unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        row(out, &format!("{name}: median / p99"), &|s| {
            s.reads
                .get(i)
                .map_or("—".into(), |r| format!("{} / {} (n={})", ms(r.median), ms(r.p99), r.count))
        });
    }
    row(out, "server RSS after start / peak", &|s| {
        format!("{} / {}", mib(s.server_rss_after_start), mib(s.server_peak_rss))
    });
    row(out, "CPU during the reads: server / bench / others", &|s| cpu(&s.reads_cpu));
    row(out, "`rebuild` wall time", &|s| {
        format!("{:.1} s (CPU {:.1} s)", s.rebuild.wall.as_secs_f64(), s.rebuild.cpu.as_secs_f64())
    });
    row(out, "`rebuild` peak RSS", &|s| mib(s.rebuild.peak_rss_bytes));
    row(out, "CPU during `rebuild`: rebuild / bench / others", &|s| cpu(&s.rebuild_cpu));
    row(out, "others' CPU during `generate`", &|s| percent(s.log.others_share));
    out.push('\n');
    if let Some(s) = scales.first() {
        let _ = writeln!(out, "The reads' paths (at {} events):\n", count(s.events));
        for read in &s.reads {
            let _ = writeln!(out, "- {}: `GET {}`", read.name, read.path);
        }
        out.push('\n');
    }
    for s in scales {
        let _ = writeln!(
            out,
            "`generate` said, at {} events: `{}`\n",
            count(s.events),
            s.log.summary.replace('\n', "; ")
        );
    }
}

pub(super) fn render_history(out: &mut String, r: &HistoryResult) {
    let _ = writeln!(
        out,
        "## TaskRouter's Events API: import and follow
"
    );
    let _ = writeln!(
        out,
        "`import` (a child process) fetches the simulator's workspace history from its Events API (pages of \
         1,000, served by the simulator in this process) and appends every event as a fact through its own \
         writer, projections included, until they are all projected. Then `serve --follow-events-api {}` \
         (no webhook) runs against a simulator on the wall clock; a task is created at a random point of \
         the poll's cycle and timed until `/api/tasks/{{sid}}` answers.\n",
        r.follow_every.as_secs()
    );
    let _ = writeln!(out, "| measure | value |\n|---|---|");
    let _ = writeln!(out, "| events imported | {} |", count(r.events));
    let _ = writeln!(out, "| import, wall | {:.1} s |", r.import.wall.as_secs_f64());
    let _ = writeln!(out, "| **import rate** | **{:.0} events/s** |", r.import_rate());
    let _ = writeln!(
        out,
        "| import CPU | {:.1} s ({:.0} % of one core over its wall time) |",
        r.import.cpu.as_secs_f64(),
        r.import.cpu.as_secs_f64() / r.import.wall.as_secs_f64().max(f64::EPSILON) * 100.0
    );
    let _ =
        writeln!(out, "| CPU: import / simulator serving pages (this process) / others | {} |", cpu(&r.cpu));
    let _ = writeln!(out, "| import peak RSS | {} |", mib(r.import.peak_rss_bytes));
    let _ = writeln!(out, "| import summary | {} |", r.summary.replace('|', "/"));
    let _ = writeln!(
        out,
        "| follower at {} s polls, event → timeline | p50 {} ms, p95 {} ms, max {} ms ({} events) |\n",
        r.follow_every.as_secs(),
        r.follow_percentile(50.0).as_millis(),
        r.follow_percentile(95.0).as_millis(),
        r.follow_percentile(100.0).as_millis(),
        r.follow_latencies.len()
    );
}

pub(super) fn render_event_streams(out: &mut String, runs: &[StreamsResult]) {
    let _ = writeln!(out, "## Event Streams beside event callbacks\n");
    let _ = writeln!(
        out,
        "The realistic stream's event callbacks, each event unique, sent closed-loop at {} connections as \
         form callbacks and as signed CloudEvent bodies (JSON arrays, `bodySHA256` in the URL) of 10 and of \
         100 events. The rate that counts is events acknowledged in the window over the window and the \
         projections' catch-up after it; every acknowledged event is checked to be a fact in the log. \
         A body of 100 of these events (task attributes included) is about 150 KB, past the 64 KB Event \
         Streams sends, so every run has `--body-limit {}`. Stored bytes are the log's compressed bodies \
         and headers over the events: an Event Streams request is kept whole and each of its CloudEvents \
         again as a row of its own.\n",
        runs.first().map_or(0, |r| r.connections),
        crate::event_streams::LARGE_BODY_LIMIT
    );
    let form_rate = runs.iter().find(|r| r.batch.is_none()).map(StreamsResult::events_rate);
    let _ = writeln!(
        out,
        "| delivery | requests/s | **events/s until projected** | of form callbacks | p50 / p99 a request | lag at stop | catch-up | facts checked | stored bytes per event | CPU: server / bench / others |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let share = match (r.batch, form_rate) {
            (Some(_), Some(form)) if form > 0.0 => format!("{:.0} %", r.events_rate() / form * 100.0),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | **{:.0}** | {} | {:.1} / {:.1} ms | {} rows | {:.2} s | {} | {} | {} |",
            r.label(),
            r.load.rate(),
            r.events_rate(),
            share,
            r.load.latency.value_at_quantile(0.5) as f64 / 1000.0,
            r.load.latency.value_at_quantile(0.99) as f64 / 1000.0,
            count(r.catch_up.lag_rows),
            r.catch_up.took.as_secs_f64(),
            count(r.facts),
            count(r.payload_bytes / r.facts.max(1)),
            cpu(&r.cpu),
        );
    }
    let _ = writeln!(out);
}
