//! Tests of the report: the formatting helpers, the memory chart, the CPU budget, and the
//! shapes, hot-task and targets sections as rendered.

use std::time::Duration;

use super::ingest::{cost_per_request, ratio_budget_lines};
use super::{count, ms, render, rss_chart, rss_trend, Machine};
use crate::hot::HotResult;
use crate::load::LoadOutcome;
use crate::server::{CpuShares, Usage};
use crate::shapes::Shape;
use crate::{BenchRun, IngestResult, Target};

#[test]
fn durations_and_counts_read_well() {
    assert_eq!(ms(Duration::from_micros(420)), "0.42 ms");
    assert_eq!(ms(Duration::from_micros(12_340)), "12.3 ms");
    assert_eq!(ms(Duration::from_millis(534)), "534 ms");
    assert_eq!(ms(Duration::from_millis(15_200)), "15.2 s");
    assert_eq!(count(1_234_567), "1,234,567");
    assert_eq!(count(999), "999");
}

#[test]
fn the_chart_rises_with_memory_and_spans_the_samples() {
    let samples: Vec<(Duration, u64)> =
        (0..10).map(|i| (Duration::from_secs(i), (i + 1) * 8 * 1_048_576)).collect();
    let chart = rss_chart(&samples, 4);
    let lines: Vec<&str> = chart.lines().collect();
    assert!(lines[0].starts_with("   80 MiB"), "{chart}");
    // Rows are 20 MiB each: the first column (8 MiB) fills part of the bottom row only,
    // the last (80 MiB) every row.
    let column = |line: &str, i: usize| line.chars().nth(11 + i).unwrap();
    assert_eq!((column(lines[3], 0), column(lines[2], 0), column(lines[0], 0)), ('▃', ' ', ' '));
    assert!(lines.iter().take(4).all(|line| column(line, 9) == '█'), "{chart}");
    assert!(lines[4].contains(&"─".repeat(10)));
    assert_eq!(rss_chart(&[], 4), "(no samples)\n");
    assert_eq!(
        rss_trend(&samples),
        "Over the second half RSS went from 48 MiB (at 5 s) to 80 MiB (at 9 s): +32 MiB."
    );
}

fn run(target: Target, connections: usize, answered: u64, tested: f64, bench: f64) -> IngestResult {
    let mut load = LoadOutcome::empty();
    load.ok = answered;
    load.window = Duration::from_secs(10);
    IngestResult {
        projection: None,
        target,
        shape: Shape::Realistic,
        connections,
        load,
        server: Usage { wall: Duration::ZERO, cpu: Duration::ZERO, peak_rss_bytes: 0, exit_code: Some(0) },
        rendered_live: 0,
        stored: None,
        cpu: CpuShares { tested, bench, others: 0.05, others_niced: 0.0 },
    }
}

#[test]
fn the_ratio_budget_is_the_machines_cpu_at_half_the_baseline_rate() {
    // 2 CPUs; baseline 80,000 req/s using 60 % + 40 % of them: 15 + 10 µs per request.
    let ingest = vec![
        run(Target::Baseline, 32, 800_000, 0.6, 0.4),
        run(Target::Events, 32, 100_000, 0.5, 0.05),
        run(Target::Events, 256, 100_000, 0.5, 0.05),
    ];
    let lines = ratio_budget_lines(&ingest, 2);
    assert_eq!(lines.len(), 1, "no baseline ran at 256 connections: {lines:?}");
    let line = &lines[0];
    assert!(line.starts_with("- 32 connections: half the baseline's rate is 40,000 req/s"), "{line}");
    assert!(line.contains("at most 50 µs of CPU time per request (2 CPUs"), "{line}");
    assert!(line.contains("baseline 25 µs (15 + 10; CPUs left unused 0 %)"), "{line}");
    // 10,000 req/s using 50 % + 5 % of 2 CPUs: 100 + 10 µs, 45 % left to others or idle.
    assert!(line.contains("events 110 µs (100 + 10; CPUs left unused 45 %)"), "{line}");
}

fn shaped(shape: Shape, target: Target, connections: usize, answered: u64) -> IngestResult {
    IngestResult { shape, ..run(target, connections, answered, 0.5, 0.1) }
}

fn bench_run(phases: &str) -> BenchRun {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: crate::BenchArgs,
    }
    let args = Wrapper::parse_from(["x", "--phases", phases]).args;
    BenchRun {
        settings: crate::Settings::from_args(&args).unwrap(),
        machine: Machine {
            cpus: 2,
            cpu_model: "test".into(),
            memory_bytes: 1 << 30,
            kernel: "6".into(),
            load_average_at_start: "0 0 0".into(),
            date: "today".into(),
            commit: "abc".into(),
            build: "release",
        },
        command: "bench".into(),
        ingest: Vec::new(),
        shapes: Vec::new(),
        rate: None,
        hot: None,
        soak: None,
        scales: Vec::new(),
        history: None,
        event_streams: Vec::new(),
        body_bytes: (1800.0, 900.0),
        failures: Vec::new(),
    }
}

