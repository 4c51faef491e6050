//! Carrying callbacks over HTTP as TaskRouter does: form-encoded POSTs signed with
//! `X-Twilio-Signature` for the exact URL called, an `I-Twilio-Idempotency-Token`, the
//! assignment callback's 5 s answer window, one retry of an event callback after a 5xx or a
//! timeout, and, on demand, duplicated, reordered and dropped event deliveries. With an Event
//! Streams sink, events also (or only) go there as Event Streams sends them: signed CloudEvent
//! batches, out of order, retried until answered 2xx and now and then delivered twice.

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::engine::{Instruction, Outbound, OutboundKind};
use super::event_streams::{self, EventStreamsSink};
use super::ground_truth::DeliveryStats;
use taskrouter_protocol::signature;
use taskrouter_protocol::webhook::encode_form;

/// Attempts at one Event Streams body before it counts as failed.
const STREAM_ATTEMPTS: u32 = 4;

/// Event Streams waits 5 s for a sink's answer.
const STREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// Delivery faults, each a probability per event callback.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Send the same request (same body, Sid and idempotency token) a second time.
    pub duplicate_rate: f64,
    /// Hold the event back and send it after the next one.
    pub reorder_rate: f64,
    /// Never send the event.
    pub drop_rate: f64,
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub auth_token: String,
    /// How long an assignment callback's answer is awaited (TaskRouter: 5 s).
    pub assignment_timeout: Duration,
    /// How long an event callback's answer is awaited (TaskRouter: 15 s).
    pub event_timeout: Duration,
    pub faults: Faults,
    pub seed: u64,
    /// An Event Streams webhook sink subscribed to the workspace's events.
    pub event_streams: Option<EventStreamsSink>,
}

impl DeliveryConfig {
    pub fn new(auth_token: String, faults: Faults, seed: u64) -> Self {
        Self {
            auth_token,
            assignment_timeout: Duration::from_secs(5),
            event_timeout: Duration::from_secs(15),
            faults,
            seed,
            event_streams: None,
        }
    }
}

/// What an assignment callback came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignmentAnswer {
    Instruction(Instruction),
    /// 200 with JSON but no instruction: wait for a REST accept/reject or the timeout.
    Deferred,
    /// Not 200 JSON in time: TaskRouter processes no instruction.
    Failed,
}

/// The state one delivery pass needs; the runtime holds it for the pass's whole duration so
/// that passes never interleave.
pub struct DeliveryState {
    rng: SmallRng,
    held: Option<Outbound>,
    /// CloudEvents waiting for the next Event Streams batch.
    streamed: Vec<serde_json::Value>,
}

pub struct Delivery {
    config: DeliveryConfig,
    client: reqwest::Client,
    stats: Mutex<DeliveryStats>,
}

