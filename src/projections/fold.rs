//! The pure folds: one task's facts (plus its workers' activity changes) in, the task, its
//! reservations, its timeline and its flags out. No database, clock, randomness or I/O, so the
//! same facts always give the same projection, whatever order they arrived in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fact::{sort_causally, Fact};

/// Deterministic settings the folds depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionConfig {
    /// The reservation timeout of workflows not listed below (TaskRouter's default is 120 s).
    pub default_reservation_timeout_ms: i64,
    /// Per-Workflow `TaskReservationTimeout`, by Workflow Sid.
    pub workflow_reservation_timeouts_ms: BTreeMap<String, i64>,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self { default_reservation_timeout_ms: 120_000, workflow_reservation_timeouts_ms: BTreeMap::new() }
    }
}

impl ProjectionConfig {
    /// The reservation timeout that applies to reservations routed by `workflow_sid`.
    pub fn reservation_timeout_ms(&self, workflow_sid: Option<&str>) -> i64 {
        workflow_sid
            .and_then(|sid| self.workflow_reservation_timeouts_ms.get(sid))
            .copied()
            .unwrap_or(self.default_reservation_timeout_ms)
    }
}

/// How long after a reservation's timeout or rejection a worker's activity change is taken to be
/// its consequence (TaskRouter moves the worker at once; the margin absorbs clock skew).
pub const ACTIVITY_FOLLOW_WINDOW_MS: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskView {
    pub task_sid: String,
    pub status: String,
    pub workflow_sid: Option<String>,
    pub workflow_name: Option<String>,
    pub task_queue_sid: Option<String>,
    pub task_queue_name: Option<String>,
    pub priority: Option<i64>,
    pub attributes: Option<String>,
    pub created_at_ms: Option<i64>,
    pub first_reserved_at_ms: Option<i64>,
    pub assigned_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub cancel_cause: Option<String>,
    pub deleted: bool,
    pub reservation_count: i64,
    pub transfer_count: i64,
    pub first_fact_at_ms: i64,
    pub last_fact_at_ms: i64,
    pub fact_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReservationView {
    pub reservation_sid: String,
    pub task_sid: String,
    pub worker_sid: Option<String>,
    pub worker_name: Option<String>,
    pub status: String,
    pub created_at_ms: Option<i64>,
    pub answered_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub pending_ms: Option<i64>,
    pub timeout_ms: i64,
    pub created_event_id: Option<i64>,
    pub callback_event_id: Option<i64>,
    pub callback_answer: Option<String>,
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub position: i64,
    pub occurred_at_ms: i64,
    /// `event` (TaskRouter's clock) or `arrival` (ours: assignment callbacks carry no time).
    pub time_source: String,
    pub kind: String,
    pub reservation_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub summary: String,
    pub evidence: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flag {
    pub kind: String,
    pub reservation_sid: Option<String>,
    pub explanation: String,
    pub evidence: Vec<i64>,
}

/// Everything derived for one task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskProjection {
    pub task: TaskView,
    pub reservations: Vec<ReservationView>,
    pub timeline: Vec<TimelineEntry>,
    pub flags: Vec<Flag>,
}

/// The event types of the facts whose worker's next activity change a task's flags mention.
pub const ACTIVITY_CAUSING_EVENTS: [&str; 2] = ["reservation.timeout", "reservation.rejected"];

/// What an assignment callback was answered with, in words, and whether it accepted.
fn classify_answer(body: Option<&str>) -> (String, bool) {
    let Some(body) = body.map(str::trim).filter(|b| !b.is_empty()) else {
        return ("nothing (an empty answer)".to_string(), false);
    };
    let instruction = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("instruction").and_then(|i| i.as_str()).map(str::to_string));
    match instruction.as_deref() {
        None => (format!("{body} (a deferral: no instruction, the reservation stays pending)"), false),
        Some("reject") => (format!("{body} (a reject instruction)"), false),
        Some(other) => (format!("{body} (an {other} instruction, which accepts)"), true),
    }
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn is_reservation_final(status: &str) -> bool {
    matches!(status, "rejected" | "timeout" | "canceled" | "rescinded" | "completed" | "failed")
}

fn is_task_final(status: &str) -> bool {
    matches!(status, "completed" | "canceled")
}

#[derive(Debug, Clone)]
struct AcceptAttempt {
    event_id: i64,
    at_ms: i64,
    how: &'static str,
}

#[derive(Debug, Clone)]
struct ReservationState {
    view: ReservationView,
    accept_attempt: Option<AcceptAttempt>,
    outcome_event_id: Option<i64>,
    outcome_at_ms: Option<i64>,
    missing_created_flagged: bool,
}

/// Folds one task's facts into its projection.
///
/// `worker_activity` holds `worker.activity.update` facts of the task's workers (any superset
/// is fine: only the first change within [`ACTIVITY_FOLLOW_WINDOW_MS`] after a timeout or
/// rejection is used). The facts may come in any order; duplicates must already be removed.
pub fn fold_task(
    task_sid: &str,
    facts: &[Fact],
    worker_activity: &[Fact],
    config: &ProjectionConfig,
) -> TaskProjection {
    let mut ordered: Vec<&Fact> = facts.iter().collect();
    sort_causally(&mut ordered);
    // A re-delivered event (same Sid) is normally kept out by the writer; if one slips through,
    // only its first delivery counts. Same-Sid facts sort next to each other, lowest log id first.
    ordered.dedup_by(|later, first| later.event_sid.is_some() && later.event_sid == first.event_sid);
    // TaskRouter's times where there are any: an assignment callback's arrival time is ours.
    let timed = ordered.iter().any(|f| !f.time_is_arrival);
    let fact_times =
        || ordered.iter().filter(move |f| !timed || !f.time_is_arrival).map(|f| f.occurred_at_ms);
    let mut task = TaskView {
        task_sid: task_sid.to_string(),
        status: "pending".to_string(),
        workflow_sid: None,
        workflow_name: None,
        task_queue_sid: None,
        task_queue_name: None,
        priority: None,
        attributes: None,
        created_at_ms: None,
        first_reserved_at_ms: None,
        assigned_at_ms: None,
        finished_at_ms: None,
        cancel_cause: None,
        deleted: false,
        reservation_count: 0,
        transfer_count: 0,
        first_fact_at_ms: fact_times().min().unwrap_or(0),
        last_fact_at_ms: fact_times().max().unwrap_or(0),
        fact_count: ordered.len() as i64,
    };
    let mut reservations: BTreeMap<String, ReservationState> = BTreeMap::new();
    let mut reservation_order: Vec<String> = Vec::new();
    let mut timeline = Vec::with_capacity(ordered.len());
    let mut flags: Vec<Flag> = Vec::new();
    let mut seen_created = false;
    let mut workflow_timed_out = false;

    // The largest task-level field, copied once after the loop rather than at every fact.
    let mut latest_attributes: Option<&String> = None;
    for fact in &ordered {
        let kind = fact.event_type.as_str();
        // Task-level fields: the latest value seen in lifecycle order wins.
        if fact.workflow_sid.is_some() {
            task.workflow_sid.clone_from(&fact.workflow_sid);
        }
        if fact.workflow_name.is_some() {
            task.workflow_name.clone_from(&fact.workflow_name);
        }
        if fact.task_queue_sid.is_some() {
            task.task_queue_sid.clone_from(&fact.task_queue_sid);
        }
        if fact.task_queue_name.is_some() {
            task.task_queue_name.clone_from(&fact.task_queue_name);
        }
        if fact.priority.is_some() {
            task.priority = fact.priority;
        }
        if fact.attributes.is_some() {
            latest_attributes = fact.attributes.as_ref();
        }
        let was_final = is_task_final(&task.status);
        let lifecycle_event = !matches!(kind, "task.updated" | "task.deleted" | "task.system-deleted")
            && !kind.starts_with("worker.");
        // The terminal pair (reservation.completed + task.completed, workflow.timeout +
        // task.canceled, the last reservation.canceled + task.canceled) is not a violation.
        let same_ending = matches!(
            (task.status.as_str(), kind),
            ("completed", "task.completed" | "reservation.completed")
                | ("canceled", "task.canceled" | "reservation.canceled" | "reservation.rescinded")
        );
        if was_final && lifecycle_event && !same_ending {
            flags.push(Flag {
                kind: "impossible".into(),
                reservation_sid: fact.reservation_sid.clone(),
                explanation: format!(
                    "{kind} arrived for a task already {} — nothing should happen to a task after it ends.",
                    task.status
                ),
                evidence: vec![fact.event_id],
            });
        }

        if let Some(sid) = fact.reservation_sid.as_deref().filter(|_| kind.starts_with("reservation.")) {
            reservation_event(
                &mut task,
                &mut reservations,
                &mut reservation_order,
                &mut flags,
                sid,
                fact,
                config,
            );
        } else if fact.is_assignment() {
            if let Some(sid) = fact.reservation_sid.as_deref() {
                let state = reservations.entry(sid.to_string()).or_insert_with(|| {
                    reservation_order.push(sid.to_string());
                    new_reservation(sid, task_sid, fact, config)
                });
                let (answer, accepts) = classify_answer(fact.response_body.as_deref());
                state.view.callback_event_id = Some(fact.event_id);
                state.view.callback_answer = Some(answer);
                if accepts && state.accept_attempt.is_none() {
                    state.accept_attempt = Some(AcceptAttempt {
                        event_id: fact.event_id,
                        at_ms: fact.occurred_at_ms,
                        how: "the assignment callback was answered with an accept instruction",
                    });
                }
            }
        } else {
            match kind {
                "task.created" => {
                    seen_created = true;
                    task.created_at_ms = Some(fact.occurred_at_ms);
                }
                "reservation.wrapup" | "task.wrapup" if !was_final => {
                    if task.assigned_at_ms.is_none() {
                        gap_assigned_without_accept(&mut flags, fact);
                    }
                    task.status = "wrapping".into();
                }
                "task.completed" if !was_final => {
                    if task.assigned_at_ms.is_none() {
                        gap_assigned_without_accept(&mut flags, fact);
                    }
                    task.status = "completed".into();
                    task.finished_at_ms = Some(fact.occurred_at_ms);
                }
                "workflow.timeout" | "workflow.skipped" if !was_final => {
                    workflow_timed_out = true;
                    task.status = "canceled".into();
                    task.finished_at_ms = Some(fact.occurred_at_ms);
                    task.cancel_cause = Some(
                        if kind == "workflow.timeout" { "workflow-timeout" } else { "workflow-skipped" }
                            .into(),
                    );
                }
                "task.canceled" => {
                    let ttl = fact.description.as_deref().is_some_and(|d| d.contains("TTL"));
                    let cause = if ttl {
                        "ttl".to_string()
                    } else if workflow_timed_out {
                        task.cancel_cause.clone().unwrap_or_else(|| "workflow-timeout".into())
                    } else {
                        fact.canceled_reason.clone().unwrap_or_else(|| "api".into())
                    };
                    if !was_final || task.status == "canceled" {
                        task.status = "canceled".into();
                        task.finished_at_ms = Some(task.finished_at_ms.unwrap_or(fact.occurred_at_ms));
                        task.cancel_cause = Some(cause);
                    }
                }
                "task.deleted" | "task.system-deleted" => task.deleted = true,
                "task.transfer-initiated" => task.transfer_count += 1,
                _ => {}
            }
        }
        timeline.push(TimelineEntry {
            position: timeline.len() as i64,
            occurred_at_ms: fact.occurred_at_ms,
            time_source: if fact.time_is_arrival { "arrival" } else { "event" }.into(),
            kind: kind.to_string(),
            reservation_sid: fact.reservation_sid.clone(),
            worker_sid: fact.worker_sid.clone(),
            summary: summarize(fact, known_worker_name(&reservations, fact)),
            evidence: vec![fact.event_id],
        });
    }
    task.attributes = latest_attributes.cloned();

    if !seen_created && !ordered.is_empty() {
        let first = &ordered[0];
        flags.insert(
            0,
            Flag {
                kind: "gap".into(),
                reservation_sid: None,
                explanation: format!(
                    "No task.created was recorded for this task: the first fact seen is {} at {} ms. \
                     Earlier callbacks were lost, filtered out (EventsFilter) or sent elsewhere.",
                    first.event_type, first.occurred_at_ms
                ),
                evidence: vec![first.event_id],
            },
        );
    }

    let accepted: Vec<(String, Option<String>)> = reservation_order
        .iter()
        .filter_map(|sid| reservations.get(sid))
        .filter(|r| matches!(r.view.status.as_str(), "accepted" | "wrapping" | "completed"))
        .map(|r| (r.view.reservation_sid.clone(), r.view.worker_name.clone().or(r.view.worker_sid.clone())))
        .collect();
    for sid in &reservation_order {
        let state = &reservations[sid];
        outcome_flags(state, &accepted, worker_activity, &mut flags);
    }
    task.reservation_count = reservation_order.len() as i64;
    let reservations = reservation_order.iter().map(|sid| reservations[sid].view.clone()).collect();
    TaskProjection { task, reservations, timeline, flags }
}

fn new_reservation(sid: &str, task_sid: &str, fact: &Fact, config: &ProjectionConfig) -> ReservationState {
    ReservationState {
        view: ReservationView {
            reservation_sid: sid.to_string(),
            task_sid: task_sid.to_string(),
            worker_sid: fact.worker_sid.clone(),
            worker_name: fact.worker_name.clone(),
            status: "pending".into(),
            created_at_ms: None,
            answered_at_ms: None,
            finished_at_ms: None,
            pending_ms: None,
            timeout_ms: config.reservation_timeout_ms(fact.workflow_sid.as_deref()),
            created_event_id: None,
            callback_event_id: None,
            callback_answer: None,
            outcome: None,
        },
        accept_attempt: None,
        outcome_event_id: None,
        outcome_at_ms: None,
        missing_created_flagged: false,
    }
}

fn gap_assigned_without_accept(flags: &mut Vec<Flag>, fact: &Fact) {
    flags.push(Flag {
        kind: "gap".into(),
        reservation_sid: fact.reservation_sid.clone(),
        explanation: format!(
            "{} shows the task assigned, but no reservation.accepted was recorded before it.",
            fact.event_type
        ),
        evidence: vec![fact.event_id],
    });
}

fn reservation_event(
    task: &mut TaskView,
    reservations: &mut BTreeMap<String, ReservationState>,
    order: &mut Vec<String>,
    flags: &mut Vec<Flag>,
    sid: &str,
    fact: &Fact,
    config: &ProjectionConfig,
) {
    let kind = fact.event_type.as_str();
    let state = reservations.entry(sid.to_string()).or_insert_with(|| {
        order.push(sid.to_string());
        new_reservation(sid, &task.task_sid, fact, config)
    });
    if fact.worker_sid.is_some() {
        state.view.worker_sid.clone_from(&fact.worker_sid);
    }
    if fact.worker_name.is_some() {
        state.view.worker_name.clone_from(&fact.worker_name);
    }
    if kind != "reservation.created"
        && state.view.created_event_id.is_none()
        && !state.missing_created_flagged
    {
        state.missing_created_flagged = true;
        flags.push(Flag {
            kind: "gap".into(),
            reservation_sid: Some(sid.to_string()),
            explanation: format!(
                "{kind} arrived for reservation {sid}, but its reservation.created was never recorded."
            ),
            evidence: vec![fact.event_id],
        });
    }
    let previous = state.view.status.clone();
    let answered = |state: &mut ReservationState, status: &str| {
        state.view.status = status.to_string();
        state.view.answered_at_ms = Some(fact.occurred_at_ms);
        state.view.pending_ms = state.view.created_at_ms.map(|c| fact.occurred_at_ms - c);
        state.outcome_event_id = Some(fact.event_id);
        state.outcome_at_ms = Some(fact.occurred_at_ms);
    };
    let allowed = match kind {
        "reservation.created" => true,
        "reservation.accepted"
        | "reservation.rejected"
        | "reservation.timeout"
        | "reservation.rescinded"
        | "reservation.failed" => previous == "pending",
        "reservation.canceled" => previous == "pending",
        "reservation.wrapup" => previous == "accepted",
        "reservation.completed" => matches!(previous.as_str(), "accepted" | "wrapping"),
        _ => true,
    };
    if !allowed {
        flags.push(Flag {
            kind: "impossible".into(),
            reservation_sid: Some(sid.to_string()),
            explanation: format!(
                "{kind} arrived for reservation {sid} while it was already {previous}{}.",
                if is_reservation_final(&previous) { " (a final state)" } else { "" }
            ),
            evidence: [state.outcome_event_id, Some(fact.event_id)].into_iter().flatten().collect(),
        });
        if kind == "reservation.accepted" && state.accept_attempt.is_none() {
            state.accept_attempt = Some(AcceptAttempt {
                event_id: fact.event_id,
                at_ms: fact.occurred_at_ms,
                how: "a reservation.accepted was recorded",
            });
        }
        return;
    }
    match kind {
        "reservation.created" => {
            state.view.created_at_ms = Some(fact.occurred_at_ms);
            state.view.created_event_id = Some(fact.event_id);
            state.view.timeout_ms = config.reservation_timeout_ms(fact.workflow_sid.as_deref());
            if task.first_reserved_at_ms.is_none() {
                task.first_reserved_at_ms = Some(fact.occurred_at_ms);
            }
            if matches!(task.status.as_str(), "pending" | "reserved") {
                task.status = "reserved".into();
            }
        }
        "reservation.accepted" => {
            answered(state, "accepted");
            state.view.outcome = Some("accepted".into());
            if state.accept_attempt.is_none() {
                state.accept_attempt = Some(AcceptAttempt {
                    event_id: fact.event_id,
                    at_ms: fact.occurred_at_ms,
                    how: "a reservation.accepted was recorded",
                });
            }
            if !is_task_final(&task.status) {
                task.status = "assigned".into();
                task.assigned_at_ms = Some(fact.occurred_at_ms);
            }
        }
        "reservation.rejected"
        | "reservation.timeout"
        | "reservation.canceled"
        | "reservation.rescinded"
        | "reservation.failed" => {
            let status = kind.trim_start_matches("reservation.");
            answered(state, status);
            state.view.finished_at_ms = Some(fact.occurred_at_ms);
            state.view.outcome = Some(match status {
                "timeout" => "timed out unanswered".to_string(),
                "rescinded" => "rescinded (another reservation was accepted)".to_string(),
                "failed" => "failed: not assigned to an agent".to_string(),
                other => other.to_string(),
            });
            let still_open = reservations
                .values()
                .any(|r| matches!(r.view.status.as_str(), "pending" | "accepted" | "wrapping"));
            if task.status == "reserved" && !still_open {
                task.status = "pending".into();
            }
        }
        "reservation.wrapup" => {
            state.view.status = "wrapping".into();
            if !is_task_final(&task.status) {
                task.status = "wrapping".into();
            }
        }
        "reservation.completed" => {
            state.view.status = "completed".into();
            state.view.finished_at_ms = Some(fact.occurred_at_ms);
            state.view.outcome = Some("completed".into());
            if !is_task_final(&task.status) {
                task.status = "completed".into();
                task.finished_at_ms = Some(fact.occurred_at_ms);
            }
        }
        _ => {}
    }
}

/// The first activity change of `worker` within the follow window after `at_ms`.
fn next_activity<'a>(worker_activity: &'a [Fact], worker: Option<&str>, at_ms: i64) -> Option<&'a Fact> {
    let worker = worker?;
    worker_activity
        .iter()
        .filter(|f| f.worker_sid.as_deref() == Some(worker) && f.event_type == "worker.activity.update")
        .filter(|f| f.occurred_at_ms >= at_ms && f.occurred_at_ms <= at_ms + ACTIVITY_FOLLOW_WINDOW_MS)
        .min_by_key(|f| (f.occurred_at_ms, f.event_id))
}

