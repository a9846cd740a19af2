-- +goose Up

-- SMS one-time codes (DESIGN "SMS"): off by default, every workspace.
--
-- The workspace's settings: the countries whose numbers may be texted
-- (comma-separated ISO 3166 alpha-2 codes; empty allows none), whether
-- owners and admins are kept from SMS (it then neither signs them in nor
-- makes them compliant), a daily cap on texts (UTC days) and a monthly
-- budget (UTC months) in texts and in micro-dollars. sms_budget_alerted_month
-- ('2026-12') is the month the admins were last emailed that a cap was hit:
-- once a month.
ALTER TABLE workspaces ADD COLUMN sms_countries TEXT NOT NULL DEFAULT '';
ALTER TABLE workspaces ADD COLUMN sms_admins_forbidden INTEGER NOT NULL DEFAULT 0 CHECK (sms_admins_forbidden IN (0, 1));
ALTER TABLE workspaces ADD COLUMN sms_daily_cap INTEGER NOT NULL DEFAULT 500;
ALTER TABLE workspaces ADD COLUMN sms_monthly_budget_texts INTEGER NOT NULL DEFAULT 5000;
ALTER TABLE workspaces ADD COLUMN sms_monthly_budget_micros INTEGER NOT NULL DEFAULT 50000000;
ALTER TABLE workspaces ADD COLUMN sms_budget_alerted_month TEXT NOT NULL DEFAULT '';

-- A member's phone: pending until a texted code verifies it, and bound
-- like a pending authenticator app to the session (and step-up) that
-- started it. At most one verified and one pending phone per member: a
-- new number is a pending phone that replaces the verified one when it is
-- verified. masked is the number as pages and the audit trail show it
-- ('+44 •••• ••• 123'), never the whole number.
CREATE TABLE sms_phones (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    e164         TEXT    NOT NULL,
    country      TEXT    NOT NULL,
    masked       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    verified_at  INTEGER,
    session_id   TEXT    NOT NULL DEFAULT '',
    step_up_at   INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX sms_phones_verified ON sms_phones (workspace_id, user_id) WHERE verified_at IS NOT NULL;
CREATE UNIQUE INDEX sms_phones_pending ON sms_phones (workspace_id, user_id) WHERE verified_at IS NULL;

-- A texted code, as a keyed hash (the store never sees the code): bound to
-- its purpose and to the challenge (sign-in) or the session (setup,
-- step-up) it was sent for, alive 5 minutes, for 5 wrong tries at most,
-- spent once. A resend voids the previous code and carries its failures.
CREATE TABLE sms_codes (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    phone_id     INTEGER NOT NULL REFERENCES sms_phones(id) ON DELETE CASCADE,
    purpose      TEXT    NOT NULL CHECK (purpose IN ('setup', 'challenge', 'step_up')),
    challenge_id TEXT    NOT NULL DEFAULT '',
    session_id   TEXT    NOT NULL DEFAULT '',
    code_hash    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    used_at      INTEGER,
    voided_at    INTEGER,
    CHECK ((purpose = 'challenge' AND challenge_id <> '' AND session_id = '')
        OR (purpose <> 'challenge' AND session_id <> '' AND challenge_id = ''))
);
CREATE INDEX sms_codes_bound ON sms_codes (workspace_id, user_id, purpose, challenge_id, session_id);
CREATE INDEX sms_codes_expiry ON sms_codes (expires_at);

-- Texts waiting for (or sent by) the SMS sender, claimed with a lease like
-- the mail outbox. The text is sealed under the master key (key_id): the
-- code is never stored in the clear. The rows stay when the phone or the
-- member goes: they are the workspace's usage (caps and budget).
-- verified_number says whether the number was verified when the text was
-- queued (the circuit breaker counts texts to never-verified numbers);
-- expires_at is the code's expiry, after which the text is not sent.
CREATE TABLE sms_outbox (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id         INTEGER REFERENCES users(id) ON DELETE SET NULL,
    phone_id        INTEGER REFERENCES sms_phones(id) ON DELETE SET NULL,
    to_e164         TEXT    NOT NULL,
    country         TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    body_sealed     BLOB    NOT NULL,
    price_micros    INTEGER NOT NULL,
    verified_number INTEGER NOT NULL CHECK (verified_number IN (0, 1)),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claim_token     TEXT,
    claimed_until   INTEGER,
    sent_at         INTEGER,
    failed_at       INTEGER,
    last_error      TEXT,
    provider_id     TEXT
);
CREATE INDEX sms_outbox_usage ON sms_outbox (workspace_id, created_at, price_micros);
CREATE INDEX sms_outbox_created ON sms_outbox (created_at, verified_number);
CREATE INDEX sms_outbox_due ON sms_outbox (sent_at, failed_at, next_attempt_at);

-- +goose Down
DROP TABLE sms_outbox;
DROP TABLE sms_codes;
DROP TABLE sms_phones;
ALTER TABLE workspaces DROP COLUMN sms_budget_alerted_month;
ALTER TABLE workspaces DROP COLUMN sms_monthly_budget_micros;
ALTER TABLE workspaces DROP COLUMN sms_monthly_budget_texts;
ALTER TABLE workspaces DROP COLUMN sms_daily_cap;
ALTER TABLE workspaces DROP COLUMN sms_admins_forbidden;
ALTER TABLE workspaces DROP COLUMN sms_countries;
