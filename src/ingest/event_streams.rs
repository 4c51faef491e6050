//! An Event Streams delivery (`POST /webhooks/event-streams`): one CloudEvent or a batch,
//! recorded whole as one row, and each TaskRouter CloudEvent in it as a row of its own related
//! to it, the fact its event callback would have been. The request's row and its CloudEvents'
//! rows are committed together, so a batch is stored all or nothing, and answered 2xx only then.
//!
//! The signature is Twilio's for JSON bodies: `bodySHA256` in the URL must be the body's
//! SHA-256 and `X-Twilio-Signature` covers the URL alone (see [`taskrouter_protocol::signature`]).

use serde_json::json;

use super::{error_json, not_a_fact, Ingest, IngestOutcome, ReceivedRequest, JSON};
use crate::relay::{Outgoing, Signing};
use crate::storage::append::Appended;
use crate::storage::event_log::{NewRecord, RecordKind};
use taskrouter_protocol::cloud_event::{
    self, CloudEventError, Delivery, CLOUDEVENT_ENDPOINT, EVENT_STREAMS_ENDPOINT,
};
use taskrouter_protocol::signature::{self, Verdict};

/// How long the app behind `--forward-to` may take: Event Streams waits 5 s for the tracer.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(4_500);

/// What was decided about an Event Streams request before storing it.
struct Evaluation<'a> {
    verdict: Verdict,
    /// The non-2xx status to answer and why.
    rejection: Option<(u16, String)>,
    delivery: Option<Delivery<'a>>,
}

impl Ingest {
    /// Checks, records and answers one Event Streams request.
    pub async fn receive_event_streams(&self, request: ReceivedRequest) -> IngestOutcome {
        let evaluation = self.evaluate_event_streams(&request);
        let verdict = evaluation.verdict.as_str();
        let signature_detail = evaluation.verdict.stored_detail();
        let trusted = evaluation.rejection.is_none() && evaluation.verdict.is_trusted();
        let status = evaluation.rejection.as_ref().map_or(200, |(status, _)| *status);
        let children = match (&evaluation.delivery, &evaluation.rejection) {
            (Some(delivery), None) => cloudevent_records(&request, delivery, verdict, trusted),
            _ => Vec::new(),
        };
        let summary = evaluation.delivery.as_ref().map(|delivery| {
            let taskrouter = delivery.events.iter().filter(|e| e.taskrouter.is_some()).count();
            (delivery.events.len(), taskrouter)
        });
        let rejection = evaluation.rejection.as_ref().map(|(_, message)| message.clone());
        let not_a_fact = not_a_fact(&evaluation.verdict, rejection.is_some());
        // The parsed delivery borrows the body, which the request's row now takes.
        drop(evaluation);
        let arrived = request.arrived;
        let mut request_record = request.into_record(
            EVENT_STREAMS_ENDPOINT,
            verdict,
            signature_detail,
            rejection.clone().or(not_a_fact),
            status,
        );
        // What is stored as the answer is known before the rows' ids: the ids are added to the
        // reply only.
        let stored_answer = match (&rejection, summary) {
            (Some(message), _) => error_json(message),
            (None, Some((events, taskrouter))) => {
                json!({"events": events, "taskrouter_events": taskrouter}).to_string()
            }
            (None, None) => "{}".to_string(),
        };
        request_record.response_body = Some(stored_answer);
        let mut status = status;
        let mut content_type = JSON.to_string();
        let mut forwarded_answer = None;
        // With --forward-to, an accepted request goes on to the app's own sink, re-signed for
        // it, and the app's answer is Event Streams' (a 5xx makes it deliver again).
        if let (Some(target), None) = (&self.config.forward_to, &rejection) {
            let answer = self
                .relay
                .send(Outgoing {
                    url: format!("{}{}", target.trim_end_matches('/'), request_record.path),
                    headers: &request_record.headers,
                    body: request_record.body.clone(),
                    signing: Signing::JsonBody,
                    is_assignment: false,
                    timeout: FORWARD_TIMEOUT,
                })
                .await;
            status = answer.status.unwrap_or(502);
            content_type = answer.content_type.clone().unwrap_or_default();
            request_record.response_status = status;
            request_record.upstream = serde_json::to_string(&answer).ok();
            forwarded_answer = Some(match answer.status {
                Some(_) => answer.body.clone(),
                None => error_json(&format!(
                    "the app at {} did not answer: {}",
                    answer.url,
                    answer.error.as_deref().unwrap_or("unknown error")
                )),
            });
            request_record.response_body = forwarded_answer.clone();
        }
        request_record.encode_payload();
        let mut records = Vec::with_capacity(1 + children.len());
        records.push(request_record);
        records.extend(children);
        match self.writer.append_request(records, arrived).await {
            Ok(appended) => {
                let body = forwarded_answer.unwrap_or_else(|| answer_body(&rejection, summary, &appended));
                let stored = appended.first().copied().ok_or(crate::storage::writer::WriteError::Stopped);
                IngestOutcome { status, content_type, body, verdict, stored }
            }
            Err(error) => IngestOutcome::not_stored(verdict, error),
        }
    }

