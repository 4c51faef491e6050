//! The work that follows the log: for each committed row, the SID references beyond its
//! event Sid and, for a fact, the projections. The writer thread does it (through
//! [`LogFollower`], implemented here by [`Projector`]) in transactions of its own after the
//! appends are acknowledged, oldest row first, and records in the same transaction the last row
//! taken in (`proj_meta.projected_through`), so after a crash it resumes from exactly there and
//! ends where `rebuild` would.
//!
//! Another process may write the same database (an `import` while `serve` runs). Each
//! transaction therefore checks, under the write lock, that the mark is where this process left
//! it and that its next row follows it; when not, the rows are read back from the mark instead.

use std::collections::VecDeque;
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};

use super::{Engine, Fact, ProjectionConfig};
use crate::projections;
use crate::storage::append::append_records;
use crate::storage::append::Appended;
use crate::storage::event_log::{self, Head, NewRecord};
use crate::storage::follower::{Followed, FollowerCounters, LogFollower, RowWork};

/// A committed row's share of that work.
#[derive(Debug)]
pub struct FollowUp {
    pub id: i64,
    sids: Vec<String>,
    fact: Option<Fact>,
    /// When its row was committed (epoch ms), for the lag.
    pub committed_ms: i64,
}

impl RowWork for FollowUp {
    fn row_id(&self) -> i64 {
        self.id
    }

    fn committed_ms(&self) -> i64 {
        self.committed_ms
    }
}

impl FollowUp {
    /// What row `id`, just appended from `record`, leaves to do.
    pub fn of(id: i64, record: &NewRecord, is_fact: bool, committed_ms: i64) -> Self {
        let facts = record.facts.as_ref();
        Self {
            id,
            sids: facts.map(event_log::sids_referenced_later).unwrap_or_default(),
            fact: facts.filter(|_| is_fact).map(|facts| {
                Fact::from_parts(id, facts, record.params.as_ref(), record.response_body.as_deref())
            }),
            committed_ms,
        }
    }
}

/// Does `work` (oldest first) inside `tx`, the projections' rows written and the last row
/// recorded. The caller commits.
///
/// # Errors
/// Any SQLite error; the caller rolls back and calls [`Engine::forget`].
pub fn follow_in(
    tx: &Connection,
    engine: &mut Engine,
    work: impl IntoIterator<Item = FollowUp>,
) -> rusqlite::Result<Option<i64>> {
    engine.begin(tx)?;
    let mut last = None;
    for follow_up in work {
        event_log::index_sids(tx, follow_up.id, follow_up.sids.iter().map(String::as_str))?;
        if let Some(fact) = follow_up.fact {
            engine.apply_fact(tx, fact)?;
        }
        last = Some(follow_up.id);
    }
    engine.flush(tx)?;
    if let Some(id) = last {
        projections::set_projected_through(tx, id)?;
    }
    Ok(last)
}

/// Takes up to `count` of `backlog`, oldest first, and does them in one transaction, ending it
/// early (after at least one) once `stop` says so. `expected_mark` is where this process left
/// `projected_through`.
///
/// # Errors
/// Any SQLite error: nothing of it is stored and `engine` forgets what it held; the rows
/// taken must then be read back from the log ([`catch_up`]).
pub fn follow(
    connection: &mut Connection,
    engine: &mut Engine,
    backlog: &mut VecDeque<FollowUp>,
    count: usize,
    expected_mark: i64,
    stop: impl Fn() -> bool,
) -> rusqlite::Result<Followed> {
    let outcome = connection.transaction_with_behavior(TransactionBehavior::Immediate).and_then(|tx| {
        let mark = projections::projected_through(&tx)?;
        if mark != expected_mark || backlog.front().is_some_and(|next| next.id != mark + 1) {
            return Ok(Followed::MarkMoved);
        }
        let mut taken = 0;
        let work = std::iter::from_fn(|| {
            if taken >= count || (taken > 0 && stop()) {
                return None;
            }
            taken += 1;
            backlog.pop_front()
        });
        follow_in(&tx, engine, work)?;
        tx.commit()?;
        Ok(Followed::Done)
    });
    if !matches!(outcome, Ok(Followed::Done)) {
        engine.forget();
    }
    outcome
}

/// Log rows read back per transaction when catching up.
const CATCH_UP_ROWS: i64 = 1_024;

/// Where a [`catch_up`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaughtUp {
    /// Rows read back.
    pub rows: u64,
    /// The mark it left: the log's last row when it ended.
    pub through: i64,
}

