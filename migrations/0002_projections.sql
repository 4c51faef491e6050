-- Read models derived only from the log (see src/projections). Every row here can be thrown
-- away and rebuilt from `events` with `taskrouter-tracer rebuild`; nothing here is evidence.

-- Every fact the projections consumed, typed and keyed so a task's or a worker's facts can be
-- re-folded without re-parsing the log. `fact` is the JSON of projections::fact::Fact.
CREATE TABLE proj_facts (
    event_id        INTEGER PRIMARY KEY,         -- the log row (events.id) this fact came from
    task_sid        TEXT,
    worker_sid      TEXT,
    worker_name     TEXT,
    event_type      TEXT    NOT NULL,
    occurred_at_ms  INTEGER NOT NULL,
    timed_by_arrival INTEGER NOT NULL,           -- 1 when our arrival time stands in (assignment callbacks)
    fact            TEXT    NOT NULL
);
CREATE INDEX proj_facts_task ON proj_facts (task_sid) WHERE task_sid IS NOT NULL;
CREATE INDEX proj_facts_worker ON proj_facts (worker_sid, occurred_at_ms, event_id) WHERE worker_sid IS NOT NULL;
-- The latest TaskRouter time seen, which "overdue" is judged against.
CREATE INDEX proj_facts_time ON proj_facts (occurred_at_ms) WHERE timed_by_arrival = 0;

CREATE TABLE proj_tasks (
    task_sid            TEXT    PRIMARY KEY,
    status              TEXT    NOT NULL,    -- pending | reserved | assigned | wrapping | completed | canceled
    workflow_sid        TEXT,
    workflow_name       TEXT,
    task_queue_sid      TEXT,
    task_queue_name     TEXT,
    priority            INTEGER,
    attributes          TEXT,                -- TaskAttributes as last seen (a JSON string)
    created_at_ms       INTEGER,
    first_reserved_at_ms INTEGER,
    assigned_at_ms      INTEGER,
    finished_at_ms      INTEGER,
    cancel_cause        TEXT,                -- api | ttl | workflow-timeout | workflow-skipped | a TaskCanceledReason
    deleted             INTEGER NOT NULL,
    reservation_count   INTEGER NOT NULL,
    transfer_count      INTEGER NOT NULL,
    first_fact_at_ms    INTEGER NOT NULL,
    last_fact_at_ms     INTEGER NOT NULL,
    fact_count          INTEGER NOT NULL,
    flag_kinds          TEXT    NOT NULL     -- ',kind,kind,' for filtering; details in proj_flags
);
CREATE INDEX proj_tasks_first ON proj_tasks (first_fact_at_ms, task_sid);

CREATE TABLE proj_reservations (
    reservation_sid     TEXT    PRIMARY KEY,
    task_sid            TEXT    NOT NULL,
    worker_sid          TEXT,
    worker_name         TEXT,
    status              TEXT    NOT NULL,    -- pending | accepted | rejected | timeout | canceled | rescinded | wrapping | completed | failed
    created_at_ms       INTEGER,
    answered_at_ms      INTEGER,             -- when it left pending
    finished_at_ms      INTEGER,
    pending_ms          INTEGER,             -- answered_at_ms - created_at_ms
    timeout_ms          INTEGER NOT NULL,    -- the reservation timeout that applied
    created_event_id    INTEGER,
    callback_event_id   INTEGER,             -- the assignment callback row
    callback_answer     TEXT,                -- what we answered it
    outcome             TEXT                 -- plain-language outcome
);
CREATE INDEX proj_reservations_task ON proj_reservations (task_sid);
CREATE INDEX proj_reservations_worker ON proj_reservations (worker_sid);

CREATE TABLE proj_timeline (
    task_sid        TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    occurred_at_ms  INTEGER NOT NULL,
    time_source     TEXT    NOT NULL,        -- event | arrival (assignment callbacks carry no time)
    kind            TEXT    NOT NULL,        -- the event type, or 'assignment'
    reservation_sid TEXT,
    worker_sid      TEXT,
    summary         TEXT    NOT NULL,
    evidence        TEXT    NOT NULL,        -- JSON array of events.id
    PRIMARY KEY (task_sid, position)
) WITHOUT ROWID;

CREATE TABLE proj_flags (
    task_sid        TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    reservation_sid TEXT,
    explanation     TEXT    NOT NULL,
    evidence        TEXT    NOT NULL,        -- JSON array of events.id
    PRIMARY KEY (task_sid, position)
) WITHOUT ROWID;

CREATE TABLE proj_workers (
    worker_sid          TEXT    PRIMARY KEY,
    name                TEXT,
    activity_sid        TEXT,
    activity_name       TEXT,
    activity_since_ms   INTEGER,
    activity_event_id   INTEGER
);

-- One row per activity change; durations are the gaps between consecutive rows (read time).
CREATE TABLE proj_worker_activity (
    worker_sid      TEXT    NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,
    activity_sid    TEXT,
    activity_name   TEXT,
    previous_activity_name TEXT,
    reported_previous_ms   INTEGER,          -- WorkerTimeInPreviousActivityMs as TaskRouter reported it
    PRIMARY KEY (worker_sid, started_at_ms, event_id)
) WITHOUT ROWID;
