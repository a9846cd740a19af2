package app_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// requireMFA puts acme under "required" (TOTP and keys, 14 days' grace),
// set by an owner who has the authenticator app; it returns the owner's
// secret and aal2 API token.
func requireMFA(t *testing.T, env *apptest.Env, acme db.Workspace) (secret, token string) {
	t.Helper()
	owner := env.User(acme, "owner@acme.test", db.RoleOwner, "owner password 1")
	secret, _, token = enrollAPI(t, env, "acme", "owner@acme.test", "owner password 1")
	p := db.Policy{Mode: db.PolicyRequired, Methods: []string{db.MethodTOTP, db.MethodWebAuthn}, GraceDays: 14, ReminderDays: []int{7, 3, 1}}
	if _, _, err := env.Store.SetPolicy(context.Background(), acme.ID, owner.ID, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	return secret, token
}

func apiLogin(c *apptest.Client, email, password string) *apptest.Response {
	return c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": email, "password": password})
}

func TestEnforceAPILoginDeadline(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	c := env.Client()
	// Policy optional: no deadline for anyone.
	res := apiLogin(c, "alice@acme.test", pw)
	if res.StatusCode != http.StatusOK || res.JSON()["enrollment_deadline"] != nil {
		t.Fatalf("optional: login = %d %s", res.StatusCode, res.Body)
	}
	requireMFA(t, env, acme)

	// In grace: an aal1 session and the deadline.
	res = apiLogin(c, "alice@acme.test", pw)
	body := res.JSON()
	dl, _ := body["enrollment_deadline"].(string)
	want := env.Clock.Now().Add(14 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if res.StatusCode != http.StatusOK || body["aal"] != "aal1" || dl != want {
		t.Fatalf("in grace: login = %d %s, want deadline %s", res.StatusCode, res.Body, want)
	}
	tok, _ := body["session_token"].(string)
	res = c.API(http.MethodGet, "/t/acme/api/v1/mfa", tok, nil)
	if res.StatusCode != http.StatusOK || res.JSON()["policy"] != "required" || res.JSON()["deadline"] != want {
		t.Fatalf("GET /mfa = %d %s", res.StatusCode, res.Body)
	}

	// Past the deadline: 403 and no session.
	env.Clock.Advance(15 * 24 * time.Hour)
	res = apiLogin(c, "alice@acme.test", pw)
	if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "mfa_enrollment_required" || res.JSON()["session_token"] != nil {
		t.Fatalf("past deadline: login = %d %s", res.StatusCode, res.Body)
	}
}

func TestEnforceLastFactorRequired(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	secret, token := requireMFA(t, env, acme)
	c := env.Client()
	res := c.API(http.MethodDelete, "/t/acme/api/v1/mfa/totp", token, map[string]string{"code": nowCode(t, env, secret)})
	if res.StatusCode != http.StatusConflict || res.JSON()["error"] != "factor_required_by_policy" {
		t.Fatalf("DELETE /mfa/totp = %d %s, want 409", res.StatusCode, res.Body)
	}
	owner, err := env.Store.UserByEmail(context.Background(), acme.ID, "owner@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	if !hasTOTP(t, env, owner) {
		t.Fatal("the authenticator app was removed")
	}
}

var enrollLinkRE = regexp.MustCompile(`https?://\S+/account/enroll/link/[A-Za-z0-9_-]{43}`)

// lastEnrollLink returns the path of the newest enrollment link sent to.
func lastEnrollLink(t *testing.T, env *apptest.Env, to string) string {
	t.Helper()
	msgs, err := env.Store.OutboxMessages(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	link := ""
	for _, m := range msgs { // newest first
		if m.Kind == "mfa_enroll_link" && m.To == to {
			link = enrollLinkRE.FindString(m.Text)
			break
		}
	}
	if link == "" {
		t.Fatalf("no enrollment link for %s", to)
	}
	return strings.TrimPrefix(link, env.Config.BaseURL.String())
}

func location(res *apptest.Response) string { return res.Header.Get("Location") }

func TestEnforceGraceBannerAndInterstitial(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	// Policy optional: straight to the portal, no banner.
	c := env.Client()
	if res := c.Login("acme", "alice@acme.test", pw); location(res) != "/t/acme/account" {
		t.Fatalf("optional: login goes to %q", location(res))
	}
	if strings.Contains(string(c.Get("/t/acme/account").Body), "days left") {
		t.Fatal("banner under the optional policy")
	}
	requireMFA(t, env, acme)
	env.Clock.Advance(24 * time.Hour)
	c = env.Client()
	res := c.Login("acme", "alice@acme.test", pw)
	if !strings.HasPrefix(location(res), "/t/acme/account/enroll?next=") {
		t.Fatalf("in grace: login goes to %q", location(res))
	}
	res = c.Get(location(res))
	if res.StatusCode != http.StatusOK || !strings.Contains(string(res.Body), "13 days left") || !strings.Contains(string(res.Body), "Remind me later") {
		t.Fatalf("interstitial = %d %s", res.StatusCode, res.Body)
	}
	res = c.Get("/t/acme/account")
	if res.StatusCode != http.StatusOK || res.Doc().Find(".banner a[href='/t/acme/account/enroll']").Length() != 1 || !strings.Contains(string(res.Body), "13 days left") {
		t.Fatalf("portal in grace = %d, no banner", res.StatusCode)
	}
}

func TestEnforcePastDeadline(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	requireMFA(t, env, acme)
	env.Clock.Advance(15 * 24 * time.Hour)
	alignClock(env)
	c := env.Client()
	if res := c.Login("acme", "alice@acme.test", pw); !strings.HasPrefix(location(res), "/t/acme/account/enroll") {
		t.Fatalf("past deadline: login goes to %q", location(res))
	}
	// Confined: other pages, and enrollment without the link.
	for _, p := range []string{"/t/acme/account", "/t/acme/account/mfa", "/t/acme/admin"} {
		if res := c.Get(p); res.StatusCode != http.StatusSeeOther || location(res) != "/t/acme/account/enroll" {
			t.Fatalf("GET %s = %d %q", p, res.StatusCode, location(res))
		}
	}
	for _, p := range []string{"/t/acme/account/mfa/totp/setup", "/t/acme/account/password"} {
		if res := c.PostForm(p, nil); res.StatusCode != http.StatusSeeOther || location(res) != "/t/acme/account/enroll" {
			t.Fatalf("POST %s = %d %q", p, res.StatusCode, location(res))
		}
	}
	// The key ceremony is a fetch call: a JSON refusal its script shows,
	// not a redirect.
	res := pageJSON(c, "/t/acme/account/mfa/webauthn/register/begin", map[string]string{"name": "Key"})
	wantErr(t, "page register begin past deadline", res, "mfa_enrollment_required", http.StatusForbidden)
	if hasTOTPRows(t, env) {
		t.Fatal("an enrollment started without the link")
	}
	res = c.Get("/t/acme/account/enroll")
	if res.StatusCode != http.StatusOK || !strings.Contains(string(res.Body), "Email me a link") {
		t.Fatalf("enroll page = %d %s", res.StatusCode, res.Body)
	}
	if res := c.PostForm("/t/acme/account/enroll/link", nil); location(res) != "/t/acme/account/enroll?sent=1" {
		t.Fatalf("send link = %d %q", res.StatusCode, location(res))
	}
	link := lastEnrollLink(t, env, "alice@acme.test")

	// GET changes nothing.
	if res := c.Get(link); res.StatusCode != http.StatusOK || res.Doc().Find("form button").Length() == 0 {
		t.Fatalf("GET link = %d", res.StatusCode)
	}
	if res := c.PostForm("/t/acme/account/mfa/totp/setup", nil); location(res) != "/t/acme/account/enroll" {
		t.Fatal("GET of the link unlocked enrollment")
	}
	// Tampered, and another session of the same member: refused.
	tampered := link[:len(link)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(link, "A")]
	if res := c.PostForm(tampered, nil); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("tampered link = %d", res.StatusCode)
	}
	other := env.Client()
	other.Login("acme", "alice@acme.test", pw)
	if res := other.PostForm(link, nil); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("link in another session = %d", res.StatusCode)
	}
	// Racing confirms: exactly one wins.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = c.PostForm(link, nil).StatusCode }()
	}
	wg.Wait()
	if !(codes[0] == http.StatusSeeOther) != (codes[1] == http.StatusSeeOther) {
		t.Fatalf("racing confirms = %v, want one 303", codes)
	}
	if res := c.PostForm(link, nil); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed link = %d", res.StatusCode)
	}
	if res := other.PostForm("/t/acme/account/mfa/totp/setup", nil); location(res) != "/t/acme/account/enroll" {
		t.Fatal("the other session was unlocked")
	}

	// Enrollment now works and ends the confinement.
	if res := c.Get("/t/acme/account"); location(res) != "/t/acme/account/enroll" {
		t.Fatal("the link opened more than enrollment")
	}
	if res := c.PostForm("/t/acme/account/mfa/totp/setup", nil); location(res) != "/t/acme/account/mfa/totp" {
		t.Fatalf("setup after the link = %d %q", res.StatusCode, location(res))
	}
	secret := strings.ReplaceAll(c.Get("/t/acme/account/mfa/totp").Doc().Find("[data-testid=totp-secret]").Text(), " ", "")
	res = c.PostForm("/t/acme/account/mfa/totp", url.Values{"code": {nowCode(t, env, secret)}})
	if res.StatusCode != http.StatusOK || res.Doc().Find("[data-testid=recovery-codes] code").Length() != 10 {
		t.Fatalf("confirm = %d", res.StatusCode)
	}
	if res := c.Get("/t/acme/account"); res.StatusCode != http.StatusOK {
		t.Fatalf("portal after enrolling = %d %q", res.StatusCode, location(res))
	}
	for _, ev := range []string{db.EventEnrollLinkSent, db.EventEnrollLinkUsed} {
		if n := countEvents(t, env, ev); n != 1 {
			t.Fatalf("%d %s events", n, ev)
		}
	}
}

