//! Read models derived only from the log (tasks, reservations, workers, timelines), updated in
//! the writer's transaction for every new fact and rebuildable from the log at any time.
//!
//! Projections are pure folds plus a thin SQL shell: nothing here reads the clock, draws
//! random numbers or calls out, so a rebuild yields exactly what incremental updates did.

use crate::storage::event_log::NewRecord;

/// Applies one newly appended fact (log row `id`) to every projection, inside the writer's
/// transaction.
///
/// # Errors
/// Any SQLite error; the whole transaction, the append included, is then rolled back.
pub fn apply(_tx: &rusqlite::Transaction<'_>, _id: i64, _record: &NewRecord) -> rusqlite::Result<()> {
    Ok(())
}
