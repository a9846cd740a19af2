package app_test

import (
	"context"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
)

func TestLoginSmoke(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	ws := env.Workspace("acme", "Acme")
	env.User(ws, "alice@acme.test", "member", "correct horse battery")
	c := env.Client()
	res := c.Login("acme", "alice@acme.test", "correct horse battery")
	if got := res.Header.Get("Location"); got != "/t/acme/account" {
		t.Fatalf("login redirect = %q, want /t/acme/account", got)
	}
	res = c.Get("/t/acme/account")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET account = %d", res.StatusCode)
	}
	if got := res.Doc().Find(`[data-testid=account-email]`).Text(); got != "alice@acme.test" {
		t.Fatalf("account email = %q", got)
	}
	// Email matching ignores case and surrounding space.
	c2 := env.Client()
	c2.Login("acme", "  ALICE@Acme.Test ", "correct horse battery")
}

// Unknown email and wrong password get the same page and the same API
// answer (enumeration).
func TestLoginSameAnswerForUnknownEmail(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	page := func(email string) (int, string) {
		res := env.Client().PostForm("/t/acme/login", url.Values{"email": {email}, "password": {"wrong password!"}})
		return res.StatusCode, res.Doc().Find("[role=alert]").Text()
	}
	s1, m1 := page("alice@acme.test")
	s2, m2 := page("nobody@acme.test")
	if s1 != http.StatusUnprocessableEntity || s1 != s2 || m1 != m2 || m1 == "" {
		t.Fatalf("wrong password: %d %q; unknown email: %d %q; want the same 422 and message", s1, m1, s2, m2)
	}
	api := func(email string) (int, string) {
		res := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": email, "password": "wrong password!"})
		return res.StatusCode, string(res.Body)
	}
	s1, b1 := api("alice@acme.test")
	s2, b2 := api("nobody@acme.test")
	if s1 != http.StatusUnauthorized || s1 != s2 || b1 != b2 || !strings.Contains(b1, `"invalid_credentials"`) {
		t.Fatalf("API: wrong password %d %s; unknown email %d %s", s1, b1, s2, b2)
	}
	// The typed email is kept, the password is not.
	res := env.Client().PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {"wrong password!"}})
	doc := res.Doc()
	if v, _ := doc.Find("#email").Attr("value"); v != "alice@acme.test" {
		t.Errorf("email field = %q after a failed sign-in", v)
	}
	if v, _ := doc.Find("#password").Attr("value"); v != "" {
		t.Errorf("password field = %q after a failed sign-in, want empty", v)
	}
}

// Unknown emails cost a hash like known ones: the dummy verification runs
// through the same pool with the same parameters. (1 MiB is enough to
// tell a hash from none; 8 MiB took 12 s under -race.) Not parallel: it
// times the hashes.
// An unknown email costs a password hash all the same (a dummy), so that
// the time of a refusal does not tell whether the account exists. Argon2id
// fills its Memory KiB on every hash: the bytes allocated by a verify show
// the work was done, whatever the machine's load (a timing comparison
// failed on a busy CI machine).
func TestUnknownEmailCostsAHash(t *testing.T) {
	const memoryKiB = 4096
	h := auth.NewHasher(auth.Params{Memory: memoryKiB, Time: 1, Threads: 1})
	ctx := context.Background()
	real, _ := h.Hash(ctx, "some password")
	allocated := func(hash string) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 3 {
			h.Verify(ctx, "wrong", hash)
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / 3
	}
	known, unknown := allocated(real), allocated("")
	const argon2Bytes = memoryKiB * 1024
	if known < argon2Bytes || unknown < argon2Bytes {
		t.Fatalf("bytes allocated by a verify: known email %d, unknown (dummy hash) %d; want at least argon2's %d for both", known, unknown, argon2Bytes)
	}
	if unknown > known*5/4 || known > unknown*5/4 {
		t.Fatalf("bytes allocated by a verify: known email %d, unknown (dummy hash) %d; want about the same", known, unknown)
	}
}

