//! The Events resource: TaskRouter's own history, filtered and paged as Twilio's is, with task
//! attributes redacted past their age.

use super::*;

pub(super) fn parse_date(value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis())
        })
        .map_err(|_| fail(SimError::bad_request(format!("Invalid date {value}"))))
}

pub(super) async fn list_events(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let ws = path.into_inner();
    let query = pairs(request.query_string().as_bytes());
    let start = first(&query, "StartDate").map(parse_date).transpose()?;
    let end = first(&query, "EndDate").map(parse_date).transpose()?;
    let minutes: Option<i64> = first(&query, "Minutes").and_then(|m| m.parse().ok());
    let field_filters: Vec<(&str, &str)> =
        ["TaskSid", "ReservationSid", "WorkerSid", "WorkflowSid", "TaskQueueSid", "Sid"]
            .into_iter()
            .filter_map(|name| first(&query, name).map(|v| (name, v)))
            .collect();
    let event_type = first(&query, "EventType");
    let task_channel = first(&query, "TaskChannel");
    let engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let now = engine.now_ms();
    // Minutes defaults to 15 unless a StartDate is given, as on Twilio; nothing older than
    // the 30 days TaskRouter keeps is served.
    let from = match (start, minutes) {
        (Some(start), _) => start,
        (None, Some(m)) => now - m * 60_000,
        (None, None) => now - 15 * 60_000,
    }
    .max(now - RETENTION_MS);
    let to = end.unwrap_or(i64::MAX);
    let matching: Vec<&EventRecord> = engine
        .events
        .iter()
        .rev()
        .filter(|e| e.workspace_sid == ws && e.date_ms >= from && e.date_ms <= to)
        .filter(|e| event_type.is_none_or(|t| t == e.event_type))
        .filter(|e| {
            task_channel.is_none_or(|channel| {
                e.param("TaskChannelUniqueName") == Some(channel)
                    || e.param("TaskChannelSid") == Some(channel)
            })
        })
        .filter(|e| {
            field_filters.iter().all(|(name, value)| {
                (*name == "Sid" && e.sid == *value)
                    || e.param(name) == Some(*value)
                    || e.resource_sid == *value
            })
        })
        .collect();
    paged_with(&state, &request, "events", matching.len(), |start, count| {
        matching.iter().skip(start).take(count).map(|e| event_json(&state, &engine, e)).collect()
    })
}

pub(super) async fn fetch_event(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<RestState>,
) -> Reply {
    authorize(&request, &state)?;
    let (ws, sid) = path.into_inner();
    let engine = state.simulator.engine();
    engine.workspace(&ws).map_err(fail)?;
    let event = engine
        .events
        .iter()
        .find(|e| e.sid == sid && e.workspace_sid == ws)
        .ok_or_else(|| fail(SimError::not_found("Event", &sid)))?;
    Ok(HttpResponse::Ok().json(event_json(&state, &engine, event)))
}
