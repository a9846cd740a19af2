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

func TestEnrollLinks(t *testing.T) {
	store, clock := dbtest.New(t)
	ctx := context.Background()
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	globex, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	bob, _ := store.CreateUser(ctx, acme.ID, "bob@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	carol, _ := store.CreateUser(ctx, acme.ID, "carol@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	msg := db.OutboxMessage{Kind: "mfa_enroll_link", To: "bob@acme.test"}
	create := func(hash string) error {
		return store.CreateEnrollLink(ctx, acme.ID, bob.ID, "sess-1", hash, clock.Now().Add(30*time.Minute), 5, time.Hour, db.Meta{}, msg)
	}
	if err := create("h1"); err != nil {
		t.Fatal(err)
	}
	use := func(ws, uid int64, sess, hash string) error {
		return store.UseEnrollLink(ctx, ws, uid, sess, []string{hash}, db.Meta{})
	}
	// Another member, workspace or session, or a wrong token: refused.
	for _, err := range []error{
		use(acme.ID, carol.ID, "sess-1", "h1"),
		use(globex.ID, bob.ID, "sess-1", "h1"),
		use(acme.ID, bob.ID, "sess-2", "h1"),
		use(acme.ID, bob.ID, "sess-1", "h1x"),
	} {
		if !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("foreign use = %v, want ErrNotFound", err)
		}
	}
	// Racing uses: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if use(acme.ID, bob.ID, "sess-1", "h1") == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d racing uses won, want 1", wins)
	}
	// Expired.
	if err := create("h2"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Minute)
	if err := use(acme.ID, bob.ID, "sess-1", "h2"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("expired use = %v", err)
	}
	// Throttle: 5 an hour.
	clock.Advance(2 * time.Hour)
	for i := range 5 {
		if err := create("t" + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := create("t-extra"); !errors.Is(err, db.ErrTooMany) {
		t.Fatalf("sixth link = %v, want ErrTooMany", err)
	}
}
