//! An Event resource of TaskRouter's Events REST API (`GET /v1/Workspaces/{WS}/Events`) mapped
//! onto the parameters its event callback would have carried, so an event yields the same fact
//! whichever way it came.
//!
//! The API's top-level fields become the callback's common parameters (`sid` → `Sid`,
//! `event_date_ms` → `TimestampMs`…) and each `event_data` key its PascalCase parameter
//! (`worker_time_in_previous_activity_ms` → `WorkerTimeInPreviousActivityMs`). Task attributes
//! of events older than TaskRouter's redaction age are dropped rather than trusted, so they
//! never overwrite attributes known from a fresher event.

use serde_json::Value;

use super::webhook::{self, Endpoint, FormParams, ParseError, WebhookFacts};

/// The name a stored Events API row's `endpoint` column carries.
pub const EVENTS_API_ENDPOINT: &str = "events-api";

/// TaskRouter redacts task attributes in events older than this (43,200 minutes).
pub const REDACTION_AGE_MS: i64 = 43_200 * 60_000;

/// How long TaskRouter keeps events (30 days).
pub const RETENTION_MS: i64 = 30 * 24 * 3_600_000;

/// The top-level fields of an Event and the callback parameter each stands for.
const TOP_LEVEL: [(&str, &str); 7] = [
    ("sid", "Sid"),
    ("event_type", "EventType"),
    ("description", "EventDescription"),
    ("resource_type", "ResourceType"),
    ("resource_sid", "ResourceSid"),
    ("account_sid", "AccountSid"),
    ("workspace_sid", "WorkspaceSid"),
];

/// Why an Event resource cannot be a fact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventResourceError {
    #[error("the event is not a JSON object")]
    NotAnObject,
    #[error("the event has no {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// An Event resource as its callback's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedEvent {
    pub params: FormParams,
    /// The event was older than [`REDACTION_AGE_MS`] when fetched: its task attributes were
    /// left out.
    pub attributes_redacted: bool,
}

/// `worker_time_in_previous_activity_ms` → `WorkerTimeInPreviousActivityMs`.
pub fn pascal_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for word in snake.split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// A JSON value as a form parameter's text: strings as they are, numbers and booleans written
/// out, objects and arrays as JSON; `None` for null.
pub(super) fn as_param(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        Value::Array(_) | Value::Object(_) => Some(value.to_string()),
    }
}

/// Maps `event` (one element of the list's `events`), fetched at `fetched_at_ms`.
///
/// # Errors
/// [`EventResourceError`] when it is not an object or lacks its `sid`, `event_type` or
/// `event_date_ms`.
pub fn map_event(event: &Value, fetched_at_ms: i64) -> Result<MappedEvent, EventResourceError> {
    let object = event.as_object().ok_or(EventResourceError::NotAnObject)?;
    for required in ["sid", "event_type"] {
        if object.get(required).and_then(as_param).is_none_or(|v| v.is_empty()) {
            return Err(EventResourceError::Missing(if required == "sid" { "sid" } else { "event_type" }));
        }
    }
    let date_ms = object
        .get("event_date_ms")
        .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
        .ok_or(EventResourceError::Missing("event_date_ms"))?;
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(48);
    for (field, param) in TOP_LEVEL {
        if let Some(value) = object.get(field).and_then(as_param) {
            pairs.push((param.to_string(), value));
        }
    }
    pairs.push(("Timestamp".into(), date_ms.div_euclid(1000).to_string()));
    pairs.push(("TimestampMs".into(), date_ms.to_string()));
    let redacted = fetched_at_ms.saturating_sub(date_ms) > REDACTION_AGE_MS;
    let mut attributes_redacted = false;
    if let Some(data) = object.get("event_data").and_then(Value::as_object) {
        for (key, value) in data {
            let name = pascal_case(key);
            if redacted && name == "TaskAttributes" {
                attributes_redacted = true;
                continue;
            }
            let Some(value) = as_param(value) else { continue };
            if !pairs.iter().any(|(existing, _)| *existing == name) {
                pairs.push((name, value));
            }
        }
    }
    Ok(MappedEvent { params: FormParams(pairs), attributes_redacted })
}

