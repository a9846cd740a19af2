package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// Store-level benchmarks of the second factor's database work on a real
// SQLite file (WAL, synchronous=NORMAL, as in production). What is not the
// operation being measured (members, challenges, recovery codes) is created
// with the timer stopped, in batches. app.BenchmarkChallenge* measures the
// whole request on top of this.

const benchMFABatch = 100

// benchMFAMember creates a member in ws with a confirmed authenticator app
// and returns it with the credential id.
func benchMFAMember(b *testing.B, store *db.Store, ws db.Workspace, n int) (db.User, int64) {
	b.Helper()
	ctx := context.Background()
	u, err := store.CreateUser(ctx, ws.ID, fmt.Sprintf("bench%d@acme.test", n), db.RoleMember, "h", db.Meta{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	seal := func(int64) (string, []byte) { return "k1", make([]byte, 48) }
	cred, err := store.StartTOTPEnrollment(ctx, ws.ID, u.ID, seal, store.Now().Add(10*time.Minute), db.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.ConfirmTOTPEnrollment(ctx, ws.ID, u.ID, cred.ID, 1, benchHashes(0), db.Meta{}, db.OutboxMessage{}); err != nil {
		b.Fatal(err)
	}
	return u, cred.ID
}

// benchHashes is a set of 10 stored recovery-code hashes, distinct per gen.
func benchHashes(gen int) []string {
	out := make([]string, 10)
	for i := range out {
		out[i] = fmt.Sprintf("k1:%064x", gen*10+i)
	}
	return out
}

// benchChallenges stores n open challenges for u.
func benchChallenges(b *testing.B, store *db.Store, u db.User, first, n int) []db.Challenge {
	b.Helper()
	now := store.Now()
	out := make([]db.Challenge, n)
	for i := range out {
		out[i] = db.Challenge{ID: fmt.Sprintf("challenge-%d-%d", u.ID, first+i), WorkspaceID: u.WorkspaceID, UserID: u.ID,
			PasswordAt: now, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}
		if err := store.CreateChallenge(context.Background(), out[i]); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

func benchUserSession(u db.User, n int, now time.Time) db.UserSession {
	return db.UserSession{ID: fmt.Sprintf("session-%d-%d", u.ID, n), WorkspaceID: u.WorkspaceID, UserID: u.ID,
		TokenHash: fmt.Sprintf("token-%d-%d", u.ID, n), AAL: "aal2", AuthTime: now, LastSeenAt: now,
		ExpiresAt: now.Add(12 * time.Hour), IP: "192.0.2.10", UserAgent: "bench/1.0"}
}

var benchNotice = db.OutboxMessage{Kind: "recovery_used", To: "bench@acme.test", Subject: "A recovery code was used",
	Text: "A recovery code was used to sign in to Acme.", HTML: "<p>A recovery code was used to sign in to Acme.</p>"}

// BenchmarkPassChallenge is the one write transaction that ends a passed
// challenge: spend the challenge, consume the factor (TOTP step or recovery
// code, conditional updates), reset the failure counter, register the
// session, and the audit rows (plus the notice for a recovery code).
func BenchmarkPassChallenge(b *testing.B) {
	ctx := context.Background()
	b.Run("totp", func(b *testing.B) {
		store, _ := dbtest.New(b)
		ws, err := store.CreateWorkspace(ctx, "acme", "Acme")
		if err != nil {
			b.Fatal(err)
		}
		u, credID := benchMFAMember(b, store, ws, 0)
		var chs []db.Challenge
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if i%benchMFABatch == 0 {
				b.StopTimer()
				chs = benchChallenges(b, store, u, i, benchMFABatch)
				b.StartTimer()
			}
			// The store checks only that the step grows; the app matched it.
			use := db.FactorUse{Method: "totp", TOTPID: credID, Step: int64(i) + 2}
			if _, err := store.PassChallenge(ctx, chs[i%benchMFABatch], use, benchUserSession(u, i, store.Now()), db.OutboxMessage{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("recovery_code", func(b *testing.B) {
		store, _ := dbtest.New(b)
		ws, err := store.CreateWorkspace(ctx, "acme", "Acme")
		if err != nil {
			b.Fatal(err)
		}
		u, _ := benchMFAMember(b, store, ws, 0)
		var chs []db.Challenge
		var codes []db.RecoveryCode
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if i%10 == 0 {
				// A fresh set of 10 every 10 redemptions.
				b.StopTimer()
				if err := store.RegenerateRecoveryCodes(ctx, ws.ID, u.ID, benchHashes(i/10+1), db.Meta{}, db.OutboxMessage{}); err != nil {
					b.Fatal(err)
				}
				if codes, err = store.UnusedRecoveryCodes(ctx, ws.ID, u.ID); err != nil || len(codes) != 10 {
					b.Fatal(len(codes), err)
				}
				chs = benchChallenges(b, store, u, i, 10)
				b.StartTimer()
			}
			use := db.FactorUse{Method: "recovery_code", RecoveryCode: codes[i%10].ID}
			left, err := store.PassChallenge(ctx, chs[i%10], use, benchUserSession(u, i, store.Now()), benchNotice)
			if err != nil || left != 9-i%10 {
				b.Fatal(left, err)
			}
		}
	})
}

// BenchmarkRecordMFAFailure is one wrong second factor on the common path:
// upsert the member's guard row, count the failure on the challenge, audit.
// Each member takes 9 failures over 3 challenges (3 each), so no lock,
// disable or challenge end is reached: those are rare, extra writes.
func BenchmarkRecordMFAFailure(b *testing.B) {
	ctx := context.Background()
	store, _ := dbtest.New(b)
	ws, err := store.CreateWorkspace(ctx, "acme", "Acme")
	if err != nil {
		b.Fatal(err)
	}
	const perMember, perChallenge = 9, 3
	batch := perMember * 10
	var members []db.User
	var chs []db.Challenge
	meta := db.Meta{IP: "192.0.2.10", UserAgent: "bench/1.0"}
	lockMsg := db.OutboxMessage{Kind: "mfa_locked", To: "bench@acme.test", Subject: "locked", Text: "locked"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			members, chs = members[:0], chs[:0]
			for m := range batch / perMember {
				u, _ := benchMFAMember(b, store, ws, i+m)
				members = append(members, u)
				chs = append(chs, benchChallenges(b, store, u, 0, perMember/perChallenge)...)
			}
			b.StartTimer()
		}
		j := i % batch
		u, ch := members[j/perMember], chs[j/perChallenge]
		out, err := store.RecordMFAFailure(ctx, ws.ID, u.ID, ch.ID, "totp", meta, lockMsg, lockMsg)
		if err != nil {
			b.Fatal(err)
		}
		if out.NewlyLocked || out.NewlyDisabled || out.ChallengeEnded || out.ChallengeFailures != j%perChallenge+1 {
			b.Fatalf("unexpected outcome %+v", out)
		}
	}
}
