//! Process-wide counters and histograms, rendered in Prometheus' text format at `/metrics`.
//!
//! Hand-rolled on atomics: the handful of series the tracer exposes does not justify a metrics
//! framework on the ingest hot path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation (the sum is kept in millionths of the unit).
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {total}");
    }
}

const LATENCY_BOUNDS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// All the tracer's metrics.
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    /// Seconds from a webhook's arrival to its answer.
    pub ingest_latency: Histogram,
    /// Rows per committed transaction.
    pub commit_batch_size: Histogram,
    /// Seconds each transaction of the projections (following the log) took.
    pub projection_seconds: Histogram,
    /// Transactions that failed (each failure answers its whole batch with 503).
    pub commit_failures: AtomicU64,
    /// Frames in the write-ahead log at the last checkpoint.
    pub wal_frames: AtomicU64,
    /// Times the checkpointer started the write-ahead log again from its beginning.
    pub wal_restarts: AtomicU64,
    /// Tasks and bytes of task state the projection engine holds in memory after the last commit.
    pub projection_cache_tasks: AtomicU64,
    pub projection_cache_bytes: AtomicU64,
    /// Facts that arrived out of order: re-folded within their task's reorder window, from the
    /// checkpoint before their place, or (older than every checkpoint, or for a task that had
    /// ended or left memory) from the task's facts in the log.
    pub projection_window_refolds: AtomicU64,
    pub projection_checkpoint_refolds: AtomicU64,
    pub projection_log_refolds: AtomicU64,
    /// Tasks restored from their stored fold state.
    pub projection_restores: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            ingest_latency: Histogram::new(LATENCY_BOUNDS),
            commit_batch_size: Histogram::new(BATCH_BOUNDS),
            projection_seconds: Histogram::new(LATENCY_BOUNDS),
            commit_failures: AtomicU64::new(0),
            wal_frames: AtomicU64::new(0),
            wal_restarts: AtomicU64::new(0),
            projection_cache_tasks: AtomicU64::new(0),
            projection_cache_bytes: AtomicU64::new(0),
            projection_window_refolds: AtomicU64::new(0),
            projection_checkpoint_refolds: AtomicU64::new(0),
            projection_log_refolds: AtomicU64::new(0),
            projection_restores: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one answered webhook request.
    pub fn count_request(&self, endpoint: &str, verdict: &'static str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((endpoint.to_string(), verdict, status)).or_insert(0) += 1;
    }

    /// The number of requests counted with this signature verdict.
    pub fn requests_with_verdict(&self, verdict: &str) -> u64 {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests.iter().filter(|((_, v, _), _)| *v == verdict).map(|(_, n)| n).sum()
    }

    /// The Prometheus text exposition; `database_bytes`, `sqlite_memory_bytes` and the
    /// projections' lag (rows, ms) are measured by the caller.
    pub fn render(
        &self,
        database_bytes: u64,
        sqlite_memory_bytes: u64,
        lag_rows: i64,
        lag_millis: i64,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP tracer_webhook_requests_total Webhook requests answered, by endpoint, signature verdict and status.\n");
        out.push_str("# TYPE tracer_webhook_requests_total counter\n");
        {
            let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            for ((endpoint, verdict, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "tracer_webhook_requests_total{{endpoint=\"{endpoint}\",verdict=\"{verdict}\",status=\"{status}\"}} {count}"
                );
            }
        }
        self.ingest_latency.render(
            &mut out,
            "tracer_ingest_latency_seconds",
            "Time from a webhook's arrival to its answer, durable commit included.",
        );
        self.commit_batch_size.render(
            &mut out,
            "tracer_commit_batch_size",
            "Rows per committed write transaction.",
        );
        self.projection_seconds.render(
            &mut out,
            "tracer_projection_transaction_seconds",
            "Time each transaction of the projections took (they follow the log after the appends are answered).",
        );
        let _ = writeln!(
            out,
            "# HELP tracer_projection_lag_rows Log rows committed and not yet taken in by the projections.\n\
             # TYPE tracer_projection_lag_rows gauge\ntracer_projection_lag_rows {}\n\
             # HELP tracer_projection_lag_seconds How long ago the oldest row not yet projected was committed.\n\
             # TYPE tracer_projection_lag_seconds gauge\ntracer_projection_lag_seconds {:.3}",
            lag_rows,
            lag_millis as f64 / 1_000.0
        );
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let single_values: [(&str, &str, &str, u64); 11] = [
            (
                "tracer_commit_failures_total",
                "counter",
                "Write transactions that failed.",
                load(&self.commit_failures),
            ),
            (
                "tracer_wal_frames",
                "gauge",
                "Pages in the write-ahead log at the last checkpoint.",
                load(&self.wal_frames),
            ),
            (
                "tracer_wal_restarts_total",
                "counter",
                "Times the write-ahead log was started again from its beginning.",
                load(&self.wal_restarts),
            ),
            (
                "tracer_projection_cache_tasks",
                "gauge",
                "Tasks whose folded state the projection engine holds in memory.",
                load(&self.projection_cache_tasks),
            ),
            (
                "tracer_projection_cache_bytes",
                "gauge",
                "Bytes of task state the projection engine holds in memory.",
                load(&self.projection_cache_bytes),
            ),
            (
                "tracer_projection_window_refolds_total",
                "counter",
                "Out-of-order facts re-folded within their task's reorder window (at most 32 facts).",
                load(&self.projection_window_refolds),
            ),
            (
                "tracer_projection_checkpoint_refolds_total",
                "counter",
                "Facts older than their task's reorder window, re-folded from the checkpoint before their place.",
                load(&self.projection_checkpoint_refolds),
            ),
            (
                "tracer_projection_log_refolds_total",
                "counter",
                "Out-of-order facts older than their task's checkpoints, re-folded from its facts in the log.",
                load(&self.projection_log_refolds),
            ),
            (
                "tracer_projection_restores_total",
                "counter",
                "Tasks restored from their stored fold state after leaving memory.",
                load(&self.projection_restores),
            ),
            (
                "tracer_sqlite_memory_bytes",
                "gauge",
                "Memory SQLite holds (page caches, statements, sorting).",
                sqlite_memory_bytes,
            ),
            ("tracer_database_bytes", "gauge", "Size of the database file and its WAL.", database_bytes),
        ];
        for (name, kind, help, value) in single_values {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        out
    }
}
