//! What a task's fold produces and keeps. The rows it derives ([`TaskView`],
//! [`ReservationView`], [`TimelineEntry`], [`Flag`], all of them a [`TaskProjection`]), and the
//! state it carries from one fact to the next: the task's ([`TaskFold`], with its [`Totals`]) and
//! each reservation's ([`ReservationState`]). [`super::fold`] steps through the facts and
//! re-exports all of these.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use taskrouter_protocol::{ReservationStatus, TaskStatus};

use super::fact::{Fact, SortKey};

/// How long after a reservation's timeout or rejection a worker's activity change is taken to be
/// its consequence (TaskRouter moves the worker at once; the margin absorbs clock skew).
pub const ACTIVITY_FOLLOW_WINDOW_MS: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskView {
    pub task_sid: String,
    pub status: TaskStatus,
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
    pub status: ReservationStatus,
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

pub(super) fn kind_index(kind: &str) -> usize {
    FLAG_KINDS.iter().position(|k| *k == kind).expect("a known flag kind")
}

/// The task-level state of the fold after some facts, in lifecycle order: everything a next
/// fact needs, and nothing that grows with the task's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFold {
    pub status: TaskStatus,
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
            status: TaskStatus::Pending,
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
            status: self.status,
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

    /// The task's first fact, when its `task.created` was never recorded.
    pub fn first_fact_without_created(&self) -> Option<&SortKey> {
        self.first_key.as_deref().filter(|_| !self.seen_created)
    }

    /// `,kind,kind,` of the task's flags, for filtering the task list.
    pub fn flag_kinds(&self) -> String {
        let missing_created = self.first_fact_without_created().is_some();
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
