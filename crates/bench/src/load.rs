//! The load generator: raw keep-alive HTTP/1.1 over tokio sockets (it shares the machine's
//! cores with the server, so it does as little as possible per request: write prepared bytes,
//! parse the status line and headers, skip the body). Latencies go into HDR histograms.
//!
//! - Closed loop: each connection sends its next request as soon as the previous answer is
//!   in; measures the most the server sustains.
//! - Open loop: requests are due at a constant rate whatever the server does, and each one's
//!   latency is measured from when it was due, not from when a connection got round to sending
//!   it, so a stall shows in full instead of hiding behind the requests it delayed
//!   (coordinated omission).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::corpus::Feed;

/// Longest wait for one answer before the request counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A new latency histogram in microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// What one load run saw.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// Answered 2xx in the measured window.
    pub ok: u64,
    /// Answered, but not 2xx, in the measured window.
    pub non_2xx: u64,
    /// No answer (connection refused, reset, closed mid-answer, timed out), warm-up included.
    pub errors: u64,
    /// Answered 2xx over the whole run, warm-up included: what the server must have stored.
    pub acknowledged: u64,
    /// The measured window.
    pub window: Duration,
    /// Microseconds, answered requests of the measured window.
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    /// The first error or unexpected status, to say what went wrong.
    pub first_problem: Option<String>,
    /// The prepared requests ran out this far into the measured window (the run stopped there).
    pub ran_out_after: Option<Duration>,
}

impl LoadOutcome {
    pub(super) fn empty() -> Self {
        Self {
            ok: 0,
            non_2xx: 0,
            errors: 0,
            acknowledged: 0,
            window: Duration::ZERO,
            latency: histogram(),
            statuses: BTreeMap::new(),
            first_problem: None,
            ran_out_after: None,
        }
    }

    /// Answered requests per second over the measured window.
    pub fn rate(&self) -> f64 {
        (self.ok + self.non_2xx) as f64 / self.window.as_secs_f64().max(1e-9)
    }

    fn record(&mut self, status: u16, latency: Duration, measured: bool) {
        let ok = (200..300).contains(&status);
        if ok {
            self.acknowledged += 1;
        } else if self.first_problem.is_none() {
            self.first_problem = Some(format!("answered {status}"));
        }
        if !measured {
            return;
        }
        if ok {
            self.ok += 1;
        } else {
            self.non_2xx += 1;
        }
        *self.statuses.entry(status).or_default() += 1;
        self.latency.saturating_record(latency.as_micros().max(1) as u64);
    }

    fn failed(&mut self, problem: String) {
        self.errors += 1;
        self.first_problem.get_or_insert(problem);
    }

    fn merge(&mut self, other: LoadOutcome) {
        self.ok += other.ok;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        self.acknowledged += other.acknowledged;
        self.latency.add(&other.latency).expect("same histogram bounds");
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to `address`.
    ///
    /// # Errors
    /// When the connection is refused.
    pub async fn open(address: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buffer: Vec::with_capacity(4096) })
    }

    /// Sends one complete request and reads its answer: the status, and whether the
    /// connection may be used again.
    ///
    /// # Errors
    /// When the connection fails or the answer is not HTTP/1.1 this client can read.
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, bool)> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head_length = match response.parse(&self.buffer)? {
                httparse::Status::Complete(length) => length,
                httparse::Status::Partial => {
                    if self.stream.read_buf(&mut self.buffer).await? == 0 {
                        bail!("the server closed the connection before answering");
                    }
                    continue;
                }
            };
            let status = response.code.ok_or_else(|| anyhow!("no status code"))?;
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
            };
            let mut reusable = !header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if header("transfer-encoding").is_some() {
                bail!("a chunked answer (this client reads only Content-Length answers)");
            }
            let body_length = match header("content-length") {
                _ if status == 204 || status == 304 || status < 200 => Some(0),
                Some(value) => Some(value.trim().parse::<usize>()?),
                None => None,
            };
            match body_length {
                Some(length) => {
                    while self.buffer.len() < head_length + length {
                        if self.stream.read_buf(&mut self.buffer).await? == 0 {
                            bail!("the server closed the connection mid-answer");
                        }
                    }
                }
                // No length: the body ends when the server closes.
                None => {
                    while self.stream.read_buf(&mut self.buffer).await? > 0 {}
                    reusable = false;
                }
            }
            return Ok((status, reusable));
        }
    }
}

