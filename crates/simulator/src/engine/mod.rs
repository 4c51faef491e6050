//! The discrete-event TaskRouter engine: its state, the virtual clock and timers, and the
//! workspace's setup. The transitions live beside it by concern: simulated people
//! (`behaviour`), what is sent (`emit`), routing (`routing`), reservations' outcomes
//! (`reservations`) and tasks' own transitions (`tasks`).
//!
//! No I/O: each transition appends the callbacks it causes to an outbox, which the runtime
//! delivers over HTTP. Time only moves through [`Engine::advance_to`], so tests can run hours of
//! TaskRouter in milliseconds, and the same seed gives the same SIDs, decisions and events.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use taskrouter_protocol::{AccountSid, ActivitySid, TaskQueueSid, WorkerSid, WorkflowSid, WorkspaceSid};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::ground_truth::{Counters, GroundTruth};
use super::model::*;
use super::sid;
use super::{attributes, expression};

mod behaviour;
mod emit;
mod reservations;
mod routing;
mod tasks;

/// Events kept for the Events REST resource (TaskRouter keeps 30 days; a long benchmark
/// would otherwise grow without bound).
pub const EVENT_RETENTION: usize = 100_000;

/// TaskRouter cancels a task after this many rejections (RESV); it also ends reject loops.
pub const MAX_REJECTIONS: u32 = 1000;

/// A refusal, shaped like a Twilio REST error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl SimError {
    pub fn not_found(what: &str, sid: &str) -> Self {
        Self {
            status: 404,
            code: 20404,
            message: format!("The requested resource {what} {sid} was not found"),
        }
    }

    /// Code 20001 ("Invalid parameter" family) for transitions the current state forbids.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: 400, code: 20001, message: message.into() }
    }
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for SimError {}

/// A callback waiting to be delivered.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub kind: OutboundKind,
    pub url: String,
    pub params: Vec<(String, String)>,
    /// Sent as `I-Twilio-Idempotency-Token`; the same on every retry and duplicate.
    pub idempotency_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundKind {
    Event { event_type: String },
    Assignment { reservation_sid: String },
}

/// An assignment callback's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Accept,
    Reject { activity_sid: Option<String> },
}

/// How simulated people answer a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    Accept,
    Reject,
}

/// Something due at a virtual time. Stale timers (their subject moved on) do nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    ReservationTimeout(String),
    TaskTtl(String),
    WorkflowTimeout(String),
    NextArrival,
    PersonAnswers(String, Decision),
    PersonWrapsUp(String),
    PersonCompletes(String),
    PersonReturns(String),
    CustomerHangsUp(String),
}

/// Simulated people and customers, all driven by the engine's seeded RNG.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub workspace_sid: String,
    pub workflow_sid: String,
    /// New tasks per minute (Poisson arrivals); 0 creates none.
    pub tasks_per_minute: f64,
    /// No arrivals at or after this virtual time.
    pub arrivals_until_ms: i64,
    /// Task attribute templates, picked uniformly.
    pub task_templates: Vec<Value>,
    pub accept_probability: f64,
    pub reject_probability: f64,
    /// Think time before answering, in ms (uniform range).
    pub think_ms: (i64, i64),
    pub talk_ms: (i64, i64),
    pub wrapup_ms: (i64, i64),
    /// Time on break / offline before coming back, in ms.
    pub away_ms: (i64, i64),
    pub hangup_probability: f64,
    pub hangup_after_ms: (i64, i64),
    /// Share of tasks created with a short TTL, and that TTL in seconds.
    pub short_ttl_probability: f64,
    pub short_ttl_seconds: u64,
    pub available_activity_sid: String,
    pub reject_activity_sid: String,
}

/// The whole simulated TaskRouter.
pub struct Engine {
    now_ms: i64,
    rng: SmallRng,
    pub account_sid: String,
    pub workspaces: BTreeMap<String, Workspace>,
    pub activities: BTreeMap<String, Activity>,
    pub workers: BTreeMap<String, Worker>,
    pub queues: BTreeMap<String, TaskQueue>,
    pub workflows: BTreeMap<String, Workflow>,
    pub tasks: BTreeMap<String, Task>,
    pub reservations: BTreeMap<String, Reservation>,
    /// Reservations of each task, in creation order.
    pub task_reservations: BTreeMap<String, Vec<String>>,
    /// Recent events, oldest first; the oldest are forgotten beyond [`EVENT_RETENTION`].
    pub events: VecDeque<EventRecord>,
    /// Tasks waiting for a worker, in routing order: (−priority, creation sequence, SID).
    open_tasks: BTreeSet<(i64, u64, String)>,
    outbox: VecDeque<Outbound>,
    timers: BinaryHeap<Reverse<(i64, u64, Timer)>>,
    timer_sequence: u64,
    task_sequence: u64,
    ground_truth: GroundTruth,
    pub behaviour: Option<Behaviour>,
}

