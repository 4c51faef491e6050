//! The typed fact the folds consume, built from a log row (at ingest or at rebuild), and the
//! causal order facts of one task are folded in.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use taskrouter_protocol::{EventType, FormParams, TimeSource, WebhookFacts};

/// The callback parameters a fact keeps, in the order [`Fact::from_values`] takes them.
pub const FACT_PARAMS: [&str; 12] = [
    "WorkerName",
    "WorkflowName",
    "TaskQueueName",
    "TaskPriority",
    "TaskAttributes",
    "TaskAssignmentStatus",
    "EventDescription",
    "TaskCanceledReason",
    "WorkerActivitySid",
    "WorkerActivityName",
    "WorkerPreviousActivityName",
    "WorkerTimeInPreviousActivityMs",
];

/// What one log row says, with only the fields the projections use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub event_id: i64,
    /// `EventType`, or `assignment` for an assignment callback.
    pub event_type: String,
    pub event_sid: Option<String>,
    pub occurred_at_ms: i64,
    /// True when TaskRouter gave no time and our arrival time stands in.
    pub time_is_arrival: bool,
    pub task_sid: Option<String>,
    pub reservation_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub worker_name: Option<String>,
    pub workflow_sid: Option<String>,
    pub workflow_name: Option<String>,
    pub task_queue_sid: Option<String>,
    pub task_queue_name: Option<String>,
    pub priority: Option<i64>,
    pub attributes: Option<String>,
    pub assignment_status: Option<String>,
    pub description: Option<String>,
    pub canceled_reason: Option<String>,
    pub activity_sid: Option<String>,
    pub activity_name: Option<String>,
    pub previous_activity_name: Option<String>,
    pub time_in_previous_activity_ms: Option<i64>,
    /// What we answered an assignment callback.
    pub response_body: Option<String>,
}

impl Fact {
    /// Builds the fact of log row `event_id` from its indexed facts and decoded parameters.
    pub fn from_parts(
        event_id: i64,
        facts: &WebhookFacts,
        params: Option<&FormParams>,
        response_body: Option<&str>,
    ) -> Self {
        let values = FACT_PARAMS.map(|name| params.and_then(|p| p.get(name)).map(str::to_string));
        Self::from_values(event_id, facts, values, response_body)
    }

    /// Builds the fact of log row `event_id` from its stored body, decoding only the
    /// parameters facts use (see [`taskrouter_protocol::webhook::first_values`]).
    pub fn from_body(event_id: i64, facts: &WebhookFacts, body: &[u8], response_body: Option<&str>) -> Self {
        Self::from_values(
            event_id,
            facts,
            taskrouter_protocol::webhook::first_values(body, &FACT_PARAMS),
            response_body,
        )
    }

    /// `values` holds the first value of each of [`FACT_PARAMS`], in that order.
    fn from_values(
        event_id: i64,
        facts: &WebhookFacts,
        values: [Option<String>; FACT_PARAMS.len()],
        response_body: Option<&str>,
    ) -> Self {
        let [worker_name, workflow_name, task_queue_name, priority, attributes, assignment_status, description, canceled_reason, activity_sid, activity_name, previous_activity_name, time_in_previous_activity_ms] =
            values.map(|v| v.filter(|v| !v.is_empty()));
        let number = |v: Option<String>| v.and_then(|v| v.trim().parse().ok());
        let is_assignment = facts.event_type == taskrouter_protocol::webhook::ASSIGNMENT_EVENT_TYPE;
        Fact {
            event_id,
            event_type: facts.event_type.clone(),
            event_sid: facts.event_sid.clone(),
            occurred_at_ms: facts.occurred_at.epoch_ms,
            time_is_arrival: facts.occurred_at.source == TimeSource::Arrival,
            task_sid: facts.task_sid.clone(),
            reservation_sid: facts.reservation_sid.clone(),
            worker_sid: facts.worker_sid.clone(),
            worker_name,
            workflow_sid: facts.workflow_sid.clone(),
            workflow_name,
            task_queue_sid: facts.task_queue_sid.clone(),
            task_queue_name,
            priority: number(priority),
            attributes,
            assignment_status,
            description,
            canceled_reason,
            activity_sid,
            activity_name,
            previous_activity_name,
            time_in_previous_activity_ms: number(time_in_previous_activity_ms),
            response_body: if is_assignment { response_body.map(str::to_string) } else { None },
        }
    }

