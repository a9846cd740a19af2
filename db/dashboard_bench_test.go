package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// Store-level benchmarks of the admin console at 100,000 members
// (dbtest.Members: joined over 180 days, 60 % with an app, 10 % a key only,
// half covered by a deadline). app.BenchmarkAdminDashboardPage100k measures
// the whole page on top of this. See docs/BENCHMARKS.md.

func benchStore(b *testing.B) (*db.Store, db.Workspace, db.Policy) {
	b.Helper()
	store, clock := dbtest.New(b)
	ws, err := store.CreateWorkspace(context.Background(), "bench", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	dbtest.Members(b, store, ws.ID, 100_000, clock.Now())
	b.Logf("fixture of 100,000 members: %s", time.Since(start).Round(time.Millisecond))
	return store, ws, db.DefaultPolicy()
}

func BenchmarkMembersMFA100k(b *testing.B) {
	store, ws, p := benchStore(b)
	ctx := context.Background()
	for _, status := range []string{"", db.StatusEnrolled, db.StatusInGrace, db.StatusPastDeadline, db.StatusLowRecoveryCodes, db.StatusNoMFA} {
		for _, page := range []struct{ name, after string }{{"first", ""}, {"later", "user1090000@bench.test"}} {
			b.Run(status+"/"+page.name, func(b *testing.B) {
				for b.Loop() {
					if _, err := store.MembersMFA(ctx, ws.ID, db.MemberMFAFilter{Status: status, Policy: p, Now: store.Now(), After: page.after, Limit: 51}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	// The search box: part of an email (the matches start at the 90,000th
	// member by email), part of a name (one member, found by reading them
	// all) and a miss (every member read).
	for _, q := range []struct{ name, q string }{{"email", "user10900"}, {"name", "MEMBER 90001"}, {"miss", "nobody-matches"}} {
		b.Run("search/"+q.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := store.MembersMFA(ctx, ws.ID, db.MemberMFAFilter{Policy: p, Now: store.Now(), Query: q.q, Limit: 51}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDashboard100k is the dashboard's two store calls: Coverage under
// the default policy (both methods) and under an app-only one (the key-only
// members are then in grace or past their deadline), the 90-day history, and
// Dashboard, the two in one snapshot as the page reads them.
func BenchmarkDashboard100k(b *testing.B) {
	store, ws, p := benchStore(b)
	ctx := context.Background()
	appOnly := p
	appOnly.Mode, appOnly.Methods = db.PolicyRequired, []string{db.MethodTOTP}
	for _, bc := range []struct {
		name string
		p    db.Policy
	}{{"Coverage", p}, {"CoverageAppOnly", appOnly}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := store.Coverage(ctx, ws.ID, bc.p, store.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("History90", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := store.EnrollmentHistory(ctx, ws.ID, 90, store.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Dashboard90", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := store.Dashboard(ctx, ws.ID, p, 90, store.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
