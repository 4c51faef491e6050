//! Storage faults under the real server: the disk fills (a small tmpfs the test mounts), the
//! file system goes read-only under the running server (an ext4 image on a loop device,
//! aborted as the kernel does on an I/O error), the database file is read-only when the server
//! starts (`chattr +i`), and another process holds the write lock. While a fault lasts, webhooks
//! are answered 503 with Retry-After, never 2xx, and `/healthz` and the pages say what is wrong;
//! when it clears, the service resumes by itself (health clears with no request needed), and
//! every acknowledged request is stored exactly once, nothing else is, the chain verifies and
//! the projections equal a rebuild.
//!
//! Mounting needs root (CI runs as root): without it the mount tests print why and pass.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fixtures::{self, event_sid};
use crate::helpers::{spawn_app_with, TestApp};

fn running_as_root() -> bool {
    // The effective uid is the second field of /proc/self/status's `Uid:` line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} could not run: {e}"))
}

fn run_ok(program: &str, args: &[&str]) {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A file system mounted by the test on a temporary directory, unmounted when dropped.
struct FaultMount {
    mountpoint: PathBuf,
    /// The ext4 image behind an ext4 mount.
    image: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl FaultMount {
    fn skip_unless_root(test: &str) -> bool {
        if running_as_root() {
            return false;
        }
        eprintln!("SKIPPED {test}: mounting a file system needs root (CI runs as root)");
        true
    }

    /// A tmpfs of `size` (e.g. "4m").
    fn tmpfs(test: &str, size: &str) -> Option<Self> {
        if Self::skip_unless_root(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        run_ok(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", mountpoint.to_str().unwrap()],
        );
        Some(Self { mountpoint, image: None, _dir: dir })
    }

    /// An ext4 file system on a loop device that turns read-only on an error, as servers mount
    /// their data disks (`errors=remount-ro`).
    fn ext4(test: &str, megabytes: u64) -> Option<Self> {
        if Self::skip_unless_root(test) {
            return None;
        }
        if !Path::new("/dev/loop-control").exists() {
            eprintln!("SKIPPED {test}: no loop devices here (/dev/loop-control is missing)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image).unwrap().set_len(megabytes << 20).unwrap();
        run_ok("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        let mount = Self { mountpoint, image: Some(image), _dir: dir };
        mount.mount_image();
        Some(mount)
    }

    /// Mounts the image through a loop device of its own: `mount -o loop` would reuse the
    /// device of the lazily unmounted, aborted file system, and with it that file system.
    fn mount_image(&self) {
        let image = self.image.as_ref().expect("an ext4 mount").to_str().unwrap();
        let attached = run("losetup", &["--find", "--show", image]);
        assert!(attached.status.success(), "losetup: {}", String::from_utf8_lossy(&attached.stderr));
        let device = String::from_utf8(attached.stdout).unwrap().trim().to_string();
        run_ok("mount", &["-o", "errors=remount-ro", &device, self.mountpoint.to_str().unwrap()]);
        // Detached by the kernel once unmounted and closed.
        run_ok("losetup", &["--detach", &device]);
    }

    fn database(&self) -> PathBuf {
        self.mountpoint.join("tracer.db")
    }

    /// Writes a filler file until the file system has no room left.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.mountpoint.join("filler")).unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            if let Err(error) = filler.write_all(&chunk) {
                assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
                break;
            }
        }
        // The last bytes, a page at a time.
        while filler.write_all(&chunk[..4096]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.mountpoint.join("filler")).unwrap();
    }

    /// What the kernel does to an `errors=remount-ro` file system on an I/O error: every write
    /// from then on fails with EROFS, also through files already open.
    fn abort(&self) {
        run_ok("mount", &["-o", "remount,abort", self.mountpoint.to_str().unwrap()]);
    }

    /// The repair an operator makes: unmount (lazily: the server still has files open), check
    /// the file system, mount it again at the same place.
    fn repair(&self) {
        run_ok("umount", &["-l", self.mountpoint.to_str().unwrap()]);
        let fsck = run("e2fsck", &["-fy", self.image.as_ref().unwrap().to_str().unwrap()]);
        // 0: clean, 1: errors corrected (the aborted journal).
        assert!(
            matches!(fsck.status.code(), Some(0 | 1)),
            "e2fsck: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        self.mount_image();
    }
}

impl Drop for FaultMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mountpoint).output();
    }
}

/// Posts signed, unique task events and remembers which were acknowledged.
struct Poster {
    next: u64,
    padding: usize,
    acknowledged: Vec<String>,
    refused: Vec<String>,
}

#[derive(Debug, PartialEq)]
enum Answer {
    Stored,
    Refused,
}

impl Poster {
    fn new(padding: usize) -> Self {
        Self { next: 0, padding, acknowledged: Vec::new(), refused: Vec::new() }
    }

    async fn post_sid(&mut self, app: &TestApp, sid: String) -> Answer {
        let n = self.next;
        self.next += 1;
        let mut params =
            fixtures::task_event("task.updated", &sid, 1_700_000_000_000 + n as i64, "attributes updated");
        if self.padding > 0 {
            params.push(("Padding".into(), "p".repeat(self.padding)));
        }
        let response = app.post_signed("/webhooks/events", &params).await;
        let status = response.status().as_u16();
        match status {
            204 => {
                self.acknowledged.push(sid);
                Answer::Stored
            }
            503 => {
                assert_eq!(
                    response.headers().get("retry-after").map(|v| v.to_str().unwrap()),
                    Some("1"),
                    "a 503 tells Twilio when to retry"
                );
                self.refused.push(sid);
                Answer::Refused
            }
            other => {
                panic!("a webhook was answered {other}: only 204 (stored) or 503 (not stored) are allowed")
            }
        }
    }

    async fn post(&mut self, app: &TestApp) -> Answer {
        let sid = event_sid(500_000 + self.next);
        self.post_sid(app, sid).await
    }

    /// Twilio's retries of everything refused; all must now be stored.
    async fn retry_refused(&mut self, app: &TestApp) {
        for sid in std::mem::take(&mut self.refused) {
            assert_eq!(self.post_sid(app, sid).await, Answer::Stored, "a retry after the fault cleared");
        }
    }
}

async fn page(app: &TestApp, path: &str) -> String {
    app.client.get(format!("{}{path}", app.address)).send().await.unwrap().text().await.unwrap()
}

/// `/healthz` and two pages say what is wrong, in words containing `expected`.
async fn assert_fault_is_reported(app: &TestApp, expected: &str) {
    let (status, health) = app.get_json("/healthz").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["writable"], false, "{health}");
    let problem = health["problem"].as_str().unwrap_or_default();
    assert!(problem.contains(expected), "healthz should say {expected:?}: {health}");
    for path in ["/", "/requests"] {
        let html = page(app, path).await;
        assert!(html.contains("Storage problem: "), "{path} has no storage banner");
        assert!(html.contains(expected), "{path}'s banner should say {expected:?}");
        assert!(html.contains("answered 503 until it clears"), "{path}'s banner says what it means");
    }
}

