//! Sending a recorded webhook on to another server: forwarding live traffic to the user's app
//! (`--forward-to`) and replaying a recorded request to any URL.
//!
//! Owns the outbound request (same method, path, headers and body; hop-by-hop headers dropped;
//! `X-Twilio-Signature` recomputed for the URL actually called, so the receiver's own validator
//! passes) and the record of what came back.

use std::time::{Duration, Instant};

use serde::Serialize;

use taskrouter_protocol::instruction::{self, AnswerCheck};
use taskrouter_protocol::signature;

/// Headers never relayed: they describe one connection, or are recomputed.
const NOT_RELAYED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "x-twilio-signature",
];

/// Bytes of a response body kept in the record.
const KEPT_BODY_BYTES: usize = 64 * 1024;

/// How an outgoing request is signed when an auth token is configured.
#[derive(Debug, Clone, Copy)]
pub enum Signing<'a> {
    /// A form body: the URL and these parameters.
    Form(&'a [(String, String)]),
    /// A JSON body (Event Streams): `bodySHA256` set in the URL, which alone is signed.
    JsonBody,
    Unsigned,
}

/// One request to send.
pub struct Outgoing<'a> {
    pub url: String,
    pub headers: &'a [(String, String)],
    pub body: Vec<u8>,
    pub signing: Signing<'a>,
    /// Judge the answer as TaskRouter judges an assignment callback's.
    pub is_assignment: bool,
    pub timeout: Duration,
}

/// What the other server answered, as recorded next to the request.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct UpstreamAnswer {
    pub url: String,
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub latency_ms: u64,
    /// Why there is no answer (connection refused, timeout…).
    pub error: Option<String>,
    /// For assignment callbacks: what TaskRouter would make of the answer.
    pub check: Option<AnswerCheck>,
    /// Whether the request carried a signature recomputed for `url`.
    pub resigned: bool,
}

/// The outbound HTTP client, shared by forwarding and replay.
#[derive(Clone)]
pub struct Relay {
    client: reqwest::Client,
    auth_token: Option<String>,
}

impl Relay {
    pub fn new(auth_token: Option<String>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("a client with a plain configuration builds");
        Self { client, auth_token }
    }

    /// Sends `outgoing` and records the answer (or the failure); never fails itself.
    pub async fn send(&self, mut outgoing: Outgoing<'_>) -> UpstreamAnswer {
        if let (Some(_), Signing::JsonBody) = (&self.auth_token, outgoing.signing) {
            outgoing.url = signature::with_body_hash(&outgoing.url, &outgoing.body);
        }
        let mut request = self.client.post(&outgoing.url).timeout(outgoing.timeout).body(outgoing.body);
        for (name, value) in outgoing.headers {
            if !NOT_RELAYED.contains(&name.to_ascii_lowercase().as_str()) && value != "[redacted]" {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        let signed_params = match outgoing.signing {
            Signing::Form(params) => Some(params),
            Signing::JsonBody => Some(&[][..]),
            Signing::Unsigned => None,
        };
        let resigned = match (&self.auth_token, signed_params) {
            (Some(token), Some(params)) => {
                request = request
                    .header(signature::SIGNATURE_HEADER, signature::compute(token, &outgoing.url, params));
                true
            }
            _ => false,
        };
        let started = Instant::now();
        let mut answer = UpstreamAnswer {
            url: outgoing.url.clone(),
            status: None,
            content_type: None,
            headers: Vec::new(),
            body: String::new(),
            latency_ms: 0,
            error: None,
            check: None,
            resigned,
        };
        match request.send().await {
            Ok(response) => {
                answer.status = Some(response.status().as_u16());
                answer.headers = response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                answer.content_type =
                    response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
                match response.bytes().await {
                    Ok(bytes) => {
                        answer.body =
                            String::from_utf8_lossy(&bytes[..bytes.len().min(KEPT_BODY_BYTES)]).into_owned()
                    }
                    Err(error) => {
                        answer.error = Some(format!("the answer's body could not be read: {error}"))
                    }
                }
            }
            Err(error) => answer.error = Some(describe(&error)),
        }
        answer.latency_ms = started.elapsed().as_millis() as u64;
        if outgoing.is_assignment && answer.error.is_none() {
            answer.check = answer.status.map(|status| {
                instruction::check_assignment_answer(
                    status,
                    answer.content_type.as_deref(),
                    answer.body.as_bytes(),
                    answer.latency_ms,
                )
            });
        }
        answer
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within the time limit ({error})")
    } else if error.is_connect() {
        format!("could not connect: is the app running? ({error})")
    } else {
        error.to_string()
    }
}
