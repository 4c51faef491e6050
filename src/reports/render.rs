//! Reports as TaskRouter's statistics JSON, as CSV, as a text table, and as inline SVG charts.

use std::fmt::Write;

use serde_json::{json, Map, Value};

use super::compute::{Figures, Samples, HISTOGRAM_BOUNDS_MS};
use super::Report;

/// Which of TaskRouter's cumulative statistics resources to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Workspace,
    TaskQueue,
    Workflow,
    Workers,
}

fn stats(samples: &Samples) -> Value {
    serde_json::to_value(samples.stats()).expect("stats serialise")
}

/// The figures in exactly the JSON shape of TaskRouter's `…/CumulativeStatistics` resource.
pub fn twilio_json(report: &Report, figures: &Figures, resource: Resource, url: &str) -> Value {
    let c = &figures.counters;
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    put("account_sid", json!(report.account_sid));
    put("workspace_sid", json!(report.workspace_sid));
    put("start_time", json!(report.start_time));
    put("end_time", json!(report.end_time));
    put("reservations_created", json!(c.reservations_created));
    put("reservations_accepted", json!(c.reservations_accepted));
    put("reservations_rejected", json!(c.reservations_rejected));
    put("reservations_timed_out", json!(c.reservations_timed_out));
    put("reservations_canceled", json!(c.reservations_canceled));
    put("reservations_rescinded", json!(c.reservations_rescinded));
    if resource == Resource::Workers {
        let durations: Vec<Value> = figures
            .activity_durations
            .iter()
            .map(|a| {
                let s = a.samples.stats();
                json!({"sid": a.sid, "friendly_name": a.friendly_name, "avg": s.avg, "min": s.min, "max": s.max, "total": s.total})
            })
            .collect();
        put("activity_durations", json!(durations));
    } else {
        match resource {
            Resource::Workspace => put("tasks_created", json!(c.tasks_created)),
            _ => put("tasks_entered", json!(c.tasks_entered)),
        }
        put("tasks_canceled", json!(c.tasks_canceled));
        put("tasks_completed", json!(c.tasks_completed));
        put("tasks_deleted", json!(c.tasks_deleted));
        put("tasks_moved", json!(c.tasks_moved));
        if resource != Resource::TaskQueue {
            put("tasks_timed_out_in_workflow", json!(c.tasks_timed_out_in_workflow));
        }
        put("avg_task_acceptance_time", json!(figures.wait_until_accepted.stats().avg));
        put("wait_duration_until_accepted", stats(&figures.wait_until_accepted));
        put("wait_duration_until_canceled", stats(&figures.wait_until_canceled));
        if resource == Resource::TaskQueue {
            put("wait_duration_in_queue_until_accepted", stats(&figures.wait_in_queue_until_accepted));
        }
        let split = if report.split_by_wait_time.is_empty() {
            Value::Null
        } else {
            Value::Object(
                figures
                    .split_by_wait_time
                    .iter()
                    .map(|(threshold, split)| (threshold.to_string(), json!(split)))
                    .collect(),
            )
        };
        put("split_by_wait_time", split);
    }
    match resource {
        Resource::TaskQueue => put("task_queue_sid", json!(figures.sid)),
        Resource::Workflow => put("workflow_sid", json!(figures.sid)),
        _ => {}
    }
    put("url", json!(url));
    Value::Object(out)
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(String::new, |r| format!("{:.4}", r))
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// The CSV columns, one row per scope.
pub const CSV_COLUMNS: [&str; 32] = [
    "scope",
    "sid",
    "start_time",
    "end_time",
    "reservations_created",
    "reservations_accepted",
    "reservations_rejected",
    "reservations_timed_out",
    "reservations_canceled",
    "reservations_rescinded",
    "tasks_created",
    "tasks_entered",
    "tasks_canceled",
    "tasks_completed",
    "tasks_deleted",
    "tasks_moved",
    "tasks_timed_out_in_workflow",
    "avg_task_acceptance_time",
    "wait_until_accepted_min_ms",
    "wait_until_accepted_max_ms",
    "wait_until_accepted_total_ms",
    "wait_until_canceled_avg_ms",
    "wait_in_queue_until_accepted_avg_ms",
    "acceptance_latency_p50_ms",
    "acceptance_latency_p90_ms",
    "acceptance_latency_p99_ms",
    "timeout_rate",
    "reservations_per_task",
    "first_event_id",
    "last_event_id",
    "head_event_id",
    "verification",
];

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn timeout_rate(f: &Figures) -> Option<f64> {
    let c = &f.counters;
    let answerable = c.reservations_accepted + c.reservations_rejected + c.reservations_timed_out;
    (answerable > 0).then(|| c.reservations_timed_out as f64 / answerable as f64)
}

fn verification(report: &Report) -> String {
    match &report.provenance.verification {
        super::Verification::NotRun => "not run".into(),
        super::Verification::Passed { rows_checked } => format!("passed ({rows_checked} rows)"),
        super::Verification::Failed { first_bad_row, .. } => format!("FAILED at row {first_bad_row}"),
    }
}

/// One CSV row per scope, with a header.
pub fn csv(report: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for f in &report.figures {
        let c = &f.counters;
        let row: Vec<String> = vec![
            serde_json::to_value(report.by)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            f.sid.clone().or_else(|| report.workspace_sid.clone()).unwrap_or_default(),
            report.start_time.clone(),
            report.end_time.clone(),
            c.reservations_created.to_string(),
            c.reservations_accepted.to_string(),
            c.reservations_rejected.to_string(),
            c.reservations_timed_out.to_string(),
            c.reservations_canceled.to_string(),
            c.reservations_rescinded.to_string(),
            c.tasks_created.to_string(),
            c.tasks_entered.to_string(),
            c.tasks_canceled.to_string(),
            c.tasks_completed.to_string(),
            c.tasks_deleted.to_string(),
            c.tasks_moved.to_string(),
            c.tasks_timed_out_in_workflow.to_string(),
            f.wait_until_accepted.stats().avg.to_string(),
            f.wait_until_accepted.min_ms.to_string(),
            f.wait_until_accepted.max_ms.to_string(),
            f.wait_until_accepted.total_ms.to_string(),
            f.wait_until_canceled.avg_ms().to_string(),
            f.wait_in_queue_until_accepted.avg_ms().to_string(),
            opt(f.acceptance_latency.p50_ms),
            opt(f.acceptance_latency.p90_ms),
            opt(f.acceptance_latency.p99_ms),
            rate(timeout_rate(f)),
            f.reservations_per_task.mean.map_or_else(String::new, |m| format!("{m:.3}")),
            opt(report.provenance.first_event_id),
            opt(report.provenance.last_event_id),
            report.provenance.head_event_id.to_string(),
            verification(report),
        ];
        out.push_str(&row.iter().map(|v| csv_field(v)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// A fixed-width text table for the terminal.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Report {} .. {}  workspace {}  by {:?}{}",
        report.start_time,
        report.end_time,
        report.workspace_sid.as_deref().unwrap_or("(all)"),
        report.by,
        report.task_channel.as_deref().map(|c| format!("  channel {c}")).unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "{:<36} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "scope",
        "res.new",
        "accept",
        "reject",
        "timeout",
        "cancel",
        "rescind",
        "tasks",
        "t.canc",
        "t.done",
        "wf.tout",
        "avg acc",
        "p90 lat",
        "tout %"
    );
    for f in &report.figures {
        let c = &f.counters;
        let tasks = if c.tasks_entered > 0 { c.tasks_entered } else { c.tasks_created };
        let _ = writeln!(
            out,
            "{:<36} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}s {:>7} {:>8}",
            f.sid.as_deref().or(report.workspace_sid.as_deref()).unwrap_or("(all workspaces)"),
            c.reservations_created,
            c.reservations_accepted,
            c.reservations_rejected,
            c.reservations_timed_out,
            c.reservations_canceled,
            c.reservations_rescinded,
            tasks,
            c.tasks_canceled,
            c.tasks_completed,
            c.tasks_timed_out_in_workflow,
            f.wait_until_accepted.stats().avg,
            f.acceptance_latency.p90_ms.map_or("-".into(), |v| format!("{:.1}s", v as f64 / 1000.0)),
            timeout_rate(f).map_or("-".into(), |r| format!("{:.1}", r * 100.0)),
        );
    }
    let p = &report.provenance;
    let _ = writeln!(
        out,
        "\n{} facts in the window (log rows {}..{}); chain head row {} hash {}; verify: {}",
        p.facts_in_window,
        opt(p.first_event_id),
        opt(p.last_event_id),
        p.head_event_id,
        p.head_hash,
        verification(report)
    );
    if report.flags_total > 0 {
        let _ = writeln!(out, "{} flagged anomalies on tasks active in the window", report.flags_total);
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn bound_label(ms: i64) -> String {
    if ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// The acceptance-latency histogram as an inline SVG bar chart.
pub fn latency_svg(figures: &Figures) -> String {
    let (width, height, left, bottom) = (560.0, 200.0, 36.0, 28.0);
    let bins = &figures.latency_histogram;
    let most = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
    let bar = (width - left - 8.0) / bins.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="Acceptance latency histogram"><title>Acceptance latency (reservation created to accepted)</title>"#
    );
    let plot = height - bottom - 10.0;
    let _ = write!(svg, r##"<text x="2" y="12" font-size="10" fill="#667085">{}</text>"##, most as u64);
    for (i, b) in bins.iter().enumerate() {
        let h = plot * b.count as f64 / most;
        let x = left + i as f64 * bar;
        let label = match b.to_ms {
            Some(to) => format!("<{}", bound_label(to)),
            None => format!("≥{}", bound_label(*HISTOGRAM_BOUNDS_MS.last().unwrap_or(&0))),
        };
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#1f5fbf"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#1d2330">{}</text>"##,
            x + 2.0,
            10.0 + plot - h,
            bar - 4.0,
            h,
            escape(&label),
            b.count,
            x + bar / 2.0,
            height - 10.0,
            escape(&label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Reservation outcomes and task ends per bucket of the window, as stacked bars in SVG.
pub fn outcomes_svg(figures: &Figures, bucket_ms: i64) -> String {
    const SERIES: [(&str, &str); 5] = [
        ("accepted", "#067647"),
        ("rejected", "#b54708"),
        ("timed out", "#b42318"),
        ("canceled", "#667085"),
        ("rescinded", "#98a2b3"),
    ];
    let (width, height, left, bottom) = (560.0, 220.0, 36.0, 40.0);
    let buckets = &figures.outcomes_over_time;
    let values = |b: &super::compute::Bucket| {
        [
            b.reservations_accepted,
            b.reservations_rejected,
            b.reservations_timed_out,
            b.reservations_canceled,
            b.reservations_rescinded,
        ]
    };
    let most = buckets.iter().map(|b| values(b).iter().sum::<u64>()).max().unwrap_or(0).max(1) as f64;
    let bar = (width - left - 8.0) / buckets.len().max(1) as f64;
    let plot = height - bottom - 10.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="Reservation outcomes over time"><title>Reservation outcomes over time</title>"#
    );
    let _ = write!(svg, r##"<text x="2" y="12" font-size="10" fill="#667085">{}</text>"##, most as u64);
    for (i, b) in buckets.iter().enumerate() {
        let x = left + i as f64 * bar;
        let mut y = 10.0 + plot;
        for ((name, colour), value) in SERIES.iter().zip(values(b)) {
            let h = plot * value as f64 / most;
            y -= h;
            if value > 0 {
                let _ = write!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} +{}s: {value} {name}</title></rect>"#,
                    x + 1.0,
                    y,
                    (bar - 2.0).max(1.0),
                    h,
                    super::iso(b.start_ms),
                    i as i64 * bucket_ms / 1000,
                );
            }
        }
    }
    for (i, (name, colour)) in SERIES.iter().enumerate() {
        let x = left + i as f64 * 100.0;
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#1d2330">{name}</text>"##,
            height - 14.0,
            x + 14.0,
            height - 5.0
        );
    }
    svg.push_str("</svg>");
    svg
}
