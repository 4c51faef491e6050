//! Event Streams deliveries: a body of one CloudEvent (CloudEvents 1.0, JSON) or a batch of
//! them, checked as a whole, and each TaskRouter event in it (`com.twilio.taskrouter.*`)
//! mapped onto the parameters its event callback would have carried, so it yields the same fact
//! whichever way it came.
//!
//! `data.payload` holds the TaskRouter event in snake_case. Its `eventtype`, `sid` and
//! `timestamp` become `EventType`, `Sid` and `Timestamp`/`TimestampMs`; every other key becomes
//! its PascalCase parameter (`task_queue_sid` → `TaskQueueSid`), numbers written out, ISO dates
//! (`task_date_created`) turned into the epoch seconds the callback carries. A batch is all or
//! nothing: one bad element refuses the whole body, so nothing of it becomes a fact.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::event_resource::{as_param, pascal_case};
use super::timestamp::parse_iso8601;
use super::webhook::{self, Endpoint, FormParams, ParseError, WebhookFacts};

/// The stored `endpoint` of an Event Streams request (the batch, recorded whole).
pub const EVENT_STREAMS_ENDPOINT: &str = "event-streams";

/// The stored `endpoint` of one TaskRouter CloudEvent taken out of an Event Streams request.
pub const CLOUDEVENT_ENDPOINT: &str = "cloudevent";

/// The CloudEvent `type` prefix of TaskRouter's events.
pub const TASKROUTER_TYPE_PREFIX: &str = "com.twilio.taskrouter.";

/// Event Streams batches a webhook sink's events into bodies of at most 64 KB.
pub const BATCH_BODY_LIMIT: usize = 64 * 1024;

/// The most CloudEvents one body may hold (a 64 KB batch of the smallest valid events holds
/// a few hundred).
pub const MAX_EVENTS_PER_BODY: usize = 1000;

/// Why a body is not a delivery the tracer can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudEventError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is neither a CloudEvent (a JSON object) nor a batch of them (a JSON array)")]
    NotCloudEvents,
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("the batch holds {0} CloudEvents; at most {MAX_EVENTS_PER_BODY} are accepted")]
    TooMany(usize),
    #[error("CloudEvent {index} is not a JSON object")]
    NotAnObject { index: usize },
    #[error("CloudEvent {index} has no {attribute} (a CloudEvents 1.0 required attribute)")]
    MissingAttribute { index: usize, attribute: &'static str },
    #[error("CloudEvent {index} has specversion {found:?}; only \"1.0\" is understood")]
    SpecVersion { index: usize, found: String },
    #[error("CloudEvent {index} ({event_type}): {problem}")]
    Payload { index: usize, event_type: String, problem: String },
}

/// One element of a delivery.
#[derive(Debug, Clone)]
pub struct CloudEvent<'a> {
    /// Its place in the body (0 for a single event).
    pub index: usize,
    /// The element's JSON text exactly as received.
    pub raw: &'a str,
    pub id: String,
    pub event_type: String,
    /// For a TaskRouter event: its callback parameters and facts. `None` for other types,
    /// which are recorded with the request and never become facts.
    pub taskrouter: Option<TaskRouterEvent>,
}

/// A TaskRouter CloudEvent as the event callback it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRouterEvent {
    pub params: FormParams,
    pub facts: WebhookFacts,
}

/// A whole delivery: its events in body order, and whether it came as a batch (an array).
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub events: Vec<CloudEvent<'a>>,
    pub batched: bool,
}

/// The envelope attributes read; `data` is kept as a value to map.
#[derive(Deserialize)]
struct Envelope {
    specversion: Option<Value>,
    id: Option<Value>,
    #[serde(rename = "type")]
    event_type: Option<Value>,
    source: Option<Value>,
    data: Option<Value>,
}

