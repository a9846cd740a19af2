-- +goose Up

-- A member reset by support or by recovery by email must set up a second
-- factor again at their next sign-in, whatever the workspace's policy
-- (DESIGN "Support console": "member must re-enroll"). The reset sets the
-- flag with a deadline that has passed; enrolling any factor clears it
-- (the factor summary of migration 0007 changes in the same statement).
ALTER TABLE users ADD COLUMN mfa_reenroll INTEGER NOT NULL DEFAULT 0;

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

-- +goose Down
DROP TRIGGER users_reenroll_done;
ALTER TABLE users DROP COLUMN mfa_reenroll;
