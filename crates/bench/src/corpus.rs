//! The requests a benchmark sends: TaskRouter callbacks produced offline by the simulator's
//! engine, signed for the server's URL and rendered as complete HTTP/1.1 requests, every one
//! unique (a repeated one would be a duplicate, which ingest skips cheaply and would flatter
//! the numbers).
//!
//! One simulation gives a realistic stream (the demo contact center at a rate its twelve
//! workers can serve, so tasks are reserved, accepted, rejected and time out). More requests
//! than it holds come from replicas of it: replica `k` renames every task, reservation, event,
//! call and conversation SID (deterministically, so a task keeps one SID across its events) and
//! its idempotency tokens, and moves its clock `k` spans later. Each task still has its
//! realistic number of events, so projections do realistic work.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use taskrouter_protocol::signature;
use taskrouter_protocol::webhook::encode_form;
use taskrouter_simulator::engine::{Engine, OutboundKind};
use taskrouter_simulator::scenario::{self, CallbackUrls, DemoTraffic};

/// The simulated account; the server is started with [`AUTH_TOKEN`].
pub const ACCOUNT: &str = "AC00000000000000000000000000be4c11";
pub const AUTH_TOKEN: &str = "bench-auth-token-5f1c2a9e0b7d4c36";
/// Tasks per minute of the simulated contact center: about what its twelve workers can serve.
const TASKS_PER_MINUTE: f64 = 20.0;
/// The SIDs a replica renames. Workspace, workflow, queues, workers and activities stay: a
/// replica is the same contact center later.
const RENAMED_PREFIXES: [&str; 5] = ["EV", "WT", "WR", "CA", "CH"];
/// Parameters holding TaskRouter time, in seconds or milliseconds.
const SECONDS_PARAMS: [&str; 3] = ["Timestamp", "TaskDateCreated", "TaskQueueEnteredDate"];
const MILLISECONDS_PARAM: &str = "TimestampMs";

/// Which callbacks a corpus holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Event callbacks (`POST /webhooks/events`).
    Events,
    /// Assignment callbacks (`POST /webhooks/assignment`).
    Assignments,
    /// Both, in the order TaskRouter sends them.
    Mixed,
}

/// One simulated callback before rendering.
#[derive(Debug, Clone)]
pub(super) struct Callback {
    pub(super) path: &'static str,
    pub(super) params: Vec<(String, String)>,
    pub(super) idempotency_token: String,
}

impl Callback {
    /// The value of parameter `name`, if it has one.
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Where a load's requests come from: an endless sequence, none repeating.
pub trait RequestSource: Send {
    /// The next `count` requests.
    fn take(&mut self, count: usize) -> Vec<Vec<u8>>;
    /// The next request, or `None` when this source has none.
    fn next_request(&mut self) -> Option<Vec<u8>>;
}

impl<T: RequestSource + ?Sized> RequestSource for Box<T> {
    fn take(&mut self, count: usize) -> Vec<Vec<u8>> {
        (**self).take(count)
    }

    fn next_request(&mut self) -> Option<Vec<u8>> {
        (**self).next_request()
    }
}

/// Turns callbacks into complete HTTP/1.1 requests signed for one server URL.
#[derive(Debug, Clone)]
pub(super) struct Renderer {
    /// `http://127.0.0.1:PORT`: what signatures are computed for and the Host header.
    base_url: String,
    host: String,
    /// Send every request to this path instead (the baseline handler); signatures stay.
    path_override: Option<&'static str>,
}

impl Renderer {
    fn new(base_url: &str) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        let host = base_url.split_once("://").map_or(base_url.as_str(), |(_, rest)| rest).to_string();
        Self { base_url, host, path_override: None }
    }

