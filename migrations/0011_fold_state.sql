-- Projections folded one fact at a time (src/projections/task_entry.rs): each task and each
-- reservation keeps the fold's state beside its row, so a task that left memory is restored
-- from it instead of being folded again from its whole history in the log. Outcome flags are
-- written per reservation, so a worker's activity change names the reservation it explains.
-- Projections are derived data: the row in `maintenance` makes the next start rebuild them.

ALTER TABLE proj_tasks ADD COLUMN fold_state TEXT;
ALTER TABLE proj_reservations ADD COLUMN fold_state TEXT;

DROP TABLE proj_worker_outcomes;
CREATE TABLE proj_worker_outcomes (
    worker_sid      TEXT    NOT NULL,
    at_ms           INTEGER NOT NULL,
    task_sid        TEXT    NOT NULL,
    reservation_sid TEXT    NOT NULL,
    PRIMARY KEY (worker_sid, at_ms, task_sid, reservation_sid)
) WITHOUT ROWID;

INSERT OR REPLACE INTO maintenance (key, reason) VALUES
    ('rebuild_projections', 'the projections were made by an older version (fold state added)');