/// Health clears by itself once the fault does: no request is needed.
async fn wait_until_healthy(app: &TestApp) {
    for _ in 0..100 {
        if app.get_json("/healthz").await.0 == 200 {
            let html = page(app, "/").await;
            assert!(!html.contains("Storage problem: "), "the banner is gone once healthy");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health did not clear within 10 s of the fault clearing: {}", app.get_json("/healthz").await.1);
}

/// Every acknowledged request is stored exactly once, nothing else is stored, the chain
/// verifies and the projections equal a rebuild of the log.
async fn assert_nothing_lost_or_half_written(app: &TestApp, poster: &Poster) {
    let connection = rusqlite::Connection::open(&app.database).unwrap();
    let mut count =
        connection.prepare("SELECT COUNT(*) FROM events WHERE event_sid = ?1 AND is_fact = 1").unwrap();
    for sid in &poster.acknowledged {
        assert_eq!(
            count.query_row([sid], |r| r.get::<_, i64>(0)).unwrap(),
            1,
            "acknowledged {sid} stored once"
        );
    }
    let rows: i64 = connection.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(rows as usize, poster.acknowledged.len(), "only acknowledged requests are in the log");
    let report = taskrouter_tracer::storage::event_log::verify(&connection, |_| {}).unwrap();
    assert_eq!(report.first_bad_row, None);
    let comparison = taskrouter_tracer::commands::compare_with_rebuild(
        &app.database,
        &taskrouter_tracer::settings::Settings::for_tests(app.database.clone()).projection,
    )
    .unwrap();
    assert_eq!(comparison.first_difference(10), None, "projections equal a rebuild");
    // The pages read what was stored after the fault, not a stale view.
    let last = poster.acknowledged.last().unwrap();
    let (status, listed) = app.get_json(&format!("/api/requests?sid={last}")).await;
    assert_eq!(status, 200);
    assert_eq!(listed["requests"].as_array().map(Vec::len), Some(1), "the newest row is listed: {listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_answered_503_and_service_resumes_when_space_returns() {
    let Some(mount) = FaultMount::tmpfs("disk_full", "6m") else { return };
    let database = mount.database();
    let app = spawn_app_with(|args| args.database = database).await;
    let mut poster = Poster::new(20_000);
    for _ in 0..5 {
        assert_eq!(poster.post(&app).await, Answer::Stored);
    }

    mount.fill();
    // The WAL may still have room for a few rows (they are stored, and acknowledged); then
    // every write needs space there is not.
    let mut first_refusal = None;
    for i in 0..400 {
        if poster.post(&app).await == Answer::Refused {
            first_refusal = Some(i);
            break;
        }
    }
    assert!(first_refusal.is_some(), "400 posts of 20 KB fitted on a full disk");
    for _ in 0..3 {
        assert_eq!(poster.post(&app).await, Answer::Refused, "refused while the disk stays full");
    }
    assert_fault_is_reported(&app, "disk is full").await;
    // The health probe keeps reporting it while the disk stays full.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_fault_is_reported(&app, "disk is full").await;

    mount.free();
    wait_until_healthy(&app).await;
    poster.retry_refused(&app).await;
    for _ in 0..5 {
        assert_eq!(poster.post(&app).await, Answer::Stored);
    }
    assert_nothing_lost_or_half_written(&app, &poster).await;
    eprintln!(
        "disk full: {} acknowledged (of which {} stored on the full disk before the first 503)",
        poster.acknowledged.len(),
        first_refusal.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_gone_read_only_is_answered_503_and_service_resumes_after_repair() {
    let Some(mount) = FaultMount::ext4("read_only_file_system", 32) else { return };
    let database = mount.database();
    let app = spawn_app_with(|args| args.database = database).await;
    let mut poster = Poster::new(0);
    for _ in 0..5 {
        assert_eq!(poster.post(&app).await, Answer::Stored);
    }

    mount.abort();
    for _ in 0..4 {
        assert_eq!(poster.post(&app).await, Answer::Refused, "nothing is acknowledged on a read-only disk");
    }
    assert_fault_is_reported(&app, "read-only").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_fault_is_reported(&app, "read-only").await;

    mount.repair();
    wait_until_healthy(&app).await;
    poster.retry_refused(&app).await;
    for _ in 0..5 {
        assert_eq!(poster.post(&app).await, Answer::Stored);
    }
    assert_nothing_lost_or_half_written(&app, &poster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_file_is_answered_503_and_service_resumes_when_writable() {
    let Some(mount) = FaultMount::tmpfs("read_only_file", "16m") else { return };
    let database = mount.database();
    let mut poster = Poster::new(0);
    {
        let app = spawn_app_with(|args| args.database = database.clone()).await;
        for _ in 0..3 {
            assert_eq!(poster.post(&app).await, Answer::Stored);
        }
        app.stop().await;
    }
    // Let the stopped server's checkpointer (it wakes every 500 ms) close its connection: while
    // one connection of a process holds the file, SQLite keeps the others' closed read-write
    // descriptors and hands them to the next open, which would then write past `chattr +i`.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    // The database file cannot be written, even by root. (Only the file: SQLite shares one
    // mapping of the WAL's shared-memory file per process, and one opened read-only stays so
    // until every connection closes; see the README.)
    let file = database.to_str().unwrap().to_string();
    let immutable = |flag: &str| run_ok("chattr", &[flag, &file]);
    immutable("+i");
    let app = spawn_app_with(|args| args.database = database.clone()).await;
    for _ in 0..3 {
        assert_eq!(poster.post(&app).await, Answer::Refused, "nothing is acknowledged into a read-only file");
    }
    assert_fault_is_reported(&app, "read-only").await;

    immutable("-i");
    wait_until_healthy(&app).await;
    poster.retry_refused(&app).await;
    assert_eq!(poster.post(&app).await, Answer::Stored);
    assert_nothing_lost_or_half_written(&app, &poster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_by_another_process_is_answered_503_and_service_resumes() {
    let app = spawn_app_with(|args| args.busy_timeout_ms = 200).await;
    let mut poster = Poster::new(0);
    assert_eq!(poster.post(&app).await, Answer::Stored);

    // Another process holds the write lock past the busy timeout.
    let blocker = rusqlite::Connection::open(&app.database).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    for _ in 0..3 {
        assert_eq!(poster.post(&app).await, Answer::Refused);
    }
    assert_fault_is_reported(&app, "locked by another process").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_fault_is_reported(&app, "locked by another process").await;
    blocker.execute_batch("ROLLBACK;").unwrap();

    // The lock is gone: health clears by itself, and Twilio's retries are stored once each.
    wait_until_healthy(&app).await;
    poster.retry_refused(&app).await;
    assert_eq!(poster.post(&app).await, Answer::Stored);
    assert_nothing_lost_or_half_written(&app, &poster).await;
}