func hasTOTPRows(t *testing.T, env *apptest.Env) bool {
	t.Helper()
	return countRows(t, env, "totp_credentials") > 1 // the owner's
}

func countEvents(t *testing.T, env *apptest.Env, event string) int {
	t.Helper()
	var n int
	if err := env.Store.DB().QueryRow(`SELECT COUNT(*) FROM audit_events WHERE event = ?`, event).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnforceAPIConfined(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	requireMFA(t, env, acme)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	// The deadline passes during the session.
	if _, err := env.Store.DB().Exec(`UPDATE users SET mfa_deadline = ? WHERE email = 'alice@acme.test'`, env.Clock.Now().Add(time.Minute).Unix()); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(2 * time.Minute)
	for _, p := range []string{"/t/acme/api/v1/session", "/t/acme/api/v1/mfa"} {
		if res := c.API(http.MethodGet, p, tok, nil); res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "mfa_enrollment_required" {
			t.Fatalf("GET %s = %d %s", p, res.StatusCode, res.Body)
		}
	}
	if res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("API setup past deadline = %d", res.StatusCode)
	}
	if res := c.API(http.MethodPost, "/t/acme/api/v1/logout", tok, nil); res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout = %d", res.StatusCode)
	}
}

func TestEnforceOnboarding(t *testing.T) {
	t.Parallel()
	env, acme, admin := inviterSetup(t)
	requireMFA(t, env, acme)
	path := invite(t, env, admin, "newbie@acme.test", db.RoleMember)
	n := env.Client()
	res := accept(n, path, "newbie password 1")
	if location(res) != "/t/acme/account/enroll" {
		t.Fatalf("accept goes to %q", location(res))
	}
	if res := n.Get("/t/acme/account"); location(res) != "/t/acme/account/enroll" {
		t.Fatalf("newbie portal = %d %q", res.StatusCode, location(res))
	}
	if res := n.PostForm("/t/acme/account/mfa/totp/setup", nil); location(res) != "/t/acme/account/mfa/totp" {
		t.Fatalf("newbie setup = %d %q", res.StatusCode, location(res))
	}
}