    pub(super) fn render(&self, callback: &Callback) -> Vec<u8> {
        let url = format!("{}{}", self.base_url, callback.path);
        let signature = signature::compute(AUTH_TOKEN, &url, &callback.params);
        let body = encode_form(&callback.params);
        let mut request = String::with_capacity(body.len() + 400);
        let path = self.path_override.unwrap_or(callback.path);
        // The headers TaskRouter's callbacks carry.
        let _ = write!(
            request,
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: TwilioProxy/1.1\r\nAccept: */*\r\n\
             Cache-Control: max-age=259200\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
             X-Home-Region: us1\r\n{header}: {signature}\r\nI-Twilio-Idempotency-Token: {token}\r\n\
             Content-Length: {length}\r\n\r\n{body}",
            host = self.host,
            header = signature::SIGNATURE_HEADER,
            token = callback.idempotency_token,
            length = body.len(),
        );
        request.into_bytes()
    }
}

/// Requests `first..first + count` of a sequence, rendered by `render` on every core.
pub(super) fn render_in_parallel(
    first: u64,
    count: usize,
    render: &(dyn Fn(u64) -> Vec<u8> + Sync),
) -> Vec<Vec<u8>> {
    if count == 0 {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(count.div_ceil(1_000));
    let chunk = count.div_ceil(threads) as u64;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|t| {
                let from = first + t * chunk;
                let to = (from + chunk).min(first + count as u64);
                scope.spawn(move || (from..to).map(render).collect::<Vec<_>>())
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("renderer")).collect()
    })
}

/// Produces unique signed requests for one server URL, as many as asked.
#[derive(Clone)]
pub struct Corpus {
    base: Vec<Callback>,
    span_ms: i64,
    renderer: Renderer,
    /// How many requests were given so far.
    next: u64,
}

impl Corpus {
    /// Simulates enough traffic for `stream` (the first replica holds at least `base_len`
    /// requests) for a server at `base_url`.
    pub fn new(base_url: &str, stream: Stream, base_len: usize, seed: u64) -> Self {
        let renderer = Renderer::new(base_url);
        let mut engine = Engine::new(seed, 1_700_000_000_000, Some(ACCOUNT.to_string()));
        let traffic = DemoTraffic {
            tasks_per_minute: TASKS_PER_MINUTE,
            arrivals_for_ms: i64::MAX / 4,
            reservation_timeout: 120,
        };
        scenario::build_demo(&mut engine, &CallbackUrls::tracer(&renderer.base_url), &traffic);
        let start_ms = engine.now_ms();
        let mut base = Vec::with_capacity(base_len);
        while base.len() < base_len {
            let Some(outbound) = engine.take_outbox() else {
                match engine.next_timer_at() {
                    Some(at) => engine.advance_to(at),
                    None => break,
                }
                continue;
            };
            let path = match outbound.kind {
                OutboundKind::Assignment { .. } => "/webhooks/assignment",
                OutboundKind::Event { .. } => "/webhooks/events",
            };
            let wanted = match stream {
                Stream::Events => path == "/webhooks/events",
                Stream::Assignments => path == "/webhooks/assignment",
                Stream::Mixed => true,
            };
            if wanted {
                base.push(Callback {
                    path,
                    params: outbound.params,
                    idempotency_token: outbound.idempotency_token,
                });
            }
        }
        // A replica starts an hour after the previous one's last callback.
        let span_ms = engine.now_ms() - start_ms + 3_600_000;
        Self { base, span_ms, renderer, next: 0 }
    }

    /// Sends every request to `path` (for the baseline handler, which checks nothing).
    pub fn with_path(mut self, path: &'static str) -> Self {
        self.renderer.path_override = Some(path);
        self
    }

    /// The simulated callbacks, as the first replica sends them.
    pub(super) fn callbacks(&self) -> &[Callback] {
        &self.base
    }

    /// How far each replica's clock is moved past the previous one's.
    pub(super) fn span_ms(&self) -> i64 {
        self.span_ms
    }

    pub(super) fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// The mean body size of the requests, in bytes.
    pub fn mean_body_bytes(&self) -> f64 {
        let total: usize = self.base.iter().map(|c| encode_form(&c.params).len()).sum();
        total as f64 / self.base.len().max(1) as f64
    }

    /// How many requests one replica holds.
    pub fn replica_len(&self) -> usize {
        self.base.len()
    }

    /// The next `count` requests, rendered on every core; none repeats any this corpus gave before.
    pub fn take(&mut self, count: usize) -> Vec<Vec<u8>> {
        if self.base.is_empty() || count == 0 {
            return Vec::new();
        }
        let first = self.next;
        self.next += count as u64;
        render_in_parallel(first, count, &|n| self.render_nth(n))
    }

    /// The next request.
    pub fn next_request(&mut self) -> Option<Vec<u8>> {
        if self.base.is_empty() {
            return None;
        }
        self.next += 1;
        Some(self.render_nth(self.next - 1))
    }

    /// The `n`th request of the endless sequence: replica `n / len`, callback `n % len`.
    fn render_nth(&self, n: u64) -> Vec<u8> {
        let len = self.base.len() as u64;
        self.renderer.render(&replica_of(&self.base[(n % len) as usize], n / len, self.span_ms))
    }
}

impl RequestSource for Corpus {
    fn take(&mut self, count: usize) -> Vec<Vec<u8>> {
        Corpus::take(self, count)
    }

    fn next_request(&mut self) -> Option<Vec<u8>> {
        Corpus::next_request(self)
    }
}

/// `callback` as replica `k` of the simulation sends it (replica 0 is the simulation itself).
pub(super) fn replica_of(callback: &Callback, k: u64, span_ms: i64) -> Callback {
    if k == 0 {
        return callback.clone();
    }
    renamed(callback, k, span_ms.saturating_mul(k as i64))
}

/// `callback` with every SID of a renamed kind and its idempotency token renamed by `key`,
/// and its clock moved `shift_ms` later.
pub(super) fn renamed(callback: &Callback, k: u64, shift_ms: i64) -> Callback {
    let params = callback
        .params
        .iter()
        .map(|(name, value)| {
            let shifted = if SECONDS_PARAMS.contains(&name.as_str()) {
                value.parse::<i64>().ok().map(|s| (s + shift_ms / 1000).to_string())
            } else if name == MILLISECONDS_PARAM {
                value.parse::<i64>().ok().map(|ms| (ms + shift_ms).to_string())
            } else {
                None
            };
            (name.clone(), shifted.unwrap_or_else(|| rename_sids(value, k)))
        })
        .collect();
    // Tokens are "AC…-<32 hex>": rename the random part.
    let idempotency_token = match callback.idempotency_token.split_once('-') {
        Some((account, random)) => format!("{account}-{}", renamed_hex(random, k)),
        None => renamed_hex(&callback.idempotency_token, k),
    };
    Callback { path: callback.path, params, idempotency_token }
}

/// `text` with every SID of a renamed kind replaced by replica `k`'s name for it.
pub(super) fn rename_sids(text: &str, k: u64) -> String {
    let bytes = text.as_bytes();
    let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i) = (0, 0);
    while i + 34 <= bytes.len() {
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let ends_word = bytes.get(i + 34).is_none_or(|b| !b.is_ascii_alphanumeric());
        if starts_word
            && ends_word
            && RENAMED_PREFIXES.iter().any(|p| bytes[i..].starts_with(p.as_bytes()))
            && bytes[i + 2..i + 34].iter().all(|&b| is_hex(b))
        {
            out.push_str(&text[copied..i + 2]);
            out.push_str(&renamed_hex(&text[i + 2..i + 34], k));
            i += 34;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// 32 hex digits standing for `hex` in replica `k`: the same every time, distinct per replica.
fn renamed_hex(hex: &str, k: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(k.to_le_bytes());
    hasher.update(hex.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// Requests shared by a load's connections: a prepared list taken in order, optionally over
/// and over (for a handler that stores nothing), or followed by requests rendered as they are
/// needed once it runs out (which takes CPU from the server, so it is counted).
pub struct Feed {
    requests: Vec<Vec<u8>>,
    next: AtomicUsize,
    cycle: bool,
    more: Option<std::sync::Mutex<Box<dyn RequestSource>>>,
    rendered_live: AtomicUsize,
}

impl Feed {
    /// `requests`, then none (or again from the first when `cycle`).
    pub fn prepared(requests: Vec<Vec<u8>>, cycle: bool) -> Self {
        Self { requests, next: AtomicUsize::new(0), cycle, more: None, rendered_live: AtomicUsize::new(0) }
    }

    /// `requests`, then whatever `source` renders next.
    pub fn prepared_then(requests: Vec<Vec<u8>>, source: impl RequestSource + 'static) -> Self {
        Self { more: Some(std::sync::Mutex::new(Box::new(source))), ..Self::prepared(requests, false) }
    }

    /// The next request, or `None` when a prepared list without more is used up.
    pub fn next(&self) -> Option<Request<'_>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let i = if self.cycle && !self.requests.is_empty() { i % self.requests.len() } else { i };
        if let Some(request) = self.requests.get(i) {
            return Some(Request::Borrowed(request));
        }
        let rendered = self.more.as_ref()?.lock().expect("source lock").next_request()?;
        self.rendered_live.fetch_add(1, Ordering::Relaxed);
        Some(Request::Owned(rendered))
    }

    /// How many requests were rendered while the load ran.
    pub fn rendered_live(&self) -> usize {
        self.rendered_live.load(Ordering::Relaxed)
    }
}

/// One request's bytes.
pub enum Request<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Request<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Request::Borrowed(bytes) => bytes,
            Request::Owned(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use taskrouter_protocol::webhook::parse_form;

    type Pairs = Vec<(String, String)>;

    /// The path, the headers (lower-cased names) and the form parameters of a rendered request.
    fn split(request: &[u8]) -> (String, Pairs, Pairs) {
        let text = String::from_utf8(request.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
        let headers = lines
            .map(|l| l.split_once(": ").unwrap())
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect();
        let params = parse_form(body.as_bytes()).unwrap().0;
        (path, headers, params)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        &headers.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn requests_are_unique_signed_and_realistically_sized() {
        let mut corpus = Corpus::new("http://127.0.0.1:9999", Stream::Events, 300, 1);
        let requests = corpus.take(1_000); // four replicas' worth
        assert_eq!(requests.len(), 1_000);
        let mut sids = HashSet::new();
        let mut tokens = HashSet::new();
        let mut bodies = HashSet::new();
        let mut body_bytes = 0;
        for request in &requests {
            let (path, headers, params) = split(request);
            assert_eq!(path, "/webhooks/events");
            let url = format!("http://127.0.0.1:9999{path}");
            assert_eq!(header(&headers, "x-twilio-signature"), signature::compute(AUTH_TOKEN, &url, &params));
            assert_eq!(
                header(&headers, "content-length").parse::<usize>().unwrap(),
                encode_form(&params).len()
            );
            let sid = params.iter().find(|(n, _)| n == "Sid").unwrap().1.clone();
            assert!(sids.insert(sid), "event Sid repeated");
            assert!(tokens.insert(header(&headers, "i-twilio-idempotency-token").to_string()));
            let body = encode_form(&params);
            body_bytes += body.len();
            assert!(bodies.insert(body));
        }
        // Real event callbacks average about 1.8 KB (form-encoded).
        let mean = body_bytes / requests.len();
        assert!((1_200..2_600).contains(&mean), "mean body {mean} bytes");
    }

    #[test]
    fn a_replica_renames_consistently_and_moves_its_clock() {
        let mut corpus = Corpus::new("http://127.0.0.1:9999", Stream::Mixed, 200, 2);
        let len = corpus.replica_len();
        let mut requests = corpus.take(len + 7);
        // One at a time continues where the batch stopped.
        requests.extend(std::iter::from_fn(|| corpus.next_request()).take(len - 7));
        let (_, _, first) = split(&requests[0]);
        let (_, _, copy) = split(&requests[len]);
        let get = |params: &[(String, String)], name: &str| {
            params.iter().find(|(n, _)| n == name).unwrap().1.clone()
        };
        assert_eq!(get(&first, "EventType"), get(&copy, "EventType"));
        assert_ne!(get(&first, "TaskSid"), get(&copy, "TaskSid"));
        assert_eq!(get(&first, "WorkspaceSid"), get(&copy, "WorkspaceSid"));
        // The description names the renamed task.
        assert!(get(&copy, "EventDescription").contains(&get(&copy, "TaskSid")));
        let ms = |p: &[(String, String)]| get(p, "TimestampMs").parse::<i64>().unwrap();
        assert_eq!(ms(&copy) - ms(&first), corpus.span_ms);
        // Every event of a task in the copy names the same renamed task.
        let task = get(&first, "TaskSid");
        let renamed: HashSet<String> = requests[..len]
            .iter()
            .zip(&requests[len..])
            .filter(|(a, _)| split(a).2.iter().any(|(n, v)| n == "TaskSid" && *v == task))
            .map(|(_, b)| get(&split(b).2, "TaskSid"))
            .collect();
        assert_eq!(renamed.len(), 1);
    }

    #[test]
    fn a_feed_renders_more_once_its_prepared_requests_run_out() {
        let mut corpus = Corpus::new("http://127.0.0.1:9999", Stream::Assignments, 20, 3);
        let prepared = corpus.take(5);
        let feed = Feed::prepared_then(prepared.clone(), corpus);
        let given: Vec<Vec<u8>> = (0..8).map(|_| feed.next().unwrap().to_vec()).collect();
        assert_eq!(given[..5], prepared[..]);
        assert_eq!(feed.rendered_live(), 3);
        assert_eq!(given.iter().collect::<HashSet<_>>().len(), 8);
        let finite = Feed::prepared(prepared, false);
        assert_eq!((0..6).filter(|_| finite.next().is_some()).count(), 5);
    }

    #[test]
    fn renames_only_whole_sids_of_renamed_kinds() {
        let task = format!("WT{}", "a".repeat(32));
        let worker = format!("WK{}", "b".repeat(32));
        let text = format!("Task {task} for {worker}, x{task}");
        let renamed = rename_sids(&text, 3);
        assert!(!renamed.contains(&format!("Task {task}")));
        assert!(renamed.contains(&worker));
        assert!(renamed.ends_with(&format!("x{task}")), "inside a word it is not a SID: {renamed}");
        assert_eq!(rename_sids(&text, 3), renamed);
        assert_ne!(rename_sids(&text, 4), renamed);
    }
}
