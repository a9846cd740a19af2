package app_test

// The security settings page and the admin API's policy (GET/PUT
// /admin/policy): preview by dry run, save with step-up, errors, and ending
// non-compliant members' sessions.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const settingsPath = "/t/acme/admin/settings/security"

func requiredForm() url.Values {
	return url.Values{"policy": {"required"}, "methods": {"totp", "webauthn"}, "grace_days": {"14"},
		"reminder_days": {"7, 3, 1"}, "trusted_device_days": {"0"}, "passkeys_satisfy_mfa": {"on"}}
}

func policyOf(t *testing.T, env *apptest.Env, ws db.Workspace) db.Policy {
	t.Helper()
	p, err := env.Store.Policy(context.Background(), ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func policyAudits(t *testing.T, env *apptest.Env, ws db.Workspace) int64 {
	return queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, ws.ID, db.EventPolicyChanged)
}

func TestPolicySettingsPage(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	res := a.c.Get(settingsPath)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET settings = %d", res.StatusCode)
	}
	doc := res.Doc()
	if got := doc.Find("[data-testid=current-policy]").Text(); got != "Optional" {
		t.Errorf("current policy = %q", got)
	}
	if _, ok := doc.Find(`input[name=policy][value=optional]`).Attr("checked"); !ok {
		t.Error("optional is not checked")
	}
	if v, _ := doc.Find(`input[name=grace_days]`).Attr("value"); v != "30" {
		t.Errorf("grace days = %q", v)
	}
	if v, _ := doc.Find(`input[name=reminder_days]`).Attr("value"); v != "7, 3, 1" {
		t.Errorf("reminder days = %q", v)
	}
	if doc.Find(`form[data-testid=policy-form] input[name=_csrf]`).Length() != 1 {
		t.Error("no CSRF field")
	}

	// Preview: the impact, nothing saved.
	q := requiredForm()
	res = a.c.Get(settingsPath + "?" + q.Encode())
	impact := res.Doc().Find("[data-testid=preview-impact]").Text()
	want := "2 members have no allowed second factor"
	if res.StatusCode != http.StatusOK || !strings.Contains(impact, "1 member has no allowed second factor") && !strings.Contains(impact, want) {
		t.Errorf("preview = %d %q", res.StatusCode, impact)
	}
	deadline := env.Clock.Now().Add(14 * 24 * time.Hour).UTC().Format("2 Jan 2006")
	if !strings.Contains(impact, "until "+deadline) {
		t.Errorf("preview %q lacks the deadline %s", impact, deadline)
	}
	if p := policyOf(t, env, a.acme); p.Mode != db.PolicyOptional || policyAudits(t, env, a.acme) != 0 {
		t.Fatalf("preview saved: %+v", p)
	}

	// The CSRF token the Preview button sends along is dropped from the
	// address.
	withToken := requiredForm()
	withToken.Set("_csrf", "token")
	res = a.c.Get(settingsPath + "?" + withToken.Encode())
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || strings.Contains(loc, "_csrf") || !strings.Contains(loc, "policy=required") {
		t.Errorf("preview with the token = %d %q", res.StatusCode, loc)
	}

	// Invalid values: 400, field errors, nothing saved.
	bad := requiredForm()
	bad.Set("grace_days", "400")
	bad.Del("methods")
	res = a.c.PostForm(settingsPath, bad)
	d := res.Doc()
	if res.StatusCode != http.StatusBadRequest || d.Find("#grace_days-error").Length() != 1 || d.Find("#methods-error").Length() != 1 {
		t.Errorf("invalid save = %d", res.StatusCode)
	}
	if p := policyOf(t, env, a.acme); p.Mode != db.PolicyOptional {
		t.Fatalf("invalid save changed the policy: %+v", p)
	}

	// Save: redirect with a notice, audited with old and new values.
	res = a.c.PostForm(settingsPath, requiredForm())
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != settingsPath+"?notice=policy_saved" {
		t.Fatalf("save = %d %q %s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	p := policyOf(t, env, a.acme)
	if p.Mode != db.PolicyRequired || p.GraceDays != 14 || p.EnforcedSince.IsZero() {
		t.Errorf("saved %+v", p)
	}
	var details string
	if err := env.Store.DB().QueryRow(`SELECT details FROM audit_events WHERE workspace_id = ? AND event = ?`, a.acme.ID, db.EventPolicyChanged).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(details, `"old"`) || !strings.Contains(details, `"optional"`) || !strings.Contains(details, `"required"`) {
		t.Errorf("audit details %s", details)
	}
	d = a.c.Get(settingsPath + "?notice=policy_saved").Doc()
	if !strings.Contains(d.Text(), "The security settings were saved.") || d.Find("[data-testid=current-policy]").Text() != "Required" || d.Find("[data-testid=standard-deadline]").Text() != deadline {
		t.Errorf("after save: %q / %q", d.Find("[data-testid=current-policy]").Text(), d.Find("[data-testid=standard-deadline]").Text())
	}

	// Without a fresh step-up: sent to verify, nothing saved.
	env.Clock.Advance(11 * time.Minute)
	off := requiredForm()
	off.Set("policy", "off")
	res = a.c.PostForm(settingsPath, off)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/verify?next="+url.QueryEscape(settingsPath) {
		t.Errorf("stale save = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if p := policyOf(t, env, a.acme); p.Mode != db.PolicyRequired {
		t.Errorf("stale save changed the policy to %s", p.Mode)
	}
}

// An admin without a second factor cannot require one.
func TestPolicyEnrollFirst(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	env.User(acme, "boss@acme.test", db.RoleOwner, adminPW)
	// The owner enrolls only a passkey-less TOTP through the API, then the
	// policy allows webauthn only: they would not be compliant.
	secret, _, token := enrollAPI(t, env, "acme", "boss@acme.test", adminPW)
	_ = secret
	body := map[string]any{"policy": "required", "methods": []string{"webauthn"}}
	res := env.Client().API(http.MethodPut, "/t/acme/api/v1/admin/policy", token, body)
	if res.StatusCode != http.StatusConflict || res.JSON()["error"] != "enroll_first" {
		t.Errorf("API = %d %s", res.StatusCode, res.Body)
	}
	c := pendingPage(t, env, "acme", "boss@acme.test", adminPW)
	challengeWith(env, c, "acme", nextCode(t, env, secret))
	f := requiredForm()
	f["methods"] = []string{"webauthn"}
	res = c.PostForm(settingsPath, f)
	if res.StatusCode != http.StatusConflict || res.Doc().Find(`[data-testid=enroll-first] a[href="/t/acme/account/mfa"]`).Length() != 1 {
		t.Errorf("page = %d", res.StatusCode)
	}
	if p := policyOf(t, env, acme); p.Mode != db.PolicyOptional || policyAudits(t, env, acme) != 0 {
		t.Errorf("enroll-first saved %+v", p)
	}
}

func TestPolicyAPI(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	const path = "/t/acme/api/v1/admin/policy"
	res := a.c.API(http.MethodGet, path, a.token, nil)
	j := res.JSON()
	if res.StatusCode != http.StatusOK || j["policy"] != "optional" || j["grace_days"] != float64(30) || j["enforced_since"] != nil {
		t.Fatalf("GET = %d %s", res.StatusCode, res.Body)
	}
	// Dry run: impact, nothing saved.
	res = a.c.API(http.MethodPut, path+"?dry_run=true", a.token, map[string]any{"policy": "required"})
	imp, _ := res.JSON()["impact"].(map[string]any)
	if res.StatusCode != http.StatusOK || imp == nil || imp["non_compliant"] != float64(1) || imp["covered"] != float64(2) || imp["deadline"] == nil {
		t.Errorf("dry run = %d %s", res.StatusCode, res.Body)
	}
	if policyOf(t, env, a.acme).Mode != db.PolicyOptional {
		t.Fatal("dry run saved")
	}
	// Bad input: 400 invalid_policy, nothing changes.
	for _, body := range []any{
		map[string]any{"policy": "mandatory"},
		map[string]any{"grace_days": "ten"},
		map[string]any{"grace_dayz": 3},
		map[string]any{"methods": []string{}},
		map[string]any{"trusted_device_days": 31},
	} {
		res := a.c.API(http.MethodPut, path, a.token, body)
		if res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_policy" {
			t.Errorf("PUT %v = %d %s", body, res.StatusCode, res.Body)
		}
	}
	// Partial update keeps the other values.
	res = a.c.API(http.MethodPut, path, a.token, map[string]any{"policy": "required_for_admins", "grace_days": 10})
	j = res.JSON()
	if res.StatusCode != http.StatusOK || j["policy"] != "required_for_admins" || j["grace_days"] != float64(10) || j["enforced_since"] == nil {
		t.Fatalf("PUT = %d %s", res.StatusCode, res.Body)
	}
	p := policyOf(t, env, a.acme)
	if len(p.ReminderDays) != 3 || len(p.Methods) != 2 {
		t.Errorf("partial update lost values: %+v", p)
	}
	// Stale step-up: 403, but a dry run still answers.
	env.Clock.Advance(11 * time.Minute)
	res = a.c.API(http.MethodPut, path, a.token, map[string]any{"policy": "off"})
	if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
		t.Errorf("stale PUT = %d %s", res.StatusCode, res.Body)
	}
	if res := a.c.API(http.MethodPut, path+"?dry_run=true", a.token, map[string]any{"policy": "off"}); res.StatusCode != http.StatusOK {
		t.Errorf("stale dry run = %d", res.StatusCode)
	}
	if policyOf(t, env, a.acme).Mode != db.PolicyRequiredForAdmins {
		t.Error("refused PUT changed the policy")
	}
	// A member is refused.
	aliceToken := env.Client().APILogin("acme", "alice@acme.test", pw)
	if res := a.c.API(http.MethodGet, path, aliceToken, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("member GET = %d", res.StatusCode)
	}
	// acme's admin token does not reach globex.
	globex := mustWorkspace(t, env, "globex")
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		res := a.c.API(m, "/t/globex/api/v1/admin/policy", a.token, map[string]any{"policy": "off"})
		if res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden && res.StatusCode != http.StatusNotFound {
			t.Errorf("%s globex = %d", m, res.StatusCode)
		}
	}
	if policyOf(t, env, globex).Mode != db.PolicyOptional {
		t.Error("globex's policy changed")
	}
}

func TestPolicyEndNonCompliantSessions(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	alice := env.Client()
	if res := alice.Login("acme", "alice@acme.test", pw); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("alice login = %d", res.StatusCode)
	}
	if !signedIn(t, alice, "acme") {
		t.Fatal("alice not signed in")
	}
	f := requiredForm()
	f.Set("end_sessions", "on")
	if res := a.c.PostForm(settingsPath, f); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save = %d %s", res.StatusCode, res.Body)
	}
	if signedIn(t, alice, "acme") {
		t.Error("non-compliant alice is still signed in")
	}
	if !signedIn(t, a.c, "acme") {
		t.Error("the compliant admin was signed out")
	}
}