fn describe_activity(update: &Fact, after_ms: i64) -> String {
    format!(
        "{} then went to {}{} {} later",
        update.worker_name.as_deref().unwrap_or("the worker"),
        update.activity_name.as_deref().unwrap_or("an unnamed activity"),
        update.previous_activity_name.as_deref().map(|p| format!(" (from {p})")).unwrap_or_default(),
        if update.occurred_at_ms == after_ms {
            "0 ms".to_string()
        } else {
            format!("{} ms", update.occurred_at_ms - after_ms)
        }
    )
}

fn outcome_flags(
    state: &ReservationState,
    accepted: &[(String, Option<String>)],
    worker_activity: &[Fact],
    flags: &mut Vec<Flag>,
) {
    let view = &state.view;
    let sid = view.reservation_sid.as_str();
    let who =
        view.worker_name.clone().or(view.worker_sid.clone()).unwrap_or_else(|| "an unknown worker".into());
    let base_evidence: Vec<i64> =
        [view.created_event_id, view.callback_event_id].into_iter().flatten().collect();
    let (Some(outcome_id), Some(outcome_at)) = (state.outcome_event_id, state.outcome_at_ms) else { return };
    let pending =
        view.pending_ms.map_or("an unknown time (its creation was not recorded)".to_string(), seconds);
    match view.status.as_str() {
        "timeout" => {
            let mut evidence = base_evidence.clone();
            evidence.push(outcome_id);
            let answer = match (&view.callback_answer, &state.accept_attempt) {
                (_, Some(attempt)) => {
                    evidence.push(attempt.event_id);
                    let deadline = view.created_at_ms.map(|c| c + view.timeout_ms);
                    match deadline {
                        Some(deadline) if attempt.at_ms > deadline => format!(
                            "An accept was made too late: {} {} after the timeout had passed.",
                            attempt.how,
                            seconds(attempt.at_ms - deadline)
                        ),
                        _ => {
                            format!("An accept was attempted ({}), but it did not take effect.", attempt.how)
                        }
                    }
                }
                (Some(answer), None) => {
                    format!("The assignment callback was answered {answer}, and no accept was ever made.")
                }
                (None, None) => {
                    "No assignment callback was recorded for it, so it was never answered.".into()
                }
            };
            let mut explanation = format!(
                "Reservation {sid} for {who} timed out: it stayed pending {pending} against a reservation \
                 timeout of {}. {answer}",
                seconds(view.timeout_ms)
            );
            if let Some(update) = next_activity(worker_activity, view.worker_sid.as_deref(), outcome_at) {
                explanation.push_str(&format!(
                    " {} (the Workspace's timeout activity).",
                    describe_activity(update, outcome_at)
                ));
                evidence.push(update.event_id);
            } else {
                explanation.push_str(" No activity change of the worker was recorded afterwards.");
            }
            flags.push(Flag {
                kind: "timeout".into(),
                reservation_sid: Some(sid.into()),
                explanation,
                evidence,
            });
        }
        "rejected" => {
            let mut evidence = base_evidence.clone();
            evidence.push(outcome_id);
            let mut explanation = format!("{who} rejected reservation {sid} after {pending} pending.");
            if let Some(update) = next_activity(worker_activity, view.worker_sid.as_deref(), outcome_at) {
                explanation.push_str(&format!(" {}.", describe_activity(update, outcome_at)));
                evidence.push(update.event_id);
            } else {
                explanation.push_str(" No activity change of the worker was recorded afterwards.");
            }
            flags.push(Flag {
                kind: "rejected".into(),
                reservation_sid: Some(sid.into()),
                explanation,
                evidence,
            });
        }
        "rescinded" => {
            let mut evidence = base_evidence.clone();
            evidence.push(outcome_id);
            let winner = accepted
                .iter()
                .find(|(other, _)| other != sid)
                .map(|(other, name)| {
                    format!(
                        "reservation {other} ({}) was accepted",
                        name.as_deref().unwrap_or("unknown worker")
                    )
                })
                .unwrap_or_else(|| "another reservation was accepted (not recorded here)".into());
            let explanation = format!(
                "Reservation {sid} for {who} was rescinded after {pending} pending because {winner} \
                 (multi-reservation: the first accept withdraws the others)."
            );
            flags.push(Flag {
                kind: "rescinded".into(),
                reservation_sid: Some(sid.into()),
                explanation,
                evidence,
            });
        }
        "canceled" => {
            if let Some(attempt) = &state.accept_attempt {
                let mut evidence = base_evidence.clone();
                evidence.push(attempt.event_id);
                evidence.push(outcome_id);
                evidence.dedup();
                let explanation = format!(
                    "Reservation {sid} for {who} was canceled {} after an accept attempt ({}): the accept \
                     did not complete (e.g. the caller hung up or the accept setup failed).",
                    seconds(outcome_at - attempt.at_ms),
                    attempt.how
                );
                flags.push(Flag {
                    kind: "canceled-after-accept".into(),
                    reservation_sid: Some(sid.into()),
                    explanation,
                    evidence,
                });
            }
        }
        _ => {}
    }
}

