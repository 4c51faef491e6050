//! TaskRouter callback bodies modelled on real captures (field sets, casing, string-typed
//! numbers, epoch timestamps), with SIDs and values of our own.

pub type Params = Vec<(String, String)>;

pub const ACCOUNT: &str = "AC5e1e5c0ffee0000000000000000000a1";
pub const WORKSPACE: &str = "WS0d3c2b1a09f8e7d6c5b4a39281706f5e";
pub const WORKFLOW: &str = "WW1f2e3d4c5b6a79881726354453627180";
pub const QUEUE: &str = "WQ9a8b7c6d5e4f30211203f4e5d6c7b8a9";
pub const WORKER: &str = "WK00112233445566778899aabbccddeeff";
pub const TASK: &str = "WT7e57a5c0000000000000000000000001";
pub const RESERVATION: &str = "WR7e57a5c0000000000000000000000001";
pub const ACTIVITY_BUSY: &str = "WA0000000000000000000000000000b05y";

fn p(pairs: &[(&str, &str)]) -> Params {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn task_attributes() -> String {
    r#"{"from_country":"US","called":"+15550000101","selected_product":"support","call_sid":"CA00000000000000000000000000000001","direction":"inbound","caller":"+15550000102"}"#.to_string()
}

/// A 2023-style task event (TaskVersion, TaskDateCreated, OperatingUnitSid, TaskChannel…).
pub fn task_event(event_type: &str, sid: &str, timestamp_ms: i64, description: &str) -> Params {
    let seconds = (timestamp_ms / 1000).to_string();
    let ms = timestamp_ms.to_string();
    let attributes = task_attributes();
    let mut params = p(&[
        ("TaskPriority", "1"),
        ("EventType", event_type),
        ("WorkflowName", "Support WorkFlow"),
        ("Timestamp", &seconds),
        ("TaskAge", "0"),
        ("TaskAssignmentStatus", "pending"),
        ("TaskAttributes", &attributes),
        ("TaskVersion", "0"),
        ("TaskChannelUniqueName", "voice"),
        ("WorkspaceName", "twilio-cti"),
        ("OperatingUnitSid", "OU0000000000000000000000000000a0a0"),
        ("TaskChannelSid", "TC00000000000000000000000000000c01"),
        ("TaskQueueEnteredDate", &seconds),
        ("TaskDateCreated", &seconds),
        ("ResourceType", "task"),
        ("TaskQueueName", "support"),
        ("WorkflowSid", WORKFLOW),
        ("AccountSid", ACCOUNT),
        ("Sid", sid),
        ("TimestampMs", &ms),
        ("TaskQueueTargetExpression", "skill has \"support\""),
        ("WorkspaceSid", WORKSPACE),
        ("TaskQueueSid", QUEUE),
        ("EventDescription", description),
        ("TaskSid", TASK),
        ("ResourceSid", TASK),
    ]);
    if event_type == "workflow.target-matched" {
        params.push(("WorkflowFilterExpression".into(), "selected_product == 'support'".into()));
        params.push(("WorkflowFilterName".into(), "Support".into()));
    }
    params
}

/// A reservation event with the worker fields real captures carry.
pub fn reservation_event(event_type: &str, sid: &str, timestamp_ms: i64) -> Params {
    let mut params =
        task_event(event_type, sid, timestamp_ms, &format!("Reservation {RESERVATION} {event_type}"));
    for (name, value) in params.iter_mut() {
        match name.as_str() {
            "ResourceType" => *value = "reservation".into(),
            "ResourceSid" => *value = RESERVATION.into(),
            "TaskAssignmentStatus" => *value = "reserved".into(),
            _ => {}
        }
    }
    params.extend(p(&[
        ("ReservationSid", RESERVATION),
        ("ReservationVersion", "0"),
        ("WorkerSid", WORKER),
        ("WorkerName", "alice"),
        ("WorkerAttributes", r#"{"contact_uri":"client:alice","skill":["support","helpdesk"]}"#),
        ("WorkerActivitySid", ACTIVITY_BUSY),
        ("WorkerActivityName", "Busy"),
        ("WorkerVersion", "3"),
        ("WorkerPreviousActivitySid", "WA0000000000000000000000000000a7a1"),
    ]));
    if event_type == "reservation.canceled" {
        params.push(("CanceledReasonCode".into(), "45303".into()));
    }
    params
}

/// A worker.activity.update as captured in 2023.
pub fn worker_activity_update(sid: &str, timestamp_ms: i64) -> Params {
    let seconds = (timestamp_ms / 1000).to_string();
    let ms = timestamp_ms.to_string();
    p(&[
        ("EventType", "worker.activity.update"),
        ("WorkerActivityName", "Offline"),
        ("WorkerSid", WORKER),
        ("WorkerName", "alice"),
        ("WorkerAttributes", r#"{"contact_uri":"client:alice"}"#),
        ("WorkerActivitySid", "WA0000000000000000000000000000off1"),
        ("WorkerPreviousActivitySid", "WA0000000000000000000000000000a7a1"),
        ("WorkerPreviousActivityName", "Available"),
        ("WorkerTimeInPreviousActivity", "5664"),
        ("WorkerTimeInPreviousActivityMs", "5664604"),
        ("WorkerVersion", "7"),
        ("ResourceType", "worker"),
        ("ResourceSid", WORKER),
        ("AccountSid", ACCOUNT),
        ("WorkspaceSid", WORKSPACE),
        ("WorkspaceName", "twilio-cti"),
        ("OperatingUnitSid", "OU0000000000000000000000000000a0a0"),
        ("EventDescription", "Worker alice updated to Offline Activity"),
        ("Sid", sid),
        ("Timestamp", &seconds),
        ("TimestampMs", &ms),
    ])
}

/// A 2018-style worker.created: no TaskVersion, TimestampMs with a 000 millisecond part.
pub fn worker_created_2018(sid: &str) -> Params {
    p(&[
        ("EventType", "worker.created"),
        ("WorkerActivityName", "Offline"),
        ("WorkerSid", WORKER),
        (
            "WorkerAttributes",
            r#"{"skills":["general"],"languages":["english"],"time_zone":"America\/Los_Angeles"}"#,
        ),
        ("WorkerActivitySid", "WA0000000000000000000000000000off1"),
        ("WorkerName", "test_user"),
        ("ResourceType", "worker"),
        ("ResourceSid", WORKER),
        ("AccountSid", "ACCOUNTSID12345"),
        ("WorkspaceSid", WORKSPACE),
        ("WorkspaceName", "twiltwil"),
        ("EventDescription", "Worker alexdlaird created"),
        ("Sid", sid),
        ("Timestamp", "1522296198"),
        ("TimestampMs", "1522296198000"),
    ])
}

/// A task-queue.expression.updated (ResourceType `taskqueue`, no task fields).
pub fn task_queue_expression_updated(sid: &str) -> Params {
    p(&[
        ("EventType", "task-queue.expression.updated"),
        ("TaskQueueSid", QUEUE),
        ("TaskQueueName", "support"),
        ("TaskQueueTargetExpression", "skill HAS \"support\" AND languages HAS \"es\""),
        ("OperatingUnitSid", "OU0000000000000000000000000000a0a0"),
        ("ResourceType", "taskqueue"),
        ("ResourceSid", QUEUE),
        ("AccountSid", ACCOUNT),
        ("WorkspaceSid", WORKSPACE),
        ("WorkspaceName", "twilio-cti"),
        ("EventDescription", &format!("TaskQueue {QUEUE} expression updated to 'skill HAS \"support\"'")),
        ("Sid", sid),
        ("Timestamp", "1691000000"),
        ("TimestampMs", "1691000000123"),
    ])
}

/// An assignment callback: exactly the eleven fields real ones carry (no Sid, type or time).
pub fn assignment_callback() -> Params {
    p(&[
        ("TaskAttributes", &task_attributes()),
        ("TaskPriority", "1"),
        ("WorkerSid", WORKER),
        ("ReservationSid", RESERVATION),
        ("WorkspaceSid", WORKSPACE),
        ("TaskQueueSid", QUEUE),
        ("WorkflowSid", WORKFLOW),
        ("TaskAge", "3"),
        ("AccountSid", ACCOUNT),
        ("TaskSid", TASK),
        ("WorkerAttributes", r#"{"contact_uri":"client:alice","skill":["support","helpdesk"]}"#),
    ])
}

/// An event SID made from a number, 34 characters like real ones.
pub fn event_sid(n: u64) -> String {
    format!("EV{n:032x}")
}

/// Every payload shape above, with the event type the log should extract.
pub fn all_shapes() -> Vec<(&'static str, &'static str, Params)> {
    vec![
        (
            "events",
            "task.created",
            task_event("task.created", &event_sid(1), 1_672_996_097_446, "Task created"),
        ),
        (
            "events",
            "workflow.target-matched",
            task_event(
                "workflow.target-matched",
                &event_sid(2),
                1_672_996_097_445,
                "Task matched a workflow target",
            ),
        ),
        (
            "events",
            "reservation.created",
            reservation_event("reservation.created", &event_sid(3), 1_672_996_097_480),
        ),
        (
            "events",
            "reservation.canceled",
            reservation_event("reservation.canceled", &event_sid(4), 1_672_996_098_000),
        ),
        ("events", "worker.activity.update", worker_activity_update(&event_sid(5), 1_672_996_099_000)),
        ("events", "worker.created", worker_created_2018(&event_sid(6))),
        ("events", "task-queue.expression.updated", task_queue_expression_updated(&event_sid(7))),
        ("assignment", "assignment", assignment_callback()),
    ]
}

/// `params` with each of `changes` set (replaced, or added when absent).
pub fn with(mut params: Params, changes: &[(&str, &str)]) -> Params {
    for (name, value) in changes {
        match params.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value.to_string(),
            None => params.push((name.to_string(), value.to_string())),
        }
    }
    params
}
