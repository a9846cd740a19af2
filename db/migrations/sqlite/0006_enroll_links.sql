-- +goose Up

-- enroll_links are the emailed links that let a member past their MFA
-- deadline enroll (DESIGN "Policies and enforcement"). Only the hash of the
-- token is stored; a link is bound to the member, the workspace and the
-- session that asked for it, works once (used_at) and expires.
CREATE TABLE enroll_links (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX enroll_links_member ON enroll_links (workspace_id, user_id, created_at);

-- +goose Down
DROP TABLE enroll_links;
