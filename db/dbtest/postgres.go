package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the admin connection
)

// PostgresURLEnv names the PostgreSQL server the tests run on. When it is
// set, every test database is a fresh PostgreSQL database on it; when it is
// not, a SQLite file. make test-postgres sets it to a throwaway cluster
// (cmd/pgtemp).
const PostgresURLEnv = "GATEHOUSE_TEST_DATABASE_URL"

// Engine is the engine the tests of this process run on: "postgres" or
// "sqlite".
func Engine() string {
	if os.Getenv(PostgresURLEnv) != "" {
		return "postgres"
	}
	return "sqlite"
}

var template struct {
	once sync.Once
	name string
	err  error
}

// NewURL returns the URL of a new, migrated, empty database for the test,
// dropped when it ends: a copy of a template database migrated once for
// each version of the migrations (CREATE DATABASE … TEMPLATE), which takes
// a few milliseconds where migrating takes a hundred.
func NewURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(PostgresURLEnv)
	if admin == "" {
		return "sqlite://" + t.TempDir() + "/test.db"
	}
	template.once.Do(func() { template.name, template.err = ensureTemplate(admin) })
	if template.err != nil {
		t.Fatalf("postgres template: %v", template.err)
	}
	return newDatabase(t, admin, `TEMPLATE `+template.name+` STRATEGY FILE_COPY`)
}

// NewEmptyURL returns the URL of a new PostgreSQL database with no tables,
// dropped when the test ends (a restore's target).
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(PostgresURLEnv)
	if admin == "" {
		t.Fatalf("NewEmptyURL needs %s", PostgresURLEnv)
	}
	return newDatabase(t, admin, `TEMPLATE template0`)
}

func newDatabase(t testing.TB, admin, options string) string {
	t.Helper()
	conn, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b [8]byte
	rand.Read(b[:])
	name := "gh_t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(`CREATE DATABASE ` + name + ` ` + options); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := sql.Open("pgx", admin)
		if err != nil {
			t.Errorf("drop test database: %v", err)
			return
		}
		defer conn.Close()
		if _, err := conn.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// withDatabase is the admin URL with its database replaced by name.
func withDatabase(admin, name string) string {
	u, err := url.Parse(admin)
	if err != nil {
		return admin
	}
	u.Path = "/" + name
	return u.String()
}

// ensureTemplate makes the template database of the current migrations
// unless it exists. Test processes run side by side (go test runs packages
// in parallel), so an advisory lock lets one of them build it.
func ensureTemplate(admin string) (string, error) {
	name := "gh_template_" + migrationsDigest()
	conn, err := sql.Open("pgx", admin)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx := context.Background()
	c, err := conn.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `SELECT pg_advisory_lock(7263541)`); err != nil {
		return "", err
	}
	defer c.ExecContext(ctx, `SELECT pg_advisory_unlock(7263541)`)
	var exists bool
	if err := c.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_build"
	if _, err := c.ExecContext(ctx, `DROP DATABASE IF EXISTS `+building+` WITH (FORCE)`); err != nil {
		return "", err
	}
	if _, err := c.ExecContext(ctx, `CREATE DATABASE `+building); err != nil {
		return "", err
	}
	store, err := db.Open(ctx, withDatabase(admin, building))
	if err != nil {
		return "", err
	}
	err = store.Migrate(ctx, nil)
	store.Close()
	if err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	if _, err := c.ExecContext(ctx, `ALTER DATABASE `+building+` RENAME TO `+name); err != nil {
		return "", err
	}
	if _, err := c.ExecContext(ctx, `ALTER DATABASE `+name+` IS_TEMPLATE true`); err != nil {
		return "", err
	}
	return name, nil
}

// migrationsDigest names the migrations' current version: a hash of every
// file of db's PostgreSQL migrations.
func migrationsDigest() string {
	h := sha256.New()
	fs.WalkDir(db.Migrations, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, "postgres") {
			return err
		}
		b, err := fs.ReadFile(db.Migrations, path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}
