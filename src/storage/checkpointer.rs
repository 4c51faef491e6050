//! The checkpointer: a thread of its own copying the WAL into the database file, so that a
//! commit never waits for a checkpoint, and the WAL restart the writer runs between two
//! transactions once the WAL has grown past its limit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::metrics::Metrics;

/// How often the checkpointer copies committed WAL frames into the database file.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// WAL frames (4 KiB pages) past which, by default, the WAL is started again from its
/// beginning (1 GiB). Under sustained writes a PASSIVE checkpoint never catches up with the
/// end of the WAL, so SQLite never starts it again by itself: the file and its shared-memory
/// index (mapped into our RSS, 8 bytes a frame) would grow for as long as the load lasts.
pub const DEFAULT_WAL_RESTART_FRAMES: i64 = 262_144;
/// How often the writer may try a restart that found a reader in its way.
const WAL_RESTART_RETRY: Duration = Duration::from_millis(100);

/// Between the checkpointer, which sees how long the WAL is, and the writer, which restarts it.
#[derive(Default)]
pub(super) struct WalRestart {
    wanted: AtomicBool,
}

/// Copies the WAL into the database file in the background, so the writer never pays for it,
/// and says when the WAL has grown past `restart_frames` (the writer then restarts it between
/// two transactions, see [`restart_wal`]). Stops when the writer stops. Its connection is
/// reopened when a checkpoint fails or the path names another file (a file system mounted
/// again after a fault), so it keeps checkpointing the file the writer writes.
pub(super) fn checkpoint_loop(
    path: PathBuf,
    restart_frames: i64,
    restart: Arc<WalRestart>,
    writer_alive: std::sync::Weak<()>,
    metrics: Arc<Metrics>,
) {
    // No busy timeout (rusqlite's default is 5 s): a checkpoint that finds a lock taken does
    // what it can and returns.
    let open = || {
        let connection = Connection::open(&path).ok()?;
        connection.busy_timeout(Duration::ZERO).ok()?;
        Some((connection, super::file_identity(&path)))
    };
    let mut current = open();
    let mut state = CheckpointState { database: path.clone(), ..CheckpointState::default() };
    while writer_alive.upgrade().is_some() {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        let checkpointed = current.as_ref().is_some_and(|(connection, identity)| {
            *identity == super::file_identity(&path)
                && checkpoint(connection, restart_frames, &restart, &mut state, &metrics).is_ok()
        });
        if !checkpointed {
            current = open();
        }
    }
}

/// Rounds of the checkpointer with no write in between after which the WAL file is cut back
/// to nothing (5 s). Sooner would cost the writer: a WAL file that must grow again makes every
/// commit's sync also write the file's new size.
const IDLE_ROUNDS_BEFORE_TRUNCATE: u32 = 10;

/// What the checkpointer remembers between rounds.
#[derive(Default)]
struct CheckpointState {
    database: PathBuf,
    last_wal_frames: i64,
    last_copied: i64,
    idle_rounds: u32,
}

/// Asks the kernel to start writing the database file's dirty pages now, without waiting for
/// them or flushing the disk's cache: the pages each checkpoint copies then reach the disk in
/// the background, and the sync a WAL restart needs finds little left to write instead of
/// everything copied since the last one (which stalled the writer).
fn start_writeback(database: &Path) {
    #[cfg(target_os = "linux")]
    if let Some(fd) = kept_open(database) {
        // SAFETY: a descriptor that stays open for the life of the process; the call only
        // starts write-out of the file's pages.
        unsafe {
            libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = database;
}

/// A read-only descriptor of the database file that is never closed. Closing any descriptor of
/// a file drops every POSIX lock the process holds on it, SQLite's included: another process
/// would then take itself for the last connection, checkpoint and delete the WAL the writer is
/// still appending to, and rows acknowledged afterwards would be lost with it. So each file (by
/// device and inode, a replaced file getting one of its own) is opened once and kept.
#[cfg(target_os = "linux")]
fn kept_open(database: &Path) -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::MetadataExt as _;
    static KEPT: std::sync::Mutex<Vec<((u64, u64), std::fs::File)>> = std::sync::Mutex::new(Vec::new());
    let metadata = std::fs::metadata(database).ok()?;
    let identity = (metadata.dev(), metadata.ino());
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, file)) = kept.iter().find(|(id, _)| *id == identity) {
        return Some(file.as_raw_fd());
    }
    let file = std::fs::File::open(database).ok()?;
    let fd = file.as_raw_fd();
    kept.push((identity, file));
    Some(fd)
}

/// One round of the checkpointer: a PASSIVE checkpoint (it never blocks the writer or a
/// reader). Once the WAL has been entirely copied and unchanged for
/// [`IDLE_ROUNDS_BEFORE_TRUNCATE`] rounds, a TRUNCATE gives its disk space back (taking its
/// locks only if free at that instant).
fn checkpoint(
    connection: &Connection,
    restart_frames: i64,
    restart: &WalRestart,
    state: &mut CheckpointState,
    metrics: &Metrics,
) -> rusqlite::Result<()> {
    let (wal_frames, copied): (i64, i64) =
        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get(1)?, row.get(2)?)))?;
    metrics.wal_frames.store(wal_frames.max(0) as u64, Ordering::Relaxed);
    if wal_frames > restart_frames {
        restart.wanted.store(true, Ordering::Relaxed);
    }
    if copied > state.last_copied {
        start_writeback(&state.database);
    }
    state.last_copied = copied;
    let idle = wal_frames > 0 && copied == wal_frames && wal_frames == state.last_wal_frames;
    state.idle_rounds = if idle { state.idle_rounds + 1 } else { 0 };
    state.last_wal_frames = wal_frames;
    if state.idle_rounds >= IDLE_ROUNDS_BEFORE_TRUNCATE {
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        state.idle_rounds = 0;
    }
    Ok(())
}

/// Restarts the WAL when the checkpointer asked for it: called by the writer between two
/// transactions, so the lock it needs is free and the RESTART checkpoint only has the frames
/// of the last few milliseconds to copy (the checkpointer copied the rest). It does not wait
/// for readers of older frames: with one in the way it gives up and is tried again after
/// [`WAL_RESTART_RETRY`]. Costs the writer the copy and one sync of the database file.
pub(super) fn restart_wal(
    connection: &Connection,
    restart: &WalRestart,
    last_attempt: &mut Option<Instant>,
    busy_timeout: Duration,
    metrics: &Metrics,
) {
    if !restart.wanted.load(Ordering::Relaxed)
        || last_attempt.is_some_and(|at| at.elapsed() < WAL_RESTART_RETRY)
    {
        return;
    }
    *last_attempt = Some(Instant::now());
    let started = Instant::now();
    let attempt = connection.busy_timeout(Duration::ZERO).and_then(|()| {
        connection.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
    });
    let _ = connection.busy_timeout(busy_timeout);
    match attempt {
        Ok((0, wal_frames)) => {
            restart.wanted.store(false, Ordering::Relaxed);
            metrics.wal_restarts.fetch_add(1, Ordering::Relaxed);
            metrics.wal_frames.store(wal_frames.max(0) as u64, Ordering::Relaxed);
            tracing::debug!(wal_frames, took = ?started.elapsed(), "WAL restarted");
        }
        Ok(_) => tracing::debug!(took = ?started.elapsed(), "WAL restart put off: a reader is on old frames"),
        Err(error) => tracing::debug!(%error, "WAL restart failed"),
    }
}
