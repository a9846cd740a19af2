package db

import "testing"

// The store's statements are written with ?; PostgreSQL gets $1, $2, …
// and nothing inside a literal, a quoted name or a comment is numbered.
func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT * FROM t WHERE a = ? AND b IN (?, ?)`, `SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)`},
		{`SELECT '?', "a?b", ? FROM t`, `SELECT '?', "a?b", $1 FROM t`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{`INSERT INTO s (token) VALUES ($1)`, `INSERT INTO s (token) VALUES ($1)`},
		{`SELECT 'unterminated ?`, `SELECT 'unterminated ?`},
		{`SELECT a - ?`, `SELECT a - $1`},
	} {
		if got := rebind(c.in); got != c.want {
			t.Errorf("rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