/// A closed-loop run.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    pub connections: usize,
    /// Sent but not measured, before the window.
    pub warmup: Duration,
    pub duration: Duration,
}

/// Opens a connection to `address` unless `connection` holds one; a failure is recorded in
/// `outcome` and returns false.
async fn ensure_connected(
    address: SocketAddr,
    connection: &mut Option<Connection>,
    outcome: &mut LoadOutcome,
) -> bool {
    if connection.is_none() {
        match Connection::open(address).await {
            Ok(opened) => *connection = Some(opened),
            Err(error) => {
                outcome.failed(format!("connecting: {error}"));
                return false;
            }
        }
    }
    true
}

/// Sends `request` on the open `connection` and records the answer in `outcome`, its latency
/// counted from `timed_from` (when it was sent, or when it was due); a connection that cannot
/// be reused is dropped.
async fn exchange_and_record(
    connection: &mut Option<Connection>,
    request: &[u8],
    timed_from: Instant,
    measured: bool,
    outcome: &mut LoadOutcome,
    answered: &AtomicU64,
) {
    let Some(open) = connection.as_mut() else { return };
    match tokio::time::timeout(REQUEST_TIMEOUT, open.exchange(request)).await {
        Ok(Ok((status, reusable))) => {
            outcome.record(status, timed_from.elapsed(), measured);
            answered.fetch_add(1, Ordering::Relaxed);
            if !reusable {
                *connection = None;
            }
        }
        Ok(Err(error)) => {
            outcome.failed(error.to_string());
            *connection = None;
        }
        Err(_) => {
            outcome.failed(format!("no answer within {REQUEST_TIMEOUT:?}"));
            *connection = None;
        }
    }
}

