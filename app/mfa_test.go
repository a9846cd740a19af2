package app_test

// The adversarial suite for the second factor (issue 3, SECURITY.md "Attacks
// to test"): real SQLite, the whole Echo stack, a clock the tests move.
// Helpers first, then TOTP at sign-in: skew, replay, races, the pending
// state, mfa_tokens and brute force.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/db"
)

// totpAt is the code of secret at step.
func totpAt(t testing.TB, secret string, step int64) string {
	t.Helper()
	c, err := mfa.CodeAt(secret, step, mfa.Digits)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nowCode is the code of the clock's current step.
func nowCode(t testing.TB, env *apptest.Env, secret string) string {
	return totpAt(t, secret, mfa.Step(env.Clock.Now()))
}

// nextCode moves the clock to the next step and returns its code: every
// sign-in in these tests uses a step no earlier sign-in used.
func nextCode(t testing.TB, env *apptest.Env, secret string) string {
	env.Clock.Advance(30 * time.Second)
	return nowCode(t, env, secret)
}

// wrongCode is a well-formed code that matches neither the current nor the
// previous step.
func wrongCode(t testing.TB, env *apptest.Env, secret string) string {
	s := mfa.Step(env.Clock.Now())
	bad := map[string]bool{totpAt(t, secret, s): true, totpAt(t, secret, s-1): true}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", (123456+i*7919)%1000000)
		if !bad[c] {
			return c
		}
	}
}

// alignClock moves the clock to 10 s into the next TOTP step, so a test
// knows where it stands in the 30 s window.
func alignClock(env *apptest.Env) {
	next := (mfa.Step(env.Clock.Now())+1)*mfa.Period + 10
	env.Clock.Set(time.Unix(next, 0).UTC())
}

// enrollAPI turns the authenticator app on for a member through the JSON
// API and returns its secret, the recovery codes and the (aal2) session
// token. The clock then moves one step on, so the confirming code is
// behind it.
func enrollAPI(t *testing.T, env *apptest.Env, slug, email, password string) (secret string, codes []string, token string) {
	t.Helper()
	c := env.Client()
	token = c.APILogin(slug, email, password)
	res := c.API(http.MethodPost, "/t/"+slug+"/api/v1/mfa/totp/setup", token, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("setup %s = %d %s", email, res.StatusCode, res.Body)
	}
	secret, _ = res.JSON()["secret"].(string)
	res = c.API(http.MethodPost, "/t/"+slug+"/api/v1/mfa/totp/verify-setup", token, map[string]string{"code": nowCode(t, env, secret)})
	if res.StatusCode != http.StatusOK || res.JSON()["enabled"] != true {
		t.Fatalf("verify-setup %s = %d %s", email, res.StatusCode, res.Body)
	}
	for _, c := range res.JSON()["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	if len(codes) != mfa.RecoveryCodeCount {
		t.Fatalf("%d recovery codes", len(codes))
	}
	// Reaching aal2 rotated the token.
	if token, _ = res.JSON()["session_token"].(string); token == "" {
		t.Fatalf("verify-setup %s: no session_token in %s", email, res.Body)
	}
	env.Clock.Advance(30 * time.Second)
	return secret, codes, token
}

// pendingPage signs in with the password on the page and returns the
// client, now at the challenge.
func pendingPage(t *testing.T, env *apptest.Env, slug, email, password string) *apptest.Client {
	t.Helper()
	c := env.Client()
	res := c.Login(slug, email, password)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/t/"+slug+"/login/mfa") {
		t.Fatalf("password step went to %q, want the challenge", loc)
	}
	return c
}

// mfaToken signs in with the password through the API and returns the
// mfa_token.
func mfaToken(t *testing.T, env *apptest.Env, slug, email, password string) string {
	t.Helper()
	res := env.Client().API(http.MethodPost, "/t/"+slug+"/api/v1/login", "", map[string]string{"email": email, "password": password})
	tok, _ := res.JSON()["mfa_token"].(string)
	if res.StatusCode != http.StatusOK || res.JSON()["mfa_required"] != true || tok == "" {
		t.Fatalf("login %s = %d %s, want mfa_required", email, res.StatusCode, res.Body)
	}
	return tok
}

// loginMFA posts the second step of the API sign-in.
func loginMFA(env *apptest.Env, slug string, body map[string]string) *apptest.Response {
	return env.Client().API(http.MethodPost, "/t/"+slug+"/api/v1/login/mfa", "", body)
}

