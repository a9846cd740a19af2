package app_test

// The route table's facts (route.go, routes.go), each proved with real
// requests through the whole stack: every state-changing route that
// declares a step-up refuses a stale aal2 session (pages go to verify, the
// API and the pages' fetch endpoints answer 403 step_up_required), every
// state-changing route without one is on a reviewed list, and every admin
// route refuses a member and another workspace's admin.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// noStepUp are the state-changing routes that change security without a
// fresh second factor, each for a reason. Adding one means adding it here,
// on purpose.
var noStepUp = map[string]string{
	"POST /t/:slug/logout":                               "signing out never waits",
	"POST /t/:slug/api/v1/logout":                        "signing out never waits",
	"POST /t/:slug/account/sessions/:id/end":             "ends one of the member's own sessions: takes access away",
	"POST /t/:slug/account/sessions/end-others":          "ends the member's other sessions: takes access away",
	"POST /t/:slug/account/verify":                       "is the step-up",
	"POST /t/:slug/account/verify/webauthn/begin":        "is the step-up",
	"POST /t/:slug/account/verify/webauthn/finish":       "is the step-up",
	"POST /t/:slug/api/v1/step-up":                       "is the step-up",
	"POST /t/:slug/api/v1/step-up/webauthn/begin":        "is the step-up",
	"POST /t/:slug/api/v1/step-up/webauthn/finish":       "is the step-up",
	"POST /t/:slug/api/v1/step-up/sms/send":              "is the step-up (texts its code)",
	"POST /t/:slug/api/v1/mfa/sms/verify-setup":          "confirms an enrollment bound to the session and step-up that began it (rule 12)",
	"POST /t/:slug/account/mfa/totp":                     "confirms an enrollment bound to the session and step-up that began it (rule 12)",
	"POST /t/:slug/account/mfa/sms":                      "confirms an enrollment bound to the session and step-up that began it (rule 12)",
	"POST /t/:slug/account/mfa/sms/resend":               "texts the pending phone of the session and step-up that began it (rule 12)",
	"POST /t/:slug/account/verify/sms":                   "is the step-up",
	"POST /t/:slug/api/v1/mfa/totp/verify-setup":         "confirms an enrollment bound to the session and step-up that began it (rule 12)",
	"POST /t/:slug/account/mfa/webauthn/register/finish": "finishes a registration bound to the session and step-up that began it (rule 12)",
	"POST /t/:slug/api/v1/mfa/webauthn/register/finish":  "finishes a registration bound to the session and step-up that began it (rule 12)",
	"POST /t/:slug/account/enroll/link":                  "a confined member without a factor asks for the emailed link",
	"POST /t/:slug/account/enroll/link/:token":           "spends the emailed link, bound to this session",
	"POST /t/:slug/account/apps/:client/revoke":          "takes an application's access away (like ending a session)",
	"POST /t/:slug/oauth/continue":                       "the member's consent to an application: grants what signing in there would, no security change",
}

// stepUpWalk is a workspace owner and a staff member, each with an
// authenticator app and signed in on the pages and the API, and alice.
type stepUpWalk struct {
	env                  *apptest.Env
	alice                db.User
	owner, staff         *apptest.Client
	ownerToken, staffTok string
}