/// The facts the log indexes for a mapped event: those of its event callback.
///
/// # Errors
/// A [`ParseError`] as for a callback body.
pub fn facts_of(mapped: &MappedEvent, fetched_at_ms: i64) -> Result<WebhookFacts, ParseError> {
    webhook::extract_facts(Endpoint::Events, &mapped.params, fetched_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimeSource;

    /// Modelled on the OpenAPI spec's example list page (one `worker.activity` event).
    fn spec_like_event() -> Value {
        serde_json::json!({
            "account_sid": "AC0123456789abcdef0123456789abcdef",
            "actor_sid": "WS0123456789abcdef0123456789abcdef",
            "actor_type": "workspace",
            "description": "Worker Alice updated to Idle Activity",
            "event_data": {
                "worker_activity_name": "Idle",
                "worker_activity_sid": "WA0123456789abcdef0123456789abcdef",
                "worker_attributes": "{}",
                "worker_name": "Alice",
                "worker_sid": "WK0123456789abcdef0123456789abcdef",
                "worker_time_in_previous_activity": "26",
                "worker_time_in_previous_activity_ms": "26123",
                "workspace_name": "Support",
                "workspace_sid": "WS0123456789abcdef0123456789abcdef"
            },
            "event_date": "2026-12-01T00:32:41Z",
            "event_date_ms": 1_796_092_361_123_i64,
            "event_type": "worker.activity.update",
            "resource_sid": "WK0123456789abcdef0123456789abcdef",
            "resource_type": "worker",
            "sid": "EV0123456789abcdef0123456789abcdef",
            "source": "twilio",
            "workspace_sid": "WS0123456789abcdef0123456789abcdef"
        })
    }

    #[test]
    fn snake_case_keys_become_the_callback_parameters() {
        assert_eq!(pascal_case("worker_time_in_previous_activity_ms"), "WorkerTimeInPreviousActivityMs");
        assert_eq!(pascal_case("task_queue_sid"), "TaskQueueSid");
        assert_eq!(pascal_case("sid"), "Sid");
        let mapped = map_event(&spec_like_event(), 1_796_092_400_000).unwrap();
        let params = &mapped.params;
        assert_eq!(params.get("Sid"), Some("EV0123456789abcdef0123456789abcdef"));
        assert_eq!(params.get("EventType"), Some("worker.activity.update"));
        assert_eq!(params.get("EventDescription"), Some("Worker Alice updated to Idle Activity"));
        assert_eq!(params.get("TimestampMs"), Some("1796092361123"));
        assert_eq!(params.get("Timestamp"), Some("1796092361"));
        assert_eq!(params.get("WorkerTimeInPreviousActivityMs"), Some("26123"));
        assert_eq!(params.get("WorkerActivityName"), Some("Idle"));
        assert_eq!(params.pairs().iter().filter(|(n, _)| n == "WorkspaceSid").count(), 1);
        let facts = facts_of(&mapped, 0).unwrap();
        assert_eq!(facts.event_sid.as_deref(), Some("EV0123456789abcdef0123456789abcdef"));
        assert_eq!(facts.worker_sid.as_deref(), Some("WK0123456789abcdef0123456789abcdef"));
        assert_eq!(facts.occurred_at.epoch_ms, 1_796_092_361_123);
        assert_eq!(facts.occurred_at.source, TimeSource::TimestampMs);
    }

    #[test]
    fn old_events_lose_their_task_attributes_not_their_other_fields() {
        let mut event = spec_like_event();
        event["event_data"]["task_attributes"] = Value::String("{\"redacted\":true}".into());
        event["event_data"]["task_priority"] = serde_json::json!(3);
        let date = event["event_date_ms"].as_i64().unwrap();
        let fresh = map_event(&event, date + REDACTION_AGE_MS).unwrap();
        assert!(!fresh.attributes_redacted);
        assert_eq!(fresh.params.get("TaskAttributes"), Some("{\"redacted\":true}"));
        let old = map_event(&event, date + REDACTION_AGE_MS + 1).unwrap();
        assert!(old.attributes_redacted);
        assert_eq!(old.params.get("TaskAttributes"), None);
        assert_eq!(old.params.get("TaskPriority"), Some("3"));
    }

    #[test]
    fn an_event_without_its_identity_is_refused() {
        let mut event = spec_like_event();
        event.as_object_mut().unwrap().remove("sid");
        assert_eq!(map_event(&event, 0), Err(EventResourceError::Missing("sid")));
        let mut event = spec_like_event();
        event.as_object_mut().unwrap().remove("event_date_ms");
        assert_eq!(map_event(&event, 0), Err(EventResourceError::Missing("event_date_ms")));
        assert_eq!(map_event(&Value::Null, 0), Err(EventResourceError::NotAnObject));
    }
}
