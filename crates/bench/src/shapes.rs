//! Workload shapes: how the benchmark's requests meet tasks. The requests are always the
//! simulator's callbacks (`corpus`), signed for the server's URL, every event Sid and every
//! idempotency token unique; a shape only decides which task each one names:
//!
//! - realistic lifecycles: the simulation as `corpus` replays it;
//! - a new task per event: every request names a task (and reservation) never seen before;
//! - busy tasks: requests round-robin over [`BUSY_TASKS`] tasks, each going through a cycle of
//!   mixed events with fresh reservations, its clock moving forward;
//! - one hot task: every request names the same task, a reservation loop (created, then
//!   rejected or timed out, then the task updated), a new reservation each round.
//!
//! The last two are stamped from templates taken from one simulation: its parameters, sizes
//! and attributes, with the task's, reservation's and worker's fields kept consistent across a
//! task's events.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::corpus::{self, Callback, Corpus, Renderer, RequestSource, Stream, ACCOUNT};
use super::Target;

/// The tasks the busy shape spreads its requests over.
pub const BUSY_TASKS: u64 = 128;
/// TaskRouter time between two consecutive requests of the busy and hot shapes.
const STEP_MS: i64 = 10;
/// Parameters that describe the task (kept the task's own on every event that names it).
const TASK_FIELDS: [&str; 8] = [
    "TaskAttributes",
    "TaskPriority",
    "TaskChannelUniqueName",
    "TaskQueueSid",
    "TaskQueueName",
    "TaskQueueTargetExpression",
    "WorkflowSid",
    "WorkflowName",
];
/// Parameters that describe the reserved worker (kept one worker's per reservation).
const WORKER_FIELDS: [&str; 3] = ["WorkerSid", "WorkerName", "WorkerAttributes"];

/// One busy task's cycle: each entry an event type and, for reservation events, which of the
/// cycle's reservations it names (a reservation's creation and its outcome share one).
const BUSY_CYCLE: [(&str, Option<u8>); 9] = [
    ("task-queue.entered", None),
    ("reservation.created", Some(0)),
    ("reservation.rejected", Some(0)),
    ("task.updated", None),
    ("reservation.created", Some(1)),
    ("reservation.timeout", Some(1)),
    ("worker.activity.update", None),
    ("reservation.created", Some(2)),
    ("reservation.accepted", Some(2)),
];

/// How requests meet tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Realistic,
    TaskPerEvent,
    BusyTasks,
    HotTask,
}

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::Realistic, Shape::TaskPerEvent, Shape::BusyTasks, Shape::HotTask];

    pub fn label(self) -> &'static str {
        match self {
            Shape::Realistic => "realistic lifecycles",
            Shape::TaskPerEvent => "a new task per event",
            Shape::BusyTasks => "128 busy tasks",
            Shape::HotTask => "one hot task",
        }
    }

    /// The shape in a file name.
    pub fn slug(self) -> &'static str {
        match self {
            Shape::Realistic => "realistic",
            Shape::TaskPerEvent => "task-per-event",
            Shape::BusyTasks => "busy-tasks",
            Shape::HotTask => "hot-task",
        }
    }
}

/// Every shape's requests for one server URL, simulated once and shared by the runs.
pub struct Workloads {
    events: Corpus,
    assignments: Corpus,
    templates: Arc<Templates>,
}

impl Workloads {
    /// Simulates the realistic streams and the templates (smaller ones for a smoke run).
    pub fn simulate(base_url: &str, quick: bool) -> Self {
        // A task is reserved about once per fourteen callbacks; the replicas do the rest.
        let (events, assignments) = if quick { (2_000, 300) } else { (20_000, 2_000) };
        Self {
            events: Corpus::new(base_url, Stream::Events, events, 1),
            assignments: Corpus::new(base_url, Stream::Assignments, assignments, 1),
            templates: Arc::new(Templates::new(Corpus::new(base_url, Stream::Mixed, events, 1))),
        }
    }

    /// The realistic stream of event callbacks.
    pub(super) fn events(&self) -> &Corpus {
        &self.events
    }

    /// `shape`'s requests for `target`, from the first: the baseline's and the floor's are the
    /// realistic events sent to their own paths (neither looks at what it receives).
    pub fn source(&self, shape: Shape, target: Target) -> Box<dyn RequestSource> {
        match (target, shape) {
            (Target::Baseline, _) => Box::new(self.events.clone().with_path(crate::reference::BASELINE_PATH)),
            (Target::Floor, _) => Box::new(self.events.clone().with_path(crate::reference::FLOOR_PATH)),
            (Target::Events, Shape::Realistic) => Box::new(self.events.clone()),
            (Target::Assignment, Shape::Realistic) => Box::new(self.assignments.clone()),
            (Target::Events | Target::Assignment, _) => Box::new(ShapedSource {
                templates: self.templates.clone(),
                shape,
                assignment: target == Target::Assignment,
                next: 0,
            }),
        }
    }
}

