-- Partial indexes for the dashboard, so its reads take the rows they show instead of scanning
-- every reservation and flag (a long read also keeps the WAL from restarting). Each holds only
-- the rows that need attention, so ingest pays for them only when such a row changes.

-- Reservations that timed out or are still pending, newest first (timeouts, overdue ones).
CREATE INDEX proj_reservations_attention ON proj_reservations (created_at_ms)
    WHERE status = 'timeout' OR status = 'pending';

-- Tasks with at least one flag, by when they were last active (recent flags).
CREATE INDEX proj_tasks_flagged ON proj_tasks (last_fact_at_ms)
    WHERE flag_kinds != ',' AND flag_kinds != '';
