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

use serde::{Deserialize, Serialize};
use taskrouter_protocol::EventType;

use super::explain::{self, classify_answer, summarize};
use super::fact::{lifecycle_order_of, Fact, SortKey};

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

/// The event types of the facts whose worker's next activity change a task's flags mention.
pub const ACTIVITY_CAUSING_EVENTS: [EventType; 2] =
    [EventType::ReservationTimeout, EventType::ReservationRejected];

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

/// How an accept was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcceptHow {
    AssignmentInstruction,
    ReservationAccepted,
}

impl AcceptHow {
    pub fn words(self) -> &'static str {
        match self {
            AcceptHow::AssignmentInstruction => {
                "the assignment callback was answered with an accept instruction"
            }
            AcceptHow::ReservationAccepted => "a reservation.accepted was recorded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptAttempt {
    pub event_id: i64,
    pub at_ms: i64,
    pub how: AcceptHow,
}

/// One reservation's folded state: its row and what its flags and its facts' order need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationState {
    pub view: ReservationView,
    /// Its place among its task's reservations, by first appearance in lifecycle order.
    pub ordinal: i64,
    pub accept_attempt: Option<AcceptAttempt>,
    pub outcome_event_id: Option<i64>,
    pub outcome_at_ms: Option<i64>,
    pub missing_created_flagged: bool,
    /// The earliest `reservation.created` folded, which places the reservation's other facts.
    pub created_min_ms: Option<i64>,
    /// The placement time of its first fact in lifecycle order.
    pub first_placement_ms: i64,
}

impl ReservationState {
    /// About how many bytes it holds in memory.
    pub fn memory_bytes(&self) -> usize {
        let owned = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        std::mem::size_of::<Self>()
            + self.view.reservation_sid.capacity()
            + self.view.task_sid.capacity()
            + self.view.status.capacity()
            + [&self.view.worker_sid, &self.view.worker_name, &self.view.callback_answer, &self.view.outcome]
                .into_iter()
                .map(owned)
                .sum::<usize>()
    }
}

/// An accepted reservation, as a rescinded one's flag names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedReservation {
    pub ordinal: i64,
    pub reservation_sid: String,
    pub who: Option<String>,
}

/// Flag kinds a task's flags are counted by, in the order `flag_kinds` lists them.
pub const FLAG_KINDS: [&str; 6] =
    ["canceled-after-accept", "gap", "impossible", "rejected", "rescinded", "timeout"];

fn kind_index(kind: &str) -> usize {
    FLAG_KINDS.iter().position(|k| *k == kind).expect("a known flag kind")
}

/// The task-level state of the fold after some facts, in lifecycle order: everything a next
/// fact needs, and nothing that grows with the task's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFold {
    pub status: Arc<str>,
    pub workflow_sid: Option<Arc<str>>,
    pub workflow_name: Option<Arc<str>>,
    pub task_queue_sid: Option<Arc<str>>,
    pub task_queue_name: Option<Arc<str>>,
    pub priority: Option<i64>,
    /// Kept in its own column; shared, not copied, between states.
    #[serde(skip)]
    pub attributes: Option<Arc<str>>,
    pub created_at_ms: Option<i64>,
    pub first_reserved_at_ms: Option<i64>,
    pub assigned_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub cancel_cause: Option<Arc<str>>,
    pub deleted: bool,
    pub reservation_count: i64,
    pub transfer_count: i64,
    pub seen_created: bool,
    pub workflow_timed_out: bool,
    /// Facts folded: the next timeline position.
    pub folded: i64,
    /// Flags raised by facts as they were folded (impossible steps, gaps): the next one's index.
    pub step_flags: i64,
    /// Reservations pending, accepted or wrapping.
    pub open_reservations: i64,
    /// The first two accepted reservations, by ordinal.
    pub accepted: Vec<AcceptedReservation>,
    /// Flags by kind (see [`FLAG_KINDS`]), the missing `task.created` aside.
    pub flag_counts: [i64; 6],
    /// The earliest `task.created` folded, which places the task's other facts.
    pub task_created_min_ms: Option<i64>,
    /// The first and the last fact folded, in lifecycle order.
    pub first_key: Option<Arc<SortKey>>,
    pub last_key: Option<Arc<SortKey>>,
}

