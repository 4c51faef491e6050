//! How each resource looks in Twilio's JSON: snake_case fields, `url` and `links`.

use super::*;

pub(super) fn ws_url(state: &RestState, workspace: &str) -> String {
    format!("{}/v1/Workspaces/{workspace}", state.base_url)
}

pub(super) fn workspace_json(state: &RestState, engine: &Engine, w: &Workspace) -> Value {
    let url = ws_url(state, &w.sid);
    json!({
        "account_sid": engine.account_sid, "sid": w.sid, "friendly_name": w.friendly_name,
        "event_callback_url": w.event_callback_url, "events_filter": w.events_filter,
        "default_activity_sid": w.default_activity_sid, "default_activity_name": engine.activity_name(&w.default_activity_sid),
        "timeout_activity_sid": w.timeout_activity_sid, "timeout_activity_name": engine.activity_name(&w.timeout_activity_sid),
        "multi_task_enabled": false, "prioritize_queue_order": "FIFO",
        "date_created": iso(w.date_created_ms), "date_updated": iso(w.date_created_ms), "url": url,
        "links": {
            "activities": format!("{url}/Activities"), "workers": format!("{url}/Workers"),
            "task_queues": format!("{url}/TaskQueues"), "workflows": format!("{url}/Workflows"),
            "tasks": format!("{url}/Tasks"), "events": format!("{url}/Events"),
        },
    })
}

pub(super) fn activity_json(state: &RestState, engine: &Engine, a: &Activity) -> Value {
    let url = format!("{}/Activities/{}", ws_url(state, &a.workspace_sid), a.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": a.workspace_sid, "sid": a.sid,
        "friendly_name": a.friendly_name, "available": a.available,
        "date_created": iso(a.date_created_ms), "date_updated": iso(a.date_created_ms), "url": url,
        "links": {"workspace": ws_url(state, &a.workspace_sid)},
    })
}

pub(super) fn worker_json(state: &RestState, engine: &Engine, w: &Worker) -> Value {
    let url = format!("{}/Workers/{}", ws_url(state, &w.workspace_sid), w.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": w.workspace_sid, "sid": w.sid,
        "friendly_name": w.friendly_name, "attributes": w.attributes.to_string(),
        "activity_sid": w.activity_sid, "activity_name": engine.activity_name(&w.activity_sid),
        "available": engine.activities.get(&w.activity_sid).is_some_and(|a| a.available),
        "date_created": iso(w.date_created_ms), "date_updated": iso(w.date_updated_ms),
        "date_status_changed": iso(w.activity_changed_ms), "url": url,
        "links": {
            "reservations": format!("{url}/Reservations"), "channels": format!("{url}/Channels"),
            "activity": format!("{}/Activities/{}", ws_url(state, &w.workspace_sid), w.activity_sid),
            "workspace": ws_url(state, &w.workspace_sid),
        },
    })
}

pub(super) fn queue_json(state: &RestState, engine: &Engine, q: &TaskQueue) -> Value {
    let url = format!("{}/TaskQueues/{}", ws_url(state, &q.workspace_sid), q.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": q.workspace_sid, "sid": q.sid,
        "friendly_name": q.friendly_name, "target_workers": q.target_workers,
        "max_reserved_workers": q.max_reserved_workers, "task_order": "FIFO",
        "assignment_activity_sid": q.assignment_activity_sid,
        "assignment_activity_name": q.assignment_activity_sid.as_deref().map(|a| engine.activity_name(a)),
        "reservation_activity_sid": null, "reservation_activity_name": null,
        "date_created": iso(q.date_created_ms), "date_updated": iso(q.date_created_ms), "url": url,
        "links": {"workspace": ws_url(state, &q.workspace_sid), "statistics": format!("{url}/Statistics")},
    })
}

pub(super) fn workflow_json(state: &RestState, engine: &Engine, w: &Workflow) -> Value {
    let url = format!("{}/Workflows/{}", ws_url(state, &w.workspace_sid), w.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": w.workspace_sid, "sid": w.sid,
        "friendly_name": w.friendly_name, "assignment_callback_url": w.assignment_callback_url,
        "fallback_assignment_callback_url": w.fallback_assignment_callback_url, "configuration": w.configuration().to_string(),
        "task_reservation_timeout": w.task_reservation_timeout, "document_content_type": "application/json",
        "date_created": iso(w.date_created_ms), "date_updated": iso(w.date_created_ms), "url": url,
        "links": {"workspace": ws_url(state, &w.workspace_sid), "statistics": format!("{url}/Statistics")},
    })
}

