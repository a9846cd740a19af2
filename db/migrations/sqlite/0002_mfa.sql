-- +goose Up

-- TOTP credentials. The secret is AES-256-GCM ciphertext under the master
-- key named by key_id, bound to (credential id, user id) as associated data.
-- A row with confirmed_at NULL is an enrollment in progress; it expires.
-- last_step is the last accepted time step: a step at or below it is
-- refused, so each code works once.
CREATE TABLE totp_credentials (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL DEFAULT 'Authenticator app',
    key_id       TEXT    NOT NULL,
    secret       BLOB    NOT NULL,
    last_step    INTEGER,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    expires_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX totp_credentials_user ON totp_credentials (workspace_id, user_id);

-- Recovery codes, stored as keyed hashes ("keyid:hex" HMAC-SHA-256).
CREATE TABLE recovery_codes (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes (workspace_id, user_id, used_at);

-- A second-factor challenge after a correct password. The scs session (or
-- the API's mfa_token) points at it; the row holds the truth: expiry,
-- failures in this challenge, and whether it was spent.
CREATE TABLE mfa_challenges (
    id               TEXT    PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_at      INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    failures         INTEGER NOT NULL DEFAULT 0,
    ended_at         INTEGER,
    ended_reason     TEXT
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);

-- Per-member second-factor failure counters, shared by every challenge,
-- session, IP and app node.
CREATE TABLE mfa_guards (
    workspace_id       INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    window_start       INTEGER NOT NULL DEFAULT 0,
    window_failures    INTEGER NOT NULL DEFAULT 0,
    consecutive        INTEGER NOT NULL DEFAULT 0,
    locked_until       INTEGER NOT NULL DEFAULT 0,
    disabled_at        INTEGER,
    PRIMARY KEY (workspace_id, user_id)
);

-- +goose Down
DROP TABLE mfa_guards;
DROP TABLE mfa_challenges;
DROP TABLE recovery_codes;
DROP TABLE totp_credentials;
