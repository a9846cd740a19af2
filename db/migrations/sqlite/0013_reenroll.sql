-- +goose Up

-- A member reset by support or by recovery by email must set up a second
-- factor again at their next sign-in, whatever the workspace's policy
-- (DESIGN "Support console": "member must re-enroll"). The reset sets the
-- flag with a deadline that has passed; enrolling any factor clears it
-- (the factor summary of migration 0007 changes in the same statement).
ALTER TABLE users ADD COLUMN mfa_reenroll INTEGER NOT NULL DEFAULT 0;

-- +goose StatementBegin
CREATE TRIGGER users_reenroll_done AFTER UPDATE OF mfa_factors ON users
WHEN NEW.mfa_factors <> 0 AND NEW.mfa_reenroll = 1 BEGIN
    UPDATE users SET mfa_reenroll = 0 WHERE id = NEW.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER users_reenroll_done;
ALTER TABLE users DROP COLUMN mfa_reenroll;
