package app_test

// Trusted devices ("trust this browser for N days", issue 6): the cookie
// skips the challenge only for its member, in its workspace, unexpired,
// unrevoked, and while the workspace allows it; the session it gives is
// aal1 (AMR password, trusted_device) and step-up still asks for a factor;
// resets, password changes and factor removals void it. Real SQLite, the
// whole stack, a clock the tests move.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const trustDays = 30

// trustEnv is acme and globex with trusted devices on (30 days), and alice
// (the same email in both) holding an authenticator app in each.
type trustEnv struct {
	env           *apptest.Env
	acme          db.Workspace
	alice         db.User
	secret        string // alice's in acme
	globexSecret  string // alice's in globex
	globexAliceID int64
}

const globexPW = "globex password 1"

func setTrustedDays(t *testing.T, env *apptest.Env, slug string, days int) {
	t.Helper()
	if _, err := env.Store.DB().Exec(`UPDATE workspaces SET trusted_device_days = ? WHERE slug = ?`, days, slug); err != nil {
		t.Fatal(err)
	}
}

func trustSetup(t *testing.T) trustEnv {
	t.Helper()
	env, acme, alice := setup(t)
	setTrustedDays(t, env, "acme", trustDays)
	setTrustedDays(t, env, "globex", trustDays)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	gsecret, _, _ := enrollAPI(t, env, "globex", "alice@acme.test", globexPW)
	return trustEnv{env: env, acme: acme, alice: alice, secret: secret, globexSecret: gsecret,
		globexAliceID: userIn(t, env, "globex", "alice@acme.test").ID}
}

// trustBrowser signs in on c with the password and a code, ticking "trust
// this browser", and returns the device cookie's value.
func trustBrowser(t *testing.T, env *apptest.Env, c *apptest.Client, slug, email, password, secret string) string {
	t.Helper()
	if res := c.Login(slug, email, password); !strings.HasPrefix(location(res), "/t/"+slug+"/login/mfa") {
		t.Fatalf("password step went to %q, want the challenge", location(res))
	}
	res := c.PostForm("/t/"+slug+"/login/mfa", url.Values{"code": {nextCode(t, env, secret)}, "trust_device": {"1"}})
	if !passed(res, slug) {
		t.Fatalf("challenge with trust = %d %q\n%s", res.StatusCode, location(res), res.Body)
	}
	tok := c.Cookie("gh_td_" + slug)
	if tok == "" {
		t.Fatalf("no device cookie after ticking trust in %s", slug)
	}
	return tok
}

// signInAgain signs out and in with the password only, and reports whether
// the challenge was skipped (false: the challenge page came next).
func signInAgain(t *testing.T, c *apptest.Client, slug, email, password string) bool {
	t.Helper()
	if signedIn(t, c, slug) {
		c.PostForm("/t/"+slug+"/logout", nil)
	}
	res := c.Login(slug, email, password)
	switch loc := location(res); {
	case strings.HasPrefix(loc, "/t/"+slug+"/login/mfa"):
		if signedIn(t, c, slug) {
			t.Fatal("signed in while the challenge is pending")
		}
		return false
	case strings.HasPrefix(loc, "/t/"+slug+"/account"):
		if !signedIn(t, c, slug) {
			t.Fatalf("challenge skipped to %q but not signed in", loc)
		}
		return true
	default:
		t.Fatalf("sign-in went to %q", loc)
		return false
	}
}

// pageSession is what the API says about the browser's session (a page
// session's token works as a bearer token).
func pageSession(t *testing.T, c *apptest.Client, slug string) *apptest.Response {
	t.Helper()
	res := c.Env.Client().API(http.MethodGet, "/t/"+slug+"/api/v1/session", c.Cookie("gh_s_"+slug), nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET session = %d %s", res.StatusCode, res.Body)
	}
	return res
}

