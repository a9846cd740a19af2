package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// A member reset by support must enroll again; enrolling any factor clears
// it (the store's refresh of the factor summary, once the trigger of
// migration 0013), and a policy change keeps it.
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
	key := func(id string) db.WebAuthnCredential {
		t.Helper()
		c, err := store.AddWebAuthnCredential(ctx, db.WebAuthnCredential{WorkspaceID: acme.ID, UserID: alice.ID, Name: "key",
			CredentialID: []byte(id), PublicKey: []byte{2}}, nil, db.Meta{}, db.OutboxMessage{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := key("k1")
	if v, _ := store.MustReenroll(ctx, acme.ID, alice.ID); v {
		t.Error("enrolling a key did not clear the re-enrollment")
	}
	// Not covered by the policy: the deadline went with the flag, so a
	// later requirement gives alice a grace period like everyone else.
	if n := count(t, store, `SELECT COUNT(*) FROM users WHERE id = `+fmt.Sprint(alice.ID)+` AND mfa_deadline IS NULL AND mfa_since IS NULL`); n != 1 {
		t.Error("re-enrolling kept the reset's deadline")
	}
	if _, _, err := store.RemoveWebAuthnKey(ctx, acme.ID, alice.ID, first.ID, "", db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	p.Mode, p.GraceDays = db.PolicyRequired, 14
	if _, _, err := store.SetPolicy(ctx, acme.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, store, `SELECT mfa_deadline FROM users WHERE id = `+fmt.Sprint(alice.ID)); n != clock.Now().Add(14*24*time.Hour).Unix() {
		t.Errorf("deadline under the new requirement = %d, want now + 14 days", n)
	}

	// Under a requirement that covers her, the reset's deadline stays.
	if _, err := store.DB().Exec(`UPDATE users SET mfa_reenroll = 1, mfa_deadline = ? WHERE id = ?`, clock.Now().Unix(), alice.ID); err != nil {
		t.Fatal(err)
	}
	key("k2")
	if n := count(t, store, `SELECT COUNT(*) FROM users WHERE id = `+fmt.Sprint(alice.ID)+` AND mfa_reenroll = 0 AND mfa_deadline = `+fmt.Sprint(clock.Now().Unix())); n != 1 {
		t.Error("under a requirement re-enrolling dropped the deadline or kept the flag")
	}
}
