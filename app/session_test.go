package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const pw = "correct horse battery"

// setup starts an app with workspaces acme and globex and one member each.
func setup(t *testing.T, opts ...func(*app.Config)) (*apptest.Env, db.Workspace, db.User) {
	t.Helper()
	env := apptest.New(t, opts...)
	acme := env.Workspace("acme", "Acme")
	globex := env.Workspace("globex", "Globex")
	alice := env.User(acme, "alice@acme.test", db.RoleMember, pw)
	env.User(globex, "alice@acme.test", db.RoleMember, "globex password 1")
	return env, acme, alice
}

// signedIn reports whether the client's cookie gives access to acme's portal.
func signedIn(t *testing.T, c *apptest.Client, slug string) bool {
	t.Helper()
	res := c.Get("/t/" + slug + "/account")
	switch res.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusSeeOther:
		if !strings.HasPrefix(res.Header.Get("Location"), "/t/"+slug+"/login") {
			t.Fatalf("anonymous account page redirects to %q", res.Header.Get("Location"))
		}
		return false
	}
	t.Fatalf("GET account = %d", res.StatusCode)
	return false
}

func TestSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	t.Run("Dev", func(t *testing.T) {
		env, _, _ := setup(t)
		res := env.Client().Login("acme", "alice@acme.test", pw)
		ck := findCookie(res, "gh_s_acme")
		if ck == nil {
			t.Fatalf("no gh_s_acme cookie in %v", res.Header["Set-Cookie"])
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge != 0 || !ck.Expires.IsZero() {
			t.Errorf("dev cookie = %+v, want HttpOnly, SameSite=Lax, Path=/, not persistent", ck)
		}
	})
	t.Run("Production", func(t *testing.T) {
		env, _, _ := setup(t, func(c *app.Config) {
			c.Dev = false
			c.BaseURL, _ = app.ParseBaseURL("https://gatehouse.example")
		})
		c := env.Client()
		// The jar drops Secure cookies over http, so read the headers.
		res := c.PostRaw("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {pw}})
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("login without CSRF = %d, want 403", res.StatusCode)
		}
		res = c.Get("/t/acme/login")
		csrf := findCookie(res, "__Host-gh_csrf")
		if csrf == nil || !csrf.Secure {
			t.Fatalf("CSRF cookie = %+v, want __Host-gh_csrf, Secure", csrf)
		}
		req, _ := http.NewRequest(http.MethodPost, c.URL("/t/acme/login"), strings.NewReader(url.Values{"email": {"alice@acme.test"}, "password": {pw}, "_csrf": {csrf.Value}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value})
		res = c.Do(req)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login = %d, want 303", res.StatusCode)
		}
		ck := findCookie(res, "__Host-gh_s_acme")
		if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" || ck.MaxAge != 0 || !ck.Expires.IsZero() {
			t.Fatalf("session cookie = %+v, want __Host- prefixed, Secure, HttpOnly, Lax, Path=/, no Domain, not persistent", ck)
		}
		if hsts := res.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
			t.Errorf("HSTS = %q on an https deployment", hsts)
		}
	})
}

