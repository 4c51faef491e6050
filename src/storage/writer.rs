//! The single writer: one OS thread owning the one read-write SQLite connection, committing
//! concurrent requests together (group commit).
//!
//! Handlers queue a [`NewRecord`] and await the outcome; the thread drains whatever is queued
//! (up to `max_batch`), runs one transaction ([`super::append`]: dedup → append → the event
//! Sid's reference), commits, and only then answers every waiter. A request is therefore acknowledged only once
//! its row is durable, and a failed transaction answers its whole batch with an error (the
//! edge turns it into 503). The projections and the rows' other SID references follow in
//! transactions of their own ([`projector`]), between and after the appends, so a request
//! waits for its own row and not for the projections of everything before it; readers wait
//! for them instead ([`ProjectionProgress`]). One thread and no async hops inside keep the
//! per-row cost to SQLite's own work.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::append::{append_records, Appended};
pub use super::checkpointer::DEFAULT_WAL_RESTART_FRAMES;
use super::checkpointer::{checkpoint_loop, restart_wal, WalRestart};
use super::event_log::{self, Head, NewRecord};
use super::follower::{Followed, LogFollower, RowWork};
use super::probe;
use super::progress::ProjectionProgress;
use crate::metrics::Metrics;

/// SQLite's `synchronous` setting for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync the WAL at every commit: a committed row survives power loss.
    Full,
    /// fsync at checkpoints only: survives a crash of the process, not of the machine.
    Normal,
}

impl std::str::FromStr for Synchronous {
    type Err = String;

    fn from_str(mode: &str) -> Result<Self, String> {
        match mode {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            other => Err(format!("{other:?} is not a synchronous mode (full, normal)")),
        }
    }
}

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub database: PathBuf,
    pub synchronous: Synchronous,
    /// Rows per transaction at most; 1 gives one fsync per request.
    pub max_batch: usize,
    /// How long a write waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
    /// Requests waiting for the writer at most; past it, requests are refused at once.
    pub queue_capacity: usize,
    /// WAL frames (4 KiB pages) past which the checkpointer restarts the WAL
    /// ([`DEFAULT_WAL_RESTART_FRAMES`] unless told otherwise).
    pub wal_restart_frames: i64,
}

/// Why a record was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("the database could not store the request: {0}")]
    Storage(String),
    #[error("the writer's queue is full ({0} requests waiting)")]
    Overloaded(usize),
    #[error("the writer has stopped")]
    Stopped,
}

