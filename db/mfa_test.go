package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// A factor checked before the member was locked (a request racing the
// tenth wrong code, on this node or another) must not be consumed once the
// lock is committed: the lock is re-checked in the transaction that
// spends the factor, for sign-in and for step-up, and likewise after the
// 100-failure disable.
func TestPassChallengeRefusedWhileLocked(t *testing.T) {
	ctx := context.Background()
	f := newMFAMember(t, "k:h1", "k:h2")
	store, clock, ws, u, cred, codes := f.store, f.clock, f.ws, f.u, f.cred, f.codes
	newChallenge, session := f.challenge, f.session
	fail := func(n int) {
		for range n {
			if _, err := store.RecordMFAFailure(ctx, ws.ID, u.ID, "", "totp", db.Meta{}, db.OutboxMessage{}, db.OutboxMessage{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The factor was checked (the lock read as open), then ten failures
	// committed from elsewhere.
	ch := newChallenge("c1")
	fail(db.GuardWindowFailures)
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: "totp", TOTPID: cred.ID, Step: 101}, session("s1"), db.OutboxMessage{}); !errors.Is(err, db.ErrMFALocked) {
		t.Fatalf("PassChallenge while locked: %v, want ErrMFALocked", err)
	}
	if _, err := store.StepUp(ctx, ws.ID, u.ID, db.FactorUse{Method: "recovery_code", RecoveryCode: codes[0].ID}, db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrMFALocked) {
		t.Fatalf("StepUp while locked: %v, want ErrMFALocked", err)
	}
	if err := store.UseTOTPStep(ctx, ws.ID, u.ID, cred.ID, 101); !errors.Is(err, db.ErrMFALocked) {
		t.Fatalf("UseTOTPStep (factor removal) while locked: %v, want ErrMFALocked", err)
	}
	if n, _ := store.RecoveryCodesRemaining(ctx, ws.ID, u.ID); n != 2 {
		t.Fatalf("a recovery code was spent while locked (%d left)", n)
	}
	var step int64
	store.DB().QueryRow(`SELECT last_step FROM totp_credentials WHERE id = ?`, cred.ID).Scan(&step)
	if step != 100 {
		t.Fatalf("a step was consumed while locked: last_step %d", step)
	}
	// After the lock, the same factor passes (the refusal rolled back).
	clock.Advance(db.GuardLockFor)
	if _, err := store.PassChallenge(ctx, newChallenge("c2"), db.FactorUse{Method: "totp", TOTPID: cred.ID, Step: 101}, session("s2"), db.OutboxMessage{}); err != nil {
		t.Fatalf("PassChallenge after the lock: %v", err)
	}

	// Disabled after 100 consecutive failures: refused however long after.
	for range 10 {
		fail(db.GuardWindowFailures)
		clock.Advance(db.GuardLockFor)
	}
	if g, _ := store.MFAGuard(ctx, ws.ID, u.ID); g.DisabledAt.IsZero() {
		t.Fatalf("not disabled: %+v", g)
	}
	clock.Advance(24 * time.Hour)
	if _, err := store.PassChallenge(ctx, newChallenge("c3"), db.FactorUse{Method: "totp", TOTPID: cred.ID, Step: 200}, session("s3"), db.OutboxMessage{}); !errors.Is(err, db.ErrMFALocked) {
		t.Fatalf("PassChallenge while disabled: %v, want ErrMFALocked", err)
	}
	if _, err := store.StepUp(ctx, ws.ID, u.ID, db.FactorUse{Method: "totp", TOTPID: cred.ID, Step: 201}, db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrMFALocked) {
		t.Fatalf("StepUp while disabled: %v, want ErrMFALocked", err)
	}
}

// Removing a factor under a requirement: the last allowed one is refused
// (nothing changes), another one may go; a factor the policy does not
// allow may always go.
func TestRemoveFactorRequired(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	bob, _ := store.CreateUser(ctx, ws.ID, "bob@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	enrollTOTP(t, store, ws.ID, bob.ID, clock)
	key, err := store.AddWebAuthnCredential(ctx, db.WebAuthnCredential{WorkspaceID: ws.ID, UserID: bob.ID, Name: "Key", CredentialID: []byte("cred-1"), PublicKey: []byte("pk")}, nil, db.Meta{}, db.OutboxMessage{})
	if err != nil {
		t.Fatal(err)
	}
	// Only keys allowed: the app may go, the key may not.
	p := db.DefaultPolicy()
	p.Mode, p.Methods = db.PolicyRequired, []string{db.MethodWebAuthn}
	if _, _, err := store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	before, _ := store.UserByID(ctx, ws.ID, bob.ID)
	if _, _, err := store.RemoveWebAuthnKey(ctx, ws.ID, bob.ID, key.ID, "", db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrFactorRequired) {
		t.Fatalf("remove the last allowed key = %v, want ErrFactorRequired", err)
	}
	if req, err := store.FactorRequired(ctx, ws.ID, bob.ID, db.MethodWebAuthn, key.ID); err != nil || !req {
		t.Fatalf("FactorRequired(key) = %v, %v", req, err)
	}
	after, _ := store.UserByID(ctx, ws.ID, bob.ID)
	if keys, _ := store.WebAuthnCredentials(ctx, ws.ID, bob.ID); len(keys) != 1 || after.SessionEpoch != before.SessionEpoch {
		t.Fatalf("a refused removal changed something: %d keys, epoch %d -> %d", len(keys), before.SessionEpoch, after.SessionEpoch)
	}
	if _, err := store.RemoveTOTP(ctx, ws.ID, bob.ID, "", db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatalf("remove a factor the policy does not allow = %v", err)
	}
	// Not covered (optional): the last key may go.
	p.Mode = db.PolicyOptional
	if _, _, err := store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, removed, err := store.RemoveWebAuthnKey(ctx, ws.ID, bob.ID, key.ID, "", db.Meta{}, db.OutboxMessage{}); err != nil || removed.ID != key.ID {
		t.Fatalf("remove the key under optional = %+v, %v", removed, err)
	}
	if _, _, err := store.RemoveWebAuthnKey(ctx, ws.ID, bob.ID, key.ID, "", db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("remove it again = %v, want ErrNotFound", err)
	}
}

// mfaMember is a workspace's member with a confirmed authenticator app
// (last step 100) and recovery codes, and makers of challenges and aal2
// sessions for them at the clock's time.
type mfaMember struct {
	t     *testing.T
	store *db.Store
	clock *dbtest.Clock
	ws    db.Workspace
	u     db.User
	cred  db.TOTPCredential
	codes []db.RecoveryCode
}

func newMFAMember(t *testing.T, recoveryHashes ...string) *mfaMember {
	t.Helper()
	ctx := context.Background()
	store, clock := dbtest.New(t)
	f := &mfaMember{t: t, store: store, clock: clock}
	var err error
	if f.ws, err = store.CreateWorkspace(ctx, "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	if f.u, err = store.CreateUser(ctx, f.ws.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	if f.cred, err = store.StartTOTPEnrollment(ctx, f.ws.ID, f.u.ID, seal, clock.Now().Add(time.Hour), db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := store.ConfirmTOTPEnrollment(ctx, f.ws.ID, f.u.ID, f.cred.ID, 100, recoveryHashes, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if f.codes, err = store.UnusedRecoveryCodes(ctx, f.ws.ID, f.u.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

// challenge opens challenge id for the member, five minutes from now.
func (f *mfaMember) challenge(id string) db.Challenge {
	f.t.Helper()
	now := f.clock.Now()
	ch := db.Challenge{ID: id, WorkspaceID: f.ws.ID, UserID: f.u.ID, PasswordAt: now, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}
	if err := f.store.CreateChallenge(context.Background(), ch); err != nil {
		f.t.Fatal(err)
	}
	return ch
}

// session is an aal2 session id of the member, to register.
func (f *mfaMember) session(id string) db.UserSession {
	now := f.clock.Now()
	return db.UserSession{ID: id, WorkspaceID: f.ws.ID, UserID: f.u.ID, AAL: "aal2", AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
}
