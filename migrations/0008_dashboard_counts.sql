-- How many tasks are in each status, kept by triggers as `proj_tasks` changes, so the dashboard
-- reads a handful of rows instead of counting every task (a projection like the others:
-- cleared with them by a rebuild, which refills it through the same triggers). Task rows are
-- written by upsert and only ever deleted all at once by a rebuild, which clears this table
-- too; a status that no task has any more has no row, so a rebuild and the incremental path
-- leave the same rows.
CREATE TABLE proj_task_status_counts (
    status  TEXT    PRIMARY KEY,
    tasks   INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO proj_task_status_counts (status, tasks)
    SELECT status, COUNT(*) FROM proj_tasks GROUP BY status;

CREATE TRIGGER proj_tasks_status_insert AFTER INSERT ON proj_tasks
BEGIN
    INSERT INTO proj_task_status_counts (status, tasks) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET tasks = tasks + 1;
END;

CREATE TRIGGER proj_tasks_status_update AFTER UPDATE OF status ON proj_tasks
    WHEN old.status IS NOT new.status
BEGIN
    UPDATE proj_task_status_counts SET tasks = tasks - 1 WHERE status = old.status;
    DELETE FROM proj_task_status_counts WHERE status = old.status AND tasks <= 0;
    INSERT INTO proj_task_status_counts (status, tasks) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET tasks = tasks + 1;
END;

-- The task queues and workflows tasks are routed through, with how many tasks carry each
-- (SID, name) pair, so the task filters list them without reading every task. `kind` is
-- 'queue' or 'workflow'; an unnamed SID is stored with the name ''.
CREATE TABLE proj_task_routes (
    kind    TEXT    NOT NULL,
    sid     TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    tasks   INTEGER NOT NULL,
    PRIMARY KEY (kind, sid, name)
) WITHOUT ROWID;

INSERT INTO proj_task_routes (kind, sid, name, tasks)
    SELECT 'queue', task_queue_sid, COALESCE(task_queue_name, ''), COUNT(*) FROM proj_tasks
    WHERE task_queue_sid IS NOT NULL GROUP BY 2, 3;
INSERT INTO proj_task_routes (kind, sid, name, tasks)
    SELECT 'workflow', workflow_sid, COALESCE(workflow_name, ''), COUNT(*) FROM proj_tasks
    WHERE workflow_sid IS NOT NULL GROUP BY 2, 3;

CREATE TRIGGER proj_tasks_routes_insert AFTER INSERT ON proj_tasks
BEGIN
    INSERT INTO proj_task_routes (kind, sid, name, tasks)
        SELECT 'queue', new.task_queue_sid, COALESCE(new.task_queue_name, ''), 1
        WHERE new.task_queue_sid IS NOT NULL
        ON CONFLICT (kind, sid, name) DO UPDATE SET tasks = tasks + 1;
    INSERT INTO proj_task_routes (kind, sid, name, tasks)
        SELECT 'workflow', new.workflow_sid, COALESCE(new.workflow_name, ''), 1
        WHERE new.workflow_sid IS NOT NULL
        ON CONFLICT (kind, sid, name) DO UPDATE SET tasks = tasks + 1;
END;

CREATE TRIGGER proj_tasks_queue_update AFTER UPDATE OF task_queue_sid, task_queue_name ON proj_tasks
    WHEN old.task_queue_sid IS NOT new.task_queue_sid OR old.task_queue_name IS NOT new.task_queue_name
BEGIN
    UPDATE proj_task_routes SET tasks = tasks - 1
        WHERE kind = 'queue' AND sid = old.task_queue_sid AND name = COALESCE(old.task_queue_name, '');
    DELETE FROM proj_task_routes
        WHERE kind = 'queue' AND sid = old.task_queue_sid AND name = COALESCE(old.task_queue_name, '')
          AND tasks <= 0;
    INSERT INTO proj_task_routes (kind, sid, name, tasks)
        SELECT 'queue', new.task_queue_sid, COALESCE(new.task_queue_name, ''), 1
        WHERE new.task_queue_sid IS NOT NULL
        ON CONFLICT (kind, sid, name) DO UPDATE SET tasks = tasks + 1;
END;

CREATE TRIGGER proj_tasks_workflow_update AFTER UPDATE OF workflow_sid, workflow_name ON proj_tasks
    WHEN old.workflow_sid IS NOT new.workflow_sid OR old.workflow_name IS NOT new.workflow_name
BEGIN
    UPDATE proj_task_routes SET tasks = tasks - 1
        WHERE kind = 'workflow' AND sid = old.workflow_sid AND name = COALESCE(old.workflow_name, '');
    DELETE FROM proj_task_routes
        WHERE kind = 'workflow' AND sid = old.workflow_sid AND name = COALESCE(old.workflow_name, '')
          AND tasks <= 0;
    INSERT INTO proj_task_routes (kind, sid, name, tasks)
        SELECT 'workflow', new.workflow_sid, COALESCE(new.workflow_name, ''), 1
        WHERE new.workflow_sid IS NOT NULL
        ON CONFLICT (kind, sid, name) DO UPDATE SET tasks = tasks + 1;
END;
