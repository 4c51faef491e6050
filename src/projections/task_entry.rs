//! One task's fold in memory: its state, the last facts folded with what each changed (the
//! reorder window), the reservation states it has looked at, and the rows waiting to be
//! written.
//!
//! A fact that comes next in lifecycle order is folded in O(1). A fact that belongs earlier
//! undoes the window back to its place and folds again from there: at most
//! [`REORDER_WINDOW`] facts, whatever the task's history. Facts that leave the window are kept
//! as checkpoints: every [`CHECKPOINT_FACTS`] of them, the state before the first, their log
//! ids and the reservation states they first changed, up to [`CHECKPOINT_BYTES`] a task. A fact
//! older than the window re-folds from the checkpoint before its place, reading back only the
//! facts after it. Only a fact older than every checkpoint (or one for a task that has ended,
//! or whose window left memory with it) re-folds the task from the log.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use rusqlite::Connection;
use taskrouter_protocol::ReservationStatus;

use super::explain;
use super::fact::{creation_times, lifecycle_order_of, placement_ms, Fact, SortKey};
use super::fold::{
    self, AcceptedReservation, Flag, ProjectionConfig, ReservationState, TaskFold, TimelineEntry, Totals,
};
use super::store;

/// Facts of a task kept with what each changed, so that one arriving out of order re-folds
/// from its place instead of from the task's first fact.
pub const REORDER_WINDOW: usize = 32;
/// The window of a task that has ended: TaskRouter sends it few facts more, and a late one
/// still folds exactly (from the log), so its memory goes to tasks in flight.
const FINISHED_REORDER_WINDOW: usize = 4;
/// Facts past the window grouped under one checkpoint.
pub const CHECKPOINT_FACTS: usize = 64;
/// Checkpoint bytes a task in flight keeps at most (the oldest go first).
pub const CHECKPOINT_BYTES: usize = 256 << 10;
/// Reservation states a task keeps in memory once written, beyond the open ones (the others
/// are read back from their rows when a fact names them again).
const RESERVATIONS_KEPT: usize = 8;
/// Open reservation states a task keeps in memory at most once written (see
/// [`TaskEntry::keep_few_reservations`]).
const OPEN_RESERVATIONS_KEPT: usize = 64;
/// Rough sizes of what [`TaskEntry::memory_bytes`] does not measure one by one.
const TIMELINE_ENTRY_BYTES: usize = 320;
const FLAG_BYTES: usize = 400;

/// A fact as folded, with the state before it (to undo it).
#[derive(Debug)]
struct Folded {
    key: Arc<SortKey>,
    fact: Fact,
    before: TaskFold,
    /// The reservation the fact names and its state before the fact (`None`: it had none).
    reservation_before: Option<(String, Option<ReservationState>)>,
    bytes: usize,
}

/// Facts that left the reorder window: enough to fold again from before the first of them.
#[derive(Debug)]
struct Checkpoint {
    first_key: Arc<SortKey>,
    /// The state before its first fact.
    before: TaskFold,
    /// Its facts' log rows, in lifecycle order.
    event_ids: Vec<i64>,
    /// Each reservation its facts name, with its state before the first of them.
    reservations_before: HashMap<String, Option<ReservationState>>,
    bytes: usize,
}

/// The rows of a task waiting to be written.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Nothing on disk can be trusted: delete every row of the task first.
    pub rewrite_all: bool,
    /// Reservations whose row (and outcome flag) changed.
    pub reservations: BTreeSet<String>,
    /// Reservations put back to an earlier state: their outcome flag may have to go.
    pub restored: BTreeSet<String>,
    pub timeline: BTreeMap<i64, TimelineEntry>,
    /// Flags raised while folding, by index.
    pub step_flags: BTreeMap<i64, Flag>,
    /// Step flags from this index on are deleted before the pending ones are written.
    pub step_flags_from: Option<i64>,
    /// Outcome flags of reservations from this ordinal on are deleted before writing.
    pub outcome_flags_from: Option<i64>,
}

/// What a reservation lookup found.
enum Found {
    /// `reservations` holds it, or knows it does not exist.
    InMemory,
    /// Its row belongs to another task (malformed input): only a fold from the log is exact.
    FiledElsewhere,
}

