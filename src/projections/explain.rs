//! The words of the projections: what each fact means in a timeline line, and why a
//! reservation ended as it did (the outcome flags), from one reservation's folded state. Pure
//! functions of their arguments, shared by the incremental engine and the reference fold.

use taskrouter_protocol::{EventType, ReservationStatus};

use super::fact::Fact;
use super::fold_state::{
    AcceptedReservation, Flag, ReservationState, ReservationView, TaskFold, ACTIVITY_FOLLOW_WINDOW_MS,
};

/// A worker's activity change, as an outcome flag quotes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityChange {
    pub event_id: i64,
    pub occurred_at_ms: i64,
    pub worker_name: Option<String>,
    pub activity_name: Option<String>,
    pub previous_activity_name: Option<String>,
}

/// The kinds of flag a reservation's outcome raises (at most one per reservation).
pub const OUTCOME_KINDS: [&str; 4] = ["timeout", "rejected", "rescinded", "canceled-after-accept"];

/// What an assignment callback was answered with, in words, and whether it accepted.
pub(super) fn classify_answer(body: Option<&str>) -> (String, bool) {
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

pub(super) fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The first activity change of `worker` within the follow window after `at_ms`, among
/// `worker_activity` (any superset of the relevant facts).
pub fn next_activity(worker_activity: &[Fact], worker: Option<&str>, at_ms: i64) -> Option<ActivityChange> {
    let worker = worker?;
    worker_activity
        .iter()
        .filter(|f| {
            f.worker_sid.as_deref() == Some(worker) && f.event() == Some(EventType::WorkerActivityUpdate)
        })
        .filter(|f| f.occurred_at_ms >= at_ms && f.occurred_at_ms <= at_ms + ACTIVITY_FOLLOW_WINDOW_MS)
        .min_by_key(|f| (f.occurred_at_ms, f.event_id))
        .map(|f| ActivityChange {
            event_id: f.event_id,
            occurred_at_ms: f.occurred_at_ms,
            worker_name: f.worker_name.clone(),
            activity_name: f.activity_name.clone(),
            previous_activity_name: f.previous_activity_name.clone(),
        })
}

fn describe_activity(update: &ActivityChange, after_ms: i64) -> String {
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

/// The kind of flag the reservation's outcome raises, if any: it depends on the reservation's
/// own state alone (its words may also quote the accepted reservations and the worker).
pub fn outcome_kind(state: &ReservationState) -> Option<&'static str> {
    state.outcome_event_id.zip(state.outcome_at_ms)?;
    match state.view.status {
        ReservationStatus::Timeout => Some(OUTCOME_KINDS[0]),
        ReservationStatus::Rejected => Some(OUTCOME_KINDS[1]),
        ReservationStatus::Rescinded => Some(OUTCOME_KINDS[2]),
        ReservationStatus::Canceled if state.accept_attempt.is_some() => Some(OUTCOME_KINDS[3]),
        _ => None,
    }
}

/// Whether the outcome's words quote the worker's next activity change.
pub fn quotes_next_activity(state: &ReservationState) -> bool {
    matches!(outcome_kind(state), Some("timeout" | "rejected"))
}

/// The flag explaining how the reservation ended, if its outcome raises one. `accepted` holds
/// the first accepted reservations of its task in reservation order (two suffice), and
/// `next_activity` the worker's first activity change in the follow window after the outcome.
pub fn outcome_flag(
    state: &ReservationState,
    accepted: &[AcceptedReservation],
    next_activity: Option<&ActivityChange>,
) -> Option<Flag> {
    let kind = outcome_kind(state)?;
    let view = &state.view;
    let sid = view.reservation_sid.as_str();
    let who =
        view.worker_name.clone().or(view.worker_sid.clone()).unwrap_or_else(|| "an unknown worker".into());
    let mut evidence: Vec<i64> =
        [view.created_event_id, view.callback_event_id].into_iter().flatten().collect();
    let (outcome_id, outcome_at) = state.outcome_event_id.zip(state.outcome_at_ms)?;
    let pending =
        view.pending_ms.map_or("an unknown time (its creation was not recorded)".to_string(), seconds);
    let follow = |explanation: &mut String, suffix: &str, evidence: &mut Vec<i64>| match next_activity {
        Some(update) => {
            explanation.push_str(&format!(" {}{suffix}.", describe_activity(update, outcome_at)));
            evidence.push(update.event_id);
        }
        None => explanation.push_str(" No activity change of the worker was recorded afterwards."),
    };
    let explanation = match kind {
        "timeout" => {
            evidence.push(outcome_id);
            let answer = match (&view.callback_answer, &state.accept_attempt) {
                (_, Some(attempt)) => {
                    evidence.push(attempt.event_id);
                    let deadline = view.created_at_ms.map(|c| c + view.timeout_ms);
                    match deadline {
                        Some(deadline) if attempt.at_ms > deadline => format!(
                            "An accept was made too late: {} {} after the timeout had passed.",
                            attempt.how.words(),
                            seconds(attempt.at_ms - deadline)
                        ),
                        _ => format!(
                            "An accept was attempted ({}), but it did not take effect.",
                            attempt.how.words()
                        ),
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
            follow(&mut explanation, " (the Workspace's timeout activity)", &mut evidence);
            explanation
        }
        "rejected" => {
            evidence.push(outcome_id);
            let mut explanation = format!("{who} rejected reservation {sid} after {pending} pending.");
            follow(&mut explanation, "", &mut evidence);
            explanation
        }
        "rescinded" => {
            evidence.push(outcome_id);
            let winner = accepted
                .iter()
                .find(|other| other.reservation_sid != sid)
                .map(|other| {
                    format!(
                        "reservation {} ({}) was accepted",
                        other.reservation_sid,
                        other.who.as_deref().unwrap_or("unknown worker")
                    )
                })
                .unwrap_or_else(|| "another reservation was accepted (not recorded here)".into());
            format!(
                "Reservation {sid} for {who} was rescinded after {pending} pending because {winner} \
                 (multi-reservation: the first accept withdraws the others)."
            )
        }
        _ => {
            let attempt = state.accept_attempt.as_ref()?;
            evidence.push(attempt.event_id);
            evidence.push(outcome_id);
            evidence.dedup();
            format!(
                "Reservation {sid} for {who} was canceled {} after an accept attempt ({}): the accept \
                 did not complete (e.g. the caller hung up or the accept setup failed).",
                seconds(outcome_at - attempt.at_ms),
                attempt.how.words()
            )
        }
    };
    Some(Flag { kind: kind.into(), reservation_sid: Some(sid.into()), explanation, evidence })
}

/// The flag of a task for which no `task.created` was recorded, naming its first fact in
/// lifecycle order.
pub fn missing_created_flag(fold: &TaskFold) -> Option<Flag> {
    let first = fold.first_fact_without_created()?;
    let (first_event_type, first_at_ms, first_event_id) =
        (&first.event_type, first.occurred_at_ms, first.event_id);
    Some(Flag {
        kind: "gap".into(),
        reservation_sid: None,
        explanation: format!(
            "No task.created was recorded for this task: the first fact seen is {first_event_type} at \
             {first_at_ms} ms. Earlier callbacks were lost, filtered out (EventsFilter) or sent elsewhere."
        ),
        evidence: vec![first_event_id],
    })
}

/// The overdue flag of a reservation still pending when the latest fact in the log happened at
/// `as_of_ms`, if it has been pending longer than its timeout.
pub fn overdue_flag(reservation: &ReservationView, as_of_ms: i64) -> Option<Flag> {
    if reservation.status != ReservationStatus::Pending {
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

/// One line saying what a fact means.
pub(super) fn summarize(fact: &Fact, known_worker_name: Option<&str>) -> String {
    let worker = fact
        .worker_name
        .as_deref()
        .or(known_worker_name)
        .or(fact.worker_sid.as_deref())
        .unwrap_or("unknown worker");
    let reservation = fact.reservation_sid.as_deref().unwrap_or("?");
    let queue = fact.task_queue_name.as_deref().or(fact.task_queue_sid.as_deref()).unwrap_or("?");
    use EventType::*;
    match fact.event() {
        Some(TaskCreated) => {
            format!("Task created (priority {})", fact.priority.map_or("?".into(), |p| p.to_string()))
        }
        Some(WorkflowEntered) => {
            format!(
                "Entered workflow {}",
                fact.workflow_name.as_deref().or(fact.workflow_sid.as_deref()).unwrap_or("?")
            )
        }
        Some(TaskQueueEntered) => format!("Entered queue {queue}"),
        Some(TaskQueueMoved) => format!("Moved to queue {queue}"),
        Some(WorkflowTargetMatched) => "Matched a workflow target".into(),
        Some(TaskUpdated) => "Task updated".into(),
        Some(ReservationCreated) => format!("Reserved for {worker} ({reservation})"),
        Some(Assignment) => format!(
            "Assignment callback for {reservation} ({worker}); we answered {}",
            fact.response_body.as_deref().unwrap_or("nothing")
        ),
        Some(ReservationAccepted) => format!("{worker} accepted {reservation}"),
        Some(ReservationRejected) => format!("{worker} rejected {reservation}"),
        Some(ReservationTimeout) => format!("{reservation} for {worker} timed out"),
        Some(ReservationCanceled) => format!("{reservation} for {worker} canceled"),
        Some(ReservationRescinded) => format!("{reservation} for {worker} rescinded"),
        Some(ReservationFailed) => format!("{reservation} failed"),
        Some(ReservationWrapup) => format!("{reservation} wrapping up"),
        Some(ReservationCompleted) => format!("{reservation} completed"),
        Some(TaskWrapup) => "Task wrapping up".into(),
        Some(TaskCompleted) => "Task completed".into(),
        Some(TaskCanceled) => format!(
            "Task canceled{}",
            fact.canceled_reason
                .as_deref()
                .or(fact.description.as_deref())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Some(WorkflowTimeout) => "Workflow timed out without an accept; task removed".into(),
        Some(WorkflowSkipped) => "Skipped the final workflow step; task removed".into(),
        Some(TaskQueueTimeout) => format!("Routing step in {queue} timed out"),
        _ => fact.description.clone().unwrap_or_else(|| fact.event_type.clone()),
    }
}
