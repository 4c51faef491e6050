//! What the writer thread drives after its appends: the log's follower, a fold of the log kept
//! in the same database (the projections). It is a trait so the log's storage names nothing of
//! what follows it; `startup` hands the writer the projections' implementation.
//!
//! The writer owns the schedule (when to follow, how many rows, retries after faults, the
//! backlog's cap); the follower owns the work: what a committed row leaves to do, doing it in
//! transactions of its own, and where its mark stands.

use std::collections::VecDeque;

use rusqlite::Connection;

use super::event_log::NewRecord;

/// A committed row's share of a follower's work, as the writer's backlog holds it.
pub trait RowWork: Send + 'static {
    /// The log row it comes from.
    fn row_id(&self) -> i64;
    /// When that row was committed (epoch ms; 0 when read back), for the lag.
    fn committed_ms(&self) -> i64;
}

/// What a [`LogFollower::follow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The rows taken are followed.
    Done,
    /// Another process moved the mark or appended rows between this one's: nothing was done,
    /// and the rows must be read back from the log ([`LogFollower::catch_up`]).
    MarkMoved,
}

/// What a follower keeps in memory and how often it had to fold again, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowerCounters {
    pub cached_tasks: u64,
    pub cached_bytes: u64,
    pub window_refolds: u64,
    pub checkpoint_refolds: u64,
    pub log_refolds: u64,
    pub restores: u64,
}

/// A fold of the log that the writer thread advances on its own connection.
pub trait LogFollower: Send + 'static {
    /// What one committed row leaves to do.
    type Work: RowWork;

    /// What row `id`, just appended from `record` (a fact when `is_fact`), committed at
    /// `committed_ms`, leaves to do.
    fn work_of(id: i64, record: &NewRecord, is_fact: bool, committed_ms: i64) -> Self::Work;

    /// Before the writer takes requests: rebuilt when an upgrade left it stale, and, when the
    /// database can be written, its mark recorded and the rows a crash left taken in.
    ///
    /// # Errors
    /// Any SQLite error.
    fn open(&mut self, connection: &mut Connection, writable: bool) -> rusqlite::Result<()>;

    /// The last log row it has taken in.
    ///
    /// # Errors
    /// Any SQLite error.
    fn followed_through(connection: &Connection) -> rusqlite::Result<i64>;

    /// Takes up to `count` of `backlog`, oldest first, in one transaction, ending it early
    /// (after at least one) once `stop` says so. `expected_mark` is where this process left its
    /// mark.
    ///
    /// # Errors
    /// Any SQLite error: nothing is stored and what it held in memory is forgotten.
    fn follow(
        &mut self,
        connection: &mut Connection,
        backlog: &mut VecDeque<Self::Work>,
        count: usize,
        expected_mark: i64,
        stop: impl Fn() -> bool,
    ) -> rusqlite::Result<Followed>;

    /// Takes in every row after its mark, read back from the log; returns its new mark.
    ///
    /// # Errors
    /// Any SQLite error.
    fn catch_up(&mut self, connection: &mut Connection) -> rusqlite::Result<i64>;

    /// Forgets what it holds in memory: the database may have changed under it.
    fn forget(&mut self);

    /// Its counters, for the metrics.
    fn counters(&self) -> FollowerCounters;
}
