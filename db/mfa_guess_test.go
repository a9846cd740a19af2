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
