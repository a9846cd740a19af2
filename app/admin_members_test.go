package app_test

// The admin's member detail and actions (issue 5): reset MFA, end sessions,
// change role, resend invitation, and the admin JSON API's members list and
// reset, on real SQLite through the whole stack.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

const adminPW = "admin password 1"

// adminEnv is acme with alice (member) and an admin who holds an
// authenticator app: c is the admin's browser, signed in at aal2 just now,
// token an aal2 API session.
type adminEnv struct {
	env    *apptest.Env
	acme   db.Workspace
	alice  db.User
	admin  db.User
	c      *apptest.Client
	token  string
	secret string
}

func aal2AdminSetup(t *testing.T) adminEnv {
	t.Helper()
	env, acme, alice := setup(t)
	admin := env.User(acme, "admin@acme.test", db.RoleAdmin, adminPW)
	secret, _, token := enrollAPI(t, env, "acme", "admin@acme.test", adminPW)
	c := pendingPage(t, env, "acme", "admin@acme.test", adminPW)
	if res := challengeWith(env, c, "acme", nextCode(t, env, secret)); !passed(res, "acme") {
		t.Fatalf("admin challenge = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	return adminEnv{env: env, acme: acme, alice: alice, admin: admin, c: c, token: token, secret: secret}
}

func memberPath(u db.User, action string) string {
	p := fmt.Sprintf("/t/acme/admin/members/%d", u.ID)
	if action != "" {
		p += "/" + action
	}
	return p
}

func countFor(t *testing.T, env *apptest.Env, table string, u db.User) int64 {
	return queryInt(t, env, `SELECT COUNT(*) FROM `+table+` WHERE workspace_id = ? AND user_id = ?`, u.WorkspaceID, u.ID)
}

func activeSessions(t *testing.T, env *apptest.Env, u db.User) int64 {
	return queryInt(t, env, `SELECT COUNT(*) FROM user_sessions WHERE workspace_id = ? AND user_id = ? AND ended_at IS NULL`, u.WorkspaceID, u.ID)
}

func mfaRows(t *testing.T, env *apptest.Env, u db.User) int64 {
	return countFor(t, env, "totp_credentials", u) + countFor(t, env, "webauthn_credentials", u) + countFor(t, env, "recovery_codes", u)
}

// lockOut marks the member's second factor as both paused and blocked, as
// 100 wrong codes in a row leave it.
func lockOut(t *testing.T, env *apptest.Env, u db.User) {
	t.Helper()
	now := env.Clock.Now().Unix()
	// An upsert: every code a member typed left a guard row (counted
	// before it was judged, then taken back when right).
	if _, err := env.Store.DB().Exec(`INSERT INTO mfa_guards (workspace_id, user_id, window_start, window_failures, consecutive, locked_until, disabled_at)
		VALUES (?, ?, ?, 0, 100, ?, ?)
		ON CONFLICT (workspace_id, user_id) DO UPDATE SET window_start = excluded.window_start, window_failures = 0, consecutive = 100,
			locked_until = excluded.locked_until, disabled_at = excluded.disabled_at`, u.WorkspaceID, u.ID, now, now+900, now); err != nil {
		t.Fatal(err)
	}
}

func TestAdminMemberDetail(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	enrollAPI(t, a.env, "acme", "alice@acme.test", pw)
	doc := a.c.Get("/t/acme/admin/members").Doc()
	href, ok := doc.Find(`[data-testid=members] a:contains("alice@acme.test")`).Attr("href")
	if !ok || href != memberPath(a.alice, "") {
		t.Fatalf("members list links alice to %q, want %q", href, memberPath(a.alice, ""))
	}
	res := a.c.Get(href)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET member = %d", res.StatusCode)
	}
	d := res.Doc()
	if got := d.Find("[data-testid=factors] tbody tr").First().Text(); !strings.Contains(got, "Authenticator app") {
		t.Errorf("factors = %q", got)
	}
	if got := d.Find("[data-testid=recovery-left]").Text(); got != "10" {
		t.Errorf("recovery codes left = %q, want 10", got)
	}
	if n := d.Find("[data-testid=sessions] tbody tr").Length(); n != 1 {
		t.Errorf("%d session rows, want 1 (the API session)", n)
	}
	if !strings.Contains(d.Find("[data-testid=activity]").Text(), "Authenticator app added") {
		t.Errorf("activity lacks the enrollment: %q", d.Find("[data-testid=activity]").Text())
	}
	if _, ok := d.Find(`[data-testid=reset-form] input[name=end_sessions]`).Attr("checked"); !ok {
		t.Error(`"also sign them out everywhere" is not ticked by default`)
	}
}

func TestAdminResetMFA(t *testing.T) {
	t.Parallel()
	for _, endSessions := range []bool{true, false} {
		t.Run(fmt.Sprintf("EndSessions=%v", endSessions), func(t *testing.T) {
			a := aal2AdminSetup(t)
			env, alice := a.env, a.alice
			_, _, aliceToken := enrollAPI(t, env, "acme", "alice@acme.test", pw)
			lockOut(t, env, alice)
			aliceBrowser := pendingPage(t, env, "acme", "alice@acme.test", pw)
			if n := mfaRows(t, env, alice); n != 11 {
				t.Fatalf("alice has %d factor rows before, want 11", n)
			}
			if g := a.c.Get(memberPath(alice, "")).Doc().Find("[data-testid=member-guard]").Text(); !strings.Contains(g, "Blocked") {
				t.Errorf("guard shown = %q", g)
			}

			// Without the confirmation nothing happens.
			res := a.c.PostForm(memberPath(alice, "reset-mfa"), url.Values{"end_sessions": {"on"}})
			if res.StatusCode != http.StatusUnprocessableEntity || mfaRows(t, env, alice) != 11 {
				t.Fatalf("unconfirmed reset = %d, %d rows left", res.StatusCode, mfaRows(t, env, alice))
			}

			form := url.Values{"confirm": {"yes"}}
			if endSessions {
				form.Set("end_sessions", "on")
			}
			res = a.c.PostForm(memberPath(alice, "reset-mfa"), form)
			if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), memberPath(alice, "")+"?notice=mfa_reset") {
				t.Fatalf("reset = %d %q %s", res.StatusCode, res.Header.Get("Location"), res.Body)
			}
			if n := mfaRows(t, env, alice); n != 0 {
				t.Errorf("%d factor rows left after the reset", n)
			}
			if g := mfaGuard(t, env, alice); !g.DisabledAt.IsZero() || !g.LockedUntil.IsZero() || g.Consecutive != 0 {
				t.Errorf("guard after reset = %+v, want cleared", g)
			}
			if n := outboxCount(t, env.Store, mail.KindMFAResetByAdmin, "alice@acme.test"); n != 1 {
				t.Errorf("%d reset notices to alice, want 1", n)
			}
			if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND actor_user_id = ? AND subject_user_id = ? AND event = ?`,
				alice.WorkspaceID, a.admin.ID, alice.ID, db.EventMFAResetByAdmin); n != 1 {
				t.Errorf("%d reset audit events (actor admin, subject alice), want 1", n)
			}
			// The pending challenge of alice's browser ended with the factors.
			if n := queryInt(t, env, `SELECT COUNT(*) FROM mfa_challenges WHERE user_id = ? AND ended_at IS NULL`, alice.ID); n != 0 {
				t.Errorf("%d open challenges after the reset", n)
			}
			_ = aliceBrowser
			apiStatus := a.c.API(http.MethodGet, "/t/acme/api/v1/session", aliceToken, nil).StatusCode
			if endSessions {
				if apiStatus != http.StatusUnauthorized || activeSessions(t, env, alice) != 0 {
					t.Errorf("after reset with end_sessions: alice's API session = %d, %d active", apiStatus, activeSessions(t, env, alice))
				}
			} else if apiStatus != http.StatusOK {
				t.Errorf("after reset keeping sessions: alice's API session = %d, want 200", apiStatus)
			}
			// The admin is still signed in and sees the notice.
			if d := a.c.Get(memberPath(alice, "") + "?notice=mfa_reset").Doc(); d.Find("[data-testid=factors] tbody tr td.muted").Length() != 1 {
				t.Error("member page still lists factors")
			}
			// Alice's next sign-in is the password alone.
			res = env.Client().Login("acme", "alice@acme.test", pw)
			if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/t/acme/account") {
				t.Errorf("alice's sign-in after the reset went to %q, want the portal", loc)
			}
			if r := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw}); r.JSON()["mfa_required"] != false {
				t.Errorf("API sign-in after reset = %s", r.Body)
			}
		})
	}
}

func TestAdminStepUpRequired(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env, alice := a.env, a.alice
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	env.Clock.Advance(11 * time.Minute)
	for _, action := range []string{"reset-mfa", "end-sessions", "role"} {
		res := a.c.PostForm(memberPath(alice, action), url.Values{"confirm": {"yes"}, "end_sessions": {"on"}, "role": {"admin"}})
		want := "/t/acme/account/verify?next=" + url.QueryEscape(memberPath(alice, ""))
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
			t.Errorf("%s without step-up = %d %q, want a redirect to %q", action, res.StatusCode, res.Header.Get("Location"), want)
		}
	}
	res := a.c.API(http.MethodPost, "/t/acme/api/v1/admin/members/"+fmt.Sprint(alice.ID)+"/reset-mfa", a.token, map[string]bool{"end_sessions": true})
	if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
		t.Errorf("API reset without step-up = %d %s", res.StatusCode, res.Body)
	}
	if n := mfaRows(t, env, alice); n != 11 {
		t.Fatalf("alice has %d factor rows after refused actions, want 11", n)
	}
	if u, _ := env.Store.UserByID(context.Background(), alice.WorkspaceID, alice.ID); u.Role != db.RoleMember {
		t.Fatalf("role changed without step-up: %s", u.Role)
	}
	// Re-verifying lets the action through.
	res = a.c.PostForm("/t/acme/account/verify", url.Values{"code": {nextCode(t, env, a.secret)}, "next": {memberPath(alice, "")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("step-up = %d %s", res.StatusCode, res.Body)
	}
	if res := a.c.PostForm(memberPath(alice, "reset-mfa"), url.Values{"confirm": {"yes"}}); res.StatusCode != http.StatusSeeOther || mfaRows(t, env, alice) != 0 {
		t.Fatalf("reset after step-up = %d, %d rows left", res.StatusCode, mfaRows(t, env, alice))
	}
	// The API session re-verifies through the API.
	res = a.c.API(http.MethodPost, "/t/acme/api/v1/step-up", a.token, map[string]string{"code": nextCode(t, env, a.secret)})
	newToken, _ := res.JSON()["session_token"].(string)
	if res.StatusCode != http.StatusOK || newToken == "" {
		t.Fatalf("API step-up = %d %s", res.StatusCode, res.Body)
	}
	if res := a.c.API(http.MethodPost, "/t/acme/api/v1/admin/members/"+fmt.Sprint(alice.ID)+"/reset-mfa", newToken, map[string]bool{"end_sessions": false}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("API reset after step-up = %d %s", res.StatusCode, res.Body)
	}
	if n := outboxCount(t, env.Store, mail.KindMFAResetByAdmin, "alice@acme.test"); n != 2 {
		t.Errorf("%d reset notices, want 2", n)
	}
}

// An admin of acme gets 404 for every globex member id, on every page and
// API call, and globex's members are untouched.
func TestAdminMembersCrossWorkspace(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	globex := mustWorkspace(t, env, "globex")
	bob := env.User(globex, "bob@globex.test", db.RoleAdmin, "globex password 2")
	enrollAPI(t, env, "globex", "bob@globex.test", "globex password 2")
	globexAlice, err := env.Store.UserByEmail(context.Background(), globex.ID, "alice@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	ids := []int64{bob.ID, globexAlice.ID, bob.ID + 1, 1_000_000}
	for _, id := range ids {
		u := db.User{ID: id, WorkspaceID: a.acme.ID}
		if res := a.c.Get(memberPath(u, "")); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET member %d = %d, want 404", id, res.StatusCode)
		}
		for _, action := range []string{"reset-mfa", "end-sessions", "role"} {
			if res := a.c.PostForm(memberPath(u, action), url.Values{"confirm": {"yes"}, "end_sessions": {"on"}, "role": {"member"}}); res.StatusCode != http.StatusNotFound {
				t.Errorf("POST %s on member %d = %d, want 404", action, id, res.StatusCode)
			}
		}
		res := a.c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/reset-mfa", id), a.token, map[string]bool{"end_sessions": true})
		if res.StatusCode != http.StatusNotFound || res.JSON()["error"] != "not_found" {
			t.Errorf("API reset of member %d = %d %s, want 404", id, res.StatusCode, res.Body)
		}
	}
	if n := mfaRows(t, env, bob); n != 11 {
		t.Errorf("bob has %d factor rows, want 11", n)
	}
	if n := activeSessions(t, env, bob); n != 1 {
		t.Errorf("bob has %d sessions, want 1", n)
	}
	if u, _ := env.Store.UserByID(context.Background(), globex.ID, bob.ID); u.Role != db.RoleAdmin {
		t.Errorf("bob's role = %s", u.Role)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM outbox WHERE kind = ?`, mail.KindMFAResetByAdmin); n != 0 {
		t.Errorf("%d reset notices sent", n)
	}
	// The list has acme's members only.
	res := a.c.API(http.MethodGet, "/t/acme/api/v1/admin/members", a.token, nil)
	for _, m := range res.JSON()["members"].([]any) {
		if id := int64(m.(map[string]any)["id"].(float64)); id == bob.ID || id == globexAlice.ID {
			t.Errorf("acme's list has globex member %d", id)
		}
	}
}

func TestAdminMembersForbiddenToMembers(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	c := a.env.Client()
	c.Login("acme", "alice@acme.test", pw)
	token := c.APILogin("acme", "alice@acme.test", pw)
	if res := c.Get(memberPath(a.admin, "")); res.StatusCode != http.StatusForbidden {
		t.Errorf("member GET member page = %d, want 403", res.StatusCode)
	}
	for _, action := range []string{"reset-mfa", "end-sessions", "role"} {
		if res := c.PostForm(memberPath(a.admin, action), url.Values{"confirm": {"yes"}, "role": {"owner"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("member POST %s = %d, want 403", action, res.StatusCode)
		}
	}
	if res := c.API(http.MethodGet, "/t/acme/api/v1/admin/members", token, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("member API list = %d, want 403", res.StatusCode)
	}
	if res := c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/reset-mfa", a.admin.ID), token, map[string]bool{"end_sessions": true}); res.StatusCode != http.StatusForbidden {
		t.Errorf("member API reset = %d, want 403", res.StatusCode)
	}
	if n := mfaRows(t, a.env, a.admin); n != 11 {
		t.Errorf("admin has %d factor rows, want 11", n)
	}
}

func TestAdminMalformedMemberIDs(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	for _, id := range []string{"0", "-1", "abc", "1e3", "0x10", "1.5", "99999999999999999999", "%20", "%2F1", strings.Repeat("9", 400), "%C3%A9"} {
		if res := a.c.Get("/t/acme/admin/members/" + id); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET member %q = %d, want 404", id, res.StatusCode)
		}
		for _, action := range []string{"reset-mfa", "end-sessions", "role"} {
			if res := a.c.PostForm("/t/acme/admin/members/"+id+"/"+action, url.Values{"confirm": {"yes"}, "role": {"member"}}); res.StatusCode != http.StatusNotFound {
				t.Errorf("POST %s on %q = %d, want 404", action, id, res.StatusCode)
			}
		}
		if res := a.c.PostForm("/t/acme/admin/invitations/"+id+"/resend", nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("resend invitation %q = %d, want 404", id, res.StatusCode)
		}
		if res := a.c.API(http.MethodPost, "/t/acme/api/v1/admin/members/"+id+"/reset-mfa", a.token, map[string]bool{}); res.StatusCode != http.StatusNotFound {
			t.Errorf("API reset %q = %d, want 404", id, res.StatusCode)
		}
	}
	if strings.Contains(a.env.Logs(), `"status":500`) || strings.Contains(a.env.Logs(), "request failed") {
		t.Error("a malformed id caused a 500")
	}
}

func TestAdminChangeRole(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env, alice := a.env, a.alice
	owner := env.User(a.acme, "owner@acme.test", db.RoleOwner, "owner password 1")
	role := func(u db.User) string {
		got, err := env.Store.UserByID(context.Background(), u.WorkspaceID, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Role
	}
	aliceBrowser := env.Client()
	aliceBrowser.Login("acme", "alice@acme.test", pw)

	// An admin cannot make owners or demote owners.
	if res := a.c.PostForm(memberPath(alice, "role"), url.Values{"role": {"owner"}}); res.StatusCode != http.StatusForbidden || role(alice) != db.RoleMember {
		t.Errorf("admin making an owner = %d, role %s", res.StatusCode, role(alice))
	}
	if res := a.c.PostForm(memberPath(owner, "role"), url.Values{"role": {"admin"}}); res.StatusCode != http.StatusForbidden || role(owner) != db.RoleOwner {
		t.Errorf("admin demoting an owner = %d, role %s", res.StatusCode, role(owner))
	}
	if res := a.c.PostForm(memberPath(alice, "role"), url.Values{"role": {"superuser"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("bad role = %d, want 422", res.StatusCode)
	}
	// An admin makes a member an admin; her sessions end with the change
	// and she has the console once she signs in again.
	if res := a.c.PostForm(memberPath(alice, "role"), url.Values{"role": {"admin"}}); res.StatusCode != http.StatusSeeOther || role(alice) != db.RoleAdmin {
		t.Fatalf("admin promoting alice = %d, role %s", res.StatusCode, role(alice))
	}
	if n := auditCount(t, env, alice, db.EventMemberRoleChanged); n != 1 {
		t.Errorf("%d role change events, want 1", n)
	}
	if signedIn(t, aliceBrowser, "acme") {
		t.Error("alice's session survived her promotion")
	}
	aliceBrowser.Login("acme", "alice@acme.test", pw)
	if res := aliceBrowser.Get("/t/acme/admin"); res.StatusCode != http.StatusOK {
		t.Errorf("alice, now admin, GET admin = %d", res.StatusCode)
	}

	// An owner without a second factor cannot act at all: admin changes
	// need a fresh second factor, so they are sent to set one up.
	bare := env.Client()
	bare.Login("acme", "owner@acme.test", "owner password 1")
	if res := bare.PostForm(memberPath(alice, "role"), url.Values{"role": {"owner"}}); res.StatusCode != http.StatusSeeOther ||
		!strings.Contains(res.Header.Get("Location"), "/account/verify") || role(alice) != db.RoleAdmin {
		t.Fatalf("owner without a second factor changing a role = %d %q, role %s", res.StatusCode, res.Header.Get("Location"), role(alice))
	}
	if res := bare.Get("/t/acme/account/verify?next=/t/acme/admin"); res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "notice=enroll_first") {
		t.Fatalf("verify page without a factor = %d %q, want the MFA page", res.StatusCode, res.Header.Get("Location"))
	}

	// The owner, with a second factor and fresh from the challenge, cannot
	// demote the last owner, themself included, but can make another owner
	// first.
	ownerSecret, _, _ := enrollAPI(t, env, "acme", "owner@acme.test", "owner password 1")
	oc := pendingPage(t, env, "acme", "owner@acme.test", "owner password 1")
	if res := challengeWith(env, oc, "acme", nextCode(t, env, ownerSecret)); !passed(res, "acme") {
		t.Fatalf("owner challenge = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := oc.PostForm(memberPath(owner, "role"), url.Values{"role": {"member"}}); res.StatusCode != http.StatusConflict || role(owner) != db.RoleOwner {
		t.Errorf("demoting the last owner = %d, role %s", res.StatusCode, role(owner))
	}
	if res := oc.PostForm(memberPath(alice, "role"), url.Values{"role": {"owner"}}); res.StatusCode != http.StatusSeeOther || role(alice) != db.RoleOwner {
		t.Fatalf("owner making alice owner = %d, role %s", res.StatusCode, role(alice))
	}
	if res := oc.PostForm(memberPath(owner, "role"), url.Values{"role": {"member"}}); res.StatusCode != http.StatusSeeOther || role(owner) != db.RoleMember {
		t.Fatalf("second-to-last owner stepping down = %d, role %s", res.StatusCode, role(owner))
	}
	// Demoted: the former owner's own session ended with the change;
	// signed in again, they have no admin console.
	if signedIn(t, oc, "acme") {
		t.Error("the demoted owner's session survived the change")
	}
	oc = pendingPage(t, env, "acme", "owner@acme.test", "owner password 1")
	if res := challengeWith(env, oc, "acme", nextCode(t, env, ownerSecret)); !passed(res, "acme") {
		t.Fatalf("former owner challenge = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := oc.Get("/t/acme/admin"); res.StatusCode != http.StatusForbidden {
		t.Errorf("demoted owner GET admin = %d, want 403", res.StatusCode)
	}
	// Alice, now the last owner but without a second factor (signed in
	// again after her promotion), is sent to set one up before any admin
	// change; her role stays.
	aliceBrowser.Login("acme", "alice@acme.test", pw)
	if res := aliceBrowser.PostForm(memberPath(alice, "role"), url.Values{"role": {"admin"}}); res.StatusCode != http.StatusSeeOther ||
		!strings.Contains(location(res), "/account/verify") || role(alice) != db.RoleOwner {
		t.Errorf("the last owner (no second factor) demoting themself = %d, role %s", res.StatusCode, role(alice))
	}
}

func TestAdminEndSessions(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env, alice := a.env, a.alice
	b1, b2 := env.Client(), env.Client()
	b1.Login("acme", "alice@acme.test", pw)
	b2.Login("acme", "alice@acme.test", pw)
	token := env.Client().APILogin("acme", "alice@acme.test", pw)
	res := a.c.PostForm(memberPath(alice, "end-sessions"), nil)
	if res.StatusCode != http.StatusSeeOther || !strings.HasSuffix(res.Header.Get("Location"), "?notice=sessions_ended") {
		t.Fatalf("end sessions = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if signedIn(t, b1, "acme") || signedIn(t, b2, "acme") {
		t.Error("alice's browser sessions survived")
	}
	if r := env.Client().API(http.MethodGet, "/t/acme/api/v1/session", token, nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("alice's API session = %d, want 401", r.StatusCode)
	}
	if n := activeSessions(t, env, alice); n != 0 {
		t.Errorf("%d active sessions", n)
	}
	if n := auditCount(t, env, alice, db.EventSessionEndedByAdmin); n != 1 {
		t.Errorf("%d session.ended_by_admin events, want 1", n)
	}
	if !signedIn(t, a.c, "acme") {
		t.Error("the admin was signed out")
	}
}

func TestAdminResendInvitation(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	oldPath := invite(t, env, a.c, "newbie@acme.test", db.RoleMember)
	action, ok := a.c.Get("/t/acme/admin/members").Doc().Find("[data-testid=resend]").Attr("action")
	if !ok {
		t.Fatal("no Resend button on the open invitation")
	}
	res := a.c.PostForm(action, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/admin/members?notice=invitation_resent" {
		t.Fatalf("resend = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	msgs, _ := env.Store.OutboxMessages(context.Background(), 1)
	newLink := linkRE.FindString(msgs[0].Text)
	if msgs[0].To != "newbie@acme.test" || newLink == "" {
		t.Fatalf("resent email = %+v", msgs[0])
	}
	newPath := strings.TrimPrefix(newLink, env.Config.BaseURL.String())
	if newPath == oldPath {
		t.Fatal("the resent link is the old one")
	}
	if res := env.Client().Get(oldPath); res.StatusCode != http.StatusNotFound {
		t.Errorf("old link = %d, want 404", res.StatusCode)
	}
	if res := accept(env.Client(), oldPath, "newbie password"); res.StatusCode != http.StatusNotFound {
		t.Errorf("accepting with the old link = %d, want 404", res.StatusCode)
	}
	if res := accept(env.Client(), newPath, "newbie password"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("accepting with the new link = %d %s", res.StatusCode, res.Body)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE event = ?`, db.EventInvitationResent); n != 1 {
		t.Errorf("%d invitation.resent events, want 1", n)
	}
	// Resending a used invitation does nothing.
	if res := a.c.PostForm(action, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("resending an accepted invitation = %d, want 404", res.StatusCode)
	}
	// Another workspace's invitation id is a 404.
	if _, err := env.Store.CreateInvitation(context.Background(), mustWorkspace(t, env, "globex").ID, 0, "g@globex.test", db.RoleMember, "h-globex",
		env.Clock.Now().Add(time.Hour), db.Meta{}, db.OutboxMessage{Kind: "invitation", To: "g@globex.test"}); err != nil {
		t.Fatal(err)
	}
	gid := queryInt(t, env, `SELECT id FROM invitations WHERE email = 'g@globex.test'`)
	if res := a.c.PostForm(fmt.Sprintf("/t/acme/admin/invitations/%d/resend", gid), nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("resending globex's invitation = %d, want 404", res.StatusCode)
	}
}

func TestAdminAPIMembers(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	env.User(a.acme, "carol@acme.test", db.RoleMember, pw)
	carol, _ := env.Store.UserByEmail(context.Background(), a.acme.ID, "carol@acme.test")
	enrollAPI(t, env, "acme", "carol@acme.test", pw)
	if _, err := env.Store.DB().Exec(`UPDATE recovery_codes SET used_at = 1 WHERE user_id = ? AND id IN (SELECT id FROM recovery_codes WHERE user_id = ? LIMIT 7)`, carol.ID, carol.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.Store.RecountFactorSummaries(context.Background(), a.acme.ID); err != nil {
		t.Fatal(err)
	}
	env.User(a.acme, "dave@acme.test", db.RoleMember, pw)
	list := func(query string) (map[string]map[string]any, any) {
		t.Helper()
		res := a.c.API(http.MethodGet, "/t/acme/api/v1/admin/members"+query, a.token, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("list %s = %d %s", query, res.StatusCode, res.Body)
		}
		out := map[string]map[string]any{}
		for _, m := range res.JSON()["members"].([]any) {
			mm := m.(map[string]any)
			out[mm["email"].(string)] = mm
		}
		return out, res.JSON()["next_cursor"]
	}
	all, next := list("")
	if len(all) != 4 || next != nil {
		t.Fatalf("list = %v (next %v), want 4 members on one page", all, next)
	}
	for email, want := range map[string]string{"alice@acme.test": "enrolled", "admin@acme.test": "enrolled", "carol@acme.test": "low_recovery_codes", "dave@acme.test": "no_mfa"} {
		if got := all[email]["status"]; got != want {
			t.Errorf("%s status = %v, want %s", email, got, want)
		}
	}
	if m := all["carol@acme.test"]; m["recovery_codes_remaining"] != float64(3) || fmt.Sprint(m["factors"]) != "[totp]" || m["deadline"] != nil || m["role"] != "member" {
		t.Errorf("carol = %v", m)
	}
	if _, ok := all["dave@acme.test"]["deadline"]; !ok || fmt.Sprint(all["dave@acme.test"]["factors"]) != "[]" {
		t.Errorf("dave = %v, want deadline null and no factors", all["dave@acme.test"])
	}
	for query, want := range map[string]int{
		"?status=enrolled": 3, "?status=low_recovery_codes": 1, "?status=no_mfa": 1,
		"?status=in_grace": 0, "?status=past_deadline": 0, "?q=CAR": 1, "?q=%25": 0, "?status=no_mfa&q=alice": 0,
	} {
		if got, _ := list(query); len(got) != want {
			t.Errorf("list %s = %d members, want %d", query, len(got), want)
		}
	}
	for _, bad := range []string{"?status=bogus", "?cursor=***"} {
		if res := a.c.API(http.MethodGet, "/t/acme/api/v1/admin/members"+bad, a.token, nil); res.StatusCode != http.StatusBadRequest {
			t.Errorf("list %s = %d, want 400", bad, res.StatusCode)
		}
	}
	// Paging: 120 more members, each seen once.
	for i := range 120 {
		if _, err := env.Store.CreateUser(context.Background(), a.acme.ID, fmt.Sprintf("user%03d@acme.test", i), db.RoleMember, "x", db.Meta{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		q := "?status=no_mfa"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		got, next := list(q)
		for e := range got {
			if seen[e] {
				t.Errorf("%s listed twice", e)
			}
			seen[e] = true
		}
		if next == nil {
			break
		}
		cursor = next.(string)
	}
	if len(seen) != 121 {
		t.Errorf("paging showed %d no_mfa members, want 121", len(seen))
	}
}