#[derive(Debug)]
pub(super) struct TaskEntry {
    pub task_sid: String,
    pub fold: TaskFold,
    pub totals: Totals,
    /// Reservation states by Sid: every one waiting to be written and some recent ones;
    /// `None`: known not to exist yet (while a re-fold replays).
    pub reservations: HashMap<String, Option<ReservationState>>,
    /// Every reservation of the task is in `reservations`: none needs looking up.
    pub reservations_complete: bool,
    window: VecDeque<Folded>,
    window_bytes: usize,
    /// Oldest first; each covers the facts before the next (the last: before the window).
    checkpoints: VecDeque<Checkpoint>,
    checkpoint_bytes: usize,
    pub pending: Pending,
    /// The task has rows on disk (else its first write inserts them).
    pub on_disk: bool,
    /// The state could not be read back: the next fact re-folds the task from the log.
    pub needs_refold: bool,
    /// What was last written of the flags that depend on the whole task.
    pub written_accepted: Vec<AcceptedReservation>,
    pub written_missing_created: Option<Option<Flag>>,
    pub dirty: bool,
    /// In the engine's list of tasks to write.
    pub queued: bool,
    pub last_touched: u64,
    /// A fact ended the task: evicted before tasks still in flight.
    pub finished: bool,
    /// [`TaskEntry::memory_bytes`] when last counted.
    pub bytes: usize,
}

/// How a fact was folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Folding {
    InOrder,
    Window,
    Checkpoint,
    FromLog,
    Duplicate,
}

impl TaskEntry {
    /// A task with no facts and no rows yet.
    pub fn new(task_sid: &str) -> Self {
        Self {
            task_sid: task_sid.to_string(),
            fold: TaskFold::default(),
            totals: Totals::default(),
            reservations: HashMap::new(),
            reservations_complete: true,
            window: VecDeque::new(),
            window_bytes: 0,
            checkpoints: VecDeque::new(),
            checkpoint_bytes: 0,
            pending: Pending::default(),
            on_disk: false,
            needs_refold: false,
            written_accepted: Vec::new(),
            written_missing_created: Some(None),
            dirty: false,
            queued: false,
            last_touched: 0,
            finished: false,
            bytes: 0,
        }
    }

    /// A task restored from its stored state (no window: the facts left memory).
    pub fn restored(task_sid: &str, fold: TaskFold, totals: Totals) -> Self {
        Self {
            written_accepted: fold.accepted.clone(),
            written_missing_created: Some(explain::missing_created_flag(&fold)),
            finished: fold.status.is_final(),
            fold,
            totals,
            reservations_complete: false,
            on_disk: true,
            ..Self::new(task_sid)
        }
    }

    /// A task whose rows exist but whose state does not: rebuilt from the log at its next fact.
    pub fn unreadable(task_sid: &str) -> Self {
        Self { on_disk: true, needs_refold: true, reservations_complete: false, ..Self::new(task_sid) }
    }

