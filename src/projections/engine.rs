//! The incremental projection engine: keeps recently active tasks' folded state in memory,
//! folds each new fact into its task's state, and writes only the rows a fact changed. The same
//! engine replays the log in `rebuild`, deferring each task's write until it leaves memory, so
//! both paths run the same fold over the same facts.
//!
//! Invariant: a task's state, in memory or stored beside its rows (`proj_tasks.fold_state`,
//! `proj_reservations.fold_state`), is the fold of every fact of that task with a log id up to
//! the last fact applied, in lifecycle order. A task not in memory is restored from its stored
//! state in O(1), never by reading its history; a task with no readable state is folded again
//! from the log. Anything that could break the invariant (a rolled-back transaction, another
//! process writing) empties the cache.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use rusqlite::Connection;

use taskrouter_protocol::EventType;

use super::fact::Fact;
use super::fold::{self, ProjectionConfig};
use super::store;
use super::task_entry::{Folding, TaskEntry};
use crate::storage::event_log::sid_key;

/// Tasks kept in memory at most; past it a quarter is written out and dropped: finished tasks
/// first, then the least recently touched. A busy contact centre has a few hundred tasks in
/// flight; each costs a few KB.
pub const TASK_CACHE_CAPACITY: usize = 2_048;
/// Bytes of task state kept in memory at most (see [`TaskEntry::memory_bytes`]): tasks with
/// large attributes or long reorder windows leave memory sooner, so the server's memory stays
/// flat whatever the traffic. Past it tasks are dropped (finished ones first) until a quarter
/// is free again.
pub const TASK_CACHE_BYTES: usize = 24 << 20;
/// The same bounds during a rebuild: a backlog of tasks waiting in their queues (tens of
/// thousands in the benchmark logs) stays in memory instead of being written and restored for
/// each reservation.
const REBUILD_CACHE_CAPACITY: usize = 32_768;
const REBUILD_CACHE_BYTES: usize = 256 << 20;
/// Workers kept in memory at most (each is a few hundred bytes).
const WORKER_CACHE_CAPACITY: usize = 20_000;

/// Counters for `/metrics` and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub facts: u64,
    /// Tasks' stored state read back because they were not in memory.
    pub loads: u64,
    /// Facts that arrived out of order and re-folded their task's reorder window.
    pub window_refolds: u64,
    /// Facts older than their task's reorder window, which re-folded from a checkpoint.
    pub checkpoint_refolds: u64,
    /// Facts older than their task's checkpoints, which re-folded the task from the log.
    pub log_refolds: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct WorkerState {
    name: Option<String>,
    name_key: Option<(i64, i64)>,
    activity_sid: Option<String>,
    activity_name: Option<String>,
    activity_key: Option<(i64, i64)>,
    dirty: bool,
}

/// The projection state of one writer connection.
pub struct Engine {
    config: ProjectionConfig,
    capacity: usize,
    byte_budget: usize,
    /// The sum of the cached tasks' `bytes`.
    cached_bytes: usize,
    tasks: HashMap<String, TaskEntry>,
    dirty_tasks: Vec<String>,
    workers: HashMap<String, WorkerState>,
    latest_event_ms: Option<Option<i64>>,
    latest_dirty: bool,
    clock: u64,
    /// During a rebuild: tasks already seen, so a task's first fact needs no read-back.
    seen_tasks: Option<HashSet<u64>>,
    /// `PRAGMA data_version` after our last transaction: it changes when another connection
    /// commits, which may have changed what the cache mirrors.
    data_version: Option<i64>,
    /// During a rebuild: where the state of tasks leaving memory is dropped (see [`Engine::discard`]).
    discard: Option<std::sync::mpsc::Sender<Vec<TaskEntry>>>,
    pub stats: EngineStats,
}

