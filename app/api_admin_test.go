package app_test

// The admin JSON API beyond the members list and reset: one member's
// facts, ending their sessions, changing their role, and invitations (send,
// resend), with the same rules as the pages: 404 across workspaces before
// anything else, 403 to members, step-up for changes, bad input refused
// with nothing changed.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

func apiMemberPath(id int64, action string) string {
	p := fmt.Sprintf("/t/acme/api/v1/admin/members/%d", id)
	if action != "" {
		p += "/" + action
	}
	return p
}

func TestAdminAPIMemberDetail(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	res := a.c.API(http.MethodGet, apiMemberPath(a.alice.ID, ""), a.token, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET member = %d %s", res.StatusCode, res.Body)
	}
	m := res.JSON()
	if m["email"] != "alice@acme.test" || m["role"] != "member" || m["status"] != "enrolled" || m["deadline"] != nil ||
		m["recovery_codes_remaining"] != float64(10) || m["locked_until"] != nil || m["disabled_at"] != nil {
		t.Errorf("member = %v", m)
	}
	factors := m["factors"].([]any)
	if len(factors) != 1 || factors[0].(map[string]any)["type"] != "totp" {
		t.Errorf("factors = %v, want one totp", factors)
	}
	sessions := m["sessions"].([]any)
	if len(sessions) != 1 || sessions[0].(map[string]any)["aal"] != "aal2" {
		t.Errorf("sessions = %v, want alice's one aal2 API session", sessions)
	}
	for _, key := range []string{"secret", "password_hash", "token_hash"} {
		if strings.Contains(string(res.Body), key) {
			t.Errorf("member JSON mentions %q: %s", key, res.Body)
		}
	}
}

