package db_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// Store-level benchmarks of the database work of a WebAuthn assertion, on a
// real SQLite file (WAL, synchronous=NORMAL, as in production). Ceremonies
// and challenges are single use, so they are created with the timer
// stopped, benchMFABatch at a time. app.BenchmarkWebAuthn* measures the
// whole request on top of this.

// benchSessionData is about the size of go-webauthn's SessionData for a
// second-factor ceremony with one allowed credential, as JSON.
var benchSessionData = `{"challenge":"` + string(bytes.Repeat([]byte{'c'}, 43)) + `","rpId":"acme.localhost","user_id":"` +
	string(bytes.Repeat([]byte{'u'}, 86)) + `","allowed_credentials":["` + string(bytes.Repeat([]byte{'k'}, 44)) +
	`"],"expires":"2026-11-24T20:05:00Z","userVerification":"preferred"}`

// benchWAMember creates a member with a handle and one key (fake bytes: the
// store does not parse them).
func benchWAMember(b *testing.B, store *db.Store, ws db.Workspace, n int) (db.User, db.WebAuthnCredential) {
	b.Helper()
	ctx := context.Background()
	u, err := store.CreateUser(ctx, ws.ID, fmt.Sprintf("key%d@acme.test", n), db.RoleMember, "h", db.Meta{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := store.WebAuthnHandle(ctx, ws.ID, u.ID); err != nil {
		b.Fatal(err)
	}
	cred, err := store.AddWebAuthnCredential(ctx, db.WebAuthnCredential{
		WorkspaceID: ws.ID, UserID: u.ID, Name: "YubiKey 5", CredentialID: bytes.Repeat([]byte{byte(n), 1}, 16),
		PublicKey: bytes.Repeat([]byte{2}, 77), AAGUID: make([]byte, 16), Transports: []string{"usb"}, UserVerified: true,
		AttestationFormat: "none", AttestationType: "none",
	}, benchHashes(0), db.Meta{}, db.OutboxMessage{})
	if err != nil {
		b.Fatal(err)
	}
	return u, cred
}

func benchWAWorkspace(b *testing.B) (*db.Store, db.Workspace) {
	b.Helper()
	store, _ := dbtest.New(b)
	ws, err := store.CreateWorkspace(context.Background(), "acme", "Acme")
	if err != nil {
		b.Fatal(err)
	}
	return store, ws
}

// BenchmarkWebAuthnUseCeremony spends a ceremony: one conditional UPDATE …
// RETURNING (auto-commit).
func BenchmarkWebAuthnUseCeremony(b *testing.B) {
	ctx := context.Background()
	store, ws := benchWAWorkspace(b)
	u, _ := benchWAMember(b, store, ws, 0)
	var ids []string
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%benchMFABatch == 0 {
			b.StopTimer()
			ids = ids[:0]
			for j := range benchMFABatch {
				id := fmt.Sprintf("ceremony-%d", i+j)
				if err := store.CreateCeremony(ctx, db.Ceremony{ID: id, WorkspaceID: ws.ID, UserID: u.ID, Kind: db.CeremonySecondFactor,
					ChallengeID: "challenge", SessionData: benchSessionData, ExpiresAt: store.Now().Add(5 * time.Minute)}); err != nil {
					b.Fatal(err)
				}
				ids = append(ids, id)
			}
			b.StartTimer()
		}
		if _, err := store.UseCeremony(ctx, ws.ID, ids[i%benchMFABatch], db.CeremonySecondFactor, u.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebAuthnLoadKeys is what loadWAUser reads before each
// verification: the member's handle (WebAuthnHandle, a transaction that
// would make the handle on first use) and keys.
func BenchmarkWebAuthnLoadKeys(b *testing.B) {
	ctx := context.Background()
	store, ws := benchWAWorkspace(b)
	u, _ := benchWAMember(b, store, ws, 0)
	b.Run("handle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if h, err := store.WebAuthnHandle(ctx, ws.ID, u.ID); err != nil || len(h) != 64 {
				b.Fatal(err)
			}
		}
	})
	b.Run("credentials", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if cs, err := store.WebAuthnCredentials(ctx, ws.ID, u.ID); err != nil || len(cs) != 1 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWebAuthnPassChallenge is the write transaction that ends a
// second step passed with a key: spend the challenge, the conditional
// sign-count update, reset the failures, register the session, audit.
func BenchmarkWebAuthnPassChallenge(b *testing.B) {
	ctx := context.Background()
	store, ws := benchWAWorkspace(b)
	u, cred := benchWAMember(b, store, ws, 0)
	var chs []db.Challenge
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%benchMFABatch == 0 {
			b.StopTimer()
			chs = benchChallenges(b, store, u, i, benchMFABatch)
			b.StartTimer()
		}
		use := db.FactorUse{Method: "webauthn", WebAuthnID: cred.ID, SignCount: uint32(i) + 1, OldSignCount: uint32(i)}
		if _, err := store.PassChallenge(ctx, chs[i%benchMFABatch], use, benchUserSession(u, i, store.Now()), db.OutboxMessage{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebAuthnSignInWithFactor is the write transaction of a
// passwordless sign-in: the conditional sign-count update, reset the
// failures, register the session, audit.
func BenchmarkWebAuthnSignInWithFactor(b *testing.B) {
	ctx := context.Background()
	store, ws := benchWAWorkspace(b)
	u, cred := benchWAMember(b, store, ws, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		use := db.FactorUse{Method: "passkey", WebAuthnID: cred.ID, SignCount: uint32(i) + 1, OldSignCount: uint32(i)}
		if err := store.SignInWithFactor(ctx, use, benchUserSession(u, i, store.Now())); err != nil {
			b.Fatal(err)
		}
	}
}
