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
	"sync/atomic"
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
	// db takes the writes, rdb the reads outside a write transaction. On
	// PostgreSQL they are one pool; on SQLite db is the one writer
	// connection, rdb a pool of read-only ones, and w the group commit
	// that runs the write transactions (writer.go).
	db     *sql.DB
	rdb    *sql.DB
	w      *writer
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
	s := &Store{url: databaseURL, Now: time.Now}
	var err error
	if IsPostgresURL(databaseURL) {
		s.db, s.engine, err = openPostgres(ctx, databaseURL)
		s.rdb = s.db
	} else {
		var ckpt *sql.DB
		s.db, s.rdb, ckpt, s.engine, err = openSQLite(ctx, databaseURL)
		if err == nil {
			s.w = newWriter(s.db, ckpt)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return s, nil
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

// DB exposes the pool that takes writes (on SQLite, the one writer
// connection), for tests and tools that write outside the store.
func (s *Store) DB() *sql.DB { return s.db }

// Close stops the group commit and closes the pools.
func (s *Store) Close() error {
	if s.w != nil {
		s.w.close()
	}
	err := s.db.Close()
	if s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.q(ctx).QueryRowContext(ctx, `SELECT 1`).Scan(&one)
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
		if r.Source.Version == nameKeyVersion {
			if err := s.rekeyNames(ctx); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
		}
	}
	return nil
}

// nameKeyVersion is the migration that adds users.name_key.
const nameKeyVersion = 19

// rekeyNames sets users.name_key to NameKey(name) where the migration's
// SQL lower() left another form (non-ASCII letters on SQLite, whose
// lower() only knows ASCII). It runs once, right after that migration,
// over the members that have a name.
func (s *Store) rekeyNames(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, name, name_key FROM users WHERE name <> ''`)
		if err != nil {
			return fmt.Errorf("rekey names: %w", err)
		}
		type fix struct {
			id  int64
			key string
		}
		var fixes []fix
		for rows.Next() {
			var id int64
			var name, key string
			if err := rows.Scan(&id, &name, &key); err != nil {
				rows.Close()
				return fmt.Errorf("rekey names: %w", err)
			}
			if k := NameKey(name); k != key {
				fixes = append(fixes, fix{id, k})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("rekey names: %w", err)
		}
		for _, f := range fixes {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET name_key = ? WHERE id = ?`, f.key, f.id); err != nil {
				return fmt.Errorf("rekey names: %w", err)
			}
		}
		return nil
	})
}

// now returns the store clock in unix seconds.
func (s *Store) now() int64 { return s.Now().Unix() }

// tx runs fn in one transaction, committing when it returns nil. On
// SQLite fn runs in the writer's group commit: with the other writes
// waiting at that moment, each in a savepoint of its own, one after the
// other, in one transaction (writer.go). fn sees and decides exactly as
// it would alone; its writes are durable when tx returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if a := s.ambient(ctx); a != nil {
		return a.savepoint(ctx, fn)
	}
	if s.w != nil {
		return s.w.run(ctx, fn)
	}
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

// exec runs one writing statement as a transaction of its own (on
// SQLite, a step of the group commit).
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if a := s.ambient(ctx); a != nil {
		// One statement needs no savepoint: SQLite (the only engine with
		// a Within transaction) undoes a failed statement's changes and
		// nothing else.
		return a.tx.ExecContext(ctx, query, args...)
	}
	if s.w == nil {
		return s.db.ExecContext(ctx, query, args...)
	}
	var res sql.Result
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// queryRowWrite runs a writing statement that returns a row (UPDATE …
// RETURNING) as a transaction of its own; scan reads the row through row.
// An error scan returns rolls the statement back.
func (s *Store) queryRowWrite(ctx context.Context, scan func(row func(query string, args ...any) *sql.Row) error) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		return scan(func(query string, args ...any) *sql.Row { return tx.QueryRowContext(ctx, query, args...) })
	})
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
	if a := s.ambient(ctx); a != nil {
		return fn(a.tx)
	}
	return s.engine.readTx(ctx, s.rdb, fn)
}

// Within runs fn so that the store calls it makes with the context it is
// given share one write transaction: on SQLite, one step of the group
// commit. Each call stays atomic on its own (a write transaction of the
// store becomes a savepoint: its error rolls back its own writes only)
// and what each call kept commits together when fn returns, whatever fn
// returns; Within returns fn's error, or the commit's. Reads inside see
// the writes before them and run on the writer's connection, whose pages
// stay cached, so a request that reads and writes a few rows in turn takes
// the database's locks once instead of once a statement.
//
// Every store call in fn must use the context fn is given (or one made
// from it): a call with another context would queue for the writer that
// is running fn, and wait for ever. On PostgreSQL, fn simply runs: each
// call is its own transaction, as outside Within.
func (s *Store) Within(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.w == nil || s.ambient(ctx) != nil {
		return fn(ctx)
	}
	var ferr error
	err := s.w.run(ctx, func(tx *sql.Tx) error {
		a := &ambient{s: s, tx: tx}
		defer a.done.Store(true)
		ferr = fn(context.WithValue(ctx, ambientKey{}, a))
		return nil
	})
	if err != nil {
		return err
	}
	return ferr
}

// Carry returns to with the transaction of the Within from is in, if any:
// for a context made afresh (context.Background) inside Within.
func Carry(from, to context.Context) context.Context {
	if a, _ := from.Value(ambientKey{}).(*ambient); a != nil {
		return context.WithValue(to, ambientKey{}, a)
	}
	return to
}

type ambientKey struct{}

// ambient is the transaction of a Within.
type ambient struct {
	s    *Store
	tx   *sql.Tx
	done atomic.Bool
}

// ambient returns the transaction of the Within ctx is in, for this
// store; nil outside.
func (s *Store) ambient(ctx context.Context) *ambient {
	a, _ := ctx.Value(ambientKey{}).(*ambient)
	if a == nil || a.s != s || a.done.Load() {
		// After Within returned, its context is an ordinary one.
		return nil
	}
	return a
}

// q is where a read outside a write transaction goes: the transaction of
// the Within ctx is in, or the reader pool.
func (s *Store) q(ctx context.Context) querier {
	if a := s.ambient(ctx); a != nil {
		return a.tx
	}
	return s.rdb
}

// savepoint runs fn in the Within's transaction, as a savepoint: fn's
// error or panic rolls back fn's writes only.
func (a *ambient) savepoint(ctx context.Context, fn func(tx *sql.Tx) error) error {
	err, p, lost := inSavepoint(ctx, a.tx, "inner", fn)
	if p != nil {
		panic(p)
	}
	return errors.Join(err, lost)
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
	if err := s.engine.backup(ctx, s.rdb, path); err != nil {
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
