package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// TestOpenPragmas holds the writer connection and several read
// connections at once, so that each is a different SQLite connection, and
// checks that every one of them got the DSN's settings: a pragma run once
// with Exec would reach only one. The readers are read-only.
func TestOpenPragmas(t *testing.T) {
	store, _ := dbtest.NewSQLite(t)
	ctx := context.Background()
	conns := make([]*sql.Conn, 5)
	for i := range conns {
		pool := store.ReaderDB()
		if i == 0 {
			pool = store.DB()
		}
		c, err := pool.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		for _, p := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"foreign_keys", "1"},
			{"busy_timeout", "10000"},
			{"synchronous", "1"}, // NORMAL
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatalf("conn %d: PRAGMA %s: %v", i, p.pragma, err)
			}
			if got != p.want {
				t.Errorf("conn %d: PRAGMA %s = %q, want %q", i, p.pragma, got, p.want)
			}
		}
		if i > 0 {
			if _, err := c.ExecContext(ctx, `DELETE FROM audit_events`); err == nil || !strings.Contains(err.Error(), "readonly") {
				t.Errorf("read conn %d wrote: %v", i, err)
			}
		}
	}

	// Transactions begin IMMEDIATE: an empty transaction already holds the
	// write lock, so another connection (another process's) cannot begin a
	// write one.
	tx, err := conns[0].BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	path, _ := db.SQLiteFile(store.URL())
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.ExecContext(ctx, `BEGIN IMMEDIATE`)
	var se sqlite3.Error
	if !errors.As(err, &se) || se.Code != sqlite3.ErrBusy {
		t.Errorf("BEGIN IMMEDIATE beside an open store transaction: %v, want SQLITE_BUSY", err)
	}
	if err == nil {
		other.ExecContext(ctx, `ROLLBACK`)
	}
}

// TestOpenForeignKeys: a row pointing at nothing is refused on whichever
// connection runs it.
func TestOpenForeignKeys(t *testing.T) {
	store, _ := dbtest.NewSQLite(t)
	ctx := context.Background()
	for i := range 3 {
		_, err := store.DB().ExecContext(ctx, `INSERT INTO audit_events (workspace_id, event, created_at) VALUES (999999, 'x', 0)`)
		var se sqlite3.Error
		if !errors.As(err, &se) || se.ExtendedCode != sqlite3.ErrConstraintForeignKey {
			t.Fatalf("insert #%d with a missing workspace: %v, want a foreign key error", i, err)
		}
	}
}

// TestBackupWhileWriting takes a backup of a database of a few thousand
// pages (several backup steps) while members are created and events
// audited on other connections, then opens the copy.
func TestBackupWhileWriting(t *testing.T) {
	store, _ := dbtest.NewSQLite(t)
	ctx := context.Background()
	ws, err := store.CreateWorkspace(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	// About 10 MB of audit rows: 2,500 pages and more.
	if _, err := store.DB().ExecContext(ctx, `
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)
		INSERT INTO audit_events (workspace_id, event, details, created_at)
		SELECT ?, 'test.padding', '{"pad":"' || hex(randomblob(2000)) || '"}', 0 FROM n`, ws.ID); err != nil {
		t.Fatal(err)
	}

	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		created  atomic.Int64
		slowest  atomic.Int64
		writeErr = make(chan error, 4)
	)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				email := fmt.Sprintf("w%d-%d@acme.test", w, i)
				u, err := store.CreateUser(ctx, ws.ID, email, "member", "hash", db.Meta{}, 0)
				if err == nil {
					err = store.Audit(ctx, db.AuditEvent{WorkspaceID: ws.ID, SubjectUserID: u.ID, Event: "test.write"})
				}
				if err != nil {
					writeErr <- err
					return
				}
				created.Add(1)
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
		}()
	}
	// Let the writers get going, then back up while they write.
	for created.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	before := created.Load()
	path := filepath.Join(t.TempDir(), "copy.db")
	start := time.Now()
	err = store.Backup(ctx, path)
	took := time.Since(start)
	after := created.Load()
	close(stop)
	wg.Wait()
	close(writeErr)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	for err := range writeErr {
		t.Fatalf("a write beside the backup failed: %v", err)
	}
	t.Logf("backup took %s; %d members created during it; slowest write %s", took, after-before, time.Duration(slowest.Load()))

	copyStore, _ := dbtest.Open(t, path)
	var check string
	if err := copyStore.DB().QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of the copy: %q, %v", check, err)
	}
	rows, err := copyStore.DB().QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Errorf("foreign_key_check of the copy found a broken reference")
	}
	rows.Close()
	if got, err := copyStore.WorkspaceBySlug(ctx, "acme"); err != nil || got.Name != "Acme" {
		t.Fatalf("workspace in the copy: %+v, %v", got, err)
	}
	var pad, members, events int64
	copyStore.DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE event = 'test.padding'`).Scan(&pad)
	copyStore.DB().QueryRowContext(ctx, `SELECT count(*) FROM users WHERE workspace_id = ?`, ws.ID).Scan(&members)
	copyStore.DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE event = 'test.write'`).Scan(&events)
	if pad != 2500 {
		t.Errorf("padding rows in the copy: %d, want 2500", pad)
	}
	// The copy is one moment of the database: every member whose writes
	// were done before the backup began, none made after it ended.
	if members < before || members > after+3 {
		t.Errorf("members in the copy: %d, want between %d and %d", members, before, after+3)
	}
	if events < before || events > members {
		t.Errorf("write events in the copy: %d, want between %d and %d (members)", events, before, members)
	}
}

func TestBackupRefusesNonEmptyFile(t *testing.T) {
	store, _ := dbtest.NewSQLite(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := store.Backup(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := store.Backup(ctx, path); err == nil {
		t.Fatalf("a second Backup to %s overwrote the first", path)
	}
}

// TestDashboardBesideWriter: the dashboard reads its snapshot while another
// connection holds the write lock, instead of waiting for it.
func TestDashboardBesideWriter(t *testing.T) {
	store, _ := dbtest.NewSQLite(t)
	ctx := context.Background()
	ws, err := store.CreateWorkspace(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := store.DB().BeginTx(ctx, nil) // IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, _, err := store.Dashboard(ctx2, ws.ID, db.Policy{}, 7, time.Now()); err != nil {
		t.Fatalf("Dashboard beside an open write transaction: %v", err)
	}
}

// A database URL of a scheme Gatehouse has no engine for is refused, not
// taken for a SQLite path (a file "mysql:" in the working directory).
func TestOpenRefusesOtherSchemes(t *testing.T) {
	for _, u := range []string{"mysql://gatehouse@127.0.0.1/gatehouse", "http://example.com/db"} {
		if s, err := db.Open(context.Background(), u); err == nil || !strings.Contains(err.Error(), "unsupported database URL") {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%q) = %v, want unsupported database URL", u, err)
		}
	}
	for u, want := range map[string]string{"data/gh.db": "data/gh.db", "sqlite://data/gh.db?x=1": "data/gh.db", "file:gh.db": "gh.db"} {
		if got, ok := db.SQLiteFile(u); !ok || got != want {
			t.Errorf("SQLiteFile(%q) = %q, %v; want %q", u, got, ok, want)
		}
	}
	if _, ok := db.SQLiteFile("postgres://h/db"); ok {
		t.Error("SQLiteFile took a postgres:// URL")
	}
}