    /// Whether this fact ends its task (TaskRouter sends few callbacks after it).
    pub fn ends_task(&self) -> bool {
        self.event().is_some_and(EventType::ends_task)
    }

    /// The fact's event type, when it is one TaskRouter is known to send.
    pub fn event(&self) -> Option<EventType> {
        EventType::parse(&self.event_type)
    }

    /// About how many bytes this fact holds in memory (the struct and its strings), which
    /// bounds the engine's cache.
    pub fn memory_bytes(&self) -> usize {
        let owned = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        std::mem::size_of::<Self>()
            + self.event_type.capacity()
            + [
                &self.event_sid,
                &self.task_sid,
                &self.reservation_sid,
                &self.worker_sid,
                &self.worker_name,
                &self.workflow_sid,
                &self.workflow_name,
                &self.task_queue_sid,
                &self.task_queue_name,
                &self.attributes,
                &self.assignment_status,
                &self.description,
                &self.canceled_reason,
                &self.activity_sid,
                &self.activity_name,
                &self.previous_activity_name,
                &self.response_body,
            ]
            .into_iter()
            .map(owned)
            .sum::<usize>()
    }

    pub fn is_assignment(&self) -> bool {
        self.event_type == EventType::Assignment.as_str()
    }
}

/// Where an event type sits in a task's lifecycle when times tie: what causes comes first.
///
/// TaskRouter stamps up to four events of one task with the same millisecond, so time alone
/// cannot order them. The ranks follow cause and effect: a task exists before it enters its
/// workflow and queue, is matched before it is reserved, a reservation exists before its
/// assignment callback, is answered after it, an accept causes the other reservations'
/// rescinds, and a reservation wraps up and completes before the task it belongs to does.
pub fn causal_rank(event: Option<EventType>) -> u8 {
    use EventType::*;
    match event {
        Some(TaskCreated) => 0,
        Some(WorkflowEntered) => 1,
        Some(TaskQueueEntered) => 2,
        Some(TaskQueueMoved) => 3,
        Some(WorkflowTargetMatched) => 4,
        Some(TaskUpdated) => 5,
        Some(ReservationCreated) => 10,
        Some(Assignment) => 11,
        Some(ReservationAccepted) => 20,
        Some(ReservationRescinded) => 21,
        Some(ReservationRejected) => 22,
        Some(ReservationTimeout) => 23,
        Some(ReservationCanceled) => 24,
        Some(ReservationFailed) => 25,
        Some(TaskQueueTimeout) => 30,
        Some(WorkflowTimeout) => 31,
        Some(WorkflowSkipped) => 32,
        Some(TaskTransferInitiated) => 35,
        Some(TaskTransferAttemptFailed) => 36,
        Some(TaskTransferFailed) => 37,
        Some(TaskTransferCanceled) => 38,
        Some(TaskTransferCompleted) => 39,
        Some(ReservationWrapup) => 40,
        Some(TaskWrapup) => 41,
        Some(ReservationCompleted) => 50,
        Some(TaskCompleted) => 51,
        Some(TaskCanceled) => 52,
        Some(TaskDeleted) => 60,
        Some(TaskSystemDeleted) => 61,
        _ => 6,
    }
}