/// One task as the busy and hot shapes name it.
#[derive(Debug, Clone)]
struct TaskIdentity {
    sid: String,
    /// Its [`TASK_FIELDS`].
    fields: Vec<(String, String)>,
    created_ms: i64,
}

/// What the stamped shapes are made from: one simulation's callbacks, one template per event
/// type, the tasks they name and the workers that reserve them.
struct Templates {
    renderer: Renderer,
    span_ms: i64,
    /// The event callbacks that name a task.
    task_events: Vec<Callback>,
    assignments: Vec<Callback>,
    kinds: HashMap<&'static str, Callback>,
    /// Each of the simulation's workers' [`WORKER_FIELDS`].
    workers: Vec<Vec<(String, String)>>,
    busy: Vec<TaskIdentity>,
    hot: TaskIdentity,
}

impl Templates {
    fn new(mixed: Corpus) -> Self {
        let callbacks = mixed.callbacks();
        let of_type = |event_type: &str| callbacks.iter().find(|c| c.param("EventType") == Some(event_type));
        let created = of_type("task.created").expect("the simulation creates tasks").clone();
        let reserved = of_type("reservation.created").expect("the simulation reserves tasks").clone();
        let mut kinds = HashMap::new();
        for (event_type, _) in BUSY_CYCLE {
            let template = match of_type(event_type) {
                Some(found) => found.clone(),
                // Not in this simulation: what the engine would have sent, from its siblings.
                None if event_type.starts_with("task") => retyped(&created, event_type, "Task", "pending"),
                None if event_type.starts_with("reservation") => {
                    let status = if event_type == "reservation.accepted" { "assigned" } else { "pending" };
                    retyped(&reserved, event_type, "Reservation", status)
                }
                None => continue,
            };
            kinds.insert(event_type, template);
        }
        let mut workers: Vec<Vec<(String, String)>> = Vec::new();
        for callback in callbacks.iter().filter(|c| c.param("EventType") == Some("reservation.created")) {
            let fields: Vec<(String, String)> = WORKER_FIELDS
                .iter()
                .filter_map(|name| callback.param(name).map(|v| (name.to_string(), v.to_string())))
                .collect();
            if !workers.iter().any(|w| w.first() == fields.first()) {
                workers.push(fields);
            }
        }
        let start_ms = created.param("TimestampMs").and_then(|ms| ms.parse().ok()).unwrap_or(0);
        let identity = |key: u64| {
            let task = corpus::renamed(&created, key, 0);
            TaskIdentity {
                sid: task.param("TaskSid").unwrap_or_default().to_string(),
                fields: TASK_FIELDS
                    .iter()
                    .filter_map(|name| task.param(name).map(|v| (name.to_string(), v.to_string())))
                    .collect(),
                created_ms: start_ms,
            }
        };
        Self {
            renderer: mixed.renderer().clone(),
            span_ms: mixed.span_ms(),
            task_events: callbacks
                .iter()
                .filter(|c| c.path == "/webhooks/events" && c.param("TaskSid").is_some())
                .cloned()
                .collect(),
            assignments: callbacks.iter().filter(|c| c.path == "/webhooks/assignment").cloned().collect(),
            kinds,
            workers,
            busy: (0..BUSY_TASKS).map(identity).collect(),
            hot: identity(u64::MAX),
        }
    }

