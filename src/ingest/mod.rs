//! Turning one received webhook into its log rows and one answer.
//!
//! Owns the decisions about a request (body limit, content type, signature, well-formedness,
//! the status to answer) and hands the row to the single writer, whose transaction appends it
//! and updates the projections. Nothing is answered 2xx until that transaction has committed;
//! a storage failure becomes 503 so that Twilio retries.

mod event_streams;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::relay::{Outgoing, Relay, Signing};
use crate::storage::append::Appended;
use crate::storage::event_log::{NewRecord, RecordKind};
use crate::storage::writer::{WriteError, Writer};
use taskrouter_protocol::instruction::ASSIGNMENT_DEADLINE_MS;
use taskrouter_protocol::signature::{self, SignedRequest, Verdict};
use taskrouter_protocol::webhook::{self, Endpoint, FormParams};

/// How signatures are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMode {
    /// Answer 403 to a missing or bad signature (the request is still recorded).
    Enforce,
    /// Accept every request but record its verdict; bad ones never become facts.
    Record,
    /// Do not check; every request is `unchecked`.
    Off,
}

impl std::str::FromStr for SignatureMode {
    type Err = String;

    fn from_str(mode: &str) -> Result<Self, String> {
        match mode {
            "enforce" => Ok(SignatureMode::Enforce),
            "record" => Ok(SignatureMode::Record),
            "off" => Ok(SignatureMode::Off),
            other => Err(format!("{other:?} is not a signature mode (enforce, record, off)")),
        }
    }
}

/// What ingest needs to know, fixed at start.
#[derive(Clone)]
pub struct IngestConfig {
    pub auth_token: Option<String>,
    pub signature_mode: SignatureMode,
    /// The URL Twilio calls, without a trailing slash (`https://abc.ngrok.app`). When unset, the
    /// URL is rebuilt from the request's own Host header.
    pub public_url: Option<String>,
    pub body_limit: usize,
    /// The user's app (`http://127.0.0.1:8080`): accepted webhooks are relayed to it, and its
    /// answer is what Twilio gets.
    pub forward_to: Option<String>,
    /// While `connect`ed (and without `forward_to`): the workspace's original callback URLs,
    /// each webhook relayed to its own (an assignment callback to its workflow's).
    pub connected: crate::connect::SharedTargets,
}

/// One request as the HTTP edge received it.
pub struct ReceivedRequest {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was longer than the limit; `body` holds its first `body_limit` bytes.
    pub body_truncated: bool,
    /// The body could not be read to its end (the client went away, bad chunking…).
    pub read_error: Option<String>,
    pub remote_addr: Option<String>,
    /// `scheme://host` as this request itself claims (Host / X-Forwarded-* headers).
    pub claimed_base_urls: Vec<String>,
    pub arrived: Instant,
    pub arrival_ms: i64,
}

impl ReceivedRequest {
    /// The request's own row: what arrived, the verdict on its signature and what it was
    /// answered. What it became (facts, answer body, trust) is the caller's to add.
    fn into_record(
        self,
        endpoint: &str,
        signature_verdict: &'static str,
        signature_detail: Option<String>,
        rejection: Option<String>,
        response_status: u16,
    ) -> NewRecord {
        NewRecord {
            kind: RecordKind::Webhook,
            received_at_ms: self.arrival_ms,
            endpoint: endpoint.to_string(),
            method: self.method,
            path: self.path_and_query,
            headers: self.headers,
            body: self.body,
            body_truncated: self.body_truncated,
            remote_addr: self.remote_addr,
            signature_verdict,
            signature_detail,
            rejection,
            response_status,
            response_body: None,
            upstream: None,
            related_to: None,
            facts: None,
            params: None,
            trusted: false,
            idempotency_token: None,
            encoded: None,
            skip_if_known: false,
        }
    }
}

/// What to answer, and what was stored.
#[derive(Debug)]
pub struct IngestOutcome {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub verdict: &'static str,
    pub stored: Result<Appended, WriteError>,
}

/// The ingest service shared by the webhook handlers.
#[derive(Clone)]
pub struct Ingest {
    config: Arc<IngestConfig>,
    writer: Writer,
    relay: Relay,
}

const JSON: &str = "application/json";

impl Ingest {
    pub fn new(config: IngestConfig, writer: Writer, relay: Relay) -> Self {
        Self { config: Arc::new(config), writer, relay }
    }

    /// The single writer, for other records (replays, actions) that join the log.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// The URL a request to `path_and_query` was signed for, as configured.
    pub fn signed_url(&self, path_and_query: &str, claimed_base_urls: &[String]) -> String {
        let base =
            self.config.public_url.clone().or_else(|| claimed_base_urls.first().cloned()).unwrap_or_default();
        format!("{}{}", base.trim_end_matches('/'), path_and_query)
    }

