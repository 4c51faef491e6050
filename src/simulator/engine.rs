//! The discrete-event TaskRouter engine: state, a virtual clock, timers, routing, and every
//! lifecycle transition with the events it emits.
//!
//! No I/O: each transition appends the callbacks it causes to an outbox, which the runtime
//! delivers over HTTP. Time only moves through [`Engine::advance_to`], so tests can run hours of
//! TaskRouter in milliseconds, and the same seed gives the same SIDs, decisions and events.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::ground_truth::{Counters, GroundTruth};
use super::model::*;
use super::sid;
use super::{attributes, expression};

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
        let account_sid = account_sid.unwrap_or_else(|| sid::generate(&mut rng, "AC"));
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
        let sid = self.new_sid("WS");
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
        let sid = self.new_sid("WA");
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
        let sid = self.new_sid("WK");
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
        let sid = self.new_sid("WQ");
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
        let sid = self.new_sid("WW");
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

    fn uniform(&mut self, (low, high): (i64, i64)) -> i64 {
        if high <= low {
            low
        } else {
            self.rng.gen_range(low..=high)
        }
    }

    fn interarrival_ms(&mut self) -> i64 {
        let rate = self.behaviour.as_ref().map_or(0.0, |b| b.tasks_per_minute);
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        ((-u.ln() / rate) * 60_000.0).round().max(1.0) as i64
    }

    fn arrive(&mut self) -> Result<(), SimError> {
        let Some(behaviour) = self.behaviour.clone() else { return Ok(()) };
        if self.now_ms >= behaviour.arrivals_until_ms {
            return Ok(());
        }
        let next = self.now_ms + self.interarrival_ms();
        self.schedule(next, Timer::NextArrival);
        let template = if behaviour.task_templates.is_empty() {
            serde_json::json!({})
        } else {
            let i = self.rng.gen_range(0..behaviour.task_templates.len());
            attributes::with_origin(&behaviour.task_templates[i], &mut self.rng, &self.account_sid)
        };
        let ttl = if self.rng.gen_bool(behaviour.short_ttl_probability.clamp(0.0, 1.0)) {
            behaviour.short_ttl_seconds
        } else {
            3600
        };
        let task = self.create_task(
            &behaviour.workspace_sid,
            &behaviour.workflow_sid,
            &template.to_string(),
            0,
            Some(ttl),
        )?;
        if self.rng.gen_bool(behaviour.hangup_probability.clamp(0.0, 1.0)) {
            let at = self.now_ms + self.uniform(behaviour.hangup_after_ms);
            self.schedule(at, Timer::CustomerHangsUp(task));
        }
        Ok(())
    }

    fn person_returns(&mut self, worker_sid: &str) -> Result<(), SimError> {
        let Some(available) = self.behaviour.as_ref().map(|b| b.available_activity_sid.clone()) else {
            return Ok(());
        };
        let Some(worker) = self.workers.get(worker_sid) else { return Ok(()) };
        if worker.current_reservation.is_some() || self.activity_available(&worker.activity_sid) {
            return Ok(());
        }
        let workspace = worker.workspace_sid.clone();
        self.update_worker_activity(&workspace, worker_sid, &available)
    }

    // ---- events -----------------------------------------------------------------------------

    fn task_fields(&self, task_sid: &str, out: &mut Vec<(String, String)>) {
        let Some(task) = self.tasks.get(task_sid) else { return };
        let secs = |ms: i64| (ms / 1000).to_string();
        let mut push = |n: &str, v: String| out.push((n.to_string(), v));
        push("TaskSid", task.sid.clone());
        push("TaskAttributes", task.attributes.clone());
        push("TaskAge", ((self.now_ms - task.date_created_ms).max(0) / 1000).to_string());
        push("TaskPriority", task.priority.to_string());
        push("TaskAssignmentStatus", task.status.as_str().into());
        push("TaskVersion", task.version.to_string());
        push("TaskDateCreated", secs(task.date_created_ms));
        push("TaskChannelUniqueName", "default".into());
        if let Some(queue) = self.queues.get(&task.queue_sid) {
            push("TaskQueueSid", queue.sid.clone());
            push("TaskQueueName", queue.friendly_name.clone());
            push("TaskQueueTargetExpression", queue.target_workers.clone());
            push("TaskQueueEnteredDate", secs(task.queue_entered_ms));
        }
        if let Some(workflow) = self.workflows.get(&task.workflow_sid) {
            push("WorkflowSid", workflow.sid.clone());
            push("WorkflowName", workflow.friendly_name.clone());
        }
    }

    fn worker_fields(&self, worker_sid: &str, out: &mut Vec<(String, String)>) {
        let Some(worker) = self.workers.get(worker_sid) else { return };
        out.push(("WorkerSid".into(), worker.sid.clone()));
        out.push(("WorkerName".into(), worker.friendly_name.clone()));
        out.push(("WorkerAttributes".into(), worker.attributes.to_string()));
        out.push(("WorkerActivitySid".into(), worker.activity_sid.clone()));
        out.push(("WorkerActivityName".into(), self.activity_name(&worker.activity_sid)));
        out.push(("WorkerVersion".into(), worker.version.to_string()));
    }

    /// Records an event and queues its callback when the workspace has an EventCallbackUrl.
    fn emit(
        &mut self,
        workspace_sid: &str,
        event_type: &str,
        resource: (&str, &str),
        description: String,
        fields: Vec<(String, String)>,
    ) {
        let Some(workspace) = self.workspaces.get(workspace_sid).cloned() else { return };
        let sid = self.new_sid("EV");
        let token = self.idempotency_token();
        let mut params: Vec<(String, String)> = vec![
            ("Sid".into(), sid.clone()),
            ("EventType".into(), event_type.into()),
            ("AccountSid".into(), self.account_sid.clone()),
            ("WorkspaceSid".into(), workspace.sid.clone()),
            ("WorkspaceName".into(), workspace.friendly_name.clone()),
            ("EventDescription".into(), description.clone()),
            ("ResourceType".into(), resource.0.into()),
            ("ResourceSid".into(), resource.1.into()),
            ("Timestamp".into(), (self.now_ms / 1000).to_string()),
            ("TimestampMs".into(), self.now_ms.to_string()),
        ];
        for (name, value) in fields {
            if !params.iter().any(|(n, _)| *n == name) {
                params.push((name, value));
            }
        }
        *self.ground_truth.events_emitted.entry(event_type.to_string()).or_default() += 1;
        let filtered_out = workspace
            .events_filter
            .as_deref()
            .is_some_and(|filter| !filter.split(',').any(|t| t.trim() == event_type));
        if let (Some(url), false) = (workspace.event_callback_url, filtered_out) {
            self.outbox.push_back(Outbound {
                kind: OutboundKind::Event { event_type: event_type.into() },
                url,
                params: params.clone(),
                idempotency_token: token,
            });
        }
        if self.events.len() >= EVENT_RETENTION {
            self.events.pop_front();
        }
        self.events.push_back(EventRecord {
            sid,
            workspace_sid: workspace.sid,
            event_type: event_type.into(),
            description,
            resource_type: resource.0.into(),
            resource_sid: resource.1.into(),
            date_ms: self.now_ms,
            params,
        });
    }

    fn emit_task_event(
        &mut self,
        task_sid: &str,
        event_type: &str,
        description: String,
        extra: Vec<(String, String)>,
    ) {
        let Some(workspace) = self.tasks.get(task_sid).map(|t| t.workspace_sid.clone()) else { return };
        let mut fields = Vec::new();
        self.task_fields(task_sid, &mut fields);
        fields.extend(extra);
        self.emit(&workspace, event_type, ("task", task_sid), description, fields);
    }

    fn emit_reservation_event(&mut self, reservation_sid: &str, event_type: &str, verb: &str) {
        let Some(reservation) = self.reservations.get(reservation_sid).cloned() else { return };
        let mut fields = vec![("ReservationSid".to_string(), reservation.sid.clone())];
        self.task_fields(&reservation.task_sid, &mut fields);
        self.worker_fields(&reservation.worker_sid, &mut fields);
        fields.push(("ReservationVersion".into(), reservation.version.to_string()));
        self.emit(
            &reservation.workspace_sid,
            event_type,
            ("reservation", reservation_sid),
            format!("Reservation {reservation_sid} {verb}"),
            fields,
        );
    }

    // ---- counting ---------------------------------------------------------------------------

    fn count(&mut self, task_sid: &str, worker_sid: Option<&str>, bump: impl Fn(&mut Counters)) {
        let (queue, workflow) = self
            .tasks
            .get(task_sid)
            .map(|t| (Some(t.queue_sid.clone()), Some(t.workflow_sid.clone())))
            .unwrap_or((None, None));
        self.ground_truth.count(queue.as_deref(), workflow.as_deref(), worker_sid, bump);
    }

    // ---- transitions ------------------------------------------------------------------------

    /// Creates a task and routes it: task.created, task-queue.entered, workflow.entered and
    /// workflow.target-matched share one timestamp, in the order real callbacks arrive.
    pub fn create_task(
        &mut self,
        workspace_sid: &str,
        workflow_sid: &str,
        attributes: &str,
        priority: i64,
        timeout: Option<u64>,
    ) -> Result<String, SimError> {
        self.workspace(workspace_sid)?;
        let workflow = self
            .workflows
            .get(workflow_sid)
            .filter(|w| w.workspace_sid == workspace_sid)
            .cloned()
            .ok_or_else(|| SimError::not_found("Workflow", workflow_sid))?;
        let parsed: Value = serde_json::from_str(attributes)
            .map_err(|_| SimError::bad_request("Attributes must be a JSON object"))?;
        if !parsed.is_object() {
            return Err(SimError::bad_request("Attributes must be a JSON object"));
        }
        let timeout = timeout.unwrap_or(86_400);
        if !(1..=1_209_600).contains(&timeout) {
            return Err(SimError::bad_request("Timeout must be between 1 and 1209600"));
        }
        let matched = workflow.filters.iter().find(|f| expression::matches(&f.expression, &parsed)).cloned();
        let queue_sid = matched.as_ref().map_or(workflow.default_queue_sid.clone(), |f| f.queue_sid.clone());
        let sid = self.new_sid("WT");
        self.task_sequence += 1;
        self.tasks.insert(
            sid.clone(),
            Task {
                sid: sid.clone(),
                workspace_sid: workspace_sid.into(),
                workflow_sid: workflow_sid.into(),
                queue_sid: queue_sid.clone(),
                filter_name: matched.as_ref().map(|f| f.friendly_name.clone()),
                filter_timeout: matched.as_ref().and_then(|f| f.timeout),
                attributes: parsed.to_string(),
                priority,
                timeout,
                status: TaskStatus::Pending,
                reason: None,
                date_created_ms: self.now_ms,
                date_updated_ms: self.now_ms,
                queue_entered_ms: self.now_ms,
                version: 0,
                sequence: self.task_sequence,
                rejections: 0,
            },
        );
        self.open_tasks.insert((-priority, self.task_sequence, sid.clone()));
        self.count(&sid, None, |c| c.tasks_created += 1);
        let queue_name = self.queues.get(&queue_sid).map(|q| q.friendly_name.clone()).unwrap_or_default();
        self.emit_task_event(&sid, "task.created", format!("Task {sid} created"), vec![]);
        self.emit_task_event(
            &sid,
            "task-queue.entered",
            format!("Task {sid} entered TaskQueue {queue_name}"),
            vec![],
        );
        self.emit_task_event(
            &sid,
            "workflow.entered",
            format!("Task {sid} entered Workflow {}", workflow.friendly_name),
            vec![],
        );
        let filter_fields = matched
            .as_ref()
            .map(|f| {
                vec![
                    ("WorkflowFilterName".to_string(), f.friendly_name.clone()),
                    ("WorkflowFilterExpression".to_string(), f.expression.clone()),
                ]
            })
            .unwrap_or_default();
        self.emit_task_event(
            &sid,
            "workflow.target-matched",
            format!("Task {sid} matched a workflow target"),
            filter_fields,
        );
        self.schedule(self.now_ms + timeout as i64 * 1000, Timer::TaskTtl(sid.clone()));
        if let Some(seconds) = matched.and_then(|f| f.timeout) {
            self.schedule(self.now_ms + seconds as i64 * 1000, Timer::WorkflowTimeout(sid.clone()));
        }
        self.assign();
        Ok(sid)
    }

    /// Reserves free, eligible, available workers for open tasks: highest priority first, then
    /// oldest; the longest-idle worker first.
    fn assign(&mut self) {
        // Free, available workers, longest idle first; usually few, so routing stays cheap.
        let mut free: Vec<(i64, String)> = self
            .workers
            .values()
            .filter(|w| w.current_reservation.is_none() && self.activity_available(&w.activity_sid))
            .map(|w| (w.activity_changed_ms, w.sid.clone()))
            .collect();
        if free.is_empty() {
            return;
        }
        free.sort();
        let open: Vec<String> = self.open_tasks.iter().map(|(_, _, sid)| sid.clone()).collect();
        for task_sid in open {
            if free.is_empty() {
                break;
            }
            let task = &self.tasks[&task_sid];
            let Some(queue) = self.queues.get(&task.queue_sid).cloned() else { continue };
            let pending = self.pending_reservations(&task_sid).len() as u32;
            let slots = queue.max_reserved_workers.saturating_sub(pending) as usize;
            if slots == 0 {
                continue;
            }
            let Ok(target) = expression::parse(&queue.target_workers) else { continue };
            let chosen: Vec<String> = free
                .iter()
                .filter(|(_, sid)| {
                    let worker = &self.workers[sid];
                    worker.workspace_sid == task.workspace_sid && target.matches(&worker.attributes)
                })
                .take(slots)
                .map(|(_, sid)| sid.clone())
                .collect();
            free.retain(|(_, sid)| !chosen.contains(sid));
            for worker_sid in chosen {
                self.reserve(&task_sid, &worker_sid);
            }
        }
    }

    /// Takes a task out of routing (accepted or canceled).
    fn close_task(&mut self, task_sid: &str) {
        if let Some(task) = self.tasks.get(task_sid) {
            self.open_tasks.remove(&(-task.priority, task.sequence, task.sid.clone()));
        }
    }

    fn pending_reservations(&self, task_sid: &str) -> Vec<&Reservation> {
        self.task_reservations
            .get(task_sid)
            .map(|sids| {
                sids.iter()
                    .filter_map(|s| self.reservations.get(s))
                    .filter(|r| r.status == ReservationStatus::Pending)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn reserve(&mut self, task_sid: &str, worker_sid: &str) {
        let sid = self.new_sid("WR");
        let task = self.tasks.get_mut(task_sid).expect("open task");
        task.status = TaskStatus::Reserved;
        task.version += 1;
        task.date_updated_ms = self.now_ms;
        let workspace_sid = task.workspace_sid.clone();
        let workflow_sid = task.workflow_sid.clone();
        self.reservations.insert(
            sid.clone(),
            Reservation {
                sid: sid.clone(),
                workspace_sid: workspace_sid.clone(),
                task_sid: task_sid.into(),
                worker_sid: worker_sid.into(),
                status: ReservationStatus::Pending,
                date_created_ms: self.now_ms,
                date_updated_ms: self.now_ms,
                version: 0,
            },
        );
        self.task_reservations.entry(task_sid.into()).or_default().push(sid.clone());
        if let Some(worker) = self.workers.get_mut(worker_sid) {
            worker.current_reservation = Some(sid.clone());
        }
        self.count(task_sid, Some(worker_sid), |c| c.reservations_created += 1);
        self.emit_reservation_event(&sid, "reservation.created", "created");
        let workflow = self.workflows.get(&workflow_sid).cloned();
        if let Some(url) = workflow.as_ref().and_then(|w| w.assignment_callback_url.clone()) {
            let params = self.assignment_params(&sid);
            let token = self.idempotency_token();
            self.outbox.push_back(Outbound {
                kind: OutboundKind::Assignment { reservation_sid: sid.clone() },
                url,
                params,
                idempotency_token: token,
            });
        }
        let timeout = workflow.map_or(120, |w| w.task_reservation_timeout);
        self.schedule(self.now_ms + timeout as i64 * 1000, Timer::ReservationTimeout(sid.clone()));
        if let Some(behaviour) = self.behaviour.clone() {
            let roll: f64 = self.rng.gen();
            let decision = if roll < behaviour.accept_probability {
                Some(Decision::Accept)
            } else if roll < behaviour.accept_probability + behaviour.reject_probability {
                Some(Decision::Reject)
            } else {
                None // never answers: the reservation times out
            };
            if let Some(decision) = decision {
                let at = self.now_ms + self.uniform(behaviour.think_ms);
                self.schedule(at, Timer::PersonAnswers(sid, decision));
            }
        }
    }

    /// Exactly the fields real assignment callbacks carry.
    fn assignment_params(&self, reservation_sid: &str) -> Vec<(String, String)> {
        let reservation = &self.reservations[reservation_sid];
        let task = &self.tasks[&reservation.task_sid];
        let worker = &self.workers[&reservation.worker_sid];
        [
            ("AccountSid", self.account_sid.clone()),
            ("WorkspaceSid", task.workspace_sid.clone()),
            ("WorkflowSid", task.workflow_sid.clone()),
            ("TaskQueueSid", task.queue_sid.clone()),
            ("TaskSid", task.sid.clone()),
            ("ReservationSid", reservation.sid.clone()),
            ("WorkerSid", worker.sid.clone()),
            ("TaskAge", ((self.now_ms - task.date_created_ms).max(0) / 1000).to_string()),
            ("TaskPriority", task.priority.to_string()),
            ("TaskAttributes", task.attributes.clone()),
            ("WorkerAttributes", worker.attributes.to_string()),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
    }

    fn pending_reservation(&self, reservation_sid: &str, to: &str) -> Result<Reservation, SimError> {
        let reservation = self
            .reservations
            .get(reservation_sid)
            .ok_or_else(|| SimError::not_found("Reservation", reservation_sid))?;
        if reservation.status != ReservationStatus::Pending {
            return Err(SimError::bad_request(format!(
                "Reservation {reservation_sid} not in expected state [pending] and cannot be updated to [{to}]"
            )));
        }
        Ok(reservation.clone())
    }

    fn set_reservation_status(&mut self, reservation_sid: &str, status: ReservationStatus) {
        if let Some(reservation) = self.reservations.get_mut(reservation_sid) {
            reservation.status = status;
            reservation.version += 1;
            reservation.date_updated_ms = self.now_ms;
        }
    }

    fn free_worker(&mut self, worker_sid: &str, reservation_sid: &str) {
        if let Some(worker) = self.workers.get_mut(worker_sid) {
            if worker.current_reservation.as_deref() == Some(reservation_sid) {
                worker.current_reservation = None;
            }
        }
    }

    /// After a reservation ends unaccepted: the task is pending again once none is left.
    fn reopen_task_if_unreserved(&mut self, task_sid: &str) {
        let none_pending = self.pending_reservations(task_sid).is_empty();
        if let Some(task) = self.tasks.get_mut(task_sid) {
            if task.status == TaskStatus::Reserved && none_pending {
                task.status = TaskStatus::Pending;
                task.version += 1;
                task.date_updated_ms = self.now_ms;
            }
        }
    }

    /// Moves a worker to `activity_sid`, emitting `worker.activity.update` with the time spent
    /// in the previous activity.
    fn move_worker(&mut self, worker_sid: &str, activity_sid: &str) {
        let now = self.now_ms;
        let Some(worker) = self.workers.get_mut(worker_sid) else { return };
        if worker.activity_sid == activity_sid {
            return;
        }
        let previous = std::mem::replace(&mut worker.activity_sid, activity_sid.to_string());
        let spent_ms = (now - worker.activity_changed_ms).max(0);
        worker.activity_changed_ms = now;
        worker.version += 1;
        worker.date_updated_ms = now;
        let workspace = worker.workspace_sid.clone();
        let name = worker.friendly_name.clone();
        let mut fields = Vec::new();
        self.worker_fields(worker_sid, &mut fields);
        fields.push(("WorkerPreviousActivitySid".into(), previous.clone()));
        fields.push(("WorkerPreviousActivityName".into(), self.activity_name(&previous)));
        fields.push(("WorkerTimeInPreviousActivity".into(), (spent_ms / 1000).to_string()));
        fields.push(("WorkerTimeInPreviousActivityMs".into(), spent_ms.to_string()));
        let description = format!("Worker {name} updated to {} Activity", self.activity_name(activity_sid));
        self.emit(&workspace, "worker.activity.update", ("worker", worker_sid), description, fields);
    }

    /// Applies an assignment callback's instruction.
    pub fn apply_instruction(
        &mut self,
        reservation_sid: &str,
        instruction: Instruction,
    ) -> Result<(), SimError> {
        match instruction {
            Instruction::Accept => self.accept_reservation(reservation_sid),
            Instruction::Reject { activity_sid } => self.reject_reservation(reservation_sid, activity_sid),
        }
    }

    pub fn accept_reservation(&mut self, reservation_sid: &str) -> Result<(), SimError> {
        let reservation = self.pending_reservation(reservation_sid, "accepted")?;
        let task_sid = reservation.task_sid.clone();
        // The other reservations go first, while the task is still reserved (as captured).
        let losers: Vec<Reservation> = self
            .pending_reservations(&task_sid)
            .into_iter()
            .filter(|r| r.sid != reservation_sid)
            .cloned()
            .collect();
        for loser in losers {
            self.set_reservation_status(&loser.sid, ReservationStatus::Rescinded);
            self.free_worker(&loser.worker_sid, &loser.sid);
            self.count(&task_sid, Some(&loser.worker_sid), |c| c.reservations_rescinded += 1);
            self.emit_reservation_event(&loser.sid, "reservation.rescinded", "rescinded");
        }
        self.set_reservation_status(reservation_sid, ReservationStatus::Accepted);
        self.close_task(&task_sid);
        if let Some(task) = self.tasks.get_mut(&task_sid) {
            task.status = TaskStatus::Assigned;
            task.version += 1;
            task.date_updated_ms = self.now_ms;
        }
        self.count(&task_sid, Some(&reservation.worker_sid), |c| c.reservations_accepted += 1);
        self.emit_reservation_event(reservation_sid, "reservation.accepted", "accepted");
        let busy = self
            .tasks
            .get(&task_sid)
            .and_then(|t| self.queues.get(&t.queue_sid))
            .and_then(|q| q.assignment_activity_sid.clone());
        if let Some(busy) = busy {
            self.move_worker(&reservation.worker_sid, &busy);
        }
        if let Some(behaviour) = self.behaviour.clone() {
            let at = self.now_ms + self.uniform(behaviour.talk_ms);
            self.schedule(at, Timer::PersonWrapsUp(task_sid));
        }
        self.assign();
        Ok(())
    }

    /// Rejects; the worker moves to `activity_sid` when given (else keeps its activity).
    pub fn reject_reservation(
        &mut self,
        reservation_sid: &str,
        activity_sid: Option<String>,
    ) -> Result<(), SimError> {
        let reservation = self.pending_reservation(reservation_sid, "rejected")?;
        if let Some(activity) = &activity_sid {
            if !self.activity_in(&reservation.workspace_sid, activity) {
                return Err(SimError::bad_request(format!(
                    "Activity {activity} does not exist in this workspace"
                )));
            }
        }
        self.set_reservation_status(reservation_sid, ReservationStatus::Rejected);
        self.free_worker(&reservation.worker_sid, reservation_sid);
        self.reopen_task_if_unreserved(&reservation.task_sid);
        self.count(&reservation.task_sid, Some(&reservation.worker_sid), |c| c.reservations_rejected += 1);
        self.emit_reservation_event(reservation_sid, "reservation.rejected", "rejected");
        if let Some(activity) = activity_sid {
            self.move_worker(&reservation.worker_sid, &activity);
            self.schedule_return(&reservation.worker_sid);
        }
        let rejections = self.tasks.get_mut(&reservation.task_sid).map_or(0, |task| {
            task.rejections += 1;
            task.rejections
        });
        if rejections >= MAX_REJECTIONS {
            let reason = format!("Task rejected {MAX_REJECTIONS} times");
            return self.cancel_open_task(&reservation.task_sid, CancelCause::Api(reason));
        }
        self.assign();
        Ok(())
    }

    fn schedule_return(&mut self, worker_sid: &str) {
        if let Some(behaviour) = self.behaviour.clone() {
            let at = self.now_ms + self.uniform(behaviour.away_ms);
            self.schedule(at, Timer::PersonReturns(worker_sid.into()));
        }
    }

    fn time_out_reservation(&mut self, reservation_sid: &str) -> Result<(), SimError> {
        let reservation = self.pending_reservation(reservation_sid, "timeout")?;
        self.set_reservation_status(reservation_sid, ReservationStatus::Timeout);
        self.free_worker(&reservation.worker_sid, reservation_sid);
        self.reopen_task_if_unreserved(&reservation.task_sid);
        self.count(&reservation.task_sid, Some(&reservation.worker_sid), |c| c.reservations_timed_out += 1);
        self.emit_reservation_event(reservation_sid, "reservation.timeout", "timed out");
        let timeout_activity =
            self.workspaces.get(&reservation.workspace_sid).map(|w| w.timeout_activity_sid.clone());
        if let Some(activity) = timeout_activity {
            self.move_worker(&reservation.worker_sid, &activity);
        }
        self.schedule_return(&reservation.worker_sid);
        self.assign();
        Ok(())
    }

    fn cancel_open_task(&mut self, task_sid: &str, cause: CancelCause) -> Result<(), SimError> {
        let task = self.tasks.get(task_sid).ok_or_else(|| SimError::not_found("Task", task_sid))?;
        if !task.status.is_open() {
            return Err(SimError::bad_request(format!(
                "Cannot cancel task {task_sid} in workspace {} for account {} because it is not pending or reserved.",
                task.workspace_sid, self.account_sid
            )));
        }
        let workflow_name =
            self.workflows.get(&task.workflow_sid).map(|w| w.friendly_name.clone()).unwrap_or_default();
        let (reason, description) = match cause {
            CancelCause::Api(reason) => (reason, format!("Task {task_sid} canceled")),
            CancelCause::Ttl => ("Task TTL Exceeded".to_string(), "Task TTL Exceeded".to_string()),
            CancelCause::WorkflowTimeout => {
                self.emit_task_event(
                    task_sid,
                    "workflow.timeout",
                    format!("Task {task_sid} timed out of Workflow {workflow_name}"),
                    vec![],
                );
                ("Workflow Timeout".to_string(), format!("Task {task_sid} canceled"))
            }
        };
        self.close_task(task_sid);
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.status = TaskStatus::Canceled;
            task.reason = Some(reason.clone());
            task.version += 1;
            task.date_updated_ms = self.now_ms;
        }
        let pending: Vec<Reservation> = self.pending_reservations(task_sid).into_iter().cloned().collect();
        for reservation in pending {
            self.set_reservation_status(&reservation.sid, ReservationStatus::Canceled);
            self.free_worker(&reservation.worker_sid, &reservation.sid);
            self.count(task_sid, Some(&reservation.worker_sid), |c| c.reservations_canceled += 1);
            self.emit_reservation_event(&reservation.sid, "reservation.canceled", "canceled");
        }
        self.count(task_sid, None, |c| c.tasks_canceled += 1);
        self.emit_task_event(
            task_sid,
            "task.canceled",
            description,
            vec![("TaskCanceledReason".into(), reason.clone()), ("Reason".into(), reason)],
        );
        self.assign();
        Ok(())
    }

    /// The `AssignmentStatus` update of the Task resource: canceled, wrapping or completed.
    fn set_task_status(
        &mut self,
        task_sid: &str,
        to: TaskStatus,
        reason: Option<String>,
    ) -> Result<(), SimError> {
        let task = self.tasks.get(task_sid).ok_or_else(|| SimError::not_found("Task", task_sid))?.clone();
        match to {
            TaskStatus::Canceled => {
                return self.cancel_open_task(
                    task_sid,
                    CancelCause::Api(reason.unwrap_or_else(|| "canceled".into())),
                )
            }
            TaskStatus::Wrapping if task.status == TaskStatus::Assigned => {}
            TaskStatus::Completed if matches!(task.status, TaskStatus::Assigned | TaskStatus::Wrapping) => {}
            _ => {
                return Err(SimError::bad_request(format!(
                    "Task {task_sid} is {} and cannot be updated to [{}]",
                    task.status.as_str(),
                    to.as_str()
                )))
            }
        }
        let accepted = self
            .task_reservations
            .get(task_sid)
            .and_then(|sids| {
                sids.iter().find(|s| {
                    matches!(
                        self.reservations[*s].status,
                        ReservationStatus::Accepted | ReservationStatus::Wrapping
                    )
                })
            })
            .cloned();
        if let Some(task) = self.tasks.get_mut(task_sid) {
            task.status = to;
            task.version += 1;
            task.date_updated_ms = self.now_ms;
            if reason.is_some() {
                task.reason = reason.clone();
            }
        }
        let worker_sid = accepted.as_ref().map(|r| self.reservations[r].worker_sid.clone());
        if to == TaskStatus::Wrapping {
            self.emit_task_event(task_sid, "task.wrapup", format!("Task {task_sid} wrapping up"), vec![]);
            if let Some(reservation) = &accepted {
                self.set_reservation_status(reservation, ReservationStatus::Wrapping);
                self.emit_reservation_event(reservation, "reservation.wrapup", "wrapping");
            }
            if let Some(behaviour) = self.behaviour.clone() {
                let at = self.now_ms + self.uniform(behaviour.wrapup_ms);
                self.schedule(at, Timer::PersonCompletes(task_sid.into()));
            }
        } else {
            if let Some(reservation) = &accepted {
                self.set_reservation_status(reservation, ReservationStatus::Completed);
                if let Some(worker) = &worker_sid {
                    self.free_worker(worker, reservation);
                }
                self.emit_reservation_event(reservation, "reservation.completed", "completed");
            }
            self.count(task_sid, worker_sid.as_deref(), |c| c.tasks_completed += 1);
            let reason = reason.unwrap_or_default();
            self.emit_task_event(
                task_sid,
                "task.completed",
                format!("Task {task_sid} completed"),
                vec![("TaskCompletedReason".into(), reason.clone()), ("Reason".into(), reason)],
            );
            // The person sets themselves available again after a short pause.
            if let Some(worker) = worker_sid {
                if let Some(behaviour) = self.behaviour.clone() {
                    let at = self.now_ms + self.uniform(behaviour.think_ms);
                    self.schedule(at, Timer::PersonReturns(worker));
                }
            }
            self.assign();
        }
        Ok(())
    }

    /// The Task resource's update: status (with reason), attributes, priority.
    pub fn update_task(
        &mut self,
        workspace_sid: &str,
        task_sid: &str,
        update: TaskUpdate,
    ) -> Result<(), SimError> {
        self.task_in(workspace_sid, task_sid)?;
        if let Some(attributes) = &update.attributes {
            let parsed: Value = serde_json::from_str(attributes)
                .map_err(|_| SimError::bad_request("Attributes must be a JSON object"))?;
            let task = self.tasks.get_mut(task_sid).expect("checked");
            task.attributes = parsed.to_string();
            task.version += 1;
        }
        if let Some(priority) = update.priority {
            let task = self.tasks.get_mut(task_sid).expect("checked");
            let old_key = (-task.priority, task.sequence, task.sid.clone());
            task.priority = priority;
            task.version += 1;
            let new_key = (-priority, task.sequence, task.sid.clone());
            if self.open_tasks.remove(&old_key) {
                self.open_tasks.insert(new_key);
            }
        }
        if update.attributes.is_some() || update.priority.is_some() {
            self.emit_task_event(task_sid, "task.updated", format!("Task {task_sid} updated"), vec![]);
        }
        if let Some(status) = update.assignment_status.as_deref() {
            let to = match status {
                "canceled" => TaskStatus::Canceled,
                "wrapping" => TaskStatus::Wrapping,
                "completed" => TaskStatus::Completed,
                other => return Err(SimError::bad_request(format!("Invalid AssignmentStatus {other}"))),
            };
            self.set_task_status(task_sid, to, update.reason)?;
        }
        self.assign();
        Ok(())
    }

    /// The Task resource's cancel through the API, with a reason.
    pub fn cancel_task(&mut self, task_sid: &str, reason: &str) -> Result<(), SimError> {
        self.cancel_open_task(task_sid, CancelCause::Api(reason.into()))
    }

    pub fn update_worker_activity(
        &mut self,
        workspace_sid: &str,
        worker_sid: &str,
        activity_sid: &str,
    ) -> Result<(), SimError> {
        self.worker_in(workspace_sid, worker_sid)?;
        if !self.activity_in(workspace_sid, activity_sid) {
            return Err(SimError::bad_request(format!(
                "Activity {activity_sid} does not exist in this workspace"
            )));
        }
        self.move_worker(worker_sid, activity_sid);
        self.assign();
        Ok(())
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
mod tests {
    use serde_json::json;

    use super::*;

    const START: i64 = 1_700_000_000_000;

    struct World {
        engine: Engine,
        workspace: String,
        workflow: String,
        available: String,
        offline: String,
        busy: String,
        workers: Vec<String>,
    }

    fn world(workers: usize, max_reserved: u32, reservation_timeout: u64) -> World {
        let mut engine = Engine::new(42, START, None);
        let workspace = engine.add_workspace("Test", Some("http://sink/events".into()));
        let offline = engine.add_activity(&workspace, "Offline", false);
        let available = engine.add_activity(&workspace, "Available", true);
        let busy = engine.add_activity(&workspace, "Busy", false);
        engine.set_timeout_activity(&workspace, &offline);
        let workers = (0..workers)
            .map(|i| {
                engine.add_worker(&workspace, &format!("w{i}"), json!({"languages": ["en"]}), &available)
            })
            .collect();
        let queue = engine.add_queue(
            &workspace,
            "English",
            r#"languages HAS "en""#,
            max_reserved,
            Some(busy.clone()),
        );
        let workflow = engine.add_workflow(
            &workspace,
            "Main",
            Some("http://sink/assignment".into()),
            reservation_timeout,
            vec![],
            &queue,
        );
        World { engine, workspace, workflow, available, offline, busy, workers }
    }

    impl World {
        fn create(&mut self, ttl: Option<u64>) -> String {
            self.engine.create_task(&self.workspace, &self.workflow, r#"{"type":"support"}"#, 0, ttl).unwrap()
        }

        fn reservations(&self, task: &str) -> Vec<Reservation> {
            self.engine
                .task_reservations
                .get(task)
                .into_iter()
                .flatten()
                .map(|s| self.engine.reservations[s].clone())
                .collect()
        }

        fn event_types(&self) -> Vec<String> {
            self.engine.events.iter().map(|e| e.event_type.clone()).collect()
        }

        fn last_event(&self, event_type: &str) -> &EventRecord {
            self.engine.events.iter().rev().find(|e| e.event_type == event_type).expect(event_type)
        }
    }

    #[test]
    fn creation_emits_the_four_routing_events_then_a_reservation_and_its_callback() {
        let mut w = world(1, 1, 120);
        let task = w.create(None);
        assert_eq!(
            w.event_types(),
            [
                "task.created",
                "task-queue.entered",
                "workflow.entered",
                "workflow.target-matched",
                "reservation.created"
            ]
        );
        let first = &w.engine.events[0];
        assert!(sid::is_sid(&first.sid, "EV"));
        assert_eq!(first.param("Timestamp"), Some("1700000000"));
        assert_eq!(first.param("TimestampMs"), Some("1700000000000"));
        assert_eq!(first.param("ResourceType"), Some("task"));
        assert_eq!(first.param("EventDescription"), Some(format!("Task {task} created").as_str()));
        assert_eq!(w.engine.tasks[&task].status, TaskStatus::Reserved);
        let mut outbound = Vec::new();
        while let Some(o) = w.engine.take_outbox() {
            outbound.push(o);
        }
        let assignment = outbound.iter().find(|o| matches!(o.kind, OutboundKind::Assignment { .. })).unwrap();
        let names: Vec<&str> = assignment.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "AccountSid",
                "WorkspaceSid",
                "WorkflowSid",
                "TaskQueueSid",
                "TaskSid",
                "ReservationSid",
                "WorkerSid",
                "TaskAge",
                "TaskPriority",
                "TaskAttributes",
                "WorkerAttributes"
            ]
        );
        assert_eq!(assignment.url, "http://sink/assignment");
        assert_eq!(outbound.iter().filter(|o| o.url == "http://sink/events").count(), 5);
    }

    #[test]
    fn reservation_times_out_at_the_workflow_timeout_and_moves_the_worker_to_the_timeout_activity() {
        let mut w = world(1, 1, 30);
        let task = w.create(None);
        w.engine.advance_to(START + 29_999);
        assert_eq!(w.reservations(&task)[0].status, ReservationStatus::Pending);
        w.engine.advance_to(START + 30_000);
        let reservation = &w.reservations(&task)[0];
        assert_eq!(reservation.status, ReservationStatus::Timeout);
        assert_eq!(w.engine.tasks[&task].status, TaskStatus::Pending);
        let worker = &w.engine.workers[&w.workers[0]];
        assert_eq!(worker.activity_sid, w.offline);
        assert_eq!(worker.current_reservation, None);
        let timeout = w.last_event("reservation.timeout");
        assert_eq!(timeout.param("TimestampMs"), Some("1700000030000"));
        let update = w.last_event("worker.activity.update");
        assert_eq!(update.param("WorkerPreviousActivitySid"), Some(w.available.as_str()));
        assert_eq!(update.param("WorkerActivitySid"), Some(w.offline.as_str()));
        assert_eq!(update.param("WorkerTimeInPreviousActivity"), Some("30"));
        assert_eq!(update.param("WorkerTimeInPreviousActivityMs"), Some("30000"));
        assert_eq!(update.param("EventDescription"), Some("Worker w0 updated to Offline Activity"));
        assert_eq!(w.engine.ground_truth().total.reservations_timed_out, 1);
    }

    #[test]
    fn reject_frees_the_worker_moves_it_and_the_task_goes_to_someone_else() {
        let mut w = world(2, 1, 120);
        let task = w.create(None);
        let first = w.reservations(&task)[0].clone();
        w.engine.reject_reservation(&first.sid, Some(w.offline.clone())).unwrap();
        let rejecter = &w.engine.workers[&first.worker_sid];
        assert_eq!(rejecter.activity_sid, w.offline);
        assert_eq!(rejecter.current_reservation, None);
        let reservations = w.reservations(&task);
        assert_eq!(reservations.len(), 2);
        assert_eq!(reservations[0].status, ReservationStatus::Rejected);
        assert_eq!(reservations[1].status, ReservationStatus::Pending);
        assert_ne!(reservations[1].worker_sid, first.worker_sid);
        assert_eq!(w.engine.tasks[&task].status, TaskStatus::Reserved);
        let types = w.event_types();
        let tail = &types[types.len() - 3..];
        assert_eq!(tail, ["reservation.rejected", "worker.activity.update", "reservation.created"]);
    }

    #[test]
    fn endless_rejections_cancel_the_task() {
        let mut w = world(1, 1, 120);
        let task = w.create(None);
        for _ in 0..MAX_REJECTIONS {
            // The rejecter stays available, so the newest reservation is always the pending one.
            let pending = w.engine.task_reservations[&task].last().unwrap().clone();
            w.engine.reject_reservation(&pending, None).unwrap();
        }
        assert_eq!(w.engine.tasks[&task].status, TaskStatus::Canceled);
        assert_eq!(w.engine.ground_truth().total.reservations_rejected, u64::from(MAX_REJECTIONS));
    }

    #[test]
    fn ttl_cancels_with_task_ttl_exceeded() {
        let mut w = world(1, 1, 120);
        let busy_worker = w.create(None); // keeps the only worker reserved
        let task = w.create(Some(60));
        assert_eq!(w.engine.tasks[&task].status, TaskStatus::Pending);
        w.engine.advance_to(START + 60_000);
        let canceled = &w.engine.tasks[&task];
        assert_eq!(canceled.status, TaskStatus::Canceled);
        assert_eq!(canceled.reason.as_deref(), Some("Task TTL Exceeded"));
        let event = w.last_event("task.canceled");
        assert_eq!(event.description, "Task TTL Exceeded");
        assert_eq!(event.param("TaskCanceledReason"), Some("Task TTL Exceeded"));
        assert_eq!(w.engine.tasks[&busy_worker].status, TaskStatus::Reserved, "untouched: 60 s < 120 s");
    }

    #[test]
    fn multi_reservation_rescinds_the_others_when_one_accepts() {
        let mut w = world(3, 3, 120);
        let task = w.create(None);
        let reservations = w.reservations(&task);
        assert_eq!(reservations.len(), 3);
        w.engine.accept_reservation(&reservations[1].sid).unwrap();
        let after = w.reservations(&task);
        let statuses: Vec<_> = after.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [ReservationStatus::Rescinded, ReservationStatus::Accepted, ReservationStatus::Rescinded]
        );
        assert_eq!(w.engine.tasks[&task].status, TaskStatus::Assigned);
        let rescinded = w.engine.events.iter().find(|e| e.event_type == "reservation.rescinded").unwrap();
        assert_eq!(rescinded.param("TaskAssignmentStatus"), Some("reserved"));
        assert_eq!(w.last_event("reservation.accepted").param("TaskAssignmentStatus"), Some("assigned"));
        let truth = w.engine.ground_truth();
        assert_eq!(truth.total.reservations_rescinded, 2);
        assert_eq!(truth.total.reservations_accepted, 1);
        assert_eq!(truth.by_worker[&reservations[1].worker_sid].reservations_accepted, 1);
        assert_eq!(w.engine.workers[&reservations[1].worker_sid].activity_sid, w.busy);
        assert!(w.engine.workers[&reservations[0].worker_sid].current_reservation.is_none());
    }

    #[test]
    fn cancel_while_reserved_cancels_the_reservation_and_accepting_it_then_fails() {
        let mut w = world(1, 1, 120);
        let task = w.create(None);
        let reservation = w.reservations(&task)[0].sid.clone();
        w.engine.cancel_task(&task, "hangup").unwrap();
        assert_eq!(w.reservations(&task)[0].status, ReservationStatus::Canceled);
        let types = w.event_types();
        assert_eq!(&types[types.len() - 2..], ["reservation.canceled", "task.canceled"]);
        assert_eq!(w.last_event("task.canceled").param("Reason"), Some("hangup"));
        let error = w.engine.accept_reservation(&reservation).unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(
            error.message,
            format!("Reservation {reservation} not in expected state [pending] and cannot be updated to [accepted]")
        );
        assert!(w.engine.cancel_task(&task, "again").is_err());
    }

    #[test]
    fn accepted_task_wraps_up_and_completes() {
        let mut w = world(1, 1, 120);
        let task = w.create(None);
        let reservation = w.reservations(&task)[0].sid.clone();
        w.engine.apply_instruction(&reservation, Instruction::Accept).unwrap();
        let ws = w.workspace.clone();
        let cancel = TaskUpdate { assignment_status: Some("canceled".into()), ..Default::default() };
        assert!(w.engine.update_task(&ws, &task, cancel).is_err(), "an assigned task never becomes canceled");
        let wrap = TaskUpdate { assignment_status: Some("wrapping".into()), ..Default::default() };
        w.engine.update_task(&ws, &task, wrap).unwrap();
        let done = TaskUpdate {
            assignment_status: Some("completed".into()),
            reason: Some("done".into()),
            ..Default::default()
        };
        w.engine.update_task(&ws, &task, done).unwrap();
        let types = w.event_types();
        assert_eq!(
            &types[5..],
            [
                "reservation.accepted",
                "worker.activity.update",
                "task.wrapup",
                "reservation.wrapup",
                "reservation.completed",
                "task.completed"
            ]
        );
        assert_eq!(w.reservations(&task)[0].status, ReservationStatus::Completed);
        assert_eq!(w.engine.ground_truth().task_status[&task], "completed");
    }

    #[test]
    fn workflow_filter_timeout_emits_workflow_timeout_and_cancels() {
        let mut w = world(0, 1, 120);
        let queue = w.engine.workflows[&w.workflow].default_queue_sid.clone();
        w.engine.workflows.get_mut(&w.workflow).unwrap().filters.push(WorkflowFilter {
            friendly_name: "support".into(),
            expression: r#"type == "support""#.into(),
            queue_sid: queue,
            timeout: Some(10),
        });
        let task = w.create(None);
        w.engine.advance_to(START + 10_000);
        let types = w.event_types();
        assert_eq!(&types[types.len() - 2..], ["workflow.timeout", "task.canceled"]);
        assert_eq!(w.engine.tasks[&task].reason.as_deref(), Some("Workflow Timeout"));
    }

    #[test]
    fn same_seed_same_run() {
        let run = |seed| {
            let mut engine = Engine::new(seed, START, None);
            let urls = crate::simulator::scenario::CallbackUrls { assignment: None, events: None };
            let traffic = crate::simulator::scenario::DemoTraffic {
                tasks_per_minute: 12.0,
                arrivals_for_ms: 15 * 60_000,
                reservation_timeout: 30,
            };
            crate::simulator::scenario::build_demo(&mut engine, &urls, &traffic);
            engine.run_until(START + 25 * 60_000);
            let events: Vec<(String, String)> =
                engine.events.iter().map(|e| (e.sid.clone(), e.event_type.clone())).collect();
            (events, engine.ground_truth())
        };
        let (events, truth) = run(9);
        assert_eq!(run(9), (events.clone(), truth.clone()));
        assert_ne!(run(10).0, events);
        // The demo mix exercises every outcome the tracer must explain.
        let total = &truth.total;
        assert!(total.tasks_created > 100, "{total:?}");
        for (name, n) in [
            ("accepted", total.reservations_accepted),
            ("rejected", total.reservations_rejected),
            ("timed out", total.reservations_timed_out),
            ("canceled", total.reservations_canceled),
            ("rescinded", total.reservations_rescinded),
            ("completed", total.tasks_completed),
            ("tasks canceled", total.tasks_canceled),
        ] {
            assert!(n > 0, "no {name}: {total:?}");
        }
        assert!(truth.events_emitted.contains_key("workflow.timeout"), "{:?}", truth.events_emitted);
        assert_eq!(total.tasks_created, truth.task_status.len() as u64,);
    }
}
