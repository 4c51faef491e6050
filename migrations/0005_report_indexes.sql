-- Audit reports (src/reports) read the statistics facts of a time window. One partial,
-- covering index serves them: it holds only counted facts of the event types statistics use
-- (about half the log: no assignment callbacks, target matches, wrap-ups, updates) and every
-- column a report needs except the body, so a window is one range scan of a narrow index
-- instead of a scan of the whole log. It is the only index reports add to `events`: ingest
-- pays one extra B-tree insert for a reportable fact and nothing for any other row.
-- `worker.activity.update` rows are followed to the table for their body (durations).
CREATE INDEX events_report ON events (
    occurred_at_ms, event_type, workspace_sid, task_queue_sid, workflow_sid, worker_sid,
    task_sid, reservation_sid
) WHERE is_fact = 1 AND event_type IN (
    'task.created', 'task.canceled', 'task.completed', 'task.deleted', 'task-queue.entered',
    'task-queue.moved', 'workflow.entered', 'workflow.timeout', 'reservation.created',
    'reservation.accepted', 'reservation.rejected', 'reservation.timeout', 'reservation.canceled',
    'reservation.rescinded', 'worker.activity.update'
);
