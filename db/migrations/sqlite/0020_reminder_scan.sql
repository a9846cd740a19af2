-- +goose Up

-- The reminder scan (db.ScanReminders) finds the members due an email with
-- one statement per workspace (dueRemindersSQL) that reads, of each member
-- without an allowed factor whose deadline is ahead, its id, deadline and
-- mfa_since, then looks for its rows of mfa_reminders. users_reminders
-- (migration 0008) holds all of that on SQLite, whose indexes carry the
-- rowid, but not the id on PostgreSQL, where the scan then read the table
-- page of every such member (20,000 pages for the 66,667 of the
-- 1,000,000-member fixture, 0.4 to 2 s a scan with nothing due). With the id
-- in the index the scan reads the index alone on both engines; SQLite gets
-- the same definition so that the two schemas stay alike.
DROP INDEX users_reminders;
CREATE INDEX users_reminders ON users (workspace_id, mfa_factors, mfa_deadline, mfa_since, id);

-- +goose Down
DROP INDEX users_reminders;
CREATE INDEX users_reminders ON users (workspace_id, mfa_factors, mfa_deadline, mfa_since);