pub(super) fn task_json(state: &RestState, engine: &Engine, t: &Task) -> Value {
    let url = format!("{}/Tasks/{}", ws_url(state, &t.workspace_sid), t.sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": t.workspace_sid, "sid": t.sid,
        "assignment_status": t.status.as_str(), "attributes": t.attributes,
        "age": (engine.now_ms() - t.date_created_ms).max(0) / 1000, "priority": t.priority,
        "reason": t.reason, "timeout": t.timeout, "addons": "{}",
        "task_queue_sid": t.queue_sid,
        "task_queue_friendly_name": engine.queues.get(&t.queue_sid).map(|q| q.friendly_name.clone()),
        "workflow_sid": t.workflow_sid,
        "workflow_friendly_name": engine.workflows.get(&t.workflow_sid).map(|w| w.friendly_name.clone()),
        "task_channel_sid": null, "task_channel_unique_name": "default", "routing_target": null,
        "ignore_capacity": false,
        "date_created": iso(t.date_created_ms), "date_updated": iso(t.date_updated_ms),
        "task_queue_entered_date": iso(t.queue_entered_ms), "virtual_start_time": iso(t.date_created_ms),
        "url": url,
        "links": {
            "task_queue": format!("{}/TaskQueues/{}", ws_url(state, &t.workspace_sid), t.queue_sid),
            "workflow": format!("{}/Workflows/{}", ws_url(state, &t.workspace_sid), t.workflow_sid),
            "workspace": ws_url(state, &t.workspace_sid),
            "reservations": format!("{url}/Reservations"),
        },
    })
}

pub(super) fn reservation_json(state: &RestState, engine: &Engine, r: &Reservation) -> Value {
    let task_url = format!("{}/Tasks/{}", ws_url(state, &r.workspace_sid), r.task_sid);
    json!({
        "account_sid": engine.account_sid, "workspace_sid": r.workspace_sid, "sid": r.sid,
        "task_sid": r.task_sid, "worker_sid": r.worker_sid,
        "worker_name": engine.workers.get(&r.worker_sid).map(|w| w.friendly_name.clone()),
        "reservation_status": r.status.as_str(),
        "date_created": iso(r.date_created_ms), "date_updated": iso(r.date_updated_ms),
        "url": format!("{task_url}/Reservations/{}", r.sid),
        "links": {
            "task": task_url,
            "worker": format!("{}/Workers/{}", ws_url(state, &r.workspace_sid), r.worker_sid),
            "workspace": ws_url(state, &r.workspace_sid),
        },
    })
}

pub(super) fn event_json(state: &RestState, engine: &Engine, e: &EventRecord) -> Value {
    let resource_collection = match e.resource_type.as_str() {
        "reservation" => format!("Tasks/{}/Reservations", e.param("TaskSid").unwrap_or_default()),
        "worker" => "Workers".into(),
        "workflow" => "Workflows".into(),
        _ => "Tasks".into(),
    };
    json!({
        "account_sid": engine.account_sid, "workspace_sid": e.workspace_sid, "sid": e.sid,
        "event_type": e.event_type, "description": e.description,
        "event_date": iso(e.date_ms), "event_date_ms": e.date_ms,
        "event_data": e.event_data(engine.now_ms() - e.date_ms > REDACTION_AGE_MS),
        "resource_type": e.resource_type, "resource_sid": e.resource_sid,
        "resource_url": format!("{}/{resource_collection}/{}", ws_url(state, &e.workspace_sid), e.resource_sid),
        "actor_type": "workspace", "actor_sid": e.workspace_sid, "actor_url": ws_url(state, &e.workspace_sid),
        "source": "twilio", "source_ip_address": "127.0.0.1",
        "url": format!("{}/Events/{}", ws_url(state, &e.workspace_sid), e.sid),
    })
}

// ---- handlers -------------------------------------------------------------------------------
