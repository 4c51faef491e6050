//! Tests of the lifecycle folds (pure, no database) and a property test of the SQL shell:
//! shuffled, duplicated and dropped deliveries against in-order delivery and a full rebuild.

use std::collections::HashSet;

use proptest::prelude::*;

use super::fold::{fold_task, overdue_flag, ProjectionConfig, TaskProjection};
use super::Fact;
use crate::storage::event_log::{self, AppendDecision, NewRecord, RecordKind};
use crate::storage::projector::{self, FollowUp};
use taskrouter_protocol::webhook::{encode_form, extract_facts, parse_form};
use taskrouter_protocol::Endpoint;

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

#[test]
fn happy_path_orders_ties_causally_and_completes() {
    let p = fold(&happy(TASK, T0));
    assert_eq!(
        kinds(&p),
        [
            "task.created",
            "workflow.entered",
            "task-queue.entered",
            "workflow.target-matched",
            "reservation.created",
            "assignment",
            "reservation.accepted",
            "task.wrapup",
            "reservation.wrapup",
            "reservation.completed",
            "task.completed",
            "task.updated"
        ]
    );
    assert_eq!(p.task.status, "completed");
    assert_eq!(p.task.created_at_ms, Some(T0));
    assert_eq!(p.task.assigned_at_ms, Some(T0 + 3_872));
    assert_eq!(p.task.finished_at_ms, Some(T0 + 8_887));
    assert_eq!(p.task.reservation_count, 1);
    let r = &p.reservations[0];
    assert_eq!((r.status.as_str(), r.pending_ms, r.timeout_ms), ("completed", Some(3_816), 120_000));
    assert!(r.callback_answer.as_deref().unwrap().starts_with("{}"));
    assert_eq!(r.callback_event_id, Some(6));
    assert_eq!(p.timeline[5].evidence, vec![6]);
    assert_eq!(p.timeline[5].time_source, "arrival");
    assert!(p.flags.is_empty(), "{:?}", p.flags);
}

#[test]
fn timeout_then_re_reserve_and_accept_explains_the_timeout() {
    let p = fold(&timeout_then_accept(TASK, T0));
    assert_eq!(p.task.status, "assigned");
    assert_eq!(p.task.reservation_count, 2);
    assert_eq!(p.reservations[0].status, "timeout");
    assert_eq!(p.reservations[1].status, "accepted");
    let timeouts = flag(&p, "timeout");
    assert_eq!(timeouts.len(), 1);
    let text = &timeouts[0].explanation;
    assert!(text.contains("stayed pending 120.5 s against a reservation timeout of 120.0 s"), "{text}");
    assert!(text.contains("answered {}") && text.contains("no accept was ever made"), "{text}");
    assert!(text.contains("went to Offline (from Available) 10 ms later"), "{text}");
    // created, callback, timeout, activity update
    assert_eq!(timeouts[0].evidence, vec![5, 6, 7, 8]);
    assert_eq!(p.flags.len(), 1);
}

#[test]
fn per_workflow_timeout_applies() {
    let mut config = ProjectionConfig::default();
    config.workflow_reservation_timeouts_ms.insert(WORKFLOW.into(), 30_000);
    let p = fold_with(&timeout_then_accept(TASK, T0), &config);
    assert_eq!(p.reservations[0].timeout_ms, 30_000);
    assert!(flag(&p, "timeout")[0].explanation.contains("timeout of 30.0 s"));
}

#[test]
fn accept_after_the_timeout_is_too_late_and_impossible() {
    let r = wr(TASK, 1);
    let mut d = opening(TASK, T0);
    d.extend([
        reservation_event("reservation.created", TASK, &r, ALICE, T0 + 50),
        reservation_event("reservation.timeout", TASK, &r, ALICE, T0 + 120_050),
        reservation_event("reservation.accepted", TASK, &r, ALICE, T0 + 121_550),
    ]);
    let p = fold(&d);
    let text = &flag(&p, "timeout")[0].explanation;
    assert!(text.contains("accept was made too late") && text.contains("1.5 s after the timeout"), "{text}");
    assert!(text.contains("No activity change"), "{text}");
    assert_eq!(flag(&p, "impossible").len(), 1);
    assert_eq!(p.task.status, "pending");
}

#[test]
fn reject_names_the_workers_new_activity() {
    let p = fold(&reject_then_accept(TASK, T0));
    assert_eq!(p.task.status, "assigned");
    let rejected = flag(&p, "rejected");
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].explanation.contains("bob rejected"), "{}", rejected[0].explanation);
    assert!(rejected[0].explanation.contains("went to Break"), "{}", rejected[0].explanation);
}

#[test]
fn three_parallel_reservations_two_rescinded_one_completed() {
    let p = fold(&three_parallel(TASK, T0));
    assert_eq!(p.task.status, "completed");
    assert_eq!(p.task.reservation_count, 3);
    let statuses: Vec<&str> = p.reservations.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["rescinded", "rescinded", "completed"]);
    let rescinded = flag(&p, "rescinded");
    assert_eq!(rescinded.len(), 2);
    assert!(rescinded[0].explanation.contains(&format!("{} (carol) was accepted", wr(TASK, 3))));
    assert_eq!(p.flags.len(), 2, "{:?}", p.flags);
}

