//! Workspaces and what they hold (activities, workers, task queues, workflows): reads, and
//! the updates `connect` and the actions make, with the simulator's ground truth beside them.

use super::*;

pub(super) async fn ground_truth(state: web::Data<RestState>) -> HttpResponse {
    HttpResponse::Ok().json(state.simulator.ground_truth())
}

pub(super) async fn list_workspaces(request: HttpRequest, state: web::Data<RestState>) -> Reply {
    authorize(&request, &state)?;
    let items = {
        let engine = state.simulator.engine();
        engine.workspaces.values().map(|w| workspace_json(&state, &engine, w)).collect()
    };
    paged(&state, &request, "workspaces", items)
}

pub(super) async fn fetch_workspace(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let engine = state.simulator.engine();
    let workspace = engine.workspace(&path).map_err(fail)?;
    Ok(HttpResponse::Ok().json(workspace_json(&state, &engine, workspace)))
}

/// Renders every item of a workspace's collection that passes `keep`.
pub(super) fn collect<T>(
    state: &RestState,
    workspace: &str,
    render: impl Fn(&RestState, &Engine, &T) -> Value,
    items: impl Fn(&Engine) -> Vec<&T>,
) -> Result<Vec<Value>, ApiError> {
    let engine = state.simulator.engine();
    engine.workspace(workspace).map_err(fail)?;
    Ok(items(&engine).into_iter().map(|item| render(state, &engine, item)).collect())
}

pub(super) async fn list_activities(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let items = collect(&state, &ws, activity_json, |e| {
        e.activities.values().filter(|a| a.workspace_sid == ws).collect()
    })?;
    paged(&state, &request, "activities", items)
}

pub(super) async fn list_workers(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let activity = first(&query, "ActivitySid").map(str::to_string);
    let available = first(&query, "Available").map(|v| v == "true" || v == "1");
    let items = collect(&state, &ws, worker_json, |e| {
        e.workers
            .values()
            .filter(|w| w.workspace_sid == ws)
            .filter(|w| activity.as_ref().is_none_or(|a| *a == w.activity_sid))
            .filter(|w| {
                available.is_none_or(|v| e.activities.get(&w.activity_sid).is_some_and(|a| a.available) == v)
            })
            .collect()
    })?;
    paged(&state, &request, "workers", items)
}

pub(super) async fn fetch_worker(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let engine = state.simulator.engine();
    let worker = engine.worker_in(&ws, &sid).map_err(fail)?;
    Ok(HttpResponse::Ok().json(worker_json(&state, &engine, worker)))
}

pub(super) async fn update_worker(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let params = pairs(&body);
    let rendered = {
        let mut engine = state.simulator.engine();
        engine.worker_in(&ws, &sid).map_err(fail)?;
        if let Some(activity) = first(&params, "ActivitySid") {
            engine.update_worker_activity(&ws, &sid, activity).map_err(fail)?;
        }
        worker_json(&state, &engine, engine.worker_in(&ws, &sid).map_err(fail)?)
    };
    state.simulator.wake_delivery();
    Ok(HttpResponse::Ok().json(rendered))
}

/// A URL parameter: empty clears it, as on TaskRouter.
pub(super) fn url_param(params: &[(String, String)], name: &str) -> Option<Option<String>> {
    first(params, name).map(|v| Some(v.trim().to_string()).filter(|v| !v.is_empty()))
}

pub(super) fn refuse_if_asked(state: &RestState, sid: &str) -> Result<(), ApiError> {
    if state.refused_updates.lock().unwrap_or_else(|p| p.into_inner()).contains(sid) {
        return Err(fail(SimError::bad_request(format!("Update of {sid} refused (simulated failure)"))));
    }
    Ok(())
}

/// `POST /v1/Workspaces/{WS}`: `EventCallbackUrl`, `EventsFilter`, `FriendlyName`; later
/// events go to the new URL.
pub(super) async fn update_workspace(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let params = pairs(&body);
    refuse_if_asked(&state, &ws)?;
    let mut engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let workspace = engine.workspaces.get_mut(&ws).expect("checked above");
    if let Some(url) = url_param(&params, "EventCallbackUrl") {
        workspace.event_callback_url = url;
    }
    if let Some(filter) = first(&params, "EventsFilter") {
        workspace.events_filter = Some(filter.trim().to_string()).filter(|f| !f.is_empty());
    }
    if let Some(name) = first(&params, "FriendlyName") {
        workspace.friendly_name = name.to_string();
    }
    let rendered = workspace_json(&state, &engine, &engine.workspaces[&ws]);
    Ok(HttpResponse::Ok().json(rendered))
}

/// `POST …/Workflows/{WW}`: `AssignmentCallbackUrl`, `FallbackAssignmentCallbackUrl`,
/// `TaskReservationTimeout`, `FriendlyName`; later reservations call the new URL.
pub(super) async fn update_workflow(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let params = pairs(&body);
    refuse_if_asked(&state, &sid)?;
    let timeout = match first(&params, "TaskReservationTimeout") {
        Some(raw) => {
            Some(raw.trim().parse::<u64>().ok().filter(|t| (1..=86_400).contains(t)).ok_or_else(|| {
                fail(SimError::bad_request("TaskReservationTimeout must be between 1 and 86400"))
            })?)
        }
        None => None,
    };
    let mut engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let workflow = engine
        .workflows
        .get_mut(&sid)
        .filter(|w| w.workspace_sid == ws)
        .ok_or_else(|| fail(SimError::not_found("Workflow", &sid)))?;
    if let Some(url) = url_param(&params, "AssignmentCallbackUrl") {
        workflow.assignment_callback_url = url;
    }
    if let Some(url) = url_param(&params, "FallbackAssignmentCallbackUrl") {
        workflow.fallback_assignment_callback_url = url;
    }
    if let Some(timeout) = timeout {
        workflow.task_reservation_timeout = timeout;
    }
    if let Some(name) = first(&params, "FriendlyName") {
        workflow.friendly_name = name.to_string();
    }
    let rendered = workflow_json(&state, &engine, &engine.workflows[&sid]);
    Ok(HttpResponse::Ok().json(rendered))
}

/// `POST /sim/refuse-updates` with `Sid=WS…|WW…`: later updates of it are refused with 400.
pub(super) async fn refuse_updates(body: web::Bytes, state: web::Data<RestState>) -> HttpResponse {
    let params = pairs(&body);
    let mut refused = state.refused_updates.lock().unwrap_or_else(|p| p.into_inner());
    for sid in all(&params, "Sid") {
        refused.insert(sid.to_string());
    }
    HttpResponse::NoContent().finish()
}

pub(super) async fn list_queues(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let items =
        collect(&state, &ws, queue_json, |e| e.queues.values().filter(|q| q.workspace_sid == ws).collect())?;
    paged(&state, &request, "task_queues", items)
}

pub(super) async fn list_workflows(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let items = collect(&state, &ws, workflow_json, |e| {
        e.workflows.values().filter(|w| w.workspace_sid == ws).collect()
    })?;
    paged(&state, &request, "workflows", items)
}

pub(super) async fn fetch_workflow(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let workflow = engine
        .workflows
        .get(&sid)
        .filter(|w| w.workspace_sid == ws)
        .ok_or_else(|| fail(SimError::not_found("Workflow", &sid)))?;
    Ok(HttpResponse::Ok().json(workflow_json(&state, &engine, workflow)))
}
