package app_test

// Owners are protected from admins (SECURITY rule 13, issue 12 defect 4),
// and every admin change asks for a fresh second factor, an invitation
// made on the page included (defect 6).

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
)

// An admin at aal2 with a fresh step-up cannot reset an owner's second
// factors, end their sessions, revoke their trusted browsers, change
// their role or extend their deadline, on the pages or the API; the
// console shows the admin none of those buttons. Another owner can.
func TestAdminCannotTouchOwner(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	setTrustedDays(t, env, "acme", 30)
	owner := env.User(a.acme, "owner@acme.test", db.RoleOwner, "owner password 1")
	secret, _, _ := enrollAPI(t, env, "acme", "owner@acme.test", "owner password 1")
	ownerBrowser := env.Client()
	trustBrowser(t, env, ownerBrowser, "acme", "owner@acme.test", "owner password 1", secret)
	factors, sessions := mfaRows(t, env, owner), activeSessions(t, env, owner)
	devices := countFor(t, env, "trusted_devices", owner)
	if factors == 0 || sessions == 0 || devices == 0 {
		t.Fatalf("owner has %d factor rows, %d sessions, %d trusted browsers", factors, sessions, devices)
	}
	var device int64
	if err := env.Store.DB().QueryRow(`SELECT id FROM trusted_devices WHERE user_id = ?`, owner.ID).Scan(&device); err != nil {
		t.Fatal(err)
	}

	for _, action := range []string{"reset-mfa", "end-sessions", "role", "extend-deadline", fmt.Sprintf("trusted/%d/revoke", device)} {
		res := a.c.PostForm(memberPath(owner, action), url.Values{"confirm": {"yes"}, "end_sessions": {"on"}, "role": {"member"}, "days": {"7"}})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("admin's page %s on the owner = %d, want 403", action, res.StatusCode)
		}
	}
	for _, action := range []string{"reset-mfa", "end-sessions", "role", "extend-deadline"} {
		res := a.c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/%s", owner.ID, action), a.token,
			map[string]any{"end_sessions": true, "role": "member", "days": 7})
		if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "owner_only" {
			t.Errorf("admin's API %s on the owner = %d %s, want 403 owner_only", action, res.StatusCode, res.Body)
		}
	}
	if n := mfaRows(t, env, owner); n != factors {
		t.Errorf("owner has %d factor rows after the admin's attempts, want %d", n, factors)
	}
	if n := activeSessions(t, env, owner); n != sessions {
		t.Errorf("owner has %d sessions after the admin's attempts, want %d", n, sessions)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices WHERE user_id = ? AND revoked_at IS NULL`, owner.ID); n != devices {
		t.Errorf("owner has %d usable trusted browsers after the admin's attempts, want %d", n, devices)
	}
	if u, _ := env.Store.UserByID(context.Background(), a.acme.ID, owner.ID); u.Role != db.RoleOwner {
		t.Errorf("owner's role = %s", u.Role)
	}

	// The console shows the admin the owner, without the buttons.
	doc := a.c.Get(memberPath(owner, "")).Doc()
	for _, sel := range []string{"[data-testid=reset-form]", "[data-testid=end-sessions-form]", "[data-testid=role-form]", "[data-testid=extend-form]", "[data-testid=revoke-device]"} {
		if doc.Find(sel).Length() != 0 {
			t.Errorf("the admin's view of an owner has %s", sel)
		}
	}
	if doc.Find("[data-testid=owner-only]").Length() != 1 {
		t.Errorf("the admin's view of an owner does not say why the actions are missing")
	}
	// The same admin still manages a member.
	if doc := a.c.Get(memberPath(a.alice, "")).Doc(); doc.Find("[data-testid=reset-form]").Length() != 1 {
		t.Errorf("the admin's view of a member has no reset form")
	}

	// Another owner can.
	env.User(a.acme, "second@acme.test", db.RoleOwner, "owner password 2")
	_, _, tok := enrollAPI(t, env, "acme", "second@acme.test", "owner password 2")
	res := a.c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/reset-mfa", owner.ID), tok, map[string]bool{"end_sessions": true})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("owner's reset of an owner = %d %s", res.StatusCode, res.Body)
	}
	if n := mfaRows(t, env, owner); n != 0 {
		t.Errorf("owner has %d factor rows after another owner's reset", n)
	}
}

// The page that creates an invitation asks for a fresh second factor like
// the API: an owner whose second factor is 11 minutes old is sent to
// verify, and nothing is created until they do.
func TestInvitationPageNeedsStepUp(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	env.Clock.Advance(11 * time.Minute)
	res := a.c.PostForm("/t/acme/admin/invitations", url.Values{"email": {"newbie@acme.test"}, "role": {db.RoleAdmin}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/account/verify?next=") {
		t.Fatalf("stale invitation = %d %q, want 303 to verify", res.StatusCode, res.Header.Get("Location"))
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM invitations`); n != 0 {
		t.Fatalf("%d invitations after a stale attempt", n)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM outbox WHERE kind = 'invitation'`); n != 0 {
		t.Fatalf("%d invitation emails after a stale attempt", n)
	}
	if res := a.c.PostForm("/t/acme/account/verify", url.Values{"code": {nextCode(t, env, a.secret)}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("step-up = %d", res.StatusCode)
	}
	res = a.c.PostForm("/t/acme/admin/invitations", url.Values{"email": {"newbie@acme.test"}, "role": {db.RoleAdmin}})
	if res.StatusCode != http.StatusSeeOther || queryInt(t, env, `SELECT COUNT(*) FROM invitations`) != 1 {
		t.Fatalf("invitation after the step-up = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}
