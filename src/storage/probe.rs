//! Whether the database's files could take a write right now. The writer asks while it is
//! failing, so `/healthz` and the pages' banner clear by themselves once the fault does (the
//! disk has room again, the file system is writable again), without waiting for the next
//! webhook. The probe never touches the log: it asks whether the files may be written, and
//! writes and removes a scratch file beside them. It never opens the database's own files:
//! closing a descriptor of a file drops every POSIX lock the process holds on it, SQLite's
//! included.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Room the scratch file claims: about what a large group commit appends to the WAL.
const PROBE_BYTES: usize = 256 * 1024;

/// `Ok` when the database file, its WAL and shared-memory files can be opened for writing and
/// their directory has room for a write; else what is wrong, in plain words.
///
/// # Errors
/// A sentence naming the fault (read-only, not writable, disk full).
pub fn files_writable(database: &Path) -> Result<(), String> {
    for path in [database.to_path_buf(), with_suffix(database, "-wal"), with_suffix(database, "-shm")] {
        if !path.exists() {
            continue;
        }
        may_write(&path).map_err(|error| explain(&path, &error))?;
    }
    let scratch = with_suffix(database, "-write-probe");
    let written =
        OpenOptions::new().write(true).create(true).truncate(true).open(&scratch).and_then(|mut file| {
            file.write_all(&[0u8; PROBE_BYTES])?;
            file.sync_all()
        });
    // Removed whatever happened: a half-written scratch file must not keep the disk full.
    let _ = std::fs::remove_file(&scratch);
    written.map_err(|error| explain(&scratch, &error))
}

/// Whether the process may write `path` now (permissions, the immutable attribute, a file
/// system mounted read-only), asked without opening it.
fn may_write(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
    // SAFETY: a valid, NUL-terminated path; access(2) only reads it.
    if unsafe { libc::access(name.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn explain(path: &Path, error: &std::io::Error) -> String {
    let what = match error.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => "the disk is full",
        ErrorKind::ReadOnlyFilesystem => "the database is read-only (its file system is mounted read-only)",
        ErrorKind::PermissionDenied => {
            "the database is read-only (its files cannot be opened for writing: permissions or the immutable attribute)"
        }
        _ => "the database's files cannot be written",
    };
    format!("{what} ({}: {error})", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_passes_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("log.db");
        std::fs::write(&database, b"").unwrap();
        assert_eq!(files_writable(&database), Ok(()));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("log.db")]);
    }

    #[test]
    fn a_missing_directory_is_reported() {
        let problem = files_writable(Path::new("/nonexistent-dir/log.db")).unwrap_err();
        assert!(problem.contains("/nonexistent-dir/log.db-write-probe"), "{problem}");
    }
}
