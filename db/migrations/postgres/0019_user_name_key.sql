-- +goose Up

-- The member search's form of users.name, as EmailKey is email's: lowered
-- by the store in Go (strings.ToLower), so a search is case-insensitive
-- alike on every engine and for every script, which neither SQLite's LIKE
-- (ASCII only) nor PostgreSQL's (case-sensitive) is on its own.
ALTER TABLE users ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
-- Names imported since 0018, lowered here by the database: exact for
-- ASCII; the store's Migrate redoes the others in Go right after this
-- migration (rekeyNames).
UPDATE users SET name_key = lower(name) WHERE name <> '';
-- The members search (MembersMFA) reads the members in email order and
-- tests both keys on every one it passes: from this index alone, going to
-- a member's row only for the page's matches.
CREATE INDEX users_search ON users (workspace_id, email_key, name_key) INCLUDE (id);

-- +goose Down
DROP INDEX users_search;
ALTER TABLE users DROP COLUMN name_key;
