package app_test

// Who may read and change the policy: a plain member, another workspace's
// admin (its session cookie and its API token), an admin without a fresh
// step-up, and forms without a valid CSRF token are all refused, and
// nothing changes in either workspace.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// policyState is everything a policy change would touch in ws.
func policyState(t *testing.T, env *apptest.Env, ws db.Workspace) string {
	t.Helper()
	p := policyOf(t, env, ws)
	k, err := env.Store.PasskeySettings(context.Background(), ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%+v %+v audits=%d deadlines=%d ended=%d", p, k, policyAudits(t, env, ws),
		queryInt(t, env, `SELECT COUNT(*) + COALESCE(SUM(mfa_deadline), 0) FROM users WHERE workspace_id = ? AND mfa_deadline IS NOT NULL`, ws.ID),
		queryInt(t, env, `SELECT COUNT(*) FROM user_sessions WHERE workspace_id = ? AND ended_at IS NOT NULL`, ws.ID))
}

func TestPolicyRefused(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	globex := mustWorkspace(t, env, "globex")
	const apiPath = "/t/acme/api/v1/admin/policy"

	// alice, a plain member of acme, in a browser and through the API.
	alice := env.Client()
	alice.Login("acme", "alice@acme.test", pw)
	aliceToken := env.Client().APILogin("acme", "alice@acme.test", pw)

	// globex's admin, at aal2 in a browser and through the API.
	env.User(globex, "admin@globex.test", db.RoleAdmin, adminPW)
	gsecret, _, gtoken := enrollAPI(t, env, "globex", "admin@globex.test", adminPW)
	gadmin := pendingPage(t, env, "globex", "admin@globex.test", adminPW)
	if res := challengeWith(env, gadmin, "globex", nextCode(t, env, gsecret)); !passed(res, "globex") {
		t.Fatalf("globex admin challenge = %d %q", res.StatusCode, location(res))
	}
	// Its session cookie presented to acme.
	borrowed := env.Client()
	borrowed.SetCookie("gh_s_acme", gadmin.Cookie("gh_s_globex"))

	acmeBefore, globexBefore := policyState(t, env, a.acme), policyState(t, env, globex)
	change := map[string]any{"policy": "required", "grace_days": 1, "passkeys_satisfy_mfa": false}

	type scenario struct {
		name string
		do   func() *apptest.Response
		// status and, for JSON answers, the error code; for redirects the
		// Location prefix.
		status int
		code   string
		to     string
	}
	scenarios := []scenario{
		{name: "MemberPageGET", do: func() *apptest.Response { return alice.Get(settingsPath) }, status: http.StatusForbidden},
		{name: "MemberPagePreview", do: func() *apptest.Response { return alice.Get(settingsPath + "?" + requiredForm().Encode()) }, status: http.StatusForbidden},
		{name: "MemberPagePOST", do: func() *apptest.Response { return alice.PostForm(settingsPath, requiredForm()) }, status: http.StatusForbidden},
		{name: "MemberAPIGET", do: func() *apptest.Response { return alice.API(http.MethodGet, apiPath, aliceToken, nil) }, status: http.StatusForbidden, code: "forbidden"},
		{name: "MemberAPIPUT", do: func() *apptest.Response { return alice.API(http.MethodPut, apiPath, aliceToken, change) }, status: http.StatusForbidden, code: "forbidden"},
		{name: "MemberAPIDryRun", do: func() *apptest.Response {
			return alice.API(http.MethodPut, apiPath+"?dry_run=true", aliceToken, change)
		}, status: http.StatusForbidden, code: "forbidden"},

		{name: "OtherAdminPageGET", do: func() *apptest.Response { return gadmin.Get(settingsPath) }, status: http.StatusSeeOther, to: "/t/acme/login"},
		{name: "OtherAdminPagePOST", do: func() *apptest.Response { return gadmin.PostForm(settingsPath, requiredForm()) }, status: http.StatusSeeOther, to: "/t/acme/login"},
		{name: "BorrowedCookieGET", do: func() *apptest.Response { return borrowed.Get(settingsPath) }, status: http.StatusSeeOther, to: "/t/acme/login"},
		{name: "BorrowedCookiePOST", do: func() *apptest.Response { return borrowed.PostForm(settingsPath, requiredForm()) }, status: http.StatusSeeOther, to: "/t/acme/login"},
		{name: "OtherAdminAPIGET", do: func() *apptest.Response { return gadmin.API(http.MethodGet, apiPath, gtoken, nil) }, status: http.StatusUnauthorized, code: "unauthenticated"},
		{name: "OtherAdminAPIPUT", do: func() *apptest.Response { return gadmin.API(http.MethodPut, apiPath, gtoken, change) }, status: http.StatusUnauthorized, code: "unauthenticated"},
		{name: "OtherAdminAPIDryRun", do: func() *apptest.Response { return gadmin.API(http.MethodPut, apiPath+"?dry_run=true", gtoken, change) }, status: http.StatusUnauthorized, code: "unauthenticated"},

		// The API never reads the cookie: the admin's own browser session
		// without the bearer token is nobody.
		{name: "AdminCookieOnAPI", do: func() *apptest.Response { return a.c.API(http.MethodPut, apiPath, "", change) }, status: http.StatusUnauthorized, code: "unauthenticated"},

		{name: "CSRFMissing", do: func() *apptest.Response { return a.c.PostRaw(settingsPath, requiredForm()) }, status: http.StatusForbidden},
		{name: "CSRFTampered", do: func() *apptest.Response {
			f := requiredForm()
			tok := a.c.CSRF()
			f.Set("_csrf", tok[:len(tok)-1]+map[bool]string{true: "A", false: "B"}[!strings.HasSuffix(tok, "A")])
			return a.c.PostRaw(settingsPath, f)
		}, status: http.StatusForbidden},
		{name: "CSRFOfAnotherBrowser", do: func() *apptest.Response {
			f := requiredForm()
			f.Set("_csrf", alice.CSRF())
			return a.c.PostRaw(settingsPath, f)
		}, status: http.StatusForbidden},
	}
	check := func(t *testing.T, sc scenario) {
		t.Helper()
		res := sc.do()
		if res.StatusCode != sc.status {
			t.Fatalf("status %d, want %d (%q) %.300s", res.StatusCode, sc.status, location(res), res.Body)
		}
		if sc.code != "" {
			wantErr(t, sc.name, res, sc.code, sc.status)
		}
		if sc.to != "" && !strings.HasPrefix(location(res), sc.to) {
			t.Fatalf("goes to %q, want %s", location(res), sc.to)
		}
		if sc.status == http.StatusForbidden && sc.code == "" && res.Doc().Find("form[data-testid=policy-form]").Length() != 0 {
			t.Fatal("the settings form was shown")
		}
		if got := policyState(t, env, a.acme); got != acmeBefore {
			t.Fatalf("acme changed: %s -> %s", acmeBefore, got)
		}
		if got := policyState(t, env, globex); got != globexBefore {
			t.Fatalf("globex changed: %s -> %s", globexBefore, got)
		}
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { check(t, sc) })
	}
	// The CSRF refusals are the csrf_failed error.
	if res := a.c.PostRaw(settingsPath, requiredForm()); !strings.Contains(res.Doc().Text(), "This form has expired or was sent from another site") {
		t.Errorf("CSRF refusal page: %.300s", res.Body)
	}

	// The admin's own step-up goes stale: the page sends them to verify,
	// the API answers step_up_required; a dry run still answers.
	env.Clock.Advance(11 * time.Minute)
	a.c.Get("/t/acme/account") // keep the browser session from idling out
	for _, sc := range []scenario{
		{name: "StalePagePOST", do: func() *apptest.Response { return a.c.PostForm(settingsPath, requiredForm()) }, status: http.StatusSeeOther,
			to: "/t/acme/account/verify?next=" + url.QueryEscape(settingsPath)},
		{name: "StaleAPIPUT", do: func() *apptest.Response { return a.c.API(http.MethodPut, apiPath, a.token, change) }, status: http.StatusForbidden, code: "step_up_required"},
	} {
		t.Run(sc.name, func(t *testing.T) { check(t, sc) })
	}
	if res := a.c.API(http.MethodPut, apiPath+"?dry_run=true", a.token, change); res.StatusCode != http.StatusOK {
		t.Errorf("stale dry run = %d %s", res.StatusCode, res.Body)
	}
	if got := policyState(t, env, a.acme); got != acmeBefore {
		t.Fatalf("the dry run changed acme: %s -> %s", acmeBefore, got)
	}
	// Still fine with a fresh step-up: the refusals above were not the
	// form's fault.
	if res := a.c.PostForm("/t/acme/account/verify", url.Values{"code": {nextCode(t, env, a.secret)}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("step-up = %d %s", res.StatusCode, res.Body)
	}
	if res := a.c.PostForm(settingsPath, requiredForm()); res.StatusCode != http.StatusSeeOther || location(res) != settingsPath+"?notice=policy_saved" {
		t.Fatalf("save after step-up = %d %q", res.StatusCode, location(res))
	}
	if policyOf(t, env, a.acme).Mode != db.PolicyRequired || policyState(t, env, globex) != globexBefore {
		t.Fatal("the save after step-up did not land in acme alone")
	}
}
