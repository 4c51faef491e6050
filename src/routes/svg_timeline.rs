//! Lays out a task's timeline as an SVG chart: one lane for the task, one per reservation
//! (its worker), the reservation-timeout window and the pending stretch drawn on each lane, and
//! every event or action as a mark linked to its evidence row. Pure geometry; the template
//! draws it (escaped like any other page content).

use taskrouter_protocol::ReservationStatus;

use crate::projections::fold::{ReservationView, TimelineEntry};

pub const WIDTH: i64 = 1000;
pub const LABEL_WIDTH: i64 = 210;
pub const LANE_HEIGHT: i64 = 36;
const TOP: i64 = 24;

/// A point on the chart.
pub struct Mark {
    pub x: i64,
    pub y: i64,
    /// CSS class: `ok`, `bad`, `warn`, `action` or `plain`.
    pub class: &'static str,
    /// Whether it is drawn as a diamond (actions) rather than a circle (TaskRouter's events).
    pub diamond: bool,
    /// `/requests/{id}`, or empty when the entry has no evidence row.
    pub href: String,
    pub title: String,
}

/// A horizontal bar.
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub class: String,
    pub title: String,
}

pub struct Lane {
    pub y: i64,
    pub label: String,
    pub href: String,
}

pub struct Tick {
    pub x: i64,
    pub label: String,
    /// SVG `text-anchor`, so the first and last labels stay inside the chart.
    pub anchor: &'static str,
}

/// The chart, ready to draw.
pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub lanes: Vec<Lane>,
    pub bars: Vec<Bar>,
    pub marks: Vec<Mark>,
    pub ticks: Vec<Tick>,
}

fn class_of(kind: &str) -> &'static str {
    if kind.starts_with("action.") {
        "action"
    } else if kind.contains("timeout") || kind.contains("rejected") || kind.contains("canceled") {
        "bad"
    } else if kind.contains("accepted") || kind.contains("completed") {
        "ok"
    } else if kind.contains("rescinded") || kind.contains("wrapup") {
        "warn"
    } else {
        "plain"
    }
}

fn short(sid: &str) -> String {
    if sid.len() > 10 {
        format!("{}…{}", &sid[..4], &sid[sid.len() - 4..])
    } else {
        sid.to_string()
    }
}

/// Where an entry is drawn: its time, except that an assignment callback (which carries no
/// timestamp, so its time is our arrival clock) is drawn at its reservation's creation, when
/// TaskRouter sent it, so the two clocks are never mixed on one axis.
fn drawn_at(entry: &TimelineEntry, reservations: &[ReservationView]) -> i64 {
    if entry.time_source == "arrival" {
        if let Some(created) = entry
            .reservation_sid
            .as_ref()
            .and_then(|sid| reservations.iter().find(|r| &r.reservation_sid == sid))
            .and_then(|r| r.created_at_ms)
        {
            return created;
        }
    }
    entry.occurred_at_ms
}