func TestAdminAPIEndSessionsAndRole(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	_, codes, aliceToken := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	// A second session of alice's, signed in with a recovery code.
	c := env.Client()
	res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
	mfaToken, _ := res.JSON()["mfa_token"].(string)
	if res = c.API(http.MethodPost, "/t/acme/api/v1/login/mfa", "", map[string]string{"mfa_token": mfaToken, "recovery_code": codes[0]}); res.StatusCode != http.StatusOK {
		t.Fatalf("alice's second sign-in = %d %s", res.StatusCode, res.Body)
	}

	// Bad input first: nothing changes.
	for _, body := range []any{map[string]string{"role": "root"}, map[string]string{"role": ""}, "not json", map[string]int{"role": 1}} {
		res := a.c.API(http.MethodPost, apiMemberPath(a.alice.ID, "role"), a.token, body)
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("role %v = %d %s, want 400", body, res.StatusCode, res.Body)
		}
	}
	// An admin cannot make an owner.
	res = a.c.API(http.MethodPost, apiMemberPath(a.alice.ID, "role"), a.token, map[string]string{"role": "owner"})
	if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "owner_only" {
		t.Errorf("admin makes an owner = %d %s", res.StatusCode, res.Body)
	}
	if u, _ := env.Store.UserByID(context.Background(), a.acme.ID, a.alice.ID); u.Role != db.RoleMember {
		t.Fatalf("alice's role = %s after refused changes", u.Role)
	}

	// Without step-up: 403, nothing changed.
	env.Clock.Advance(11 * time.Minute)
	before := activeSessions(t, env, a.alice)
	for _, call := range []struct {
		action string
		body   any
	}{{"end-sessions", nil}, {"role", map[string]string{"role": "admin"}}} {
		res := a.c.API(http.MethodPost, apiMemberPath(a.alice.ID, call.action), a.token, call.body)
		if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
			t.Errorf("%s without step-up = %d %s", call.action, res.StatusCode, res.Body)
		}
	}
	if n := activeSessions(t, env, a.alice); n != before || n < 2 {
		t.Fatalf("alice has %d sessions after refused end-sessions, had %d", n, before)
	}
	res = a.c.API(http.MethodPost, "/t/acme/api/v1/step-up", a.token, map[string]string{"code": nextCode(t, env, a.secret)})
	token, _ := res.JSON()["session_token"].(string)
	if token == "" {
		t.Fatalf("step-up = %d %s", res.StatusCode, res.Body)
	}

	res = a.c.API(http.MethodPost, apiMemberPath(a.alice.ID, "end-sessions"), token, nil)
	if res.StatusCode != http.StatusOK || res.JSON()["sessions_ended"] != float64(before) {
		t.Fatalf("end-sessions = %d %s, want %d ended", res.StatusCode, res.Body, before)
	}
	if n := activeSessions(t, env, a.alice); n != 0 {
		t.Errorf("alice has %d sessions after end-sessions", n)
	}
	if res := a.c.API(http.MethodGet, "/t/acme/api/v1/session", aliceToken, nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("alice's ended token = %d, want 401", res.StatusCode)
	}

	// The policy covers admins: promoting alice starts her deadline... she
	// is enrolled, so she is compliant; the response carries the deadline.
	if _, _, err := env.Store.SetPolicy(context.Background(), a.acme.ID, 0, db.PolicyChange{Policy: db.Policy{
		Mode: db.PolicyRequiredForAdmins, Methods: []string{db.MethodTOTP, db.MethodWebAuthn}, GraceDays: 14, ReminderDays: []int{7, 3, 1}, TrustedDeviceDays: 30,
	}}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	res = a.c.API(http.MethodPost, apiMemberPath(a.alice.ID, "role"), token, map[string]string{"role": "admin"})
	if res.StatusCode != http.StatusOK || res.JSON()["role"] != "admin" || res.JSON()["deadline"] == nil {
		t.Fatalf("promote = %d %s", res.StatusCode, res.Body)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE event = ? AND subject_user_id = ?`, db.EventMemberRoleChanged, a.alice.ID); n != 1 {
		t.Errorf("%d role-change events, want 1", n)
	}
}

func TestAdminAPIInvitations(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	invites := func() int64 { return queryInt(t, env, `SELECT COUNT(*) FROM invitations`) }
	for _, body := range []any{
		map[string]string{"email": "not an address", "role": "member"},
		map[string]string{"email": "new@acme.test", "role": "king"},
		map[string]string{"email": "new@acme.test"},
		"[]",
	} {
		if res := a.c.API(http.MethodPost, "/t/acme/api/v1/admin/invitations", a.token, body); res.StatusCode != http.StatusBadRequest {
			t.Errorf("invite %v = %d %s, want 400", body, res.StatusCode, res.Body)
		}
	}
	if res := a.c.API(http.MethodPost, "/t/acme/api/v1/admin/invitations", a.token, map[string]string{"email": "boss@acme.test", "role": "owner"}); res.StatusCode != http.StatusForbidden {
		t.Errorf("an admin invites an owner = %d %s", res.StatusCode, res.Body)
	}
	if res := a.c.API(http.MethodPost, "/t/acme/api/v1/admin/invitations", a.token, map[string]string{"email": "Alice@acme.test", "role": "member"}); res.StatusCode != http.StatusConflict || res.JSON()["error"] != "already_member" {
		t.Errorf("inviting a member = %d %s", res.StatusCode, res.Body)
	}
	if n := invites(); n != 0 {
		t.Fatalf("%d invitations after refused requests", n)
	}
	res := a.c.API(http.MethodPost, "/t/acme/api/v1/admin/invitations", a.token, map[string]string{"email": "new@acme.test", "role": "admin"})
	if res.StatusCode != http.StatusCreated || res.JSON()["email"] != "new@acme.test" || res.JSON()["role"] != "admin" {
		t.Fatalf("invite = %d %s", res.StatusCode, res.Body)
	}
	if strings.Contains(string(res.Body), "/invite/") {
		t.Errorf("the API answer carries the link: %s", res.Body)
	}
	id := int64(res.JSON()["id"].(float64))
	if invites() != 1 || outboxCount(t, env.Store, mail.KindInvitation, "new@acme.test") != 1 {
		t.Fatalf("invitation rows %d, emails %d", invites(), outboxCount(t, env.Store, mail.KindInvitation, "new@acme.test"))
	}
	var oldHash string
	if err := env.Store.DB().QueryRow(`SELECT token_hash FROM invitations WHERE id = ?`, id).Scan(&oldHash); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(time.Minute)
	res = a.c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/invitations/%d/resend", id), a.token, nil)
	if res.StatusCode != http.StatusOK || res.JSON()["expires_at"] == nil {
		t.Fatalf("resend = %d %s", res.StatusCode, res.Body)
	}
	newID := int64(res.JSON()["id"].(float64))
	var revoked, open int64
	if err := env.Store.DB().QueryRow(`SELECT (SELECT CASE WHEN revoked_at IS NOT NULL THEN 1 ELSE 0 END FROM invitations WHERE id = ?),
		(SELECT COUNT(*) FROM invitations WHERE email = 'new@acme.test' AND revoked_at IS NULL AND token_hash <> ?)`, id, oldHash).Scan(&revoked, &open); err != nil {
		t.Fatal(err)
	}
	if newID == id || revoked != 1 || open != 1 || outboxCount(t, env.Store, mail.KindInvitation, "new@acme.test") != 2 {
		t.Errorf("resend: new id %d (old %d), old revoked %d, open with a new link %d, %d emails", newID, id, revoked, open,
			outboxCount(t, env.Store, mail.KindInvitation, "new@acme.test"))
	}
	if res := a.c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/invitations/%d/resend", id), a.token, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("resending the revoked invitation = %d, want 404", res.StatusCode)
	}
	// Another workspace's invitation, and ids that are not ids: 404.
	if _, err := env.Store.CreateInvitation(context.Background(), mustWorkspace(t, env, "globex").ID, 0, "g@globex.test", db.RoleMember, "h-globex",
		env.Clock.Now().Add(time.Hour), db.Meta{}, db.OutboxMessage{Kind: "invitation", To: "g@globex.test"}); err != nil {
		t.Fatal(err)
	}
	gid := queryInt(t, env, `SELECT id FROM invitations WHERE email = 'g@globex.test'`)
	for _, path := range []string{fmt.Sprint(gid), "0", "abc", "-1"} {
		res := a.c.API(http.MethodPost, "/t/acme/api/v1/admin/invitations/"+path+"/resend", a.token, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("resend %s = %d, want 404", path, res.StatusCode)
		}
	}
	if n := outboxCount(t, env.Store, mail.KindInvitation, "g@globex.test"); n != 1 {
		t.Errorf("globex's invitee got %d emails, want only the one of its own invitation", n)
	}
	// Without step-up: 403, nothing queued.
	env.Clock.Advance(11 * time.Minute)
	res = a.c.API(http.MethodPost, "/t/acme/api/v1/admin/invitations", a.token, map[string]string{"email": "late@acme.test", "role": "member"})
	if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" || invites() != 3 {
		t.Errorf("invite without step-up = %d %s (%d invitations)", res.StatusCode, res.Body, invites())
	}
}

// Members get 403, other workspaces' ids 404, on every new call.
func TestAdminAPIMemberCallsScoped(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	globex := mustWorkspace(t, env, "globex")
	bob := env.User(globex, "bob@globex.test", db.RoleMember, "globex password 2")
	calls := []struct {
		method, action string
		body           any
	}{{http.MethodGet, "", nil}, {http.MethodPost, "end-sessions", nil}, {http.MethodPost, "role", map[string]string{"role": "admin"}}}
	for _, call := range calls {
		for _, id := range []int64{bob.ID, 1_000_000} {
			res := a.c.API(call.method, apiMemberPath(id, call.action), a.token, call.body)
			if res.StatusCode != http.StatusNotFound || res.JSON()["error"] != "not_found" {
				t.Errorf("%s %s on %d = %d %s, want 404", call.method, call.action, id, res.StatusCode, res.Body)
			}
		}
	}
	if u, _ := env.Store.UserByID(context.Background(), globex.ID, bob.ID); u.Role != db.RoleMember {
		t.Errorf("bob's role = %s", u.Role)
	}
	c := env.Client()
	token := c.APILogin("acme", "alice@acme.test", pw)
	for _, call := range calls {
		if res := c.API(call.method, apiMemberPath(a.admin.ID, call.action), token, call.body); res.StatusCode != http.StatusForbidden {
			t.Errorf("member %s %s = %d, want 403", call.method, call.action, res.StatusCode)
		}
	}
	if res := c.API(http.MethodPost, "/t/acme/api/v1/admin/invitations", token, map[string]string{"email": "x@acme.test", "role": "member"}); res.StatusCode != http.StatusForbidden {
		t.Errorf("member invites = %d, want 403", res.StatusCode)
	}
	if u, _ := env.Store.UserByID(context.Background(), a.acme.ID, a.admin.ID); u.Role != db.RoleAdmin {
		t.Errorf("admin's role = %s", u.Role)
	}
}