/// Where a fact sits in its task's lifecycle order: placement time, causal rank, then the
/// fact's own identity (type, time, reservation, event Sid) so the order never depends on
/// arrival; the log id breaks only ties between otherwise identical facts. Fields are compared
/// in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SortKey {
    pub placement_ms: i64,
    pub rank: u8,
    pub event_type: String,
    pub occurred_at_ms: i64,
    pub reservation_sid: Option<String>,
    pub event_sid: Option<String>,
    pub event_id: i64,
}

impl SortKey {
    pub fn of(fact: &Fact, placement_ms: i64) -> Self {
        Self {
            placement_ms,
            rank: causal_rank(fact.event()),
            event_type: fact.event_type.clone(),
            occurred_at_ms: fact.occurred_at_ms,
            reservation_sid: fact.reservation_sid.clone(),
            event_sid: fact.event_sid.clone(),
            event_id: fact.event_id,
        }
    }

    /// A key below every key placed at `placement_ms` or later.
    pub fn floor(placement_ms: i64) -> Self {
        Self {
            placement_ms,
            rank: 0,
            event_type: String::new(),
            occurred_at_ms: i64::MIN,
            reservation_sid: None,
            event_sid: None,
            event_id: i64::MIN,
        }
    }
}

/// The time a fact is placed at in its task's order, given the earliest `task.created` of its
/// task and the earliest `reservation.created` of its reservation.
///
/// Two corrections to TaskRouter's clock keep causes before effects: nothing of a task is
/// placed before its `task.created` (a `workflow.target-matched` can be stamped 1 ms earlier),
/// and nothing of a reservation before its `reservation.created`. An assignment callback, which
/// carries no time, is placed right at its `reservation.created` when that is known (its rank
/// then puts it just after).
pub fn placement_ms(fact: &Fact, task_created_ms: Option<i64>, reservation_created_ms: Option<i64>) -> i64 {
    let not_before_task = |t: i64| task_created_ms.map_or(t, |c| c.max(t));
    let own = not_before_task(fact.occurred_at_ms);
    match fact.event() {
        Some(EventType::TaskCreated | EventType::ReservationCreated) => own,
        _ if fact.is_assignment() => reservation_created_ms.map_or(own, not_before_task),
        Some(event) if event.is_reservation() => {
            reservation_created_ms.map_or(own, |s| own.max(not_before_task(s)))
        }
        _ => own,
    }
}

/// The earliest `task.created` among `facts`, and the earliest `reservation.created` of each
/// reservation.
pub fn creation_times<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> (Option<i64>, HashMap<&'a str, i64>) {
    let mut task_created: Option<i64> = None;
    let mut created: HashMap<&str, i64> = HashMap::new();
    for fact in facts {
        match fact.event() {
            Some(EventType::TaskCreated) => {
                task_created = Some(task_created.map_or(fact.occurred_at_ms, |c| c.min(fact.occurred_at_ms)))
            }
            Some(EventType::ReservationCreated) => {
                if let Some(sid) = fact.reservation_sid.as_deref() {
                    let at = created.entry(sid).or_insert(fact.occurred_at_ms);
                    *at = (*at).min(fact.occurred_at_ms);
                }
            }
            _ => {}
        }
    }
    (task_created, created)
}

/// One task's facts in lifecycle order, as indexes into `facts` with each one's [`SortKey`]
/// (the facts of a long task are not copied to be ordered); same-Sid deliveries after the
/// first are left out: they sort next to each other, lowest log id first.
pub fn lifecycle_order_of(facts: &[Fact]) -> Vec<(SortKey, usize)> {
    let (task_created, created) = creation_times(facts);
    let mut keyed: Vec<(SortKey, usize)> = facts
        .iter()
        .enumerate()
        .map(|(i, fact)| {
            let reservation_created =
                fact.reservation_sid.as_deref().and_then(|sid| created.get(sid)).copied();
            (SortKey::of(fact, placement_ms(fact, task_created, reservation_created)), i)
        })
        .collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    keyed.dedup_by(|later, first| later.0.event_sid.is_some() && later.0.event_sid == first.0.event_sid);
    keyed
}
