// Package dbtest opens real, migrated databases for tests: SQLite files,
// or PostgreSQL databases when GATEHOUSE_TEST_DATABASE_URL is set.
package dbtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
)

// Clock is a clock tests move by hand.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// New opens a new migrated database, closed when the test ends: a fresh
// PostgreSQL database when GATEHOUSE_TEST_DATABASE_URL is set (make
// test-postgres), else a SQLite file in a temporary directory. Its clock is
// a Clock starting at the current second.
func New(t testing.TB) (*db.Store, *Clock) {
	t.Helper()
	if Engine() == "postgres" {
		return Open(t, NewURL(t))
	}
	return Open(t, filepath.Join(t.TempDir(), "test.db"))
}

// Open opens and migrates the database at path (a SQLite file or any
// database URL).
func Open(t testing.TB, path string) (*db.Store, *Clock) {
	t.Helper()
	store, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Migrate(context.Background(), nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	clock := NewClock(time.Now().UTC().Truncate(time.Second))
	store.Now = clock.Now
	return store, clock
}

// NewSQLite opens a new migrated SQLite database whatever the engine of
// the run: for the tests of the SQLite engine itself (pragmas, locking,
// its online backup).
func NewSQLite(t testing.TB) (*db.Store, *Clock) {
	t.Helper()
	return Open(t, filepath.Join(t.TempDir(), "test.db"))
}

// Restore brings a backup taken by Store.Backup back as a new database and
// opens it: the SQLite file itself, or for PostgreSQL a new empty database
// that pg_restore fills (the steps of docs/OPERATIONS.md).
func Restore(t testing.TB, backup string) *db.Store {
	t.Helper()
	if Engine() != "postgres" {
		store, _ := Open(t, backup)
		return store
	}
	url := NewEmptyURL(t)
	if out, err := exec.Command("pg_restore", "--no-owner", "--exit-on-error", "--dbname="+url, backup).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	store, _ := Open(t, url)
	return store
}

// Contents returns every byte the database holds at rest, for tests that
// look for a secret stored in the clear: the SQLite file with its WAL after
// a checkpoint, or a plain-text pg_dump of the PostgreSQL database.
func Contents(t testing.TB, store *db.Store) []byte {
	t.Helper()
	if store.Engine() == "postgres" {
		out, err := exec.Command("pg_dump", "--format=plain", "--no-owner", "--dbname="+store.URL()).Output()
		if err != nil {
			t.Fatalf("pg_dump: %v", err)
		}
		return out
	}
	if _, err := store.DB().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	var path string
	if err := store.DB().QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil || path == "" {
		t.Fatalf("database path: %q %v", path, err)
	}
	var files []byte
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		files = append(files, b...)
	}
	return files
}

// Tables lists the database's tables, goose's and the engine's own left
// out.
func Tables(t testing.TB, store *db.Store) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version' ORDER BY name`
	if store.Engine() == "postgres" {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name <> 'goose_db_version' ORDER BY table_name`
	}
	rows, err := store.DB().Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if len(names) < 20 {
		t.Fatalf("found only %d tables: %v", len(names), names)
	}
	return names
}