#[test]
fn seven_canceled_reservations_then_task_canceled() {
    let p = fold(&seven_canceled(TASK, T0));
    assert_eq!(p.task.status, "canceled");
    assert_eq!(p.task.cancel_cause.as_deref(), Some("hangup"));
    assert_eq!(p.task.reservation_count, 7);
    assert!(p.reservations.iter().all(|r| r.status == "canceled"));
    assert!(p.flags.is_empty(), "{:?}", p.flags);
    assert_eq!(p.timeline.len(), 4 + 21 + 2);
}

#[test]
fn task_canceled_in_queue() {
    let p = fold(&canceled_in_queue(TASK, T0));
    assert_eq!((p.task.status.as_str(), p.task.cancel_cause.as_deref()), ("canceled", Some("hangup")));
    assert!(p.reservations.is_empty() && p.flags.is_empty());
}

#[test]
fn ttl_cancel_is_named() {
    let p = fold(&ttl_canceled(TASK, T0));
    assert_eq!((p.task.status.as_str(), p.task.cancel_cause.as_deref()), ("canceled", Some("ttl")));
}

#[test]
fn workflow_timeout_cancels() {
    let p = fold(&workflow_timeout(TASK, T0));
    assert_eq!(p.task.status, "canceled");
    assert_eq!(p.task.cancel_cause.as_deref(), Some("workflow-timeout"));
    assert_eq!(kinds(&p).last(), Some(&"task.canceled"));
}

#[test]
fn out_of_order_delivery_gives_the_same_projection() {
    let in_order = happy(TASK, T0);
    let facts: Vec<Fact> = in_order.iter().enumerate().map(|(i, d)| to_fact(i as i64 + 1, d)).collect();
    let mut reversed = facts.clone();
    reversed.reverse();
    let config = ProjectionConfig::default();
    assert_eq!(fold_task(TASK, &facts, &[], &config), fold_task(TASK, &reversed, &[], &config));
}

#[test]
fn duplicate_delivery_changes_nothing() {
    let deliveries = happy(TASK, T0);
    let once = fold(&deliveries);
    let mut twice = deliveries.clone();
    twice.push(deliveries[6].clone());
    twice.push(deliveries[0].clone());
    let p = fold(&twice);
    assert_eq!(p.task, once.task);
    assert_eq!(p.reservations, once.reservations);
    assert_eq!(kinds(&p), kinds(&once));
    assert_eq!(p.flags, once.flags);
}

#[test]
fn missing_task_created_and_accept_without_reservation_are_gaps() {
    let r = wr(TASK, 1);
    let d = vec![
        task_event("task-queue.entered", TASK, T0),
        reservation_event("reservation.accepted", TASK, &r, ALICE, T0 + 500),
        task_event("task.completed", TASK, T0 + 900),
    ];
    let p = fold(&d);
    let gaps = flag(&p, "gap");
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert!(gaps[0].explanation.contains("No task.created"));
    assert!(
        gaps[1].explanation.contains("reservation.accepted arrived")
            && gaps[1].explanation.contains("never recorded")
    );
    assert_eq!(p.task.status, "completed");
}

#[test]
fn completion_without_accept_and_outcome_after_final_are_flagged() {
    let r = wr(TASK, 1);
    let mut d = opening(TASK, T0);
    d.extend([
        reservation_event("reservation.created", TASK, &r, ALICE, T0 + 50),
        task_event("task.completed", TASK, T0 + 900),
        reservation_event("reservation.accepted", TASK, &r, ALICE, T0 + 1_000),
    ]);
    let p = fold(&d);
    assert!(flag(&p, "gap").iter().any(|f| f.explanation.contains("no reservation.accepted")));
    assert!(flag(&p, "impossible").iter().any(|f| f.explanation.contains("already completed")));
}