func challengeWith(env *apptest.Env, c *apptest.Client, slug, code string) *apptest.Response {
	return c.PostForm("/t/"+slug+"/login/mfa", url.Values{"code": {code}})
}

// passed reports whether a page challenge answer signed the member in.
func passed(res *apptest.Response, slug string) bool {
	return res.StatusCode == http.StatusSeeOther && strings.HasPrefix(res.Header.Get("Location"), "/t/"+slug+"/account")
}

func queryInt(t testing.TB, env *apptest.Env, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := env.Store.DB().QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func auditCount(t testing.TB, env *apptest.Env, u db.User, event string) int64 {
	return queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND subject_user_id = ? AND event = ?`, u.WorkspaceID, u.ID, event)
}

func aal2Sessions(t testing.TB, env *apptest.Env, u db.User) int64 {
	return queryInt(t, env, `SELECT COUNT(*) FROM user_sessions WHERE workspace_id = ? AND user_id = ? AND aal = 'aal2'`, u.WorkspaceID, u.ID)
}

func mfaGuard(t testing.TB, env *apptest.Env, u db.User) db.Guard {
	t.Helper()
	g, err := env.Store.MFAGuard(context.Background(), u.WorkspaceID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func lastStep(t testing.TB, env *apptest.Env, u db.User) int64 {
	return queryInt(t, env, `SELECT COALESCE(last_step, 0) FROM totp_credentials WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL`, u.WorkspaceID, u.ID)
}

// Steps s-1 and s are accepted through the HTTP challenge; s+1 and s-2 are
// refused (and are above the last used step, so it is the window that
// refuses them, not replay protection).
func TestChallengeSkewEdges(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	alignClock(env)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	enrolled := lastStep(t, env, alice)
	env.Clock.Advance(5 * 30 * time.Second)
	s := mfa.Step(env.Clock.Now())
	if s-2 <= enrolled {
		t.Fatalf("test setup: s-2 = %d not above the enrollment step %d", s-2, enrolled)
	}

	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	for _, off := range []int64{+1, -2, +2, -3} {
		code := totpAt(t, secret, s+off)
		if code == totpAt(t, secret, s) || code == totpAt(t, secret, s-1) {
			continue
		}
		if res := challengeWith(env, c, "acme", code); res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("code of step s%+d = %d, want 422 (refused)", off, res.StatusCode)
		}
	}
	if got := lastStep(t, env, alice); got != enrolled {
		t.Fatalf("a refused code moved last_step to %d", got)
	}
	if res := challengeWith(env, c, "acme", totpAt(t, secret, s-1)); !passed(res, "acme") {
		t.Fatalf("code of step s-1 = %d %q, want accepted", res.StatusCode, res.Header.Get("Location"))
	}
	if got := lastStep(t, env, alice); got != s-1 {
		t.Fatalf("last_step = %d, want s-1 = %d", got, s-1)
	}
	c2 := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if res := challengeWith(env, c2, "acme", totpAt(t, secret, s)); !passed(res, "acme") {
		t.Fatalf("code of step s = %d, want accepted", res.StatusCode)
	}
	if got := lastStep(t, env, alice); got != s {
		t.Fatalf("last_step = %d, want s = %d", got, s)
	}
	if !signedIn(t, c, "acme") || !signedIn(t, c2, "acme") {
		t.Fatal("a client that passed is not signed in")
	}
}

// A code works once: not in a second challenge within its window, not
// after a newer step was used, and not the one that confirmed enrollment.
func TestChallengeReplay(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	alignClock(env)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	secret := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil).JSON()["secret"].(string)
	enrollCode := nowCode(t, env, secret)
	if res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", tok, map[string]string{"code": enrollCode}); res.StatusCode != http.StatusOK {
		t.Fatalf("verify-setup = %d", res.StatusCode)
	}
	// The enrolling code, still inside its window, on the page and the API.
	env.Clock.Advance(5 * time.Second)
	if res := challengeWith(env, pendingPage(t, env, "acme", "alice@acme.test", pw), "acme", enrollCode); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("enrollment code at sign-in (page) = %d, want 422", res.StatusCode)
	}
	res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": enrollCode})
	if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_code" {
		t.Fatalf("enrollment code at sign-in (API) = %d %s", res.StatusCode, res.Body)
	}

	// Accepted once, then refused in another challenge 10 s later.
	code := nextCode(t, env, secret)
	if res := challengeWith(env, pendingPage(t, env, "acme", "alice@acme.test", pw), "acme", code); !passed(res, "acme") {
		t.Fatalf("fresh code = %d", res.StatusCode)
	}
	env.Clock.Advance(10 * time.Second)
	if res := challengeWith(env, pendingPage(t, env, "acme", "alice@acme.test", pw), "acme", code); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("replayed code in a second challenge = %d, want 422", res.StatusCode)
	}
	res = loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": code})
	if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_code" {
		t.Fatalf("replayed code on the API = %d %s", res.StatusCode, res.Body)
	}

	// A newer step used: the older one (still inside the skew window) is dead.
	env.Clock.Advance(30 * time.Second)
	s := mfa.Step(env.Clock.Now())
	env.Clock.Advance(30 * time.Second) // now s+1: both s and s+1 are in the window
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": totpAt(t, secret, s+1)}); res.StatusCode != http.StatusOK {
		t.Fatalf("code of the current step = %d %s", res.StatusCode, res.Body)
	}
	if res := challengeWith(env, pendingPage(t, env, "acme", "alice@acme.test", pw), "acme", totpAt(t, secret, s)); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("older step after a newer one = %d, want 422", res.StatusCode)
	}
	if got := lastStep(t, env, alice); got != s+1 {
		t.Fatalf("last_step = %d, want %d", got, s+1)
	}
}

// 20 clients past the password submit the same valid code at once: exactly
// one gets in.
func TestChallengeConcurrentSameCode(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	alignClock(env)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	const n = 20
	clients := make([]*apptest.Client, n)
	for i := range clients {
		clients[i] = pendingPage(t, env, "acme", "alice@acme.test", pw)
	}
	before := aal2Sessions(t, env, alice)
	code := nextCode(t, env, secret)
	statuses := race(n, func(i int) (*http.Request, *http.Client) {
		c := clients[i]
		form := url.Values{"code": {code}, "_csrf": {c.CSRF()}}
		req, _ := http.NewRequest(http.MethodPost, c.URL("/t/acme/login/mfa"), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req, c.Client
	})
	wins := 0
	for _, st := range statuses {
		switch st {
		case http.StatusSeeOther:
			wins++
		case http.StatusUnprocessableEntity, http.StatusTooManyRequests:
		default:
			t.Errorf("status %d, want 303, 422 or 429", st)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent uses of one code got in (%v), want exactly 1", wins, n, statuses)
	}
	if got := aal2Sessions(t, env, alice) - before; got != 1 {
		t.Fatalf("%d new aal2 sessions, want 1", got)
	}
	in := 0
	for _, c := range clients {
		if signedIn(t, c, "acme") {
			in++
		}
	}
	if in != 1 {
		t.Fatalf("%d clients signed in, want 1", in)
	}
}

// race sends n requests at once (after all are built) and returns their
// statuses; transport errors are status 0.
func race(n int, build func(i int) (*http.Request, *http.Client)) []int {
	reqs := make([]*http.Request, n)
	clients := make([]*http.Client, n)
	for i := range n {
		reqs[i], clients[i] = build(i)
	}
	out := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := clients[i].Do(reqs[i])
			if err != nil {
				return
			}
			res.Body.Close()
			out[i] = res.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// The pending-MFA state is not a session: every guarded page and API call
// refuses it, by cookie and as a bearer token; afterwards the challenge
// still works, so it was refused for being pending, not for being broken.
func TestPendingStateRefusedEverywhere(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	pending := pendingPage(t, env, "acme", "alice@acme.test", pw)
	tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
	// The mfa_token as a page cookie too.
	tokenCookie := env.Client()
	tokenCookie.SetCookie("gh_s_acme", tok)

	// Straight to the portal, skipping the challenge.
	for _, p := range []string{"/t/acme/account", "/t/acme/account/mfa", "/t/acme/account/mfa/totp", "/t/acme/account/verify", "/t/acme", "/t/acme/admin"} {
		res := pending.Get(p)
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login") {
			t.Errorf("pending GET %s = %d %q, want 303 to sign-in", p, res.StatusCode, res.Header.Get("Location"))
		}
	}

	routes := 0
	for _, r := range env.Server.Echo().Routes() {
		if f, _ := env.Server.Route(r.Method, r.Path); !f.InWorkspaces || env.Server.IsPublic(r.Method, r.Path) || !strings.HasPrefix(r.Path, "/t/:slug") {
			continue // the support console's routes are not acme's (routes_test)
		}
		routes++
		path := strings.NewReplacer(":slug", "acme", ":id", "1", ":token", "x", "*", "x").Replace(r.Path)
		api := strings.Contains(path, "/api/")
		for _, who := range []struct {
			name string
			c    *apptest.Client
		}{{"pending cookie", pending}, {"mfa_token cookie", tokenCookie}} {
			var res *apptest.Response
			if api {
				res = who.c.API(r.Method, path, tok, map[string]string{"code": nowCode(t, env, secret)})
				if res.StatusCode != http.StatusUnauthorized {
					t.Errorf("mfa_token as bearer: %s %s = %d %s, want 401", r.Method, path, res.StatusCode, res.Body)
				}
				continue
			}
			req, _ := http.NewRequest(r.Method, who.c.URL(path), nil)
			if r.Method == http.MethodPost {
				req.Body = http.NoBody
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
			}
			res = who.c.Do(req)
			if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login") {
				t.Errorf("%s: %s %s = %d %q, want 303 to sign-in", who.name, r.Method, path, res.StatusCode, res.Header.Get("Location"))
			}
		}
	}
	if routes < 20 {
		t.Fatalf("walked only %d guarded routes", routes)
	}
	// Nothing changed behind the refusals.
	if n := queryInt(t, env, `SELECT COUNT(*) FROM totp_credentials`); n != 1 {
		t.Fatalf("%d totp credentials after the walk", n)
	}
	// Both pending states are intact: the right codes still pass.
	if res := challengeWith(env, pending, "acme", nextCode(t, env, secret)); !passed(res, "acme") {
		t.Fatalf("challenge after the walk = %d", res.StatusCode)
	}
	res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nextCode(t, env, secret)})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("mfa_token after the walk = %d %s", res.StatusCode, res.Body)
	}
	if !signedIn(t, pending, "acme") {
		t.Fatal("not signed in after passing")
	}
	// The API's session is usable; the mfa_token never was and still is not.
	if r := env.Client().API(http.MethodGet, "/t/acme/api/v1/session", res.JSON()["session_token"].(string), nil); r.StatusCode != http.StatusOK {
		t.Fatalf("session after login/mfa = %d", r.StatusCode)
	}
	if r := env.Client().API(http.MethodGet, "/t/acme/api/v1/session", tok, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("spent mfa_token as a session = %d", r.StatusCode)
	}
}

// mfa_token: single use, scoped to its workspace, 5 minutes from the
// password whatever happens meanwhile.
func TestMFATokenLifecycle(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, codes, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)

	t.Run("ReusedAfterSuccess", func(t *testing.T) {
		tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
		res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nextCode(t, env, secret)})
		amr, _ := res.JSON()["amr"].([]any)
		if res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" || len(amr) != 2 ||
			amr[0].(map[string]any)["method"] != "password" || amr[1].(map[string]any)["method"] != "totp" {
			t.Fatalf("login/mfa = %d %s", res.StatusCode, res.Body)
		}
		if res.JSON()["session_token"] == tok {
			t.Fatal("the session token is the mfa_token")
		}
		for _, body := range []map[string]string{
			{"mfa_token": tok, "code": nextCode(t, env, secret)},
			{"mfa_token": tok, "recovery_code": codes[0]},
		} {
			res := loginMFA(env, "acme", body)
			if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_mfa_token" {
				t.Fatalf("reused mfa_token = %d %s", res.StatusCode, res.Body)
			}
		}
	})

	t.Run("OtherWorkspace", func(t *testing.T) {
		globex := mustWorkspace(t, env, "globex")
		galice, _ := env.Store.UserByEmail(context.Background(), globex.ID, "alice@acme.test")
		gsecret, _, _ := enrollAPI(t, env, "globex", "alice@acme.test", "globex password 1")
		tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
		for _, code := range []string{nowCode(t, env, secret), nowCode(t, env, gsecret)} {
			res := loginMFA(env, "globex", map[string]string{"mfa_token": tok, "code": code})
			if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_mfa_token" {
				t.Fatalf("acme mfa_token in globex = %d %s", res.StatusCode, res.Body)
			}
		}
		if g := mfaGuard(t, env, galice); g.Consecutive != 0 {
			t.Fatalf("globex member charged a failure: %+v", g)
		}
		// And the page: acme's pending cookie is nothing in globex.
		p := pendingPage(t, env, "acme", "alice@acme.test", pw)
		p.SetCookie("gh_s_globex", p.Cookie("gh_s_acme"))
		if res := p.Get("/t/globex/login/mfa"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/globex/login") {
			t.Fatalf("acme pending cookie at globex's challenge = %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		// The token is untouched in its own workspace.
		if res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nextCode(t, env, secret)}); res.StatusCode != http.StatusOK {
			t.Fatalf("mfa_token at home = %d %s", res.StatusCode, res.Body)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
		page := pendingPage(t, env, "acme", "alice@acme.test", pw)
		// Activity does not extend it.
		env.Clock.Advance(4 * time.Minute)
		if res := page.Get("/t/acme/login/mfa"); res.StatusCode != http.StatusOK {
			t.Fatalf("challenge page at 4 min = %d", res.StatusCode)
		}
		if res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": "000000"}); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code at 4 min = %d", res.StatusCode)
		}
		env.Clock.Advance(time.Minute)
		code := nowCode(t, env, secret)
		res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": code})
		if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_mfa_token" {
			t.Fatalf("mfa_token at 5 min = %d %s", res.StatusCode, res.Body)
		}
		res = page.Get("/t/acme/login/mfa")
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login?") {
			t.Fatalf("challenge page at 5 min = %d %q, want back to sign-in", res.StatusCode, res.Header.Get("Location"))
		}
		res = challengeWith(env, page, "acme", code)
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login?") {
			t.Fatalf("expired challenge answered = %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		if signedIn(t, page, "acme") {
			t.Fatal("signed in through an expired challenge")
		}
		if got := lastStep(t, env, alice); got == mfa.Step(env.Clock.Now()) {
			t.Fatal("an expired challenge consumed the step")
		}
	})
}

// A session token is not an mfa_token, and junk tokens are refused.
func TestMFATokenJunk(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	session := c.APILogin("acme", "alice@acme.test", pw)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	for _, tok := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("A", 10000), session, "' OR 1=1 --", "ñ" + strings.Repeat("a", 41)} {
		res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nowCode(t, env, secret)})
		if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_mfa_token" {
			t.Errorf("mfa_token %.20q = %d %s", tok, res.StatusCode, res.Body)
		}
	}
	if res := c.API(http.MethodGet, "/t/acme/api/v1/session", session, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("session used as mfa_token was harmed: %d", res.StatusCode)
	}
}

// Five wrong codes end a challenge, on the page and in the API.
func TestChallengeEndsAfterFiveWrong(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)

	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	for i := 1; i <= 4; i++ {
		if res := challengeWith(env, c, "acme", wrongCode(t, env, secret)); res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong code %d = %d, want 422", i, res.StatusCode)
		}
	}
	res := challengeWith(env, c, "acme", wrongCode(t, env, secret))
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/login?notice=challenge_failed" {
		t.Fatalf("5th wrong code = %d %q, want back to sign-in", res.StatusCode, res.Header.Get("Location"))
	}
	res = challengeWith(env, c, "acme", nowCode(t, env, secret))
	if passed(res, "acme") || signedIn(t, c, "acme") {
		t.Fatal("the right code passed an ended challenge")
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM mfa_challenges WHERE user_id = ? AND ended_reason = 'too_many_failures' AND failures = 5`, alice.ID); n != 1 {
		t.Fatalf("%d challenges ended after 5 failures", n)
	}

	env.Clock.Advance(16 * time.Minute) // a new 15-minute window: no lock below
	tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
	for i := 1; i <= 5; i++ {
		res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": wrongCode(t, env, secret)})
		if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_code" {
			t.Fatalf("API wrong code %d = %d %s", i, res.StatusCode, res.Body)
		}
	}
	res = loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nowCode(t, env, secret)})
	if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_mfa_token" {
		t.Fatalf("right code after 5 wrong = %d %s", res.StatusCode, res.Body)
	}
	if g := mfaGuard(t, env, alice); g.Consecutive != 10 || g.WindowFailures != 5 || g.LockedUntil.After(env.Clock.Now()) {
		t.Fatalf("guard after 5+5 wrong = %+v, want 10 consecutive, 5 in the window, not locked", g)
	}
}