impl Default for TaskFold {
    fn default() -> Self {
        Self {
            status: "pending".into(),
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
            seen_created: false,
            workflow_timed_out: false,
            folded: 0,
            step_flags: 0,
            open_reservations: 0,
            accepted: Vec::new(),
            flag_counts: [0; 6],
            task_created_min_ms: None,
            first_key: None,
            last_key: None,
        }
    }
}

/// What the facts folded so far add up to whatever their order: counts and time bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub facts: i64,
    /// Bounds of TaskRouter's times, and of all times (assignment callbacks carry only ours).
    pub event_time_bounds: Option<(i64, i64)>,
    pub any_time_bounds: Option<(i64, i64)>,
}

impl Totals {
    pub fn add(&mut self, fact: &Fact) {
        let widen = |bounds: &mut Option<(i64, i64)>, at: i64| {
            *bounds = Some(bounds.map_or((at, at), |(low, high)| (low.min(at), high.max(at))));
        };
        self.facts += 1;
        widen(&mut self.any_time_bounds, fact.occurred_at_ms);
        if !fact.time_is_arrival {
            widen(&mut self.event_time_bounds, fact.occurred_at_ms);
        }
    }

    /// The earliest and latest fact times: TaskRouter's where there are any.
    fn bounds(&self) -> (i64, i64) {
        self.event_time_bounds.or(self.any_time_bounds).unwrap_or((0, 0))
    }
}

impl TaskFold {
    /// The task's row.
    pub fn view(&self, task_sid: &str, totals: &Totals) -> TaskView {
        let (first, last) = totals.bounds();
        TaskView {
            task_sid: task_sid.to_string(),
            status: self.status.to_string(),
            workflow_sid: self.workflow_sid.as_deref().map(str::to_string),
            workflow_name: self.workflow_name.as_deref().map(str::to_string),
            task_queue_sid: self.task_queue_sid.as_deref().map(str::to_string),
            task_queue_name: self.task_queue_name.as_deref().map(str::to_string),
            priority: self.priority,
            attributes: self.attributes.as_deref().map(str::to_string),
            created_at_ms: self.created_at_ms,
            first_reserved_at_ms: self.first_reserved_at_ms,
            assigned_at_ms: self.assigned_at_ms,
            finished_at_ms: self.finished_at_ms,
            cancel_cause: self.cancel_cause.as_deref().map(str::to_string),
            deleted: self.deleted,
            reservation_count: self.reservation_count,
            transfer_count: self.transfer_count,
            first_fact_at_ms: first,
            last_fact_at_ms: last,
            fact_count: totals.facts,
        }
    }

    /// The flag of a task whose `task.created` was never recorded.
    pub fn missing_created_flag(&self) -> Option<Flag> {
        let first = self.first_key.as_ref().filter(|_| !self.seen_created)?;
        Some(explain::missing_created_flag(&first.event_type, first.occurred_at_ms, first.event_id))
    }

    /// `,kind,kind,` of the task's flags, for filtering the task list.
    pub fn flag_kinds(&self) -> String {
        let missing_created = self.missing_created_flag().is_some();
        let kinds: Vec<&str> = FLAG_KINDS
            .iter()
            .enumerate()
            .filter(|(i, kind)| self.flag_counts[*i] > 0 || (missing_created && **kind == "gap"))
            .map(|(_, kind)| *kind)
            .collect();
        if kinds.is_empty() {
            String::new()
        } else {
            format!(",{},", kinds.join(","))
        }
    }

    /// About how many bytes a copy of it holds in memory: its strings and keys are shared
    /// between a task's states, the vector is its own.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .accepted
                .iter()
                .map(|a| a.reservation_sid.capacity() + a.who.as_ref().map_or(0, String::capacity) + 24)
                .sum::<usize>()
    }
}

/// What one fact adds besides the state: its timeline entry and the flags it raised, which
/// take the step-flag indexes from the state's `step_flags` before the step on.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub timeline: TimelineEntry,
    pub flags: Vec<Flag>,
}

