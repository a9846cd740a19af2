package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// postgresEngine is PostgreSQL through pgx's database/sql driver, for
// several app nodes sharing one database. Transactions run at READ
// COMMITTED; a statement that reads what its transaction then writes locks
// the rows it read (lockRows), where SQLite's single writer needs nothing.
type postgresEngine struct{}

func (postgresEngine) name() string { return "postgres" }

// migrations run under goose's session lock (a PostgreSQL advisory lock):
// nodes started together migrate one after the other, and the later ones
// find nothing left to do.
func (postgresEngine) migrations() (goose.Dialect, string, []goose.ProviderOption, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return "", "", nil, err
	}
	return goose.DialectPostgres, "postgres", []goose.ProviderOption{goose.WithSessionLocker(locker)}, nil
}

// forUpdate locks the rows read without blocking the foreign-key checks of
// inserts that point at them (FOR NO KEY UPDATE, not FOR UPDATE): a
// member's lock does not stop the audit rows and sessions that name them.
func (postgresEngine) forUpdate() string { return " FOR NO KEY UPDATE" }

// skipLocked makes a claim pass over the rows another claim is taking, so
// that several senders take different rows instead of queueing.
func (postgresEngine) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

// openPostgres opens a pool on a postgres:// URL. The store's statements
// are written with ? placeholders; the connector numbers them ($1, $2, …)
// as PostgreSQL wants.
func openPostgres(ctx context.Context, databaseURL string) (*sql.DB, engine, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, nil, err
	}
	sqldb := sql.OpenDB(rebindConnector{stdlib.GetConnector(*cfg)})
	sqldb.SetMaxOpenConns(16)
	sqldb.SetMaxIdleConns(16)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, nil, err
	}
	return sqldb, postgresEngine{}, nil
}

// readTx is a REPEATABLE READ, READ ONLY transaction: one snapshot, no
// locks taken.
func (postgresEngine) readTx(ctx context.Context, db *sql.DB, fn func(q querier) error) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// backup runs pg_dump (custom format) into path. pg_dump reads one
// snapshot, so the copy is consistent while sign-ins go on; the connection
// settings go to it in the environment, never on its command line.
// pg_restore brings it back (docs/OPERATIONS.md).
func (postgresEngine) backup(ctx context.Context, db *sql.DB, path string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*rebindConn)
		if !ok {
			return fmt.Errorf("connection is a %T", dc)
		}
		cfg := c.Conn.Conn().Config()
		env := append(os.Environ(),
			"PGHOST="+cfg.Host, "PGPORT="+strconv.Itoa(int(cfg.Port)), "PGUSER="+cfg.User,
			"PGPASSWORD="+cfg.Password, "PGDATABASE="+cfg.Database)
		if cfg.TLSConfig == nil {
			env = append(env, "PGSSLMODE=disable")
		} else {
			env = append(env, "PGSSLMODE=require")
		}
		cmd := exec.CommandContext(ctx, pgDump(), "--format=custom", "--no-owner", "--file="+path)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pg_dump: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	conn.Close()
	return err
}

// pgDump finds pg_dump: on the PATH, else the newest of Debian's
// /usr/lib/postgresql/N/bin (a service's environment may have no PATH).
func pgDump() string {
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	best, bestV := "pg_dump", -1
	for _, f := range found {
		if v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(f)))); err == nil && v > bestV {
			best, bestV = f, v
		}
	}
	return best
}

// postgresUniqueViolation reports whether err is PostgreSQL's
// unique_violation (23505).
func postgresUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// postgresInvalidText reports whether err is PostgreSQL refusing a text
// argument: a NUL byte or invalid UTF-8 (22021).
func postgresInvalidText(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22021"
}

// rebindConnector hands out connections that number ? placeholders.
type rebindConnector struct{ driver.Connector }

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rebindConn{conn.(*stdlib.Conn)}, nil
}

// rebindConn is pgx's connection with each statement's ? placeholders
// numbered. Statements already written with $n (goose's, scs's) have no ?
// and pass unchanged.
type rebindConn struct{ *stdlib.Conn }

func (c *rebindConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(rebind(query))
}

func (c *rebindConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c *rebindConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	q, args := storeStatement(query, args)
	return c.Conn.ExecContext(ctx, q, args)
}

func (c *rebindConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, args := storeStatement(query, args)
	return c.Conn.QueryContext(ctx, q, args)
}

// storeStatement numbers the placeholders of one of the store's statements
// (written with ?) and passes its Go booleans as 0 or 1: a flag is a
// SMALLINT on both engines (SQLite has no boolean type), and pgx will not
// put a bool in one. Statements written for PostgreSQL ($1: goose's,
// scs's) pass unchanged, booleans and all.
func storeStatement(query string, args []driver.NamedValue) (string, []driver.NamedValue) {
	q := rebind(query)
	if q == query {
		return query, args
	}
	return q, flags(args)
}

func flags(args []driver.NamedValue) []driver.NamedValue {
	for i, a := range args {
		if b, ok := a.Value.(bool); ok {
			args[i].Value = int64(0)
			if b {
				args[i].Value = int64(1)
			}
		}
	}
	return args
}

// rebind numbers the ? placeholders of query, leaving string literals,
// quoted identifiers and comments alone.
func rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch {
		case ch == '\'' || ch == '"':
			j := strings.IndexByte(query[i+1:], ch)
			if j < 0 {
				b.WriteString(query[i:])
				i = len(query)
				continue
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
		case ch == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case ch == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}
