-- +goose Up

-- What the admin dashboard counts, per member, kept exact by triggers in the
-- same transaction as every change to the factor tables, so there is no
-- cache to go stale: mfa_factors says which methods the member holds (1 a
-- confirmed authenticator app, 2 a passkey or security key, 3 both),
-- mfa_codes how many unused recovery codes they have, mfa_first_at when
-- their earliest current second factor was added (app confirmed, key
-- registered; NULL without one). Compliance is still decided at read time
-- from the policy's methods (db.Coverage): these columns only spare the
-- dashboard a correlated lookup per member in each factor table, which took
-- seconds at 100,000 members, and make each figure a range of one index.
ALTER TABLE users ADD COLUMN mfa_factors INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_codes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_first_at INTEGER;

UPDATE users SET
    mfa_factors = EXISTS (SELECT 1 FROM totp_credentials t
            WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL)
        + 2 * EXISTS (SELECT 1 FROM webauthn_credentials w
            WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id),
    mfa_codes = (SELECT COUNT(*) FROM recovery_codes r
        WHERE r.workspace_id = users.workspace_id AND r.user_id = users.id AND r.used_at IS NULL),
    mfa_first_at = (SELECT MIN(ts) FROM (
        SELECT t.confirmed_at ts FROM totp_credentials t
            WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL
        UNION ALL SELECT w.created_at FROM webauthn_credentials w
            WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id));

-- Coverage: members, in grace, past deadline and the next deadline by
-- factors held; low on recovery codes among the compliant. The enrollment
-- chart counts the days of its window in the last two.
CREATE INDEX users_factors_deadline ON users (workspace_id, mfa_factors, mfa_deadline);
CREATE INDEX users_factors_codes ON users (workspace_id, mfa_factors, mfa_codes);
CREATE INDEX users_created ON users (workspace_id, created_at);
CREATE INDEX users_first_factor ON users (workspace_id, mfa_first_at);

-- The triggers recount the member's rows rather than add and subtract, so a
-- figure cannot drift whatever the statement. Updates of a key's sign count
-- or name, or of a code's hash, do not fire them.
-- +goose StatementBegin
CREATE TRIGGER totp_credentials_summary_insert AFTER INSERT ON totp_credentials BEGIN
    UPDATE users SET
        mfa_factors = EXISTS (SELECT 1 FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL)
            + 2 * EXISTS (SELECT 1 FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id),
        mfa_first_at = (SELECT MIN(ts) FROM (
            SELECT t.confirmed_at ts FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL
            UNION ALL SELECT w.created_at FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id))
    WHERE id = NEW.user_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER totp_credentials_summary_update AFTER UPDATE OF user_id, workspace_id, confirmed_at ON totp_credentials BEGIN
    UPDATE users SET
        mfa_factors = EXISTS (SELECT 1 FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL)
            + 2 * EXISTS (SELECT 1 FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id),
        mfa_first_at = (SELECT MIN(ts) FROM (
            SELECT t.confirmed_at ts FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL
            UNION ALL SELECT w.created_at FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id))
    WHERE id IN (OLD.user_id, NEW.user_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER totp_credentials_summary_delete AFTER DELETE ON totp_credentials BEGIN
    UPDATE users SET
        mfa_factors = EXISTS (SELECT 1 FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL)
            + 2 * EXISTS (SELECT 1 FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id),
        mfa_first_at = (SELECT MIN(ts) FROM (
            SELECT t.confirmed_at ts FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL
            UNION ALL SELECT w.created_at FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id))
    WHERE id = OLD.user_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER webauthn_credentials_summary_insert AFTER INSERT ON webauthn_credentials BEGIN
    UPDATE users SET
        mfa_factors = EXISTS (SELECT 1 FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL)
            + 2 * EXISTS (SELECT 1 FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id),
        mfa_first_at = (SELECT MIN(ts) FROM (
            SELECT t.confirmed_at ts FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL
            UNION ALL SELECT w.created_at FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id))
    WHERE id = NEW.user_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER webauthn_credentials_summary_update AFTER UPDATE OF user_id, workspace_id, created_at ON webauthn_credentials BEGIN
    UPDATE users SET
        mfa_factors = EXISTS (SELECT 1 FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL)
            + 2 * EXISTS (SELECT 1 FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id),
        mfa_first_at = (SELECT MIN(ts) FROM (
            SELECT t.confirmed_at ts FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL
            UNION ALL SELECT w.created_at FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id))
    WHERE id IN (OLD.user_id, NEW.user_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER webauthn_credentials_summary_delete AFTER DELETE ON webauthn_credentials BEGIN
    UPDATE users SET
        mfa_factors = EXISTS (SELECT 1 FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL)
            + 2 * EXISTS (SELECT 1 FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id),
        mfa_first_at = (SELECT MIN(ts) FROM (
            SELECT t.confirmed_at ts FROM totp_credentials t
                WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL
            UNION ALL SELECT w.created_at FROM webauthn_credentials w
                WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id))
    WHERE id = OLD.user_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER recovery_codes_summary_insert AFTER INSERT ON recovery_codes BEGIN
    UPDATE users SET
        mfa_codes = (SELECT COUNT(*) FROM recovery_codes r
            WHERE r.workspace_id = users.workspace_id AND r.user_id = users.id AND r.used_at IS NULL)
    WHERE id = NEW.user_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER recovery_codes_summary_update AFTER UPDATE OF user_id, workspace_id, used_at ON recovery_codes BEGIN
    UPDATE users SET
        mfa_codes = (SELECT COUNT(*) FROM recovery_codes r
            WHERE r.workspace_id = users.workspace_id AND r.user_id = users.id AND r.used_at IS NULL)
    WHERE id IN (OLD.user_id, NEW.user_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER recovery_codes_summary_delete AFTER DELETE ON recovery_codes BEGIN
    UPDATE users SET
        mfa_codes = (SELECT COUNT(*) FROM recovery_codes r
            WHERE r.workspace_id = users.workspace_id AND r.user_id = users.id AND r.used_at IS NULL)
    WHERE id = OLD.user_id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER recovery_codes_summary_delete;
DROP TRIGGER recovery_codes_summary_update;
DROP TRIGGER recovery_codes_summary_insert;
DROP TRIGGER webauthn_credentials_summary_delete;
DROP TRIGGER webauthn_credentials_summary_update;
DROP TRIGGER webauthn_credentials_summary_insert;
DROP TRIGGER totp_credentials_summary_delete;
DROP TRIGGER totp_credentials_summary_update;
DROP TRIGGER totp_credentials_summary_insert;
DROP INDEX users_first_factor;
DROP INDEX users_created;
DROP INDEX users_factors_codes;
DROP INDEX users_factors_deadline;
ALTER TABLE users DROP COLUMN mfa_first_at;
ALTER TABLE users DROP COLUMN mfa_codes;
ALTER TABLE users DROP COLUMN mfa_factors;
