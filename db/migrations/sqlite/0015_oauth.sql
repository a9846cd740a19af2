-- +goose Up

-- Every workspace is an OpenID Connect provider (docs/OIDC.md). The
-- protocol is zitadel/oidc's op package; these tables are its storage.

-- The subject (sub) of a member in ID tokens: random, stable per member
-- and workspace, never the row id. Filled on first use.
ALTER TABLE users ADD COLUMN oidc_sub TEXT;
CREATE UNIQUE INDEX users_oidc_sub ON users (oidc_sub);

-- Applications registered by a workspace's admins: web (confidential,
-- with a secret), spa or native (public: PKCE only). client_id is public;
-- a web client's secret is stored as a keyed hash only. Deleted
-- clients keep their row (deleted_at) so that their tokens die with them
-- and the audit trail can still name them.
CREATE TABLE oauth_clients (
    id                       INTEGER PRIMARY KEY,
    workspace_id             INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    client_id                TEXT    NOT NULL UNIQUE,
    name                     TEXT    NOT NULL,
    kind                     TEXT    NOT NULL CHECK (kind IN ('web', 'spa', 'native')),
    secret_hash              TEXT    NOT NULL DEFAULT '',
    redirect_uris            TEXT    NOT NULL,
    post_logout_redirect_uris TEXT   NOT NULL DEFAULT '[]',
    scopes                   TEXT    NOT NULL,
    first_party              INTEGER NOT NULL DEFAULT 0,
    created_by               INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    secret_rotated_at        INTEGER,
    deleted_at               INTEGER
);
CREATE INDEX oauth_clients_workspace ON oauth_clients (workspace_id, deleted_at);

-- A pending authorization: created by the authorize endpoint, bound to
-- the browser that asked (browser_hash, the keyed hash of a cookie) or to
-- the native flow's mfa_token, completed (done_at, user, acr, amr,
-- auth_time) by the sign-in pages, exchanged for tokens once (code_hash,
-- code_used_at). A second use of the code revokes what the first issued
-- (revoked_at).
CREATE TABLE oauth_auth_requests (
    id                    TEXT    PRIMARY KEY,
    workspace_id          INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    client_id             TEXT    NOT NULL,
    request               TEXT    NOT NULL,
    browser_hash          TEXT    NOT NULL,
    user_id               INTEGER REFERENCES users(id) ON DELETE CASCADE,
    acr                   TEXT    NOT NULL DEFAULT '',
    amr                   TEXT    NOT NULL DEFAULT '[]',
    auth_time             INTEGER NOT NULL DEFAULT 0,
    session_id            TEXT    NOT NULL DEFAULT '',
    done_at               INTEGER,
    code_hash             TEXT    UNIQUE,
    code_used_at          INTEGER,
    revoked_at            INTEGER,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL
);
CREATE INDEX oauth_auth_requests_expiry ON oauth_auth_requests (expires_at);

-- Refresh tokens: one row per token, stored as a keyed hash. A family is
-- every token rotated from one authorization; presenting a rotated token
-- again (used_at set) revokes the whole family.
CREATE TABLE oauth_refresh_tokens (
    id               TEXT    PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    token_hash       TEXT    NOT NULL UNIQUE,
    family_id        TEXT    NOT NULL,
    auth_request_id  TEXT    NOT NULL,
    client_id        TEXT    NOT NULL,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scopes           TEXT    NOT NULL,
    audience         TEXT    NOT NULL,
    amr              TEXT    NOT NULL,
    acr              TEXT    NOT NULL,
    auth_time        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    revoked_at       INTEGER
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family_id);
CREATE INDEX oauth_refresh_tokens_user ON oauth_refresh_tokens (workspace_id, user_id);

-- Access tokens: opaque to clients (op encrypts the id); every use is
-- checked against this row, so revocation, a deleted client and a reset
-- member take effect at once.
CREATE TABLE oauth_access_tokens (
    id               TEXT    PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    family_id        TEXT    NOT NULL,
    auth_request_id  TEXT    NOT NULL,
    client_id        TEXT    NOT NULL,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scopes           TEXT    NOT NULL,
    audience         TEXT    NOT NULL,
    amr              TEXT    NOT NULL,
    acr              TEXT    NOT NULL,
    auth_time        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked_at       INTEGER
);
CREATE INDEX oauth_access_tokens_family ON oauth_access_tokens (family_id);
CREATE INDEX oauth_access_tokens_user ON oauth_access_tokens (workspace_id, user_id);
CREATE INDEX oauth_access_tokens_expiry ON oauth_access_tokens (expires_at);

-- Consent a member gave a third-party client, for the scopes listed.
CREATE TABLE oauth_consents (
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id     TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    granted_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id, client_id)
);

-- Token signing keys per workspace, the private key sealed under the
-- master key (AES-256-GCM, bound to the key's id). The newest key not
-- retired signs; every key whose retire_at is in the future (or unset)
-- is published, so tokens signed before a rotation keep verifying.
CREATE TABLE oauth_signing_keys (
    id            TEXT    PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    alg           TEXT    NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    master_key_id TEXT    NOT NULL,
    private_key   BLOB    NOT NULL,
    public_jwk    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER,
    publish_until INTEGER
);
CREATE INDEX oauth_signing_keys_workspace ON oauth_signing_keys (workspace_id, created_at);

-- +goose Down
DROP TABLE oauth_signing_keys;
DROP TABLE oauth_consents;
DROP TABLE oauth_access_tokens;
DROP TABLE oauth_refresh_tokens;
DROP TABLE oauth_auth_requests;
DROP TABLE oauth_clients;
DROP INDEX users_oidc_sub;
ALTER TABLE users DROP COLUMN oidc_sub;
