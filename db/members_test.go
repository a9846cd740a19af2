package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// The store's admin actions are scoped: another workspace's member id is
// ErrNotFound and nothing of theirs changes.
func TestAdminActionsScoped(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	globex, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	admin, _ := store.CreateUser(ctx, acme.ID, "admin@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	bob, _ := store.CreateUser(ctx, globex.ID, "bob@globex.test", db.RoleOwner, "x", db.Meta{}, 0)
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	cred, err := store.StartTOTPEnrollment(ctx, globex.ID, bob.ID, seal, clock.Now().Add(time.Hour), db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ConfirmTOTPEnrollment(ctx, globex.ID, bob.ID, cred.ID, 100, []string{"k:h1"}, db.Meta{}, db.OutboxMessage{Kind: "x", To: "bob@globex.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ResetMFA(ctx, acme.ID, admin.ID, bob.ID, true, db.Meta{}, db.OutboxMessage{Kind: "x", To: "bob@globex.test"}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("ResetMFA(other workspace) = %v, want ErrNotFound", err)
	}
	if _, _, err := store.EndMemberSessions(ctx, acme.ID, admin.ID, bob.ID, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("EndMemberSessions(other workspace) = %v, want ErrNotFound", err)
	}
	if _, err := store.ChangeRole(ctx, acme.ID, admin.ID, bob.ID, db.RoleMember, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("ChangeRole(other workspace) = %v, want ErrNotFound", err)
	}
	if ok, _ := store.HasSecondFactor(ctx, globex.ID, bob.ID); !ok {
		t.Error("bob lost his factor")
	}
	if n, _ := store.RecoveryCodesRemaining(ctx, globex.ID, bob.ID); n != 1 {
		t.Errorf("bob has %d recovery codes, want 1", n)
	}
	// A reset of one's own member works and leaves nothing.
	r, err := store.ResetMFA(ctx, globex.ID, bob.ID, bob.ID, true, db.Meta{}, db.OutboxMessage{Kind: "x", To: "bob@globex.test"})
	if err != nil || r.TOTP != 1 || r.RecoveryCodes != 1 || r.SessionEpoch != 1 {
		t.Fatalf("ResetMFA = %+v, %v", r, err)
	}
	if ok, _ := store.HasSecondFactor(ctx, globex.ID, bob.ID); ok {
		t.Error("bob still has a factor")
	}
}

// Two owners demoting each other at once: one stays owner.
func TestChangeRoleLastOwnerRace(t *testing.T) {
	ctx := context.Background()
	store, _ := dbtest.New(t)
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	a, _ := store.CreateUser(ctx, ws.ID, "a@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	b, _ := store.CreateUser(ctx, ws.ID, "b@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	for range 10 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pair := range [][2]db.User{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = store.ChangeRole(ctx, ws.ID, pair[0].ID, pair[1].ID, db.RoleAdmin, db.Meta{})
			}()
		}
		wg.Wait()
		var owners int
		store.DB().QueryRow(`SELECT COUNT(*) FROM users WHERE workspace_id = ? AND role = 'owner'`, ws.ID).Scan(&owners)
		if owners != 1 {
			t.Fatalf("%d owners after concurrent demotions (%v)", owners, errs)
		}
		// Back to two owners for the next round.
		var owner, other db.User = a, b
		if u, _ := store.UserByID(ctx, ws.ID, a.ID); u.Role != db.RoleOwner {
			owner, other = b, a
		}
		if _, err := store.ChangeRole(ctx, ws.ID, owner.ID, other.ID, db.RoleOwner, db.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
}

// An admin's change to an owner is refused inside the store's own
// transaction too (db.MayManage, ErrNotAllowed), whatever the caller
// checked before; an owner's is not.
func TestAdminActionsOnOwnerRefusedInTransaction(t *testing.T) {
	ctx := context.Background()
	store, _ := dbtest.New(t)
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	owner, _ := store.CreateUser(ctx, acme.ID, "owner@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	second, _ := store.CreateUser(ctx, acme.ID, "second@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	admin, _ := store.CreateUser(ctx, acme.ID, "admin@acme.test", db.RoleAdmin, "x", db.Meta{}, 0)
	member, _ := store.CreateUser(ctx, acme.ID, "member@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	msg := db.OutboxMessage{Kind: "x", To: "owner@acme.test"}
	if _, err := store.ResetMFA(ctx, acme.ID, admin.ID, owner.ID, true, db.Meta{}, msg); !errors.Is(err, db.ErrNotAllowed) {
		t.Errorf("admin's ResetMFA of an owner = %v, want ErrNotAllowed", err)
	}
	if _, _, err := store.EndMemberSessions(ctx, acme.ID, admin.ID, owner.ID, db.Meta{}); !errors.Is(err, db.ErrNotAllowed) {
		t.Errorf("admin's EndMemberSessions of an owner = %v, want ErrNotAllowed", err)
	}
	if _, err := store.ExtendDeadline(ctx, acme.ID, admin.ID, owner.ID, 3, db.Meta{}); !errors.Is(err, db.ErrNotAllowed) {
		t.Errorf("admin's ExtendDeadline of an owner = %v, want ErrNotAllowed", err)
	}
	if _, err := store.RevokeTrustedDevice(ctx, acme.ID, admin.ID, owner.ID, 1, db.TrustedRevokedByAdmin, db.Meta{}); !errors.Is(err, db.ErrNotAllowed) {
		t.Errorf("admin's RevokeTrustedDevice of an owner = %v, want ErrNotAllowed", err)
	}
	// A member is no admin: refused on anyone.
	if _, _, err := store.EndMemberSessions(ctx, acme.ID, member.ID, admin.ID, db.Meta{}); !errors.Is(err, db.ErrNotAllowed) {
		t.Errorf("member's EndMemberSessions of an admin = %v, want ErrNotAllowed", err)
	}
	if u, _ := store.UserByID(ctx, acme.ID, owner.ID); u.SessionEpoch != owner.SessionEpoch {
		t.Errorf("owner's session epoch moved: %d -> %d", owner.SessionEpoch, u.SessionEpoch)
	}
	// Owners manage owners; admins manage members.
	if _, _, err := store.EndMemberSessions(ctx, acme.ID, second.ID, owner.ID, db.Meta{}); err != nil {
		t.Errorf("owner's EndMemberSessions of an owner = %v", err)
	}
	if _, _, err := store.EndMemberSessions(ctx, acme.ID, admin.ID, member.ID, db.Meta{}); err != nil {
		t.Errorf("admin's EndMemberSessions of a member = %v", err)
	}
}
