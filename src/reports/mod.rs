//! Audit reports: TaskRouter's cumulative statistics recomputed from the log for a window and
//! a scope, our extra figures, and the provenance an auditor needs to re-check them.
//!
//! [`compute`] is the pure fold (and documents how every figure is defined), [`store`] the
//! SQL that feeds it, [`render`] the CSV, text table, Twilio JSON and SVG charts. This module
//! parses windows and parameters and assembles a [`Report`].

pub mod compute;
pub mod render;
pub mod store;

use serde::Serialize;

pub use compute::{By, Figures};
use store::FlaggedTask;

/// Why a report's parameters were refused, as Twilio words its errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub message: String,
}

impl ParamError {
    fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    /// Twilio's error JSON: code 20001 (invalid parameter), HTTP 400.
    pub fn twilio_json(&self) -> serde_json::Value {
        serde_json::json!({
            "code": 20001,
            "message": self.message,
            "more_info": "https://www.twilio.com/docs/errors/20001",
            "status": 400,
        })
    }
}

/// TaskRouter's statistics parameters, as received.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StatisticsParams {
    #[serde(rename = "StartDate")]
    pub start_date: Option<String>,
    #[serde(rename = "EndDate")]
    pub end_date: Option<String>,
    #[serde(rename = "Minutes")]
    pub minutes: Option<String>,
    #[serde(rename = "SplitByWaitTime")]
    pub split_by_wait_time: Option<String>,
    #[serde(rename = "TaskChannel")]
    pub task_channel: Option<String>,
}

/// TaskRouter's default window: the last 15 minutes.
pub const DEFAULT_MINUTES: i64 = 15;

/// A parsed window and options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub split_by_wait_time: Vec<u64>,
    pub task_channel: Option<String>,
}

fn parse_date(name: &str, raw: &str) -> Result<i64, ParamError> {
    taskrouter_protocol::timestamp::parse_iso8601(raw)
        .ok_or_else(|| ParamError::new(format!("{name} must be an ISO-8601 date and time, got {raw:?}")))
}