/// Parses and checks a delivery body; `arrival_ms` stands in for a time the event lacks (it
/// never does when well formed: `timestamp` is required).
///
/// # Errors
/// [`CloudEventError`] for the first problem found; nothing of the body is then usable.
pub fn parse_delivery(body: &[u8], arrival_ms: i64) -> Result<Delivery<'_>, CloudEventError> {
    let text = std::str::from_utf8(body).map_err(|e| CloudEventError::NotJson(e.to_string()))?;
    let trimmed = text.trim_start();
    let (elements, batched): (Vec<&RawValue>, bool) = if trimmed.starts_with('[') {
        let elements: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| CloudEventError::NotJson(e.to_string()))?;
        (elements, true)
    } else if trimmed.starts_with('{') {
        let single: &RawValue =
            serde_json::from_str(text).map_err(|e| CloudEventError::NotJson(e.to_string()))?;
        (vec![single], false)
    } else {
        // Valid JSON of another shape is not a CloudEvent; invalid JSON says why it is invalid.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => CloudEventError::NotCloudEvents,
            Err(e) => CloudEventError::NotJson(e.to_string()),
        });
    };
    if elements.is_empty() {
        return Err(CloudEventError::EmptyBatch);
    }
    if elements.len() > MAX_EVENTS_PER_BODY {
        return Err(CloudEventError::TooMany(elements.len()));
    }
    let events = elements
        .into_iter()
        .enumerate()
        .map(|(index, raw)| parse_event(index, raw.get(), arrival_ms))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Delivery { events, batched })
}

/// Parses one stored CloudEvent (a `cloudevent` row's body) back into its callback parameters
/// and facts, as at ingest.
///
/// # Errors
/// As [`parse_delivery`], or when it is not a TaskRouter event.
pub fn parse_stored(raw: &str, arrival_ms: i64) -> Result<TaskRouterEvent, CloudEventError> {
    let event = parse_event(0, raw, arrival_ms)?;
    let event_type = event.event_type.clone();
    event.taskrouter.ok_or(CloudEventError::Payload {
        index: 0,
        event_type,
        problem: "not a TaskRouter event".into(),
    })
}

fn parse_event(index: usize, raw: &str, arrival_ms: i64) -> Result<CloudEvent<'_>, CloudEventError> {
    if !raw.trim_start().starts_with('{') {
        return Err(CloudEventError::NotAnObject { index });
    }
    let envelope: Envelope = serde_json::from_str(raw).map_err(|_| CloudEventError::NotAnObject { index })?;
    let text = |value: &Option<Value>, attribute: &'static str| -> Result<String, CloudEventError> {
        match value {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(CloudEventError::MissingAttribute { index, attribute }),
        }
    };
    let id = text(&envelope.id, "id")?;
    let event_type = text(&envelope.event_type, "type")?;
    text(&envelope.source, "source")?;
    let specversion = text(&envelope.specversion, "specversion")?;
    if specversion != "1.0" {
        return Err(CloudEventError::SpecVersion { index, found: specversion });
    }
    let taskrouter = match event_type.strip_prefix(TASKROUTER_TYPE_PREFIX) {
        Some(suffix) => {
            Some(map_taskrouter(suffix, envelope.data.as_ref(), arrival_ms).map_err(|problem| {
                CloudEventError::Payload { index, event_type: event_type.clone(), problem }
            })?)
        }
        None => None,
    };
    Ok(CloudEvent { index, raw, id, event_type, taskrouter })
}

/// The subject SIDs each family of TaskRouter events must name.
fn required_sids(event_type: &str) -> &'static [&'static str] {
    match event_type.split('.').next().unwrap_or("") {
        "reservation" => &["task_sid", "reservation_sid", "worker_sid"],
        "task" => &["task_sid"],
        "worker" => &["worker_sid"],
        _ => &[],
    }
}

