package db_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// Two regenerations of one member's recovery codes at once (two tabs, two
// nodes) leave exactly one set: the later replaces the earlier whole. On
// PostgreSQL at READ COMMITTED, without the member's lock, the second
// DELETE waits for the first, skips the rows it had inserted (they are not
// in its scan) and both sets stay valid: 20 codes where the member saved 10.
func TestRegenerateRecoveryCodesRace(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	u, _ := store.CreateUser(ctx, ws.ID, "a@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	enrollTOTP(t, store, ws.ID, u.ID, clock)
	set := func(round, tab int) []string {
		out := make([]string, 10)
		for i := range out {
			out[i] = fmt.Sprintf("hash-%d-%d-%d", round, tab, i)
		}
		return out
	}
	for round := range 10 {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for tab := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[tab] = store.RegenerateRecoveryCodes(ctx, ws.ID, u.ID, set(round, tab), db.Meta{}, db.OutboxMessage{})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		codes, err := store.UnusedRecoveryCodes(ctx, ws.ID, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		tabs := map[string]bool{}
		for _, c := range codes {
			var r, tab, i int
			fmt.Sscanf(c.Hash, "hash-%d-%d-%d", &r, &tab, &i)
			tabs[fmt.Sprint(r, "/", tab)] = true
		}
		if len(codes) != 10 || len(tabs) != 1 {
			t.Fatalf("round %d: %d unused codes from %d sets after concurrent regenerations, want 10 from one", round, len(codes), len(tabs))
		}
		if n, err := store.RecoveryCodesRemaining(ctx, ws.ID, u.ID); err != nil || n != 10 {
			t.Fatalf("round %d: summary says %d codes (%v)", round, n, err)
		}
	}
}