    /// Decides what to answer and the row to store, without storing it or calling out: the
    /// part of ingest that bulk tools share. `assignment_answer` gives the 2xx answer to an
    /// accepted assignment callback from its parsed parameters (the configured instruction).
    pub fn decide(
        &self,
        endpoint: Endpoint,
        request: ReceivedRequest,
        assignment_answer: &dyn Fn(&FormParams) -> String,
    ) -> Decision {
        let evaluation = self.evaluate(endpoint, &request);
        let (status, body) = match &evaluation.rejection {
            Some((status, message)) => (*status, error_json(message)),
            None => match endpoint {
                Endpoint::Assignment => {
                    (200, evaluation.params.as_ref().map_or_else(|| "{}".to_string(), assignment_answer))
                }
                Endpoint::Events => (204, String::new()),
            },
        };
        let trusted =
            evaluation.rejection.is_none() && evaluation.facts.is_some() && evaluation.verdict.is_trusted();
        let verdict = evaluation.verdict.as_str();
        let arrived = request.arrived;
        let rejection = evaluation.rejection.as_ref().map(|(_, m)| m.clone()).or(evaluation.not_a_fact);
        let record = NewRecord {
            response_body: Some(body),
            facts: evaluation.facts,
            params: evaluation.params,
            trusted,
            idempotency_token: evaluation.idempotency_token,
            ..request.into_record(
                endpoint.as_str(),
                verdict,
                evaluation.verdict.stored_detail(),
                rejection,
                status,
            )
        };
        Decision { record, accepted: evaluation.rejection.is_none(), verdict, arrived }
    }

    /// Decides, forwards when configured, records, and returns what to answer.
    pub async fn receive(
        &self,
        endpoint: Endpoint,
        request: ReceivedRequest,
        assignment_answer: &dyn Fn(&FormParams) -> String,
    ) -> IngestOutcome {
        let Decision { mut record, accepted, verdict, arrived } =
            self.decide(endpoint, request, assignment_answer);
        let mut content_type = JSON.to_string();
        // Only requests the tracer accepts are relayed: re-signing a forged one would make the
        // app's own validator pass it.
        let target = match &self.config.forward_to {
            Some(target) => Some(format!("{}{}", target.trim_end_matches('/'), record.path)),
            None => {
                let connected = self.config.connected.read().unwrap_or_else(|p| p.into_inner());
                match endpoint {
                    Endpoint::Events => connected.event_callback_url.clone(),
                    Endpoint::Assignment => record
                        .params
                        .as_ref()
                        .and_then(|p| p.get("WorkflowSid"))
                        .and_then(|workflow| connected.assignment_callback_urls.get(workflow).cloned()),
                }
            }
        };
        if let (Some(url), true) = (target, accepted) {
            let answer = self
                .relay
                .send(Outgoing {
                    url,
                    headers: &record.headers,
                    body: record.body.clone(),
                    signing: record.params.as_ref().map_or(Signing::Unsigned, |p| Signing::Form(p.pairs())),
                    is_assignment: endpoint == Endpoint::Assignment,
                    timeout: match endpoint {
                        Endpoint::Assignment => Duration::from_millis(ASSIGNMENT_DEADLINE_MS + 500),
                        Endpoint::Events => Duration::from_secs(15),
                    },
                })
                .await;
            match answer.status {
                Some(app_status) => {
                    record.response_status = app_status;
                    record.response_body = Some(answer.body.clone());
                    content_type = answer.content_type.clone().unwrap_or_default();
                }
                None => {
                    record.response_status = 502;
                    record.response_body = Some(error_json(&format!(
                        "the app at {} did not answer: {}",
                        answer.url,
                        answer.error.as_deref().unwrap_or("unknown error")
                    )));
                }
            }
            record.upstream = serde_json::to_string(&answer).ok();
        }
        let status = record.response_status;
        let body = record.response_body.clone().unwrap_or_default();
        record.encode_payload();
        let stored = self.writer.append(record, arrived).await;
        match stored {
            Ok(appended) => {
                let body = if accepted { body } else { add_record_id(&body, appended.id) };
                IngestOutcome { status, content_type, body, verdict, stored }
            }
            Err(error) => IngestOutcome::not_stored(verdict, error),
        }
    }

    fn evaluate(&self, endpoint: Endpoint, request: &ReceivedRequest) -> Evaluation {
        let idempotency_token = request.header("I-Twilio-Idempotency-Token").map(str::to_string);
        let is_form = request.has_content_type("application/x-www-form-urlencoded");
        let parsed = if is_form && !request.body_truncated && request.read_error.is_none() {
            Some(webhook::parse_form(&request.body))
        } else {
            None
        };
        let params = parsed.as_ref().and_then(|p| p.as_ref().ok()).cloned();
        let facts = params.as_ref().map(|p| webhook::extract_facts(endpoint, p, request.arrival_ms));

        let verdict = self.check_signature(request, params.as_ref().map_or(&[][..], |p| p.pairs()));
        let rejection = if let Some(rejection) = self.incomplete_body(request, "") {
            Some(rejection)
        } else if !is_form {
            Some(request.wrong_content_type("TaskRouter callbacks are application/x-www-form-urlencoded"))
        } else if let Some(Err(error)) = &parsed {
            // Before the signature: parameters that do not decode cannot be checked against
            // one, so "does not match" would blame the wrong thing.
            Some((400, format!("malformed callback: {error}")))
        } else if let Some(refusal) = self.signature_refusal(&verdict) {
            Some(refusal)
        } else {
            match &facts {
                Some(Err(error)) => Some((400, format!("malformed callback: {error}"))),
                _ => None,
            }
        };
        let not_a_fact = not_a_fact(&verdict, rejection.is_some());
        Evaluation {
            verdict,
            rejection,
            not_a_fact,
            facts: facts.and_then(Result::ok),
            params,
            idempotency_token,
        }
    }
}

