package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

func setTrustedDays(t *testing.T, store *db.Store, ws db.Workspace, days int) {
	t.Helper()
	if _, err := store.DB().Exec(`UPDATE workspaces SET trusted_device_days = ? WHERE id = ?`, days, ws.ID); err != nil {
		t.Fatal(err)
	}
}

// A trusted device is usable only by its member, in its workspace, with its
// token, unrevoked, unexpired and while the workspace allows trusted
// devices; every other lookup is ErrNotFound and changes nothing.
func TestTrustedDeviceScope(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	globex, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	setTrustedDays(t, store, acme, 30)
	setTrustedDays(t, store, globex, 30)
	alice, _ := store.CreateUser(ctx, acme.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	bob, _ := store.CreateUser(ctx, acme.ID, "bob@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	galice, _ := store.CreateUser(ctx, globex.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0)

	if _, err := store.CreateTrustedDevice(ctx, acme.ID, galice.ID, "k:other", "Chrome", clock.Now().Add(time.Hour), db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("CreateTrustedDevice(another workspace's member) = %v, want ErrNotFound", err)
	}
	d, err := store.CreateTrustedDevice(ctx, acme.ID, alice.ID, "k:alice", "Firefox on Linux", clock.Now().Add(30*24*time.Hour), db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, ws, user int64, hashes ...string) {
		t.Helper()
		if _, err := store.UseTrustedDevice(ctx, ws, user, hashes, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("UseTrustedDevice(%s) = %v, want ErrNotFound", what, err)
		}
	}
	refused("another member", acme.ID, bob.ID, "k:alice")
	refused("another workspace", globex.ID, galice.ID, "k:alice")
	refused("another workspace, same member id", globex.ID, alice.ID, "k:alice")
	refused("wrong token", acme.ID, alice.ID, "k:nope")
	refused("no token", acme.ID, alice.ID)
	if n := count(t, store, `SELECT COUNT(*) FROM trusted_devices WHERE last_used_at IS NOT NULL`); n != 0 {
		t.Errorf("%d devices marked used by refused lookups", n)
	}

	clock.Advance(time.Minute)
	got, err := store.UseTrustedDevice(ctx, acme.ID, alice.ID, []string{"k:old", "k:alice"}, db.Meta{IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("UseTrustedDevice(alice) = %v", err)
	}
	if got.ID != d.ID || !got.LastUsedAt.Equal(clock.Now().Truncate(time.Second)) {
		t.Errorf("used device = %+v, want id %d last used now", got, d.ID)
	}
	if n := count(t, store, `SELECT COUNT(*) FROM audit_events WHERE event = ? AND subject_user_id = ?`, db.EventTrustedDeviceUsed, alice.ID); n != 1 {
		t.Errorf("%d %s events, want 1", n, db.EventTrustedDeviceUsed)
	}

	// Revoking is scoped like using.
	if _, err := store.RevokeTrustedDevice(ctx, acme.ID, bob.ID, bob.ID, d.ID, db.TrustedRevokedByMember, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("RevokeTrustedDevice(another member's) = %v, want ErrNotFound", err)
	}
	if _, err := store.RevokeTrustedDevice(ctx, globex.ID, galice.ID, alice.ID, d.ID, db.TrustedRevokedByAdmin, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("RevokeTrustedDevice(another workspace) = %v, want ErrNotFound", err)
	}
	if list, _ := store.TrustedDevices(ctx, acme.ID, alice.ID); len(list) != 1 {
		t.Fatalf("alice's devices = %+v, want 1", list)
	}
	if list, _ := store.TrustedDevices(ctx, globex.ID, alice.ID); len(list) != 0 {
		t.Errorf("alice's devices listed in globex: %+v", list)
	}

	// Turning trusted devices off, or shortening them, stops the device.
	setTrustedDays(t, store, acme, 0)
	refused("trusted devices off", acme.ID, alice.ID, "k:alice")
	setTrustedDays(t, store, acme, 1)
	clock.Advance(25 * time.Hour)
	refused("older than the workspace's current setting", acme.ID, alice.ID, "k:alice")
	if list, _ := store.TrustedDevices(ctx, acme.ID, alice.ID); len(list) != 0 {
		t.Errorf("devices listed past the workspace's setting: %+v", list)
	}
	setTrustedDays(t, store, acme, 30)
	if _, err := store.UseTrustedDevice(ctx, acme.ID, alice.ID, []string{"k:alice"}, db.Meta{}); err != nil {
		t.Errorf("UseTrustedDevice after the setting was restored = %v", err)
	}

	// Expiry.
	clock.Advance(29 * 24 * time.Hour)
	refused("expired", acme.ID, alice.ID, "k:alice")

	// Revoked.
	d2, _ := store.CreateTrustedDevice(ctx, acme.ID, alice.ID, "k:alice2", "Safari on macOS", clock.Now().Add(24*time.Hour), db.Meta{})
	if _, err := store.RevokeTrustedDevice(ctx, acme.ID, alice.ID, alice.ID, d2.ID, db.TrustedRevokedByMember, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	refused("revoked", acme.ID, alice.ID, "k:alice2")
	if _, err := store.RevokeTrustedDevice(ctx, acme.ID, alice.ID, alice.ID, d2.ID, db.TrustedRevokedByMember, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("revoking twice = %v, want ErrNotFound", err)
	}
}

// Resets, password changes and factor removals void the member's devices
// in their own transaction, and only that member's.
func TestTrustedDevicesVoided(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	setTrustedDays(t, store, acme, 30)
	admin, _ := store.CreateUser(ctx, acme.ID, "admin@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	alice, _ := store.CreateUser(ctx, acme.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	bob, _ := store.CreateUser(ctx, acme.ID, "bob@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	enroll := func() {
		t.Helper()
		cred, err := store.StartTOTPEnrollment(ctx, acme.ID, alice.ID, seal, clock.Now().Add(time.Hour), db.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.ConfirmTOTPEnrollment(ctx, acme.ID, alice.ID, cred.ID, 100, []string{"k:h1"}, db.Meta{}, db.OutboxMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	trust := func() (alices, bobs string) {
		t.Helper()
		n++
		alices, bobs = "k:a"+string(rune('a'+n)), "k:b"+string(rune('a'+n))
		for _, d := range []struct {
			u    db.User
			hash string
		}{{alice, alices}, {bob, bobs}} {
			if _, err := store.CreateTrustedDevice(ctx, acme.ID, d.u.ID, d.hash, "Chrome", clock.Now().Add(time.Hour), db.Meta{}); err != nil {
				t.Fatal(err)
			}
		}
		return alices, bobs
	}
	voided := func(what, alices, bobs string) {
		t.Helper()
		if _, err := store.UseTrustedDevice(ctx, acme.ID, alice.ID, []string{alices}, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("after %s, alice's device = %v, want ErrNotFound", what, err)
		}
		if _, err := store.UseTrustedDevice(ctx, acme.ID, bob.ID, []string{bobs}, db.Meta{}); err != nil {
			t.Errorf("after %s of alice, bob's device = %v, want usable", what, err)
		}
	}

	enroll()
	a, b := trust()
	r, err := store.ResetMFA(ctx, acme.ID, admin.ID, alice.ID, false, db.Meta{}, db.OutboxMessage{})
	if err != nil {
		t.Fatal(err)
	}
	if r.TrustedDevices != 1 {
		t.Errorf("reset voided %d devices, want 1", r.TrustedDevices)
	}
	voided("an admin reset", a, b)

	a, b = trust()
	if _, err := store.ChangePassword(ctx, acme.ID, alice.ID, "new hash", "", db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	voided("a password change", a, b)

	enroll()
	a, b = trust()
	if _, err := store.RemoveTOTP(ctx, acme.ID, alice.ID, "", db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	voided("a factor removal", a, b)

	if got := count(t, store, `SELECT COUNT(*) FROM audit_events WHERE event = ? AND subject_user_id = ?`, db.EventTrustedDevicesVoided, alice.ID); got != 3 {
		t.Errorf("%d %s events for alice, want 3", got, db.EventTrustedDevicesVoided)
	}
	reasons := map[string]bool{}
	rows, _ := store.DB().Query(`SELECT revoked_reason FROM trusted_devices WHERE user_id = ?`, alice.ID)
	for rows.Next() {
		var r string
		rows.Scan(&r)
		reasons[r] = true
	}
	rows.Close()
	for _, want := range []string{"mfa_reset_by_admin", "password_changed", "factor_removed"} {
		if !reasons[want] {
			t.Errorf("no device revoked with reason %q: %v", want, reasons)
		}
	}
}

func count(t *testing.T, store *db.Store, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := store.DB().QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// Cleanup removes devices a day after they expired or were revoked, and
// keeps the rest.
func TestDeleteStaleTrustedDevices(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	setTrustedDays(t, store, acme, 30)
	alice, _ := store.CreateUser(ctx, acme.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	add := func(hash string, life time.Duration) db.TrustedDevice {
		t.Helper()
		d, err := store.CreateTrustedDevice(ctx, acme.ID, alice.ID, hash, "Firefox", clock.Now().Add(life), db.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	add("k:expires-soon", time.Hour)
	old := add("k:revoked-early", 30*24*time.Hour)
	add("k:active", 30*24*time.Hour)
	if _, err := store.RevokeTrustedDevice(ctx, acme.ID, alice.ID, alice.ID, old.ID, "member", db.Meta{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	late := add("k:revoked-late", 30*24*time.Hour)
	if _, err := store.RevokeTrustedDevice(ctx, acme.ID, alice.ID, alice.ID, late.ID, "member", db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if n, err := store.DeleteStaleTrustedDevices(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("within the day: deleted %d (%v)", n, err)
	}
	clock.Advance(23 * time.Hour)
	if n, err := store.DeleteStaleTrustedDevices(ctx, 24*time.Hour); err != nil || n != 2 {
		t.Fatalf("a day after: deleted %d (%v), want the expired and the early revoked", n, err)
	}
	if n := count(t, store, `SELECT COUNT(*) FROM trusted_devices WHERE token_hash IN ('k:active', 'k:revoked-late')`); n != 2 {
		t.Errorf("%d of the active and the recently revoked remain", n)
	}
}

// A trusted device is not usable while the member's second factor is
// paused or blocked: the lock is read in the statement that uses it.
func TestTrustedDeviceLocked(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	setTrustedDays(t, store, acme, 30)
	alice, _ := store.CreateUser(ctx, acme.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	if _, err := store.CreateTrustedDevice(ctx, acme.ID, alice.ID, "k:alice", "Firefox", clock.Now().Add(30*24*time.Hour), db.Meta{}); err != nil {
		t.Fatal(err)
	}
	now := clock.Now().Unix()
	if _, err := store.DB().Exec(`INSERT INTO mfa_guards (workspace_id, user_id, window_start, locked_until) VALUES (?, ?, ?, ?)`,
		acme.ID, alice.ID, now, now+900); err != nil {
		t.Fatal(err)
	}
	if _, err := store.UseTrustedDevice(ctx, acme.ID, alice.ID, []string{"k:alice"}, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("UseTrustedDevice while paused = %v, want ErrNotFound", err)
	}
	clock.Advance(db.GuardLockFor)
	if _, err := store.UseTrustedDevice(ctx, acme.ID, alice.ID, []string{"k:alice"}, db.Meta{}); err != nil {
		t.Errorf("UseTrustedDevice after the pause = %v", err)
	}
	if _, err := store.DB().Exec(`UPDATE mfa_guards SET disabled_at = ? WHERE user_id = ?`, clock.Now().Unix(), alice.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := store.UseTrustedDevice(ctx, acme.ID, alice.ID, []string{"k:alice"}, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("UseTrustedDevice while blocked = %v, want ErrNotFound", err)
	}
}
