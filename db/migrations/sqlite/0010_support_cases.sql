-- +goose Up

-- support_cases are identity-verified MFA resets (DESIGN "Support
-- console"): opened by one staff member with how identity was verified,
-- approved by another, scheduled with a delay during which the member can
-- cancel by the emailed link (only its keyed hash is stored), then executed
-- by the jobs. workspace_id and user_id are the member's; opened_by and
-- approved_by are staff (members of the platform workspace).
CREATE TABLE support_cases (
    id                  INTEGER PRIMARY KEY,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id             INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    opened_by           INTEGER NOT NULL REFERENCES users(id),
    verification_method TEXT    NOT NULL,
    evidence_ref        TEXT    NOT NULL,
    notes               TEXT    NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN ('awaiting_approval', 'scheduled', 'cancelled', 'rejected', 'expired', 'executed')),
    created_at          INTEGER NOT NULL,
    approve_by          INTEGER NOT NULL,
    approved_by         INTEGER REFERENCES users(id),
    approved_at         INTEGER,
    delay_hours         INTEGER,
    executes_at         INTEGER,
    cancel_token_hash   TEXT UNIQUE,
    closed_at           INTEGER,
    reason              TEXT
);
-- At most one open case per member.
CREATE UNIQUE INDEX support_cases_open ON support_cases (workspace_id, user_id) WHERE status IN ('awaiting_approval', 'scheduled');
CREATE INDEX support_cases_status ON support_cases (status, executes_at);

-- The case's timeline: who did what, when (the audit trails carry the same
-- events, in the platform's and the member's workspace).
CREATE TABLE support_case_events (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    case_id      INTEGER NOT NULL REFERENCES support_cases(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    event        TEXT    NOT NULL
);
CREATE INDEX support_case_events_case ON support_case_events (case_id, id);

-- +goose Down
DROP TABLE support_case_events;
DROP TABLE support_cases;
