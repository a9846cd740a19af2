package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// A staff enrollment link binds one factor: of requests racing with it,
// exactly one stores its key; the others get ErrEnrollmentLink and store
// nothing. A spent link finds nobody.
func TestStaffEnrollmentLinkBindsOnce(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	sam, err := store.CreateStaff(ctx, "sam@gatehouse.test", db.StaffRole, "x", "h:link", clock.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := store.StaffEnrollment(ctx, []string{"h:other", "h:link"}); err != nil || u.ID != sam.ID {
		t.Fatalf("StaffEnrollment = %v, %v", u.ID, err)
	}
	const racers = 6
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			_, errs[i] = store.EnrollStaffKey(ctx, sam, []string{"h:link"}, db.WebAuthnCredential{WorkspaceID: sam.WorkspaceID, UserID: sam.ID,
				Name: fmt.Sprint("key ", i), CredentialID: []byte{byte(i + 1)}, PublicKey: []byte{1}}, nil, db.Meta{}, db.OutboxMessage{Kind: "x", To: sam.Email})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, db.ErrEnrollmentLink):
			t.Errorf("a racer failed with %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d racers bound a key with one link, want 1", ok)
	}
	if n := count(t, store, `SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?`, sam.ID); n != 1 {
		t.Errorf("%d keys stored, want 1", n)
	}
	if _, err := store.StaffEnrollment(ctx, []string{"h:link"}); !errors.Is(err, db.ErrEnrollmentLink) {
		t.Errorf("the spent link still finds %v", err)
	}
	// Not a customer workspace, and no customer member's link.
	if _, err := store.WorkspaceBySlug(ctx, db.PlatformSlug); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("WorkspaceBySlug(platform) = %v", err)
	}
}
