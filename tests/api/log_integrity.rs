//! The log refuses changes, and `verify` catches changes made behind the triggers' back.

use std::process::Command;

use crate::fixtures::{self, event_sid};
use crate::helpers::spawn_app;

async fn app_with_rows(n: u64) -> crate::helpers::TestApp {
    let app = spawn_app().await;
    for i in 0..n {
        let event =
            fixtures::task_event("task.updated", &event_sid(500 + i), 1_700_000_000_000 + i as i64, "u");
        assert_eq!(app.post_signed("/webhooks/events", &event).await.status().as_u16(), 204);
    }
    app
}

#[tokio::test]
async fn update_and_delete_on_the_log_fail() {
    let app = app_with_rows(3).await;
    let connection = tamper(&app.database);
    let update = connection.execute("UPDATE events SET response_status = 200 WHERE id = 1", []);
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = connection.execute("DELETE FROM events WHERE id = 2", []);
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    assert_eq!(app.count("SELECT COUNT(*) FROM events"), 3);
}

/// A connection of another process's kind, editing the file behind the server's back: it waits
/// for the server's write lock (the writer and its checkpointer hold it now and then).
fn tamper(database: &std::path::Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(database).unwrap();
    connection.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    connection
}

fn verify_command(database: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_taskrouter-tracer"))
        .args(["verify", "--database"])
        .arg(database)
        .output()
        .expect("verify runs")
}

#[tokio::test]
async fn verify_passes_on_an_intact_log_and_names_the_first_edited_row() {
    let app = app_with_rows(4).await;
    let intact = verify_command(&app.database);
    let stdout = String::from_utf8_lossy(&intact.stdout);
    assert!(intact.status.success(), "{stdout}");
    assert!(stdout.contains("rows checked: 4"), "{stdout}");
    assert!(stdout.contains("chain intact"));

    // Edit row 3 behind the triggers' back.
    let connection = tamper(&app.database);
    connection.execute_batch("DROP TRIGGER events_reject_update;").unwrap();
    connection
        .execute("UPDATE events SET body = CAST('EventType=task.completed' AS BLOB) WHERE id = 3", [])
        .unwrap();
    drop(connection);

    let tampered = verify_command(&app.database);
    let stdout = String::from_utf8_lossy(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("TAMPERED: row 3"), "{stdout}");
}

#[tokio::test]
async fn a_removed_row_is_caught_by_verify() {
    let app = app_with_rows(3).await;
    let connection = tamper(&app.database);
    connection.execute_batch("DROP TRIGGER events_reject_delete; DELETE FROM events WHERE id = 2;").unwrap();
    drop(connection);
    let output = verify_command(&app.database);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("TAMPERED: row 3"), "{stdout}");
}
