//! The Event Streams phase: events per second through `POST /webhooks/event-streams` in signed
//! CloudEvent batches of 10 and of 100, beside the same simulated events as form callbacks
//! (`POST /webhooks/events`), each closed-loop at the same connections, counted until every
//! event is projected. The events are the realistic stream's, each batch's unique (replicas of
//! the simulation, as the other phases use), rendered as the simulator's Event Streams sink
//! renders them.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;

use super::corpus::{self, Callback, Feed, RequestSource, AUTH_TOKEN};
use super::load::{self, ClosedLoop, LoadOutcome};
use super::server::{CpuShares, CpuWatch};
use super::shapes::{Shape, Workloads};
use super::{discard_database, wait_for_projections, CatchUp, PhaseContext, Target};
use taskrouter_simulator::event_streams::{cloud_event, signed};

/// CloudEvents per Event Streams body measured (a form callback carries one event).
pub const BATCH_SIZES: [usize; 2] = [10, 100];

/// The body limit the runs use: a body of 100 realistic CloudEvents is about 150 KB.
pub const LARGE_BODY_LIMIT: usize = 1024 * 1024;

/// Connections each run keeps busy.
pub const CONNECTIONS: usize = 32;

/// Events rendered before a run at most (the rest are rendered while it runs); fewer for a
/// smoke run.
const PREPARED_EVENTS: usize = 60_000;
const QUICK_PREPARED_EVENTS: usize = 3_000;

/// One run: how the events were delivered and what came of it.
#[derive(Debug, Clone)]
pub struct StreamsResult {
    /// CloudEvents per body; `None` for form callbacks (one event each).
    pub batch: Option<usize>,
    pub connections: usize,
    pub load: LoadOutcome,
    pub catch_up: CatchUp,
    /// Events the log holds as facts after the run.
    pub facts: u64,
    /// The server, this process (the load generator), the rest.
    pub cpu: CpuShares,
    /// The log's stored (compressed) bodies and headers, all rows: requests and CloudEvents.
    pub payload_bytes: u64,
}

impl StreamsResult {
    pub fn events_per_request(&self) -> usize {
        self.batch.unwrap_or(1)
    }

    /// Events acknowledged in the window over the window and the projections' catch-up.
    pub fn events_rate(&self) -> f64 {
        self.catch_up.rate_of(&self.load) * self.events_per_request() as f64
    }

    pub fn label(&self) -> String {
        match self.batch {
            None => "POST /webhooks/events (form callbacks)".into(),
            Some(batch) => format!("POST /webhooks/event-streams, batches of {batch}"),
        }
    }
}

/// Renders the realistic event stream as Event Streams bodies of `batch` CloudEvents.
struct BatchSource {
    callbacks: Arc<Vec<Callback>>,
    span_ms: i64,
    base_url: String,
    host: String,
    batch: usize,
    /// Events given so far.
    next: u64,
}

impl BatchSource {
    fn render_from(&self, first: u64) -> Vec<u8> {
        let len = self.callbacks.len() as u64;
        let events: Vec<serde_json::Value> = (first..first + self.batch as u64)
            .map(|n| {
                let callback = &self.callbacks[(n % len) as usize];
                cloud_event(&corpus::replica_of(callback, n / len, self.span_ms).params)
            })
            .collect();
        let body = serde_json::to_vec(&events).expect("JSON values serialise");
        let (url, signature) =
            signed(AUTH_TOKEN, &format!("{}/webhooks/event-streams", self.base_url), &body);
        let path = &url[self.base_url.len()..];
        let mut request = String::with_capacity(300);
        let _ = write!(
            request,
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Twilio-Event-Streams/1.0\r\n\
             Content-Type: application/json\r\nX-Twilio-Signature: {signature}\r\nContent-Length: {length}\r\n\r\n",
            host = self.host,
            length = body.len(),
        );
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

impl RequestSource for BatchSource {
    fn take(&mut self, count: usize) -> Vec<Vec<u8>> {
        let first = self.next;
        self.next += (count * self.batch) as u64;
        let batch = self.batch as u64;
        corpus::render_in_parallel(0, count, &|k| self.render_from(first + k * batch))
    }

    fn next_request(&mut self) -> Option<Vec<u8>> {
        let request = self.render_from(self.next);
        self.next += self.batch as u64;
        Some(request)
    }
}

/// Runs the events as form callbacks (`batch` `None`) or as Event Streams bodies of `batch`.
///
/// # Errors
/// When a server does not start, the projections do not catch up, or the log lacks events it
/// acknowledged.
pub(super) async fn run_one(
    context: &PhaseContext,
    workloads: &Arc<Workloads>,
    batch: Option<usize>,
    connections: usize,
    duration: (Duration, Duration),
    quick: bool,
    bar: &ProgressBar,
) -> anyhow::Result<StreamsResult> {
    bar.set_message("preparing requests");
    let prepared_events = if quick { QUICK_PREPARED_EVENTS } else { PREPARED_EVENTS };
    let (name, feed) = match batch {
        None => {
            let mut source = workloads.source(Shape::Realistic, Target::Events);
            let (prepared, source) =
                tokio::task::spawn_blocking(move || (source.take(prepared_events), source)).await?;
            (format!("event-callbacks-{connections}"), Feed::prepared_then(prepared, source))
        }
        Some(batch) => {
            let events = workloads.events();
            let base_url = context.base_url();
            let host = base_url.trim_start_matches("http://").to_string();
            let mut source = BatchSource {
                callbacks: Arc::new(events.callbacks().to_vec()),
                span_ms: events.span_ms(),
                base_url,
                host,
                batch,
                next: 0,
            };
            let (prepared, source) =
                tokio::task::spawn_blocking(move || (source.take(prepared_events / batch), source)).await?;
            (format!("event-streams-{batch}-{connections}"), Feed::prepared_then(prepared, source))
        }
    };
    let feed = Arc::new(feed);
    // Event Streams sends at most 64 KB a body; 100 of these events are larger, so the run
    // raises the tracer's limit rather than measure refusals.
    let limit = vec!["--body-limit".into(), LARGE_BODY_LIMIT.to_string().into()];
    let mut server = context.start_server_with(&name, false, limit).await?;
    bar.set_message("");
    let watch = CpuWatch::start(&[server.pid]);
    let load = load::closed_loop(
        context.address(),
        feed,
        ClosedLoop { connections, warmup: duration.0, duration: duration.1 },
        bar,
    )
    .await;
    let catch_up = wait_for_projections(&context.base_url()).await?;
    let cpu = watch.shares(Duration::ZERO);
    server.stop().await?;
    let database = context.database(&name);
    let endpoint = if batch.is_some() { "cloudevent" } else { "events" };
    let log = rusqlite::Connection::open(&database)?;
    let payload_bytes: u64 =
        log.query_row("SELECT COALESCE(SUM(LENGTH(body) + LENGTH(headers)), 0) FROM events", [], |r| {
            r.get(0)
        })?;
    let facts: u64 =
        log.query_row("SELECT COUNT(*) FROM events WHERE endpoint = ?1 AND is_fact = 1", [endpoint], |r| {
            r.get(0)
        })?;
    drop(log);
    discard_database(&database);
    let acknowledged_events = load.acknowledged * batch.unwrap_or(1) as u64;
    if facts < acknowledged_events {
        anyhow::bail!("{acknowledged_events} events were acknowledged but the log holds {facts} as facts");
    }
    Ok(StreamsResult { batch, connections, load, catch_up, facts, cpu, payload_bytes })
}