// Ten wrong codes in 15 minutes, across challenges, clients and both
// front doors, lock second-factor sign-in for 15 minutes: 429 with
// Retry-After, the right code refused, one email, then it works again. The
// password throttle is a separate thing.
func TestSecondFactorLock(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	start := env.Clock.Now()

	// Wrong passwords are not second-factor failures (and vice versa, below).
	for range 3 {
		res := env.Client().PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {"wrong password!"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong password = %d", res.StatusCode)
		}
	}
	if g := mfaGuard(t, env, alice); g.Consecutive != 0 || g.WindowFailures != 0 {
		t.Fatalf("wrong passwords counted as second-factor failures: %+v", g)
	}

	// 4 + 4 (page, two challenges) + 1 (API, a third) = 9: not locked yet.
	for range 2 {
		c := pendingPage(t, env, "acme", "alice@acme.test", pw)
		for range 4 {
			env.Clock.Advance(20 * time.Second)
			if res := challengeWith(env, c, "acme", wrongCode(t, env, secret)); res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("wrong code = %d", res.StatusCode)
			}
		}
	}
	tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": wrongCode(t, env, secret)}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("9th wrong = %d", res.StatusCode)
	}
	if outboxCount(t, env.Store, mail.KindMFALocked, "alice@acme.test") != 0 {
		t.Fatal("lock email before the lock")
	}
	// The 10th, in a fresh challenge on the page: 429 with Retry-After.
	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	res := challengeWith(env, c, "acme", wrongCode(t, env, secret))
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("10th wrong code = %d, want 429", res.StatusCode)
	}
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 890 || ra > 900 {
		t.Fatalf("Retry-After = %q, want about 900", res.Header.Get("Retry-After"))
	}
	lockedAt := env.Clock.Now()
	if env.Clock.Now().Sub(start) > 15*time.Minute {
		t.Fatal("test setup: the ten failures were not within 15 minutes")
	}
	// Locked: the right code is refused on both doors, in new challenges,
	// and nothing more is counted or emailed.
	for i := range 3 {
		env.Clock.Advance(4 * time.Minute)
		code := nextCode(t, env, secret)
		if i == 0 {
			if res := challengeWith(env, c, "acme", code); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
				t.Fatalf("right code while locked (page) = %d", res.StatusCode)
			}
		}
		res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": code})
		if res.StatusCode != http.StatusTooManyRequests || res.JSON()["error"] != "rate_limited" || res.Header.Get("Retry-After") == "" {
			t.Fatalf("right code while locked (API) = %d %s", res.StatusCode, res.Body)
		}
		if ra, _ := strconv.Atoi(res.Header.Get("Retry-After")); ra <= 0 || time.Duration(ra)*time.Second > 15*time.Minute-env.Clock.Now().Sub(lockedAt)+time.Second {
			t.Fatalf("Retry-After %d does not count down", ra)
		}
	}
	if lastStep(t, env, alice) >= mfa.Step(env.Clock.Now())-1 {
		t.Fatal("a code was consumed while locked")
	}
	if n := outboxCount(t, env.Store, mail.KindMFALocked, "alice@acme.test"); n != 1 {
		t.Fatalf("%d lock emails, want 1", n)
	}
	if n := auditCount(t, env, alice, db.EventMFALocked); n != 1 {
		t.Fatalf("%d mfa.locked events, want 1", n)
	}
	if n := auditCount(t, env, alice, db.EventChallengeFailed); n != 10 {
		t.Fatalf("%d mfa.challenge.failed events, want 10", n)
	}
	// The password still works while the second factor is locked.
	if res := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw}); res.StatusCode != http.StatusOK {
		t.Fatalf("password during the second-factor lock = %d", res.StatusCode)
	}
	// 15 minutes after the lock it works again.
	env.Clock.Set(lockedAt.Add(15*time.Minute - 40*time.Second))
	tok = mfaToken(t, env, "acme", "alice@acme.test", pw)
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nowCode(t, env, secret)}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right code just before the lock ends = %d", res.StatusCode)
	}
	env.Clock.Set(lockedAt.Add(15 * time.Minute))
	res = loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nowCode(t, env, secret)})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("right code after the lock = %d %s", res.StatusCode, res.Body)
	}
	if g := mfaGuard(t, env, alice); g.Consecutive != 0 {
		t.Fatalf("consecutive failures not reset by a success: %+v", g)
	}
}