    fn evaluate_event_streams<'a>(&self, request: &'a ReceivedRequest) -> Evaluation<'a> {
        let is_json = request.has_content_type("application/json");
        let mut verdict = self.check_signature(request, &[]);
        let hashed = signature::has_body_hash(&request.path_and_query);
        if matches!(verdict, Verdict::Valid) && !request.body.is_empty() && !hashed {
            verdict = Verdict::Invalid(
                "The URL has no bodySHA256: Twilio signs a JSON body through that query parameter, so \
                 this body is not covered by the signature."
                    .into(),
            );
        }
        let complete = request.read_error.is_none() && !request.body_truncated;
        let parsed =
            (complete && is_json).then(|| cloud_event::parse_delivery(&request.body, request.arrival_ms));
        let rejection = if let Some(rejection) =
            self.incomplete_body(request, "; Event Streams batches are at most 64 KB")
        {
            Some(rejection)
        } else if !is_json {
            Some(request.wrong_content_type("Event Streams delivers application/json"))
        } else if let Some(refusal) = self.signature_refusal(&verdict) {
            Some(refusal)
        } else if let Some(Err(error)) = &parsed {
            Some((400, describe(error)))
        } else {
            None
        };
        Evaluation { verdict, rejection, delivery: parsed.and_then(Result::ok) }
    }
}

/// A row for each TaskRouter CloudEvent of an accepted `delivery`: its JSON text as received,
/// its facts, its CloudEvent `id` as the idempotency token (the writer relates it to the
/// request's row).
fn cloudevent_records(
    request: &ReceivedRequest,
    delivery: &Delivery<'_>,
    verdict: &'static str,
    trusted: bool,
) -> Vec<NewRecord> {
    delivery
        .events
        .iter()
        .filter_map(|event| {
            let mapped = event.taskrouter.as_ref()?;
            let mut record = NewRecord {
                kind: RecordKind::CloudEvent,
                received_at_ms: request.arrival_ms,
                endpoint: CLOUDEVENT_ENDPOINT.into(),
                method: request.method.clone(),
                path: request.path_and_query.clone(),
                headers: vec![("content-type".into(), JSON.into())],
                body: event.raw.as_bytes().to_vec(),
                body_truncated: false,
                remote_addr: request.remote_addr.clone(),
                signature_verdict: verdict,
                signature_detail: None,
                rejection: (!trusted).then(|| {
                    format!("not a fact: the request's signature is {verdict} (--signature-check record)")
                }),
                response_status: 200,
                response_body: None,
                upstream: None,
                related_to: None,
                facts: Some(mapped.facts.clone()),
                params: Some(mapped.params.clone()),
                trusted,
                idempotency_token: Some(event.id.clone()),
                encoded: None,
                skip_if_known: false,
            };
            record.encode_payload();
            Some(record)
        })
        .collect()
}

fn describe(error: &CloudEventError) -> String {
    format!("not an Event Streams delivery: {error}; nothing of this request became a fact")
}

/// The reply: the stored answer with the rows it became.
fn answer_body(rejection: &Option<String>, summary: Option<(usize, usize)>, appended: &[Appended]) -> String {
    let request_row = appended.first().map(|a| a.id);
    match (rejection, summary) {
        (Some(message), _) => json!({"error": message, "recorded_as": request_row}).to_string(),
        (None, summary) => {
            let (events, taskrouter) = summary.unwrap_or((0, 0));
            let cloudevents = &appended[1.min(appended.len())..];
            json!({
                "recorded_as": request_row,
                "events": events,
                "taskrouter_events": taskrouter,
                "new_facts": cloudevents.iter().filter(|a| a.is_fact).count(),
                "duplicates": cloudevents.iter().filter(|a| a.duplicate_of.is_some()).count(),
                "cloudevent_rows": cloudevents.iter().map(|a| a.id).collect::<Vec<_>>(),
            })
            .to_string()
        }
    }
}