func newStepUpWalk(t *testing.T) stepUpWalk {
	t.Helper()
	env, acme, alice := setup(t)
	env.User(acme, "owner@acme.test", db.RoleOwner, adminPW)
	secret, _, tok := enrollAPI(t, env, "acme", "owner@acme.test", adminPW)
	owner := pendingPage(t, env, "acme", "owner@acme.test", adminPW)
	if res := challengeWith(env, owner, "acme", nextCode(t, env, secret)); !passed(res, "acme") {
		t.Fatalf("owner challenge = %d", res.StatusCode)
	}
	_, link := newStaff(t, env, "staff@platform.test", true)
	ssecret := enrollStaff(t, env, link)
	env.Clock.Advance(30 * time.Second)
	staff := staffPage(t, env, "staff@platform.test", ssecret)
	env.Clock.Advance(30 * time.Second)
	stok := staffToken(t, env, "staff@platform.test", ssecret)
	// An application for the routes that act on one (onClient).
	if _, err := env.Store.CreateOAuthClient(context.Background(), alice.WorkspaceID, 0, db.OAuthClient{ClientID: db.NewClientID(),
		Name: "App", Kind: db.ClientSPA, RedirectURIs: []string{"https://app.test/cb"}, Scopes: []string{"openid"}}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	return stepUpWalk{env: env, alice: alice, owner: owner, staff: staff, ownerToken: tok, staffTok: stok}
}

// rowCounts counts the rows of every table but scs's sessions.
func rowCounts(t *testing.T, env *apptest.Env) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, n := range dbtest.Tables(t, env.Store) {
		if n == "sessions" {
			continue
		}
		out[n] = queryInt(t, env, `SELECT COUNT(*) FROM "`+n+`"`)
	}
	return out
}

