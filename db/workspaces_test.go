package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// No way of creating a workspace can take a slug the service uses
// (SECURITY rule 14): the store refuses every reserved slug, in any case.
func TestCreateWorkspaceReservedSlug(t *testing.T) {
	store, _ := dbtest.New(t)
	ctx := context.Background()
	for _, slug := range db.ReservedSlugs() {
		for _, s := range []string{slug, strings.ToUpper(slug)} {
			if _, err := store.CreateWorkspace(ctx, s, "Impostor"); !errors.Is(err, db.ErrReservedSlug) {
				t.Errorf("CreateWorkspace(%q) = %v, want ErrReservedSlug", s, err)
			}
		}
	}
	var n int
	if err := store.DB().QueryRow(`SELECT COUNT(*) FROM workspaces`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d workspaces after refusals (%v)", n, err)
	}
	for _, want := range []string{"csrf", "support", "api", "www", "well-known", db.PlatformSlug} {
		if !db.ReservedSlug(want) {
			t.Errorf("ReservedSlug(%q) = false", want)
		}
	}
	if _, err := store.CreateWorkspace(ctx, "csrf-team", "CSRF team"); err != nil {
		t.Errorf("CreateWorkspace(csrf-team) = %v: only whole names are reserved", err)
	}
	// The platform workspace is made by its own path, not refused.
	if _, err := store.PlatformWorkspace(ctx); err != nil {
		t.Errorf("PlatformWorkspace = %v", err)
	}
}
