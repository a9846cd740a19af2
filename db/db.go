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
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
)

// ErrNotFound is returned when a row does not exist in the caller's scope.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would break a uniqueness rule.
var ErrConflict = errors.New("conflict")

// Migrations holds each engine's goose migrations, a folder each.
//
//go:embed migrations
var Migrations embed.FS

// Store is the database behind Gatehouse. Every exported method is one
// transaction at most, and every method on a workspace's rows takes the
// workspace id right after the context.
type Store struct {
	db     *sql.DB
	engine engine
	url    string
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// engine is what differs between SQLite and PostgreSQL, one file each
// (engine_sqlite.go, engine_postgres.go). Every statement of the store is
// written once, with ? placeholders, in SQL both engines run.
type engine interface {
	name() string
	// migrations are the engine's goose dialect, its folder under
	// migrations/ and goose's options for it.
	migrations() (goose.Dialect, string, []goose.ProviderOption, error)
	readTx(ctx context.Context, db *sql.DB, fn func(q querier) error) error
	backup(ctx context.Context, db *sql.DB, path string) error
	// forUpdate ends a SELECT whose rows the transaction goes on to
	// decide from and write: it locks them until commit. Empty where every
	// write transaction already holds the database's one write lock.
	forUpdate() string
	// skipLocked ends the SELECT of a claim (the outbox's): rows another
	// transaction has locked are passed over, not waited for.
	skipLocked() string
}

// Open opens the database named by databaseURL: a postgres:// (or
// postgresql://) URL for PostgreSQL, anything else for a SQLite file (a
// path, sqlite://path or file:path). It does not migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	var (
		sqldb *sql.DB
		eng   engine
		err   error
	)
	if IsPostgresURL(databaseURL) {
		sqldb, eng, err = openPostgres(ctx, databaseURL)
	} else {
		sqldb, eng, err = openSQLite(ctx, databaseURL)
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return &Store{db: sqldb, engine: eng, url: databaseURL, Now: time.Now}, nil
}

// URL is the database URL the store was opened with, credentials
// included: for opening a second handle on the same database, never for a
// log.
func (s *Store) URL() string { return s.url }

// IsPostgresURL reports whether databaseURL names a PostgreSQL database.
func IsPostgresURL(databaseURL string) bool {
	return strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://")
}

// Engine names the database engine: "sqlite" or "postgres".
func (s *Store) Engine() string { return s.engine.name() }

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
	dialect, dir, opts, err := s.engine.migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sub, err := fs.Sub(Migrations, "migrations/"+dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(dialect, s.db, sub, opts...)
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

// lockMember locks the member's users row until the transaction ends, so
// that what it reads of the member's factors, codes, guards, sessions and
// links stays true until it commits: two requests for one member (on one
// node or several) take turns. A transaction that needs the workspace's
// lock takes it first (lockWorkspace), never after a member's.
func (s *Store) lockMember(ctx context.Context, tx *sql.Tx, workspaceID, userID int64) error {
	if s.engine.forUpdate() == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT id FROM users WHERE workspace_id = ? AND id = ?`+s.engine.forUpdate(), workspaceID, userID); err != nil {
		return fmt.Errorf("lock member: %w", err)
	}
	return nil
}

// lockWorkspace locks the workspace's row until the transaction ends, for
// the rules over many members (the last owner, the policy and its
// deadlines, applications).
func (s *Store) lockWorkspace(ctx context.Context, tx *sql.Tx, workspaceID int64) error {
	if s.engine.forUpdate() == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT id FROM workspaces WHERE id = ?`+s.engine.forUpdate(), workspaceID); err != nil {
		return fmt.Errorf("lock workspace: %w", err)
	}
	return nil
}

// readTx runs fn in one read-only transaction: one snapshot of the
// database that takes no write lock.
func (s *Store) readTx(ctx context.Context, fn func(q querier) error) error {
	return s.engine.readTx(ctx, s.db, fn)
}

// isUniqueViolation reports whether err is a unique or primary key
// violation, on either engine.
func isUniqueViolation(err error) bool {
	return sqliteUniqueViolation(err) || postgresUniqueViolation(err)
}

// notFound maps sql.ErrNoRows to ErrNotFound and wraps everything else.
// A lookup by a text no row can hold (a NUL byte or invalid UTF-8, which
// PostgreSQL refuses outright and the store never writes) finds nothing
// too, on both engines.
func notFound(op string, err error) error {
	if errors.Is(err, sql.ErrNoRows) || postgresInvalidText(err) {
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

// Backup writes a consistent copy of the live database to path while
// sign-ins go on: SQLite's online backup API into a new SQLite file, or
// pg_dump's custom format for PostgreSQL. path must not exist or be empty.
func (s *Store) Backup(ctx context.Context, path string) error {
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return fmt.Errorf("backup: %s is not empty", path)
	}
	if err := s.engine.backup(ctx, s.db, path); err != nil {
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
