-- +goose Up

-- Self-service recovery by email (DESIGN "Support console"): a workspace
-- setting, off by default, and the waiting period before the reset.
ALTER TABLE workspaces ADD COLUMN self_recovery INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN self_recovery_wait_hours INTEGER NOT NULL DEFAULT 72;

-- self_recoveries: a member who lost every factor asks (after their
-- password) for a link by email (requested; single use, 30 minutes); the
-- link starts the waiting period (waiting), announced by email with a
-- cancel link; then the jobs reset them (executed), unless the member
-- cancels or signs in with a second factor meanwhile (cancelled). Only
-- keyed hashes of the links are stored.
CREATE TABLE self_recoveries (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    link_hash       TEXT    NOT NULL UNIQUE,
    link_expires_at INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('requested', 'waiting', 'cancelled', 'executed')),
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    executes_at     INTEGER,
    cancel_hash     TEXT UNIQUE,
    closed_at       INTEGER,
    closed_reason   TEXT
);
CREATE UNIQUE INDEX self_recoveries_waiting ON self_recoveries (workspace_id, user_id) WHERE status = 'waiting';
CREATE INDEX self_recoveries_member ON self_recoveries (workspace_id, user_id, created_at);
CREATE INDEX self_recoveries_due ON self_recoveries (status, executes_at);

-- +goose Down
DROP TABLE self_recoveries;
ALTER TABLE workspaces DROP COLUMN self_recovery_wait_hours;
ALTER TABLE workspaces DROP COLUMN self_recovery;
