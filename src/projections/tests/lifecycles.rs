//! Tests of the pure lifecycle folds (no database): the captured lifecycle shapes, delivery
//! order and duplicates, the gaps and flags raised, reservation timeouts from the command line,
//! and the timeline as text.

use super::*;

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
    assert_eq!(p.task.status, TaskStatus::Completed);
    assert_eq!(p.task.created_at_ms, Some(T0));
    assert_eq!(p.task.assigned_at_ms, Some(T0 + 3_872));
    assert_eq!(p.task.finished_at_ms, Some(T0 + 8_887));
    assert_eq!(p.task.reservation_count, 1);
    let r = &p.reservations[0];
    assert_eq!((r.status, r.pending_ms, r.timeout_ms), (ReservationStatus::Completed, Some(3_816), 120_000));
    assert!(r.callback_answer.as_deref().unwrap().starts_with("{}"));
    assert_eq!(r.callback_event_id, Some(6));
    assert_eq!(p.timeline[5].evidence, vec![6]);
    assert_eq!(p.timeline[5].time_source, "arrival");
    assert!(p.flags.is_empty(), "{:?}", p.flags);
}

#[test]
fn timeout_then_re_reserve_and_accept_explains_the_timeout() {
    let p = fold(&timeout_then_accept(TASK, T0));
    assert_eq!(p.task.status, TaskStatus::Assigned);
    assert_eq!(p.task.reservation_count, 2);
    assert_eq!(p.reservations[0].status, ReservationStatus::Timeout);
    assert_eq!(p.reservations[1].status, ReservationStatus::Accepted);
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
    assert_eq!(p.task.status, TaskStatus::Pending);
}

#[test]
fn reject_names_the_workers_new_activity() {
    let p = fold(&reject_then_accept(TASK, T0));
    assert_eq!(p.task.status, TaskStatus::Assigned);
    let rejected = flag(&p, "rejected");
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].explanation.contains("bob rejected"), "{}", rejected[0].explanation);
    assert!(rejected[0].explanation.contains("went to Break"), "{}", rejected[0].explanation);
}

#[test]
fn three_parallel_reservations_two_rescinded_one_completed() {
    let p = fold(&three_parallel(TASK, T0));
    assert_eq!(p.task.status, TaskStatus::Completed);
    assert_eq!(p.task.reservation_count, 3);
    let statuses: Vec<ReservationStatus> = p.reservations.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [ReservationStatus::Rescinded, ReservationStatus::Rescinded, ReservationStatus::Completed]
    );
    let rescinded = flag(&p, "rescinded");
    assert_eq!(rescinded.len(), 2);
    assert!(rescinded[0].explanation.contains(&format!("{} (carol) was accepted", wr(TASK, 3))));
    assert_eq!(p.flags.len(), 2, "{:?}", p.flags);
}

#[test]
fn seven_canceled_reservations_then_task_canceled() {
    let p = fold(&seven_canceled(TASK, T0));
    assert_eq!(p.task.status, TaskStatus::Canceled);
    assert_eq!(p.task.cancel_cause.as_deref(), Some("hangup"));
    assert_eq!(p.task.reservation_count, 7);
    assert!(p.reservations.iter().all(|r| r.status == ReservationStatus::Canceled));
    assert!(p.flags.is_empty(), "{:?}", p.flags);
    assert_eq!(p.timeline.len(), 4 + 21 + 2);
}

#[test]
fn task_canceled_in_queue() {
    let p = fold(&canceled_in_queue(TASK, T0));
    assert_eq!((p.task.status, p.task.cancel_cause.as_deref()), (TaskStatus::Canceled, Some("hangup")));
    assert!(p.reservations.is_empty() && p.flags.is_empty());
}

#[test]
fn ttl_cancel_is_named() {
    let p = fold(&ttl_canceled(TASK, T0));
    assert_eq!((p.task.status, p.task.cancel_cause.as_deref()), (TaskStatus::Canceled, Some("ttl")));
}

#[test]
fn workflow_timeout_cancels() {
    let p = fold(&workflow_timeout(TASK, T0));
    assert_eq!(p.task.status, TaskStatus::Canceled);
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
    assert_eq!(p.task.status, TaskStatus::Completed);
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
    assert_eq!(
        p.task.status,
        TaskStatus::Assigned,
        "a failed transfer leaves the task with its first worker"
    );
    assert_eq!(p.task.transfer_count, 1);
    assert_eq!(p.reservations[0].reservation_sid, r1);
    assert_eq!(p.reservations[1].status, ReservationStatus::Failed);
    assert!(p.flags.is_empty(), "{:?}", p.flags);
}

#[test]
fn timeline_text_shows_order_evidence_and_flags() {
    let p = fold(&timeout_then_accept(TASK, T0));
    let detail = super::details::TaskDetail {
        task: p.task,
        reservations: p.reservations,
        timeline: p.timeline,
        flags: p.flags,
        as_of_ms: None,
    };
    let text = super::details::render_text(&detail);
    assert!(text.starts_with(&format!("Task {TASK}  status assigned")), "{text}");
    assert!(text.contains("reservation.timeout"), "{text}");
    assert!(
        text.contains("Assignment callback for") && text.contains("(alice); we answered {}  [log 6]"),
        "{text}"
    );
    assert!(text.contains("(* our arrival time"), "{text}");
    assert!(text.contains("[timeout] Reservation") && text.contains("(evidence: log 5, 6, 7, 8)"), "{text}");
}
