//! Tasks and reservations: creation, reads, and the updates that accept, reject, complete or
//! cancel them, through the task and through the worker.

use super::*;

pub(super) async fn list_tasks(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let statuses = all(&query, "AssignmentStatus");
    let workflow = first(&query, "WorkflowSid");
    let queue = first(&query, "TaskQueueSid");
    let items = collect(&state, &ws, task_json, |e| {
        let mut tasks: Vec<&Task> = e
            .tasks
            .values()
            .filter(|t| t.workspace_sid == ws)
            .filter(|t| statuses.is_empty() || statuses.contains(&t.status.as_str()))
            .filter(|t| workflow.is_none_or(|w| w == t.workflow_sid))
            .filter(|t| queue.is_none_or(|q| q == t.queue_sid))
            .collect();
        tasks.sort_by_key(|t| t.sequence);
        tasks
    })?;
    paged(&state, &request, "tasks", items)
}

pub(super) async fn create_task(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let params = pairs(&body);
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        first(&params, name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| fail(SimError::bad_request(format!("{name} must be an integer"))))
            })
            .transpose()
    };
    let priority = number("Priority")?.unwrap_or(0);
    let timeout = number("Timeout")?.map(|t| t.max(0) as u64);
    let rendered = {
        let mut engine = state.simulator.engine();
        engine.workspace(&ws).map_err(fail)?;
        let workflow = match first(&params, "WorkflowSid") {
            Some(sid) => sid.to_string(),
            None => {
                let mut workflows = engine.workflows.values().filter(|w| w.workspace_sid == ws);
                match (workflows.next(), workflows.next()) {
                    (Some(only), None) => only.sid.clone(),
                    _ => return Err(fail(SimError::bad_request("WorkflowSid is required"))),
                }
            }
        };
        let attributes = first(&params, "Attributes").unwrap_or("{}");
        let sid = engine.create_task(&ws, &workflow, attributes, priority, timeout).map_err(fail)?;
        task_json(&state, &engine, &engine.tasks[&sid])
    };
    state.simulator.wake_delivery();
    Ok(HttpResponse::Created().json(rendered))
}

pub(super) async fn fetch_task(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let engine = state.simulator.engine();
    let task = engine.task_in(&ws, &sid).map_err(fail)?;
    Ok(HttpResponse::Ok().json(task_json(&state, &engine, task)))
}

pub(super) async fn update_task(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let params = pairs(&body);
    let priority = first(&params, "Priority")
        .map(|v| v.parse::<i64>().map_err(|_| fail(SimError::bad_request("Priority must be an integer"))))
        .transpose()?;
    let update = TaskUpdate {
        assignment_status: first(&params, "AssignmentStatus").map(str::to_string),
        reason: first(&params, "Reason").map(str::to_string),
        attributes: first(&params, "Attributes").map(str::to_string),
        priority,
    };
    let rendered = {
        let mut engine = state.simulator.engine();
        let result = engine.update_task(&ws, &sid, update);
        // Events of a partly applied update still have to go out.
        drop(engine);
        state.simulator.wake_delivery();
        result.map_err(fail)?;
        let engine = state.simulator.engine();
        task_json(&state, &engine, engine.task_in(&ws, &sid).map_err(fail)?)
    };
    Ok(HttpResponse::Ok().json(rendered))
}

pub(super) async fn list_reservations(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, task) = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let status = first(&query, "ReservationStatus");
    let worker = first(&query, "WorkerSid");
    let items = {
        let engine = state.simulator.engine();
        engine.task_in(&ws, &task).map_err(fail)?;
        engine
            .task_reservations
            .get(&task)
            .into_iter()
            .flatten()
            .filter_map(|sid| engine.reservations.get(sid))
            .filter(|r| status.is_none_or(|s| s == r.status.as_str()))
            .filter(|r| worker.is_none_or(|w| w == r.worker_sid))
            .map(|r| reservation_json(&state, &engine, r))
            .collect()
    };
    paged(&state, &request, "reservations", items)
}