/// Lays out `entries` (TaskRouter's and the actions', any order) over the reservations' lanes.
/// `now_ms` closes the pending stretch of reservations still pending.
pub fn layout(reservations: &[ReservationView], entries: &[TimelineEntry], now_ms: i64) -> Chart {
    let mut times: Vec<i64> = entries.iter().map(|e| drawn_at(e, reservations)).collect();
    for r in reservations {
        if let Some(created) = r.created_at_ms {
            times.push(created);
            times.push(created + r.timeout_ms);
        }
    }
    let start = times.iter().copied().min().unwrap_or(now_ms);
    let end = times.iter().copied().max().unwrap_or(now_ms).max(start + 1000);
    let span = (end - start) as f64;
    let plot = (WIDTH - LABEL_WIDTH - 20) as f64;
    let x = |ms: i64| LABEL_WIDTH + (((ms.clamp(start, end) - start) as f64 / span) * plot).round() as i64;
    let lane_y = |index: usize| TOP + index as i64 * LANE_HEIGHT + LANE_HEIGHT / 2;

    let mut lanes = vec![Lane { y: lane_y(0), label: "task".into(), href: String::new() }];
    let mut bars = Vec::new();
    for (i, r) in reservations.iter().enumerate() {
        let y = lane_y(i + 1);
        let who = r.worker_name.clone().or_else(|| r.worker_sid.clone()).unwrap_or_else(|| "?".into());
        lanes.push(Lane {
            y,
            label: format!("{who} · {}", short(&r.reservation_sid)),
            href: r.worker_sid.as_ref().map(|w| format!("/workers/{w}")).unwrap_or_default(),
        });
        if let Some(created) = r.created_at_ms {
            let window_end = created + r.timeout_ms;
            bars.push(Bar {
                x: x(created),
                y: y - 11,
                width: (x(window_end) - x(created)).max(1),
                height: 22,
                class: "window".into(),
                title: format!("reservation timeout window: {} s", r.timeout_ms / 1000),
            });
            let pending_end = r
                .answered_at_ms
                .or(r.finished_at_ms)
                .unwrap_or(if r.status == ReservationStatus::Pending { now_ms } else { created });
            bars.push(Bar {
                x: x(created),
                y: y - 4,
                width: (x(pending_end) - x(created)).max(2),
                height: 8,
                class: format!("pending {}", r.status),
                title: format!(
                    "{} for {:.1} s",
                    if r.status == ReservationStatus::Pending { "pending" } else { "was pending" },
                    (pending_end - created) as f64 / 1000.0
                ),
            });
        }
    }
    let lane_of = |entry: &TimelineEntry| {
        entry
            .reservation_sid
            .as_ref()
            .and_then(|sid| reservations.iter().position(|r| &r.reservation_sid == sid))
            .map_or(0, |i| i + 1)
    };
    let marks = entries
        .iter()
        .map(|e| Mark {
            x: x(drawn_at(e, reservations)),
            y: lane_y(lane_of(e)),
            class: class_of(&e.kind),
            diamond: e.kind.starts_with("action."),
            href: e.evidence.first().map(|id| format!("/requests/{id}")).unwrap_or_default(),
            title: format!("{} — {}", e.kind, e.summary),
        })
        .collect();
    let ticks = (0..=4)
        .map(|i| {
            let ms = start + (end - start) * i / 4;
            Tick {
                anchor: match i {
                    0 => "start",
                    4 => "end",
                    _ => "middle",
                },
                x: x(ms),
                label: chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.format("%H:%M:%S").to_string())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Chart { width: WIDTH, height: TOP + (lanes.len() as i64) * LANE_HEIGHT + 10, lanes, bars, marks, ticks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, at: i64, reservation: Option<&str>, evidence: i64) -> TimelineEntry {
        TimelineEntry {
            position: 0,
            occurred_at_ms: at,
            time_source: "event".into(),
            kind: kind.into(),
            reservation_sid: reservation.map(str::to_string),
            worker_sid: None,
            summary: "s".into(),
            evidence: vec![evidence],
        }
    }

    #[test]
    fn each_reservation_gets_a_lane_and_its_timeout_window() {
        let reservation = ReservationView {
            reservation_sid: "WR1".into(),
            task_sid: "WT1".into(),
            worker_sid: Some("WK1".into()),
            worker_name: Some("Alice".into()),
            status: ReservationStatus::Timeout,
            created_at_ms: Some(1_000),
            answered_at_ms: None,
            finished_at_ms: Some(121_000),
            pending_ms: Some(120_000),
            timeout_ms: 120_000,
            created_event_id: Some(2),
            callback_event_id: None,
            callback_answer: None,
            outcome: None,
        };
        let mut callback = entry("assignment", 9_999_999, Some("WR1"), 2);
        callback.time_source = "arrival".into();
        let chart = layout(
            &[reservation],
            &[
                entry("task.created", 0, None, 1),
                entry("reservation.timeout", 121_000, Some("WR1"), 3),
                callback,
            ],
            200_000,
        );
        assert_eq!(chart.marks[2].x, chart.bars[0].x, "the callback sits at its reservation's creation");
        assert_eq!(chart.lanes.len(), 2);
        assert_eq!(chart.marks[1].y, chart.lanes[1].y, "the timeout is on the reservation's lane");
        assert_eq!(chart.marks[1].href, "/requests/3");
        let window = chart.bars.iter().find(|b| b.class == "window").unwrap();
        assert!(window.width > 500, "120 s of a 121 s chart");
        assert_eq!(chart.marks[0].x, LABEL_WIDTH);
    }
}
