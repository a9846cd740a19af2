-- +goose Up

-- trusted_devices are the browsers a member chose to trust after passing a
-- second factor (DESIGN "Sign-in" 4): the browser holds a random 256-bit
-- token in its own cookie; only its keyed hash is stored. A device is bound
-- to its member and workspace, expires (at most 30 days), and is revoked by
-- the member, an admin, or any reset, password change or factor removal
-- (revoked_at, with the reason). It never yields more than aal1.
CREATE TABLE trusted_devices (
    id             INTEGER PRIMARY KEY,
    workspace_id   INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash     TEXT    NOT NULL UNIQUE,
    label          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    last_used_at   INTEGER,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX trusted_devices_member ON trusted_devices (workspace_id, user_id, expires_at);

-- +goose Down
DROP TABLE trusted_devices;
