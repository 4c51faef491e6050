//! `taskrouter-bench` end to end, shrunk: the real binary starts its real servers,
//! loads them with signed simulated callbacks, builds a small log and writes the report. The
//! command itself fails when a request is lost, refused, stored as a duplicate or stored with a
//! bad signature, so its exit status is the check; the report must hold every phase's figures.

use std::process::Command;

#[test]
fn a_small_bench_run_passes_every_phase_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("BENCHMARKS.md");
    let output = Command::new(env!("CARGO_BIN_EXE_taskrouter-bench"))
        .args(["--quick", "--connections", "4", "--seconds", "0.5", "--shape-seconds", "0.5"])
        .args(["--rate", "100"])
        .args(["--soak-seconds", "1", "--soak-connections", "8", "--scales", "300", "--repeat", "2"])
        .arg("--log-cache")
        .arg(dir.path().join("logs"))
        .arg("--output")
        .arg(&report)
        .output()
        .expect("the binary runs");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    let report = std::fs::read_to_string(&report).expect("the report is written");
    for heading in [
        "## Ingest, closed loop",
        "## Workload shapes, closed loop",
        "## Assignment callback at a constant rate",
        "## Hot task: one task to 2,000 events",
        "## Soak: 8 connections",
        "## Reads at scale",
        "## Event Streams beside event callbacks",
        "## Targets",
    ] {
        assert!(report.contains(heading), "{heading} missing:\n{report}");
    }
    assert!(!report.contains("## Failures"), "{report}");
    // Every durable phase stored rows (the ingest table's rows; the targets table names them too),
    // the floor's included: its count is read back from its own file after its server stopped.
    let durable_rows: Vec<&str> = report
        .lines()
        .filter(|l| {
            (l.starts_with("| POST /webhooks/") || l.starts_with("| floor ")) && l.split('|').count() == 18
        })
        .collect();
    assert_eq!(durable_rows.len(), 3, "{report}");
    for row in durable_rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let stored: u64 = cells[13].replace(',', "").parse().unwrap_or_else(|_| panic!("{row}"));
        assert!(stored > 0, "{row}");
        // Shares of the baseline and of the floor, and what each request cost in CPU time.
        assert!(cells[6].ends_with(" %") && (cells[7].ends_with(" %") || cells[7] == "—"), "{row}");
        assert!(cells[16].ends_with(" µs"), "{row}");
        // The durable endpoints say how far behind their projections were and when they caught up.
        if row.starts_with("| POST ") {
            assert!(cells[4].ends_with(" s") && cells[4].contains(" / "), "{row}");
        }
    }
    assert!(report.contains("What half the baseline's rate would leave per request"), "{report}");
    // Every shape ran on both endpoints, beside its own baseline and floor, and stored rows.
    let shape_rows: Vec<Vec<&str>> = report
        .lines()
        .filter(|l| l.split('|').count() == 18 && l.contains(" | 4 | "))
        .map(|l| l.split('|').map(str::trim).collect())
        .filter(|cells: &Vec<&str>| cells[1] == "—" || cells[2].starts_with("POST /webhooks/"))
        .collect();
    assert_eq!(shape_rows.len(), 10, "{report}");
    for cells in shape_rows.iter().filter(|c| c[1] != "—") {
        let stored: u64 = cells[14].replace(',', "").parse().unwrap_or_else(|_| panic!("{cells:?}"));
        assert!(stored > 0 && cells[7].ends_with(" %") && cells[8].ends_with(" %"), "{cells:?}");
        assert!(cells[5].contains(" / ") && cells[5].ends_with(" s"), "a catch-up: {cells:?}");
    }
    // The hot task's row: every event and every other task's callback stored.
    let hot: Vec<&str> = report
        .lines()
        .find(|l| l.starts_with("| 2,000 | 32 | "))
        .unwrap_or_else(|| panic!("{report}"))
        .split('|')
        .map(str::trim)
        .collect();
    assert!(hot[5].contains(" / ") && hot[5].ends_with(" s"), "a catch-up: {hot:?}");
    assert!(hot[9].ends_with('×'), "a last ÷ first ratio: {hot:?}");
    assert!(hot[12].replace(',', "").parse::<u64>().unwrap() > 2_000, "{hot:?}");
    assert!(report.contains("| due at 100 req/s | "), "{report}");
    assert!(report.contains("| hot task: rate over the last 1,000 of 100,000 events"), "{report}");
    assert!(report.contains("- 4 connections: half the baseline's rate is "), "{report}");
    assert!(report.contains("| rows in the log | 300 |"), "{report}");
    // The same events as form callbacks and as Event Streams bodies of 10 and 100, each event
    // acknowledged checked to be a fact.
    let streams: Vec<Vec<&str>> = report
        .lines()
        .skip_while(|l| !l.starts_with("## Event Streams beside event callbacks"))
        .filter(|l| l.starts_with("| POST /webhooks/"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(streams.len(), 3, "{report}");
    for cells in &streams {
        let facts: u64 = cells[8].replace(',', "").parse().unwrap_or_else(|_| panic!("{cells:?}"));
        assert!(facts > 0 && cells[3].starts_with("**"), "{cells:?}");
    }
    assert!(streams[2][1].ends_with("batches of 100") && streams[2][4].ends_with(" %"), "{streams:?}");
    // The log is cached: a second run finds it instead of generating it again.
    let again = Command::new(env!("CARGO_BIN_EXE_taskrouter-bench"))
        .args(["--quick", "--phases", "scale", "--scales", "300", "--repeat", "2"])
        .arg("--log-cache")
        .arg(dir.path().join("logs"))
        .arg("--output")
        .arg(dir.path().join("again.md"))
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let again = std::fs::read_to_string(dir.path().join("again.md")).unwrap();
    assert!(again.contains("(cached)"), "{again}");
}
