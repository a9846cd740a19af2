-- +goose Up

-- The workspace's MFA policy (DESIGN "Policies and enforcement").
-- mfa_methods is a comma-separated subset of totp,webauthn; reminder_days a
-- comma-separated list of whole days before the deadline, most distant first.
-- enforced_since is when the current requirement started (NULL while the
-- policy requires nothing).
ALTER TABLE workspaces ADD COLUMN mfa_policy TEXT NOT NULL DEFAULT 'optional'
    CHECK (mfa_policy IN ('off', 'optional', 'required', 'required_for_admins'));
ALTER TABLE workspaces ADD COLUMN mfa_methods TEXT NOT NULL DEFAULT 'totp,webauthn';
ALTER TABLE workspaces ADD COLUMN grace_days INTEGER NOT NULL DEFAULT 30;
ALTER TABLE workspaces ADD COLUMN reminder_days TEXT NOT NULL DEFAULT '7,3,1';
ALTER TABLE workspaces ADD COLUMN trusted_device_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN enforced_since INTEGER;

-- A member the requirement applies to has mfa_since (when it started to
-- apply to them: policy change, promotion, joining) and mfa_deadline (that
-- plus the grace period, plus any extension). Both are NULL when the policy
-- does not cover the member. Compliance itself is never stored: it is
-- holding an allowed factor, read from the factor tables.
ALTER TABLE users ADD COLUMN mfa_since INTEGER;
ALTER TABLE users ADD COLUMN mfa_deadline INTEGER;
CREATE INDEX users_mfa_deadline ON users (workspace_id, mfa_deadline);

-- mfa_reminders records every enforcement email queued: one row per member,
-- deadline and reminder day (days = -1 is the announcement). The unique key
-- makes "each reminder at most once per member and deadline" a database
-- rule, whatever number of processes run the scan.
CREATE TABLE mfa_reminders (
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    deadline     INTEGER NOT NULL,
    days         INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id, deadline, days)
);

-- +goose Down
DROP TABLE mfa_reminders;
DROP INDEX users_mfa_deadline;
ALTER TABLE users DROP COLUMN mfa_deadline;
ALTER TABLE users DROP COLUMN mfa_since;
ALTER TABLE workspaces DROP COLUMN enforced_since;
ALTER TABLE workspaces DROP COLUMN trusted_device_days;
ALTER TABLE workspaces DROP COLUMN reminder_days;
ALTER TABLE workspaces DROP COLUMN grace_days;
ALTER TABLE workspaces DROP COLUMN mfa_methods;
ALTER TABLE workspaces DROP COLUMN mfa_policy;