/// Takes in every row the projections have not (after a crash, a copy made while they were
/// behind, or rows another process appended), in transactions of [`CATCH_UP_ROWS`].
///
/// # Errors
/// Any SQLite error.
pub fn catch_up(connection: &mut Connection, engine: &mut Engine) -> rusqlite::Result<CaughtUp> {
    let started = Instant::now();
    let mut head = event_log::head(connection)?.id;
    let mut through = projections::projected_through(connection)?;
    let mut rows = 0u64;
    loop {
        if through >= head {
            // Rows another process appended meanwhile are taken in too.
            head = event_log::head(connection)?.id;
            if through >= head {
                break;
            }
        }
        let upto = (through + CATCH_UP_ROWS).min(head);
        let backlog = read_back(connection, through, upto)?;
        let outcome = connection.transaction_with_behavior(TransactionBehavior::Immediate).and_then(|tx| {
            let mark = projections::projected_through(&tx)?;
            if mark != through {
                return Ok(Some(mark));
            }
            follow_in(&tx, engine, backlog)?;
            // Rows with nothing to do still move the mark.
            projections::set_projected_through(&tx, upto)?;
            tx.commit()?;
            Ok(None)
        });
        match outcome {
            Ok(None) => {
                rows += (upto - through) as u64;
                through = upto;
            }
            // Another process took these rows in: what this one holds may be stale.
            Ok(Some(mark)) => {
                engine.forget();
                through = mark;
            }
            Err(error) => {
                engine.forget();
                return Err(error);
            }
        }
    }
    if rows > 0 {
        tracing::info!(rows, took = ?started.elapsed(), "projections caught up with the log");
    }
    Ok(CaughtUp { rows, through })
}

/// What the rows after `after_id` up to `through_id` leave to do, read back from the log.
fn read_back(connection: &Connection, after_id: i64, through_id: i64) -> rusqlite::Result<Vec<FollowUp>> {
    let mut facts = projections::facts_between(connection, after_id, through_id)?.into_iter().peekable();
    let mut sids = event_log::sids_of_rows(connection, after_id, through_id)?.into_iter().peekable();
    let mut backlog = Vec::new();
    loop {
        let next_id = match (facts.peek(), sids.peek()) {
            (Some(fact), Some((id, _))) => fact.event_id.min(*id),
            (Some(fact), None) => fact.event_id,
            (None, Some((id, _))) => *id,
            (None, None) => break,
        };
        let fact = facts.next_if(|fact| fact.event_id == next_id);
        let sids = sids.next_if(|(id, _)| *id == next_id).map(|(_, sids)| sids).unwrap_or_default();
        backlog.push(FollowUp { id: next_id, sids, fact, committed_ms: 0 });
    }
    Ok(backlog)
}

/// The projections as the writer thread drives them: the engine, and what its folds depend on.
pub struct Projector {
    engine: Engine,
    config: ProjectionConfig,
}

impl Projector {
    pub fn new(config: ProjectionConfig) -> Self {
        Self { engine: Engine::new(config.clone()), config }
    }
}

impl LogFollower for Projector {
    type Work = FollowUp;

    fn work_of(id: i64, record: &NewRecord, is_fact: bool, committed_ms: i64) -> FollowUp {
        FollowUp::of(id, record, is_fact, committed_ms)
    }

    fn open(&mut self, connection: &mut Connection, writable: bool) -> rusqlite::Result<()> {
        // An upgrade may have left the projections to be rebuilt, and a crash rows they had
        // not taken in yet; both are done before taking requests.
        projections::rebuild_if_stale(connection, &self.config)?;
        if writable {
            projections::record_projected_through(connection)?;
            catch_up(connection, &mut self.engine)?;
        }
        Ok(())
    }

    fn followed_through(connection: &Connection) -> rusqlite::Result<i64> {
        projections::projected_through(connection)
    }

    fn follow(
        &mut self,
        connection: &mut Connection,
        backlog: &mut VecDeque<FollowUp>,
        count: usize,
        expected_mark: i64,
        stop: impl Fn() -> bool,
    ) -> rusqlite::Result<Followed> {
        follow(connection, &mut self.engine, backlog, count, expected_mark, stop)
    }

    fn catch_up(&mut self, connection: &mut Connection) -> rusqlite::Result<i64> {
        catch_up(connection, &mut self.engine).map(|caught| caught.through)
    }

    fn forget(&mut self) {
        self.engine.forget();
    }

    fn counters(&self) -> FollowerCounters {
        let (cached_tasks, cached_bytes) = self.engine.cached();
        let stats = &self.engine.stats;
        FollowerCounters {
            cached_tasks: cached_tasks as u64,
            cached_bytes: cached_bytes as u64,
            window_refolds: stats.window_refolds,
            checkpoint_refolds: stats.checkpoint_refolds,
            log_refolds: stats.log_refolds,
            restores: stats.loads,
        }
    }
}

/// Appends and projects `records` in one transaction, as the writer thread's append and the
/// projections' transactions that follow it would: bulk tools (`generate`) and tests run it so
/// their rows are exactly what ingest writes.
///
/// # Errors
/// Any SQLite error; nothing of the batch is then stored, and `engine` forgets what it held.
pub fn commit_records<'a>(
    connection: &mut Connection,
    records: impl Iterator<Item = &'a NewRecord>,
    pending_timings: &[(i64, u64)],
    engine: &mut Engine,
) -> rusqlite::Result<(Head, Vec<Appended>)> {
    let outcome = connection.transaction_with_behavior(TransactionBehavior::Immediate).and_then(|tx| {
        let records: Vec<&NewRecord> = records.collect();
        let (head, results) =
            append_records(&tx, records.iter().map(|record| std::slice::from_ref(*record)), pending_timings)?;
        let work = records
            .iter()
            .zip(&results)
            .filter(|(_, appended)| appended.new_row)
            .map(|(record, appended)| FollowUp::of(appended.id, record, appended.is_fact, 0));
        follow_in(&tx, engine, work)?;
        tx.commit()?;
        Ok((head, results))
    });
    if outcome.is_err() {
        engine.forget();
    }
    outcome
}
