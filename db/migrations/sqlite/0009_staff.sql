-- +goose Up

-- Platform staff (DESIGN "Support console") are members of one reserved
-- workspace, the platform workspace: they reuse the members' sign-in,
-- second factors, lockouts, sessions and audit, yet live apart from every
-- customer workspace. Its slug ("_support") is not a valid workspace slug,
-- so /t/_support/... is a 404 and no customer workspace can take it; it is
-- reached only at /support. At most one row has platform = 1; customer
-- lookups (WorkspaceBySlug) never return it.
ALTER TABLE workspaces ADD COLUMN platform INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX workspaces_platform ON workspaces (platform) WHERE platform = 1;

-- staff_enrollments are the single-use links `gatehouse staff create`
-- prints: a staff member enrolls a second factor with one before their
-- first sign-in (no staff session exists below aal2). Only the keyed hash
-- of the token is stored.
CREATE TABLE staff_enrollments (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX staff_enrollments_user ON staff_enrollments (workspace_id, user_id);

-- The support console finds a member by email across workspaces.
CREATE INDEX users_email_key ON users (email_key);

-- +goose Down
DROP INDEX users_email_key;
DROP TABLE staff_enrollments;
DROP INDEX workspaces_platform;
ALTER TABLE workspaces DROP COLUMN platform;
