//! The benchmark's durable floor: request bodies appended to a one-table SQLite file with the
//! log's own durability (WAL, `synchronous=FULL`, one writer thread, group commit, answered only
//! after COMMIT, checkpoints on another thread) and nothing else: no hash chain, no dedup, no
//! parsing, no index, no projection. Served by `taskrouter-bench tracer serve` (see `reference`)
//! (`POST /webhooks/bench-floor`), it measures what durable SQLite alone allows on the machine
//! at hand, so the benchmark can say how much of the distance from the no-storage baseline is
//! SQLite's and how much is the tracer's own work.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use taskrouter_tracer::storage::checkpointer::CHECKPOINT_INTERVAL;
use taskrouter_tracer::storage::writer::DEFAULT_COMMIT_BATCH as MAX_BATCH;

/// Bodies waiting for the writer at most; past it a request is refused.
const QUEUE_CAPACITY: usize = 16_384;

struct Job {
    body: Vec<u8>,
    reply: oneshot::Sender<Result<(), String>>,
}

/// The handle the floor's route uses to reach its writer thread.
pub struct FloorLog {
    sender: SyncSender<Job>,
}

/// Where the floor keeps its file: beside the log, never the log itself.
pub fn floor_path(database: &Path) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push("-floor");
    PathBuf::from(path)
}

impl FloorLog {
    /// Creates (or reopens) the floor's file and starts its writer and checkpointer.
    ///
    /// # Errors
    /// When the file cannot be opened for writing.
    pub fn start(path: &Path) -> anyhow::Result<Self> {
        let connection = open(path)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, received_at_ms INTEGER NOT NULL, \
             body BLOB NOT NULL)",
        )?;
        let (sender, receiver) = mpsc::sync_channel(QUEUE_CAPACITY);
        let alive = Arc::new(());
        let checkpointer_sees = Arc::downgrade(&alive);
        std::thread::Builder::new().name("floor-writer".into()).spawn(move || {
            let _alive = alive;
            write_batches(connection, &receiver);
        })?;
        let checkpoint_connection = open(path)?;
        std::thread::Builder::new().name("floor-checkpointer".into()).spawn(move || {
            while checkpointer_sees.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                let _ = checkpoint_connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })?;
        Ok(Self { sender })
    }

    /// Stores `body`; returns once it is committed, or why it is not.
    ///
    /// # Errors
    /// The storage error, or that the queue is full or the writer gone.
    pub async fn append(&self, body: Vec<u8>) -> Result<(), String> {
        let (reply, outcome) = oneshot::channel();
        match self.sender.try_send(Job { body, reply }) {
            Ok(()) => outcome.await.unwrap_or_else(|_| Err("the floor's writer has stopped".into())),
            Err(TrySendError::Full(_)) => {
                Err(format!("the floor's queue is full ({QUEUE_CAPACITY} waiting)"))
            }
            Err(TrySendError::Disconnected(_)) => Err("the floor's writer has stopped".into()),
        }
    }
}

/// Rows the floor's file holds (read after a benchmark run, to check it stored what it answered).
///
/// # Errors
/// When the file cannot be read.
pub fn stored_rows(path: &Path) -> rusqlite::Result<u64> {
    let connection = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    connection.query_row("SELECT COUNT(*) FROM bodies", [], |row| row.get(0))
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(connection)
}

fn write_batches(mut connection: Connection, receiver: &mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(job) = receiver.recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit(&mut connection, &batch).map_err(|error| error.to_string());
        for job in batch.drain(..) {
            let _ = job.reply.send(outcome.clone());
        }
    }
}

fn commit(connection: &mut Connection, batch: &[Job]) -> rusqlite::Result<()> {
    let received_at_ms = chrono::Utc::now().timestamp_millis();
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached("INSERT INTO bodies (received_at_ms, body) VALUES (?1, ?2)")?;
        for job in batch {
            insert.execute(rusqlite::params![received_at_ms, job.body])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_committed_before_the_answer_and_counted_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = floor_path(&dir.path().join("log.db"));
        let floor = FloorLog::start(&path).unwrap();
        let answers = futures_util::future::join_all((0..50u8).map(|i| floor.append(vec![i; 1_500]))).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        // A second connection, as the benchmark reads it after the server stopped.
        assert_eq!(stored_rows(&path).unwrap(), 50);
        assert!(path.to_string_lossy().ends_with("log.db-floor"));
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_written_is_an_error_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let error = FloorLog::start(&dir.path().join("missing-directory").join("log.db-floor"));
        assert!(error.is_err());
    }
}
