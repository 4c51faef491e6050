//! Replaying a recorded request: to the forward target or any URL, unchanged or with edited
//! parameters, re-signed for the URL called. Each replay is itself recorded, linked to its
//! original, and never counts as a TaskRouter fact.

use std::time::{Duration, Instant};

use crate::domain::webhook::{encode_form, parse_form};
use crate::relay::{Outgoing, Relay, UpstreamAnswer};
use crate::storage::event_log::{NewRecord, RecordKind};
use crate::storage::reads::RecordedRequest;
use crate::storage::writer::Writer;

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
    let url = match (request.url.filter(|u| !u.trim().is_empty()), forward_to) {
        (Some(url), _) => url.trim().to_string(),
        (None, Some(target)) => format!("{}{}", target.trim_end_matches('/'), original.path),
        (None, None) => {
            return Err("give a URL to replay to (or start the tracer with --forward-to)".to_string());
        }
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    let (body, params) = match request.params {
        Some(params) => (encode_form(&params).into_bytes(), Some(params)),
        None => (original.body.clone(), parse_form(&original.body).ok().map(|p| p.0)),
    };
    let started = Instant::now();
    let received_at_ms = chrono::Utc::now().timestamp_millis();
    let answer = relay
        .send(Outgoing {
            url: url.clone(),
            headers: &original.headers,
            body: body.clone(),
            params: params.as_deref(),
            is_assignment: original.endpoint == "assignment",
            timeout: Duration::from_secs(15),
        })
        .await;
    let record = NewRecord {
        kind: RecordKind::Replay,
        received_at_ms,
        endpoint: original.endpoint.clone(),
        method: "POST".into(),
        path: url,
        headers: original.headers.clone(),
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
