package db_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// ClaimMFAGuess is one conditional write (SECURITY rule 11): of 40 guesses
// claimed at once exactly 10 are counted (the rest ErrMFALocked, nothing
// counted); settled wrong they lock the member, and while locked nothing is
// claimed. At one challenge only 5 are. A right guess is taken back when
// it is spent.
func TestClaimMFAGuess(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	ws, err := store.CreateWorkspace(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	u, err := store.CreateUser(ctx, ws.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	claimAll := func(n int, challengeID string) (counted int32) {
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := store.ClaimMFAGuess(ctx, ws.ID, u.ID, challengeID)
				switch {
				case err == nil:
					atomic.AddInt32(&counted, 1)
				case errors.Is(err, db.ErrMFALocked), errors.Is(err, db.ErrChallengeGone):
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		return counted
	}

	now := clock.Now()
	if err := store.CreateChallenge(ctx, db.Challenge{ID: "c1", WorkspaceID: ws.ID, UserID: u.ID, PasswordAt: now, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(40, "c1"); got != db.ChallengeMaxFailures {
		t.Fatalf("%d of 40 guesses at one challenge counted, want %d", got, db.ChallengeMaxFailures)
	}
	if g, _ := store.MFAGuard(ctx, ws.ID, u.ID); g.WindowFailures != db.ChallengeMaxFailures {
		t.Fatalf("guard = %+v: refused challenge guesses were counted", g)
	}

	clock.Advance(db.GuardWindow + time.Second)
	if got := claimAll(40, ""); got != db.GuardWindowFailures {
		t.Fatalf("%d of 40 guesses at once counted, want %d", got, db.GuardWindowFailures)
	}
	for range db.GuardWindowFailures {
		if _, err := store.MFAGuessFailed(ctx, ws.ID, u.ID, "", "totp", db.Meta{}, db.OutboxMessage{}, db.OutboxMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	g, _ := store.MFAGuard(ctx, ws.ID, u.ID)
	if !g.LockedUntil.After(clock.Now()) || g.Consecutive != db.ChallengeMaxFailures+db.GuardWindowFailures {
		t.Fatalf("guard after 10 wrong = %+v, want locked, 15 consecutive", g)
	}
	if got := claimAll(5, ""); got != 0 {
		t.Fatalf("%d guesses counted while locked", got)
	}

	// After the lock, a right guess: counted, then taken back when spent.
	clock.Set(g.LockedUntil)
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	cred, err := store.StartTOTPEnrollment(ctx, ws.ID, u.ID, seal, clock.Now().Add(time.Hour), db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ClaimMFAGuess(ctx, ws.ID, u.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := store.ConfirmCountedTOTPEnrollment(ctx, ws.ID, u.ID, cred.ID, 100, db.SessionBinding{}, nil, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if g, _ := store.MFAGuard(ctx, ws.ID, u.ID); g.WindowFailures != 0 || g.Consecutive != 15 {
		t.Fatalf("guard after a right guess = %+v, want it taken back", g)
	}
}

// One sign-in sent twice at once (a client retrying through a load
// balancer): both guesses are counted, one passes the challenge, and the
// other then finds the code spent (a recovery code, judged wrong) or the
// challenge passed (a TOTP code, judged right). Neither is a wrong guess:
// the sign-in it belongs to succeeded. It is taken back and answered as a
// sign-in that has ended, as it would have been had it come a moment
// later, so that retries cannot lock a member who signed in.
func TestGuessRacingItsOwnSignIn(t *testing.T) {
	ctx := context.Background()
	f := newMFAMember(t, "k:h1", "k:h2", "k:h3")
	store, clock, ws, u, cred, codes := f.store, f.clock, f.ws, f.u, f.cred, f.codes
	challenge, session := f.challenge, f.session
	claim := func(ch db.Challenge) {
		t.Helper()
		if err := store.ClaimMFAGuess(ctx, ws.ID, u.ID, ch.ID); err != nil {
			t.Fatal(err)
		}
	}
	guard := func(what string) {
		t.Helper()
		g, err := store.MFAGuard(ctx, ws.ID, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if g.WindowFailures != 0 || g.Consecutive != 0 {
			t.Fatalf("%s: guard %+v, want no failure counted", what, g)
		}
	}

	// A recovery code: the second request judged it against the codes
	// left after the first spent it.
	ch := challenge("r1")
	claim(ch)
	claim(ch)
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: "recovery_code", RecoveryCode: codes[0].ID, Counted: true}, session("s1"), db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	out, err := store.MFAGuessFailed(ctx, ws.ID, u.ID, ch.ID, "recovery_code", db.Meta{}, db.OutboxMessage{}, db.OutboxMessage{})
	if !errors.Is(err, db.ErrChallengeGone) {
		t.Fatalf("settling the loser: %+v, %v; want ErrChallengeGone", out, err)
	}
	guard("recovery code raced")

	// A TOTP code: both matched; the second finds the challenge passed.
	ch = challenge("t1")
	claim(ch)
	claim(ch)
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: "totp", TOTPID: cred.ID, Step: 101, Counted: true}, session("s2"), db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: "totp", TOTPID: cred.ID, Step: 101, Counted: true}, session("s3"), db.OutboxMessage{}); !errors.Is(err, db.ErrChallengeGone) {
		t.Fatalf("second pass: %v, want ErrChallengeGone", err)
	}
	guard("TOTP code raced")
	var sessions int
	store.DB().QueryRow(`SELECT COUNT(*) FROM user_sessions WHERE user_id = ?`, u.ID).Scan(&sessions)
	if sessions != 2 {
		t.Fatalf("%d sessions, want 2 (one per sign-in)", sessions)
	}

	// A wrong code at a challenge that failed, expired or is open stays
	// counted: only a sign-in that succeeded excuses its siblings.
	ch = challenge("w1")
	claim(ch)
	if _, err := store.MFAGuessFailed(ctx, ws.ID, u.ID, ch.ID, "totp", db.Meta{}, db.OutboxMessage{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	claim(challenge("w2"))
	ch = challenge("w3")
	claim(ch)
	clock.Advance(6 * time.Minute) // w2 and w3 expire while judged
	if _, err := store.MFAGuessFailed(ctx, ws.ID, u.ID, "w2", "totp", db.Meta{}, db.OutboxMessage{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: "totp", TOTPID: cred.ID, Step: 300, Counted: true}, session("s4"), db.OutboxMessage{}); !errors.Is(err, db.ErrChallengeGone) {
		t.Fatalf("passing an expired challenge: %v, want ErrChallengeGone", err)
	}
	g, _ := store.MFAGuard(ctx, ws.ID, u.ID)
	if g.Consecutive != 2 {
		t.Fatalf("guard %+v: want the two wrong codes counted and the right one (too late) taken back", g)
	}
}