/// Runs `plan` against `address`, taking requests from `feed`; `progress` shows answers so far.
pub async fn closed_loop(
    address: SocketAddr,
    feed: Arc<Feed>,
    plan: ClosedLoop,
    progress: &ProgressBar,
) -> LoadOutcome {
    let started = Instant::now();
    let measured_from = started + plan.warmup;
    let end = measured_from + plan.duration;
    let answered = Arc::new(AtomicU64::new(0));
    let ran_out = Arc::new(AtomicBool::new(false));
    let ran_out_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let connections: Vec<_> = (0..plan.connections)
        .map(|_| {
            let (feed, answered, ran_out, ran_out_at) =
                (feed.clone(), answered.clone(), ran_out.clone(), ran_out_at.clone());
            tokio::spawn(async move {
                let mut outcome = LoadOutcome::empty();
                let mut connection: Option<Connection> = None;
                while Instant::now() < end && !ran_out.load(Ordering::Relaxed) {
                    let Some(request) = feed.next() else {
                        if !ran_out.swap(true, Ordering::Relaxed) {
                            *ran_out_at.lock().expect("lock") = Some(Instant::now());
                        }
                        break;
                    };
                    if !ensure_connected(address, &mut connection, &mut outcome).await {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let sent = Instant::now();
                    let measured = sent >= measured_from;
                    exchange_and_record(&mut connection, &request, sent, measured, &mut outcome, &answered)
                        .await;
                }
                outcome
            })
        })
        .collect();
    let ticker = show_progress(progress, answered, started);
    let mut total = merge_outcomes(connections).await;
    ticker.abort();
    let stopped_at = ran_out_at.lock().expect("lock").map_or(end, |at| at.min(end));
    total.window = stopped_at.saturating_duration_since(measured_from);
    if stopped_at < end {
        total.ran_out_after = Some(total.window);
    }
    total
}

/// An open-loop run: `rate` requests per second for `warmup` + `duration`, over up to
/// `connections` connections.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    pub rate: f64,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Runs `plan`; latency is measured from each request's due time.
pub async fn open_loop(
    address: SocketAddr,
    feed: Arc<Feed>,
    plan: OpenLoop,
    progress: &ProgressBar,
) -> LoadOutcome {
    open_loop_until(address, feed, plan, Arc::new(AtomicBool::new(false)), progress).await
}

/// Runs `plan` as [`open_loop`] does, but no request is due once `stop` is set (the measured
/// window ends there).
pub async fn open_loop_until(
    address: SocketAddr,
    feed: Arc<Feed>,
    plan: OpenLoop,
    stop: Arc<AtomicBool>,
    progress: &ProgressBar,
) -> LoadOutcome {
    let started = Instant::now();
    let measured_from = started + plan.warmup;
    // Past this, requests still waiting are abandoned (and count as errors).
    let give_up_at = measured_from + plan.duration + REQUEST_TIMEOUT;
    let (due_sender, due) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let due = Arc::new(tokio::sync::Mutex::new(due));
    let answered = Arc::new(AtomicU64::new(0));
    let total_due = ((plan.warmup + plan.duration).as_secs_f64() * plan.rate).round() as u64;
    // The schedule runs on its own thread: tokio's timer fires on millisecond ticks, so a request
    // sent by it would leave up to 1 ms after it was due and that lag would be counted against
    // the server; a thread's sleep wakes within tens of microseconds.
    let dispatcher = tokio::task::spawn_blocking(move || {
        for i in 0..total_due {
            let at = started + Duration::from_secs_f64(i as f64 / plan.rate);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if stop.load(Ordering::Relaxed) || due_sender.send(at).is_err() {
                return at;
            }
        }
        measured_from + plan.duration
    });
    let connections: Vec<_> = (0..plan.connections)
        .map(|_| {
            let (feed, due, answered) = (feed.clone(), due.clone(), answered.clone());
            tokio::spawn(async move {
                let mut outcome = LoadOutcome::empty();
                let mut connection: Option<Connection> = None;
                loop {
                    let Some(due_at) = due.lock().await.recv().await else { break };
                    if Instant::now() > give_up_at {
                        outcome.failed("abandoned: the server fell too far behind the schedule".into());
                        continue;
                    }
                    let Some(request) = feed.next() else {
                        outcome.failed("the prepared requests ran out".into());
                        continue;
                    };
                    if !ensure_connected(address, &mut connection, &mut outcome).await {
                        continue;
                    }
                    let measured = due_at >= measured_from;
                    exchange_and_record(&mut connection, &request, due_at, measured, &mut outcome, &answered)
                        .await;
                }
                outcome
            })
        })
        .collect();
    let ticker = show_progress(progress, answered, started);
    let stopped_at = dispatcher.await.unwrap_or(measured_from + plan.duration);
    let mut total = merge_outcomes(connections).await;
    ticker.abort();
    total.window = stopped_at.saturating_duration_since(measured_from).min(plan.duration);
    total
}

/// What [`sequence`] saw: the outcome, and when each 2xx answer came, in the order they came.
#[derive(Debug, Clone)]
pub struct SequenceOutcome {
    pub load: LoadOutcome,
    /// Time since the first request was sent, one per acknowledged request, ascending.
    pub acknowledged_at: Vec<Duration>,
}

/// Sends the first `count` requests of `feed`, in its order, over `connections` connections as
/// a closed loop, each once, none after `limit` from the start; every answer is measured, and
/// the window runs until the last one.
pub async fn sequence(
    address: SocketAddr,
    feed: Arc<Feed>,
    count: u64,
    connections: usize,
    limit: Duration,
    progress: &ProgressBar,
) -> SequenceOutcome {
    let started = Instant::now();
    let until = started + limit;
    let claimed = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (feed, claimed, answered) = (feed.clone(), claimed.clone(), answered.clone());
            tokio::spawn(async move {
                let mut outcome = LoadOutcome::empty();
                let mut acknowledged_at = Vec::new();
                let mut connection: Option<Connection> = None;
                while Instant::now() < until && claimed.fetch_add(1, Ordering::Relaxed) < count {
                    let Some(request) = feed.next() else {
                        outcome.failed("the requests ran out".into());
                        break;
                    };
                    // A request is sent once: one that cannot get a connection is lost.
                    if !ensure_connected(address, &mut connection, &mut outcome).await {
                        continue;
                    }
                    let before = outcome.acknowledged;
                    let sent = Instant::now();
                    exchange_and_record(&mut connection, &request, sent, true, &mut outcome, &answered).await;
                    if outcome.acknowledged > before {
                        acknowledged_at.push(started.elapsed());
                    }
                }
                (outcome, acknowledged_at)
            })
        })
        .collect();
    let ticker = show_progress(progress, answered, started);
    let mut total = LoadOutcome::empty();
    let mut acknowledged_at = Vec::with_capacity(count as usize);
    for task in tasks {
        match task.await {
            Ok((outcome, times)) => {
                total.merge(outcome);
                acknowledged_at.extend(times);
            }
            Err(error) => total.failed(format!("a connection task failed: {error}")),
        }
    }
    ticker.abort();
    acknowledged_at.sort_unstable();
    total.window = started.elapsed();
    SequenceOutcome { load: total, acknowledged_at }
}

