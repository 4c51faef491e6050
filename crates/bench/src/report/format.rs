//! How the report writes its figures: durations, counts, rates, memory, CPU shares and a run's
//! projection catch-up as table cells, and the soak's memory chart and trend.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::server::CpuShares;
use crate::CatchUp;

/// Milliseconds, with precision where it matters.
pub fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub(super) fn quantile(histogram: &Histogram<u64>, q: f64) -> Duration {
    Duration::from_micros(histogram.value_at_quantile(q))
}

pub(super) fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Server (or command) / load generator / everything else, as shares of all CPUs.
pub(super) fn cpu(shares: &CpuShares) -> String {
    let split = format!(
        "{:.0} / {:.0} / {:.0} %",
        shares.tested * 100.0,
        shares.bench * 100.0,
        shares.others * 100.0
    );
    if shares.others_niced >= 0.01 {
        format!("{split} ({:.0} % niced)", shares.others_niced * 100.0)
    } else {
        split
    }
}

pub(super) fn percent(share: f64) -> String {
    if share.is_nan() {
        "–".into()
    } else {
        format!("{:.0} %", share * 100.0)
    }
}

pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn rate(value: f64) -> String {
    count(value.round() as u64)
}

/// A run's projection catch-up as a table cell: rows behind when the load stopped, and the time
/// they took to be taken in.
pub(super) fn catch_up_cell(catch_up: Option<&CatchUp>) -> String {
    catch_up.map_or("—".into(), |c| format!("{} / {:.2} s", count(c.lag_rows), c.took.as_secs_f64()))
}

pub(super) fn optional_rate(value: Option<f64>) -> String {
    value.map_or("–".into(), rate)
}

pub(super) fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// Whether memory stayed flat: how RSS moved over the second half of the run.
pub fn rss_trend(samples: &[(Duration, u64)]) -> String {
    let (Some(middle), Some(last)) = (samples.get(samples.len() / 2), samples.last()) else {
        return "No RSS samples.".into();
    };
    let change = last.1 as f64 - middle.1 as f64;
    format!(
        "Over the second half RSS went from {} (at {} s) to {} (at {} s): {}{:.0} MiB.",
        mib(middle.1),
        middle.0.as_secs(),
        mib(last.1),
        last.0.as_secs(),
        if change >= 0.0 { "+" } else { "−" },
        change.abs() / 1_048_576.0
    )
}

/// A chart of RSS over time, one column per sample, `height` rows, from zero to the peak.
pub fn rss_chart(samples: &[(Duration, u64)], height: usize) -> String {
    const BLOCKS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let Some(peak) = samples.iter().map(|(_, rss)| *rss).max().filter(|p| *p > 0) else {
        return "(no samples)\n".into();
    };
    // The top of the scale: the peak rounded up to a round number of MiB.
    let top_mib = (peak as f64 / 1_048_576.0 / 10.0).ceil() * 10.0;
    let mut chart = String::new();
    for row in (0..height).rev() {
        let label = if row == height - 1 {
            format!("{top_mib:>5.0} MiB ┤")
        } else if row == 0 {
            "    0 MiB ┤".to_string()
        } else {
            "          │".to_string()
        };
        chart.push_str(&label);
        for (_, rss) in samples {
            let level = *rss as f64 / 1_048_576.0 / top_mib * height as f64 - row as f64;
            chart.push(BLOCKS[(level.clamp(0.0, 1.0) * 8.0).round() as usize]);
        }
        chart.push('\n');
    }
    let seconds = samples.last().map_or(0, |(t, _)| t.as_secs());
    let _ = writeln!(chart, "          └{}", "─".repeat(samples.len()));
    let end = format!("{seconds} s");
    let width = samples.len().saturating_sub(3).max(end.len() + 1);
    let _ = writeln!(chart, "           0 s{end:>width$}");
    chart
}
