-- Lookups for the request inspector, kept beside the log rather than as indexes on it.

-- Every SID a row names (event, task, reservation, worker, queue, workflow), by an 8-byte key
-- (the first bytes of SHA-256 of the SID; matches are re-checked against the row's columns).
CREATE TABLE sid_refs (
    sid_key   INTEGER NOT NULL,
    event_id  INTEGER NOT NULL,
    PRIMARY KEY (sid_key, event_id)
) WITHOUT ROWID;

-- Replays and actions point back at the row they concern; almost every row has none.
CREATE INDEX events_related_to ON events (related_to) WHERE related_to IS NOT NULL;