/// Whether the last transaction succeeded, for `/healthz` and the pages.
#[derive(Default)]
pub struct StorageHealth {
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl StorageHealth {
    /// `None` when the last write succeeded, else what went wrong.
    pub fn problem(&self) -> Option<String> {
        if self.failing.load(Ordering::Relaxed) {
            self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
        } else {
            None
        }
    }

    fn set(&self, problem: Option<String>) {
        self.failing.store(problem.is_some(), Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }
}

/// One request's rows: its own, then for an Event Streams request one per CloudEvent, all
/// committed in the same transaction.
struct Job {
    records: Vec<NewRecord>,
    arrived: Instant,
    reply: oneshot::Sender<Result<Vec<Appended>, WriteError>>,
}

/// The handle handlers use to reach the writer thread.
#[derive(Clone)]
pub struct Writer {
    sender: SyncSender<Job>,
    capacity: usize,
    /// Assignment callbacks queued for the writer: TaskRouter waits for their answer, so the
    /// projections' transaction in progress ends early when one is waiting.
    urgent: Arc<AtomicUsize>,
    pub health: Arc<StorageHealth>,
    /// How far the projections have followed the log.
    pub progress: Arc<ProjectionProgress>,
}

impl Writer {
    /// Opens the connection and starts the thread.
    ///
    /// # Errors
    /// When the database cannot be opened for writing.
    pub fn start<F: LogFollower>(
        config: WriterConfig,
        metrics: Arc<Metrics>,
        mut follower: F,
    ) -> anyhow::Result<Self> {
        let health = Arc::new(StorageHealth::default());
        // A database that cannot be written at start (a read-only file or file system) is a
        // storage fault like any other: pages are served, webhooks answered 503, and writing
        // resumes when it clears. One that cannot even be read is a failure to start.
        let mut connection = match open(&config.database, &config) {
            Ok(connection) => connection,
            Err(error) => {
                health.set(Some(explain_failure(&error, &config.database)));
                Connection::open_with_flags(&config.database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?
            }
        };
        follower.open(&mut connection, health.problem().is_none())?;
        let head = event_log::head(&connection)?;
        let progress = Arc::new(ProjectionProgress::new(head.id, F::followed_through(&connection)?));
        let thread_progress = progress.clone();
        let urgent = Arc::new(AtomicUsize::new(0));
        let thread_urgent = urgent.clone();
        let (sender, receiver) = mpsc::sync_channel(config.queue_capacity);
        let thread_health = health.clone();
        let capacity = config.queue_capacity;
        let alive = Arc::new(());
        let checkpointer_sees = Arc::downgrade(&alive);
        let path = config.database.clone();
        let restart_frames = config.wal_restart_frames;
        let restart = Arc::new(WalRestart::default());
        let writer_restart = restart.clone();
        let checkpointer_metrics = metrics.clone();
        std::thread::Builder::new().name("log-writer".into()).spawn(move || {
            let _alive = alive;
            let shared =
                Shared { metrics, health: thread_health, progress: thread_progress, urgent: thread_urgent };
            run(connection, follower, head, config, receiver, shared, &writer_restart)
        })?;
        std::thread::Builder::new().name("log-checkpointer".into()).spawn(move || {
            checkpoint_loop(path, restart_frames, restart, checkpointer_sees, checkpointer_metrics)
        })?;
        Ok(Self { sender, capacity, urgent, health, progress })
    }

    /// Stores `record` and returns once it is committed (or has failed to be).
    ///
    /// # Errors
    /// [`WriteError`] when the row is not durably stored.
    pub async fn append(&self, record: NewRecord, arrived: Instant) -> Result<Appended, WriteError> {
        let appended = self.append_request(vec![record], arrived).await?;
        appended.into_iter().next().ok_or(WriteError::Stopped)
    }

    /// Appends a request's row and the rows it gives rise to (an Event Streams request's
    /// CloudEvents, each related to the first row) in one transaction: all are stored, or none.
    ///
    /// # Errors
    /// [`WriteError`] when the rows are not durably stored.
    pub async fn append_request(
        &self,
        records: Vec<NewRecord>,
        arrived: Instant,
    ) -> Result<Vec<Appended>, WriteError> {
        let (reply, outcome) = oneshot::channel();
        let urgent = records.first().is_some_and(is_urgent);
        if urgent {
            self.urgent.fetch_add(1, Ordering::AcqRel);
        }
        let refused = match self.sender.try_send(Job { records, arrived, reply }) {
            Ok(()) => None,
            Err(TrySendError::Full(_)) => Some(WriteError::Overloaded(self.capacity)),
            Err(TrySendError::Disconnected(_)) => Some(WriteError::Stopped),
        };
        if let Some(error) = refused {
            if urgent {
                self.urgent.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(error);
        }
        outcome.await.unwrap_or(Err(WriteError::Stopped))
    }
}

/// Whether TaskRouter waits for this request's answer (an assignment callback).
fn is_urgent(record: &NewRecord) -> bool {
    record.endpoint == taskrouter_protocol::Endpoint::Assignment.as_str()
}

fn open(path: &Path, config: &WriterConfig) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    // SQLite silently falls back to read-only when the file cannot be opened for writing; a
    // writer that cannot write is a failure to open.
    if connection.is_readonly(rusqlite::DatabaseName::Main)? {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some("the database file can only be opened read-only".into()),
        ));
    }
    // The append and the projections use a few dozen statements; keep them all prepared.
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection.busy_timeout(config.busy_timeout)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    let synchronous = match config.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    connection.pragma_update(None, "synchronous", synchronous)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints run on their own thread (see `checkpoint_loop`), so a commit never waits for one.
    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
    connection.pragma_update(None, "cache_size", -16_384)?;
    // Statement journals (upserts that fire triggers need them) in memory, not in temp files.
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    // Process-wide: past it SQLite frees cached pages before allocating more, so the writer's
    // cache, the readers' caches and their sorts together cannot ratchet memory upwards.
    connection.pragma_update(None, "soft_heap_limit", SQLITE_SOFT_HEAP_LIMIT_BYTES)?;
    Ok(connection)
}

/// Memory all of this process's SQLite connections should share at most.
const SQLITE_SOFT_HEAP_LIMIT_BYTES: i64 = 32 << 20;

/// Prepared statements kept per connection.
pub const STATEMENT_CACHE: usize = 128;

/// Requests committed in one transaction at most, unless told otherwise (`serve --commit-batch`).
pub const DEFAULT_COMMIT_BATCH: usize = 512;
/// How long the thread idles before writing pending response times on their own.
const IDLE_FLUSH: Duration = Duration::from_millis(250);
/// How often an idle, failing writer checks whether the fault has cleared.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Response times kept waiting for a transaction at most (dropped beyond, oldest first).
const MAX_PENDING_TIMINGS: usize = 100_000;
/// Response times are written with the next batch once this many wait, or once the oldest has
/// waited [`TIMINGS_MAX_AGE`] (an idle writer writes them after [`IDLE_FLUSH`]).
const TIMINGS_PER_WRITE: usize = 256;
const TIMINGS_MAX_AGE: Duration = Duration::from_secs(1);

/// Rows the projections follow in one transaction while requests wait for the writer: small,
/// so a request arriving meanwhile is not kept waiting long.
const FOLLOW_ROWS_WHILE_BUSY: usize = 128;
/// Rows the projections follow in one transaction while no request waits.
const FOLLOW_ROWS_WHILE_IDLE: usize = 1_024;
/// Rows committed and not yet projected at most: past it every append is followed by
/// projecting more rows than it added, so the backlog (and its memory) stays bounded and
/// ingest slows to the pace of the projections instead of running ahead of them.
pub const FOLLOW_BACKLOG_CAP: usize = 2_048;

/// How many of `waiting` rows to project now.
fn rows_to_follow(waiting: usize, requests_waiting: bool, just_appended: usize) -> usize {
    if !requests_waiting {
        waiting.min(FOLLOW_ROWS_WHILE_IDLE)
    } else if waiting > FOLLOW_BACKLOG_CAP {
        waiting.min(just_appended + FOLLOW_ROWS_WHILE_BUSY)
    } else if waiting >= FOLLOW_ROWS_WHILE_BUSY {
        FOLLOW_ROWS_WHILE_BUSY
    } else {
        0
    }
}

/// What the writer thread shares with the handles.
struct Shared {
    metrics: Arc<Metrics>,
    health: Arc<StorageHealth>,
    progress: Arc<ProjectionProgress>,
    urgent: Arc<AtomicUsize>,
}

/// What the writer thread keeps between its transactions.
struct WriterThread<F: LogFollower> {
    connection: Connection,
    follower: F,
    config: WriterConfig,
    shared: Shared,
    /// Committed rows the projections have not taken in, oldest first.
    backlog: VecDeque<F::Work>,
    /// Rows were committed that `backlog` does not hold (a failed projection, or left from
    /// before a start): the projections read them back from the log before going on.
    read_back: bool,
    /// After a failed projection, when to try again.
    retry_follow_at: Option<Instant>,
    /// After a failed transaction the connection is reopened before the next attempt, so a
    /// fault that poisoned it (a file system remounted, a file replaced) clears with the fault.
    reopen: bool,
    head: Option<Head>,
}

#[allow(clippy::too_many_arguments)]
fn run<F: LogFollower>(
    connection: Connection,
    follower: F,
    head: Head,
    config: WriterConfig,
    receiver: mpsc::Receiver<Job>,
    shared: Shared,
    wal_restart: &WalRestart,
) {
    let read_back = shared.progress.last_projected() < shared.progress.last_appended();
    let mut thread = WriterThread {
        connection,
        follower,
        config,
        shared,
        backlog: VecDeque::new(),
        read_back,
        retry_follow_at: None,
        reopen: false,
        head: Some(head),
    };
    thread.serve(&receiver, wal_restart);
}

impl<F: LogFollower> WriterThread<F> {
    fn serve(&mut self, receiver: &mpsc::Receiver<Job>, wal_restart: &WalRestart) {
        let mut last_restart_attempt = None;
        let mut pending_timings: Vec<(i64, u64)> = Vec::new();
        // When the oldest of `pending_timings` was answered.
        let mut pending_since: Option<Instant> = None;
        let mut batch: Vec<Job> = Vec::with_capacity(self.config.max_batch);
        // A job taken off the queue to see whether any waits, served next.
        let mut held: Option<Job> = None;
        self.reopen = self.shared.health.problem().is_some();
        let mut last_probe = Instant::now();
        loop {
            let following = (!self.backlog.is_empty() || self.read_back)
                && self.retry_follow_at.is_none_or(|at| Instant::now() >= at);
            let first = match held.take() {
                Some(job) => job,
                None => match receiver.recv_timeout(if following { Duration::ZERO } else { IDLE_FLUSH }) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) if following => {
                        self.follow(false, 0);
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if self.shared.health.problem().is_some() && last_probe.elapsed() >= PROBE_INTERVAL {
                            // Idle and failing: find out whether a write would succeed now, so
                            // health clears by itself instead of waiting for the next webhook.
                            last_probe = Instant::now();
                            match probe_fresh_connection(&self.config) {
                                Ok(fresh) => {
                                    self.connection = fresh;
                                    self.reopen = false;
                                    self.shared.health.set(None);
                                }
                                Err(problem) => self.shared.health.set(Some(problem)),
                            }
                        }
                        if !pending_timings.is_empty() {
                            if let Ok(tx) =
                                self.connection.transaction_with_behavior(TransactionBehavior::Immediate)
                            {
                                if event_log::record_response_times(&tx, &pending_timings).is_ok()
                                    && tx.commit().is_ok()
                                {
                                    pending_timings.clear();
                                    pending_since = None;
                                }
                            }
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        // Stopping: what the projections have not taken in is taken in now, so
                        // a clean stop leaves nothing to catch up.
                        while !self.backlog.is_empty() || self.read_back {
                            if !self.follow(false, 0) {
                                break;
                            }
                        }
                        return;
                    }
                },
            };
            batch.push(first);
            while batch.len() < self.config.max_batch {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let urgent_taken = batch.iter().filter(|job| job.records.first().is_some_and(is_urgent)).count();
            if urgent_taken > 0 {
                self.shared.urgent.fetch_sub(urgent_taken, Ordering::AcqRel);
            }
            reopen_if_needed(&mut self.connection, &mut self.reopen, &self.config);
            // Response times ride along only now and then: each transaction that carries them
            // writes one more page.
            let timings_due = pending_timings.len() >= TIMINGS_PER_WRITE
                || pending_since.is_some_and(|since| since.elapsed() >= TIMINGS_MAX_AGE);
            let timings: &[(i64, u64)] = if timings_due { &pending_timings } else { &[] };
            let outcome = append_batch(&mut self.connection, &batch, timings);
            // Rows, not requests: an Event Streams request appends one per CloudEvent.
            let appended;
            match outcome {
                Ok((new_head, results)) => {
                    let new_rows = results.iter().filter(|appended| appended.new_row).count() as i64;
                    appended = new_rows as usize;
                    if self.head.map(|head| head.id + new_rows) != Some(new_head.id) {
                        // Another process (an import) appended since this one last did: what the
                        // follower holds may be stale, and the rows must be read back in order.
                        self.follower.forget();
                        self.backlog.clear();
                        self.read_back = true;
                    }
                    self.head = Some(new_head);
                    self.shared.health.set(None);
                    if timings_due {
                        pending_timings.clear();
                        pending_since = None;
                    }
                    pending_since.get_or_insert_with(Instant::now);
                    self.shared.metrics.commit_batch_size.observe(batch.len() as f64);
                    let committed_ms = chrono::Utc::now().timestamp_millis();
                    let mut replies = Vec::with_capacity(batch.len());
                    let mut results = results.into_iter();
                    for job in batch.drain(..) {
                        let appended: Vec<Appended> = results.by_ref().take(job.records.len()).collect();
                        for (record, appended) in job.records.iter().zip(&appended) {
                            if appended.new_row {
                                pending_timings.push((appended.id, job.arrived.elapsed().as_micros() as u64));
                                if !self.read_back {
                                    self.backlog.push_back(F::work_of(
                                        appended.id,
                                        record,
                                        appended.is_fact,
                                        committed_ms,
                                    ));
                                }
                            }
                        }
                        replies.push((job.reply, appended));
                    }
                    // Counted before anyone is answered: a client reading right after its answer
                    // then waits for its own row (read-your-writes), not only for earlier ones.
                    self.shared.progress.appended(new_head.id, self.oldest_waiting_ms(committed_ms));
                    for (reply, appended) in replies {
                        let _ = reply.send(Ok(appended));
                    }
                    // After the answers: the batch is durable, and a restart syncs the database
                    // file, flushing every page the checkpointer copied since the last restart
                    // (SQLite syncs it after a PASSIVE checkpoint only when that caught up with
                    // the WAL's end, which one racing a busy writer never does).
                    restart_wal(
                        &self.connection,
                        wal_restart,
                        &mut last_restart_attempt,
                        self.config.busy_timeout,
                        &self.shared.metrics,
                    );
                }
                Err(error) => {
                    let message = explain_failure(&error, &self.config.database);
                    tracing::error!(%message, rows = batch.len(), "write transaction failed; answering 503");
                    self.shared.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                    self.shared.health.set(Some(message.clone()));
                    for job in batch.drain(..) {
                        let _ = job.reply.send(Err(WriteError::Storage(message.clone())));
                    }
                    // The head is re-read from what was really committed, on a fresh connection.
                    self.head = None;
                    self.reopen = true;
                    // The projections' last transactions were not synced on their own: a fault
                    // that lost unsynced writes may have lost them, so they resume from what
                    // the database says they took in.
                    self.follower.forget();
                    self.backlog.clear();
                    self.read_back = true;
                    continue;
                }
            }
            if pending_timings.len() > MAX_PENDING_TIMINGS {
                let excess = pending_timings.len() - MAX_PENDING_TIMINGS;
                pending_timings.drain(..excess);
            }
            let requests_waiting = match receiver.try_recv() {
                Ok(job) => {
                    held = Some(job);
                    true
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => false,
            };
            self.follow(requests_waiting, appended);
        }
    }

    /// When the oldest row not yet projected was committed (epoch ms; 0 when none waits);
    /// `now_ms` stands for rows read back from the log.
    fn oldest_waiting_ms(&self, now_ms: i64) -> i64 {
        match self.backlog.front() {
            Some(oldest) => oldest.committed_ms(),
            None if self.read_back => now_ms,
            None => 0,
        }
    }

    /// Projects some of the rows waiting (how many: [`rows_to_follow`]); returns whether it
    /// succeeded. Projections are rebuildable from the log, so their transactions are not
    /// synced on their own: the next append's sync carries them, and a crash before it
    /// only means they are done again.
    fn follow(&mut self, requests_waiting: bool, just_appended: usize) -> bool {
        let count = if self.read_back {
            usize::MAX
        } else {
            rows_to_follow(self.backlog.len(), requests_waiting, just_appended)
        };
        if count == 0 {
            return true;
        }
        if self.retry_follow_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        // Read back only through a connection opened since the fault: the one it happened on
        // may still see, in its own cache, writes the disk lost.
        reopen_if_needed(&mut self.connection, &mut self.reopen, &self.config);
        if self.reopen {
            self.retry_follow_at = Some(Instant::now() + PROBE_INTERVAL);
            return false;
        }
        let started = Instant::now();
        let unsynced = self.config.synchronous == Synchronous::Full
            && self.connection.pragma_update(None, "synchronous", "NORMAL").is_ok();
        let outcome = if self.read_back {
            self.follower.catch_up(&mut self.connection).map(Some)
        } else {
            // Within the backlog's cap, an assignment callback waiting ends the transaction.
            let urgent = &self.shared.urgent;
            let may_stop = self.backlog.len() <= FOLLOW_BACKLOG_CAP;
            let stop = || may_stop && urgent.load(Ordering::Acquire) > 0;
            let mark = self.shared.progress.last_projected();
            self.follower.follow(&mut self.connection, &mut self.backlog, count, mark, stop).map(|followed| {
                if followed == Followed::MarkMoved {
                    tracing::info!("another process wrote the log; the projections read it back");
                    self.backlog.clear();
                    self.read_back = true;
                }
                None
            })
        };
        if unsynced {
            let _ = self.connection.pragma_update(None, "synchronous", "FULL");
        }
        self.shared.metrics.projection_seconds.observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(caught_up_through) => {
                let through = match (caught_up_through, self.backlog.front(), self.head) {
                    // Read back up to the head, which includes every row the backlog held.
                    (Some(through), _, _) => {
                        self.read_back = false;
                        self.backlog.clear();
                        through
                    }
                    (None, _, _) if self.read_back => self.shared.progress.last_projected(),
                    (None, Some(next), _) => next.row_id() - 1,
                    (None, None, Some(head)) => head.id,
                    (None, None, None) => self.shared.progress.last_appended(),
                };
                self.retry_follow_at = None;
                self.shared
                    .progress
                    .projected(through, self.oldest_waiting_ms(chrono::Utc::now().timestamp_millis()));
                self.publish_follower_counters();
                true
            }
            Err(error) => {
                let message = explain_failure(&error, &self.config.database);
                tracing::error!(%message, "the projections could not take in the last rows; they will be read back from the log");
                self.shared.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                self.shared.health.set(Some(message));
                self.reopen = true;
                self.backlog.clear();
                self.read_back = true;
                self.retry_follow_at = Some(Instant::now() + PROBE_INTERVAL);
                false
            }
        }
    }