/// The overdue flag of a reservation still pending when the latest fact in the log happened at
/// `as_of_ms`, if it has been pending longer than its timeout.
pub fn overdue_flag(reservation: &ReservationView, as_of_ms: i64) -> Option<Flag> {
    if reservation.status != "pending" {
        return None;
    }
    let created = reservation.created_at_ms?;
    let pending = as_of_ms - created;
    (pending > reservation.timeout_ms).then(|| Flag {
        kind: "overdue".into(),
        reservation_sid: Some(reservation.reservation_sid.clone()),
        explanation: format!(
            "Reservation {} for {} has been pending {} (as of the latest fact in the log) against a \
             reservation timeout of {}, and no accept, reject, timeout or cancel was recorded: its \
             outcome callback is missing or late.",
            reservation.reservation_sid,
            reservation
                .worker_name
                .as_deref()
                .or(reservation.worker_sid.as_deref())
                .unwrap_or("an unknown worker"),
            seconds(pending),
            seconds(reservation.timeout_ms)
        ),
        evidence: [reservation.created_event_id, reservation.callback_event_id]
            .into_iter()
            .flatten()
            .collect(),
    })
}

/// The worker's name from the reservation's other events, for facts that lack one (assignment
/// callbacks carry only the Worker Sid).
fn known_worker_name<'a>(
    reservations: &'a BTreeMap<String, ReservationState>,
    fact: &Fact,
) -> Option<&'a str> {
    let sid = fact.reservation_sid.as_deref()?;
    reservations.get(sid)?.view.worker_name.as_deref()
}

