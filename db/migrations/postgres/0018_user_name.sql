-- +goose Up

-- A member's display name, as an import file gives it ('' when none).
ALTER TABLE users ADD COLUMN name TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE users DROP COLUMN name;
