-- The report index (0005) again, with its event types written as `=` terms joined by OR: SQLite
-- evaluates an `IN (list)` of a partial index by building a temporary B-tree on every INSERT
-- into `events` (one page cache opened and torn down per row: a tenth of the writer's time under
-- load). Same rows, same columns; src/reports/store.rs writes the predicate the same way so
-- `INDEXED BY` still matches it.
DROP INDEX events_report;
CREATE INDEX events_report ON events (
    occurred_at_ms, event_type, workspace_sid, task_queue_sid, workflow_sid, worker_sid,
    task_sid, reservation_sid
) WHERE is_fact = 1 AND (event_type = 'task.created' OR event_type = 'task.canceled'
    OR event_type = 'task.completed' OR event_type = 'task.deleted'
    OR event_type = 'task-queue.entered' OR event_type = 'task-queue.moved'
    OR event_type = 'workflow.entered' OR event_type = 'workflow.timeout'
    OR event_type = 'reservation.created' OR event_type = 'reservation.accepted'
    OR event_type = 'reservation.rejected' OR event_type = 'reservation.timeout'
    OR event_type = 'reservation.canceled' OR event_type = 'reservation.rescinded'
    OR event_type = 'worker.activity.update');