/// Maps `data` of a `com.twilio.taskrouter.<type_suffix>` event onto callback parameters.
fn map_taskrouter(
    type_suffix: &str,
    data: Option<&Value>,
    arrival_ms: i64,
) -> Result<TaskRouterEvent, String> {
    let data = data.and_then(Value::as_object).ok_or("it has no data object")?;
    let payload = data.get("payload").and_then(Value::as_object).ok_or("its data has no payload object")?;
    let field = |name: &str| payload.get(name).and_then(as_param).filter(|v| !v.is_empty());
    let eventtype = field("eventtype").ok_or("its payload has no eventtype")?;
    if eventtype != type_suffix {
        return Err(format!("its type names {type_suffix} but its payload's eventtype is {eventtype}"));
    }
    let sid = field("sid")
        .or_else(|| data.get("sid").and_then(as_param).filter(|v| !v.is_empty()))
        .ok_or("its payload has no sid (the event's EV Sid)")?;
    let timestamp = field("timestamp").ok_or("its payload has no timestamp")?;
    let timestamp_ms =
        parse_iso8601(&timestamp).ok_or(format!("its timestamp {timestamp:?} is not ISO 8601"))?;
    for required in required_sids(&eventtype) {
        if field(required).is_none() {
            return Err(format!("a {eventtype} event needs {required}, and its payload has none"));
        }
    }
    let params = FormParams(callback_params(payload, &eventtype, &sid, timestamp_ms));
    let facts = webhook::extract_facts(Endpoint::Events, &params, arrival_ms)
        .map_err(|e: ParseError| e.to_string())?;
    Ok(TaskRouterEvent { params, facts })
}

