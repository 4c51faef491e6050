//! The pure fold of one task, one fact at a time: [`step`] takes the task's folded state
//! ([`TaskFold`], plus the state of the one reservation the fact names) and a fact that comes
//! next in lifecycle order, and returns the fact's timeline entry and the flags it raised. No
//! database, clock, randomness or I/O, so the same facts in the same lifecycle order always give
//! the same state. [`fold_task`] folds a whole task at once (the reference the incremental
//! engine is tested against).
//!
//! Each step costs the same however long the task's history is: the state holds counters and
//! the first accepted reservations instead of lists that grow with the task.

use std::collections::BTreeMap;
use std::sync::Arc;

use taskrouter_protocol::{EventType, ReservationStatus, TaskStatus};

use super::explain::{self, classify_answer, summarize};
use super::fact::{lifecycle_order_of, Fact, SortKey};
use super::fold_state::kind_index;
pub use super::fold_state::{
    AcceptAttempt, AcceptHow, AcceptedReservation, Flag, ReservationState, ReservationView, TaskFold,
    TaskProjection, TaskView, TimelineEntry, Totals, ACTIVITY_FOLLOW_WINDOW_MS, FLAG_KINDS,
};

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

/// The event types of the facts whose worker's next activity change a task's flags mention.
pub const ACTIVITY_CAUSING_EVENTS: [EventType; 2] =
    [EventType::ReservationTimeout, EventType::ReservationRejected];

/// What one fact adds besides the state: its timeline entry and the flags it raised, which
/// take the step-flag indexes from the state's `step_flags` before the step on.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub timeline: TimelineEntry,
    pub flags: Vec<Flag>,
}

/// Folds `fact`, which comes after every fact folded into `fold` in lifecycle order and sits at
/// `key`. `reservation` is the state of the reservation the fact names (`None` when it has none
/// yet, or the fact names none); it is created or updated in place.
pub fn step(
    fold: &mut TaskFold,
    reservation: &mut Option<ReservationState>,
    fact: &Fact,
    key: Arc<SortKey>,
    task_sid: &str,
    config: &ProjectionConfig,
) -> Emitted {
    let kind = fact.event_type.as_str();
    let outcome_before = reservation.as_ref().and_then(explain::outcome_kind);
    let mut flags = Vec::new();
    if kind == "task.created" {
        fold.task_created_min_ms =
            Some(fold.task_created_min_ms.map_or(fact.occurred_at_ms, |m| m.min(fact.occurred_at_ms)));
    }
    // Task-level fields: the latest value seen in lifecycle order wins.
    if let Some(value) = fact.workflow_sid.as_deref().filter(|v| fold.workflow_sid.as_deref() != Some(*v)) {
        fold.workflow_sid = Some(Arc::from(value));
    }
    if let Some(value) = fact.workflow_name.as_deref().filter(|v| fold.workflow_name.as_deref() != Some(*v)) {
        fold.workflow_name = Some(Arc::from(value));
    }
    if let Some(value) = fact.task_queue_sid.as_deref().filter(|v| fold.task_queue_sid.as_deref() != Some(*v))
    {
        fold.task_queue_sid = Some(Arc::from(value));
    }
    if let Some(value) =
        fact.task_queue_name.as_deref().filter(|v| fold.task_queue_name.as_deref() != Some(*v))
    {
        fold.task_queue_name = Some(Arc::from(value));
    }
    if fact.priority.is_some() {
        fold.priority = fact.priority;
    }
    if let Some(attributes) = fact.attributes.as_deref() {
        if fold.attributes.as_deref() != Some(attributes) {
            fold.attributes = Some(Arc::from(attributes));
        }
    }
    let was_final = fold.status.is_final();
    let lifecycle_event = !matches!(kind, "task.updated" | "task.deleted" | "task.system-deleted")
        && !kind.starts_with("worker.");
    // The terminal pair (reservation.completed + task.completed, workflow.timeout +
    // task.canceled, the last reservation.canceled + task.canceled) is not a violation.
    let same_ending = matches!(
        (fold.status, kind),
        (TaskStatus::Completed, "task.completed" | "reservation.completed")
            | (TaskStatus::Canceled, "task.canceled" | "reservation.canceled" | "reservation.rescinded")
    );
    if was_final && lifecycle_event && !same_ending {
        flags.push(Flag {
            kind: "impossible".into(),
            reservation_sid: fact.reservation_sid.clone(),
            explanation: format!(
                "{kind} arrived for a task already {} — nothing should happen to a task after it ends.",
                fold.status
            ),
            evidence: vec![fact.event_id],
        });
    }

    if let Some(sid) = fact.reservation_sid.as_deref().filter(|_| kind.starts_with("reservation.")) {
        reservation_event(fold, reservation, &mut flags, sid, fact, &key, task_sid, config);
    } else if fact.is_assignment() {
        if let Some(sid) = fact.reservation_sid.as_deref() {
            let state =
                reservation.get_or_insert_with(|| new_reservation(fold, sid, task_sid, fact, &key, config));
            let (answer, accepts) = classify_answer(fact.response_body.as_deref());
            state.view.callback_event_id = Some(fact.event_id);
            state.view.callback_answer = Some(answer);
            if accepts && state.accept_attempt.is_none() {
                state.accept_attempt = Some(AcceptAttempt {
                    event_id: fact.event_id,
                    at_ms: fact.occurred_at_ms,
                    how: AcceptHow::AssignmentInstruction,
                });
            }
        }
    } else {
        task_event(fold, &mut flags, fact, was_final);
    }

    if let Some(state) = reservation.as_ref() {
        let outcome_after = explain::outcome_kind(state);
        if outcome_before != outcome_after {
            if let Some(kind) = outcome_before {
                fold.flag_counts[kind_index(kind)] -= 1;
            }
            if let Some(kind) = outcome_after {
                fold.flag_counts[kind_index(kind)] += 1;
            }
        }
        note_accepted(&mut fold.accepted, state);
    }
    for flag in &flags {
        fold.flag_counts[kind_index(&flag.kind)] += 1;
    }
    fold.step_flags += flags.len() as i64;
    let timeline = TimelineEntry {
        position: fold.folded,
        occurred_at_ms: fact.occurred_at_ms,
        time_source: if fact.time_is_arrival { "arrival" } else { "event" }.into(),
        kind: kind.to_string(),
        reservation_sid: fact.reservation_sid.clone(),
        worker_sid: fact.worker_sid.clone(),
        summary: summarize(fact, reservation.as_ref().and_then(|r| r.view.worker_name.as_deref())),
        evidence: vec![fact.event_id],
    };
    fold.folded += 1;
    if fold.first_key.is_none() {
        fold.first_key = Some(Arc::clone(&key));
    }
    fold.last_key = Some(key);
    Emitted { timeline, flags }
}