// The window counts across challenges: a new challenge never resets it, and
// a success does not either.
func TestNewChallengeDoesNotResetCounters(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	for i := 1; i <= 6; i++ {
		tok := mfaToken(t, env, "acme", "alice@acme.test", pw) // a new challenge each time
		loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": wrongCode(t, env, secret)})
		if g := mfaGuard(t, env, alice); g.WindowFailures != i || g.Consecutive != i {
			t.Fatalf("after %d failures in %d challenges: %+v", i, i, g)
		}
	}
	// A success resets the consecutive count only.
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": nextCode(t, env, secret)}); res.StatusCode != http.StatusOK {
		t.Fatalf("right code = %d", res.StatusCode)
	}
	if g := mfaGuard(t, env, alice); g.WindowFailures != 6 || g.Consecutive != 0 {
		t.Fatalf("after a success: %+v", g)
	}
	for range 3 {
		loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": wrongCode(t, env, secret)})
	}
	res := loginMFA(env, "acme", map[string]string{"mfa_token": mfaToken(t, env, "acme", "alice@acme.test", pw), "code": wrongCode(t, env, secret)})
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("10th wrong in the window (after a success) = %d, want 429", res.StatusCode)
	}
	// Ten MFA failures do not throttle the password.
	for range 3 {
		mfaToken(t, env, "acme", "alice@acme.test", pw)
	}
}

