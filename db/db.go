// Package db is Gatehouse's store: it opens the database, runs the embedded
// migrations and holds every SQL statement the application runs. Callers see
// one Store API whatever the engine.
package db

import (
	"context"
	"database/sql"
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

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
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
	// Pragmas go in the DSN so that every pooled connection gets them.
	// BEGIN IMMEDIATE (_txlock) makes read-then-write transactions wait for
	// the write lock instead of failing with SQLITE_BUSY.
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
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

// isUniqueViolation reports whether err is a unique or primary key violation.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
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

// Backup writes a consistent copy of the live database to path (VACUUM
// INTO), without stopping writers.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
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
