package main

import (
	"context"
	"testing"

	"github.com/gatehouse/gatehouse/db"
)

// workspace passkeys is a change of the policy: audited with the old and
// new values, as the system; showing the rules audits nothing.
func TestWorkspacePasskeysAudited(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("", "workspace", "passkeys", "--slug", "acme")
	h.ok("", "workspace", "passkeys", "--slug", "acme", "--satisfy-mfa", "false")
	ws, _ := h.workspace("acme")
	store := h.store()
	evs, err := store.AuditEvents(context.Background(), ws.ID, db.AuditFilter{Event: db.EventPolicyChanged, Limit: 10})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d policy events, %v; want 1", len(evs), err)
	}
	old, _ := evs[0].Details["old"].(map[string]any)
	nw, _ := evs[0].Details["new"].(map[string]any)
	if old["passkeys_satisfy_mfa"] != true || nw["passkeys_satisfy_mfa"] != false || nw["policy"] != "optional" || evs[0].ActorUserID != 0 || evs[0].IP != "cli" {
		t.Fatalf("audit = %+v", evs[0])
	}
}