/// The payload as the event callback's parameters (see the module's doc).
fn callback_params(
    payload: &Map<String, Value>,
    eventtype: &str,
    sid: &str,
    timestamp_ms: i64,
) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(payload.len() + 2);
    pairs.push(("EventType".into(), eventtype.to_string()));
    pairs.push(("Sid".into(), sid.to_string()));
    pairs.push(("Timestamp".into(), timestamp_ms.div_euclid(1000).to_string()));
    pairs.push(("TimestampMs".into(), timestamp_ms.to_string()));
    for (key, value) in payload {
        if matches!(key.as_str(), "eventtype" | "sid" | "timestamp") {
            continue;
        }
        let Some(mut value) = as_param(value) else { continue };
        let name = match key.as_str() {
            "description" => "EventDescription".to_string(),
            _ => pascal_case(key),
        };
        if name.contains("Date") {
            if let Some(ms) = parse_iso8601(&value) {
                value = ms.div_euclid(1000).to_string();
            }
        }
        if !pairs.iter().any(|(existing, _)| *existing == name) {
            pairs.push((name, value));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimeSource;

    /// Modelled on Twilio's documented `com.twilio.taskrouter.reservation.created` example.
    fn reservation_created(id: &str, ev: &str) -> Value {
        serde_json::json!({
            "specversion": "1.0",
            "type": "com.twilio.taskrouter.reservation.created",
            "source": "/v1/Workspaces/WS0123456789abcdef0123456789abcdef",
            "id": id,
            "dataschema": "https://events-schemas.twilio.com/TaskRouter.WDSEvent/4",
            "datacontenttype": "application/json",
            "time": "2026-12-06T10:00:00.123Z",
            "data": {
                "sid": ev,
                "name": "ReservationCreated",
                "timestamp": "2026-12-06T10:00:00.123Z",
                "product_name": "TaskRouter",
                "payload_type": "application/json",
                "payload": {
                    "sid": ev,
                    "eventtype": "reservation.created",
                    "account_sid": "AC0123456789abcdef0123456789abcdef",
                    "timestamp": "2026-12-06T10:00:00.123Z",
                    "workspace_sid": "WS0123456789abcdef0123456789abcdef",
                    "task_sid": "WT0123456789abcdef0123456789abcdef",
                    "task_attributes": "{\"type\":\"support\"}",
                    "task_age": 31,
                    "task_date_created": "2026-12-06T09:59:29.000Z",
                    "task_priority": 1,
                    "task_assignment_status": "reserved",
                    "reservation_sid": "WR0123456789abcdef0123456789abcdef",
                    "worker_sid": "WK0123456789abcdef0123456789abcdef",
                    "worker_name": "Alice",
                    "task_queue_sid": "WQ0123456789abcdef0123456789abcdef",
                    "workflow_sid": "WW0123456789abcdef0123456789abcdef",
                    "worker_time_in_previous_activity_ms": 1500,
                    "description": "Reservation created"
                }
            }
        })
    }

    const EV: &str = "EV0123456789abcdef0123456789abcdef";

    #[test]
    fn a_taskrouter_event_becomes_its_event_callback() {
        let body = reservation_created("NO01", EV).to_string();
        let delivery = parse_delivery(body.as_bytes(), 5).unwrap();
        assert!(!delivery.batched);
        let event = &delivery.events[0];
        assert_eq!(event.raw, body);
        let mapped = event.taskrouter.as_ref().unwrap();
        let p = &mapped.params;
        assert_eq!(p.get("EventType"), Some("reservation.created"));
        assert_eq!(p.get("Sid"), Some(EV));
        assert_eq!(p.get("TimestampMs"), Some("1796551200123"));
        assert_eq!(p.get("Timestamp"), Some("1796551200"));
        assert_eq!(p.get("TaskAge"), Some("31"));
        assert_eq!(p.get("TaskPriority"), Some("1"));
        assert_eq!(p.get("TaskDateCreated"), Some("1796551169"));
        assert_eq!(p.get("TaskAttributes"), Some("{\"type\":\"support\"}"));
        assert_eq!(p.get("WorkerTimeInPreviousActivityMs"), Some("1500"));
        assert_eq!(p.get("EventDescription"), Some("Reservation created"));
        let facts = &mapped.facts;
        assert_eq!(facts.event_sid.as_deref(), Some(EV));
        assert_eq!(facts.reservation_sid.as_deref(), Some("WR0123456789abcdef0123456789abcdef"));
        assert_eq!(facts.occurred_at.epoch_ms, 1_796_551_200_123);
        assert_eq!(facts.occurred_at.source, TimeSource::TimestampMs);
    }

    #[test]
    fn a_batch_keeps_each_element_as_received_and_other_types_are_not_facts() {
        let other = serde_json::json!({"specversion": "1.0", "type": "com.twilio.messaging.message.sent",
            "source": "/x", "id": "NO02", "data": {"anything": 1}});
        let body = format!("[ {} ,\n{}]", reservation_created("NO01", EV), other);
        let delivery = parse_delivery(body.as_bytes(), 0).unwrap();
        assert!(delivery.batched);
        assert_eq!(delivery.events.len(), 2);
        assert_eq!(delivery.events[1].raw, other.to_string());
        assert!(delivery.events[0].taskrouter.is_some());
        assert!(delivery.events[1].taskrouter.is_none());
        let stored = parse_stored(delivery.events[0].raw, 0).unwrap();
        assert_eq!(Some(&stored), delivery.events[0].taskrouter.as_ref());
    }

    #[test]
    fn bad_deliveries_say_what_is_wrong() {
        let refuse = |body: &str| parse_delivery(body.as_bytes(), 0).unwrap_err();
        assert!(matches!(refuse("{\"a\":"), CloudEventError::NotJson(_)));
        assert_eq!(refuse("42"), CloudEventError::NotCloudEvents);
        assert_eq!(refuse("[]"), CloudEventError::EmptyBatch);
        assert_eq!(refuse("[1]"), CloudEventError::NotAnObject { index: 0 });
        let mut no_id = reservation_created("NO01", EV);
        no_id.as_object_mut().unwrap().remove("id");
        assert_eq!(
            refuse(&no_id.to_string()),
            CloudEventError::MissingAttribute { index: 0, attribute: "id" }
        );
        let mut no_type = reservation_created("NO01", EV);
        no_type.as_object_mut().unwrap().remove("type");
        let batch = format!("[{},{}]", reservation_created("NO01", EV), no_type);
        assert_eq!(refuse(&batch), CloudEventError::MissingAttribute { index: 1, attribute: "type" });
        let mut no_reservation = reservation_created("NO01", EV);
        no_reservation["data"]["payload"].as_object_mut().unwrap().remove("reservation_sid");
        let error = refuse(&no_reservation.to_string()).to_string();
        assert!(error.contains("needs reservation_sid"), "{error}");
        let mut mismatched = reservation_created("NO01", EV);
        mismatched["data"]["payload"]["eventtype"] = "reservation.accepted".into();
        assert!(refuse(&mismatched.to_string()).to_string().contains("eventtype is reservation.accepted"));
        let mut bad_time = reservation_created("NO01", EV);
        bad_time["data"]["payload"]["timestamp"] = "yesterday".into();
        assert!(refuse(&bad_time.to_string()).to_string().contains("not ISO 8601"));
        let mut version = reservation_created("NO01", EV);
        version["specversion"] = "0.3".into();
        assert!(matches!(refuse(&version.to_string()), CloudEventError::SpecVersion { .. }));
    }
}