impl StatisticsParams {
    /// The window: `EndDate` (default: now), and `StartDate`, else `EndDate − Minutes`
    /// (default 15). `now_ms` is passed in so callers and tests control the clock.
    ///
    /// # Errors
    /// An unreadable date, a non-positive `Minutes`, an empty window, or a threshold of
    /// `SplitByWaitTime` that is not a whole number of seconds.
    pub fn window(&self, now_ms: i64) -> Result<Window, ParamError> {
        let present =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let end_ms = match present(&self.end_date) {
            Some(raw) => parse_date("EndDate", &raw)?,
            None => now_ms - now_ms.rem_euclid(1000),
        };
        let start_ms = match (present(&self.start_date), present(&self.minutes)) {
            (Some(raw), _) => parse_date("StartDate", &raw)?,
            (None, minutes) => {
                let minutes = match minutes {
                    Some(raw) => raw
                        .parse::<i64>()
                        .ok()
                        .filter(|m| (1..=525_600 * 100).contains(m))
                        .ok_or_else(|| {
                            ParamError::new(format!("Minutes must be a positive whole number, got {raw:?}"))
                        })?,
                    None => DEFAULT_MINUTES,
                };
                end_ms - minutes * 60_000
            }
        };
        if start_ms >= end_ms {
            return Err(ParamError::new("StartDate must be before EndDate"));
        }
        let split_by_wait_time = match present(&self.split_by_wait_time) {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(|t| {
                    t.trim().parse::<u64>().map_err(|_| {
                        ParamError::new(format!(
                            "SplitByWaitTime must be comma-separated seconds, got {raw:?}"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(Window { start_ms, end_ms, split_by_wait_time, task_channel: present(&self.task_channel) })
    }
}

/// Whether the chain was walked for this report, and what it showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verification {
    /// Not run (ask with `verify=true` / `--verify`); re-check with `taskrouter-tracer verify`.
    NotRun,
    Passed {
        rows_checked: u64,
    },
    Failed {
        rows_checked: u64,
        first_bad_row: i64,
        reason: String,
    },
}

/// Which log the report was computed from, so it can be re-checked against the same log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// Lowest and highest log row (events.id) counted in the window.
    pub first_event_id: Option<i64>,
    pub last_event_id: Option<i64>,
    pub facts_in_window: u64,
    /// The chain's head when the report was read: rows after it are not in the report.
    pub head_event_id: i64,
    pub head_hash: String,
    pub verification: Verification,
    pub generated_at: String,
    pub source: &'static str,
}

/// A complete report: the window, every scope's figures, the window's anomalies, provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub workspace_sid: Option<String>,
    pub account_sid: Option<String>,
    pub start_time: String,
    pub end_time: String,
    #[serde(skip)]
    pub start_ms: i64,
    #[serde(skip)]
    pub end_ms: i64,
    pub by: By,
    pub task_channel: Option<String>,
    pub split_by_wait_time: Vec<u64>,
    pub figures: Vec<Figures>,
    pub flags: Vec<FlaggedTask>,
    pub flags_total: u64,
    pub provenance: Provenance,
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    pub workspace_sid: Option<String>,
    pub window: Window,
    pub by: By,
    pub only: Option<String>,
    pub verify: bool,
    pub buckets: usize,
    /// Compute workers' activity durations (read from each activity change's body: only the
    /// outputs that show them ask).
    pub activity_durations: bool,
}

/// An instant as Twilio writes it (`2015-07-30T20:00:00Z`; milliseconds only when there are some).
pub fn iso(ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else { return ms.to_string() };
    if ms.rem_euclid(1000) == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

/// Reads the log and computes `spec`. `progress(done)` counts facts read.
///
/// # Errors
/// Any SQLite error.
pub fn generate(
    conn: &mut rusqlite::Connection,
    spec: &ReportSpec,
    now_ms: i64,
    progress: impl FnMut(u64),
) -> rusqlite::Result<Report> {
    let selection = store::Selection {
        start_ms: spec.window.start_ms,
        end_ms: spec.window.end_ms,
        workspace_sid: spec.workspace_sid.clone(),
        read_channels: spec.window.task_channel.is_some(),
        // Activity changes name no queue or workflow: only these breakdowns can use them.
        read_activities: spec.activity_durations && matches!(spec.by, By::Workspace | By::Worker),
        flags_for: spec.only.clone().map(|sid| (spec.by, sid)),
        flag_limit: store::FLAG_LIMIT,
    };
    let request = compute::Request {
        start_ms: spec.window.start_ms,
        end_ms: spec.window.end_ms,
        by: spec.by,
        only: spec.only.clone(),
        split_by_wait_time: spec.window.split_by_wait_time.clone(),
        task_channel: spec.window.task_channel.clone(),
        buckets: spec.buckets,
    };
    let loaded = store::load(conn, &selection, &request, progress)?;
    let verification = if spec.verify {
        let checked = store::verify(conn)?;
        match checked.first_bad_row {
            None => Verification::Passed { rows_checked: checked.rows_checked },
            Some((row, reason)) => {
                Verification::Failed { rows_checked: checked.rows_checked, first_bad_row: row, reason }
            }
        }
    } else {
        Verification::NotRun
    };
    Ok(Report {
        workspace_sid: spec.workspace_sid.clone(),
        account_sid: loaded.account_sid,
        start_time: iso(spec.window.start_ms),
        end_time: iso(spec.window.end_ms),
        start_ms: spec.window.start_ms,
        end_ms: spec.window.end_ms,
        by: spec.by,
        task_channel: spec.window.task_channel.clone(),
        split_by_wait_time: spec.window.split_by_wait_time.clone(),
        figures: loaded.figures,
        flags: loaded.flags,
        flags_total: loaded.flags_total,
        provenance: Provenance {
            first_event_id: loaded.first_event_id,
            last_event_id: loaded.last_event_id,
            facts_in_window: loaded.facts_in_window,
            head_event_id: loaded.head_id,
            head_hash: loaded.head_hash,
            verification,
            generated_at: iso(now_ms),
            source: "events (is_fact = 1), by TaskRouter's TimestampMs",
        },
    })
}

/// Opens the database read-only for a report (no migrations: the server already ran them).
///
/// # Errors
/// When the file cannot be opened.
pub fn open_read_only(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

#[cfg(test)]
mod window_tests {
    use super::*;

    fn params(start: Option<&str>, end: Option<&str>, minutes: Option<&str>) -> StatisticsParams {
        StatisticsParams {
            start_date: start.map(str::to_string),
            end_date: end.map(str::to_string),
            minutes: minutes.map(str::to_string),
            ..StatisticsParams::default()
        }
    }

    #[test]
    fn the_default_window_is_the_last_fifteen_whole_minutes() {
        let now = 1_700_000_000_123;
        let window = params(None, None, None).window(now).unwrap();
        assert_eq!((window.start_ms, window.end_ms), (1_700_000_000_000 - 15 * 60_000, 1_700_000_000_000));
        let window = params(None, Some("2023-11-14T22:13:20Z"), Some("60")).window(now).unwrap();
        assert_eq!(window.end_ms - window.start_ms, 3_600_000);
        let window = params(Some("2023-11-14T22:00:00Z"), Some("2023-11-14T22:13:20Z"), Some("5"))
            .window(now)
            .unwrap();
        assert_eq!(window.end_ms - window.start_ms, 800_000, "StartDate wins over Minutes");
        assert_eq!(iso(window.start_ms), "2023-11-14T22:00:00Z");
        assert_eq!(iso(window.start_ms + 5), "2023-11-14T22:00:00.005Z");
    }

    #[test]
    fn bad_parameters_are_refused_in_plain_words() {
        let now = 1_700_000_000_000;
        for bad in [
            params(Some("soon"), None, None),
            params(None, None, Some("0")),
            params(Some("2023-11-14T22:00:00Z"), Some("2023-11-14T21:00:00Z"), None),
        ] {
            assert!(bad.window(now).is_err(), "{bad:?}");
        }
        let split =
            StatisticsParams { split_by_wait_time: Some("5, x".into()), ..StatisticsParams::default() };
        assert_eq!(
            split.window(now).unwrap_err().twilio_json()["code"],
            20001,
            "Twilio's invalid-parameter code"
        );
        let split =
            StatisticsParams { split_by_wait_time: Some("5, 30".into()), ..StatisticsParams::default() };
        assert_eq!(split.window(now).unwrap().split_by_wait_time, [5, 30]);
    }
}