fn target_row<'a>(report: &'a str, target: &str) -> &'a str {
    report.lines().find(|l| l.starts_with(&format!("| {target} |"))).unwrap_or_else(|| panic!("{report}"))
}

#[test]
fn the_shapes_table_gives_each_shape_its_share_of_the_floor_and_the_targets_judge_them() {
    let mut bench = bench_run("shapes");
    // Over 10 s: the floor 2,000 req/s, the baseline 8,000.
    bench.shapes = vec![
        shaped(Shape::Realistic, Target::Baseline, 32, 80_000),
        shaped(Shape::Realistic, Target::Floor, 32, 20_000),
        shaped(Shape::Realistic, Target::Events, 32, 12_000),
        shaped(Shape::HotTask, Target::Events, 32, 9_000),
        shaped(Shape::HotTask, Target::Assignment, 32, 8_000),
        shaped(Shape::HotTask, Target::Assignment, 256, 1_000),
        IngestResult {
            projection: Some(crate::CatchUp { lag_rows: 5_000, took: Duration::from_millis(2_500) }),
            ..shaped(Shape::BusyTasks, Target::Events, 32, 12_000)
        },
    ];
    let report = render(&bench);
    assert!(report.contains("## Workload shapes, closed loop"), "{report}");
    // A backlog is not throughput: 12,000 answered in 10 s, projected 2.5 s later.
    assert!(
        report.contains(
            "| 128 busy tasks | POST /webhooks/events | 32 | 1,200 | 5,000 / 2.50 s | 960 | 48 % |"
        ),
        "{report}"
    );
    let busy = target_row(&report, "128 busy tasks, events × 32: ≥ 50 % of the floor");
    assert!(
        busy.ends_with("| 48 % (960 until projected, of the floor's 2,000 req/s) | **missed** |"),
        "{busy}"
    );
    assert!(
        report.contains("| one hot task | POST /webhooks/events | 32 | 900 | — | 900 | 45 % | 11 % |"),
        "{report}"
    );
    assert!(
        report.contains("| — | floor (raw body, one SQLite table) | 32 | 2,000 | — | 2,000 | — | 25 % |"),
        "{report}"
    );
    // 256 connections had no floor: no share to give.
    assert!(
        report.contains("| one hot task | POST /webhooks/assignment | 256 | 100 | — | 100 | ? | ? |"),
        "{report}"
    );
    let realistic = target_row(&report, "realistic lifecycles, events × 32: ≥ 50 % of the floor");
    assert!(
        realistic.ends_with("| 60 % (1,200 until projected, of the floor's 2,000 req/s) | met |"),
        "{realistic}"
    );
    let hot = target_row(&report, "one hot task, events × 32: ≥ 50 % of the floor");
    assert!(hot.ends_with("| **missed** |"), "{hot}");
    // Assignment callbacks need 40 %.
    let hot = target_row(&report, "one hot task, assignment × 32: ≥ 40 % of the floor");
    assert!(hot.ends_with("| 40 % (800 until projected, of the floor's 2,000 req/s) | met |"), "{hot}");
    assert!(!report.contains("× 256: ≥"), "only 32 connections are judged: {report}");
    assert!(!report.contains("of the baseline |"), "the baseline target is withdrawn: {report}");
}

#[test]
fn without_the_shapes_phase_the_ingest_runs_stand_for_the_realistic_shape() {
    let mut bench = bench_run("ingest");
    bench.ingest =
        vec![run(Target::Floor, 32, 20_000, 0.5, 0.1), run(Target::Assignment, 32, 6_000, 0.5, 0.1)];
    let report = render(&bench);
    let row = target_row(&report, "realistic lifecycles, assignment × 32: ≥ 40 % of the floor");
    assert!(
        row.ends_with("| 30 % (600 until projected, of the floor's 2,000 req/s) | **missed** |"),
        "{row}"
    );
    assert!(!report.contains("## Workload shapes"), "{report}");
    let none = render(&bench_run("rate"));
    let row =
        target_row(&none, "every shape × 32 connections: events ≥ 50 % of the floor, assignment ≥ 40 %");
    assert!(row.ends_with("| not measured in this run |  |"), "{row}");
}

