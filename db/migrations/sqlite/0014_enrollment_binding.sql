-- +goose Up

-- What a session started, only that session finishes (SECURITY rule 12):
-- a pending authenticator-app enrollment and a WebAuthn ceremony remember
-- the session that began it (user_sessions.id, '' when none did: staff
-- enrollment links, sign-in ceremonies) and when that session last passed
-- a second factor (unix seconds, 0 for never). Another session of the same
-- member, or the same session after a new step-up, does not see them.
-- Rows from before this migration match no session: unfinished setups
-- start again.
ALTER TABLE totp_credentials ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE totp_credentials ADD COLUMN step_up_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webauthn_ceremonies ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE webauthn_ceremonies ADD COLUMN step_up_at INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE webauthn_ceremonies DROP COLUMN step_up_at;
ALTER TABLE webauthn_ceremonies DROP COLUMN session_id;
ALTER TABLE totp_credentials DROP COLUMN step_up_at;
ALTER TABLE totp_credentials DROP COLUMN session_id;
