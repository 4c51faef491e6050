//! Tests of the lifecycle folds (pure, no database) and a property test of the SQL shell:
//! shuffled, duplicated and dropped deliveries against in-order delivery and a full rebuild.
//!
//! Shared here: the deliveries and lifecycles the tests build, and their ingest as the writer
//! does it. The tests are in `lifecycles` (the pure folds), `shell` (the SQL shell against a
//! rebuild and in-order delivery), `long_tasks` (cost that does not grow with history) and
//! `measurements` (run explicitly).

mod lifecycles;
mod long_tasks;
mod measurements;
mod shell;

use std::collections::HashSet;

use super::fold::{fold_task, overdue_flag, ProjectionConfig, TaskProjection};
use super::projector::{self, FollowUp};
use super::Fact;
use crate::storage::event_log::{self, AppendDecision, NewRecord, RecordKind};
use taskrouter_protocol::webhook::{encode_form, extract_facts, parse_form};
use taskrouter_protocol::{Endpoint, ReservationStatus, TaskStatus};
// The tests name these as `super::…`, as they did when they were all in this file.
use super::{
    details, dump, dump_without_ids, engine, overview, projected_through, rebuild, set_projected_through,
    store, task_entry, Engine, REBUILD_CHUNK_IDS, REBUILD_READERS,
};

const TASK: &str = "WT00000000000000000000000000000001";
const WORKFLOW: &str = "WW00000000000000000000000000000001";
const QUEUE: &str = "WQ00000000000000000000000000000001";
const ALICE: (&str, &str) = ("WK0000000000000000000000000000a11c", "alice");
const BOB: (&str, &str) = ("WK00000000000000000000000000000b0b", "bob");
const CAROL: (&str, &str) = ("WK000000000000000000000000000ca401", "carol");
const T0: i64 = 1_673_113_052_912;

/// One webhook as TaskRouter would deliver it (what the test controls: body, arrival, our answer).
#[derive(Debug, Clone)]
struct Delivery {
    endpoint: Endpoint,
    params: Vec<(String, String)>,
    arrival_ms: i64,
    response: Option<String>,
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
}

fn event_sid(parts: &str) -> String {
    // FNV-1a twice: a stable, content-derived event Sid.
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for byte in parts.bytes() {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        b = (b ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3 ^ 0x10);
    }
    format!("EV{a:016x}{b:016x}")
}

