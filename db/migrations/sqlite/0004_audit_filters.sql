-- +goose Up

-- The audit log's member filter matches the actor as well as the subject;
-- the subject already has an index (0001), the actor gets its own so that
-- both halves of the filter walk an index in id order.
CREATE INDEX audit_events_actor ON audit_events (workspace_id, actor_user_id, id);

-- The event filter: an exact name walks this index in id order; a rare
-- one no longer scans the whole log.
CREATE INDEX audit_events_event ON audit_events (workspace_id, event, id);

-- +goose Down
DROP INDEX audit_events_event;
DROP INDEX audit_events_actor;