fn hot_result(events: u64, first: f64, last: f64, others_p99_ms: u64) -> HotResult {
    let mut load = LoadOutcome::empty();
    load.ok = events;
    load.acknowledged = events;
    load.window = Duration::from_secs(50);
    let mut others = LoadOutcome::empty();
    others.ok = 100;
    others.window = Duration::from_secs(1);
    for i in 0..100 {
        // The two slowest take the p99.
        let ms = if i >= 98 { others_p99_ms } else { 1 };
        others.latency.record(ms * 1_000).unwrap();
    }
    HotResult {
        projection: crate::CatchUp { lag_rows: 0, took: Duration::ZERO },
        events,
        limit: Duration::from_secs(600),
        stopped_at_limit: false,
        connections: 32,
        load,
        first_rate: Some(first),
        last_rate: Some(last),
        tenths: vec![first, last],
        others_rate: 100.0,
        others,
        rss_after_start: 20 << 20,
        rss_at_end: 60 << 20,
        rss: vec![(Duration::from_secs(1), 20 << 20), (Duration::from_secs(2), 60 << 20)],
        server: Usage {
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
            peak_rss_bytes: 70 << 20,
            exit_code: Some(0),
        },
        stored: crate::StoredCheck { rows: events + 100, acknowledged: events + 100 },
        cpu: CpuShares::default(),
        rendered_live: 0,
    }
}

#[test]
fn the_hot_task_section_gives_both_windows_and_the_targets_judge_them_at_100k_events() {
    let mut bench = bench_run("hot");
    bench.hot = Some(hot_result(100_000, 2_500.0, 1_900.0, 12));
    let report = render(&bench);
    assert!(report.contains("## Hot task: one task to 100,000 events"), "{report}");
    assert!(
        report.contains("| 100,000 | 32 | 50.0 s | 2,000 | 0 / 0.00 s | 2,000 | 2,500 | 1,900 | 0.76× | 0 | 0 | 100,100 | 20 MiB / 60 MiB / 70 MiB |"),
        "{report}"
    );
    assert!(report.contains("each tenth of the events, in order: 2,500, 1,900."), "{report}");
    assert!(report.contains("| due at 100 req/s | 100 | 100 | 1.00 ms | 12.0 ms |"), "{report}");
    let ratio =
        target_row(&report, "hot task: rate over the last 1,000 of 100,000 events ≥ 0.8× the first 1,000");
    assert!(ratio.ends_with("| 0.76× (1,900 vs 2,500 req/s) at 100,000 events | **missed** |"), "{ratio}");
    let others = target_row(&report, "other tasks' assignment callbacks during the hot task: p99 ≤ 10 ms");
    assert!(others.ends_with("| p99 12.0 ms at 100 req/s at 100,000 events | **missed** |"), "{others}");

    bench.hot = Some(hot_result(2_000, 1_000.0, 900.0, 3));
    let report = render(&bench);
    let ratio =
        target_row(&report, "hot task: rate over the last 1,000 of 100,000 events ≥ 0.8× the first 1,000");
    assert!(ratio.ends_with("| 0.90× (900 vs 1,000 req/s) at 2,000 events only | not judged |"), "{ratio}");
    bench.hot = Some(hot_result(1_000_000, 1_000.0, 900.0, 3));
    let report = render(&bench);
    let others = target_row(&report, "other tasks' assignment callbacks during the hot task: p99 ≤ 10 ms");
    assert!(others.ends_with("| p99 3.00 ms at 100 req/s at 1,000,000 events | met |"), "{others}");

    // Stopped by the time limit: a ratio already below 0.8 is missed, a p99 within 10 ms unknown.
    let mut stopped = hot_result(100_000, 1_000.0, 300.0, 3);
    (stopped.stopped_at_limit, stopped.load.acknowledged) = (true, 40_000);
    bench.hot = Some(stopped);
    let report = render(&bench);
    assert!(report.contains("*Stopped at the 600 s limit (`--hot-seconds`) after 40,000 events"), "{report}");
    assert!(report.contains("| 40,000 of 100,000 | 32 |"), "{report}");
    let ratio =
        target_row(&report, "hot task: rate over the last 1,000 of 100,000 events ≥ 0.8× the first 1,000");
    assert!(
        ratio.ends_with(
            "| 0.30× (300 vs 1,000 req/s) after 40,000 events, when the time limit stopped it | **missed** |"
        ),
        "{ratio}"
    );
    let others = target_row(&report, "other tasks' assignment callbacks during the hot task: p99 ≤ 10 ms");
    assert!(others.ends_with("when the time limit stopped it | not judged |"), "{others}");
}

#[test]
fn a_run_that_answered_nothing_has_no_cost_per_request() {
    let silent = run(Target::Events, 32, 0, 0.5, 0.1);
    assert_eq!(cost_per_request(&silent, 2), None);
    let lines = ratio_budget_lines(&[run(Target::Baseline, 32, 0, 0.5, 0.5), silent], 2);
    assert!(lines.is_empty(), "a baseline that answered nothing gives no budget: {lines:?}");
}