impl Engine {
    /// An engine for live ingest: every transaction writes what it changed before committing.
    pub fn new(config: ProjectionConfig) -> Self {
        Self {
            config,
            capacity: TASK_CACHE_CAPACITY,
            byte_budget: TASK_CACHE_BYTES,
            cached_bytes: 0,
            tasks: HashMap::new(),
            dirty_tasks: Vec::new(),
            workers: HashMap::new(),
            latest_event_ms: None,
            latest_dirty: false,
            clock: 0,
            seen_tasks: None,
            data_version: None,
            discard: None,
            stats: EngineStats::default(),
        }
    }

    /// An engine replaying the log into empty projection tables.
    pub(super) fn for_rebuild(config: ProjectionConfig) -> Self {
        Self {
            seen_tasks: Some(HashSet::new()),
            latest_event_ms: Some(None),
            // A rebuild is a batch job: more memory defers more writes and read-backs.
            capacity: REBUILD_CACHE_CAPACITY,
            byte_budget: REBUILD_CACHE_BYTES,
            ..Self::new(config)
        }
    }

    /// Has the state of tasks leaving memory dropped on a thread of its own: the rebuild's log
    /// readers allocated their facts, and freeing what another thread allocated cost the
    /// folding thread, the rebuild's critical one, 7 % of its time. The thread ends with the
    /// engine; without it the engine drops them itself.
    pub(super) fn discard_on_a_thread(&mut self) {
        let (sender, discarded) = std::sync::mpsc::channel::<Vec<TaskEntry>>();
        if std::thread::Builder::new()
            .name("rebuild-discard".into())
            .spawn(move || discarded.iter().for_each(drop))
            .is_ok()
        {
            self.discard = Some(sender);
        }
    }

    fn discard(&self, entries: Vec<TaskEntry>) {
        match &self.discard {
            // A closed channel hands the entries back in the error, dropped here.
            Some(sender) => drop(sender.send(entries)),
            None => drop(entries),
        }
    }

    /// The same engine keeping at most `capacity` tasks in memory (tests force evictions).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The same engine keeping at most about `bytes` of task state in memory.
    pub fn with_byte_budget(mut self, bytes: usize) -> Self {
        self.byte_budget = bytes;
        self
    }

    /// Tasks and bytes of task state held in memory now.
    pub fn cached(&self) -> (usize, usize) {
        (self.tasks.len(), self.cached_bytes)
    }

    pub fn config(&self) -> &ProjectionConfig {
        &self.config
    }

    /// Drops everything held in memory (after a failed transaction, or another writer).
    pub fn forget(&mut self) {
        self.tasks.clear();
        self.cached_bytes = 0;
        self.dirty_tasks.clear();
        self.workers.clear();
        self.latest_event_ms = None;
        self.latest_dirty = false;
        self.data_version = None;
    }

    /// Call at the start of a transaction: forgets the cache if another connection committed
    /// since our last transaction.
    ///
    /// # Errors
    /// Any SQLite error.
    pub fn begin(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version.is_some_and(|v| v != version) {
            self.forget();
        }
        self.data_version = Some(version);
        Ok(())
    }

    /// Applies one fact (its `event_id` must be the newest applied so far).
    ///
    /// # Errors
    /// Any SQLite error.
    pub fn apply_fact(&mut self, conn: &Connection, fact: Fact) -> rusqlite::Result<()> {
        self.stats.facts += 1;
        if !fact.time_is_arrival {
            let latest = self.latest(conn)?;
            if latest.is_none_or(|l| fact.occurred_at_ms > l) {
                self.latest_event_ms = Some(Some(fact.occurred_at_ms));
                self.latest_dirty = true;
            }
        }
        if let Some(worker_sid) = fact.worker_sid.as_deref() {
            self.note_worker(conn, worker_sid, &fact)?;
            if fact.event() == Some(EventType::WorkerActivityUpdate) {
                for (task_sid, reservation_sid) in
                    store::outcomes_explained_by_activity(conn, worker_sid, fact.occurred_at_ms)?
                {
                    self.entry(conn, &task_sid)?.touch_reservation(conn, &reservation_sid)?;
                    self.mark_dirty(&task_sid);
                }
            }
            if let (true, Some(task_sid), Some(reservation_sid)) = (
                fact.event().is_some_and(|event| fold::ACTIVITY_CAUSING_EVENTS.contains(&event)),
                fact.task_sid.as_deref(),
                fact.reservation_sid.as_deref(),
            ) {
                store::insert_worker_outcome(
                    conn,
                    worker_sid,
                    fact.occurred_at_ms,
                    task_sid,
                    reservation_sid,
                )?;
            }
        }
        if let Some(task_sid) = fact.task_sid.clone() {
            let config = self.config.clone();
            let entry = self.entry(conn, &task_sid)?;
            let before = entry.bytes;
            let folding = entry.apply(conn, fact, &config)?;
            entry.bytes = entry.memory_bytes();
            let after = entry.bytes;
            self.cached_bytes = self.cached_bytes - before + after;
            match folding {
                Folding::Window => self.stats.window_refolds += 1,
                Folding::Checkpoint => self.stats.checkpoint_refolds += 1,
                Folding::FromLog => self.stats.log_refolds += 1,
                Folding::InOrder | Folding::Duplicate => {}
            }
            self.mark_dirty(&task_sid);
        }
        self.evict_if_full(conn)
    }

