//! Replaying a recorded request: to the forward target or any URL, unchanged or with edited
//! parameters, re-signed for the URL called. Each replay is itself recorded, linked to its
//! original, and never counts as a TaskRouter fact. An event fetched from the Events API is
//! sent as the event callback it stands for (its mapped parameters, to `/webhooks/events`); an
//! Event Streams request, or one CloudEvent of it, as the JSON received, signed through
//! `bodySHA256` for the URL called.

use std::time::{Duration, Instant};

use crate::relay::{Outgoing, Relay, Signing, UpstreamAnswer};
use crate::storage::event_log::{NewRecord, RecordKind};
use crate::storage::requests::RecordedRequest;
use crate::storage::writer::Writer;
use taskrouter_protocol::cloud_event::{CLOUDEVENT_ENDPOINT, EVENT_STREAMS_ENDPOINT};
use taskrouter_protocol::event_resource::{map_event, EVENTS_API_ENDPOINT};
use taskrouter_protocol::webhook::{encode_form, parse_form};

/// What to replay and where.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ReplayRequest {
    /// The full URL to send to; default: the forward target plus the original path.
    pub url: Option<String>,
    /// Replacement parameters; default: the original body, byte for byte.
    pub params: Option<Vec<(String, String)>>,
}

/// A recorded replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayOutcome {
    pub replay_id: i64,
    pub original_id: i64,
    pub answer: UpstreamAnswer,
}

/// Sends `original` again as `request` says, and records the attempt.
///
/// # Errors
/// A message for the user when there is nowhere to send it, or the record cannot be stored.
pub async fn replay(
    relay: &Relay,
    writer: &Writer,
    forward_to: Option<&str>,
    original: &RecordedRequest,
    request: ReplayRequest,
) -> Result<ReplayOutcome, String> {
    // An event fetched from the Events API is sent as the event callback it stands for.
    let from_events_api = original.endpoint == EVENTS_API_ENDPOINT;
    let (path, headers) = if from_events_api {
        (
            "/webhooks/events",
            vec![("content-type".to_string(), "application/x-www-form-urlencoded".to_string())],
        )
    } else {
        (original.path.as_str(), original.headers.clone())
    };
    let url = match (request.url.filter(|u| !u.trim().is_empty()), forward_to) {
        (Some(url), _) => url.trim().to_string(),
        (None, Some(target)) => format!("{}{path}", target.trim_end_matches('/')),
        (None, None) => {
            return Err("give a URL to replay to (or start the tracer with --forward-to)".to_string());
        }
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    let is_json = original.endpoint == EVENT_STREAMS_ENDPOINT || original.endpoint == CLOUDEVENT_ENDPOINT;
    if is_json && request.params.is_some() {
        return Err(format!(
            "#{} is JSON (Event Streams): it is replayed as received, not as edited parameters",
            original.id
        ));
    }
    let (body, params) = match request.params {
        Some(params) => (encode_form(&params).into_bytes(), Some(params)),
        None if is_json => (original.body.clone(), None),
        None if from_events_api => {
            let params = serde_json::from_slice(&original.body)
                .map_err(|e| e.to_string())
                .and_then(|event| map_event(&event, original.received_at_ms).map_err(|e| e.to_string()))
                .map_err(|e| format!("#{} cannot be sent as an event callback: {e}", original.id))?
                .params
                .0;
            (encode_form(&params).into_bytes(), Some(params))
        }
        None => (original.body.clone(), parse_form(&original.body).ok().map(|p| p.0)),
    };
    let started = Instant::now();
    let received_at_ms = chrono::Utc::now().timestamp_millis();
    let answer = relay
        .send(Outgoing {
            url: url.clone(),
            headers: &headers,
            body: body.clone(),
            signing: match params.as_deref() {
                Some(params) => Signing::Form(params),
                None if is_json => Signing::JsonBody,
                None => Signing::Unsigned,
            },
            is_assignment: original.endpoint == "assignment",
            timeout: Duration::from_secs(15),
        })
        .await;
    let record = NewRecord {
        kind: RecordKind::Replay,
        received_at_ms,
        endpoint: if from_events_api { "events".into() } else { original.endpoint.clone() },
        method: "POST".into(),
        path: answer.url.clone(),
        headers,
        body,
        body_truncated: false,
        remote_addr: None,
        signature_verdict: "unchecked",
        signature_detail: Some(if answer.resigned {
            "replay: X-Twilio-Signature recomputed for the URL called".into()
        } else {
            "replay: sent unsigned (no auth token configured)".into()
        }),
        rejection: Some(format!("a replay of #{}, not a TaskRouter delivery", original.id)),
        response_status: answer.status.unwrap_or(502),
        response_body: Some(answer.body.clone()),
        upstream: serde_json::to_string(&answer).ok(),
        related_to: Some(original.id),
        facts: None,
        params: None,
        trusted: false,
        idempotency_token: None,
        encoded: None,
        skip_if_known: false,
    };
    let stored = writer
        .append(record, started)
        .await
        .map_err(|e| format!("the replay was sent but not recorded: {e}"))?;
    Ok(ReplayOutcome { replay_id: stored.id, original_id: original.id, answer })
}