/// Waits for every connection task and adds up what they saw.
async fn merge_outcomes(connections: Vec<tokio::task::JoinHandle<LoadOutcome>>) -> LoadOutcome {
    let mut total = LoadOutcome::empty();
    for connection in connections {
        match connection.await {
            Ok(outcome) => total.merge(outcome),
            Err(error) => total.failed(format!("a connection task failed: {error}")),
        }
    }
    total
}

/// Moves `progress` with the elapsed time and shows the answers per second.
fn show_progress(
    progress: &ProgressBar,
    answered: Arc<AtomicU64>,
    started: Instant,
) -> tokio::task::JoinHandle<()> {
    let progress = progress.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        let mut last = (Instant::now(), 0u64);
        loop {
            ticker.tick().await;
            let now = Instant::now();
            let count = answered.load(Ordering::Relaxed);
            let rate = (count - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
            last = (now, count);
            progress.set_position(now.duration_since(started).as_millis() as u64);
            progress.set_message(format!("{rate:>8.0} req/s"));
        }
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A server that answers each request with `answers` in turn, then closes.
    async fn scripted(answers: Vec<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await.unwrap();
                // Split the answer in two writes: the client must read until it is whole.
                let (head, tail) = answer.split_at(answer.len() / 2);
                socket.write_all(head.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                socket.write_all(tail.as_bytes()).await.unwrap();
            }
        });
        address
    }

    #[tokio::test]
    async fn reads_answers_with_and_without_bodies_on_one_connection() {
        let address = scripted(vec![
            "HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\nconnection: close\r\n\r\nbusy!",
        ])
        .await;
        let mut connection = Connection::open(address).await.unwrap();
        let request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(connection.exchange(request).await.unwrap(), (204, true));
        assert_eq!(connection.exchange(request).await.unwrap(), (200, true));
        assert_eq!(connection.exchange(request).await.unwrap(), (503, false));
        assert!(connection.exchange(request).await.is_err(), "the server closed");
    }

    #[tokio::test]
    async fn a_sequence_sends_each_request_once_and_times_every_acknowledgement() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    while socket.read(&mut request).await.is_ok_and(|n| n > 0) {
                        let _ = socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                    }
                });
            }
        });
        let request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".to_vec();
        let feed = Arc::new(Feed::prepared(vec![request; 50], false));
        let outcome = sequence(address, feed, 40, 4, Duration::from_secs(60), &ProgressBar::hidden()).await;
        assert_eq!((outcome.load.acknowledged, outcome.load.ok, outcome.load.errors), (40, 40, 0));
        assert_eq!(outcome.acknowledged_at.len(), 40);
        assert!(outcome.acknowledged_at.windows(2).all(|w| w[0] <= w[1]));
        assert!(outcome.acknowledged_at.last().unwrap() <= &outcome.load.window);
        let feed = Arc::new(Feed::prepared(vec![b"POST / HTTP/1.1\r\n\r\n".to_vec(); 10], false));
        let stopped = sequence(address, feed, 10, 2, Duration::ZERO, &ProgressBar::hidden()).await;
        assert_eq!(stopped.load.acknowledged + stopped.load.errors, 0, "nothing is sent past the limit");
    }

    #[test]
    fn an_outcome_counts_only_the_measured_window_but_acknowledges_all() {
        let mut outcome = LoadOutcome::empty();
        outcome.record(204, Duration::from_millis(1), false);
        outcome.record(200, Duration::from_millis(2), true);
        outcome.record(503, Duration::from_millis(3), true);
        outcome.window = Duration::from_secs(1);
        assert_eq!((outcome.ok, outcome.non_2xx, outcome.acknowledged), (1, 1, 2));
        assert_eq!(outcome.rate(), 2.0);
        assert_eq!(outcome.first_problem.as_deref(), Some("answered 503"));
        assert_eq!(outcome.latency.len(), 2);
    }
}