    /// About how many bytes it holds in memory.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.fold.memory_bytes()
            + self.window_bytes
            + self.checkpoint_bytes
            + self
                .reservations
                .values()
                .map(|r| 64 + r.as_ref().map_or(0, ReservationState::memory_bytes))
                .sum::<usize>()
            + self.pending.timeline.len() * TIMELINE_ENTRY_BYTES
            + self.pending.step_flags.len() * FLAG_BYTES
    }

    /// Folds the task's new fact (the log's newest).
    pub fn apply(
        &mut self,
        conn: &Connection,
        fact: Fact,
        config: &ProjectionConfig,
    ) -> rusqlite::Result<Folding> {
        self.finished |= fact.ends_task();
        self.dirty = true;
        if self.needs_refold {
            return self.refold_from_log(conn, fact, config);
        }
        if fact.event_sid.is_some() && self.window.iter().any(|w| w.fact.event_sid == fact.event_sid) {
            // Only the first delivery of an event counts (the writer normally keeps these out).
            return Ok(Folding::Duplicate);
        }
        let reservation_created = match &fact.reservation_sid {
            Some(sid) => match self.look_up(conn, sid)? {
                Found::InMemory => self.reservation(sid).map(|s| (s.created_min_ms, s.first_placement_ms)),
                Found::FiledElsewhere => return self.refold_from_log(conn, fact, config),
            },
            None => None,
        };
        let task_created = match fact.event_type.as_str() {
            "task.created" => Some(
                self.fold.task_created_min_ms.map_or(fact.occurred_at_ms, |m| m.min(fact.occurred_at_ms)),
            ),
            _ => self.fold.task_created_min_ms,
        };
        let key =
            SortKey::of(&fact, placement_ms(&fact, task_created, reservation_created.and_then(|r| r.0)));
        // The lowest key whose fact may move: a creation earlier than any known one moves the
        // facts it places.
        let mut lowest_moved = key.clone();
        if fact.event_type == "task.created"
            && task_created != self.fold.task_created_min_ms
            && self
                .totals
                .any_time_bounds
                .is_some_and(|(low, _)| self.fold.task_created_min_ms.is_none_or(|m| low < m))
        {
            lowest_moved = SortKey::floor(i64::MIN);
        }
        if let (true, Some((created_min, first_placement))) =
            (fact.event_type == "reservation.created", reservation_created)
        {
            if created_min.is_none_or(|m| fact.occurred_at_ms < m) {
                lowest_moved = lowest_moved.min(SortKey::floor(first_placement));
            }
        }
        self.totals.add(&fact);
        if self.fold.last_key.as_ref().is_none_or(|last| lowest_moved > **last) {
            self.fold_next(conn, fact, key, config)?;
            return Ok(Folding::InOrder);
        }
        let from = self.window.partition_point(|w| *w.key < lowest_moved);
        let fits = match self.window.get(from) {
            // Earlier than the window's first fact: only when nothing came before it, or what
            // did is earlier still.
            Some(first) if from == 0 => {
                first.before.last_key.as_ref().is_none_or(|before| lowest_moved > **before)
            }
            Some(_) => true,
            None => false,
        };
        if !fits {
            return match self.checkpoint_before(&lowest_moved) {
                Some(index) => {
                    self.refold_from_checkpoint(conn, index, fact, config)?;
                    Ok(Folding::Checkpoint)
                }
                None => self.refold_from_log(conn, fact, config),
            };
        }
        self.refold_window(conn, from, fact, config)?;
        Ok(Folding::Window)
    }

    /// The newest checkpoint whose state comes before `lowest_moved`.
    fn checkpoint_before(&self, lowest_moved: &SortKey) -> Option<usize> {
        let starting_before = self.checkpoints.partition_point(|c| *c.first_key < *lowest_moved);
        if starting_before > 0 {
            return Some(starting_before - 1);
        }
        let first = self.checkpoints.front()?;
        first.before.last_key.as_ref().is_none_or(|before| *lowest_moved > **before).then_some(0)
    }

    /// Makes sure the state of reservation `sid` is in memory (reading its row when it is
    /// not), so that `reservations` says whether it exists.
    fn look_up(&mut self, conn: &Connection, sid: &str) -> rusqlite::Result<Found> {
        if self.reservations.contains_key(sid) || self.reservations_complete {
            return Ok(Found::InMemory);
        }
        match store::read_reservation(conn, sid)? {
            Some((task_sid, Some(state))) if task_sid == self.task_sid => {
                self.reservations.insert(sid.to_string(), Some(state));
                Ok(Found::InMemory)
            }
            Some(_) => Ok(Found::FiledElsewhere),
            None => {
                self.reservations.insert(sid.to_string(), None);
                Ok(Found::InMemory)
            }
        }
    }

    fn reservation(&self, sid: &str) -> Option<&ReservationState> {
        self.reservations.get(sid).and_then(Option::as_ref)
    }

    /// Folds `fact`, which comes after everything folded, and remembers how to undo it.
    fn fold_next(
        &mut self,
        conn: &Connection,
        fact: Fact,
        key: SortKey,
        config: &ProjectionConfig,
    ) -> rusqlite::Result<()> {
        let sid = fact.reservation_sid.clone();
        // A reservation filed under another task was caught before any fact was folded.
        let mut slot = match &sid {
            Some(sid) => {
                self.look_up(conn, sid)?;
                self.reservations.remove(sid).flatten()
            }
            None => None,
        };
        let key = Arc::new(key);
        let before = self.fold.clone();
        let reservation_before = sid.as_ref().map(|s| (s.clone(), slot.clone()));
        let emitted = fold::step(&mut self.fold, &mut slot, &fact, Arc::clone(&key), &self.task_sid, config);
        if let Some(sid) = sid {
            if slot.is_some() {
                self.pending.reservations.insert(sid.clone());
            }
            self.reservations.insert(sid, slot);
        }
        self.pending.timeline.insert(emitted.timeline.position, emitted.timeline);
        for (i, flag) in emitted.flags.into_iter().enumerate() {
            self.pending.step_flags.insert(before.step_flags + i as i64, flag);
        }
        let bytes = fact.memory_bytes()
            + before.memory_bytes()
            + reservation_before
                .as_ref()
                .and_then(|(_, r)| r.as_ref())
                .map_or(0, ReservationState::memory_bytes)
            + key.event_type.capacity()
            + 2 * 34;
        self.window_bytes += bytes;
        self.window.push_back(Folded { key, fact, before, reservation_before, bytes });
        let limit = if self.finished { FINISHED_REORDER_WINDOW } else { REORDER_WINDOW };
        while self.window.len() > limit {
            if let Some(oldest) = self.window.pop_front() {
                self.window_bytes -= oldest.bytes;
                if !self.finished {
                    self.keep_checkpointed(oldest);
                }
            }
        }
        if self.finished {
            self.drop_checkpoints();
        }
        Ok(())
    }

    /// Files a fact that left the window under the newest checkpoint (or a new one).
    fn keep_checkpointed(&mut self, folded: Folded) {
        if self.checkpoints.back().is_none_or(|c| c.event_ids.len() >= CHECKPOINT_FACTS) {
            let bytes = std::mem::size_of::<Checkpoint>()
                + folded.before.memory_bytes()
                + folded.key.event_type.capacity()
                + CHECKPOINT_FACTS * std::mem::size_of::<i64>();
            self.checkpoint_bytes += bytes;
            self.checkpoints.push_back(Checkpoint {
                first_key: Arc::clone(&folded.key),
                before: folded.before,
                event_ids: Vec::with_capacity(CHECKPOINT_FACTS),
                reservations_before: HashMap::new(),
                bytes,
            });
        }
        let newest = self.checkpoints.back_mut().expect("one was just ensured");
        newest.event_ids.push(folded.fact.event_id);
        if let Some((sid, before)) = folded.reservation_before {
            if !newest.reservations_before.contains_key(&sid) {
                let bytes = 64 + sid.capacity() + before.as_ref().map_or(0, ReservationState::memory_bytes);
                newest.bytes += bytes;
                self.checkpoint_bytes += bytes;
                newest.reservations_before.insert(sid, before);
            }
        }
        while self.checkpoint_bytes > CHECKPOINT_BYTES {
            let Some(oldest) = self.checkpoints.pop_front() else { break };
            self.checkpoint_bytes -= oldest.bytes;
        }
    }

    fn drop_checkpoints(&mut self) {
        self.checkpoints.clear();
        self.checkpoint_bytes = 0;
    }

    /// Puts reservation `sid` back to its state `before` a fact being undone.
    fn put_back(&mut self, sid: String, before: Option<ReservationState>) {
        if before.is_some() {
            self.pending.reservations.insert(sid.clone());
            self.pending.restored.insert(sid.clone());
        } else {
            self.pending.reservations.remove(&sid);
        }
        self.reservations.insert(sid, before);
    }

    /// Undoes the window and the checkpoints back to the `index`th, reads their facts back
    /// from the log and folds them again with `fact`.
    fn refold_from_checkpoint(
        &mut self,
        conn: &Connection,
        index: usize,
        fact: Fact,
        config: &ProjectionConfig,
    ) -> rusqlite::Result<()> {
        let mut replay = self.undo_window(0);
        let mut ids = Vec::new();
        while self.checkpoints.len() > index {
            let undone = self.checkpoints.pop_back().expect("longer than index");
            self.checkpoint_bytes -= undone.bytes;
            for (sid, before) in undone.reservations_before {
                self.put_back(sid, before);
            }
            self.fold = undone.before;
            ids.extend(undone.event_ids);
        }
        replay.extend(store::read_facts_by_id(conn, &ids)?);
        replay.push(fact);
        self.fold_again(conn, replay, config)
    }

    /// Undoes the window back to its `from`th fact and folds again from there with `fact`.
    fn refold_window(
        &mut self,
        conn: &Connection,
        from: usize,
        fact: Fact,
        config: &ProjectionConfig,
    ) -> rusqlite::Result<()> {
        let mut replay = self.undo_window(from);
        replay.push(fact);
        self.fold_again(conn, replay, config)
    }

    /// Undoes the window back to its `from`th fact, returning the facts undone.
    fn undo_window(&mut self, from: usize) -> Vec<Fact> {
        let mut undone_facts = Vec::with_capacity(self.window.len().saturating_sub(from) + 1);
        while self.window.len() > from {
            let undone = self.window.pop_back().expect("longer than from");
            self.window_bytes -= undone.bytes;
            if let Some((sid, before)) = undone.reservation_before {
                self.put_back(sid, before);
            }
            self.fold = undone.before;
            undone_facts.push(undone.fact);
        }
        undone_facts
    }

    /// Folds `replay` (the facts undone and the new one, in any order) onto the state the
    /// undoing left, in lifecycle order.
    fn fold_again(
        &mut self,
        conn: &Connection,
        replay: Vec<Fact>,
        config: &ProjectionConfig,
    ) -> rusqlite::Result<()> {
        let (folded, step_flags, reservations) =
            (self.fold.folded, self.fold.step_flags, self.fold.reservation_count);
        self.forget_pending_from(folded, step_flags, reservations);
        let (task_created, created) = creation_times(replay.iter());
        let task_created = match (self.fold.task_created_min_ms, task_created) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut keyed = Vec::with_capacity(replay.len());
        for fact in &replay {
            let folded_created = match &fact.reservation_sid {
                Some(sid) => match self.look_up(conn, sid)? {
                    Found::InMemory => self.reservation(sid).and_then(|s| s.created_min_ms),
                    Found::FiledElsewhere => None,
                },
                None => None,
            };
            let replayed_created = fact.reservation_sid.as_deref().and_then(|sid| created.get(sid)).copied();
            let reservation_created = match (folded_created, replayed_created) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            keyed.push(SortKey::of(fact, placement_ms(fact, task_created, reservation_created)));
        }
        let mut order: Vec<usize> = (0..replay.len()).collect();
        order.sort_unstable_by(|a, b| keyed[*a].cmp(&keyed[*b]));
        let mut facts: Vec<Option<Fact>> = replay.into_iter().map(Some).collect();
        for i in order {
            let fact = facts[i].take().expect("each once");
            self.fold_next(conn, fact, keyed[i].clone(), config)?;
        }
        Ok(())
    }

    /// Drops the pending rows a re-fold from the state `at` writes again, and notes which
    /// stored rows it may leave behind.
    fn forget_pending_from(&mut self, folded: i64, step_flags: i64, reservations: i64) {
        self.pending.timeline.split_off(&folded);
        self.pending.step_flags.split_off(&step_flags);
        let from = &mut self.pending.step_flags_from;
        *from = Some(from.map_or(step_flags, |f| f.min(step_flags)));
        let from = &mut self.pending.outcome_flags_from;
        *from = Some(from.map_or(reservations, |f| f.min(reservations)));
    }

    /// Folds the task again from all its facts in the log (those before `fact`) and `fact`.
    fn refold_from_log(
        &mut self,
        conn: &Connection,
        fact: Fact,
        config: &ProjectionConfig,
    ) -> rusqlite::Result<Folding> {
        let mut facts = store::task_facts_before(conn, &self.task_sid, fact.event_id)?;
        facts.push(fact);
        self.fold = TaskFold::default();
        self.totals = Totals::default();
        self.reservations.clear();
        self.reservations_complete = true;
        self.window.clear();
        self.window_bytes = 0;
        self.drop_checkpoints();
        self.needs_refold = false;
        self.pending = Pending { rewrite_all: self.on_disk, ..Pending::default() };
        self.written_missing_created = None;
        self.written_accepted.clear();
        let ordered = lifecycle_order_of(&facts);
        let mut owned: Vec<Option<Fact>> = facts.into_iter().map(Some).collect();
        for (key, i) in ordered {
            let fact = owned[i].take().expect("each once");
            self.totals.add(&fact);
            self.fold_next(conn, fact, key, config)?;
        }
        Ok(Folding::FromLog)
    }

    /// Marks reservation `sid` for writing again (its outcome's words quote a worker's
    /// activity change that just arrived).
    pub fn touch_reservation(&mut self, conn: &Connection, sid: &str) -> rusqlite::Result<()> {
        if self.needs_refold {
            return Ok(());
        }
        if let (Found::InMemory, Some(_)) = (self.look_up(conn, sid)?, self.reservation(sid)) {
            self.pending.reservations.insert(sid.to_string());
            self.dirty = true;
        }
        Ok(())
    }

    /// Writes what changed; afterwards only a few reservation states stay in memory.
    pub fn write(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        let pending = std::mem::take(&mut self.pending);
        let inserting = !self.on_disk || pending.rewrite_all;
        if pending.rewrite_all {
            store::delete_task_rows(conn, &self.task_sid)?;
        }
        let view = self.fold.view(&self.task_sid, &self.totals);
        store::write_task(
            conn,
            &view,
            &self.fold.flag_kinds(),
            &store::task_state_json(&self.fold, &self.totals),
            !self.on_disk,
        )?;
        for sid in &pending.reservations {
            if let Some(Some(state)) = self.reservations.get(sid) {
                store::write_reservation(conn, state, inserting)?;
            }
        }
        store::write_timeline(conn, &self.task_sid, pending.timeline.values(), inserting)?;
        if !inserting {
            if let Some(from) = pending.step_flags_from {
                store::delete_step_flags_from(conn, &self.task_sid, from)?;
            }
            if let Some(from) = pending.outcome_flags_from {
                store::delete_outcome_flags_from(conn, &self.task_sid, from)?;
            }
        }
        for (index, flag) in &pending.step_flags {
            store::write_flag(conn, &self.task_sid, store::step_flag_position(*index), flag)?;
        }
        let mut flagged: BTreeSet<String> = pending.reservations.clone();
        if self.fold.accepted != self.written_accepted {
            // A rescinded reservation's words name the accepted one.
            for sid in store::rescinded_reservations(conn, &self.task_sid)? {
                self.look_up(conn, &sid)?;
                flagged.insert(sid);
            }
            self.reservations
                .iter()
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s.view.status == ReservationStatus::Rescinded))
                .for_each(|(sid, _)| {
                    flagged.insert(sid.clone());
                });
            self.written_accepted = self.fold.accepted.clone();
        }
        for sid in &flagged {
            let Some(Some(state)) = self.reservations.get(sid) else { continue };
            let activity = match (explain::quotes_next_activity(state), state.outcome_at_ms) {
                (true, Some(at)) => store::next_activity(conn, state.view.worker_sid.as_deref(), at)?,
                _ => None,
            };
            let position = store::outcome_flag_position(state.ordinal);
            match explain::outcome_flag(state, &self.fold.accepted, activity.as_ref()) {
                Some(flag) => store::write_flag(conn, &self.task_sid, position, &flag)?,
                None if !inserting && pending.restored.contains(sid) => {
                    store::delete_flag(conn, &self.task_sid, position)?;
                }
                None => {}
            }
        }
        let missing_created = explain::missing_created_flag(&self.fold);
        if self.written_missing_created.as_ref() != Some(&missing_created) || pending.rewrite_all {
            match &missing_created {
                Some(flag) => store::write_flag(conn, &self.task_sid, 0, flag)?,
                None if !inserting => store::delete_flag(conn, &self.task_sid, 0)?,
                None => {}
            }
            self.written_missing_created = Some(missing_created);
        }
        self.on_disk = true;
        self.keep_few_reservations();
        Ok(())
    }

    /// Drops written reservation states beyond the open ones and a few recent ones, and beyond
    /// the newest [`OPEN_RESERVATIONS_KEPT`] open ones: a task offered again and again whose
    /// outcomes never arrive (only its assignment callbacks are delivered) would otherwise keep
    /// every reservation it ever had. Every state dropped is written, and read back if named.
    fn keep_few_reservations(&mut self) {
        if self.reservations.len() <= RESERVATIONS_KEPT {
            return;
        }
        self.reservations.retain(|_, state| state.as_ref().is_some_and(|s| s.view.status.is_live()));
        if self.reservations.len() > OPEN_RESERVATIONS_KEPT {
            let mut ordinals: Vec<i64> =
                self.reservations.values().flatten().map(|state| state.ordinal).collect();
            ordinals.sort_unstable();
            let oldest_kept = ordinals[ordinals.len() - OPEN_RESERVATIONS_KEPT];
            self.reservations.retain(|_, state| state.as_ref().is_some_and(|s| s.ordinal >= oldest_kept));
        }
        self.reservations_complete = false;
    }
}