    /// Request `n` of `shape`, on the assignment endpoint or the events one.
    fn callback(&self, shape: Shape, assignment: bool, n: u64) -> Callback {
        let at_ms = |task: &TaskIdentity| task.created_ms + (n as i64 + 1) * STEP_MS;
        let label = format!("{}/{}/{n}", shape.slug(), if assignment { "assignment" } else { "events" });
        match shape {
            // Realistic requests come from the corpus itself (`Workloads::source`).
            Shape::Realistic | Shape::TaskPerEvent => {
                // Every SID renamed by the request's own number: a task no other request names.
                let base = if assignment { &self.assignments } else { &self.task_events };
                let len = base.len() as u64;
                corpus::renamed(&base[(n % len) as usize], n, self.span_ms.saturating_mul((n / len) as i64))
            }
            Shape::BusyTasks => {
                let (task, round) = (&self.busy[(n % BUSY_TASKS) as usize], n / BUSY_TASKS);
                if assignment {
                    let reservation = sid("WR", &format!("{label}/reservation"));
                    return self.stamp(
                        &self.assignments[0],
                        Some(task),
                        Some(reservation),
                        at_ms(task),
                        round,
                        &label,
                    );
                }
                let position = round + busy_offset(n % BUSY_TASKS);
                let cycle = position / BUSY_CYCLE.len() as u64;
                let (event_type, pair) = BUSY_CYCLE[(position % BUSY_CYCLE.len() as u64) as usize];
                let reservation = pair.map(|p| sid("WR", &format!("busy/{}/{cycle}/{p}", task.sid)));
                let template = self.kind(event_type);
                let at = at_ms(task);
                // A worker's event names no task.
                let task = template.param("TaskSid").map(|_| task);
                self.stamp(template, task, reservation, at, round, &label)
            }
            Shape::HotTask => {
                let task = &self.hot;
                if assignment {
                    let reservation = sid("WR", &format!("{label}/reservation"));
                    return self.stamp(
                        &self.assignments[0],
                        Some(task),
                        Some(reservation),
                        at_ms(task),
                        n,
                        &label,
                    );
                }
                let round = n / 3;
                let reservation = sid("WR", &format!("hot/{round}"));
                let (event_type, reservation) = match n % 3 {
                    0 => ("reservation.created", Some(reservation)),
                    // One reservation in four is left to time out; the others are rejected.
                    1 if round % 4 == 3 => ("reservation.timeout", Some(reservation)),
                    1 => ("reservation.rejected", Some(reservation)),
                    _ => ("task.updated", None),
                };
                self.stamp(self.kind(event_type), Some(task), reservation, at_ms(task), n, &label)
            }
        }
    }

    /// The template of `event_type`, or the task's update when the simulation had none of it.
    fn kind(&self, event_type: &str) -> &Callback {
        self.kinds
            .get(event_type)
            .or_else(|| self.kinds.get("task.updated"))
            .expect("task.updated is derived")
    }

    /// `template` naming `task` and `reservation` (reserved by the worker that reservation
    /// picks), at `at_ms`, as the task's `version`th state, with a new event Sid and token.
    fn stamp(
        &self,
        template: &Callback,
        task: Option<&TaskIdentity>,
        reservation: Option<String>,
        at_ms: i64,
        version: u64,
        label: &str,
    ) -> Callback {
        let worker = reservation.as_ref().filter(|_| !self.workers.is_empty()).map(|sid| {
            let pick = u64::from_str_radix(&sid[2..18], 16).unwrap_or(0) % self.workers.len() as u64;
            &self.workers[pick as usize]
        });
        let event_sid = template.param("Sid").map(|_| sid("EV", &format!("{label}/event")));
        // Old SIDs named in other parameters (the description, ResourceSid) follow.
        let renames: Vec<(&str, &str)> = [
            ("Sid", event_sid.as_deref()),
            ("TaskSid", task.map(|t| t.sid.as_str())),
            ("ReservationSid", reservation.as_deref()),
            ("WorkerSid", worker.and_then(|w| field(w, "WorkerSid"))),
        ]
        .into_iter()
        .filter_map(|(name, new)| Some((template.param(name)?, new?)))
        .collect();
        let params = template
            .params
            .iter()
            .map(|(name, value)| {
                let task_field = task.and_then(|t| field(&t.fields, name));
                let worker_field = worker.and_then(|w| field(w, name));
                let value = match name.as_str() {
                    "TimestampMs" => at_ms.to_string(),
                    "Timestamp" => (at_ms / 1000).to_string(),
                    "TaskVersion" => version.to_string(),
                    "TaskDateCreated" | "TaskQueueEnteredDate" if task.is_some() => {
                        (task.map_or(0, |t| t.created_ms) / 1000).to_string()
                    }
                    "TaskAge" if task.is_some() => {
                        ((at_ms - task.map_or(at_ms, |t| t.created_ms)).max(0) / 1000).to_string()
                    }
                    _ => match task_field.or(worker_field) {
                        Some(own) => own.to_string(),
                        None => renames.iter().fold(value.clone(), |v, (old, new)| v.replace(old, new)),
                    },
                };
                (name.clone(), value)
            })
            .collect();
        Callback {
            path: template.path,
            params,
            idempotency_token: format!("{ACCOUNT}-{}", fresh_hex(&format!("{label}/token"))),
        }
    }
}

