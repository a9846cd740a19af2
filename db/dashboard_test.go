package db_test

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

func TestCoverageAndHistory(t *testing.T) {
	store, clock := dbtest.New(t)
	ctx := context.Background()
	ws, err := store.CreateWorkspace(ctx, "bench", "Bench")
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	dbtest.Members(t, store, ws.ID, 1000, now)
	p := db.DefaultPolicy()
	c, err := store.Coverage(ctx, ws.ID, p, now)
	if err != nil {
		t.Fatal(err)
	}
	// Counted the slow way through MembersMFA, every filter must agree.
	count := func(status string) int {
		n, after := 0, ""
		for {
			ms, err := store.MembersMFA(ctx, ws.ID, db.MemberMFAFilter{Status: status, Policy: p, Now: now, After: after, Limit: 200})
			if err != nil {
				t.Fatal(err)
			}
			n += len(ms)
			if len(ms) < 200 {
				return n
			}
			after = db.EmailKey(ms[len(ms)-1].Email)
		}
	}
	for status, got := range map[string]int{"": c.Members, db.StatusEnrolled: c.Enrolled, db.StatusInGrace: c.InGrace,
		db.StatusPastDeadline: c.PastDeadline, db.StatusLowRecoveryCodes: c.LowRecoveryCodes, db.StatusNoMFA: c.NoMFA} {
		if want := count(status); got != want {
			t.Errorf("coverage %q = %d, MembersMFA lists %d", status, got, want)
		}
	}
	if c.Members != 1000 || c.Enrolled != 700 || c.NoMFA != 300 {
		t.Errorf("coverage = %+v", c)
	}
	h, err := store.EnrollmentHistory(ctx, ws.ID, 90, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 90 || h[89].Members != 1000 || h[89].Enrolled != 700 {
		t.Fatalf("history today = %+v (%d days)", h[len(h)-1], len(h))
	}
	for i := 1; i < len(h); i++ {
		if h[i].Members < h[i-1].Members || h[i].Enrolled < h[i-1].Enrolled || h[i].Enrolled > h[i].Members {
			t.Fatalf("history not cumulative at %d: %+v then %+v", i, h[i-1], h[i])
		}
	}
}

func benchStore(b *testing.B) (*db.Store, db.Workspace, db.Policy) {
	store, clock := dbtest.New(b)
	ws, err := store.CreateWorkspace(context.Background(), "bench", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	dbtest.Members(b, store, ws.ID, 100_000, clock.Now())
	return store, ws, db.DefaultPolicy()
}

func BenchmarkMembersMFA100k(b *testing.B) {
	store, ws, p := benchStore(b)
	ctx := context.Background()
	for _, status := range []string{"", db.StatusEnrolled, db.StatusInGrace, db.StatusPastDeadline, db.StatusLowRecoveryCodes, db.StatusNoMFA} {
		for _, page := range []struct{ name, after string }{{"first", ""}, {"later", "user090000@bench.test"}} {
			b.Run(status+"/"+page.name, func(b *testing.B) {
				for b.Loop() {
					if _, err := store.MembersMFA(ctx, ws.ID, db.MemberMFAFilter{Status: status, Policy: p, Now: store.Now(), After: page.after, Limit: 51}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDashboard100k(b *testing.B) {
	store, ws, p := benchStore(b)
	ctx := context.Background()
	b.Run("Coverage", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.Coverage(ctx, ws.ID, p, store.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("History90", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.EnrollmentHistory(ctx, ws.ID, 90, store.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