// Every state-changing route either declares a step-up, and then refuses
// a session whose second factor is 11 minutes old, or is on the reviewed
// list. The refusals change nothing.
func TestRouteFactsStepUp(t *testing.T) {
	t.Parallel()
	w := newStepUpWalk(t)
	env := w.env
	env.Clock.Advance(11 * time.Minute) // past StepUpWindow, within the idle limit
	before := rowCounts(t, env)
	aliceID := fmt.Sprint(w.alice.ID)
	walked := 0
	for _, r := range env.Server.Echo().Routes() {
		key := r.Method + " " + r.Path
		f, ok := env.Server.Route(r.Method, r.Path)
		if !ok {
			t.Errorf("route %s has no facts", key)
			continue
		}
		if r.Method == http.MethodGet || f.Public {
			continue
		}
		if !f.StepUp {
			if noStepUp[key] == "" {
				t.Errorf("state-changing route %s needs no step-up and is not on the reviewed list", key)
			}
			continue
		}
		if noStepUp[key] != "" {
			t.Errorf("route %s is on the no-step-up list but declares a step-up", key)
		}
		walked++
		c, token, base := w.owner, w.ownerToken, "/t/acme"
		if !f.InWorkspaces {
			c, token, base = w.staff, w.staffTok, "/support"
		}
		id := "1"
		if f.OnMember {
			id = aliceID
		}
		if f.OnClient {
			id = clientID(t, env)
		}
		path := strings.NewReplacer("/t/:slug", base, ":id", id, ":device", "1", ":token", "x").Replace(r.Path)
		switch {
		case f.API:
			res := c.API(r.Method, path, token, map[string]any{"code": "123456", "role": "admin", "days": 3, "email": "new@acme.test"})
			if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
				t.Errorf("stale %s %s = %d %s, want 403 step_up_required", r.Method, path, res.StatusCode, res.Body)
			}
		case f.JSON:
			req, _ := http.NewRequest(r.Method, c.URL(path), strings.NewReader(`{"name":"key"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-CSRF-Token", c.CSRF())
			res := c.Do(req)
			if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
				t.Errorf("stale %s %s = %d %s, want 403 step_up_required", r.Method, path, res.StatusCode, res.Body)
			}
		default:
			res := c.PostForm(path, url.Values{"confirm": {"yes"}, "role": {"admin"}, "days": {"3"}, "email": {"new@acme.test"},
				"current_password": {adminPW}, "password": {"a new password 1"}, "confirm_password": {"a new password 1"}})
			want := base + "/account/verify?next="
			if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), want) {
				t.Errorf("stale %s %s = %d %q, want 303 to %s…", r.Method, path, res.StatusCode, res.Header.Get("Location"), want)
			}
		}
	}
	if walked < 30 {
		t.Fatalf("walked only %d step-up routes", walked)
	}
	for key := range noStepUp {
		method, path, _ := strings.Cut(key, " ")
		if _, ok := env.Server.Route(method, path); !ok {
			t.Errorf("reviewed route %s does not exist", key)
		}
	}
	after := rowCounts(t, env)
	for table, n := range before {
		if after[table] != n {
			t.Errorf("table %s: %d rows before the walk, %d after", table, n, after[table])
		}
	}
}

// Every admin route refuses a member of the workspace (403) and another
// workspace's admin (anonymous here: 303 to sign-in on pages, 401 on the
// API, also with the other workspace's token), and changes nothing.
func TestRouteFactsAdmin(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	globex, err := env.Store.WorkspaceBySlug(context.Background(), "globex")
	if err != nil {
		t.Fatal(err)
	}
	env.User(acme, "owner@acme.test", db.RoleOwner, adminPW)
	env.User(globex, "bob@globex.test", db.RoleOwner, adminPW)
	enrollAPI(t, env, "acme", "owner@acme.test", adminPW)
	bobSecret, _, bobToken := enrollAPI(t, env, "globex", "bob@globex.test", adminPW)
	bob := pendingPage(t, env, "globex", "bob@globex.test", adminPW)
	if res := challengeWith(env, bob, "globex", nextCode(t, env, bobSecret)); !passed(res, "globex") {
		t.Fatalf("bob's challenge = %d", res.StatusCode)
	}
	member := env.Client()
	member.Login("acme", "alice@acme.test", pw)
	memberToken := member.APILogin("acme", "alice@acme.test", pw)
	before := rowCounts(t, env)
	walked := 0
	for _, r := range env.Server.Echo().Routes() {
		f, _ := env.Server.Route(r.Method, r.Path)
		if !f.Admin {
			continue
		}
		walked++
		path := strings.NewReplacer(":slug", "acme", ":id", fmt.Sprint(alice.ID), ":device", "1").Replace(r.Path)
		body := map[string]any{"role": "owner", "days": 3, "email": "new@acme.test", "policy": "off"}
		if f.API {
			if res := member.API(r.Method, path, memberToken, body); res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "forbidden" {
				t.Errorf("member %s %s = %d %s, want 403", r.Method, path, res.StatusCode, res.Body)
			}
			if res := bob.API(r.Method, path, bobToken, body); res.StatusCode != http.StatusUnauthorized {
				t.Errorf("globex's owner %s %s = %d %s, want 401", r.Method, path, res.StatusCode, res.Body)
			}
			continue
		}
		for name, c := range map[string]*apptest.Client{"member": member, "globex's owner": bob} {
			var res *apptest.Response
			if r.Method == http.MethodGet {
				res = c.Get(path)
			} else {
				res = c.PostForm(path, url.Values{"confirm": {"yes"}, "role": {"owner"}, "days": {"3"}, "email": {"new@acme.test"}})
			}
			switch name {
			case "member":
				if res.StatusCode != http.StatusForbidden {
					t.Errorf("member %s %s = %d, want 403", r.Method, path, res.StatusCode)
				}
			default:
				if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login") {
					t.Errorf("%s %s %s = %d %q, want 303 to acme's sign-in", name, r.Method, path, res.StatusCode, res.Header.Get("Location"))
				}
			}
		}
	}
	if walked < 25 {
		t.Fatalf("walked only %d admin routes", walked)
	}
	after := rowCounts(t, env)
	for table, n := range before {
		if after[table] != n {
			t.Errorf("table %s: %d rows before the walk, %d after", table, n, after[table])
		}
	}
	if u, _ := env.Store.UserByID(context.Background(), acme.ID, alice.ID); u.Role != db.RoleMember || !u.MFADeadline.IsZero() {
		t.Errorf("alice after the walk: role %s, deadline %v", u.Role, u.MFADeadline)
	}
}

// clientID is the row id of the walk's application.
func clientID(t *testing.T, env *apptest.Env) string {
	t.Helper()
	return strconv.FormatInt(queryInt(t, env, `SELECT id FROM oauth_clients ORDER BY id LIMIT 1`), 10)
}