impl Delivery {
    pub fn new(config: DeliveryConfig) -> (Self, DeliveryState) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(4)
            .build()
            .expect("HTTP client builds");
        let state = DeliveryState {
            rng: SmallRng::seed_from_u64(config.seed ^ 0x5eed_de11),
            held: None,
            streamed: Vec::new(),
        };
        (Self { config, client, stats: Mutex::new(DeliveryStats::default()) }, state)
    }

    pub fn stats(&self) -> DeliveryStats {
        self.stats.lock().expect("stats lock").clone()
    }

    fn with_stats(&self, f: impl FnOnce(&mut DeliveryStats)) {
        f(&mut self.stats.lock().expect("stats lock"));
    }

    async fn post(&self, outbound: &Outbound, timeout: Duration) -> Result<(u16, String), String> {
        let signature = signature::compute(&self.config.auth_token, &outbound.url, &outbound.params);
        let response = self
            .client
            .post(&outbound.url)
            .timeout(timeout)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("User-Agent", "TwilioProxy/1.1")
            .header(signature::SIGNATURE_HEADER, signature)
            .header("I-Twilio-Idempotency-Token", &outbound.idempotency_token)
            .body(encode_form(&outbound.params))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// Sends an assignment callback and reads its instruction.
    pub async fn deliver_assignment(&self, outbound: &Outbound) -> AssignmentAnswer {
        self.with_stats(|s| s.assignment_callbacks_sent += 1);
        let answer = match self.post(outbound, self.config.assignment_timeout).await {
            Ok((200, body)) => parse_instruction(&body),
            _ => AssignmentAnswer::Failed,
        };
        self.with_stats(|s| match &answer {
            AssignmentAnswer::Failed => s.assignment_callbacks_failed += 1,
            AssignmentAnswer::Deferred => {
                s.assignment_callbacks_answered += 1;
                s.instructions_deferred += 1;
            }
            AssignmentAnswer::Instruction(Instruction::Accept) => {
                s.assignment_callbacks_answered += 1;
                s.instructions_accept += 1;
            }
            AssignmentAnswer::Instruction(Instruction::Reject { .. }) => {
                s.assignment_callbacks_answered += 1;
                s.instructions_reject += 1;
            }
        });
        answer
    }

    /// Sends (or drops, or holds back) one event callback, then whatever was held back before it.
    pub async fn deliver_event(&self, state: &mut DeliveryState, outbound: Outbound) {
        if let Some(sink) = &self.config.event_streams {
            state.streamed.push(event_streams::cloud_event(&outbound.params));
            if state.streamed.len() >= sink.batch_size.max(1) {
                self.send_streamed(state, sink).await;
            }
            if !sink.also_webhooks {
                return;
            }
        }
        let faults = self.config.faults;
        let event_type = event_type(&outbound);
        if faults.drop_rate > 0.0 && state.rng.gen_bool(faults.drop_rate.min(1.0)) {
            self.with_stats(|s| *s.events_dropped.entry(event_type).or_default() += 1);
            return;
        }
        if state.held.is_none()
            && faults.reorder_rate > 0.0
            && state.rng.gen_bool(faults.reorder_rate.min(1.0))
        {
            self.with_stats(|s| s.reordered += 1);
            state.held = Some(outbound);
            return;
        }
        self.send_event(state, &outbound).await;
        if let Some(held) = state.held.take() {
            self.send_event(state, &held).await;
        }
    }

    /// Sends whatever is still held back (at the end of a pass nothing comes after it).
    pub async fn flush(&self, state: &mut DeliveryState) {
        if let Some(held) = state.held.take() {
            self.send_event(state, &held).await;
        }
        if let Some(sink) = &self.config.event_streams {
            self.send_streamed(state, sink).await;
        }
    }

    /// Sends the CloudEvents waiting, shuffled (Event Streams does not keep order), in signed
    /// batches; each is retried until answered 2xx (a few times here, for hours at Twilio) and
    /// now and then delivered a second time.
    async fn send_streamed(&self, state: &mut DeliveryState, sink: &EventStreamsSink) {
        if state.streamed.is_empty() {
            return;
        }
        let mut events = std::mem::take(&mut state.streamed);
        events.shuffle(&mut state.rng);
        for body in event_streams::batch_bodies(&events, sink.batch_size) {
            let count = serde_json::from_slice::<Vec<serde_json::Value>>(&body).map_or(0, |v| v.len()) as u64;
            let mut delivered = false;
            for attempt in 0..STREAM_ATTEMPTS {
                if attempt > 0 {
                    self.with_stats(|s| s.stream_retries += 1);
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                if self.post_stream(sink, &body).await {
                    delivered = true;
                    break;
                }
            }
            self.with_stats(|s| {
                s.stream_batches_sent += 1;
                if delivered {
                    s.stream_events_delivered += count;
                } else {
                    s.stream_events_failed += count;
                }
            });
            if sink.redelivery_rate > 0.0 && state.rng.gen_bool(sink.redelivery_rate.min(1.0)) {
                self.with_stats(|s| s.stream_redeliveries += 1);
                let _ = self.post_stream(sink, &body).await;
            }
        }
    }

    /// One Event Streams POST; whether it was answered 2xx.
    async fn post_stream(&self, sink: &EventStreamsSink, body: &[u8]) -> bool {
        let (url, signature) = event_streams::signed(&self.config.auth_token, &sink.url, body);
        let sent = self
            .client
            .post(&url)
            .timeout(STREAM_TIMEOUT)
            .header("Content-Type", "application/json")
            .header("User-Agent", "Twilio-Event-Streams/1.0")
            .header(signature::SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await;
        sent.is_ok_and(|response| response.status().is_success())
    }

    async fn send_event(&self, state: &mut DeliveryState, outbound: &Outbound) {
        let event_type = event_type(outbound);
        let mut result = self.attempt(outbound).await;
        if result == Attempt::Failed {
            self.with_stats(|s| s.retries += 1);
            result = self.attempt(outbound).await;
        }
        let delivered = result == Attempt::Delivered;
        self.with_stats(|s| {
            let counter = if delivered { &mut s.events_delivered } else { &mut s.events_failed };
            *counter.entry(event_type).or_default() += 1;
        });
        let duplicate_rate = self.config.faults.duplicate_rate;
        if duplicate_rate > 0.0 && state.rng.gen_bool(duplicate_rate.min(1.0)) {
            self.with_stats(|s| s.duplicates_sent += 1);
            let _ = self.attempt(outbound).await;
        }
    }

    /// One POST. A 4xx is an answer, not an outage: final, like Twilio, and not delivered.
    async fn attempt(&self, outbound: &Outbound) -> Attempt {
        match self.post(outbound, self.config.event_timeout).await {
            Ok((status, _)) if (200..300).contains(&status) => Attempt::Delivered,
            Ok((status, _)) if status < 500 => Attempt::Refused,
            _ => Attempt::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Delivered,
    Refused,
    /// 5xx, timeout or no connection: worth one retry.
    Failed,
}

fn event_type(outbound: &Outbound) -> String {
    match &outbound.kind {
        OutboundKind::Event { event_type } => event_type.clone(),
        OutboundKind::Assignment { .. } => "assignment".into(),
    }
}

/// Reads `{"instruction":"accept"}`, `{"instruction":"reject","activity_sid":…}` or `{}`.
pub fn parse_instruction(body: &str) -> AssignmentAnswer {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else { return AssignmentAnswer::Failed };
    if !value.is_object() {
        return AssignmentAnswer::Failed;
    }
    match value.get("instruction").and_then(|v| v.as_str()) {
        Some("accept") => AssignmentAnswer::Instruction(Instruction::Accept),
        Some("reject") => AssignmentAnswer::Instruction(Instruction::Reject {
            activity_sid: value.get("activity_sid").and_then(|v| v.as_str()).map(str::to_string),
        }),
        // Other instructions (dequeue, call, redirect…) need telephony; treated as deferred.
        _ => AssignmentAnswer::Deferred,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_assignment_answers() {
        assert_eq!(parse_instruction("{}"), AssignmentAnswer::Deferred);
        assert_eq!(
            parse_instruction(r#"{"instruction":"accept"}"#),
            AssignmentAnswer::Instruction(Instruction::Accept)
        );
        assert_eq!(
            parse_instruction(r#"{"instruction":"reject","activity_sid":"WA1"}"#),
            AssignmentAnswer::Instruction(Instruction::Reject { activity_sid: Some("WA1".into()) })
        );
        assert_eq!(parse_instruction("ok"), AssignmentAnswer::Failed);
    }
}
