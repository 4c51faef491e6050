//! Everything that talks SQL: opening the database, migrations, the single writer, and the
//! read queries pages and APIs use. No SQL lives outside this module and `projections`' own
//! storage code, so the store can later move to a shared server.

pub mod append;
pub mod checkpointer;
pub mod connections;
pub mod event_log;
pub mod follower;
pub mod log_summary;
pub mod payload;
pub mod probe;
pub mod progress;
pub mod requests;
pub mod settings;
pub mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Applies every migration to a fresh database through a plain connection (for tests and
/// tools that build databases without the async pool; no migration bookkeeping is written).
///
/// # Errors
/// Any SQLite error.
pub fn apply_schema(connection: &rusqlite::Connection) -> rusqlite::Result<()> {
    for migration in MIGRATOR.iter() {
        connection.execute_batch(&migration.sql)?;
    }
    Ok(())
}

/// The read side: a small pool of connections for pages and APIs (WAL lets them read while
/// the writer writes).
#[derive(Clone)]
pub struct ReadStore {
    pub pool: SqlitePool,
    pub path: PathBuf,
}

/// Creates the database if needed, applies the embedded migrations and opens the read pool.
///
/// # Errors
/// When the file cannot be created or opened, or a migration fails.
pub async fn open(path: &Path) -> anyhow::Result<ReadStore> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let replaced = ReplacementWatch::new(path);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        // A connection to a file that has since been replaced (its file system repaired and
        // mounted again, a backup restored) would show a frozen past: drop it.
        .before_acquire(move |_, meta| {
            let keep = replaced.opened_on_current_file(meta.age);
            Box::pin(async move { Ok(keep) })
        })
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(ReadStore { pool, path: path.to_path_buf() })
}

/// Opens a plain connection for maintenance commands (`verify`, `rebuild`), after making sure
/// the schema is current.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_maintenance(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let store = open(path).await?;
    store.pool.close().await;
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(30))?;
    Ok(connection)
}

/// A file's device and inode.
pub type FileIdentity = (u64, u64);

/// Which file a path names right now; `None` when it cannot be read.
pub fn file_identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Notices when the database path starts naming another file, and when.
struct ReplacementWatch {
    path: PathBuf,
    /// The file last seen, and when it was first seen replacing another.
    seen: std::sync::Mutex<(Option<FileIdentity>, Option<std::time::Instant>)>,
}

impl ReplacementWatch {
    fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), seen: std::sync::Mutex::new((file_identity(path), None)) }
    }

    /// Whether a connection opened `age` ago was opened on the file the path names now.
    fn opened_on_current_file(&self, age: Duration) -> bool {
        let now = file_identity(&self.path);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_some() && now != seen.0 {
            *seen = (now, Some(std::time::Instant::now()));
        }
        seen.1.is_none_or(|replaced_at| age < replaced_at.elapsed())
    }
}

/// Bytes of memory SQLite holds in this process (every connection's page cache, prepared
/// statements, sorters), for `/metrics`.
pub fn sqlite_memory_bytes() -> u64 {
    // SAFETY: `sqlite3_memory_used` takes no arguments and only reads SQLite's own counter,
    // which is safe to call from any thread at any time.
    let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    u64::try_from(used).unwrap_or(0)
}

/// Bytes used by the database file and its WAL.
pub fn database_bytes(path: &Path) -> u64 {
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path.to_path_buf()) + size(PathBuf::from(wal))
}
