-- Settings changed from the pages without a restart (kept beside the log, not in it; each
-- change is also recorded in the log as an action).

-- How assignment callbacks are answered: `scope` is `global`, `queue` or `workflow`; `target` is
-- '' for global, else the WQ…/WW… SID; `answer` is the JSON body answered.
CREATE TABLE assignment_instructions (
    scope           TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    answer          TEXT    NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (scope, target)
) WITHOUT ROWID;

-- The dashboard's signature-failure count, without scanning the log: only bad rows are indexed.
CREATE INDEX events_bad_signature ON events (id) WHERE signature_verdict IN ('invalid', 'missing');