impl Engine {
    /// An empty engine at virtual time `start_ms`, seeded with `seed`.
    pub fn new(seed: u64, start_ms: i64, account_sid: Option<String>) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let account_sid = account_sid.unwrap_or_else(|| sid::generate(&mut rng, AccountSid::PREFIX));
        Self {
            now_ms: start_ms,
            rng,
            account_sid,
            workspaces: BTreeMap::new(),
            activities: BTreeMap::new(),
            workers: BTreeMap::new(),
            queues: BTreeMap::new(),
            workflows: BTreeMap::new(),
            tasks: BTreeMap::new(),
            reservations: BTreeMap::new(),
            task_reservations: BTreeMap::new(),
            events: VecDeque::new(),
            open_tasks: BTreeSet::new(),
            outbox: VecDeque::new(),
            timers: BinaryHeap::new(),
            timer_sequence: 0,
            task_sequence: 0,
            ground_truth: GroundTruth::default(),
            behaviour: None,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Moves the clock forward to `at_ms` without firing timers (the real-time runtime's wall
    /// clock); never backwards.
    pub fn set_now(&mut self, at_ms: i64) {
        self.now_ms = self.now_ms.max(at_ms);
    }

    pub fn new_sid(&mut self, prefix: &str) -> String {
        sid::generate(&mut self.rng, prefix)
    }

    /// A fresh `I-Twilio-Idempotency-Token`: the account SID and a random suffix.
    fn idempotency_token(&mut self) -> String {
        let suffix = self.new_sid("IT");
        format!("{}-{}", self.account_sid, &suffix[2..])
    }

    // ---- building a workspace -------------------------------------------------------------

    pub fn add_workspace(&mut self, name: &str, event_callback_url: Option<String>) -> String {
        let sid = self.new_sid(WorkspaceSid::PREFIX);
        self.workspaces.insert(
            sid.clone(),
            Workspace {
                sid: sid.clone(),
                friendly_name: name.into(),
                event_callback_url,
                events_filter: None,
                default_activity_sid: String::new(),
                timeout_activity_sid: String::new(),
                date_created_ms: self.now_ms,
            },
        );
        sid
    }

    /// Adds an activity; the first one becomes the default and timeout activity until set.
    pub fn add_activity(&mut self, workspace_sid: &str, name: &str, available: bool) -> String {
        let sid = self.new_sid(ActivitySid::PREFIX);
        self.activities.insert(
            sid.clone(),
            Activity {
                sid: sid.clone(),
                workspace_sid: workspace_sid.into(),
                friendly_name: name.into(),
                available,
                date_created_ms: self.now_ms,
            },
        );
        if let Some(workspace) = self.workspaces.get_mut(workspace_sid) {
            if workspace.default_activity_sid.is_empty() {
                workspace.default_activity_sid = sid.clone();
                workspace.timeout_activity_sid = sid.clone();
            }
        }
        sid
    }

    pub fn set_timeout_activity(&mut self, workspace_sid: &str, activity_sid: &str) {
        if let Some(workspace) = self.workspaces.get_mut(workspace_sid) {
            workspace.timeout_activity_sid = activity_sid.into();
        }
    }

    pub fn add_worker(
        &mut self,
        workspace_sid: &str,
        name: &str,
        attributes: Value,
        activity_sid: &str,
    ) -> String {
        let sid = self.new_sid(WorkerSid::PREFIX);
        self.workers.insert(
            sid.clone(),
            Worker {
                sid: sid.clone(),
                workspace_sid: workspace_sid.into(),
                friendly_name: name.into(),
                attributes,
                activity_sid: activity_sid.into(),
                activity_changed_ms: self.now_ms,
                current_reservation: None,
                date_created_ms: self.now_ms,
                date_updated_ms: self.now_ms,
                version: 0,
            },
        );
        sid
    }

    pub fn add_queue(
        &mut self,
        workspace_sid: &str,
        name: &str,
        target_workers: &str,
        max_reserved_workers: u32,
        assignment_activity_sid: Option<String>,
    ) -> String {
        let sid = self.new_sid(TaskQueueSid::PREFIX);
        self.queues.insert(
            sid.clone(),
            TaskQueue {
                sid: sid.clone(),
                workspace_sid: workspace_sid.into(),
                friendly_name: name.into(),
                target_workers: target_workers.into(),
                max_reserved_workers: max_reserved_workers.max(1),
                assignment_activity_sid,
                date_created_ms: self.now_ms,
            },
        );
        sid
    }

    pub fn add_workflow(
        &mut self,
        workspace_sid: &str,
        name: &str,
        assignment_callback_url: Option<String>,
        task_reservation_timeout: u64,
        filters: Vec<WorkflowFilter>,
        default_queue_sid: &str,
    ) -> String {
        let sid = self.new_sid(WorkflowSid::PREFIX);
        self.workflows.insert(
            sid.clone(),
            Workflow {
                sid: sid.clone(),
                workspace_sid: workspace_sid.into(),
                friendly_name: name.into(),
                assignment_callback_url,
                fallback_assignment_callback_url: None,
                task_reservation_timeout,
                filters,
                default_queue_sid: default_queue_sid.into(),
                date_created_ms: self.now_ms,
            },
        );
        sid
    }

    /// Starts the simulated people and customers.
    pub fn start_behaviour(&mut self, behaviour: Behaviour) {
        let starts = behaviour.tasks_per_minute > 0.0;
        self.behaviour = Some(behaviour);
        if starts {
            let first = self.now_ms + self.interarrival_ms();
            self.schedule(first, Timer::NextArrival);
        }
    }

    // ---- reading ----------------------------------------------------------------------------

    /// The ground truth so far, with each task's current status.
    pub fn ground_truth(&self) -> GroundTruth {
        let mut truth = self.ground_truth.clone();
        truth.task_status =
            self.tasks.values().map(|t| (t.sid.clone(), t.status.as_str().to_string())).collect();
        truth
    }

    pub fn take_outbox(&mut self) -> Option<Outbound> {
        self.outbox.pop_front()
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// When the next timer is due.
    pub fn next_timer_at(&self) -> Option<i64> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn workspace(&self, sid: &str) -> Result<&Workspace, SimError> {
        self.workspaces.get(sid).ok_or_else(|| SimError::not_found("Workspace", sid))
    }

    pub fn task_in(&self, workspace_sid: &str, sid: &str) -> Result<&Task, SimError> {
        self.tasks
            .get(sid)
            .filter(|t| t.workspace_sid == workspace_sid)
            .ok_or_else(|| SimError::not_found("Task", sid))
    }

    pub fn reservation_of(
        &self,
        workspace_sid: &str,
        task_sid: &str,
        sid: &str,
    ) -> Result<&Reservation, SimError> {
        self.reservations
            .get(sid)
            .filter(|r| r.workspace_sid == workspace_sid && r.task_sid == task_sid)
            .ok_or_else(|| SimError::not_found("Reservation", sid))
    }

    pub fn worker_in(&self, workspace_sid: &str, sid: &str) -> Result<&Worker, SimError> {
        self.workers
            .get(sid)
            .filter(|w| w.workspace_sid == workspace_sid)
            .ok_or_else(|| SimError::not_found("Worker", sid))
    }

    pub fn activity_name(&self, sid: &str) -> String {
        self.activities.get(sid).map(|a| a.friendly_name.clone()).unwrap_or_default()
    }

    fn activity_in(&self, workspace_sid: &str, activity_sid: &str) -> bool {
        self.activities.get(activity_sid).is_some_and(|a| a.workspace_sid == workspace_sid)
    }

    fn activity_available(&self, sid: &str) -> bool {
        self.activities.get(sid).is_some_and(|a| a.available)
    }

    // ---- time -------------------------------------------------------------------------------

    fn schedule(&mut self, at_ms: i64, timer: Timer) {
        self.timer_sequence += 1;
        self.timers.push(Reverse((at_ms, self.timer_sequence, timer)));
    }

    /// Fires every timer due at or before `at_ms`, in time order, then sets the clock there.
    pub fn advance_to(&mut self, at_ms: i64) {
        while let Some(Reverse((due, _, _))) = self.timers.peek() {
            if *due > at_ms {
                break;
            }
            let Some(Reverse((due, _, timer))) = self.timers.pop() else { break };
            self.now_ms = self.now_ms.max(due);
            self.fire(timer);
        }
        self.now_ms = self.now_ms.max(at_ms);
    }

    /// Fires timers until none is left or the next is after `until_ms`.
    pub fn run_until(&mut self, until_ms: i64) {
        while let Some(at) = self.next_timer_at().filter(|at| *at <= until_ms) {
            self.advance_to(at);
        }
        self.now_ms = self.now_ms.max(until_ms);
    }

    fn fire(&mut self, timer: Timer) {
        // Timers act on whatever state they find; a refusal means the subject moved on.
        let _ = match timer {
            Timer::ReservationTimeout(reservation) => self.time_out_reservation(&reservation),
            Timer::TaskTtl(task) => self.cancel_open_task(&task, CancelCause::Ttl),
            Timer::WorkflowTimeout(task) => self.cancel_open_task(&task, CancelCause::WorkflowTimeout),
            Timer::NextArrival => self.arrive(),
            Timer::PersonAnswers(reservation, decision) => {
                let activity = self.behaviour.as_ref().map(|b| b.reject_activity_sid.clone());
                match decision {
                    Decision::Accept => self.accept_reservation(&reservation),
                    Decision::Reject => self.reject_reservation(&reservation, activity),
                }
            }
            Timer::PersonWrapsUp(task) => self.set_task_status(&task, TaskStatus::Wrapping, None),
            Timer::PersonCompletes(task) => {
                self.set_task_status(&task, TaskStatus::Completed, Some("Task completed by agent".into()))
            }
            Timer::PersonReturns(worker) => self.person_returns(&worker),
            Timer::CustomerHangsUp(task) => self.cancel_open_task(&task, CancelCause::Api("hangup".into())),
        };
    }
}

enum CancelCause {
    Api(String),
    Ttl,
    WorkflowTimeout,
}

/// The fields of a Task update request; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct TaskUpdate {
    pub assignment_status: Option<String>,
    pub reason: Option<String>,
    pub attributes: Option<String>,
    pub priority: Option<i64>,
}

#[cfg(test)]
mod tests;
