package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// Tables that belong to no workspace. Every other table must have a
// workspace_id NOT NULL column, so that every row is scoped.
var globalTables = map[string]string{
	"workspaces":       "the tenants themselves",
	"sessions":         "scs session data, keyed by token hash; its register user_sessions is scoped",
	"throttles":        "counters keyed by hashed account/IP keys, or by member or staff ids",
	"outbox":           "platform mail has no workspace; workspace mail sets workspace_id",
	"audit_events":     "platform events have no workspace; workspace events set workspace_id",
	"goose_db_version": "migration bookkeeping",
}

func TestSchemaScopesEveryTable(t *testing.T) {
	store, _ := dbtest.New(t)
	columnsSQL := `SELECT name, "notnull" FROM pragma_table_info(?)`
	if store.Engine() == "postgres" {
		columnsSQL = `SELECT column_name, CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = ?`
	}
	tables := dbtest.Tables(t, store)
	for _, table := range tables {
		var notnull int
		var found bool
		cols, err := store.DB().Query(columnsSQL, table)
		if err != nil {
			t.Fatal(err)
		}
		for cols.Next() {
			var name string
			var nn int
			cols.Scan(&name, &nn)
			if name == "workspace_id" {
				found, notnull = true, nn
			}
		}
		cols.Close()
		if _, global := globalTables[table]; global {
			continue
		}
		if !found || notnull != 1 {
			t.Errorf("table %s has no workspace_id NOT NULL column and is not on the global list", table)
		}
	}
}

func TestAuditIsAppendOnly(t *testing.T) {
	store, _ := dbtest.New(t)
	ctx := context.Background()
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	if err := store.Audit(ctx, db.AuditEvent{WorkspaceID: ws.ID, Event: "test.event", Details: map[string]any{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.DB().Exec(`UPDATE audit_events SET event = 'forged'`); err == nil {
		t.Error("UPDATE on audit_events succeeded")
	}
	if _, err := store.DB().Exec(`DELETE FROM audit_events`); err == nil {
		t.Error("DELETE on audit_events succeeded")
	}
	evs, err := store.AuditEvents(ctx, ws.ID, db.AuditFilter{Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].Event != "test.event" || evs[0].Details["k"] != "v" {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	other, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	if evs, _ := store.AuditEvents(ctx, other.ID, db.AuditFilter{Limit: 10}); len(evs) != 0 {
		t.Fatalf("globex sees acme's events: %+v", evs)
	}
}

func TestUsersScopedAndUnique(t *testing.T) {
	store, _ := dbtest.New(t)
	ctx := context.Background()
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	globex, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	if _, err := store.CreateWorkspace(ctx, "acme", "Again"); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("duplicate slug: %v, want ErrConflict", err)
	}
	a, err := store.CreateUser(ctx, acme.ID, "Alice@Example.test", db.RoleMember, "h", db.Meta{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateUser(ctx, acme.ID, "alice@example.TEST", db.RoleMember, "h", db.Meta{}, 0); !errors.Is(err, db.ErrConflict) {
		t.Fatalf("duplicate email, other case: %v, want ErrConflict", err)
	}
	g, err := store.CreateUser(ctx, globex.ID, "alice@example.test", db.RoleOwner, "h2", db.Meta{}, 0)
	if err != nil || g.ID == a.ID {
		t.Fatalf("same email in another workspace: %+v, %v", g, err)
	}
	if _, err := store.UserByID(ctx, globex.ID, a.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("acme's user through globex: %v, want ErrNotFound", err)
	}
	if u, err := store.UserByEmail(ctx, acme.ID, " ALICE@example.test "); err != nil || u.ID != a.ID || u.Email != "Alice@Example.test" {
		t.Fatalf("by email: %+v, %v", u, err)
	}
	if _, err := store.CreateUser(ctx, acme.ID, "bob@example.test", "root", "h", db.Meta{}, 0); err == nil {
		t.Fatal("a bad role was stored")
	}
}

func TestBackup(t *testing.T) {
	store, _ := dbtest.New(t)
	ctx := context.Background()
	store.CreateWorkspace(ctx, "acme", "Acme")
	path := t.TempDir() + "/copy.db"
	if err := store.Backup(ctx, path); err != nil {
		t.Fatal(err)
	}
	copyStore := dbtest.Restore(t, path)
	if ws, err := copyStore.WorkspaceBySlug(ctx, "acme"); err != nil || ws.Name != "Acme" {
		t.Fatalf("backup copy: %+v, %v", ws, err)
	}
}