#[test]
fn cancel_after_an_accept_attempt_is_flagged() {
    let r = wr(TASK, 1);
    let mut d = opening(TASK, T0);
    d.extend([
        reservation_event("reservation.created", TASK, &r, ALICE, T0 + 50),
        assignment(TASK, &r, ALICE, T0 + 55, r#"{"instruction":"dequeue","from":"+15550000101"}"#),
        reservation_event("reservation.canceled", TASK, &r, ALICE, T0 + 2_055),
        task_event("task.canceled", TASK, T0 + 2_058),
    ]);
    let p = fold(&d);
    let canceled = flag(&p, "canceled-after-accept");
    assert_eq!(canceled.len(), 1);
    assert!(
        canceled[0].explanation.contains("canceled 2.0 s after an accept attempt"),
        "{}",
        canceled[0].explanation
    );
}

#[test]
fn overdue_is_judged_against_the_latest_fact() {
    let r = wr(TASK, 1);
    let mut d = opening(TASK, T0);
    d.push(reservation_event("reservation.created", TASK, &r, ALICE, T0 + 50));
    let p = fold(&d);
    let pending = &p.reservations[0];
    assert!(overdue_flag(pending, T0 + 50 + 120_000).is_none());
    let flag = overdue_flag(pending, T0 + 50 + 130_000).expect("overdue");
    assert!(flag.explanation.contains("pending 130.0 s"), "{}", flag.explanation);
    assert_eq!(flag.evidence, vec![5]);
}

// ---- the SQL shell: incremental == rebuild == in order ----

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

/// A log file holding 400 lifecycles, ingested: more rows than the rebuild's readers take in
/// two rounds of chunks. The directory must outlive the connection.
fn file_log(config: &ProjectionConfig) -> (tempfile::TempDir, rusqlite::Connection, Vec<Delivery>) {
    let directory = tempfile::tempdir().unwrap();
    let mut connection = rusqlite::Connection::open(directory.path().join("log.db")).unwrap();
    crate::storage::apply_schema(&connection).unwrap();
    let deliveries = lifecycles(&(0..400).collect::<Vec<_>>());
    ingest(&mut connection, &deliveries, config);
    (directory, connection, deliveries)
}

#[test]
fn a_rebuild_of_a_file_database_reads_on_other_threads_and_matches_ingest() {
    let config = ProjectionConfig::default();
    let (_directory, mut connection, deliveries) = file_log(&config);
    // Every reader reads more than one chunk, and the last chunk is partial.
    let rows = deliveries.len() as i64;
    assert!(rows > 2 * super::REBUILD_READERS as i64 * super::REBUILD_CHUNK_IDS, "{rows} deliveries");
    assert_ne!(rows % super::REBUILD_CHUNK_IDS, 0);
    let incremental = super::dump(&connection).unwrap();
    let indexes = |connection: &rusqlite::Connection| -> Vec<(String, Option<String>)> {
        let mut statement = connection
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name")
            .unwrap();
        statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    let indexes_before = indexes(&connection);
    assert!(indexes_before.iter().any(|(name, _)| name == "proj_tasks_flagged"));

    let report = super::rebuild(&mut connection, &config, |_, _| {}).unwrap();
    assert_eq!(report.facts, deliveries.len() as u64);
    assert_eq!(super::dump(&connection).unwrap(), incremental);
    // The indexes dropped while it wrote are back, as they were.
    assert_eq!(indexes(&connection), indexes_before);
}

#[test]
fn a_rebuild_whose_reader_fails_changes_nothing_and_says_why() {
    let config = ProjectionConfig::default();
    let (_directory, mut connection, _) = file_log(&config);
    let before = super::dump(&connection).unwrap();
    // A stored payload that no longer decodes, in the second reader's second chunk (the log's
    // guard against edits is lifted for the test).
    let damaged = 3 * super::REBUILD_CHUNK_IDS + 7;
    connection.execute_batch("DROP TRIGGER events_reject_update").unwrap();
    connection
        .execute(
            "UPDATE events SET body = x'28b52ffd00', payload_encoding = 'zstd-d1' WHERE id = ?1",
            [damaged],
        )
        .unwrap();

    let error = super::rebuild(&mut connection, &config, |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("corrupt"), "{error}");
    assert_eq!(super::dump(&connection).unwrap(), before, "a failed rebuild is rolled back");
}

#[test]
fn a_byte_budget_bounds_the_cache_and_changes_no_projection() {
    let config = ProjectionConfig::default();
    let deliveries = lifecycles(&(0..24).collect::<Vec<_>>());
    let mut roomy = open_database();
    ingest(&mut roomy, &deliveries, &config);

    // Room for about two facts: most tasks leave memory between their facts and come back.
    let budget = 2 * 2_048;
    let mut bounded = open_database();
    let mut most_cached = 0;
    let engine = super::Engine::new(config.clone()).with_byte_budget(budget);
    ingest_with_engine(&mut bounded, &deliveries, 3, engine, |engine| {
        let (_, bytes) = engine.cached();
        most_cached = most_cached.max(bytes);
        assert!(bytes <= budget, "{bytes} bytes cached over a budget of {budget}");
    });
    assert!(most_cached > 0, "the cache was used at all");
    assert_eq!(super::dump(&roomy).unwrap(), super::dump(&bounded).unwrap());
}

#[test]
fn finished_tasks_leave_memory_before_tasks_still_in_flight() {
    let config = ProjectionConfig::default();
    // One long task waits in its queue while eight short ones come and go, then it is served.
    let waiting = happy("WT00000000000000000000000000000a11", T0);
    let (opened, served) = waiting.split_at(4);
    let mut deliveries = opened.to_vec();
    for i in 0..8 {
        deliveries.extend(canceled_in_queue(&format!("WT{:032x}", 0xb0 + i), T0 + 1_000 + i as i64 * 100));
    }
    deliveries.extend_from_slice(served);
    let mut roomy = open_database();
    ingest(&mut roomy, &deliveries, &config);

    // Room for four tasks: past it, a least-recently-used policy would drop the waiting task
    // (touched longest ago) and read it back from the log for its reservation.
    let mut bounded = open_database();
    let mut read_back = 0;
    let engine = super::Engine::new(config.clone()).with_capacity(4);
    ingest_with_engine(&mut bounded, &deliveries, 5, engine, |engine| read_back = engine.stats.loads);
    // A task restored from its stored state would count: none was, as none came back.
    assert_eq!(read_back, 0, "the waiting task stayed in memory; finished ones left");
    assert_eq!(super::dump(&roomy).unwrap(), super::dump(&bounded).unwrap());
}

#[test]
fn late_earlier_facts_update_the_indexed_columns_they_change() {
    // Delivered newest first, one per transaction: each later delivery is an earlier fact, so
    // it moves the task's first fact back and (for reservation.created, after the assignment
    // callback and the accept) sets the reservation's creation time. Those columns are written
    // by their own statements, only when they change (see `store::write_changes`).
    let config = ProjectionConfig::default();
    let mut deliveries = three_parallel(TASK, T0);
    deliveries.reverse();
    let mut incremental = open_database();
    ingest_in_chunks(&mut incremental, &deliveries, &config, 1, super::engine::TASK_CACHE_CAPACITY);
    let mut rebuilt = open_database();
    ingest(&mut rebuilt, &deliveries, &config);
    super::rebuild(&mut rebuilt, &config, |_, _| {}).unwrap();
    assert_eq!(super::dump(&incremental).unwrap(), super::dump(&rebuilt).unwrap());

    // Read through the indexes themselves, not the table: the task is found under its first
    // fact (the earliest delivered last).
    let earliest = deliveries.iter().map(|d| to_fact(1, d).occurred_at_ms).min().unwrap();
    let found: String = incremental
        .query_row(
            "SELECT task_sid FROM proj_tasks INDEXED BY proj_tasks_first WHERE first_fact_at_ms = ?1",
            [earliest],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, TASK);
    let created: Vec<(String, Option<i64>)> = incremental
        .prepare("SELECT reservation_sid, created_at_ms FROM proj_reservations INDEXED BY proj_reservations_task WHERE task_sid = ?1 ORDER BY 1")
        .unwrap()
        .query_map([TASK], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(created.len(), 3, "{created:?}");
    assert!(created.iter().all(|(_, at)| at.is_some_and(|at| at > T0)), "{created:?}");
}

#[test]
fn a_reservation_sid_filed_under_two_tasks_rebuilds_as_it_was_ingested() {
    // Malformed input: another task's events carry this task's reservation Sid. A rebuild's
    // first write of the second task finds the row taken, and falls back to the statements
    // that move it (see `store::write_changes`), as ingest did.
    let config = ProjectionConfig::default();
    let other = "WT00000000000000000000000000000002";
    let shared = wr(TASK, 1);
    let mut deliveries = happy(TASK, T0);
    deliveries.extend(opening(other, T0 + 20_000));
    deliveries.push(reservation_event("reservation.created", other, &shared, BOB, T0 + 20_056));
    let mut database = open_database();
    ingest(&mut database, &deliveries, &config);
    let incremental = super::dump(&database).unwrap();
    super::rebuild(&mut database, &config, |_, _| {}).unwrap();
    assert_eq!(incremental, super::dump(&database).unwrap());
    let filed: Vec<(String, String)> = database
        .prepare("SELECT task_sid, worker_sid FROM proj_reservations WHERE reservation_sid = ?1")
        .unwrap()
        .query_map([&shared], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(filed, vec![(other.to_string(), BOB.0.to_string())]);
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_order_matches_in_order_and_rebuild(
        picks in proptest::collection::vec(0usize..8, 1..4),
        order_seed in any::<u64>(),
        duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        drops in proptest::collection::vec(any::<prop::sample::Index>(), 0..2),
    ) {
        let config = ProjectionConfig::default();
        let canonical = lifecycles(&picks);
        let mut delivered: Vec<Delivery> = canonical.clone();
        let dropped: HashSet<usize> = drops.iter().map(|i| i.index(canonical.len())).collect();
        delivered = delivered.into_iter().enumerate().filter(|(i, _)| !dropped.contains(i)).map(|(_, d)| d).collect();
        for index in &duplicates {
            if !delivered.is_empty() {
                let copy = delivered[index.index(delivered.len())].clone();
                delivered.push(copy);
            }
        }
        // A deterministic shuffle from the seed (Fisher–Yates over a xorshift stream).
        let mut state = order_seed | 1;
        for i in (1..delivered.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            delivered.swap(i, (state % (i as u64 + 1)) as usize);
        }

        let mut shuffled = open_database();
        ingest(&mut shuffled, &delivered, &config);
        let incremental = super::dump(&shuffled).unwrap();
        let incremental_without_ids = super::dump_without_ids(&shuffled);
        super::rebuild(&mut shuffled, &config, |_, _| {}).unwrap();
        prop_assert_eq!(&incremental, &super::dump(&shuffled).unwrap());

        // One fact per transaction and room for one task: every other fact reads its task back
        // from the log, and evictions write tasks out mid-stream.
        let mut evicting = open_database();
        ingest_in_chunks(&mut evicting, &delivered, &config, 1 + (order_seed % 3) as usize, 1);
        prop_assert_eq!(&incremental, &super::dump(&evicting).unwrap());

        if dropped.is_empty() {
            let mut in_order = open_database();
            ingest(&mut in_order, &canonical, &config);
            prop_assert_eq!(incremental_without_ids, super::dump_without_ids(&in_order));
        }
    }
}

// ---- long tasks: cost that does not grow with history ----

/// A reservation loop: `rounds` reservations of one task, each reserved, called back, then
/// rejected or timed out (alternately, with the worker's activity change after it), with a
/// `task.updated` between rounds; the last one is accepted and the task completes.
fn reservation_loop(task: &str, t: i64, rounds: u32) -> Vec<Delivery> {
    let mut d = opening(task, t);
    let mut at = t + 100;
    for n in 0..rounds {
        let r = format!("WR{}{:08x}", &task[10..34], n + 1);
        let worker = [ALICE, BOB, CAROL][n as usize % 3];
        d.push(reservation_event("reservation.created", task, &r, worker, at));
        d.push(assignment(task, &r, worker, at + 3, "{}"));
        if n + 1 == rounds {
            d.push(reservation_event("reservation.accepted", task, &r, worker, at + 900));
            d.push(task_event("task.updated", task, at + 2_000));
            d.push(reservation_event("reservation.completed", task, &r, worker, at + 5_000));
            d.push(task_event("task.completed", task, at + 5_000));
            break;
        } else if n % 2 == 0 {
            d.push(reservation_event("reservation.rejected", task, &r, worker, at + 700));
            d.push(activity_update(worker, at + 701, "Available", "Break"));
        } else {
            d.push(reservation_event("reservation.timeout", task, &r, worker, at + 1_500));
            d.push(activity_update(worker, at + 1_502, "Available", "Offline"));
        }
        d.push(task_event("task.updated", task, at + 2_000));
        at += 2_100;
    }
    d
}

/// The first line where two dumps differ, with the table it is in.
fn first_difference(a: &str, b: &str) -> Option<Difference> {
    let mut table = String::new();
    for (x, y) in a.lines().zip(b.lines()) {
        if x.starts_with("== ") || x == "--" {
            table = x.to_string();
        }
        if x != y {
            return Some((table, x.chars().take(600).collect(), y.chars().take(600).collect()));
        }
    }
    (a.lines().count() != b.lines().count()).then(|| (table, "(line counts differ)".into(), String::new()))
}

/// The table where two dumps first differ, and that line of each.
type Difference = (String, String, String);

/// How the projections of `ingested` differ from a rebuild of its log, and (ids aside) from
/// `canonical` delivered in order: the first difference of each.
fn differences_from_rebuild_and_in_order(
    ingested: &mut rusqlite::Connection,
    canonical: &[Delivery],
    config: &ProjectionConfig,
) -> (Option<Difference>, Option<Difference>) {
    let incremental = super::dump(ingested).unwrap();
    let without_ids = super::dump_without_ids(ingested);
    super::rebuild(ingested, config, |_, _| {}).unwrap();
    let from_rebuild = first_difference(&incremental, &super::dump(ingested).unwrap());
    let mut in_order = open_database();
    ingest(&mut in_order, canonical, config);
    (from_rebuild, first_difference(&without_ids, &super::dump_without_ids(&in_order)))
}

/// Moves each delivery up to `distance` places later, as a network reorders a stream.
fn reorder_locally(deliveries: &mut [Delivery], distance: usize, seed: u64) {
    let mut state = seed | 1;
    for i in (0..deliveries.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (i + (state % (distance as u64 + 1)) as usize).min(deliveries.len() - 1);
        deliveries.swap(i, j);
    }
}

#[test]
fn a_hot_task_is_folded_one_fact_at_a_time_and_never_read_back_from_the_log() {
    let config = ProjectionConfig::default();
    let deliveries = reservation_loop(TASK, T0, 400);
    let mut database = open_database();
    let mut most_cached = 0;
    let engine = super::Engine::new(config.clone());
    let mut stats = super::engine::EngineStats::default();
    ingest_with_engine(&mut database, &deliveries, 1, engine, |engine| {
        most_cached = most_cached.max(engine.cached().1);
        stats = engine.stats;
    });
    assert_eq!(stats.facts, deliveries.len() as u64);
    // Only the captured opening comes out of order (task.created after the queue and workflow
    // events, the target match stamped before it): in memory, so its window re-folds.
    assert_eq!((stats.log_refolds, stats.loads), (0, 0), "{stats:?}");
    assert!(stats.window_refolds <= 3, "{stats:?}");
    // The task's state, its reorder window and a few reservations: not its history.
    assert!(most_cached < 160_000, "{most_cached} bytes cached for one task");
    let incremental = super::dump(&database).unwrap();
    super::rebuild(&mut database, &config, |_, _| {}).unwrap();
    assert_eq!(incremental, super::dump(&database).unwrap());
    // Every timeout and rejection is flagged with the worker's next activity.
    let flags: Vec<(String, String)> = database
        .prepare("SELECT kind, explanation FROM proj_flags ORDER BY position")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(flags.len(), 399);
    assert!(flags.iter().all(|(kind, explanation)| {
        matches!(kind.as_str(), "rejected" | "timeout") && explanation.contains(" then went to ")
    }));
}

#[test]
fn a_fact_far_older_than_the_window_refolds_from_a_checkpoint_never_from_the_log() {
    let config = ProjectionConfig::default();
    let canonical = reservation_loop(TASK, T0, 200);
    let mut delivered = canonical.clone();
    // A reservation's creation held back until 300 facts after its place: past the window of
    // 32, well within the checkpoints.
    let held_back = delivered
        .iter()
        .enumerate()
        .filter(|(_, d)| d.params.iter().any(|(k, v)| k == "EventType" && v == "reservation.created"))
        .nth(40)
        .map(|(at, _)| at)
        .unwrap();
    let late = delivered.remove(held_back);
    delivered.insert(held_back + 300, late);

    let mut shuffled = open_database();
    let engine = super::Engine::new(config.clone());
    let mut stats = super::engine::EngineStats::default();
    ingest_with_engine(&mut shuffled, &delivered, 3, engine, |engine| stats = engine.stats);
    assert_eq!((stats.checkpoint_refolds, stats.log_refolds), (1, 0), "{stats:?}");
    let (from_rebuild, from_in_order) =
        differences_from_rebuild_and_in_order(&mut shuffled, &canonical, &config);
    assert_eq!(from_rebuild, None);
    assert_eq!(from_in_order, None);
}

#[test]
fn a_task_that_leaves_memory_is_restored_from_its_stored_state() {
    let config = ProjectionConfig::default();
    let deliveries = reservation_loop(TASK, T0, 60);
    let mut roomy = open_database();
    ingest(&mut roomy, &deliveries, &config);

    // Room for almost nothing: the task leaves memory after every transaction and comes back.
    let mut bounded = open_database();
    let engine = super::Engine::new(config.clone()).with_byte_budget(1);
    let mut stats = Vec::new();
    ingest_with_engine(&mut bounded, &deliveries, 4, engine, |engine| stats.push(engine.stats));
    let (opening, last) = (stats[0], stats[stats.len() - 1]);
    assert!(last.loads > 60, "{last:?}");
    // The opening's out-of-order facts found no window once the task had left memory; every
    // fact after it was folded into the restored state, never from the log.
    assert_eq!(last.log_refolds, opening.log_refolds, "{last:?}");
    assert_eq!(super::dump(&roomy).unwrap(), super::dump(&bounded).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Long tasks delivered out of order within a few places, or far out of order, in
    /// transactions of a few facts, with room for few tasks and reservations: the window
    /// re-folds (beyond it, its checkpoints and the log) give exactly what in-order delivery and
    /// a rebuild give.
    #[test]
    fn long_tasks_delivered_out_of_order_match_in_order_and_rebuild(
        rounds in 10u32..40,
        distance in prop_oneof![Just(2usize), Just(8), Just(60)],
        order_seed in any::<u64>(),
        per_transaction in 1usize..5,
        capacity in prop_oneof![Just(1usize), Just(3), Just(64)],
    ) {
        let config = ProjectionConfig::default();
        let other = "WT00000000000000000000000000000009";
        let mut canonical = reservation_loop(TASK, T0, rounds);
        canonical.extend(reservation_loop(other, T0 + 500, rounds / 2 + 1));
        canonical.sort_by_key(|d| d.arrival_ms);
        let mut delivered = canonical.clone();
        reorder_locally(&mut delivered, distance, order_seed);

        let mut shuffled = open_database();
        let engine = super::Engine::new(config.clone()).with_capacity(capacity);
        let mut stats = super::engine::EngineStats::default();
        ingest_with_engine(&mut shuffled, &delivered, per_transaction, engine, |engine| stats = engine.stats);
        let (from_rebuild, from_in_order) =
            differences_from_rebuild_and_in_order(&mut shuffled, &canonical, &config);
        prop_assert_eq!(from_rebuild, None);
        prop_assert_eq!(from_in_order, None);
        if distance == 2 && capacity == 64 {
            prop_assert_eq!(stats.log_refolds, 0, "{:?}", stats);
        }
    }
}

// ---- measurements (run explicitly; see the commands in each doc comment) ----

/// Realistic deliveries: the scenarios above cycled over `tasks` tasks, 7 s apart.
fn bench_deliveries(tasks: usize) -> Vec<Delivery> {
    let picks: Vec<usize> = (0..tasks).collect();
    lifecycles(&picks)
}

fn append_batches(connection: &mut rusqlite::Connection, records: &[NewRecord], batch: usize, project: bool) {
    let mut engine = super::Engine::new(ProjectionConfig::default());
    for chunk in records.chunks(batch) {
        let tx = connection.transaction().expect("transaction");
        let mut head = event_log::head(&tx).expect("head");
        let mut follow_ups = Vec::new();
        for record in chunk {
            head = event_log::append(
                &tx,
                head,
                record,
                AppendDecision { duplicate_of: None, is_fact: true, related_to: None },
            )
            .expect("append");
            follow_ups.push(FollowUp::of(head.id, record, true, 0));
        }
        if project {
            projector::follow_in(&tx, &mut engine, follow_ups).expect("project");
        }
        tx.commit().expect("commit");
    }
}

/// What the projections add per ingested fact, in the writer's batch shape (512 per transaction).
/// `cargo test --lib measure_projection_cost -- --ignored --nocapture`
#[test]
#[ignore = "measurement"]
fn measure_projection_cost_per_event() {
    let tasks: usize = std::env::var("TRACER_BENCH_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let records: Vec<NewRecord> = bench_deliveries(tasks).iter().map(record).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut timings = Vec::new();
    for project in [false, true] {
        let path = dir.path().join(format!("bench-{project}.db"));
        let mut connection = rusqlite::Connection::open(&path).unwrap();
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
        connection.pragma_update(None, "synchronous", "NORMAL").unwrap();
        crate::storage::apply_schema(&connection).unwrap();
        let started = std::time::Instant::now();
        append_batches(&mut connection, &records, 512, project);
        timings.push(started.elapsed());
    }
    let per_event = |d: std::time::Duration| d.as_secs_f64() * 1e6 / records.len() as f64;
    println!(
        "{} facts ({tasks} tasks): append only {:.1} µs/fact, append + projections {:.1} µs/fact, projections add {:.1} µs/fact",
        records.len(),
        per_event(timings[0]),
        per_event(timings[1]),
        per_event(timings[1]) - per_event(timings[0])
    );
}

/// Writes a log of about `TRACER_BENCH_EVENTS` facts (no projections) to `TRACER_BENCH_DB`, for
/// timing `taskrouter-tracer rebuild --database $TRACER_BENCH_DB`.
/// `TRACER_BENCH_DB=/tmp/x.db TRACER_BENCH_EVENTS=1000000 cargo test --lib generate_bench_log -- --ignored --nocapture`
#[test]
#[ignore = "measurement"]
fn generate_bench_log() {
    let path = std::path::PathBuf::from(std::env::var("TRACER_BENCH_DB").expect("TRACER_BENCH_DB"));
    let target: usize =
        std::env::var("TRACER_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async { crate::storage::open(&path).await.unwrap().pool.close().await });
    let mut connection = rusqlite::Connection::open(&path).unwrap();
    connection.pragma_update(None, "synchronous", "OFF").unwrap();
    let started = std::time::Instant::now();
    let mut written = 0;
    let mut next_task = 0usize;
    while written < target {
        // 2,000 tasks (about 20,000 facts) per transaction.
        let picks: Vec<usize> = (next_task..next_task + 2_000).collect();
        let deliveries: Vec<Delivery> = picks
            .iter()
            .flat_map(|i| {
                let task = format!("WT{i:032x}");
                SCENARIOS[i % SCENARIOS.len()](&task, T0 + *i as i64 * 7_000)
            })
            .take(target - written)
            .collect();
        let records: Vec<NewRecord> = deliveries.iter().map(record).collect();
        append_batches(&mut connection, &records, records.len().max(1), false);
        written += records.len();
        next_task += 2_000;
    }
    println!("wrote {written} facts ({next_task} tasks at most) in {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn transfers_and_failed_reservations_are_recorded() {
    let (r1, r2) = (wr(TASK, 1), wr(TASK, 2));
    let mut d = happy(TASK, T0);
    d.truncate(7); // up to the accept
    d.extend([
        task_event("task.transfer-initiated", TASK, T0 + 5_000),
        reservation_event("reservation.created", TASK, &r2, BOB, T0 + 5_010),
        reservation_event("reservation.failed", TASK, &r2, BOB, T0 + 5_500),
        task_event("task.transfer-failed", TASK, T0 + 5_501),
    ]);
    let p = fold(&d);
    assert_eq!(p.task.status, "assigned", "a failed transfer leaves the task with its first worker");
    assert_eq!(p.task.transfer_count, 1);
    assert_eq!(p.reservations[0].reservation_sid, r1);
    assert_eq!(p.reservations[1].status, "failed");
    assert!(p.flags.is_empty(), "{:?}", p.flags);
}

#[test]
fn reservation_timeouts_come_from_the_command_line_and_environment() {
    use clap::Parser;
    let cli = crate::cli::Cli::parse_from([
        "taskrouter-tracer",
        "rebuild",
        "--reservation-timeout",
        "WW00000000000000000000000000000001=30",
        "--reservation-timeout",
        "WW00000000000000000000000000000002=600",
        "--default-reservation-timeout",
        "90",
    ]);
    let crate::cli::Command::Rebuild(args) = cli.command else { panic!("rebuild") };
    let config = args.projection.config();
    assert_eq!(config.reservation_timeout_ms(Some(WORKFLOW)), 30_000);
    assert_eq!(config.reservation_timeout_ms(Some("WW00000000000000000000000000000002")), 600_000);
    assert_eq!(config.reservation_timeout_ms(None), 90_000);
    assert!(crate::cli::Cli::try_parse_from([
        "taskrouter-tracer",
        "rebuild",
        "--reservation-timeout",
        "WQ1=30"
    ])
    .is_err());
}

#[test]
fn timeline_text_shows_order_evidence_and_flags() {
    let p = fold(&timeout_then_accept(TASK, T0));
    let detail = super::reads::TaskDetail {
        task: p.task,
        reservations: p.reservations,
        timeline: p.timeline,
        flags: p.flags,
        as_of_ms: None,
    };
    let text = super::reads::render_text(&detail);
    assert!(text.starts_with(&format!("Task {TASK}  status assigned")), "{text}");
    assert!(text.contains("reservation.timeout"), "{text}");
    assert!(
        text.contains("Assignment callback for") && text.contains("(alice); we answered {}  [log 6]"),
        "{text}"
    );
    assert!(text.contains("(* our arrival time"), "{text}");
    assert!(text.contains("[timeout] Reservation") && text.contains("(evidence: log 5, 6, 7, 8)"), "{text}");
}

/// Appends every delivery as the writer's transaction does, and takes in only the first
/// `projected` of them as the projections' transactions that follow would: what a kill -9
/// between the two leaves on disk.
fn append_leaving_unprojected(
    connection: &mut rusqlite::Connection,
    deliveries: &[Delivery],
    projected: usize,
) {
    let mut engine = super::Engine::new(ProjectionConfig::default());
    let tx = connection.transaction().expect("transaction");
    let mut head = event_log::head(&tx).expect("head");
    let mut follow_ups = Vec::new();
    for delivery in deliveries {
        let record = record(delivery);
        head = event_log::append(
            &tx,
            head,
            &record,
            AppendDecision { duplicate_of: None, is_fact: true, related_to: None },
        )
        .expect("append");
        follow_ups.push(FollowUp::of(head.id, &record, true, 0));
    }
    follow_ups.truncate(projected);
    projector::follow_in(&tx, &mut engine, follow_ups).expect("project");
    tx.commit().expect("commit");
}

#[test]
fn rows_left_unprojected_by_a_crash_are_taken_in_at_start_exactly_as_a_rebuild_gives_them() {
    let config = ProjectionConfig::default();
    let deliveries = lifecycles(&(0..12).collect::<Vec<_>>());
    let projected = deliveries.len() / 3;
    let mut crashed = open_database();
    append_leaving_unprojected(&mut crashed, &deliveries, projected);
    let through = super::projected_through(&crashed).unwrap();
    assert_eq!(through, projected as i64);
    // The unprojected rows' task SIDs are not referenced yet: the request list could not find them.
    let last_task = deliveries.last().unwrap().params.iter().find(|(k, _)| k == "TaskSid").unwrap().1.clone();
    let references = |connection: &rusqlite::Connection| -> i64 {
        connection
            .query_row(
                "SELECT COUNT(*) FROM sid_refs WHERE sid_key = ?1",
                [event_log::sid_key(&last_task)],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(references(&crashed), 0);

    // What the writer does before it takes requests, with an engine that remembers nothing.
    let read = projector::catch_up(&mut crashed, &mut super::Engine::new(config.clone())).unwrap().rows;
    assert_eq!(read, (deliveries.len() - projected) as u64);
    assert_eq!(super::projected_through(&crashed).unwrap(), deliveries.len() as i64);
    assert!(references(&crashed) > 0, "the rows read back are referenced under their SIDs");

    let mut whole = open_database();
    ingest(&mut whole, &deliveries, &config);
    assert_eq!(super::dump(&crashed).unwrap(), super::dump(&whole).unwrap(), "as if never interrupted");
    let resumed = super::dump(&crashed).unwrap();
    super::rebuild(&mut crashed, &config, |_, _| {}).unwrap();
    assert_eq!(resumed, super::dump(&crashed).unwrap(), "as a rebuild gives them");
}

#[test]
fn a_rebuild_references_the_rows_the_projections_had_not_reached() {
    let config = ProjectionConfig::default();
    let deliveries = lifecycles(&(0..6).collect::<Vec<_>>());
    let mut crashed = open_database();
    append_leaving_unprojected(&mut crashed, &deliveries, 5);
    let unreferenced: i64 = crashed.query_row("SELECT COUNT(*) FROM sid_refs", [], |r| r.get(0)).unwrap();
    super::rebuild(&mut crashed, &config, |_, _| {}).unwrap();
    let mut whole = open_database();
    ingest(&mut whole, &deliveries, &config);
    let count = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT COUNT(*) FROM sid_refs", [], |r| r.get(0)).unwrap()
    };
    assert!(count(&crashed) > unreferenced);
    assert_eq!(count(&crashed), count(&whole));
    assert_eq!(super::dump(&crashed).unwrap(), super::dump(&whole).unwrap());
}

#[test]
fn a_task_offered_again_and_again_without_outcomes_keeps_few_reservations_in_memory() {
    // Only the assignment callbacks arrive (no event callbacks configured): every reservation
    // stays pending in the projections, and the task must not keep them all in memory.
    let config = ProjectionConfig::default();
    let mut deliveries = opening(TASK, T0);
    for n in 0..2_000u32 {
        let reservation = format!("WR{}{:08x}", &TASK[10..34], n + 1);
        let worker = [ALICE, BOB, CAROL][n as usize % 3];
        deliveries.push(assignment(TASK, &reservation, worker, T0 + 100 + i64::from(n) * 50, "{}"));
    }
    let mut database = open_database();
    let mut most_cached = 0;
    ingest_with_engine(&mut database, &deliveries, 1, super::Engine::new(config.clone()), |engine| {
        most_cached = most_cached.max(engine.cached().1);
    });
    // Its capped checkpoints, its window and at most 64 open reservations, not 2,000 of them.
    let bound = super::task_entry::CHECKPOINT_BYTES + 100_000;
    assert!(most_cached < bound, "{most_cached} bytes cached for one task (bound {bound})");
    let pending: i64 = database
        .query_row("SELECT COUNT(*) FROM proj_reservations WHERE status = 'pending'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 2_000);
    let incremental = super::dump(&database).unwrap();
    super::rebuild(&mut database, &config, |_, _| {}).unwrap();
    assert_eq!(incremental, super::dump(&database).unwrap());
}

#[test]
fn a_projection_transaction_ends_early_when_asked_and_takes_the_rest_later() {
    let config = ProjectionConfig::default();
    let deliveries = lifecycles(&[0, 1]);
    let mut database = open_database();
    append_leaving_unprojected(&mut database, &deliveries, 0);
    let mut backlog: std::collections::VecDeque<FollowUp> = deliveries
        .iter()
        .enumerate()
        .map(|(at, delivery)| FollowUp::of(at as i64 + 1, &record(delivery), true, 0))
        .collect();
    // The writer records the mark before it follows (a new log has none).
    super::set_projected_through(&database, 0).unwrap();
    let mut engine = super::Engine::new(config.clone());
    // Another process moved the mark: nothing is taken, the rows are to be read back.
    let moved = projector::follow(&mut database, &mut engine, &mut backlog, 64, 5, || false).unwrap();
    assert_eq!(moved, projector::Followed::MarkMoved);
    assert_eq!(backlog.len(), deliveries.len());
    // An assignment callback is waiting: one row, then the transaction ends.
    let done = projector::follow(&mut database, &mut engine, &mut backlog, 64, 0, || true).unwrap();
    assert_eq!(done, projector::Followed::Done);
    assert_eq!(backlog.len(), deliveries.len() - 1);
    assert_eq!(super::projected_through(&database).unwrap(), 1);
    // None waits: the rest, at most `count` a transaction.
    projector::follow(&mut database, &mut engine, &mut backlog, 3, 1, || false).unwrap();
    assert_eq!(backlog.len(), deliveries.len() - 4);
    let rest = backlog.len();
    projector::follow(&mut database, &mut engine, &mut backlog, rest, 4, || false).unwrap();
    assert!(backlog.is_empty());
    let mut whole = open_database();
    ingest(&mut whole, &deliveries, &config);
    assert_eq!(super::dump(&database).unwrap(), super::dump(&whole).unwrap());
}