// 100 consecutive wrong codes (spread so the 15-minute locks pass) disable
// second-factor sign-in: the right code and recovery codes are refused, the
// member is emailed once, and it is audited.
func TestSecondFactorDisabledAfter100(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, codes, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	var last *apptest.Response
	for round := 1; round <= 10; round++ {
		for range 2 {
			tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
			for range 5 {
				last = loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": wrongCode(t, env, secret)})
				if last.StatusCode >= 500 {
					t.Fatalf("wrong code = %d %s", last.StatusCode, last.Body)
				}
			}
		}
		if g := mfaGuard(t, env, alice); g.Consecutive != round*10 {
			t.Fatalf("round %d: %+v", round, g)
		}
		if round < 10 {
			if last.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("round %d ended with %d, want the lock's 429", round, last.StatusCode)
			}
			if !mfaGuard(t, env, alice).DisabledAt.IsZero() {
				t.Fatalf("disabled after %d", round*10)
			}
			env.Clock.Advance(15*time.Minute + time.Second)
		}
	}
	if last.StatusCode != http.StatusForbidden || last.JSON()["error"] != "mfa_disabled" {
		t.Fatalf("100th wrong code = %d %s, want 403 mfa_disabled", last.StatusCode, last.Body)
	}
	if mfaGuard(t, env, alice).DisabledAt.IsZero() {
		t.Fatal("not disabled after 100")
	}
	// Well past any lock: the right code and a recovery code are refused,
	// on the API and the page.
	env.Clock.Advance(2 * time.Hour)
	for _, body := range []map[string]string{{"code": nowCode(t, env, secret)}, {"recovery_code": codes[0]}} {
		body["mfa_token"] = mfaToken(t, env, "acme", "alice@acme.test", pw)
		res := loginMFA(env, "acme", body)
		if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "mfa_disabled" {
			t.Fatalf("%v while disabled = %d %s", body, res.StatusCode, res.Body)
		}
	}
	p := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if res := challengeWith(env, p, "acme", nextCode(t, env, secret)); res.StatusCode != http.StatusForbidden || signedIn(t, p, "acme") {
		t.Fatalf("right code on the page while disabled = %d", res.StatusCode)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NOT NULL`, alice.ID); n != 0 {
		t.Fatalf("%d recovery codes spent while disabled", n)
	}
	if n := outboxCount(t, env.Store, mail.KindMFADisabled, "alice@acme.test"); n != 1 {
		t.Fatalf("%d mfa_disabled emails, want 1", n)
	}
	if n := outboxCount(t, env.Store, mail.KindMFALocked, "alice@acme.test"); n != 10 {
		t.Fatalf("%d mfa_locked emails for 10 locks, want 10", n)
	}
	for ev, want := range map[string]int64{db.EventMFADisabled: 1, db.EventMFALocked: 10, db.EventChallengeFailed: 100} {
		if n := auditCount(t, env, alice, ev); n != want {
			t.Errorf("%d %s events, want %d", n, ev, want)
		}
	}
	if aal2Sessions(t, env, alice) != 1 { // the enrollment's session only
		t.Fatal("an aal2 session was made while disabled")
	}
}

// jsonBody marshals v (for raw request bodies).
func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(bytes.TrimSpace(b))
}
