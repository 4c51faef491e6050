-- Projections folded incrementally in memory (src/projections/engine.rs) instead of re-read from
-- a JSON copy of every fact: `proj_facts` goes (a task's facts are re-read from `events` when it
-- is not in memory), and the worker tables gain what used to be looked up there.
-- Projections are derived data: the row in `maintenance` makes the next start rebuild them.

DROP TABLE proj_facts;

-- Activity changes carry their own event type and worker name, which timeout and rejection
-- explanations quote.
ALTER TABLE proj_worker_activity ADD COLUMN event_type TEXT;
ALTER TABLE proj_worker_activity ADD COLUMN worker_name TEXT;

-- The latest named fact's position, so a worker's name follows the newest fact in any order.
ALTER TABLE proj_workers ADD COLUMN name_at_ms INTEGER;
ALTER TABLE proj_workers ADD COLUMN name_event_id INTEGER;

-- Timeouts and rejections by worker and time: which tasks a worker's next activity change
-- explains.
CREATE TABLE proj_worker_outcomes (
    worker_sid  TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    task_sid    TEXT    NOT NULL,
    PRIMARY KEY (worker_sid, at_ms, task_sid)
) WITHOUT ROWID;

-- Single projection-wide values; `latest_event_ms` is the newest TaskRouter time seen, which
-- "overdue" is judged against.
CREATE TABLE proj_meta (
    key     TEXT    PRIMARY KEY,
    value   INTEGER NOT NULL
) WITHOUT ROWID;

-- Work the next start must do before serving (not projection data: never cleared by a rebuild).
CREATE TABLE maintenance (
    key     TEXT    PRIMARY KEY,
    reason  TEXT    NOT NULL
) WITHOUT ROWID;
INSERT INTO maintenance (key, reason) VALUES
    ('rebuild_projections', 'the projections were made by an older version (proj_facts removed)');
