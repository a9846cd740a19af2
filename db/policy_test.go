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

func enrollTOTP(t *testing.T, store *db.Store, ws, uid int64, clock *dbtest.Clock) {
	t.Helper()
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	cred, err := store.StartTOTPEnrollment(context.Background(), ws, uid, seal, clock.Now().Add(time.Hour), db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ConfirmTOTPEnrollment(context.Background(), ws, uid, cred.ID, 1, nil, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
}

func policy(mode string, grace int) db.Policy {
	p := db.DefaultPolicy()
	p.Mode, p.GraceDays = mode, grace
	return p
}

// An admin cannot require MFA before enrolling; a dry run saves nothing;
// a real change gives the covered members a deadline, is audited, and a
// new grace period moves the deadlines.
func TestSetPolicy(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	owner, _ := store.CreateUser(ctx, ws.ID, "owner@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	bob, _ := store.CreateUser(ctx, ws.ID, "bob@acme.test", db.RoleMember, "x", db.Meta{}, 0)

	if _, _, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyRequired, 30)}, db.Meta{}); !errors.Is(err, db.ErrEnrollFirst) {
		t.Fatalf("SetPolicy without a factor = %v, want ErrEnrollFirst", err)
	}
	enrollTOTP(t, store, ws.ID, owner.ID, clock)

	_, im, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyRequired, 30), DryRun: true}, db.Meta{})
	if err != nil || im.Covered != 2 || im.NonCompliant != 1 || !im.Deadline.Equal(clock.Now().Add(30*24*time.Hour).Truncate(time.Second)) {
		t.Fatalf("dry run = %+v, %v", im, err)
	}
	if p, _ := store.Policy(ctx, ws.ID); p.Mode != db.PolicyOptional {
		t.Fatalf("dry run saved the policy: %+v", p)
	}
	if u, _ := store.UserByID(ctx, ws.ID, bob.ID); !u.MFADeadline.IsZero() {
		t.Fatalf("dry run gave bob a deadline: %v", u.MFADeadline)
	}

	if _, _, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyRequired, 30)}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	u, _ := store.UserByID(ctx, ws.ID, bob.ID)
	want := clock.Now().Truncate(time.Second).Add(30 * 24 * time.Hour)
	if !u.MFADeadline.Equal(want) {
		t.Fatalf("bob's deadline = %v, want %v", u.MFADeadline, want)
	}
	evs, _ := store.AuditEvents(ctx, ws.ID, db.AuditFilter{Event: db.EventPolicyChanged, Limit: 10})
	if len(evs) != 1 || evs[0].Details["old"].(map[string]any)["policy"] != "optional" || evs[0].Details["new"].(map[string]any)["policy"] != "required" {
		t.Fatalf("audit = %+v", evs)
	}

	// A shorter grace period moves the deadline; an extension is kept.
	clock.Advance(24 * time.Hour)
	if _, err := store.ExtendDeadline(ctx, ws.ID, owner.ID, bob.ID, 5, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyRequired, 20)}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	u, _ = store.UserByID(ctx, ws.ID, bob.ID)
	if want := want.Add(-10*24*time.Hour + 5*24*time.Hour); !u.MFADeadline.Equal(want) {
		t.Fatalf("bob's deadline after grace 20 = %v, want %v", u.MFADeadline, want)
	}

	// Under required_for_admins bob is no longer covered; promoting him
	// starts a new grace period.
	if _, _, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyRequiredForAdmins, 14)}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if u, _ = store.UserByID(ctx, ws.ID, bob.ID); !u.MFADeadline.IsZero() {
		t.Fatalf("member covered under required_for_admins: %v", u.MFADeadline)
	}
	clock.Advance(time.Hour)
	if u, err = store.ChangeRole(ctx, ws.ID, owner.ID, bob.ID, db.RoleAdmin, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if want := clock.Now().Truncate(time.Second).Add(14 * 24 * time.Hour); !u.MFADeadline.Equal(want) {
		t.Fatalf("promoted bob's deadline = %v, want %v", u.MFADeadline, want)
	}
	if _, err := store.ExtendDeadline(ctx, ws.ID, owner.ID, owner.ID+1000, 5, db.Meta{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("extend unknown member = %v", err)
	}
	// A member who joins under the requirement has no grace.
	carol, _ := store.CreateUser(ctx, ws.ID, "carol@acme.test", db.RoleAdmin, "x", db.Meta{}, 0)
	if !carol.MFADeadline.Equal(clock.Now().Truncate(time.Second)) {
		t.Fatalf("carol's deadline = %v, want now", carol.MFADeadline)
	}
}

// Reminders: the announcement, then 7, 3 and 1 days before, each once;
// after an outage only the most urgent goes out, late, once; two scans at
// once queue each email once.
func TestScanReminders(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	owner, _ := store.CreateUser(ctx, ws.ID, "owner@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	enrollTOTP(t, store, ws.ID, owner.ID, clock)
	bob, _ := store.CreateUser(ctx, ws.ID, "bob@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	if _, _, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyRequired, 10)}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []int
	compose := func(d db.ReminderDue) (db.OutboxMessage, error) {
		if d.User.ID != bob.ID {
			t.Errorf("reminder for %s", d.User.Email)
		}
		mu.Lock()
		got = append(got, d.Days)
		mu.Unlock()
		return db.OutboxMessage{Kind: "reminder", To: d.User.Email, Subject: "s"}, nil
	}
	scan := func() int {
		var wg sync.WaitGroup
		total := 0
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := store.ScanReminders(ctx, compose)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		return total
	}
	if n := scan(); n != 1 {
		t.Fatalf("first scan queued %d, want the announcement", n)
	}
	// Day 3 of 10 (7 days left): the 7-day reminder.
	clock.Advance(3 * 24 * time.Hour)
	if n := scan(); n != 1 {
		t.Fatalf("day 3 queued %d", n)
	}
	if n := scan(); n != 0 {
		t.Fatalf("second scan on day 3 queued %d", n)
	}
	// Down from day 3 to day 9.5: only the 1-day reminder, once.
	clock.Advance(6*24*time.Hour + 12*time.Hour)
	if n := scan(); n != 1 {
		t.Fatalf("after the outage queued %d", n)
	}
	// Past the deadline: nothing more.
	clock.Advance(24 * time.Hour)
	if n := scan(); n != 0 {
		t.Fatalf("past the deadline queued %d", n)
	}
	if len(got) < 3 {
		t.Fatalf("composed %v", got)
	}
	var outbox int
	msgs, _ := store.OutboxMessages(ctx, 100)
	for _, m := range msgs {
		if m.Kind == "reminder" {
			outbox++
		}
	}
	if outbox != 3 {
		t.Fatalf("outbox holds %d reminders, want 3 (announce, 7, 1)", outbox)
	}
}

// The passkey rules change with the policy: in its transaction, in its
// audit event (old and new values), not on a dry run, not when the change
// is refused; nil keeps them.
func TestSetPolicyPasskeys(t *testing.T) {
	ctx := context.Background()
	store, _ := dbtest.New(t)
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	owner, _ := store.CreateUser(ctx, ws.ID, "owner@acme.test", db.RoleOwner, "x", db.Meta{}, 0)
	keysOf := func() db.PasskeySettings {
		t.Helper()
		k, err := store.PasskeySettings(ctx, ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	def := db.PasskeySettings{SatisfyMFA: true}
	if k := keysOf(); k != def {
		t.Fatalf("default passkey rules = %+v", k)
	}
	strict := db.PasskeySettings{SatisfyMFA: false, DeviceBoundOnly: true}

	// Dry run, and a refused change (enroll first): nothing saved.
	if _, _, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyOptional, 30), Passkeys: &strict, DryRun: true}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyRequired, 30), Passkeys: &strict}, db.Meta{}); !errors.Is(err, db.ErrEnrollFirst) {
		t.Fatalf("SetPolicy without a factor = %v, want ErrEnrollFirst", err)
	}
	if k := keysOf(); k != def {
		t.Fatalf("a dry run or refused change saved the passkey rules: %+v", k)
	}
	evs, _ := store.AuditEvents(ctx, ws.ID, db.AuditFilter{Event: db.EventPolicyChanged, Limit: 10})
	if len(evs) != 0 {
		t.Fatalf("%d policy events after a dry run and a refusal", len(evs))
	}

	// Saved and audited with the old and new values.
	if _, _, err := store.SetPolicy(ctx, ws.ID, owner.ID, db.PolicyChange{Policy: policy(db.PolicyOptional, 30), Passkeys: &strict}, db.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if k := keysOf(); k != strict {
		t.Fatalf("passkey rules = %+v, want %+v", k, strict)
	}
	evs, _ = store.AuditEvents(ctx, ws.ID, db.AuditFilter{Event: db.EventPolicyChanged, Limit: 10})
	if len(evs) != 1 {
		t.Fatalf("%d policy events, want 1", len(evs))
	}
	old, _ := evs[0].Details["old"].(map[string]any)
	nw, _ := evs[0].Details["new"].(map[string]any)
	if old["passkeys_satisfy_mfa"] != true || old["device_bound_keys_only"] != false ||
		nw["passkeys_satisfy_mfa"] != false || nw["device_bound_keys_only"] != true || evs[0].ActorUserID != owner.ID {
		t.Fatalf("audit = %+v", evs[0])
	}

	// Without Passkeys the rules stay.
	if _, _, err := store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: policy(db.PolicyOff, 30)}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if k := keysOf(); k != strict {
		t.Fatalf("passkey rules after a policy-only change = %+v", k)
	}
}
