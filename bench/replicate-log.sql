-- Grows a generated 1,000,000-row log to 10,000,000 rows for timing reports:
--   TRACER_BENCH_DB=/tmp/1m.db TRACER_BENCH_EVENTS=1000000 \
--     cargo test --lib generate_bench_log -- --ignored --nocapture
--   taskrouter-tracer report --database /tmp/1m.db --minutes 1   # applies migrations
--   cp /tmp/1m.db /tmp/10m.db && sqlite3 /tmp/10m.db < bench/replicate-log.sql
-- Copies 2..10 shift ids, times (by 800,000 s) and task/reservation SIDs so tasks stay apart
-- (the SID's third character becomes g..o, never a hex digit, so no copy's SID is an original's).
-- The copies reuse the original rows' hashes: the chain past row 1,000,000 does not verify,
-- so this log is for timing only (about 4 minutes and 11.7 GB).
PRAGMA synchronous = OFF;
PRAGMA journal_mode = OFF;
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 9)
INSERT INTO events (id, kind, received_at_ms, endpoint, method, path, headers, body, body_truncated,
    remote_addr, signature_verdict, signature_detail, rejection, response_status, response_body, upstream,
    related_to, duplicate_of, is_fact, event_type, event_sid, account_sid, workspace_sid, task_sid,
    reservation_sid, worker_sid, task_queue_sid, workflow_sid, occurred_at_ms, occurred_at_raw,
    occurred_at_source, idempotency_token, hash, payload_encoding)
SELECT e.id + k.n * 1000000, kind, received_at_ms + k.n * 800000000, endpoint, method, path, headers, body,
    body_truncated, remote_addr, signature_verdict, signature_detail, rejection, response_status,
    response_body, upstream, related_to, duplicate_of, is_fact, event_type, event_sid, account_sid,
    workspace_sid,
    CASE WHEN task_sid IS NULL THEN NULL ELSE 'WT' || substr('ghijklmno', k.n, 1) || substr(task_sid, 4) END,
    CASE WHEN reservation_sid IS NULL THEN NULL
        ELSE 'WR' || substr('ghijklmno', k.n, 1) || substr(reservation_sid, 4) END,
    worker_sid, task_queue_sid, workflow_sid, occurred_at_ms + k.n * 800000000, occurred_at_raw,
    occurred_at_source, idempotency_token, hash, payload_encoding
FROM k JOIN events e ON e.id <= 1000000
ORDER BY k.n, e.id;