pub(super) async fn fetch_reservation(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, task, sid) = path.into_inner();
    let engine = state.simulator.engine();
    engine.task_in(&ws, &task).map_err(fail)?;
    let reservation = engine.reservation_of(&ws, &task, &sid).map_err(fail)?;
    Ok(HttpResponse::Ok().json(reservation_json(&state, &engine, reservation)))
}

pub(super) async fn update_reservation(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, task, sid) = path.into_inner();
    let rendered = {
        let mut engine = state.simulator.engine();
        engine.task_in(&ws, &task).map_err(fail)?;
        engine.reservation_of(&ws, &task, &sid).map_err(fail)?;
        apply_reservation_update(&mut engine, &sid, &pairs(&body))?;
        reservation_json(&state, &engine, engine.reservation_of(&ws, &task, &sid).map_err(fail)?)
    };
    state.simulator.wake_delivery();
    Ok(HttpResponse::Ok().json(rendered))
}

/// `ReservationStatus=accepted|rejected` (with `WorkerActivitySid` on reject).
pub(super) fn apply_reservation_update(
    engine: &mut Engine,
    sid: &str,
    params: &[(String, String)],
) -> Result<(), ApiError> {
    match first(params, "ReservationStatus") {
        Some("accepted") => engine.accept_reservation(sid).map_err(fail),
        Some("rejected") => engine
            .reject_reservation(sid, first(params, "WorkerActivitySid").map(str::to_string))
            .map_err(fail),
        Some(other) => Err(fail(SimError::bad_request(format!(
            "ReservationStatus {other} is not supported by the simulator (accepted, rejected)"
        )))),
        None => Ok(()),
    }
}

/// A worker's reservation, by worker and reservation SID.
pub(super) fn worker_reservation<'a>(
    engine: &'a Engine,
    ws: &str,
    worker: &str,
    sid: &str,
) -> Result<&'a Reservation, ApiError> {
    engine.worker_in(ws, worker).map_err(fail)?;
    engine
        .reservations
        .get(sid)
        .filter(|r| r.workspace_sid == ws && r.worker_sid == worker)
        .ok_or_else(|| fail(SimError::not_found("Reservation", sid)))
}

pub(super) async fn list_worker_reservations(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, worker) = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let status = first(&query, "ReservationStatus");
    let items = {
        let engine = state.simulator.engine();
        engine.worker_in(&ws, &worker).map_err(fail)?;
        let mut reservations: Vec<&Reservation> = engine
            .reservations
            .values()
            .filter(|r| r.worker_sid == worker && status.is_none_or(|s| s == r.status.as_str()))
            .collect();
        reservations.sort_by_key(|r| (r.date_created_ms, r.sid.clone()));
        reservations.into_iter().map(|r| worker_reservation_json(&state, &engine, r)).collect()
    };
    paged(&state, &request, "reservations", items)
}

/// A reservation as the worker-scoped resource shows it (its `url` under the worker).
pub(super) fn worker_reservation_json(state: &RestState, engine: &Engine, r: &Reservation) -> Value {
    let mut value = reservation_json(state, engine, r);
    value["url"] =
        format!("{}/Workers/{}/Reservations/{}", ws_url(state, &r.workspace_sid), r.worker_sid, r.sid).into();
    value
}

pub(super) async fn fetch_worker_reservation(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, worker, sid) = path.into_inner();
    let engine = state.simulator.engine();
    let reservation = worker_reservation(&engine, &ws, &worker, &sid)?;
    Ok(HttpResponse::Ok().json(worker_reservation_json(&state, &engine, reservation)))
}

pub(super) async fn update_worker_reservation(
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, worker, sid) = path.into_inner();
    let rendered = {
        let mut engine = state.simulator.engine();
        worker_reservation(&engine, &ws, &worker, &sid)?;
        apply_reservation_update(&mut engine, &sid, &pairs(&body))?;
        worker_reservation_json(&state, &engine, worker_reservation(&engine, &ws, &worker, &sid)?)
    };
    state.simulator.wake_delivery();
    Ok(HttpResponse::Ok().json(rendered))
}
