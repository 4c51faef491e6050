//! The one-line summaries printed as each phase finishes (the soak's with its memory chart).

use std::fmt::Write as _;
use std::time::Duration;

use super::format::{count, mib, ms, optional_rate, quantile, rate, rss_chart, rss_trend};
use crate::event_streams::StreamsResult;
use crate::history::HistoryResult;
use crate::hot::{HotResult, WINDOW_EVENTS};
use crate::scale::ScaleResult;
use crate::soak::SoakResult;
use crate::{IngestResult, RateResult, Target};

/// The printed summary of an ingest run.
pub fn ingest_line(result: &IngestResult) -> String {
    format!(
        "{:>28} × {:>3}: {:>8} req/s ({:>8} until projected)  p50 {:>9}  p99 {:>9}  p99.9 {:>9}  non-2xx {}  errors {}  peak RSS {}",
        result.target.label(),
        result.connections,
        rate(result.load.rate()),
        rate(result.projected_rate()),
        ms(quantile(&result.load.latency, 0.5)),
        ms(quantile(&result.load.latency, 0.99)),
        ms(quantile(&result.load.latency, 0.999)),
        result.load.non_2xx,
        result.load.errors,
        mib(result.server.peak_rss_bytes),
    )
}

/// The printed summary of a workload shape's run.
pub fn shape_line(result: &IngestResult) -> String {
    let shape = match result.target {
        Target::Events | Target::Assignment => result.shape.label(),
        Target::Baseline | Target::Floor => "",
    };
    format!(
        "{:>20} {:>10} × {:>3}: {:>8} req/s ({:>8} until projected)  p50 {:>9}  p99 {:>9}  non-2xx {}  errors {}  peak RSS {}",
        shape,
        result.target.short_label(),
        result.connections,
        rate(result.load.rate()),
        rate(result.projected_rate()),
        ms(quantile(&result.load.latency, 0.5)),
        ms(quantile(&result.load.latency, 0.99)),
        result.load.non_2xx,
        result.load.errors,
        mib(result.server.peak_rss_bytes),
    )
}

/// The printed summary of the hot task.
pub fn hot_text(result: &HotResult) -> String {
    let others = &result.others.latency;
    format!(
        "one task to {} events × {}: {} req/s overall, first {} {} req/s, last {} {} req/s ({}), RSS at end {} \
         (peak {}); other tasks' assignment callbacks at {}/s: p50 {}  p99 {}  max {}",
        count(result.events),
        result.connections,
        rate(result.load.rate()),
        count(WINDOW_EVENTS as u64),
        optional_rate(result.first_rate),
        count(WINDOW_EVENTS as u64),
        optional_rate(result.last_rate),
        result.ratio().map_or("–".into(), |r| format!("{r:.2}×")),
        mib(result.rss_at_end),
        mib(result.server.peak_rss_bytes),
        rate(result.others_rate),
        ms(quantile(others, 0.5)),
        ms(quantile(others, 0.99)),
        ms(Duration::from_micros(others.max())),
    )
}

/// The printed summary of the constant-rate run.
pub fn rate_line(result: &RateResult) -> String {
    let latency = &result.load.latency;
    format!(
        "assignment at {} req/s: answered {} req/s  p50 {}  p99 {}  p99.9 {}  max {}  non-2xx {}  errors {}",
        rate(result.rate),
        rate(result.load.rate()),
        ms(quantile(latency, 0.5)),
        ms(quantile(latency, 0.99)),
        ms(quantile(latency, 0.999)),
        ms(Duration::from_micros(latency.max())),
        result.load.non_2xx,
        result.load.errors,
    )
}

/// The printed summary of the Events API phase.
pub fn history_text(result: &HistoryResult) -> String {
    format!(
        "import of {} events: {:.1} s, {:.0} events/s, import {:.1} s CPU, peak RSS {}; follower at {} s polls: p50 {} ms, p95 {} ms, max {} ms over {} events\n",
        count(result.events),
        result.import.wall.as_secs_f64(),
        result.import_rate(),
        result.import.cpu.as_secs_f64(),
        mib(result.import.peak_rss_bytes),
        result.follow_every.as_secs(),
        result.follow_percentile(50.0).as_millis(),
        result.follow_percentile(95.0).as_millis(),
        result.follow_percentile(100.0).as_millis(),
        result.follow_latencies.len(),
    )
}

/// One Event Streams run, printed as it ends.
pub fn event_streams_line(r: &StreamsResult) -> String {
    format!(
        "{:>52}: {:>7.0} events/s until projected ({:.0} req/s; p50 {:.1} ms, p99 {:.1} ms a request)",
        r.label(),
        r.events_rate(),
        r.load.rate(),
        r.load.latency.value_at_quantile(0.5) as f64 / 1000.0,
        r.load.latency.value_at_quantile(0.99) as f64 / 1000.0
    )
}

/// The printed summary of the soak, with its memory chart.
pub fn soak_text(result: &SoakResult) -> String {
    let mut text = format!(
        "soak × {}: {} req/s, {} errors, {} answers not 2xx, server RSS peak {}\n{}{}\n",
        result.connections,
        rate(result.load.rate()),
        result.load.errors,
        result.load.non_2xx,
        mib(result.server.peak_rss_bytes),
        rss_chart(&result.rss, 8),
        rss_trend(&result.rss),
    );
    for page in &result.pages {
        let _ = writeln!(
            text,
            "  GET {:<45} n={:<4} median {:>9}  p99 {:>9}  max {:>9}",
            page.path,
            page.count,
            ms(page.median),
            ms(page.p99),
            ms(page.max)
        );
    }
    text
}

/// The printed summary of one scale.
pub fn scale_text(result: &ScaleResult) -> String {
    let mut text = format!(
        "{} events ({} rows): {:.0} database bytes per event, {:.0} raw body bytes per event; rebuild {:.1} s, {} peak\n",
        count(result.events),
        count(result.rows),
        result.database_bytes as f64 / result.rows.max(1) as f64,
        result.raw_body_bytes_per_event,
        result.rebuild.wall.as_secs_f64(),
        mib(result.rebuild.peak_rss_bytes),
    );
    for read in &result.reads {
        let _ = writeln!(text, "  {:<50} median {:>9}  p99 {:>9}", read.name, ms(read.median), ms(read.p99));
    }
    text
}
