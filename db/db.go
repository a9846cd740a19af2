// Package db is Gatehouse's store: it opens the database, runs the embedded
// migrations and holds every SQL statement the application runs. Callers see
// one Store API whatever the engine.
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"
)

// ErrNotFound is returned when a row does not exist in the caller's scope.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would break a uniqueness rule.
var ErrConflict = errors.New("conflict")

//go:embed migrations
var migrations embed.FS

// Store is the database behind Gatehouse. Every exported method is one
// transaction at most, and every method on a workspace's rows takes the
// workspace id right after the context.
type Store struct {
	db      *sql.DB
	dialect dialect
	// Now is the clock; tests replace it.
	Now func() time.Time
}

type dialect int

const (
	dialectSQLite dialect = iota
)

// Open opens the database named by url: a postgres:// URL (not yet
// supported) or, by default, a SQLite file. It does not migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		return nil, errors.New("open database: PostgreSQL is not supported yet; leave GATEHOUSE_DATABASE_URL unset for SQLite")
	}
	path := strings.TrimPrefix(strings.TrimPrefix(databaseURL, "sqlite://"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return nil, errors.New("open database: empty SQLite path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
	}
	// Pragmas go in the DSN so that every pooled connection gets them
	// (mattn/go-sqlite3 runs them on each new connection). BEGIN IMMEDIATE
	// (_txlock) makes read-then-write transactions wait for the write lock
	// instead of failing with SQLITE_BUSY.
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_synchronous", "NORMAL")
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate")
	sqldb, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqldb.SetMaxOpenConns(8)
	sqldb.SetMaxIdleConns(8)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	return &Store{db: sqldb, dialect: dialectSQLite, Now: time.Now}, nil
}

// SQLitePath is the database URL of the embedded default in dataDir.
func SQLitePath(dataDir string) string {
	return filepath.Join(dataDir, "gatehouse.db")
}

// DB exposes the pool, for the session store and health checks.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Migrate applies every pending migration.
func (s *Store) Migrate(ctx context.Context, log *slog.Logger) error {
	sub, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.db, sub)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		if log != nil {
			log.Info("migration applied", slog.Int64("version", r.Source.Version), slog.String("file", filepath.Base(r.Source.Path)))
		}
	}
	return nil
}

// now returns the store clock in unix seconds.
func (s *Store) now() int64 { return s.Now().Unix() }

// tx runs fn in one transaction, committing when it returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// readTx runs fn in one read transaction: one snapshot of the database that
// takes no write lock. mattn/go-sqlite3 ignores sql.TxOptions.ReadOnly and
// would begin it IMMEDIATE (_txlock), queueing the reader behind every
// writer; a deferred BEGIN on a connection of its own does not.
func (s *Store) readTx(ctx context.Context, fn func(q querier) error) error {
	conn, err := s.db.Conn(ctx)
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

// isUniqueViolation reports whether err is a unique or primary key violation.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	return false
}

// notFound maps sql.ErrNoRows to ErrNotFound and wraps everything else.
func notFound(op string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func nullTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(v.Int64, 0).UTC()
}

func unix(v int64) time.Time { return time.Unix(v, 0).UTC() }

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

// Backup writes a consistent copy of the live database to path with SQLite's
// online backup API, without stopping writers. path must not exist or be
// empty; Backup returns an error if it holds anything else.
//
// The copy goes backupStepPages at a time. Each step is one short read
// transaction on the source, and in WAL mode readers never block writers,
// so sign-ins go on during a backup. A write by another pooled connection
// between two steps makes SQLite start the copy over; after backupStalls
// of those the rest is copied in one step, one read snapshot, so a busy
// server cannot keep a backup from finishing.
func (s *Store) Backup(ctx context.Context, path string) error {
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return fmt.Errorf("backup: %s is not empty", path)
	}
	// The destination is one plain connection, not a pool. FULL sync: the
	// copy is on disk when Backup returns.
	dest, err := (&sqlite3.SQLiteDriver{}).Open("file:" + path + "?_synchronous=FULL")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer dest.Close()
	src, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
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
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// inList returns "?, ?, ?" for the values and the values as arguments.
func inList[T any](vals []T) (string, []any) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", "), args
}
