-- `connect` and `disconnect` record their plans in the log as action rows; this partial index
-- finds a workspace's latest one without scanning the log. Its predicate is `=` terms joined by
-- OR (see 0010): evaluated per INSERT, it costs nothing for the webhook rows it leaves out.
CREATE INDEX events_connection ON events (workspace_sid, id)
WHERE kind = 'action' AND (endpoint = 'action.connect.plan' OR endpoint = 'action.disconnect.done');