/// One line saying what a fact means.
fn summarize(fact: &Fact, known_worker_name: Option<&str>) -> String {
    let worker = fact
        .worker_name
        .as_deref()
        .or(known_worker_name)
        .or(fact.worker_sid.as_deref())
        .unwrap_or("unknown worker");
    let reservation = fact.reservation_sid.as_deref().unwrap_or("?");
    let queue = fact.task_queue_name.as_deref().or(fact.task_queue_sid.as_deref()).unwrap_or("?");
    match fact.event_type.as_str() {
        "task.created" => {
            format!("Task created (priority {})", fact.priority.map_or("?".into(), |p| p.to_string()))
        }
        "workflow.entered" => {
            format!(
                "Entered workflow {}",
                fact.workflow_name.as_deref().or(fact.workflow_sid.as_deref()).unwrap_or("?")
            )
        }
        "task-queue.entered" => format!("Entered queue {queue}"),
        "task-queue.moved" => format!("Moved to queue {queue}"),
        "workflow.target-matched" => "Matched a workflow target".into(),
        "task.updated" => "Task updated".into(),
        "reservation.created" => format!("Reserved for {worker} ({reservation})"),
        "assignment" => format!(
            "Assignment callback for {reservation} ({worker}); we answered {}",
            fact.response_body.as_deref().unwrap_or("nothing")
        ),
        "reservation.accepted" => format!("{worker} accepted {reservation}"),
        "reservation.rejected" => format!("{worker} rejected {reservation}"),
        "reservation.timeout" => format!("{reservation} for {worker} timed out"),
        "reservation.canceled" => format!("{reservation} for {worker} canceled"),
        "reservation.rescinded" => format!("{reservation} for {worker} rescinded"),
        "reservation.failed" => format!("{reservation} failed"),
        "reservation.wrapup" => format!("{reservation} wrapping up"),
        "reservation.completed" => format!("{reservation} completed"),
        "task.wrapup" => "Task wrapping up".into(),
        "task.completed" => "Task completed".into(),
        "task.canceled" => format!(
            "Task canceled{}",
            fact.canceled_reason
                .as_deref()
                .or(fact.description.as_deref())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        "workflow.timeout" => "Workflow timed out without an accept; task removed".into(),
        "workflow.skipped" => "Skipped the final workflow step; task removed".into(),
        "task-queue.timeout" => format!("Routing step in {queue} timed out"),
        other => fact.description.clone().unwrap_or_else(|| other.to_string()),
    }
}