/// Keeps `accepted` the first two accepted reservations by ordinal, with their current names.
fn note_accepted(accepted: &mut Vec<AcceptedReservation>, state: &ReservationState) {
    let sid = &state.view.reservation_sid;
    accepted.retain(|a| &a.reservation_sid != sid);
    if state.view.status.was_accepted() {
        let at = accepted.partition_point(|a| a.ordinal < state.ordinal);
        accepted.insert(
            at,
            AcceptedReservation {
                ordinal: state.ordinal,
                reservation_sid: sid.clone(),
                who: state.view.worker_name.clone().or(state.view.worker_sid.clone()),
            },
        );
        accepted.truncate(2);
    }
}

fn task_event(fold: &mut TaskFold, flags: &mut Vec<Flag>, fact: &Fact, was_final: bool) {
    match fact.event_type.as_str() {
        "task.created" => {
            fold.seen_created = true;
            fold.created_at_ms = Some(fact.occurred_at_ms);
        }
        "reservation.wrapup" | "task.wrapup" if !was_final => {
            if fold.assigned_at_ms.is_none() {
                flags.push(gap_assigned_without_accept(fact));
            }
            fold.status = TaskStatus::Wrapping;
        }
        "task.completed" if !was_final => {
            if fold.assigned_at_ms.is_none() {
                flags.push(gap_assigned_without_accept(fact));
            }
            fold.status = TaskStatus::Completed;
            fold.finished_at_ms = Some(fact.occurred_at_ms);
        }
        kind @ ("workflow.timeout" | "workflow.skipped") if !was_final => {
            fold.workflow_timed_out = true;
            fold.status = TaskStatus::Canceled;
            fold.finished_at_ms = Some(fact.occurred_at_ms);
            fold.cancel_cause =
                Some(if kind == "workflow.timeout" { "workflow-timeout" } else { "workflow-skipped" }.into());
        }
        "task.canceled" => {
            let ttl = fact.description.as_deref().is_some_and(|d| d.contains("TTL"));
            let cause: Arc<str> = if ttl {
                "ttl".into()
            } else if fold.workflow_timed_out {
                fold.cancel_cause.clone().unwrap_or_else(|| "workflow-timeout".into())
            } else {
                fact.canceled_reason.as_deref().unwrap_or("api").into()
            };
            if !was_final || fold.status == TaskStatus::Canceled {
                fold.status = TaskStatus::Canceled;
                fold.finished_at_ms = Some(fold.finished_at_ms.unwrap_or(fact.occurred_at_ms));
                fold.cancel_cause = Some(cause);
            }
        }
        "task.deleted" | "task.system-deleted" => fold.deleted = true,
        "task.transfer-initiated" => fold.transfer_count += 1,
        _ => {}
    }
}

