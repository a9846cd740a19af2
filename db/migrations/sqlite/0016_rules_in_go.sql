-- +goose Up

-- Business rules live in Go, in the transaction of the change, the same on
-- every engine: the factor summary of migration 0007 (users.mfa_factors,
-- mfa_codes, mfa_first_at) and the re-enrollment rule of migration 0013
-- are now kept by the store (refreshFactorSummaries, db/summary.go), which
-- recounts them in the transaction of every change to the factor tables.
-- The columns and their indexes stay: the admin pages at 100,000 members
-- read them. The audit_events triggers of 0001 stay too: they protect the
-- trail, they are no business rule.
--
-- The triggers kept the columns exact up to this migration, so there is
-- nothing to recount.
DROP TRIGGER users_reenroll_done;
DROP TRIGGER recovery_codes_summary_delete;
DROP TRIGGER recovery_codes_summary_update;
DROP TRIGGER recovery_codes_summary_insert;
DROP TRIGGER webauthn_credentials_summary_delete;
DROP TRIGGER webauthn_credentials_summary_update;
DROP TRIGGER webauthn_credentials_summary_insert;
DROP TRIGGER totp_credentials_summary_delete;
DROP TRIGGER totp_credentials_summary_update;
DROP TRIGGER totp_credentials_summary_insert;

-- +goose Down

-- The triggers of 0007 and 0013 as they were. The store goes on refreshing
-- the columns too; the triggers recount, so both agree.
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
-- +goose StatementBegin
-- Re-enrolled: the flag goes, and so does the deadline it set unless the
-- workspace's policy covers the member (a later requirement then gives
-- them a grace period like everyone else).
CREATE TRIGGER users_reenroll_done AFTER UPDATE OF mfa_factors ON users
WHEN NEW.mfa_factors <> 0 AND NEW.mfa_reenroll = 1 BEGIN
    UPDATE users SET mfa_reenroll = 0,
        mfa_since = CASE WHEN covered THEN mfa_since END,
        mfa_deadline = CASE WHEN covered THEN mfa_deadline END
    FROM (SELECT (w.mfa_policy = 'required' OR (w.mfa_policy = 'required_for_admins' AND NEW.role IN ('owner', 'admin'))) AS covered
          FROM workspaces w WHERE w.id = NEW.workspace_id)
    WHERE users.id = NEW.id;
END;
-- +goose StatementEnd
