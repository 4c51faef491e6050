-- Alerts (src/alerts): operational state beside the log, not in it. What was sent is evidence
-- and goes into the log as `alert` rows; these tables only remember what must not be sent
-- twice, what is still to be delivered, and the settings. A rebuild never touches them.

-- Which alert kinds are switched off (a kind with no row is on), and other small settings.
CREATE TABLE alert_settings (
    key     TEXT    PRIMARY KEY,
    value   TEXT    NOT NULL
) WITHOUT ROWID;

-- Alert webhooks added on /settings (those given with --alert-webhook are not stored).
CREATE TABLE alert_webhooks (
    url             TEXT    PRIMARY KEY,
    added_at_ms     INTEGER NOT NULL
) WITHOUT ROWID;

-- Threshold rules: the reservation timeout rate of a task queue or worker (`scope`; `target`
-- '' for every one) over the last `window_minutes`, above `percent`, once at least
-- `min_reservations` waited on an answer.
CREATE TABLE alert_rules (
    id                  INTEGER PRIMARY KEY,
    scope               TEXT    NOT NULL,
    target              TEXT    NOT NULL,
    percent             REAL    NOT NULL,
    window_minutes      INTEGER NOT NULL,
    min_reservations    INTEGER NOT NULL,
    created_at_ms       INTEGER NOT NULL
);

-- What was alerted, keyed by kind and subject (a reservation, a rule and what it measures), so
-- a duplicate, a replay, an import, a rebuild or a restart never alerts again. `status` is
-- `sent` for one-off kinds, `firing` or `cleared` for threshold rules.
CREATE TABLE alert_state (
    kind            TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    changed_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (kind, subject)
) WITHOUT ROWID;

-- Deliveries not yet made: one row per alert and webhook, retried with backoff for a day,
-- removed once delivered (or given up). `payload` is the JSON POSTed.
CREATE TABLE alert_outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    target_url      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    related_to      INTEGER,                 -- the log row the alert is about, if one
    created_at_ms   INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_ms);

-- Named integers the alerter keeps between runs: how far it has read the log, the bad
-- signatures counted and not yet alerted.
CREATE TABLE alert_marks (
    name    TEXT    PRIMARY KEY,
    value   INTEGER NOT NULL
) WITHOUT ROWID;

-- The log rows that can raise an alert besides bad signatures (which `events_bad_signature`
-- finds): timeout facts, and assignment callbacks relayed to the user's app. Detection reads
-- them by id after its mark, so its cost follows these rows, not the log; the predicate is `=`
-- terms joined by OR (see 0010), so the rows it leaves out cost ingest nothing.
CREATE INDEX events_alert_candidates ON events (id)
WHERE (is_fact = 1 AND event_type = 'reservation.timeout')
   OR (kind = 'webhook' AND endpoint = 'assignment' AND upstream IS NOT NULL);

-- Reservations still pending, by when they were created: the overdue clock reads the few
-- past their timeout instead of every reservation (a projection index; a rebuild keeps it).
CREATE INDEX proj_reservations_pending ON proj_reservations (created_at_ms) WHERE status = 'pending';