fn new_reservation(
    fold: &mut TaskFold,
    sid: &str,
    task_sid: &str,
    fact: &Fact,
    key: &SortKey,
    config: &ProjectionConfig,
) -> ReservationState {
    let ordinal = fold.reservation_count;
    fold.reservation_count += 1;
    fold.open_reservations += 1;
    ReservationState {
        view: ReservationView {
            reservation_sid: sid.to_string(),
            task_sid: task_sid.to_string(),
            worker_sid: fact.worker_sid.clone(),
            worker_name: fact.worker_name.clone(),
            status: ReservationStatus::Pending,
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
        ordinal,
        accept_attempt: None,
        outcome_event_id: None,
        outcome_at_ms: None,
        missing_created_flagged: false,
        created_min_ms: None,
        first_placement_ms: key.placement_ms,
    }
}

fn gap_assigned_without_accept(fact: &Fact) -> Flag {
    Flag {
        kind: "gap".into(),
        reservation_sid: fact.reservation_sid.clone(),
        explanation: format!(
            "{} shows the task assigned, but no reservation.accepted was recorded before it.",
            fact.event_type
        ),
        evidence: vec![fact.event_id],
    }
}

fn set_status(open_reservations: &mut i64, state: &mut ReservationState, status: ReservationStatus) {
    *open_reservations += i64::from(status.is_live()) - i64::from(state.view.status.is_live());
    state.view.status = status;
}

#[allow(clippy::too_many_arguments)]
fn reservation_event(
    fold: &mut TaskFold,
    reservation: &mut Option<ReservationState>,
    flags: &mut Vec<Flag>,
    sid: &str,
    fact: &Fact,
    key: &SortKey,
    task_sid: &str,
    config: &ProjectionConfig,
) {
    let kind = fact.event_type.as_str();
    if reservation.is_none() {
        *reservation = Some(new_reservation(fold, sid, task_sid, fact, key, config));
    }
    let state = reservation.as_mut().expect("set above");
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
    let previous = state.view.status;
    let answered = |open: &mut i64, state: &mut ReservationState, status: ReservationStatus| {
        set_status(open, state, status);
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
        | "reservation.failed"
        | "reservation.canceled" => previous == ReservationStatus::Pending,
        "reservation.wrapup" => previous == ReservationStatus::Accepted,
        "reservation.completed" => {
            matches!(previous, ReservationStatus::Accepted | ReservationStatus::Wrapping)
        }
        _ => true,
    };
    if !allowed {
        flags.push(Flag {
            kind: "impossible".into(),
            reservation_sid: Some(sid.to_string()),
            explanation: format!(
                "{kind} arrived for reservation {sid} while it was already {previous}{}.",
                if previous.is_final() { " (a final state)" } else { "" }
            ),
            evidence: [state.outcome_event_id, Some(fact.event_id)].into_iter().flatten().collect(),
        });
        if kind == "reservation.accepted" && state.accept_attempt.is_none() {
            state.accept_attempt = Some(AcceptAttempt {
                event_id: fact.event_id,
                at_ms: fact.occurred_at_ms,
                how: AcceptHow::ReservationAccepted,
            });
        }
        return;
    }
    let open = &mut fold.open_reservations;
    match kind {
        "reservation.created" => {
            state.view.created_at_ms = Some(fact.occurred_at_ms);
            state.view.created_event_id = Some(fact.event_id);
            state.view.timeout_ms = config.reservation_timeout_ms(fact.workflow_sid.as_deref());
            state.created_min_ms =
                Some(state.created_min_ms.map_or(fact.occurred_at_ms, |m| m.min(fact.occurred_at_ms)));
            if fold.first_reserved_at_ms.is_none() {
                fold.first_reserved_at_ms = Some(fact.occurred_at_ms);
            }
            if fold.status.is_open() {
                fold.status = TaskStatus::Reserved;
            }
        }
        "reservation.accepted" => {
            answered(open, state, ReservationStatus::Accepted);
            state.view.outcome = Some("accepted".into());
            if state.accept_attempt.is_none() {
                state.accept_attempt = Some(AcceptAttempt {
                    event_id: fact.event_id,
                    at_ms: fact.occurred_at_ms,
                    how: AcceptHow::ReservationAccepted,
                });
            }
            if !fold.status.is_final() {
                fold.status = TaskStatus::Assigned;
                fold.assigned_at_ms = Some(fact.occurred_at_ms);
            }
        }
        "reservation.rejected"
        | "reservation.timeout"
        | "reservation.canceled"
        | "reservation.rescinded"
        | "reservation.failed" => {
            let status = match kind {
                "reservation.rejected" => ReservationStatus::Rejected,
                "reservation.timeout" => ReservationStatus::Timeout,
                "reservation.canceled" => ReservationStatus::Canceled,
                "reservation.rescinded" => ReservationStatus::Rescinded,
                _ => ReservationStatus::Failed,
            };
            answered(open, state, status);
            state.view.finished_at_ms = Some(fact.occurred_at_ms);
            state.view.outcome = Some(match status {
                ReservationStatus::Timeout => "timed out unanswered".to_string(),
                ReservationStatus::Rescinded => "rescinded (another reservation was accepted)".to_string(),
                ReservationStatus::Failed => "failed: not assigned to an agent".to_string(),
                other => other.as_str().to_string(),
            });
            if fold.status == TaskStatus::Reserved && fold.open_reservations == 0 {
                fold.status = TaskStatus::Pending;
            }
        }
        "reservation.wrapup" => {
            set_status(open, state, ReservationStatus::Wrapping);
            if !fold.status.is_final() {
                fold.status = TaskStatus::Wrapping;
            }
        }
        "reservation.completed" => {
            set_status(open, state, ReservationStatus::Completed);
            state.view.finished_at_ms = Some(fact.occurred_at_ms);
            state.view.outcome = Some("completed".into());
            if !fold.status.is_final() {
                fold.status = TaskStatus::Completed;
                fold.finished_at_ms = Some(fact.occurred_at_ms);
            }
        }
        _ => {}
    }
}

/// Folds one task's facts into its projection: the reference for the incremental engine.
///
/// `worker_activity` holds `worker.activity.update` facts of the task's workers (any superset
/// is fine: only the first change within [`ACTIVITY_FOLLOW_WINDOW_MS`] after a timeout or
/// rejection is used). The facts may come in any order.
pub fn fold_task(
    task_sid: &str,
    facts: &[Fact],
    worker_activity: &[Fact],
    config: &ProjectionConfig,
) -> TaskProjection {
    // A re-delivered event (same Sid) is normally kept out by the writer; if one slips through,
    // only its first delivery counts.
    let ordered = lifecycle_order_of(facts);
    let mut fold = TaskFold::default();
    let mut totals = Totals::default();
    let mut reservations: BTreeMap<String, ReservationState> = BTreeMap::new();
    let mut timeline = Vec::with_capacity(ordered.len());
    let mut step_flags = Vec::new();
    for (key, index) in ordered {
        let fact = &facts[index];
        totals.add(fact);
        let sid = fact.reservation_sid.as_deref();
        let mut slot = sid.and_then(|sid| reservations.remove(sid));
        let emitted = step(&mut fold, &mut slot, fact, Arc::new(key), task_sid, config);
        if let (Some(sid), Some(state)) = (sid, slot) {
            reservations.insert(sid.to_string(), state);
        }
        timeline.push(emitted.timeline);
        step_flags.extend(emitted.flags);
    }
    let mut by_ordinal: Vec<&ReservationState> = reservations.values().collect();
    by_ordinal.sort_by_key(|r| r.ordinal);
    let mut flags: Vec<Flag> = explain::missing_created_flag(&fold).into_iter().collect();
    flags.extend(step_flags);
    for state in &by_ordinal {
        let activity = explain::quotes_next_activity(state)
            .then(|| {
                explain::next_activity(
                    worker_activity,
                    state.view.worker_sid.as_deref(),
                    state.outcome_at_ms?,
                )
            })
            .flatten();
        flags.extend(explain::outcome_flag(state, &fold.accepted, activity.as_ref()));
    }
    TaskProjection {
        task: fold.view(task_sid, &totals),
        reservations: by_ordinal.iter().map(|r| r.view.clone()).collect(),
        timeline,
        flags,
    }
}

pub use explain::overdue_flag;