func findCookie(res *apptest.Response, name string) *http.Cookie {
	for _, ck := range res.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// A session token planted before sign-in (fixation) is worthless after it,
// and the token changes at every sign-in.
func TestSessionFixation(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	env.User(acme, "mallory@acme.test", db.RoleMember, "mallory password")
	attacker := env.Client()
	attacker.Login("acme", "mallory@acme.test", "mallory password")
	planted := attacker.Cookie("gh_s_acme")

	victim := env.Client()
	victim.SetCookie("gh_s_acme", planted)
	victim.Login("acme", "alice@acme.test", pw)
	got := victim.Cookie("gh_s_acme")
	if got == planted || got == "" {
		t.Fatalf("session token after sign-in = %q, planted %q: want a new one", got, planted)
	}
	if signedIn(t, attacker, "acme") {
		t.Fatal("the planted (replaced) session still works")
	}
	if res := victim.Get("/t/acme/account"); res.Doc().Find("[data-testid=account-email]").Text() != "alice@acme.test" {
		t.Fatal("victim is not signed in as alice")
	}
}

// A session of one workspace is worthless in another, by cookie and by
// bearer token.
func TestSessionCrossWorkspace(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	c.SetCookie("gh_s_globex", c.Cookie("gh_s_acme"))
	if signedIn(t, c, "globex") {
		t.Fatal("acme's session opened globex's portal")
	}
	if !signedIn(t, c, "acme") {
		t.Fatal("acme's session no longer works in acme")
	}
	tok := c.APILogin("acme", "alice@acme.test", pw)
	if res := c.API(http.MethodGet, "/t/globex/api/v1/session", tok, nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("acme token on globex /session = %d, want 401", res.StatusCode)
	}
	if res := c.API(http.MethodGet, "/t/acme/api/v1/session", tok, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("acme token on acme /session = %d, want 200", res.StatusCode)
	}
}

func TestSessionTamperedCookie(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	good := c.Cookie("gh_s_acme")
	flipped := []byte(good)
	if flipped[5] == 'A' {
		flipped[5] = 'B'
	} else {
		flipped[5] = 'A'
	}
	for name, v := range map[string]string{
		"flipped":   string(flipped),
		"truncated": good[:len(good)-1],
		"extended":  good + "A",
		"junk":      "'; DROP TABLE users; --",
		"long":      strings.Repeat("A", 4000),
		"unicode":   "ŝéśšïöñ",
	} {
		t.Run(name, func(t *testing.T) {
			bad := env.Client()
			bad.SetCookie("gh_s_acme", v)
			if signedIn(t, bad, "acme") {
				t.Fatalf("tampered cookie %q was accepted", v)
			}
		})
	}
	if !signedIn(t, c, "acme") {
		t.Fatal("the genuine session stopped working")
	}
}

// advanceActive moves the clock by total in steps, using the session at each
// step so the idle timeout never fires; it reports whether the session
// survived.
func advanceActive(t *testing.T, env *apptest.Env, c *apptest.Client, total, step time.Duration) bool {
	t.Helper()
	for moved := time.Duration(0); moved < total; moved += step {
		env.Clock.Advance(step)
		if !signedIn(t, c, "acme") {
			return false
		}
	}
	return true
}

func TestSessionAbsoluteTimeout(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	if !advanceActive(t, env, c, 12*time.Hour-20*time.Minute, 20*time.Minute) {
		t.Fatal("session died before 12 hours while active")
	}
	// A token renewal (sign out everywhere else rotates the token) does not
	// restart the absolute limit.
	if res := c.PostForm("/t/acme/account/sessions/end-others", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("end others = %d", res.StatusCode)
	}
	env.Clock.Advance(19 * time.Minute)
	if !signedIn(t, c, "acme") {
		t.Fatal("session died before 12 hours")
	}
	env.Clock.Advance(time.Minute)
	if signedIn(t, c, "acme") {
		t.Fatal("session still alive 12 hours after sign-in")
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	env.Clock.Advance(29 * time.Minute)
	if !signedIn(t, c, "acme") {
		t.Fatal("session died after 29 idle minutes")
	}
	env.Clock.Advance(30 * time.Minute)
	if signedIn(t, c, "acme") {
		t.Fatal("session alive after 30 idle minutes")
	}

	t.Run("WorkspaceStricter", func(t *testing.T) {
		if err := env.Store.SetSessionLifetimes(context.Background(), acme.ID, 2*time.Hour, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		c := env.Client()
		c.Login("acme", "alice@acme.test", pw)
		env.Clock.Advance(9 * time.Minute)
		if !signedIn(t, c, "acme") {
			t.Fatal("died after 9 of 10 idle minutes")
		}
		env.Clock.Advance(10 * time.Minute)
		if signedIn(t, c, "acme") {
			t.Fatal("alive after 10 idle minutes with a 10-minute workspace limit")
		}
	})
	t.Run("NeverLooserThan60Minutes", func(t *testing.T) {
		// Even a bad value in the database cannot loosen the ceilings.
		if err := env.Store.SetSessionLifetimes(context.Background(), acme.ID, 48*time.Hour, 180*time.Minute); err != nil {
			t.Fatal(err)
		}
		c := env.Client()
		c.Login("acme", "alice@acme.test", pw)
		env.Clock.Advance(61 * time.Minute)
		if signedIn(t, c, "acme") {
			t.Fatal("alive after 61 idle minutes")
		}
		c.Login("acme", "alice@acme.test", pw)
		if !advanceActive(t, env, c, 24*time.Hour-30*time.Minute, 30*time.Minute) {
			t.Fatal("died before 24 hours")
		}
		env.Clock.Advance(30 * time.Minute)
		if signedIn(t, c, "acme") {
			t.Fatal("alive after 24 hours")
		}
	})
}

func scsHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// sessionRow reads the raw scs row of a token, to write it back later the
// way a slow in-flight request that loaded it would.
// sessionRow reads scs's row of the session as it is stored; its expiry is
// the engine's type (a julian day on SQLite, a timestamptz on PostgreSQL).
func sessionRow(t *testing.T, env *apptest.Env, token string) (data []byte, expiry any) {
	t.Helper()
	err := env.Store.DB().QueryRow(`SELECT data, expiry FROM sessions WHERE token = ?`, scsHash(token)).Scan(&data, &expiry)
	if err != nil {
		t.Fatalf("session row: %v", err)
	}
	return data, expiry
}

func writeBack(t *testing.T, env *apptest.Env, token string, data []byte, expiry any) {
	t.Helper()
	if _, err := env.Store.DB().Exec(`INSERT INTO sessions (token, data, expiry) VALUES (?, ?, ?)
		ON CONFLICT (token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry`, scsHash(token), data, expiry); err != nil {
		t.Fatal(err)
	}
}

// A request that loaded a session before a sign-out, a sign-out everywhere
// or a token rotation can write the old session back; it must stay dead.
func TestSessionWriteBackAfterRevocation(t *testing.T) {
	t.Parallel()
	cases := map[string]func(t *testing.T, env *apptest.Env, victim, other *apptest.Client){
		"SignOut": func(t *testing.T, env *apptest.Env, victim, other *apptest.Client) {
			victim.PostForm("/t/acme/logout", nil)
		},
		"SignOutEverywhereElse": func(t *testing.T, env *apptest.Env, victim, other *apptest.Client) {
			if res := other.PostForm("/t/acme/account/sessions/end-others", nil); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("end others = %d", res.StatusCode)
			}
		},
		"PasswordChangeElsewhere": func(t *testing.T, env *apptest.Env, victim, other *apptest.Client) {
			res := other.PostForm("/t/acme/account/password", url.Values{"current_password": {pw}, "new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("password change = %d: %s", res.StatusCode, res.Body)
			}
		},
		"TokenRotation": func(t *testing.T, env *apptest.Env, victim, other *apptest.Client) {
			// The victim's own session rotates its token; the old token
			// written back must not come alive.
			if res := victim.PostForm("/t/acme/account/sessions/end-others", nil); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("end others = %d", res.StatusCode)
			}
		},
	}
	// A rotation that bumps nothing else: only the register's token hash
	// tells the old token from the new one.
	cases["RotationAlone"] = func(t *testing.T, env *apptest.Env, victim, other *apptest.Client) {
		token := victim.Cookie("gh_s_acme")
		var id string
		var ws int64
		if err := env.Store.DB().QueryRow(`SELECT id, workspace_id FROM user_sessions WHERE token_hash = ?`, scsHash(token)).Scan(&id, &ws); err != nil {
			t.Fatal(err)
		}
		if err := env.Store.RotateUserSessionToken(context.Background(), ws, id, scsHash(token), scsHash("a-newer-token")); err != nil {
			t.Fatal(err)
		}
	}
	for name, revoke := range cases {
		t.Run(name, func(t *testing.T) {
			env, _, _ := setup(t)
			victim, other := env.Client(), env.Client()
			victim.Login("acme", "alice@acme.test", pw)
			other.Login("acme", "alice@acme.test", pw)
			token := victim.Cookie("gh_s_acme")
			data, expiry := sessionRow(t, env, token)
			revoke(t, env, victim, other)
			writeBack(t, env, token, data, expiry)
			stale := env.Client()
			stale.SetCookie("gh_s_acme", token)
			if signedIn(t, stale, "acme") {
				t.Fatal("a session written back after revocation is alive")
			}
		})
	}
}

func TestSessionsListAndEnd(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	a, b := env.Client(), env.Client()
	a.Login("acme", "alice@acme.test", pw)
	b.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
	b.Login("acme", "alice@acme.test", pw)
	bob := env.User(acme, "bob@acme.test", db.RoleMember, "bob password 1")
	bobc := env.Client()
	bobc.Login("acme", "bob@acme.test", "bob password 1")

	doc := a.Get("/t/acme/account").Doc()
	rows := doc.Find("[data-testid=sessions] tbody tr")
	if rows.Length() != 2 {
		t.Fatalf("sessions listed = %d, want 2", rows.Length())
	}
	if !strings.Contains(rows.Text(), "Firefox on Linux") || !strings.Contains(rows.Text(), "this browser") {
		t.Errorf("sessions table = %q, want the other device and this browser marked", rows.Text())
	}
	action, ok := doc.Find(`form[action$="/end"]`).Attr("action")
	if !ok {
		t.Fatal("no end button for the other session")
	}
	sessions, _ := env.Store.ActiveUserSessions(context.Background(), acme.ID, bob.ID)
	bobSession := sessions[0].ID

	// Ending another member's session is a 404 and leaves it alive.
	if res := a.PostForm("/t/acme/account/sessions/"+bobSession+"/end", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("ending bob's session as alice = %d, want 404", res.StatusCode)
	}
	if !signedIn(t, bobc, "acme") {
		t.Fatal("bob's session was ended by alice")
	}
	if res := a.PostForm(action, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("end session = %d", res.StatusCode)
	}
	if signedIn(t, b, "acme") {
		t.Fatal("ended session still works")
	}
	if !signedIn(t, a, "acme") {
		t.Fatal("ending another session signed out this one")
	}
	// Ending it again is a 404.
	if res := a.PostForm(action, nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("ending an ended session = %d, want 404", res.StatusCode)
	}
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	token := c.Cookie("gh_s_acme")
	res := c.PostForm("/t/acme/logout", nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/login?notice=signed_out" {
		t.Fatalf("logout = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if ck := findCookie(res, "gh_s_acme"); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("logout cookie = %+v, want it cleared", ck)
	}
	old := env.Client()
	old.SetCookie("gh_s_acme", token)
	if signedIn(t, old, "acme") {
		t.Fatal("token still valid after sign-out")
	}
	// Sign-out without a CSRF token is refused and changes nothing.
	c.Login("acme", "alice@acme.test", pw)
	if res := c.PostRaw("/t/acme/logout", nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without CSRF = %d, want 403", res.StatusCode)
	}
	if !signedIn(t, c, "acme") {
		t.Fatal("refused sign-out signed the member out")
	}
}

func ioNopCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
