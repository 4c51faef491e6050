//! The engine's transitions, each driven through a small world and checked event by event.

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
        .map(|i| engine.add_worker(&workspace, &format!("w{i}"), json!({"languages": ["en"]}), &available))
        .collect();
    let queue =
        engine.add_queue(&workspace, "English", r#"languages HAS "en""#, max_reserved, Some(busy.clone()));
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
    assert!(taskrouter_protocol::sid::has_form(&first.sid, "EV"));
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
        format!(
            "Reservation {reservation} not in expected state [pending] and cannot be updated to [accepted]"
        )
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
        let urls = crate::scenario::CallbackUrls { assignment: None, events: None };
        let traffic = crate::scenario::DemoTraffic {
            tasks_per_minute: 12.0,
            arrivals_for_ms: 15 * 60_000,
            reservation_timeout: 30,
        };
        crate::scenario::build_demo(&mut engine, &urls, &traffic);
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
