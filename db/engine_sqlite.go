package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"
)

// sqliteEngine is the embedded default: one file, mattn/go-sqlite3 (cgo).
type sqliteEngine struct{}

func (sqliteEngine) name() string { return "sqlite" }

// migrations need no lock of their own: goose's transaction of each
// migration holds the database's one write lock.
func (sqliteEngine) migrations() (goose.Dialect, string, []goose.ProviderOption, error) {
	return goose.DialectSQLite3, "sqlite", nil, nil
}

// forUpdate is empty: every write transaction begins IMMEDIATE and holds
// the database's one write lock, so nothing it reads can change under it.
func (sqliteEngine) forUpdate() string { return "" }

// skipLocked is empty: there is one writer at a time.
func (sqliteEngine) skipLocked() string { return "" }

// SQLiteFile returns the file a SQLite database URL names: a path,
// sqlite://path or file:path, its query left out. ok is false for a URL of
// another scheme (a postgres:// one) or an empty path.
func SQLiteFile(databaseURL string) (path string, ok bool) {
	if strings.Contains(databaseURL, "://") && !strings.HasPrefix(databaseURL, "sqlite://") {
		return "", false
	}
	path = strings.TrimPrefix(strings.TrimPrefix(databaseURL, "sqlite://"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return path, path != ""
}

// openSQLite opens the SQLite file of a path, sqlite://path or file:path
// as two pools: the writer, one connection that every write goes through
// (the store's group commit, writer.go, feeds it), and the readers, a few
// read-only connections. SQLite has one write lock per database: writers
// that share it in one process queue in Go, in order, instead of in
// SQLite's busy handler, which polls and sleeps.
func openSQLite(ctx context.Context, databaseURL string) (w, r, ckpt *sql.DB, _ engine, err error) {
	path, ok := SQLiteFile(databaseURL)
	if !ok && strings.Contains(databaseURL, "://") && !strings.HasPrefix(databaseURL, "sqlite://") {
		return nil, nil, nil, nil, errors.New("unsupported database URL: use a SQLite path (or sqlite://, file:) or postgres://")
	} else if !ok {
		return nil, nil, nil, nil, errors.New("empty SQLite path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	// Pragmas go in the DSN so that every connection gets them
	// (mattn/go-sqlite3 runs them on each new connection). BEGIN IMMEDIATE
	// (_txlock) makes a transaction take the write lock when it begins,
	// so that its reads stay true until it commits; another process (the
	// CLI beside a server) waits for the lock up to the busy timeout.
	// Each connection keeps its prepared statements (_stmt_cache_size):
	// the store's statements are a fixed set.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_synchronous", "NORMAL")
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate")
	q.Set("_stmt_cache_size", "128")
	dsn := "file:" + path + "?" + q.Encode()
	// The writer's statements are never interrupted by a request's
	// context: in a group commit (writer.go) an interrupted statement would
	// roll back the other requests' steps too. A step whose request is gone
	// before it runs is skipped instead.
	// The writer keeps a larger page cache (32 MiB, SQLite's default is 2):
	// as the only writer, nothing it caches goes stale, and the sign-in
	// step's rows (sessions, challenges, guards, the audit log's newest
	// pages) stay in memory instead of being read again from the file.
	// Readers start each transaction with an empty cache whenever the
	// database changed, so a big one would not help them.
	w = sql.OpenDB(sqliteConnector{dsn: dsn + "&_cache_size=-32768", uncancelable: true})
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	// The checkpointer's connection copies the WAL back into the database
	// file beside the writer (writer.go).
	ckpt = sql.OpenDB(sqliteConnector{dsn: dsn})
	ckpt.SetMaxOpenConns(1)
	ckpt.SetMaxIdleConns(1)
	q.Set("_query_only", "1")
	r = sql.OpenDB(sqliteConnector{dsn: "file:" + path + "?" + q.Encode()})
	r.SetMaxOpenConns(sqliteReaders)
	r.SetMaxIdleConns(sqliteReaders)
	r.SetConnMaxIdleTime(5 * time.Minute)
	// The writer first: it creates the file and turns WAL on.
	for _, db := range []*sql.DB{w, ckpt, r} {
		if err := db.PingContext(ctx); err != nil {
			w.Close()
			ckpt.Close()
			r.Close()
			return nil, nil, nil, nil, err
		}
	}
	return w, r, ckpt, sqliteEngine{}, nil
}

// sqliteReaders is how many read connections the pool keeps: reads run in
// parallel with each other and with the writer (WAL).
const sqliteReaders = 8

// sqliteConnector opens mattn/go-sqlite3 connections; uncancelable ones
// run every statement without the caller's cancellation.
type sqliteConnector struct {
	dsn          string
	uncancelable bool
}

var sqliteDriver = &sqlite3.SQLiteDriver{}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := sqliteDriver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	if c.uncancelable {
		// The checkpointer keeps the WAL short (writer.go); the writer's
		// own checkpoint, at a higher mark than SQLite's 1,000 pages, is
		// the backstop that lets the WAL start over from its beginning.
		if _, err := conn.(*sqlite3.SQLiteConn).Exec(`PRAGMA wal_autocheckpoint = 8000`, nil); err != nil {
			conn.Close()
			return nil, err
		}
		return uncancelableConn{conn.(*sqlite3.SQLiteConn)}, nil
	}
	return conn, nil
}

func (sqliteConnector) Driver() driver.Driver { return sqliteDriver }

// uncancelableConn passes its statements to SQLite without the caller's
// cancellation (context.WithoutCancel): database/sql still refuses to
// start a statement for a request that is gone, but a statement once
// started runs to its end. Without a Done channel mattn/go-sqlite3 also
// skips the goroutine it starts per statement to watch for cancellation.
type uncancelableConn struct{ *sqlite3.SQLiteConn }

func (c uncancelableConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.SQLiteConn.ExecContext(context.WithoutCancel(ctx), query, args)
}

func (c uncancelableConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.SQLiteConn.QueryContext(context.WithoutCancel(ctx), query, args)
}

func (c uncancelableConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.SQLiteConn.BeginTx(context.WithoutCancel(ctx), opts)
}

func (c uncancelableConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.SQLiteConn.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil, err
	}
	return uncancelableStmt{st.(*sqlite3.SQLiteStmt)}, nil
}

type uncancelableStmt struct{ *sqlite3.SQLiteStmt }

func (s uncancelableStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.SQLiteStmt.ExecContext(context.WithoutCancel(ctx), args)
}

func (s uncancelableStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.SQLiteStmt.QueryContext(context.WithoutCancel(ctx), args)
}

// readTx: mattn/go-sqlite3 ignores sql.TxOptions.ReadOnly and would begin
// the transaction IMMEDIATE (_txlock), queueing the reader behind every
// writer; a deferred BEGIN on a connection of its own does not.
func (sqliteEngine) readTx(ctx context.Context, db *sql.DB, fn func(q querier) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		return err
	}
	err = fn(conn)
	// The transaction ends even when ctx is done; a connection that cannot
	// end it is dropped rather than put back in the pool inside it.
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`); rerr != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
		if err == nil {
			err = rerr
		}
	}
	return err
}

// sqliteUniqueViolation reports whether err is SQLite's unique or primary
// key constraint error.
func sqliteUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	return false
}

// Backup steps: pages copied per step, and the pause between steps in which
// the source connection holds no read transaction.
const (
	backupStepPages = 1024
	backupPause     = 2 * time.Millisecond
	// backupStalls is how many steps may make no headway (SQLite starts
	// the copy over when another connection writes between two steps)
	// before the rest is copied in one step.
	backupStalls = 3
)

// backup copies the live database into a new SQLite file at path with
// SQLite's online backup API, without stopping writers.
//
// The copy goes backupStepPages at a time. Each step is one short read
// transaction on the source, and in WAL mode readers never block writers,
// so sign-ins go on during a backup. A write by another pooled connection
// between two steps makes SQLite start the copy over; after backupStalls
// of those the rest is copied in one step, one read snapshot, so a busy
// server cannot keep a backup from finishing.
func (sqliteEngine) backup(ctx context.Context, db *sql.DB, path string) error {
	// The destination is one plain connection, not a pool. FULL sync: the
	// copy is on disk when Backup returns.
	dest, err := (&sqlite3.SQLiteDriver{}).Open("file:" + path + "?_synchronous=FULL")
	if err != nil {
		return err
	}
	defer dest.Close()
	src, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	err = src.Raw(func(driverConn any) error {
		srcConn, ok := driverConn.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("source connection is a %T", driverConn)
		}
		b, err := dest.(*sqlite3.SQLiteConn).Backup("main", srcConn, "main")
		if err != nil {
			return err
		}
		pages, stalls, left := backupStepPages, 0, -1
		for {
			done, err := b.Step(pages)
			if err != nil {
				b.Finish()
				return err
			}
			if done {
				return b.Finish()
			}
			// A step that did not bring the pages left down by its size made
			// no headway: SQLite started over (another connection wrote) or
			// the source was busy.
			r := b.Remaining()
			if left >= 0 && r > left-pages {
				if stalls++; stalls >= backupStalls {
					pages = -1
				}
			}
			left = r
			if err := ctx.Err(); err != nil {
				b.Finish()
				return err
			}
			time.Sleep(backupPause)
		}
	})
	return err
}