func TestLoginThrottlePerAccount(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	for i := range 10 {
		res := c.PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {"wrong password!"}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("failure %d = %d, want 422", i+1, res.StatusCode)
		}
	}
	res := c.PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {pw}})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right password after 10 failures = %d (Retry-After %q), want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if !strings.Contains(res.Doc().Find("[role=alert]").Text(), "Too many attempts") {
		t.Errorf("429 page says %q", res.Doc().Find("[role=alert]").Text())
	}
	if findCookie(res, "gh_s_acme") != nil {
		t.Error("a throttled attempt set a session cookie")
	}
	api := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
	if api.StatusCode != http.StatusTooManyRequests || api.JSON()["error"] != "rate_limited" || api.Header.Get("Retry-After") == "" {
		t.Fatalf("API while throttled = %d %s", api.StatusCode, api.Body)
	}
	// Other accounts are not affected; the same email in another workspace
	// neither.
	env.User(mustWorkspace(t, env, "acme"), "bob@acme.test", db.RoleMember, "bob password 1")
	env.Client().Login("acme", "bob@acme.test", "bob password 1")
	env.Client().Login("globex", "alice@acme.test", "globex password 1")

	env.Clock.Advance(15 * time.Minute)
	env.Client().Login("acme", "alice@acme.test", pw)
}

func TestLoginThrottleUnknownEmailAlike(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	for _, email := range []string{"alice@acme.test", "nobody@acme.test"} {
		c := env.Client()
		var last int
		for range 11 {
			last = c.PostForm("/t/acme/login", url.Values{"email": {email}, "password": {"wrong password!"}}).StatusCode
		}
		if last != http.StatusTooManyRequests {
			t.Errorf("11th failure for %s = %d, want 429", email, last)
		}
	}
}

func mustWorkspace(t *testing.T, env *apptest.Env, slug string) db.Workspace {
	ws, err := env.Store.WorkspaceBySlug(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// The per-IP limit stops spraying many accounts from one address;
// X-Forwarded-For is believed only from configured proxies.
func TestLoginThrottlePerIP(t *testing.T) {
	t.Parallel()
	spray := func(env *apptest.Env, xff func(i int) string) int {
		var last int
		for i := range 101 {
			c := env.Client()
			c.Header.Set("X-Forwarded-For", xff(i))
			last = c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "user" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "@acme.test", "password": "wrong password!"}).StatusCode
		}
		return last
	}
	t.Run("SpoofedHeaderIgnored", func(t *testing.T) {
		env, _, _ := setup(t)
		if got := spray(env, func(i int) string { return "203.0.113." + string(rune('0'+i%10)) }); got != http.StatusTooManyRequests {
			t.Fatalf("101st failure from one socket address with spoofed X-Forwarded-For = %d, want 429", got)
		}
	})
	t.Run("TrustedProxy", func(t *testing.T) {
		env, _, _ := setup(t, func(c *app.Config) { c.TrustedProxies, _ = app.ParseCIDRs("127.0.0.1/32") })
		n := 0
		if got := spray(env, func(i int) string { n++; return "198.51.100." + strconv.Itoa(n%200) }); got != http.StatusUnauthorized {
			t.Fatalf("failures from many clients behind a trusted proxy = %d, want 401 (not throttled per IP)", got)
		}
		c := env.Client()
		c.Header.Set("X-Forwarded-For", "192.0.2.77")
		c.Login("acme", "alice@acme.test", pw)
		var ip string
		env.Store.DB().QueryRow(`SELECT ip FROM user_sessions ORDER BY auth_time DESC LIMIT 1`).Scan(&ip)
		if ip != "192.0.2.77" {
			t.Fatalf("session IP = %q, want the forwarded client 192.0.2.77", ip)
		}
	})
}

