-- +goose Up

-- A member's WebAuthn user handle: 64 random bytes, never the email or id,
-- made on first use.
ALTER TABLE users ADD COLUMN webauthn_handle BLOB;
CREATE UNIQUE INDEX users_webauthn_handle ON users (workspace_id, webauthn_handle);

-- Workspace settings for passkeys.
ALTER TABLE workspaces ADD COLUMN passkeys_satisfy_mfa INTEGER NOT NULL DEFAULT 1;
ALTER TABLE workspaces ADD COLUMN device_bound_keys_only INTEGER NOT NULL DEFAULT 0;

-- The first factor a challenge follows: a password, or a passkey when the
-- workspace does not let passkeys satisfy MFA on their own.
ALTER TABLE mfa_challenges ADD COLUMN first_method TEXT NOT NULL DEFAULT 'password';

-- Passkeys and security keys. credential_id is unique per workspace: the
-- RP ID is the workspace's host, so a credential never crosses workspaces.
CREATE TABLE webauthn_credentials (
    id                 INTEGER PRIMARY KEY,
    workspace_id       INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name               TEXT    NOT NULL,
    credential_id      BLOB    NOT NULL,
    public_key         BLOB    NOT NULL,
    sign_count         INTEGER NOT NULL DEFAULT 0,
    aaguid             BLOB,
    transports         TEXT    NOT NULL DEFAULT '',
    backup_eligible    INTEGER NOT NULL DEFAULT 0,
    backup_state       INTEGER NOT NULL DEFAULT 0,
    user_verified      INTEGER NOT NULL DEFAULT 0,
    attestation_format TEXT    NOT NULL DEFAULT '',
    attestation_type   TEXT    NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER,
    UNIQUE (workspace_id, credential_id)
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (workspace_id, user_id);

-- Ceremony state: the challenge and what go-webauthn needs to finish, kept
-- server-side under a random handle, single use (used_at set by one
-- conditional update) and short-lived.
CREATE TABLE webauthn_ceremonies (
    id           TEXT    PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      INTEGER REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('register', 'second_factor', 'passwordless', 'step_up')),
    challenge_id TEXT,
    name         TEXT    NOT NULL DEFAULT '',
    session_data TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);

-- +goose Down
DROP TABLE webauthn_ceremonies;
DROP TABLE webauthn_credentials;
ALTER TABLE mfa_challenges DROP COLUMN first_method;
DROP INDEX users_webauthn_handle;
ALTER TABLE users DROP COLUMN webauthn_handle;
ALTER TABLE workspaces DROP COLUMN passkeys_satisfy_mfa;
ALTER TABLE workspaces DROP COLUMN device_bound_keys_only;
