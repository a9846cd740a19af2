-- +goose Up
-- Times are unix seconds (INTEGER here, BIGINT on PostgreSQL); booleans are
-- 0/1 integers, so both engines read them the same way.

CREATE TABLE workspaces (
    id                       INTEGER PRIMARY KEY,
    slug                     TEXT    NOT NULL UNIQUE,
    name                     TEXT    NOT NULL,
    session_absolute_minutes INTEGER NOT NULL DEFAULT 720,
    session_idle_minutes     INTEGER NOT NULL DEFAULT 30,
    created_at               INTEGER NOT NULL
);

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email               TEXT    NOT NULL,
    email_key           TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    role                TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    session_epoch       INTEGER NOT NULL DEFAULT 0,
    password_changed_at INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    UNIQUE (workspace_id, email_key)
);

CREATE TABLE invitations (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email            TEXT    NOT NULL,
    email_key        TEXT    NOT NULL,
    role             TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash       TEXT    NOT NULL UNIQUE,
    invited_by       INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    accepted_at      INTEGER,
    revoked_at       INTEGER
);
CREATE INDEX invitations_workspace_email ON invitations (workspace_id, email_key);

-- user_sessions is Gatehouse's register of signed-in sessions: what a member
-- sees and ends in the portal. The session data itself lives in scs's
-- sessions table, keyed by the hash of the token; token_hash here is the
-- same hash, so that a stale token written back by a slow request is refused.
CREATE TABLE user_sessions (
    id            TEXT    PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    TEXT    NOT NULL,
    aal           TEXT    NOT NULL,
    auth_time     INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    ip            TEXT    NOT NULL,
    user_agent    TEXT    NOT NULL,
    ended_at      INTEGER,
    ended_reason  TEXT
);
CREATE INDEX user_sessions_user ON user_sessions (workspace_id, user_id, ended_at);

-- scs session data (github.com/alexedwards/scs/sqlite3store); tokens are
-- stored hashed (SessionManager.HashTokenInStore).
CREATE TABLE sessions (
    token  TEXT PRIMARY KEY,
    data   BLOB NOT NULL,
    expiry REAL NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry);

-- outbox holds every email, written in the transaction of the change that
-- causes it; the sender claims rows atomically and marks them sent.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER REFERENCES workspaces(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    to_addr         TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    text_body       TEXT    NOT NULL,
    html_body       TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claim_token     TEXT,
    claimed_until   INTEGER,
    sent_at         INTEGER,
    failed_at       INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (sent_at, failed_at, next_attempt_at);

-- audit_events is append-only: the store has no UPDATE or DELETE for it.
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER REFERENCES workspaces(id),
    actor_user_id   INTEGER,
    subject_user_id INTEGER,
    event           TEXT    NOT NULL,
    ip              TEXT    NOT NULL DEFAULT '',
    user_agent      TEXT    NOT NULL DEFAULT '',
    details         TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id);
CREATE INDEX audit_events_subject ON audit_events (workspace_id, subject_user_id, id);

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
-- +goose StatementEnd

-- throttles are fixed-window failure counters shared by every app node.
CREATE TABLE throttles (
    key          TEXT    PRIMARY KEY,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL
);

-- +goose Down
DROP TABLE throttles;
DROP TABLE audit_events;
DROP TABLE outbox;
DROP TABLE sessions;
DROP TABLE user_sessions;
DROP TABLE invitations;
DROP TABLE users;
DROP TABLE workspaces;
