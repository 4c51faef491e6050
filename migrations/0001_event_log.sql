-- The append-only, hash-chained log of everything the tracer received or did.
-- Never edit a migration once it has been applied; add a new one.

CREATE TABLE events (
    id                  INTEGER PRIMARY KEY,     -- log position; never reused (rows are never deleted)
    kind                TEXT    NOT NULL,        -- 'webhook' | 'action' | 'replay'
    received_at_ms      INTEGER NOT NULL,        -- our clock, epoch ms
    endpoint            TEXT    NOT NULL,        -- 'assignment' | 'events' | an action's name
    method              TEXT    NOT NULL,
    path                TEXT    NOT NULL,        -- path and query as called
    headers             TEXT    NOT NULL,        -- JSON array of [name, value]; Authorization redacted
    body                BLOB    NOT NULL,        -- raw bytes (the first body_limit bytes when truncated)
    body_truncated      INTEGER NOT NULL,
    remote_addr         TEXT,
    signature_verdict   TEXT    NOT NULL,        -- valid | invalid | missing | unchecked
    signature_detail    TEXT,
    rejection           TEXT,                    -- why this is not a TaskRouter fact, if it is not
    response_status     INTEGER NOT NULL,        -- what we answered (or, for actions, what Twilio answered)
    response_body       TEXT,
    upstream            TEXT,                    -- JSON: a forward target's or Twilio's answer
    related_to          INTEGER,                 -- the row a replay or action refers to
    duplicate_of        INTEGER,                 -- the first delivery of the same fact
    is_fact             INTEGER NOT NULL,        -- 1 when projections consumed it
    event_type          TEXT,
    event_sid           TEXT,
    account_sid         TEXT,
    workspace_sid       TEXT,
    task_sid            TEXT,
    reservation_sid     TEXT,
    worker_sid          TEXT,
    task_queue_sid      TEXT,
    workflow_sid        TEXT,
    occurred_at_ms      INTEGER,
    occurred_at_raw     TEXT,
    occurred_at_source  TEXT,
    idempotency_token   TEXT,
    hash                BLOB    NOT NULL         -- SHA-256(previous row's hash || canonical row)
);

CREATE TRIGGER events_reject_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events is append-only: UPDATE is not allowed'); END;

CREATE TRIGGER events_reject_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events is append-only: DELETE is not allowed'); END;

-- Keys identifying a delivery (event Sid, idempotency token, endpoint+body hash), so a re-delivery
-- is recognised in O(log n) without indexing the log itself.
CREATE TABLE delivery_keys (
    key       BLOB    PRIMARY KEY,               -- first 16 bytes of SHA-256 of the tagged key
    first_id  INTEGER NOT NULL
) WITHOUT ROWID;

-- How long each request took to answer, from arrival to commit. Written after the commit it
-- measures, so it lives beside the chain rather than in it.
CREATE TABLE response_times (
    event_id     INTEGER PRIMARY KEY,
    handling_us  INTEGER NOT NULL
);
