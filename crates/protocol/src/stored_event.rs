//! Any stored TaskRouter event read back as its event callback's parameters, whichever path it
//! came by: a form callback's body as it is; an Events API event or an Event Streams
//! CloudEvent, both stored as the JSON received, mapped exactly as at ingest (the mapping
//! depends only on the row).

use super::cloud_event::{self, CLOUDEVENT_ENDPOINT};
use super::event_resource::{self, EVENTS_API_ENDPOINT};
use super::webhook::{self, FormParams};

/// The callback parameters of a row stored under `endpoint` with `body`, received (or
/// fetched) at `received_at_ms`.
///
/// # Errors
/// Why the body does not read back as a callback.
pub fn callback_params(endpoint: &str, body: &[u8], received_at_ms: i64) -> Result<FormParams, String> {
    match endpoint {
        EVENTS_API_ENDPOINT => serde_json::from_slice(body)
            .map_err(|e| e.to_string())
            .and_then(|event| event_resource::map_event(&event, received_at_ms).map_err(|e| e.to_string()))
            .map(|mapped| mapped.params),
        CLOUDEVENT_ENDPOINT => std::str::from_utf8(body)
            .map_err(|e| e.to_string())
            .and_then(|raw| cloud_event::parse_stored(raw, received_at_ms).map_err(|e| e.to_string()))
            .map(|mapped| mapped.params),
        _ => webhook::parse_form(body).map_err(|e| e.to_string()),
    }
}

/// Whether rows stored under `endpoint` hold JSON that [`callback_params`] maps (rather than a
/// form body).
pub fn is_mapped(endpoint: &str) -> bool {
    endpoint == EVENTS_API_ENDPOINT || endpoint == CLOUDEVENT_ENDPOINT
}