fn task_event(kind: &str, task: &str, at: i64) -> Delivery {
    let mut params = pairs(&[
        ("EventType", kind.into()),
        ("Sid", event_sid(&format!("{kind}{task}{at}"))),
        ("TimestampMs", at.to_string()),
        ("Timestamp", (at / 1000).to_string()),
        ("TaskSid", task.into()),
        ("ResourceSid", task.into()),
        ("ResourceType", "task".into()),
        ("WorkflowSid", WORKFLOW.into()),
        ("WorkflowName", "Support WorkFlow".into()),
        ("TaskQueueSid", QUEUE.into()),
        ("TaskQueueName", "support".into()),
        ("TaskPriority", "1".into()),
        ("TaskAttributes", r#"{"selected_product":"support"}"#.into()),
        ("EventDescription", format!("Task {task} {kind}")),
    ]);
    if kind == "task.canceled" {
        params.push(("TaskCanceledReason".into(), "hangup".into()));
    }
    Delivery { endpoint: Endpoint::Events, params, arrival_ms: at + 40, response: None }
}

fn reservation_event(kind: &str, task: &str, reservation: &str, worker: (&str, &str), at: i64) -> Delivery {
    let mut delivery = task_event(kind, task, at);
    delivery.params.retain(|(n, _)| {
        !matches!(n.as_str(), "ResourceSid" | "ResourceType" | "Sid" | "TaskCanceledReason")
    });
    delivery.params.extend(pairs(&[
        ("Sid", event_sid(&format!("{kind}{reservation}{at}"))),
        ("ResourceSid", reservation.into()),
        ("ResourceType", "reservation".into()),
        ("ReservationSid", reservation.into()),
        ("WorkerSid", worker.0.into()),
        ("WorkerName", worker.1.into()),
        ("WorkerActivityName", "Available".into()),
    ]));
    delivery
}

fn assignment(task: &str, reservation: &str, worker: (&str, &str), arrival: i64, answer: &str) -> Delivery {
    let params = pairs(&[
        ("TaskSid", task.into()),
        ("ReservationSid", reservation.into()),
        ("WorkerSid", worker.0.into()),
        ("WorkflowSid", WORKFLOW.into()),
        ("TaskQueueSid", QUEUE.into()),
        ("TaskAttributes", r#"{"selected_product":"support"}"#.into()),
        ("TaskPriority", "1".into()),
        ("TaskAge", "3".into()),
    ]);
    Delivery { endpoint: Endpoint::Assignment, params, arrival_ms: arrival, response: Some(answer.into()) }
}

fn activity_update(worker: (&str, &str), at: i64, from: &str, to: &str) -> Delivery {
    let params = pairs(&[
        ("EventType", "worker.activity.update".into()),
        ("Sid", event_sid(&format!("activity{}{at}", worker.0))),
        ("TimestampMs", at.to_string()),
        ("WorkerSid", worker.0.into()),
        ("WorkerName", worker.1.into()),
        ("WorkerActivitySid", format!("WA{:0>32}", to.len())),
        ("WorkerActivityName", to.into()),
        ("WorkerPreviousActivityName", from.into()),
        ("ResourceType", "worker".into()),
        ("ResourceSid", worker.0.into()),
    ]);
    Delivery { endpoint: Endpoint::Events, params, arrival_ms: at + 30, response: None }
}

fn wr(task: &str, n: u32) -> String {
    format!("WR{}{n:02}", &task[4..34])
}

/// The opening every captured task has: four events, target-matched 1 ms before task.created.
fn opening(task: &str, t: i64) -> Vec<Delivery> {
    vec![
        task_event("task-queue.entered", task, t),
        task_event("workflow.entered", task, t),
        task_event("task.created", task, t),
        task_event("workflow.target-matched", task, t - 1),
    ]
}

fn happy(task: &str, t: i64) -> Vec<Delivery> {
    let r = wr(task, 1);
    let mut d = opening(task, t);
    d.extend([
        reservation_event("reservation.created", task, &r, ALICE, t + 56),
        assignment(task, &r, ALICE, t + 60, "{}"),
        reservation_event("reservation.accepted", task, &r, ALICE, t + 3_872),
        task_event("task.wrapup", task, t + 8_033),
        reservation_event("reservation.wrapup", task, &r, ALICE, t + 8_034),
        reservation_event("reservation.completed", task, &r, ALICE, t + 8_887),
        task_event("task.completed", task, t + 8_887),
        task_event("task.updated", task, t + 8_891),
    ]);
    d
}

fn timeout_then_accept(task: &str, t: i64) -> Vec<Delivery> {
    let (r1, r2) = (wr(task, 1), wr(task, 2));
    let mut d = opening(task, t);
    d.extend([
        reservation_event("reservation.created", task, &r1, ALICE, t + 50),
        assignment(task, &r1, ALICE, t + 52, "{}"),
        reservation_event("reservation.timeout", task, &r1, ALICE, t + 120_550),
        activity_update(ALICE, t + 120_560, "Available", "Offline"),
        task_event("workflow.target-matched", task, t + 120_570),
        reservation_event("reservation.created", task, &r2, BOB, t + 120_600),
        assignment(task, &r2, BOB, t + 120_603, r#"{"instruction":"accept"}"#),
        reservation_event("reservation.accepted", task, &r2, BOB, t + 120_700),
    ]);
    d
}

fn reject_then_accept(task: &str, t: i64) -> Vec<Delivery> {
    let (r1, r2) = (wr(task, 1), wr(task, 2));
    let mut d = opening(task, t);
    d.extend([
        reservation_event("reservation.created", task, &r1, BOB, t + 50),
        reservation_event("reservation.rejected", task, &r1, BOB, t + 4_050),
        activity_update(BOB, t + 4_051, "Available", "Break"),
        reservation_event("reservation.created", task, &r2, CAROL, t + 4_100),
        reservation_event("reservation.accepted", task, &r2, CAROL, t + 6_100),
    ]);
    d
}

/// Corpus 31's shape: three parallel reservations, two rescinded (stamped before the accept).
fn three_parallel(task: &str, t: i64) -> Vec<Delivery> {
    let r: Vec<String> = (1..=3).map(|n| wr(task, n)).collect();
    let mut d = opening(task, t);
    d.extend([
        reservation_event("reservation.created", task, &r[0], ALICE, t + 56),
        reservation_event("reservation.created", task, &r[1], BOB, t + 62),
        reservation_event("reservation.created", task, &r[2], CAROL, t + 98),
        reservation_event("reservation.rescinded", task, &r[0], ALICE, t + 3_086),
        reservation_event("reservation.rescinded", task, &r[1], BOB, t + 3_093),
        task_event("task.updated", task, t + 3_835),
        reservation_event("reservation.accepted", task, &r[2], CAROL, t + 3_872),
        task_event("task.wrapup", task, t + 8_033),
        reservation_event("reservation.wrapup", task, &r[2], CAROL, t + 8_034),
        reservation_event("reservation.completed", task, &r[2], CAROL, t + 8_887),
        task_event("task.completed", task, t + 8_887),
    ]);
    d
}

/// Corpus 30's shape: seven reservations canceled one after another, then the task canceled.
fn seven_canceled(task: &str, t: i64) -> Vec<Delivery> {
    let mut d = opening(task, t);
    let mut at = t + 3_209;
    for n in 1..=7 {
        let r = wr(task, n);
        d.push(task_event("workflow.target-matched", task, at));
        d.push(reservation_event("reservation.created", task, &r, ALICE, at + 35));
        d.push(reservation_event("reservation.canceled", task, &r, ALICE, at + 4_300));
        at += 4_310;
    }
    d.push(task_event("task.canceled", task, at));
    d.push(task_event("task.updated", task, at + 5));
    d
}

fn canceled_in_queue(task: &str, t: i64) -> Vec<Delivery> {
    let mut d = opening(task, t);
    d.push(task_event("task.canceled", task, t + 9_000));
    d
}

fn ttl_canceled(task: &str, t: i64) -> Vec<Delivery> {
    let mut d = opening(task, t);
    let mut cancel = task_event("task.canceled", task, t + 86_400_000);
    for (name, value) in cancel.params.iter_mut() {
        if name == "EventDescription" {
            *value = "Task TTL Exceeded".into();
        }
    }
    cancel.params.retain(|(n, _)| n != "TaskCanceledReason");
    d.push(cancel);
    d
}

fn workflow_timeout(task: &str, t: i64) -> Vec<Delivery> {
    let r = wr(task, 1);
    let mut d = opening(task, t);
    d.extend([
        reservation_event("reservation.created", task, &r, ALICE, t + 50),
        reservation_event("reservation.rejected", task, &r, ALICE, t + 2_000),
        task_event("workflow.timeout", task, t + 300_000),
        task_event("task.canceled", task, t + 300_000),
    ]);
    d
}

fn record(delivery: &Delivery) -> NewRecord {
    let body = encode_form(&delivery.params);
    let params = parse_form(body.as_bytes()).expect("well-formed");
    let facts = extract_facts(delivery.endpoint, &params, delivery.arrival_ms).expect("facts");
    NewRecord {
        kind: RecordKind::Webhook,
        received_at_ms: delivery.arrival_ms,
        endpoint: delivery.endpoint.as_str().into(),
        method: "POST".into(),
        path: format!("/webhooks/{}", delivery.endpoint.as_str()),
        headers: Vec::new(),
        body: body.into_bytes(),
        body_truncated: false,
        remote_addr: None,
        signature_verdict: "unchecked",
        signature_detail: None,
        rejection: None,
        response_status: 200,
        response_body: delivery.response.clone(),
        upstream: None,
        related_to: None,
        facts: Some(facts),
        params: Some(params),
        trusted: true,
        idempotency_token: None,
        encoded: None,
        skip_if_known: false,
    }
}

fn to_fact(id: i64, delivery: &Delivery) -> Fact {
    let record = record(delivery);
    Fact::from_parts(
        id,
        record.facts.as_ref().unwrap(),
        record.params.as_ref(),
        record.response_body.as_deref(),
    )
}

/// Folds `deliveries` (log ids in the given order) as the SQL shell would for [`TASK`].
fn fold(deliveries: &[Delivery]) -> TaskProjection {
    fold_with(deliveries, &ProjectionConfig::default())
}

fn fold_with(deliveries: &[Delivery], config: &ProjectionConfig) -> TaskProjection {
    let facts: Vec<Fact> = deliveries.iter().enumerate().map(|(i, d)| to_fact(i as i64 + 1, d)).collect();
    let (task, workers): (Vec<Fact>, Vec<Fact>) = facts.into_iter().partition(|f| f.task_sid.is_some());
    fold_task(TASK, &task, &workers, config)
}

fn kinds(projection: &TaskProjection) -> Vec<&str> {
    projection.timeline.iter().map(|e| e.kind.as_str()).collect()
}

fn flag<'a>(projection: &'a TaskProjection, kind: &str) -> Vec<&'a super::fold::Flag> {
    projection.flags.iter().filter(|f| f.kind == kind).collect()
}

fn open_database() -> rusqlite::Connection {
    let connection = rusqlite::Connection::open_in_memory().expect("in-memory database");
    crate::storage::apply_schema(&connection).expect("schema");
    connection
}

/// Appends deliveries as the writer does (a duplicate body or event Sid is stored but is not a
/// fact) and applies the new facts, in one transaction with a roomy cache.
fn ingest(connection: &mut rusqlite::Connection, deliveries: &[Delivery], config: &ProjectionConfig) {
    ingest_in_chunks(
        connection,
        deliveries,
        config,
        deliveries.len().max(1),
        super::engine::TASK_CACHE_CAPACITY,
    );
}

/// As [`ingest`], `per_transaction` deliveries per transaction, with an engine that keeps at
/// most `capacity` tasks in memory (so tasks are evicted and read back from the log).
fn ingest_in_chunks(
    connection: &mut rusqlite::Connection,
    deliveries: &[Delivery],
    config: &ProjectionConfig,
    per_transaction: usize,
    capacity: usize,
) {
    let engine = super::Engine::new(config.clone()).with_capacity(capacity);
    ingest_with_engine(connection, deliveries, per_transaction, engine, |_| {});
}

/// As [`ingest_in_chunks`] with a given engine; `after_commit` sees it after each transaction.
fn ingest_with_engine(
    connection: &mut rusqlite::Connection,
    deliveries: &[Delivery],
    per_transaction: usize,
    mut engine: super::Engine,
    mut after_commit: impl FnMut(&super::Engine),
) {
    let mut seen = HashSet::new();
    for chunk in deliveries.chunks(per_transaction) {
        let tx = connection.transaction().expect("transaction");
        let mut head = event_log::head(&tx).expect("head");
        let mut follow_ups = Vec::new();
        for delivery in chunk {
            let record = record(delivery);
            let key = record
                .facts
                .as_ref()
                .unwrap()
                .event_sid
                .clone()
                .unwrap_or_else(|| encode_form(&delivery.params));
            let is_fact = seen.insert(key);
            head = event_log::append(
                &tx,
                head,
                &record,
                AppendDecision { duplicate_of: None, is_fact, related_to: None },
            )
            .expect("append");
            follow_ups.push(FollowUp::of(head.id, &record, is_fact, 0));
        }
        // What the writer thread does after the append commits, here in the same transaction.
        projector::follow_in(&tx, &mut engine, follow_ups).expect("project");
        tx.commit().expect("commit");
        after_commit(&engine);
    }
}

type Scenario = fn(&str, i64) -> Vec<Delivery>;
const SCENARIOS: [Scenario; 8] = [
    happy,
    timeout_then_accept,
    reject_then_accept,
    three_parallel,
    seven_canceled,
    canceled_in_queue,
    ttl_canceled,
    workflow_timeout,
];

fn lifecycles(picks: &[usize]) -> Vec<Delivery> {
    picks
        .iter()
        .enumerate()
        .flat_map(|(i, pick)| {
            let task = format!("WT{:032x}", 0xabc0 + i);
            SCENARIOS[pick % SCENARIOS.len()](&task, T0 + i as i64 * 7_000)
        })
        .collect()
}