/// Where busy task `t` starts its cycle: tasks are at different points of theirs at any
/// moment, and none starts with the outcome of a reservation it was never offered.
fn busy_offset(t: u64) -> u64 {
    let offset = t % BUSY_CYCLE.len() as u64;
    match BUSY_CYCLE[offset as usize] {
        (event_type, Some(_)) if event_type != "reservation.created" => offset - 1,
        _ => offset,
    }
}

/// `template` as an event of `event_type` on the same resource ("Task" or "Reservation").
fn retyped(template: &Callback, event_type: &str, resource: &str, status: &str) -> Callback {
    let sid_param = if resource == "Task" { "TaskSid" } else { "ReservationSid" };
    let sid = template.param(sid_param).unwrap_or_default().to_string();
    let verb = match event_type.rsplit('.').next().unwrap_or("updated") {
        "timeout" => "timed out",
        other => other,
    };
    let mut callback = template.clone();
    for (name, value) in &mut callback.params {
        match name.as_str() {
            "EventType" => *value = event_type.to_string(),
            "EventDescription" => *value = format!("{resource} {sid} {verb}"),
            "TaskAssignmentStatus" => *value = status.to_string(),
            _ => {}
        }
    }
    callback
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// 32 hex digits of its own for `label`.
fn fresh_hex(label: &str) -> String {
    hex::encode(&Sha256::digest(label.as_bytes())[..16])
}

/// A SID of kind `prefix` ("WR", "EV") of its own for `label`.
fn sid(prefix: &str, label: &str) -> String {
    format!("{prefix}{}", fresh_hex(label))
}

/// A stamped shape's requests, from the first.
struct ShapedSource {
    templates: Arc<Templates>,
    shape: Shape,
    assignment: bool,
    next: u64,
}

impl ShapedSource {
    fn render_nth(&self, n: u64) -> Vec<u8> {
        self.templates.renderer.render(&self.templates.callback(self.shape, self.assignment, n))
    }
}

impl RequestSource for ShapedSource {
    fn take(&mut self, count: usize) -> Vec<Vec<u8>> {
        let first = self.next;
        self.next += count as u64;
        corpus::render_in_parallel(first, count, &|n| self.render_nth(n))
    }

    fn next_request(&mut self) -> Option<Vec<u8>> {
        self.next += 1;
        Some(self.render_nth(self.next - 1))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::corpus::AUTH_TOKEN;
    use taskrouter_protocol::signature;
    use taskrouter_protocol::webhook::parse_form;

    type Params = Vec<(String, String)>;

    /// The path and form parameters of a rendered request, after checking its signature.
    fn open(request: &[u8]) -> (String, Params) {
        let text = String::from_utf8(request.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let path = head.split(' ').nth(1).unwrap().to_string();
        let params = parse_form(body.as_bytes()).unwrap().0;
        let signature = head.lines().find_map(|l| l.strip_prefix("X-Twilio-Signature: ")).unwrap();
        let url = format!("http://127.0.0.1:9999{path}");
        assert_eq!(signature, signature::compute(AUTH_TOKEN, &url, &params), "signed for the URL");
        (path, params)
    }

    fn get<'a>(params: &'a Params, name: &str) -> &'a str {
        field(params, name).unwrap_or_else(|| panic!("no {name} in {params:?}"))
    }

    fn requests(shape: Shape, target: Target, count: usize) -> Vec<Params> {
        static WORKLOADS: std::sync::OnceLock<Workloads> = std::sync::OnceLock::new();
        let workloads = WORKLOADS.get_or_init(|| Workloads::simulate("http://127.0.0.1:9999", true));
        let mut source = workloads.source(shape, target);
        let mut rendered = source.take(count - 1);
        rendered.push(source.next_request().unwrap());
        let path = if target == Target::Events { "/webhooks/events" } else { "/webhooks/assignment" };
        rendered
            .iter()
            .map(|r| {
                let (sent_to, params) = open(r);
                assert_eq!(sent_to, path);
                params
            })
            .collect()
    }

    fn unique_event_sids(requests: &[Params]) {
        let sids: HashSet<&str> = requests.iter().map(|p| get(p, "Sid")).collect();
        assert_eq!(sids.len(), requests.len(), "an event Sid repeated");
    }

    #[test]
    fn a_quick_simulation_has_every_busy_event_type() {
        let templates = Templates::new(Corpus::new("http://127.0.0.1:9999", Stream::Mixed, 2_000, 1));
        for (event_type, _) in BUSY_CYCLE {
            assert!(templates.kinds.contains_key(event_type), "{event_type}");
        }
        assert!(templates.workers.len() > 1 && !templates.assignments.is_empty());
    }

    #[test]
    fn a_new_task_per_event_never_names_a_task_twice() {
        for target in [Target::Events, Target::Assignment] {
            let requests = requests(Shape::TaskPerEvent, target, 3_000);
            let tasks: HashSet<&str> = requests.iter().map(|p| get(p, "TaskSid")).collect();
            assert_eq!(tasks.len(), requests.len(), "{target:?}");
            if target == Target::Events {
                unique_event_sids(&requests);
                let types: HashSet<&str> = requests.iter().map(|p| get(p, "EventType")).collect();
                assert!(types.len() >= 5, "a realistic mix: {types:?}");
            } else {
                let reservations: HashSet<&str> = requests.iter().map(|p| get(p, "ReservationSid")).collect();
                assert_eq!(reservations.len(), requests.len());
                assert!(requests
                    .iter()
                    .all(|p| field(p, "Sid").is_none() && field(p, "EventType").is_none()));
            }
        }
    }

    #[test]
    fn busy_tasks_take_turns_and_their_clocks_move_forward() {
        let requests = requests(Shape::BusyTasks, Target::Events, 2_000);
        unique_event_sids(&requests);
        let mut last_ms: HashMap<&str, i64> = HashMap::new();
        let mut reservations: HashMap<&str, (&str, Vec<&str>)> = HashMap::new();
        for (n, params) in requests.iter().enumerate() {
            let ms: i64 = get(params, "TimestampMs").parse().unwrap();
            let Some(task) = field(params, "TaskSid") else {
                assert_eq!(get(params, "EventType"), "worker.activity.update");
                continue;
            };
            let resource = get(params, "ResourceSid");
            assert!(resource == task || Some(resource) == field(params, "ReservationSid"), "{params:?}");
            assert!(get(params, "EventDescription").contains(resource), "{params:?}");
            assert!(last_ms.insert(task, ms).is_none_or(|before| before < ms), "request {n}");
            if let Some(reservation) = field(params, "ReservationSid") {
                let worker = get(params, "WorkerSid");
                let entry = reservations.entry(reservation).or_insert((worker, Vec::new()));
                assert_eq!(entry.0, worker, "one worker per reservation");
                entry.1.push(get(params, "EventType"));
            }
        }
        assert_eq!(last_ms.len() as u64, BUSY_TASKS);
        let types: HashSet<&str> = requests.iter().map(|p| get(p, "EventType")).collect();
        assert_eq!(types.len(), 7, "{types:?}");
        // Every reservation is created, and then accepted, rejected or timed out.
        for (sid, (_, events)) in reservations {
            assert!(events.len() <= 2 && events[0] == "reservation.created", "{sid}: {events:?}");
        }
        let assignments = requests_for_assignment(Shape::BusyTasks);
        let tasks: HashSet<&str> = assignments.iter().map(|p| get(p, "TaskSid")).collect();
        assert_eq!(tasks.len() as u64, BUSY_TASKS);
    }

    fn requests_for_assignment(shape: Shape) -> Vec<Params> {
        let assignments = requests(shape, Target::Assignment, 1_000);
        let reservations: HashSet<&str> = assignments.iter().map(|p| get(p, "ReservationSid")).collect();
        assert_eq!(reservations.len(), assignments.len(), "a new reservation each time");
        assignments
    }

    #[test]
    fn the_hot_task_loops_through_reservations_in_order() {
        let requests = requests(Shape::HotTask, Target::Events, 1_200);
        unique_event_sids(&requests);
        let task = get(&requests[0], "TaskSid");
        assert!(requests.iter().all(|p| get(p, "TaskSid") == task));
        let ms: Vec<i64> = requests.iter().map(|p| get(p, "TimestampMs").parse().unwrap()).collect();
        assert!(ms.windows(2).all(|w| w[0] < w[1]));
        let types: Vec<&str> = requests.iter().take(12).map(|p| get(p, "EventType")).collect();
        assert_eq!(&types[..3], ["reservation.created", "reservation.rejected", "task.updated"]);
        assert_eq!(types[10], "reservation.timeout");
        assert_eq!(get(&requests[0], "ReservationSid"), get(&requests[1], "ReservationSid"));
        assert_ne!(get(&requests[0], "ReservationSid"), get(&requests[3], "ReservationSid"));
        // The task's own fields stay the same whatever template an event came from.
        let attributes: HashSet<&str> = requests.iter().map(|p| get(p, "TaskAttributes")).collect();
        assert_eq!(attributes.len(), 1);
        assert!(requests_for_assignment(Shape::HotTask).iter().all(|p| get(p, "TaskSid") == task));
    }
}