    fn publish_follower_counters(&self) {
        let metrics = &self.shared.metrics;
        let counters = self.follower.counters();
        metrics.projection_cache_tasks.store(counters.cached_tasks, Ordering::Relaxed);
        metrics.projection_cache_bytes.store(counters.cached_bytes, Ordering::Relaxed);
        metrics.projection_window_refolds.store(counters.window_refolds, Ordering::Relaxed);
        metrics.projection_checkpoint_refolds.store(counters.checkpoint_refolds, Ordering::Relaxed);
        metrics.projection_log_refolds.store(counters.log_refolds, Ordering::Relaxed);
        metrics.projection_restores.store(counters.restores, Ordering::Relaxed);
    }
}

/// Replaces the connection when a failure asked for it; keeps the old one (and asks again next
/// time) while the database cannot be opened.
fn reopen_if_needed(connection: &mut Connection, reopen: &mut bool, config: &WriterConfig) {
    if *reopen {
        if let Ok(fresh) = open(&config.database, config) {
            *connection = fresh;
            *reopen = false;
        }
    }
}

/// A fresh connection that has just taken (and released) the write lock, once the database's
/// files are writable again; else what is still wrong.
fn probe_fresh_connection(config: &WriterConfig) -> Result<Connection, String> {
    probe::files_writable(&config.database)?;
    let fresh = open(&config.database, config).map_err(|e| describe(&e))?;
    fresh.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").map_err(|e| describe(&e))?;
    Ok(fresh)
}

/// What went wrong, in words: SQLite's own code when it names the fault, else what the files
/// say (a write on a file system gone read-only is only a "disk I/O error" to SQLite).
fn explain_failure(error: &rusqlite::Error, database: &Path) -> String {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DiskFull | ErrorCode::ReadOnly | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked,
        ) => describe(error),
        _ => match probe::files_writable(database) {
            Err(problem) => format!("{problem}; SQLite: {error}"),
            Ok(()) => describe(error),
        },
    }
}

fn describe(error: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => format!("the disk is full ({error})"),
        Some(ErrorCode::ReadOnly) => format!("the database is read-only ({error})"),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            format!("the database is locked by another process ({error})")
        }
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            format!("the database file cannot be opened for writing ({error})")
        }
        _ => error.to_string(),
    }
}

fn append_batch(
    connection: &mut Connection,
    batch: &[Job],
    pending_timings: &[(i64, u64)],
) -> rusqlite::Result<(Head, Vec<Appended>)> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let appended = append_records(&tx, batch.iter().map(|job| job.records.as_slice()), pending_timings)?;
    tx.commit()?;
    Ok(appended)
}
