package dbtest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
)

// Members fills workspaceID with n members in one transaction of bulk
// INSERT … SELECT from a recursive counter (about 5 s for 100,000, 40 s
// for 1,000,000 on SQLite; 20 s and 3 to 8 minutes on PostgreSQL):
// members joined over the last 180 days before now; 60 % hold a confirmed
// authenticator app, 10 % a security key only, 30 % nothing; every enrolled
// member has 10 recovery codes, a quarter of them only 2 unused; half the
// members are covered by a deadline, a third of those already passed;
// four in five have a name, "Bench Member N" (user1000000+N's, N not a
// multiple of 5).
func Members(tb testing.TB, store *db.Store, workspaceID int64, n int, now time.Time) {
	tb.Helper()
	insertMembers(tb, store, workspaceID, n, now)
	ctx := context.Background()
	// The rows went in behind the store's back: its factor summary of
	// these members is recounted as its own methods would.
	if err := store.RecountFactorSummaries(ctx, workspaceID); err != nil {
		tb.Fatal(err)
	}
	// Fresh statistics for the planner.
	if store.Engine() != "postgres" {
		if _, err := store.DB().ExecContext(ctx, `ANALYZE`); err != nil {
			tb.Fatal(err)
		}
		return
	}
	// On PostgreSQL also the visibility map that autovacuum sets after
	// such a load in a while, without which no scan reads an index alone.
	// A VACUUM marks no page whose rows a transaction still running might
	// not see (an autovacuum's ANALYZE started by the load, say): again,
	// a few times at most, until the users' pages are.
	for i := 0; ; i++ {
		if _, err := store.DB().ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
			tb.Fatal(err)
		}
		var pages, visible int64
		if err := store.DB().QueryRowContext(ctx, `SELECT relpages, relallvisible FROM pg_class WHERE oid = 'users'::regclass`).Scan(&pages, &visible); err != nil {
			tb.Fatal(err)
		}
		if visible >= pages || i == 4 {
			break
		}
	}
}

// insertMembers writes Members' rows, the factor summary left out.
func insertMembers(tb testing.TB, store *db.Store, workspaceID int64, n int, now time.Time) {
	tb.Helper()
	ctx := context.Background()
	// One connection for the whole load (on SQLite, the writer's). On
	// SQLite it gets a page cache big enough for the indexes being filled
	// (1 GiB at most, as needed: with 2 MiB, 1,000,000 members took 56 s
	// and with the writer's 32 MiB 58 s, against 37 to 51 s), set back
	// before the connection goes back, so that what the benchmarks measure
	// runs with the cache the server runs with.
	conn, err := store.DB().Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if store.Engine() == "sqlite" {
		var cache int64
		if err := conn.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil {
			tb.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -1048576`); err != nil {
			tb.Fatal(err)
		}
		defer func() {
			if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = `+strconv.FormatInt(cache, 10)); err != nil {
				tb.Error(err)
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	t := now.Unix()
	// A credential id unique to the member: the id's digits as bytes.
	idBytes := `CAST(CAST(id AS TEXT) AS BLOB)`
	if store.Engine() == "postgres" {
		idBytes = `convert_to(CAST(id AS TEXT), 'UTF8')`
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
			INSERT INTO users (workspace_id, email, email_key, password_hash, role, password_changed_at, created_at, mfa_deadline, name)
			SELECT ?, 'user' || CAST(1000000 + i AS TEXT) || '@bench.test', 'user' || CAST(1000000 + i AS TEXT) || '@bench.test', 'x', 'member', ?,
				? - (i % 180) * 86400 - 3600,
				CASE WHEN i % 2 = 0 THEN CAST(? AS BIGINT) + ((i % 3) - 1) * 86400 * 7 + 3600 ELSE NULL END,
				CASE WHEN i % 5 = 0 THEN '' ELSE 'Bench Member ' || CAST(i AS TEXT) END
			FROM c`, []any{n, workspaceID, t, t, t}},
		{`INSERT INTO totp_credentials (workspace_id, user_id, key_id, secret, created_at, confirmed_at)
			SELECT workspace_id, id, 'k', ?, created_at, created_at + 600 FROM users WHERE workspace_id = ? AND id % 10 < 6`, []any{[]byte{0}, workspaceID}},
		{`INSERT INTO webauthn_credentials (workspace_id, user_id, name, credential_id, public_key, created_at)
			SELECT workspace_id, id, 'key', ` + idBytes + `, ?, created_at + 900 FROM users WHERE workspace_id = ? AND id % 10 = 6`, []any{[]byte{0}, workspaceID}},
		{`WITH RECURSIVE k(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM k WHERE j < 10)
			INSERT INTO recovery_codes (workspace_id, user_id, code_hash, created_at, used_at)
			SELECT u.workspace_id, u.id, 'h', u.created_at, CASE WHEN u.id % 4 = 0 AND k.j > 2 THEN CAST(? AS BIGINT) ELSE NULL END
			FROM users u CROSS JOIN k WHERE u.workspace_id = ? AND u.id % 10 < 7`, []any{t, workspaceID}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			tb.Fatalf("fixture: %v", err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}