impl ReceivedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the Content-Type's media type is `media_type` (parameters ignored).
    fn has_content_type(&self, media_type: &str) -> bool {
        self.header("Content-Type")
            .and_then(|value| value.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type))
    }

    /// The 415 for a body of another type than `expected` says.
    fn wrong_content_type(&self, expected: &str) -> (u16, String) {
        let sent = match self.header("Content-Type") {
            Some(value) if !value.is_empty() => value,
            _ => "sent without a Content-Type",
        };
        (415, format!("{expected}; this request was {sent}"))
    }
}

impl Ingest {
    /// The signature's verdict on `request` with its decoded form `params` (none for JSON).
    fn check_signature(&self, request: &ReceivedRequest, params: &[(String, String)]) -> Verdict {
        let token = match (&self.config.auth_token, self.config.signature_mode) {
            (None, _) | (_, SignatureMode::Off) => return Verdict::Unchecked,
            (Some(token), _) => token,
        };
        let url = self.signed_url(&request.path_and_query, &request.claimed_base_urls);
        let alternatives: Vec<String> = request
            .claimed_base_urls
            .iter()
            .map(|base| format!("{}{}", base.trim_end_matches('/'), request.path_and_query))
            .collect();
        signature::verify(
            token,
            &SignedRequest {
                url: &url,
                params,
                body: &request.body,
                signature: request.header(signature::SIGNATURE_HEADER),
            },
            &alternatives,
        )
    }

    /// The 403 for a missing or bad signature, when signatures are enforced.
    fn signature_refusal(&self, verdict: &Verdict) -> Option<(u16, String)> {
        let enforce =
            self.config.signature_mode == SignatureMode::Enforce && self.config.auth_token.is_some();
        if !enforce || verdict.is_trusted() {
            return None;
        }
        let why = match verdict {
            Verdict::Missing => "the X-Twilio-Signature header is missing",
            _ => "X-Twilio-Signature does not match this request",
        };
        Some((403, why.to_string()))
    }

    /// The 400 for a body not read to its end, or the 413 for one over the limit (`more`
    /// added to its message).
    fn incomplete_body(&self, request: &ReceivedRequest, more: &str) -> Option<(u16, String)> {
        if let Some(error) = &request.read_error {
            Some((400, format!("the body could not be read: {error}")))
        } else if request.body_truncated {
            Some((
                413,
                format!(
                    "the body is larger than the {} byte limit (stored truncated){more}",
                    self.config.body_limit
                ),
            ))
        } else {
            None
        }
    }
}

/// What ingest decided about one request, before storing it.
pub struct Decision {
    /// The row to store; `response_status`/`response_body` are what to answer.
    pub record: NewRecord,
    /// Whether the tracer accepted the request (2xx of its own).
    pub accepted: bool,
    pub verdict: &'static str,
    pub arrived: Instant,
}

struct Evaluation {
    verdict: Verdict,
    /// The non-2xx status to answer and why.
    rejection: Option<(u16, String)>,
    /// Answered 2xx but kept out of the projections (a bad signature under `record`).
    not_a_fact: Option<String>,
    facts: Option<webhook::WebhookFacts>,
    params: Option<webhook::FormParams>,
    idempotency_token: Option<String>,
}

impl IngestOutcome {
    /// The 503 for a request whose rows could not be stored: Twilio delivers it again.
    fn not_stored(verdict: &'static str, error: WriteError) -> Self {
        Self {
            status: 503,
            content_type: JSON.to_string(),
            body: error_json(&format!("not stored, retry later: {error}")),
            verdict,
            stored: Err(error),
        }
    }
}

/// Why a request answered 2xx is kept out of the projections: a bad signature under
/// `--signature-check record`.
fn not_a_fact(verdict: &Verdict, rejected: bool) -> Option<String> {
    match verdict {
        Verdict::Invalid(_) | Verdict::Missing if !rejected => Some(format!(
            "accepted (--signature-check record) but not a fact: signature {}",
            verdict.as_str()
        )),
        _ => None,
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

fn add_record_id(body: &str, id: i64) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("recorded_as".into(), id.into());
            serde_json::Value::Object(map).to_string()
        }
        _ => body.to_string(),
    }
}
