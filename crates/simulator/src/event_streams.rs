//! The simulator's Event Streams webhook sink: each event callback it emits rendered as the
//! CloudEvent Twilio's Event Streams would carry (`com.twilio.taskrouter.*`, the callback's
//! fields in snake_case under `data.payload`), and batches of them as signed JSON bodies
//! (`bodySHA256` in the URL, `X-Twilio-Signature` over the URL alone).

use serde_json::{json, Map, Value};

use super::model::snake_case;
use taskrouter_protocol::cloud_event::BATCH_BODY_LIMIT;
use taskrouter_protocol::signature;

/// A webhook sink subscribed to the workspace's TaskRouter events.
#[derive(Debug, Clone)]
pub struct EventStreamsSink {
    /// The sink's `destination`.
    pub url: String,
    /// CloudEvents per body at most (bodies also stay under 64 KB).
    pub batch_size: usize,
    /// Whether the workspace's event callbacks are sent as form webhooks too.
    pub also_webhooks: bool,
    /// Share of bodies delivered a second time (Event Streams delivers at least once).
    pub redelivery_rate: f64,
}

/// Callback parameters whose payload value is a JSON number.
const NUMERIC: [&str; 6] = [
    "TaskAge",
    "TaskPriority",
    "TaskVersion",
    "WorkerVersion",
    "WorkerTimeInPreviousActivity",
    "WorkerTimeInPreviousActivityMs",
];

/// Callback parameters holding epoch seconds that the payload writes as ISO 8601.
const DATES: [&str; 2] = ["TaskDateCreated", "TaskQueueEnteredDate"];

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The CloudEvent of one event callback (its parameters as the simulator sends them).
pub fn cloud_event(params: &[(String, String)]) -> Value {
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("");
    let event_type = get("EventType");
    let sid = get("Sid");
    let at_ms: i64 = get("TimestampMs").parse().unwrap_or_default();
    let mut payload = Map::new();
    payload.insert("sid".into(), sid.into());
    payload.insert("eventtype".into(), event_type.into());
    payload.insert("timestamp".into(), iso(at_ms).into());
    for (name, value) in params {
        let key = match name.as_str() {
            "Sid" | "EventType" | "Timestamp" | "TimestampMs" => continue,
            "EventDescription" => "description".to_string(),
            other => snake_case(other),
        };
        let value = if NUMERIC.contains(&name.as_str()) {
            value.parse::<i64>().map_or_else(|_| Value::from(value.as_str()), Value::from)
        } else if DATES.contains(&name.as_str()) {
            value.parse::<i64>().map_or_else(|_| Value::from(value.as_str()), |s| iso(s * 1000).into())
        } else {
            Value::from(value.as_str())
        };
        payload.insert(key, value);
    }
    let group = event_type.split('.').next().unwrap_or_default();
    json!({
        "specversion": "1.0",
        "type": format!("com.twilio.taskrouter.{event_type}"),
        "source": format!("/v1/Workspaces/{}", get("WorkspaceSid")),
        // The CloudEvent's own id: stable for the event, so a redelivery carries the same one.
        "id": format!("NO{}", sid.get(2..).unwrap_or_default()),
        "dataschema": "https://events-schemas.twilio.com/TaskRouter.WDSEvent/4",
        "datacontenttype": "application/json",
        "time": iso(at_ms),
        "data": {
            "sid": sid,
            "name": pascal_words(event_type),
            "account_sid": get("AccountSid"),
            "timestamp": iso(at_ms),
            "level": "INFO",
            "group": group,
            "product_name": "TaskRouter",
            "publisher": get("WorkspaceName"),
            "publisher_metadata": "{}",
            "payload_type": "application/json",
            "payload": payload,
        },
    })
}

/// `reservation.created` → `ReservationCreated` (the `data.name` Twilio's samples show).
fn pascal_words(event_type: &str) -> String {
    event_type
        .split(['.', '-', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Splits `events` into JSON array bodies of at most `batch_size` events and
/// [`BATCH_BODY_LIMIT`] bytes (an event larger than that alone is sent alone).
pub fn batch_bodies(events: &[Value], batch_size: usize) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut bytes = 2;
    for event in events {
        let text = event.to_string();
        if !current.is_empty()
            && (current.len() >= batch_size.max(1) || bytes + text.len() + 1 > BATCH_BODY_LIMIT)
        {
            bodies.push(format!("[{}]", current.join(",")).into_bytes());
            current.clear();
            bytes = 2;
        }
        bytes += text.len() + 1;
        current.push(text);
    }
    if !current.is_empty() {
        bodies.push(format!("[{}]", current.join(",")).into_bytes());
    }
    bodies
}

/// The URL and `X-Twilio-Signature` Twilio would send `body` to `sink_url` with.
pub fn signed(auth_token: &str, sink_url: &str, body: &[u8]) -> (String, String) {
    let url = signature::with_body_hash(sink_url, body);
    let signature = signature::compute(auth_token, &url, &[]);
    (url, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_callback_as_the_tracer_reads_it_back() {
        let params: Vec<(String, String)> = [
            ("Sid", "EV0123456789abcdef0123456789abcdef"),
            ("EventType", "reservation.created"),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("WorkspaceSid", "WS0123456789abcdef0123456789abcdef"),
            ("EventDescription", "Reservation created"),
            ("Timestamp", "1796551200"),
            ("TimestampMs", "1796551200123"),
            ("TaskSid", "WT0123456789abcdef0123456789abcdef"),
            ("TaskAge", "31"),
            ("TaskDateCreated", "1796551169"),
            ("ReservationSid", "WR0123456789abcdef0123456789abcdef"),
            ("WorkerSid", "WK0123456789abcdef0123456789abcdef"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let event = cloud_event(&params);
        assert_eq!(event["data"]["payload"]["task_age"], 31);
        assert_eq!(event["data"]["name"], "ReservationCreated");
        let body = event.to_string();
        let read = taskrouter_protocol::cloud_event::parse_delivery(body.as_bytes(), 0).unwrap();
        let mapped = read.events[0].taskrouter.as_ref().unwrap();
        for (name, value) in &params {
            assert_eq!(mapped.params.get(name), Some(value.as_str()), "{name}");
        }
    }

    #[test]
    fn batches_stay_within_their_count_and_size() {
        let events: Vec<Value> = (0..25).map(|i| json!({"i": i, "pad": "x".repeat(10_000)})).collect();
        let bodies = batch_bodies(&events, 10);
        assert!(bodies.iter().all(|b| b.len() <= BATCH_BODY_LIMIT));
        let total: usize =
            bodies.iter().map(|b| serde_json::from_slice::<Vec<Value>>(b).unwrap().len()).sum();
        assert_eq!(total, 25);
        assert_eq!(batch_bodies(&events[..3], 10).len(), 1);
    }
}