func deviceIDs(t *testing.T, env *apptest.Env, u db.User) []int64 {
	t.Helper()
	rows, err := env.Store.DB().Query(`SELECT id FROM trusted_devices WHERE workspace_id = ? AND user_id = ? ORDER BY id`, u.WorkspaceID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

func TestTrustedDeviceSkipsChallenge(t *testing.T) {
	t.Parallel()
	te := trustSetup(t)
	env, alice := te.env, te.alice
	c := env.Client()

	// The challenge page offers the box with the workspace's days.
	c.Login("acme", "alice@acme.test", pw)
	box := c.Get("/t/acme/login/mfa").Doc().Find("[data-testid=trust-device]")
	if box.Length() != 1 || box.AttrOr("form", "") != "challenge-form" {
		t.Fatalf("trust box = %d elements, form %q", box.Length(), box.AttrOr("form", ""))
	}
	if label := c.Get("/t/acme/login/mfa").Doc().Find("label[for=trust-device]").Text(); label != "Trust this browser for 30 days" {
		t.Errorf("trust label = %q", label)
	}
	c.PostForm("/t/acme/login/mfa/cancel", nil)

	// Passing the challenge with the box ticked: a persistent cookie of
	// the workspace, HttpOnly and Lax, whose token is stored only hashed.
	if res := c.Login("acme", "alice@acme.test", pw); !strings.HasPrefix(location(res), "/t/acme/login/mfa") {
		t.Fatalf("password step went to %q", location(res))
	}
	res := c.PostForm("/t/acme/login/mfa", url.Values{"code": {nextCode(t, env, te.secret)}, "trust_device": {"1"}})
	if !passed(res, "acme") {
		t.Fatalf("challenge = %d %q", res.StatusCode, location(res))
	}
	ck := findCookie(res, "gh_td_acme")
	if ck == nil {
		t.Fatalf("no gh_td_acme cookie in %v", res.Header["Set-Cookie"])
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge != trustDays*24*3600 {
		t.Errorf("device cookie = %+v, want HttpOnly, SameSite=Lax, Path=/, Max-Age %d days", ck, trustDays)
	}
	if !wellFormed(ck.Value) {
		t.Errorf("device token %q is not 256 bits of base64url", ck.Value)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices WHERE token_hash LIKE '%' || ? || '%'`, ck.Value); n != 0 {
		t.Error("the device token is stored in clear")
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices WHERE workspace_id = ? AND user_id = ? AND expires_at = ?`,
		alice.WorkspaceID, alice.ID, env.Clock.Now().Add(trustDays*24*time.Hour).Unix()); n != 1 {
		t.Errorf("%d devices of alice expiring in %d days, want 1", n, trustDays)
	}
	if n := auditCount(t, env, alice, db.EventTrustedDeviceAdded); n != 1 {
		t.Errorf("%d %s events, want 1", n, db.EventTrustedDeviceAdded)
	}
	if got := pageSession(t, c, "acme").JSON()["aal"]; got != "aal2" {
		t.Errorf("session after the challenge is %v, want aal2", got)
	}

	// Signing in again on this browser skips the challenge: aal1, AMR
	// password and trusted_device, audited, last use recorded.
	aal2Before := aal2Sessions(t, env, alice)
	if !signInAgain(t, c, "acme", "alice@acme.test", pw) {
		t.Fatal("the trusted browser was challenged")
	}
	s := pageSession(t, c, "acme")
	if s.JSON()["aal"] != "aal1" || !slices.Equal(amrMethods(s), []string{"password", "trusted_device"}) {
		t.Errorf("trusted session = %v %v, want aal1 [password trusted_device]", s.JSON()["aal"], amrMethods(s))
	}
	if n := auditCount(t, env, alice, db.EventTrustedDeviceUsed); n != 1 {
		t.Errorf("%d %s events, want 1", n, db.EventTrustedDeviceUsed)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices WHERE user_id = ? AND last_used_at = ?`, alice.ID, env.Clock.Now().Unix()); n != 1 {
		t.Error("last_used_at not recorded")
	}
	if n := aal2Sessions(t, env, alice); n != aal2Before {
		t.Errorf("%d aal2 sessions of alice after the trusted sign-in, want %d", n, aal2Before)
	}

	// Step-up actions still ask for a factor: the page goes to re-verify
	// and nothing changes; the API answers step_up_required.
	codesBefore := countFor(t, env, "recovery_codes", alice)
	res = c.PostForm("/t/acme/account/mfa/recovery-codes", nil)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(location(res), "/t/acme/account/verify") {
		t.Errorf("regenerate codes on a trusted session = %d %q, want the step-up page", res.StatusCode, location(res))
	}
	if countFor(t, env, "recovery_codes", alice) != codesBefore || queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NOT NULL`, alice.ID) != 0 {
		t.Error("recovery codes changed without step-up")
	}
	res = c.PostForm("/t/acme/account/trusted/revoke-all", nil)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(location(res), "/t/acme/account/verify") {
		t.Errorf("revoke all on a trusted session = %d %q, want the step-up page", res.StatusCode, location(res))
	}
	ids := deviceIDs(t, env, alice)
	res = env.Client().API(http.MethodDelete, fmt.Sprintf("/t/acme/api/v1/trusted-devices/%d", ids[0]), c.Cookie("gh_s_acme"), nil)
	wantErr(t, "DELETE trusted device on a trusted session", res, "step_up_required", http.StatusForbidden)
	if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices WHERE revoked_at IS NOT NULL`); n != 0 {
		t.Errorf("%d devices revoked without step-up", n)
	}

	// The token never reaches the logs.
	if strings.Contains(env.Logs(), ck.Value) {
		t.Error("the device token is in the logs")
	}
}

func wellFormed(tok string) bool {
	if len(tok) != 43 {
		return false
	}
	return strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

// Every cookie that is not this member's usable device in this workspace
// is ignored: the challenge follows, nothing is recorded as used.
func TestTrustedDeviceRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// spoil runs after alice trusted browser c (token tok); it returns
		// the slug, email and password to sign in with next.
		spoil func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (slug, email, password string)
	}{
		{"AnotherWorkspace", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			// acme's cookie stolen into globex's name, where the same
			// email has an account.
			c.SetCookie("gh_td_globex", tok)
			return "globex", "alice@acme.test", globexPW
		}},
		{"AnotherMember", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			te.env.User(te.acme, "bob@acme.test", db.RoleMember, "bob password 1")
			enrollAPI(t, te.env, "acme", "bob@acme.test", "bob password 1")
			return "acme", "bob@acme.test", "bob password 1"
		}},
		{"Expired", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			te.env.Clock.Advance(trustDays*24*time.Hour + time.Minute)
			return "acme", "alice@acme.test", pw
		}},
		{"Tampered", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			b := []byte(tok)
			b[10] ^= 1
			c.SetCookie("gh_td_acme", string(b))
			return "acme", "alice@acme.test", pw
		}},
		{"Junk", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			c.SetCookie("gh_td_acme", "' OR 1=1 --")
			return "acme", "alice@acme.test", pw
		}},
		{"BlockedAfter100WrongCodes", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			lockOut(t, te.env, te.alice)
			return "acme", "alice@acme.test", pw
		}},
		{"TurnedOff", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			setTrustedDays(t, te.env, "acme", 0)
			return "acme", "alice@acme.test", pw
		}},
		{"RevokedInPortal", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			// c signed in at aal2 just now: within the step-up window.
			id := deviceIDs(t, te.env, te.alice)[0]
			res := c.PostForm(fmt.Sprintf("/t/acme/account/trusted/%d/revoke", id), nil)
			if res.StatusCode != http.StatusSeeOther || location(res) != "/t/acme/account?notice=trusted_revoked" {
				t.Fatalf("portal revoke = %d %q", res.StatusCode, location(res))
			}
			return "acme", "alice@acme.test", pw
		}},
		{"RevokedAllInPortal", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			res := c.PostForm("/t/acme/account/trusted/revoke-all", nil)
			if res.StatusCode != http.StatusSeeOther || c.Cookie("gh_td_acme") != "" {
				t.Fatalf("revoke all = %d %q, cookie left %q", res.StatusCode, location(res), c.Cookie("gh_td_acme"))
			}
			c.SetCookie("gh_td_acme", tok) // a copy taken before
			return "acme", "alice@acme.test", pw
		}},
		{"RevokedThroughAPI", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			id := deviceIDs(t, te.env, te.alice)[0]
			res := te.env.Client().API(http.MethodDelete, fmt.Sprintf("/t/acme/api/v1/trusted-devices/%d", id), c.Cookie("gh_s_acme"), nil)
			if res.StatusCode != http.StatusNoContent {
				t.Fatalf("DELETE trusted device = %d %s", res.StatusCode, res.Body)
			}
			return "acme", "alice@acme.test", pw
		}},
		{"RevokedByAdmin", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			admin := adminBrowser(t, te.env, te.acme)
			id := deviceIDs(t, te.env, te.alice)[0]
			if rows := admin.Get(memberPath(te.alice, "")).Doc().Find("[data-testid=trusted-devices] tr[data-device]"); rows.Length() != 1 {
				t.Errorf("admin's member page lists %d trusted browsers, want 1", rows.Length())
			}
			res := admin.PostForm(memberPath(te.alice, fmt.Sprintf("trusted/%d/revoke", id)), nil)
			if res.StatusCode != http.StatusSeeOther || !strings.Contains(location(res), "notice=trusted_revoked") {
				t.Fatalf("admin revoke = %d %q", res.StatusCode, location(res))
			}
			return "acme", "alice@acme.test", pw
		}},
		{"AdminReset", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			admin := adminBrowser(t, te.env, te.acme)
			res := admin.PostForm(memberPath(te.alice, "reset-mfa"), url.Values{"confirm": {"yes"}})
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("reset = %d %s", res.StatusCode, res.Body)
			}
			// alice enrolls again: her old browser must not skip the new
			// factor.
			enrollAPI(t, te.env, "acme", "alice@acme.test", pw)
			return "acme", "alice@acme.test", pw
		}},
		{"PasswordChanged", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			res := c.PostForm("/t/acme/account/password", url.Values{"current_password": {pw}, "new_password": {"a new password 2"}, "confirm_password": {"a new password 2"}})
			if res.StatusCode != http.StatusSeeOther || !strings.Contains(location(res), "password_changed") {
				t.Fatalf("password change = %d %q", res.StatusCode, location(res))
			}
			return "acme", "alice@acme.test", "a new password 2"
		}},
		{"TOTPRemoved", func(t *testing.T, te trustEnv, c *apptest.Client, tok string) (string, string, string) {
			res := c.PostForm("/t/acme/account/mfa/totp/remove", url.Values{"remove_code": {nextCode(t, te.env, te.secret)}})
			if res.StatusCode != http.StatusSeeOther || hasTOTP(t, te.env, te.alice) {
				t.Fatalf("TOTP removal = %d %q", res.StatusCode, location(res))
			}
			enrollAPI(t, te.env, "acme", "alice@acme.test", pw)
			return "acme", "alice@acme.test", pw
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			te := trustSetup(t)
			env := te.env
			c := env.Client()
			tok := trustBrowser(t, env, c, "acme", "alice@acme.test", pw, te.secret)
			slug, email, password := tc.spoil(t, te, c, tok)
			used := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE event = ?`, db.EventTrustedDeviceUsed)
			if signInAgain(t, c, slug, email, password) {
				t.Fatalf("%s: the challenge was skipped", tc.name)
			}
			if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE event = ?`, db.EventTrustedDeviceUsed); n != used {
				t.Errorf("%s: %d trusted sign-ins recorded, want %d", tc.name, n, used)
			}
			if n := queryInt(t, env, `SELECT COUNT(*) FROM user_sessions WHERE aal = 'aal1' AND ended_at IS NULL`); n != 0 {
				t.Errorf("%s: %d aal1 sessions open", tc.name, n)
			}
		})
	}
}

// adminBrowser is an admin of ws who holds an authenticator app, signed
// in at aal2 just now.
func adminBrowser(t *testing.T, env *apptest.Env, ws db.Workspace) *apptest.Client {
	t.Helper()
	env.User(ws, "admin@acme.test", db.RoleAdmin, adminPW)
	secret, _, _ := enrollAPI(t, env, ws.Slug, "admin@acme.test", adminPW)
	c := pendingPage(t, env, ws.Slug, "admin@acme.test", adminPW)
	if res := challengeWith(env, c, ws.Slug, nextCode(t, env, secret)); !passed(res, ws.Slug) {
		t.Fatalf("admin challenge = %d %q", res.StatusCode, location(res))
	}
	return c
}

// The API never uses devices, the box is absent when the workspace has
// trusted devices off, and a ticked box (forged) then trusts nothing.
func TestTrustedDeviceOffAndAPI(t *testing.T) {
	t.Parallel()
	te := trustSetup(t)
	env := te.env
	c := env.Client()
	tok := trustBrowser(t, env, c, "acme", "alice@acme.test", pw, te.secret)

	// The API login with the cookie still asks for the second factor.
	req, _ := http.NewRequest(http.MethodPost, c.URL("/t/acme/api/v1/login"), strings.NewReader(`{"email":"alice@acme.test","password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: "gh_td_acme", Value: tok})
	res := env.Client().Do(req)
	if res.StatusCode != http.StatusOK || res.JSON()["mfa_required"] != true {
		t.Errorf("API login with a device cookie = %d %s, want mfa_required", res.StatusCode, res.Body)
	}
	// The API's second step never trusts a device either.
	mt, _ := res.JSON()["mfa_token"].(string)
	before := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices`)
	res = env.Client().API(http.MethodPost, "/t/acme/api/v1/login/mfa?trust_device=1", "", map[string]string{"mfa_token": mt, "code": nextCode(t, env, te.secret)})
	if res.StatusCode != http.StatusOK || findCookie(res, "gh_td_acme") != nil || queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices`) != before {
		t.Errorf("API second step with trust_device = %d, cookie %v, devices %d -> %d", res.StatusCode, findCookie(res, "gh_td_acme"),
			before, queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices`))
	}

	setTrustedDays(t, env, "acme", 0)
	c2 := env.Client()
	c2.Login("acme", "alice@acme.test", pw)
	if n := c2.Get("/t/acme/login/mfa").Doc().Find("[data-testid=trust-device]").Length(); n != 0 {
		t.Errorf("trust box shown with trusted devices off")
	}
	res = c2.PostForm("/t/acme/login/mfa", url.Values{"code": {nextCode(t, env, te.secret)}, "trust_device": {"1"}})
	if !passed(res, "acme") || findCookie(res, "gh_td_acme") != nil || queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices`) != before {
		t.Errorf("forged trust with trusted devices off = %d, cookie %v", res.StatusCode, findCookie(res, "gh_td_acme"))
	}
	// The portal no longer lists the (unusable) device, nor offers the card.
	if n := c2.Get("/t/acme/account").Doc().Find("[data-testid=trusted-card]").Length(); n != 0 {
		t.Error("trusted browsers card shown with trusted devices off")
	}
}

// The portal and the JSON API list the member's trusted browsers, and
// nobody else's; another member's device id is a 404.
func TestTrustedDeviceLists(t *testing.T) {
	t.Parallel()
	te := trustSetup(t)
	env, alice := te.env, te.alice
	c := env.Client()
	c.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36")
	trustBrowser(t, env, c, "acme", "alice@acme.test", pw, te.secret)
	id := deviceIDs(t, env, alice)[0]

	rows := c.Get("/t/acme/account").Doc().Find("[data-testid=trusted-devices] tr[data-device]")
	if rows.Length() != 1 || !strings.Contains(rows.Text(), "Chrome on Linux") || rows.AttrOr("data-device", "") != fmt.Sprint(id) {
		t.Errorf("portal lists %d trusted browsers: %q", rows.Length(), rows.Text())
	}
	tok := c.Cookie("gh_s_acme")
	res := env.Client().API(http.MethodGet, "/t/acme/api/v1/mfa", tok, nil)
	list, _ := res.JSON()["trusted_devices"].([]any)
	if res.StatusCode != http.StatusOK || len(list) != 1 {
		t.Fatalf("GET /mfa = %d %s, want one trusted device", res.StatusCode, res.Body)
	}
	if d, _ := list[0].(map[string]any); d["id"] != float64(id) || d["label"] != "Chrome on Linux" || d["expires_at"] == nil || d["last_used_at"] != nil {
		t.Errorf("trusted device JSON = %v", d)
	}

	// Bob, in the same workspace, sees none and cannot revoke alice's.
	env.User(te.acme, "bob@acme.test", db.RoleMember, "bob password 1")
	_, _, bobTok := enrollAPI(t, env, "acme", "bob@acme.test", "bob password 1")
	res = env.Client().API(http.MethodGet, "/t/acme/api/v1/mfa", bobTok, nil)
	if list, _ := res.JSON()["trusted_devices"].([]any); list == nil || len(list) != 0 {
		t.Errorf("bob's GET /mfa trusted_devices = %v, want []", res.JSON()["trusted_devices"])
	}
	// bobTok passed a factor just now (enrollment): no step-up needed,
	// so the answer is about the id alone.
	for _, path := range []string{fmt.Sprintf("/t/acme/api/v1/trusted-devices/%d", id), "/t/acme/api/v1/trusted-devices/999999", "/t/acme/api/v1/trusted-devices/x1"} {
		res = env.Client().API(http.MethodDelete, path, bobTok, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("bob DELETE %s = %d %s, want 404", path, res.StatusCode, res.Body)
		}
	}
	// Bob at his challenge (the pending state) is refused the portal form.
	bobBrowser := env.Client()
	bobBrowser.Login("acme", "bob@acme.test", "bob password 1")
	if res := bobBrowser.PostForm(fmt.Sprintf("/t/acme/account/trusted/%d/revoke", id), nil); res.StatusCode != http.StatusSeeOther || location(res) != "/t/acme/login" {
		t.Errorf("pending bob revoking = %d %q", res.StatusCode, location(res))
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices WHERE revoked_at IS NOT NULL`); n != 0 {
		t.Fatalf("%d devices revoked by someone else", n)
	}

	// The admin's JSON view of alice lists it; globex's admin gets a 404.
	env.User(te.acme, "owner@acme.test", db.RoleOwner, adminPW)
	_, _, adminTok := enrollAPI(t, env, "acme", "owner@acme.test", adminPW)
	res = env.Client().API(http.MethodGet, fmt.Sprintf("/t/acme/api/v1/admin/members/%d", alice.ID), adminTok, nil)
	if list, _ := res.JSON()["trusted_devices"].([]any); res.StatusCode != http.StatusOK || len(list) != 1 {
		t.Errorf("admin member JSON = %d %s, want one trusted device", res.StatusCode, res.Body)
	}
	env.User(mustWorkspace(t, env, "globex"), "owner@globex.test", db.RoleOwner, adminPW)
	gtok := env.Client().APILogin("globex", "owner@globex.test", adminPW)
	res = env.Client().API(http.MethodGet, fmt.Sprintf("/t/globex/api/v1/admin/members/%d", alice.ID), gtok, nil)
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("globex admin reading acme's alice = %d, want 404", res.StatusCode)
	}
}

// The support console's staff never hold a session below aal2: the box is
// never offered, a forged one trusts nothing, whatever the platform
// workspace's setting says.
func TestTrustedDeviceNeverForStaff(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	_, token := newStaff(t, env, "sam@support.test", false)
	secret := enrollStaff(t, env, token)
	if _, err := env.Store.DB().Exec(`UPDATE workspaces SET trusted_device_days = 30 WHERE platform = 1`); err != nil {
		t.Fatal(err)
	}
	c := env.Client()
	res := c.PostForm("/support/login", url.Values{"email": {"sam@support.test"}, "password": {staffPW}})
	if !strings.HasPrefix(location(res), "/support/login/mfa") {
		t.Fatalf("staff password step = %q", location(res))
	}
	if n := c.Get("/support/login/mfa").Doc().Find("[data-testid=trust-device]").Length(); n != 0 {
		t.Error("trust box offered to staff")
	}
	res = c.PostForm("/support/login/mfa", url.Values{"code": {nextCode(t, env, secret)}, "trust_device": {"1"}})
	if res.StatusCode != http.StatusSeeOther || location(res) != "/support/members" {
		t.Fatalf("staff challenge = %d %q", res.StatusCode, location(res))
	}
	for _, ck := range res.Cookies() {
		if strings.HasPrefix(ck.Name, "gh_td_") || strings.HasPrefix(ck.Name, "__Host-gh_td_") {
			t.Errorf("staff got device cookie %s", ck.Name)
		}
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices`); n != 0 {
		t.Errorf("%d trusted devices after a staff sign-in", n)
	}
	if n := c.Get("/support/account").Doc().Find("[data-testid=trusted-card]").Length(); n != 0 {
		t.Error("trusted browsers card on the support console")
	}
}

// A security key passes the challenge too: with the box ticked (the page's
// script adds trust_device to the finish URL) the browser is trusted.
func TestTrustedDeviceWithKey(t *testing.T) {
	t.Parallel()
	env, _, alice := waSetup(t)
	setTrustedDays(t, env, "acme", 7)
	k, _ := register(t, env, "acme", env.Client().APILogin("acme", "alice@acme.test", pw), "Key", virtualwebauthn.AuthenticatorOptions{})

	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	doc := c.Get("/t/acme/login/mfa").Doc()
	if doc.Find("[data-testid=trust-device]").Length() != 1 || doc.Find(`script[src*="js/trusted.js"]`).Length() != 1 {
		t.Fatalf("key challenge page: trust box %d, script %d", doc.Find("[data-testid=trust-device]").Length(), doc.Find(`script[src*="js/trusted.js"]`).Length())
	}
	res := pageAssertion(t, c, "/t/acme/login/mfa/webauthn/begin", "/t/acme/login/mfa/webauthn/finish?next=/t/acme/account&trust_device=1", k)
	if res.StatusCode != http.StatusOK || findCookie(res, "gh_td_acme") == nil {
		t.Fatalf("key challenge with trust = %d %s, cookies %v", res.StatusCode, res.Body, res.Header["Set-Cookie"])
	}
	if ck := findCookie(res, "gh_td_acme"); ck.MaxAge != 7*24*3600 {
		t.Errorf("device cookie Max-Age = %d, want 7 days", ck.MaxAge)
	}
	if !signInAgain(t, c, "acme", "alice@acme.test", pw) {
		t.Fatal("the browser trusted with a key was challenged")
	}

	// Removing the key voids the device (the member adds another first).
	c2 := env.Client()
	c2.Login("acme", "alice@acme.test", pw)
	res = pageAssertion(t, c2, "/t/acme/login/mfa/webauthn/begin", "/t/acme/login/mfa/webauthn/finish?next=/t/acme/account", k)
	if res.StatusCode != http.StatusOK || findCookie(res, "gh_td_acme") != nil {
		t.Fatalf("key challenge without trust = %d, cookie %v", res.StatusCode, findCookie(res, "gh_td_acme"))
	}
	keyID := queryInt(t, env, `SELECT id FROM webauthn_credentials WHERE user_id = ?`, alice.ID)
	res = c2.PostForm(fmt.Sprintf("/t/acme/account/mfa/webauthn/%d/remove", keyID), nil)
	if res.StatusCode != http.StatusSeeOther || countFor(t, env, "webauthn_credentials", alice) != 0 {
		t.Fatalf("key removal = %d %q", res.StatusCode, location(res))
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices WHERE user_id = ? AND revoked_reason = 'factor_removed'`, alice.ID); n != 1 {
		t.Errorf("%d devices voided by the key removal, want 1", n)
	}
}

// Outside dev mode the device cookie is __Host- prefixed and Secure (like
// the session cookie), and it is what the next sign-in reads.
func TestTrustedDeviceCookieProduction(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t, func(c *app.Config) {
		c.Dev = false
		c.BaseURL, _ = app.ParseBaseURL("https://gatehouse.example")
	})
	setTrustedDays(t, env, "acme", trustDays)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	c := env.Client()
	// Cookies are carried by hand, each request from an empty jar, so
	// that only the named cookies are sent.
	csrf := findCookie(c.Get("/t/acme/login"), "__Host-gh_csrf")
	if csrf == nil {
		t.Fatal("no CSRF cookie")
	}
	post := func(path string, form url.Values, cookies ...*http.Cookie) *apptest.Response {
		form.Set("_csrf", csrf.Value)
		req, _ := http.NewRequest(http.MethodPost, c.URL(path), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value})
		for _, ck := range cookies {
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
		return env.Client().Do(req)
	}
	login := url.Values{"email": {"alice@acme.test"}, "password": {pw}}
	res := post("/t/acme/login", login)
	pending := findCookie(res, "__Host-gh_s_acme")
	if res.StatusCode != http.StatusSeeOther || pending == nil || !strings.HasPrefix(location(res), "/t/acme/login/mfa") {
		t.Fatalf("password step = %d %q", res.StatusCode, location(res))
	}
	res = post("/t/acme/login/mfa", url.Values{"code": {nextCode(t, env, secret)}, "trust_device": {"1"}}, pending)
	if !passed(res, "acme") {
		t.Fatalf("challenge = %d %q", res.StatusCode, location(res))
	}
	ck := findCookie(res, "__Host-gh_td_acme")
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" || ck.MaxAge != trustDays*24*3600 {
		t.Fatalf("device cookie = %+v, want __Host- prefixed, Secure, HttpOnly, Lax, Path=/, no Domain, Max-Age %d days", ck, trustDays)
	}
	if findCookie(res, "gh_td_acme") != nil {
		t.Error("an unprefixed device cookie was set too")
	}
	res = post("/t/acme/login", login, ck)
	if res.StatusCode != http.StatusSeeOther || location(res) != "/t/acme/account" {
		t.Errorf("sign-in with the device cookie = %d %q, want the portal", res.StatusCode, location(res))
	}
	// The dev-mode name is not read outside dev mode.
	res = post("/t/acme/login", login, &http.Cookie{Name: "gh_td_acme", Value: ck.Value})
	if !strings.HasPrefix(location(res), "/t/acme/login/mfa") {
		t.Errorf("sign-in with the unprefixed cookie went to %q, want the challenge", location(res))
	}
}

// A trusted browser satisfies a requirement the member meets, but a member
// the policy still asks to enroll (their factor is not an allowed one) is
// challenged instead: the aal2 it gives is what unlocks enrollment.
func TestTrustedDeviceAndPolicy(t *testing.T) {
	t.Parallel()
	te := trustSetup(t)
	env := te.env
	c := env.Client()
	trustBrowser(t, env, c, "acme", "alice@acme.test", pw, te.secret)

	requireSystem(t, env, te.acme, db.MethodTOTP)
	setTrustedDays(t, env, "acme", trustDays) // SetPolicy wrote the fixture's 0
	if !signInAgain(t, c, "acme", "alice@acme.test", pw) {
		t.Error("a compliant member's trusted browser was challenged under the requirement")
	}

	requireSystem(t, env, te.acme, db.MethodWebAuthn)
	setTrustedDays(t, env, "acme", trustDays)
	if signInAgain(t, c, "acme", "alice@acme.test", pw) {
		t.Error("a member who must enroll skipped the challenge on a trusted browser")
	}
}

// Locked means locked (issue 12, defect 7): while ten wrong codes have
// paused second-factor sign-in, a trusted browser is refused like the
// challenge (429 with Retry-After), its device is not used, and it skips
// the challenge again once the pause is over.
func TestTrustedDeviceRefusedWhileLocked(t *testing.T) {
	t.Parallel()
	te := trustSetup(t)
	env, alice := te.env, te.alice
	c := env.Client()
	trustBrowser(t, env, c, "acme", "alice@acme.test", pw, te.secret)
	c.PostForm("/t/acme/logout", nil)

	// Ten wrong codes in two API challenges (five end one) lock it.
	for range 2 {
		mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
		for range 5 {
			loginMFA(env, "acme", map[string]string{"mfa_token": mt, "code": wrongCode(t, env, te.secret)})
		}
	}
	if g := mfaGuard(t, env, alice); !g.LockedUntil.After(env.Clock.Now()) {
		t.Fatalf("guard after 10 wrong codes: %+v, want locked", g)
	}
	used := auditCount(t, env, alice, db.EventTrustedDeviceUsed)

	res := c.PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {pw}})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("trusted browser while locked = %d %q (Retry-After %q), want 429 with Retry-After",
			res.StatusCode, location(res), res.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(res.Body), "Too many wrong codes") {
		t.Errorf("locked answer does not say why:\n%s", res.Body)
	}
	if signedIn(t, c, "acme") {
		t.Fatal("signed in on a trusted browser while the second factor is locked")
	}
	if n := auditCount(t, env, alice, db.EventTrustedDeviceUsed); n != used {
		t.Errorf("the device was used while locked (%d uses audited, want %d)", n, used)
	}

	env.Clock.Advance(db.GuardLockFor)
	if !signInAgain(t, c, "acme", "alice@acme.test", pw) {
		t.Fatal("the trusted browser did not skip the challenge after the pause")
	}
}

// Adding a factor voids every trusted browser of the member, the one that
// made the change included, as a password change or a factor removal does
// (DESIGN: "void after any … factor change"; issue 12, defect 9): a key,
// an authenticator app, and new recovery codes.
func TestTrustedDeviceVoidedByFactorAdded(t *testing.T) {
	t.Parallel()
	voided := func(t *testing.T, env *apptest.Env, c *apptest.Client, u db.User, reason string) {
		t.Helper()
		if n := queryInt(t, env, `SELECT COUNT(*) FROM trusted_devices WHERE user_id = ? AND revoked_reason = ?`, u.ID, reason); n != 1 {
			t.Errorf("%d devices voided as %s, want 1", n, reason)
		}
		if signInAgain(t, c, "acme", "alice@acme.test", pw) {
			t.Fatal("the trusted browser skipped the challenge after a factor was added")
		}
	}
	t.Run("KeyAdded", func(t *testing.T) {
		env, _, alice := waSetup(t)
		setTrustedDays(t, env, "acme", trustDays)
		secret, _, tok := enrollAPI(t, env, "acme", "alice@acme.test", pw)
		c := env.Client()
		trustBrowser(t, env, c, "acme", "alice@acme.test", pw, secret)
		register(t, env, "acme", tok, "YubiKey", virtualwebauthn.AuthenticatorOptions{})
		voided(t, env, c, alice, db.TrustedVoidedFactorAdded)
	})
	t.Run("TOTPAdded", func(t *testing.T) {
		env, _, alice := waSetup(t)
		setTrustedDays(t, env, "acme", trustDays)
		k, res := register(t, env, "acme", env.Client().APILogin("acme", "alice@acme.test", pw), "YubiKey", virtualwebauthn.AuthenticatorOptions{})
		tok := rotated(t, res)
		c := env.Client()
		c.Login("acme", "alice@acme.test", pw)
		if res := pageAssertion(t, c, "/t/acme/login/mfa/webauthn/begin", "/t/acme/login/mfa/webauthn/finish?next=/t/acme/account&trust_device=1", k); res.StatusCode != http.StatusOK {
			t.Fatalf("key challenge with trust = %d %s", res.StatusCode, res.Body)
		}
		res = c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil)
		secret, _ := res.JSON()["secret"].(string)
		if res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", tok, map[string]string{"code": nowCode(t, env, secret)}); res.StatusCode != http.StatusOK {
			t.Fatalf("verify-setup = %d %s", res.StatusCode, res.Body)
		}
		voided(t, env, c, alice, db.TrustedVoidedFactorAdded)
	})
	t.Run("RecoveryCodesRegenerated", func(t *testing.T) {
		te := trustSetup(t)
		c := te.env.Client()
		trustBrowser(t, te.env, c, "acme", "alice@acme.test", pw, te.secret)
		// The trusted browser itself, fresh from its challenge.
		if res := c.PostForm("/t/acme/account/mfa/recovery-codes", nil); res.StatusCode != http.StatusOK {
			t.Fatalf("regenerate = %d %q", res.StatusCode, location(res))
		}
		voided(t, te.env, c, te.alice, db.TrustedVoidedCodesRegenerated)
	})
}