// CSRF: sign-in, sign-out and account forms refuse posts without the token,
// with a wrong token, and cross-site posts.
func TestCSRF(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	victim := env.Client()
	victim.Login("acme", "alice@acme.test", pw)
	forms := map[string]url.Values{
		"/t/acme/login":                             {"email": {"alice@acme.test"}, "password": {pw}},
		"/t/acme/logout":                            {},
		"/t/acme/account/password":                  {"current_password": {pw}, "new_password": {"attacker chosen pw"}, "confirm_password": {"attacker chosen pw"}},
		"/t/acme/account/sessions/end-others":       {},
		"/t/acme/admin/invitations":                 {"email": {"x@evil.test"}, "role": {"owner"}},
		"/t/acme/invite/" + strings.Repeat("A", 43): {"password": {"whatever pw 1"}, "confirm_password": {"whatever pw 1"}},
	}
	for path, form := range forms {
		for name, mutate := range map[string]func(*http.Request, url.Values){
			"NoToken":    func(r *http.Request, f url.Values) {},
			"WrongToken": func(r *http.Request, f url.Values) { f.Set("_csrf", strings.Repeat("x", 32)) },
			"CrossSite": func(r *http.Request, f url.Values) {
				f.Set("_csrf", victim.CSRF())
				r.Header.Set("Sec-Fetch-Site", "cross-site")
			},
		} {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			req, _ := http.NewRequest(http.MethodPost, victim.URL(path), nil)
			mutate(req, f)
			req.Body = ioNopCloser(f.Encode())
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if res := victim.Do(req); res.StatusCode != http.StatusForbidden {
				t.Errorf("%s POST %s = %d, want 403", name, path, res.StatusCode)
			}
		}
	}
	// Nothing changed: still signed in with the old password.
	if !signedIn(t, victim, "acme") {
		t.Fatal("a refused cross-site post signed the member out")
	}
	env.Client().Login("acme", "alice@acme.test", pw)
	// A same-origin browser post (Sec-Fetch-Site) passes without a token.
	req, _ := http.NewRequest(http.MethodPost, victim.URL("/t/acme/login"), ioNopCloser(url.Values{"email": {"alice@acme.test"}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if res := env.Client().Do(req); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin sign-in = %d, want 303", res.StatusCode)
	}
}

// Malformed input gets a clear 4xx, never a 500, and never a session.
func TestLoginMalformedInput(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	long := strings.Repeat("a", 10_000)
	for name, f := range map[string]url.Values{
		"Empty":        {},
		"NoPassword":   {"email": {"alice@acme.test"}},
		"LongEmail":    {"email": {long + "@acme.test"}, "password": {pw}},
		"LongPassword": {"email": {"alice@acme.test"}, "password": {long}},
		"Unicode":      {"email": {"ålîçé@äcmé.test"}, "password": {"пароль密码🔑"}},
		"SQL":          {"email": {"alice@acme.test' OR '1'='1"}, "password": {"' OR 1=1 --"}},
		"NUL":          {"email": {"alice@acme.test\x00"}, "password": {pw + "\x00"}},
		"Array":        {"email": {"alice@acme.test", "bob@acme.test"}, "password": {"x", pw}},
	} {
		res := env.Client().PostForm("/t/acme/login", f)
		if res.StatusCode != http.StatusUnprocessableEntity || findCookie(res, "gh_s_acme") != nil {
			t.Errorf("%s: status %d (cookie %v), want 422 and no session", name, res.StatusCode, findCookie(res, "gh_s_acme"))
		}
	}
	for name, body := range map[string]string{
		"NotJSON":     "email=alice@acme.test&password=x",
		"Array":       `["alice@acme.test", "x"]`,
		"WrongTypes":  `{"email": ["alice@acme.test"], "password": 12}`,
		"Trailing":    `{"email": "alice@acme.test", "password": "x"} {}`,
		"Empty":       ``,
		"Null":        `null`,
		"Huge":        `{"email": "` + strings.Repeat("a", 100_000) + `", "password": "x"}`,
		"EmptyFields": `{"email": "", "password": ""}`,
	} {
		res := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", body)
		code, _ := res.JSON()["error"].(string)
		if res.StatusCode < 400 || res.StatusCode >= 500 || code == "" {
			t.Errorf("API %s: %d %s, want a 4xx JSON error", name, res.StatusCode, res.Body)
		}
	}
	// Wrong content type.
	req, _ := http.NewRequest(http.MethodPost, env.HTTP.URL+"/t/acme/api/v1/login", ioNopCloser(`{"email":"alice@acme.test","password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "text/plain")
	if res := env.Client().Do(req); res.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain login = %d, want 415", res.StatusCode)
	}
	var n int
	env.Store.DB().QueryRow(`SELECT COUNT(*) FROM user_sessions`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d sessions exist after only malformed sign-ins", n)
	}
}

// next may only point inside the workspace: no open redirect.
func TestLoginNextRedirect(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	for next, want := range map[string]string{
		"":                              "/t/acme/account",
		"/t/acme/admin?q=x":             "/t/acme/admin?q=x",
		"https://evil.example/t/acme/":  "/t/acme/account",
		"//evil.example/t/acme/account": "/t/acme/account",
		"/\\evil.example":               "/t/acme/account",
		"/t/globex/account":             "/t/acme/account",
		"javascript:alert(1)":           "/t/acme/account",
		"/t/acme/../../evil":            "/t/acme/account",
	} {
		res := env.Client().PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {pw}, "next": {next}})
		if got := res.Header.Get("Location"); got != want {
			t.Errorf("next=%q: redirect to %q, want %q", next, got, want)
		}
	}
	// An anonymous visit to a page comes back to it after sign-in.
	c := env.Client()
	res := c.Get("/t/acme/account?x=1")
	loc := res.Header.Get("Location")
	if loc != "/t/acme/login?next=%2Ft%2Facme%2Faccount%3Fx%3D1" {
		t.Fatalf("anonymous redirect = %q", loc)
	}
}

// Hashes made under weaker parameters are upgraded at the next sign-in.
func TestPasswordHashUpgrade(t *testing.T) {
	t.Parallel()
	stronger := auth.Params{Memory: 128, Time: 2, Threads: 1}
	env, acme, _ := setup(t, func(c *app.Config) { c.PasswordHash = stronger })
	weak, _ := auth.NewHasher(apptest.FastHash).Hash(context.Background(), "old params pw")
	u, err := env.Store.CreateUser(context.Background(), acme.ID, "carol@acme.test", db.RoleMember, weak, db.Meta{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	env.Client().Login("acme", "carol@acme.test", "old params pw")
	got, _ := env.Store.UserByID(context.Background(), acme.ID, u.ID)
	if !strings.Contains(got.PasswordHash, "m=128,t=2,p=1") {
		t.Fatalf("hash after sign-in = %q, want the new parameters", got.PasswordHash)
	}
	env.Client().Login("acme", "carol@acme.test", "old params pw")
}

// Many concurrent sign-ins of one account each get their own session. As
// many as the account's limit (10): every attempt takes a place in the
// account's counter before its password is judged, so more at once would
// be refused (429), right or wrong; one by one they never are.
func TestConcurrentSignIns(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
			codes[i] = res.StatusCode
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("sign-in %d = %d", i, c)
		}
	}
}

// No password, token or session id ever reaches the logs.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	c.PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {"wrong password!"}})
	c.Login("acme", "alice@acme.test", pw)
	tok := c.APILogin("acme", "alice@acme.test", pw)
	c.API(http.MethodGet, "/t/acme/api/v1/session", tok, nil)
	c.PostForm("/t/acme/account/password", url.Values{"current_password": {pw}, "new_password": {"next secret phrase"}, "confirm_password": {"next secret phrase"}})
	logs := env.Logs()
	if !strings.Contains(logs, "/t/:slug/login") {
		t.Fatalf("logs lack request lines: %.300s", logs)
	}
	for _, secret := range []string{pw, "wrong password!", "next secret phrase", tok, c.Cookie("gh_s_acme"), c.CSRF()} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q", secret)
		}
	}
}

// ValidEmail refuses what net/mail lets through outside ASCII: line
// separators, other white space, control and format characters (found by
// FuzzValidEmail).
func TestValidEmailRefusesUnicodeSpaceAndControls(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"a\u0085b@acme.test", "a\u2028b@acme.test", "a\u2029b@acme.test", "a\u00a0b@acme.test",
		"a\u202eb@acme.test", "a\u200bb@acme.test", "a\u3000b@acme.test"} {
		if app.ValidEmail(s) {
			t.Errorf("ValidEmail(%q) = true", s)
		}
	}
	for _, s := range []string{"alice@acme.test", "ユーザー@例え.テスト", "bob+mfa@acme.test"} {
		if !app.ValidEmail(s) {
			t.Errorf("ValidEmail(%q) = false", s)
		}
	}
}
