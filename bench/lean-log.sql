-- A 10,000,000-row log for timing reports in about a third of the disk of replicate-log.sql:
-- the generated 1,000,000-row log ten times over, every column the report index holds kept
-- (so a report reads exactly what it would), bodies and headers kept only for
-- worker.activity.update (the only bodies reports read), other payloads emptied.
--   taskrouter-tracer report --database /tmp/10m.db --minutes 1   # creates it, applies migrations
--   sqlite3 /tmp/10m.db "ATTACH 'file:/tmp/1m.db?mode=ro' AS src" ".read bench/lean-log.sql"
-- Copies 2..10 shift ids, times (by 800,000 s) and task/reservation SIDs (third character
-- g..o, never a hex digit, so no copy's SID is an original's). Hashes are the originals': the
-- chain does not verify, so this log is for timing only (about 4 minutes and 5.7 GB).
PRAGMA main.synchronous = OFF;
PRAGMA main.journal_mode = OFF;
WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < 9)
INSERT INTO events (id, kind, received_at_ms, endpoint, method, path, headers, body, body_truncated,
    signature_verdict, rejection, response_status, related_to, duplicate_of, is_fact, event_type,
    event_sid, account_sid, workspace_sid, task_sid, reservation_sid, worker_sid, task_queue_sid,
    workflow_sid, occurred_at_ms, occurred_at_source, hash, payload_encoding)
SELECT e.id + k.n * 1000000, kind, received_at_ms + k.n * 800000000, endpoint, method, path,
    CASE WHEN event_type = 'worker.activity.update' THEN headers ELSE '[]' END,
    CASE WHEN event_type = 'worker.activity.update' THEN body ELSE x'' END, body_truncated,
    signature_verdict, rejection, response_status, related_to, duplicate_of, is_fact, event_type,
    event_sid, account_sid, workspace_sid,
    CASE WHEN task_sid IS NULL OR k.n = 0 THEN task_sid
        ELSE 'WT' || substr('ghijklmno', k.n, 1) || substr(task_sid, 4) END,
    CASE WHEN reservation_sid IS NULL OR k.n = 0 THEN reservation_sid
        ELSE 'WR' || substr('ghijklmno', k.n, 1) || substr(reservation_sid, 4) END,
    worker_sid, task_queue_sid, workflow_sid, occurred_at_ms + k.n * 800000000, occurred_at_source, hash,
    CASE WHEN event_type = 'worker.activity.update' THEN payload_encoding END
FROM k JOIN src.events e
ORDER BY k.n, e.id;
-- No projections are built for it (reports read the log; its flag list is empty), so the
-- server must not start by rebuilding them over 10,000,000 rows.
DELETE FROM maintenance;