    /// Writes every changed task and worker; call before committing.
    ///
    /// # Errors
    /// Any SQLite error.
    pub fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut dirty_tasks = std::mem::take(&mut self.dirty_tasks);
        // In SID order, for the same reason as eviction.
        dirty_tasks.sort_unstable();
        for task_sid in dirty_tasks {
            self.write_task(conn, &task_sid)?;
        }
        for (worker_sid, state) in self.workers.iter_mut().filter(|(_, s)| s.dirty) {
            store::write_worker(conn, worker_sid, &state.stored())?;
            state.dirty = false;
        }
        if self.latest_dirty {
            if let Some(Some(latest)) = self.latest_event_ms {
                store::set_latest_event_ms(conn, latest)?;
            }
            self.latest_dirty = false;
        }
        Ok(())
    }

    fn latest(&mut self, conn: &Connection) -> rusqlite::Result<Option<i64>> {
        if let Some(latest) = self.latest_event_ms {
            return Ok(latest);
        }
        let latest = store::latest_event_ms(conn)?;
        self.latest_event_ms = Some(latest);
        Ok(latest)
    }

    /// The task's entry, restored from its stored state when not in memory.
    fn entry(&mut self, conn: &Connection, task_sid: &str) -> rusqlite::Result<&mut TaskEntry> {
        self.clock += 1;
        if !self.tasks.contains_key(task_sid) {
            let first_sight =
                self.seen_tasks.as_mut().is_some_and(|seen| seen.insert(sid_key(task_sid) as u64));
            let entry = if first_sight {
                // In a rebuild a first sight has nothing on disk yet.
                TaskEntry::new(task_sid)
            } else {
                match store::read_task_state(conn, task_sid)? {
                    None => TaskEntry::new(task_sid),
                    Some(Some((fold, totals))) => {
                        self.stats.loads += 1;
                        TaskEntry::restored(task_sid, fold, totals)
                    }
                    Some(None) => TaskEntry::unreadable(task_sid),
                }
            };
            self.tasks.insert(task_sid.to_string(), entry);
        }
        let entry = self.tasks.get_mut(task_sid).expect("inserted above");
        entry.last_touched = self.clock;
        Ok(entry)
    }

    fn mark_dirty(&mut self, task_sid: &str) {
        if let Some(entry) = self.tasks.get_mut(task_sid) {
            if entry.dirty && !entry.queued {
                entry.queued = true;
                self.dirty_tasks.push(task_sid.to_string());
            }
        }
    }

    fn note_worker(&mut self, conn: &Connection, worker_sid: &str, fact: &Fact) -> rusqlite::Result<()> {
        if !self.workers.contains_key(worker_sid) {
            let state = match store::read_worker(conn, worker_sid)? {
                Some(stored) => WorkerState::from_stored(stored),
                None => WorkerState { dirty: true, ..WorkerState::default() },
            };
            self.workers.insert(worker_sid.to_string(), state);
        }
        let state = self.workers.get_mut(worker_sid).expect("inserted above");
        let key = (fact.occurred_at_ms, fact.event_id);
        if fact.worker_name.is_some() && state.name_key.is_none_or(|k| key >= k) {
            state.name.clone_from(&fact.worker_name);
            state.name_key = Some(key);
            state.dirty = true;
        }
        if matches!(fact.event(), Some(EventType::WorkerActivityUpdate | EventType::WorkerCreated)) {
            store::insert_worker_activity(conn, worker_sid, fact)?;
            if state.activity_key.is_none_or(|k| key >= k) {
                state.activity_sid.clone_from(&fact.activity_sid);
                state.activity_name.clone_from(&fact.activity_name);
                state.activity_key = Some(key);
                state.dirty = true;
            }
        }
        Ok(())
    }

    fn write_task(&mut self, conn: &Connection, task_sid: &str) -> rusqlite::Result<()> {
        let Some(entry) = self.tasks.get_mut(task_sid) else { return Ok(()) };
        entry.queued = false;
        let before = entry.bytes;
        entry.write(conn)?;
        entry.bytes = entry.memory_bytes();
        self.cached_bytes = self.cached_bytes - before + entry.bytes;
        Ok(())
    }

    fn evict_if_full(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.tasks.len() > self.capacity || self.cached_bytes > self.byte_budget {
            // Finished tasks first, then the least recently touched.
            let mut by_age: Vec<(bool, u64, String)> =
                self.tasks.iter().map(|(sid, e)| (!e.finished, e.last_touched, sid.clone())).collect();
            by_age.sort_unstable();
            let keep_tasks = self.capacity - self.capacity.div_ceil(4);
            let keep_bytes = self.byte_budget - self.byte_budget / 4;
            let (mut tasks_left, mut bytes_left) = (self.tasks.len(), self.cached_bytes);
            let mut leaving = Vec::new();
            for (_, _, sid) in by_age {
                if tasks_left <= keep_tasks && bytes_left <= keep_bytes {
                    break;
                }
                tasks_left -= 1;
                bytes_left -= self.tasks[&sid].bytes;
                leaving.push(sid);
            }
            // Written in SID order, the tables keyed by task SID take them as near-appends
            // instead of scattered inserts (a rebuild evicts thousands at a time).
            leaving.sort_unstable();
            let mut left = Vec::with_capacity(leaving.len());
            for sid in leaving {
                self.write_task(conn, &sid)?;
                if let Some(entry) = self.tasks.remove(&sid) {
                    self.cached_bytes -= entry.bytes;
                    left.push(entry);
                }
            }
            self.discard(left);
            let still_cached = &self.tasks;
            self.dirty_tasks.retain(|sid| still_cached.get(sid).is_some_and(|e| e.queued));
        }
        if self.workers.len() > WORKER_CACHE_CAPACITY {
            for (worker_sid, state) in self.workers.iter().filter(|(_, s)| s.dirty) {
                store::write_worker(conn, worker_sid, &state.stored())?;
            }
            self.workers.clear();
        }
        Ok(())
    }

    /// Writes everything and empties the cache (the end of a rebuild).
    pub(super) fn finish(&mut self, conn: &Connection) -> rusqlite::Result<(u64, u64)> {
        self.flush(conn)?;
        let counts = (self.seen_tasks.as_ref().map_or(0, |s| s.len() as u64), self.workers.len() as u64);
        let left = self.tasks.drain().map(|(_, entry)| entry).collect();
        self.discard(left);
        self.forget();
        Ok(counts)
    }
}

impl WorkerState {
    fn from_stored(stored: store::StoredWorker) -> Self {
        Self {
            name: stored.name,
            name_key: stored.name_key,
            activity_sid: stored.activity_sid,
            activity_name: stored.activity_name,
            activity_key: stored.activity_key,
            dirty: false,
        }
    }

    fn stored(&self) -> store::StoredWorker {
        store::StoredWorker {
            name: self.name.clone(),
            name_key: self.name_key,
            activity_sid: self.activity_sid.clone(),
            activity_name: self.activity_name.clone(),
            activity_key: self.activity_key,
        }
    }
}