fn is_reservation_final(status: &str) -> bool {
    matches!(status, "rejected" | "timeout" | "canceled" | "rescinded" | "completed" | "failed")
}

fn is_reservation_open(status: &str) -> bool {
    matches!(status, "pending" | "accepted" | "wrapping")
}

fn is_accepted(status: &str) -> bool {
    matches!(status, "accepted" | "wrapping" | "completed")
}

fn is_task_final(status: &str) -> bool {
    matches!(status, "completed" | "canceled")
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
    let was_final = is_task_final(&fold.status);
    let lifecycle_event = !matches!(kind, "task.updated" | "task.deleted" | "task.system-deleted")
        && !kind.starts_with("worker.");
    // The terminal pair (reservation.completed + task.completed, workflow.timeout +
    // task.canceled, the last reservation.canceled + task.canceled) is not a violation.
    let same_ending = matches!(
        (&*fold.status, kind),
        ("completed", "task.completed" | "reservation.completed")
            | ("canceled", "task.canceled" | "reservation.canceled" | "reservation.rescinded")
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
    if is_accepted(&state.view.status) {
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
            fold.status = "wrapping".into();
        }
        "task.completed" if !was_final => {
            if fold.assigned_at_ms.is_none() {
                flags.push(gap_assigned_without_accept(fact));
            }
            fold.status = "completed".into();
            fold.finished_at_ms = Some(fact.occurred_at_ms);
        }
        kind @ ("workflow.timeout" | "workflow.skipped") if !was_final => {
            fold.workflow_timed_out = true;
            fold.status = "canceled".into();
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
            if !was_final || &*fold.status == "canceled" {
                fold.status = "canceled".into();
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

fn set_status(open_reservations: &mut i64, state: &mut ReservationState, status: &str) {
    *open_reservations +=
        i64::from(is_reservation_open(status)) - i64::from(is_reservation_open(&state.view.status));
    state.view.status = status.to_string();
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
    let previous = state.view.status.clone();
    let answered = |open: &mut i64, state: &mut ReservationState, status: &str| {
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
        | "reservation.canceled" => previous == "pending",
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
            if matches!(&*fold.status, "pending" | "reserved") {
                fold.status = "reserved".into();
            }
        }
        "reservation.accepted" => {
            answered(open, state, "accepted");
            state.view.outcome = Some("accepted".into());
            if state.accept_attempt.is_none() {
                state.accept_attempt = Some(AcceptAttempt {
                    event_id: fact.event_id,
                    at_ms: fact.occurred_at_ms,
                    how: AcceptHow::ReservationAccepted,
                });
            }
            if !is_task_final(&fold.status) {
                fold.status = "assigned".into();
                fold.assigned_at_ms = Some(fact.occurred_at_ms);
            }
        }
        "reservation.rejected"
        | "reservation.timeout"
        | "reservation.canceled"
        | "reservation.rescinded"
        | "reservation.failed" => {
            let status = kind.trim_start_matches("reservation.");
            answered(open, state, status);
            state.view.finished_at_ms = Some(fact.occurred_at_ms);
            state.view.outcome = Some(match status {
                "timeout" => "timed out unanswered".to_string(),
                "rescinded" => "rescinded (another reservation was accepted)".to_string(),
                "failed" => "failed: not assigned to an agent".to_string(),
                other => other.to_string(),
            });
            if &*fold.status == "reserved" && fold.open_reservations == 0 {
                fold.status = "pending".into();
            }
        }
        "reservation.wrapup" => {
            set_status(open, state, "wrapping");
            if !is_task_final(&fold.status) {
                fold.status = "wrapping".into();
            }
        }
        "reservation.completed" => {
            set_status(open, state, "completed");
            state.view.finished_at_ms = Some(fact.occurred_at_ms);
            state.view.outcome = Some("completed".into());
            if !is_task_final(&fold.status) {
                fold.status = "completed".into();
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
    let mut flags: Vec<Flag> = fold.missing_created_flag().into_iter().collect();
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
