package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// A member reset by support must enroll again; enrolling any factor clears
// it (the trigger of migration 0013), and a policy change keeps it.
func TestReenrollFlag(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	alice, _ := store.CreateUser(ctx, acme.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	if _, err := store.DB().Exec(`UPDATE users SET mfa_reenroll = 1, mfa_deadline = ? WHERE id = ?`, clock.Now().Unix(), alice.ID); err != nil {
		t.Fatal(err)
	}
	p, _ := store.Policy(ctx, acme.ID)
	p.Mode = db.PolicyOff
	if _, _, err := store.SetPolicy(ctx, acme.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if v, _ := store.MustReenroll(ctx, acme.ID, alice.ID); !v {
		t.Fatal("a policy change cleared the re-enrollment")
	}
	if n := count(t, store, `SELECT COUNT(*) FROM users WHERE mfa_deadline IS NOT NULL`); n != 1 {
		t.Fatalf("a policy change cleared the re-enrollment deadline (%d)", n)
	}
	if _, err := store.CreateTrustedDevice(ctx, acme.ID, alice.ID, "k", "x", clock.Now().Add(time.Hour), db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if v, _ := store.MustReenroll(ctx, acme.ID, alice.ID); !v {
		t.Fatal("something other than a factor cleared it")
	}
	if _, err := store.DB().Exec(`INSERT INTO webauthn_credentials (workspace_id, user_id, name, credential_id, public_key, sign_count, created_at)
		VALUES (?, ?, 'key', x'01', x'02', 0, ?)`, acme.ID, alice.ID, clock.Now().Unix()); err != nil {
		t.Fatal(err)
	}
	if v, _ := store.MustReenroll(ctx, acme.ID, alice.ID); v {
		t.Error("enrolling a key did not clear the re-enrollment")
	}
}
