package app_test

// The support console's foundation (issue 6): staff are created with an
// enrollment link, enroll an authenticator app through it (pages and API)
// before their first sign-in, never hold a session below aal2, live apart
// from every workspace (sessions, tokens, routes), and find members by
// email across workspaces without seeing a secret.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
)

const staffPW = "staff password 1"

// newStaff creates a staff member and returns their enrollment token.
func newStaff(t *testing.T, env *apptest.Env, email string, lead bool) (db.User, string) {
	t.Helper()
	hash, err := auth.NewHasher(env.Config.PasswordHash).Hash(context.Background(), staffPW)
	if err != nil {
		t.Fatal(err)
	}
	role := db.StaffRole
	if lead {
		role = db.LeadRole
	}
	token := auth.NewToken()
	u, err := env.Store.CreateStaff(context.Background(), email, role, hash, app.StaffEnrollmentHash(env.Keys, token), env.Clock.Now().Add(app.StaffEnrollmentTTL))
	if err != nil {
		t.Fatal(err)
	}
	return u, token
}

// enrollStaff enrolls an authenticator app with the token through the API
// and returns its secret.
func enrollStaff(t *testing.T, env *apptest.Env, token string) string {
	t.Helper()
	c := env.Client()
	res := c.API(http.MethodPost, "/support/api/v1/enroll/totp/setup", "", map[string]string{"enrollment_token": token})
	secret, _ := res.JSON()["secret"].(string)
	if res.StatusCode != http.StatusOK || secret == "" {
		t.Fatalf("staff enroll setup = %d %s", res.StatusCode, res.Body)
	}
	res = c.API(http.MethodPost, "/support/api/v1/enroll/totp/verify", "", map[string]string{"enrollment_token": token, "code": nowCode(t, env, secret)})
	if res.StatusCode != http.StatusOK || res.JSON()["enabled"] != true {
		t.Fatalf("staff enroll verify = %d %s", res.StatusCode, res.Body)
	}
	return secret
}

// staffPage signs a staff member in through the pages.
func staffPage(t *testing.T, env *apptest.Env, email, secret string) *apptest.Client {
	t.Helper()
	c := env.Client()
	res := c.PostForm("/support/login", url.Values{"email": {email}, "password": {staffPW}})
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/support/login/mfa") {
		t.Fatalf("staff password step = %d %q", res.StatusCode, loc)
	}
	res = c.PostForm("/support/login/mfa", url.Values{"code": {nextCode(t, env, secret)}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/support/members" {
		t.Fatalf("staff challenge = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	return c
}

// staffToken signs a staff member in through the API (two steps).
func staffToken(t *testing.T, env *apptest.Env, email, secret string) string {
	t.Helper()
	c := env.Client()
	res := c.API(http.MethodPost, "/support/api/v1/login", "", map[string]string{"email": email, "password": staffPW})
	mt, _ := res.JSON()["mfa_token"].(string)
	if res.StatusCode != http.StatusOK || mt == "" {
		t.Fatalf("staff API login = %d %s", res.StatusCode, res.Body)
	}
	res = c.API(http.MethodPost, "/support/api/v1/login/mfa", "", map[string]string{"mfa_token": mt, "code": nextCode(t, env, secret)})
	tok, _ := res.JSON()["session_token"].(string)
	if res.StatusCode != http.StatusOK || tok == "" || res.JSON()["aal"] != "aal2" {
		t.Fatalf("staff API challenge = %d %s", res.StatusCode, res.Body)
	}
	return tok
}

func TestStaffEnrollmentPages(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	staff, token := newStaff(t, env, "sam@gatehouse.test", false)
	c := env.Client()
	link := "/support/enroll/" + token

	// Following the link changes nothing.
	res := c.Get(link)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(res.Body), "sam@gatehouse.test") {
		t.Fatalf("enrollment page = %d", res.StatusCode)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM totp_credentials WHERE user_id = ?`, staff.ID); n != 0 {
		t.Fatalf("GET made %d credentials", n)
	}
	flipped := token[:42] + map[bool]string{true: "B", false: "A"}[token[42] == 'A']
	for _, bad := range []string{"nope", flipped, strings.Repeat("A", 43)} {
		if res := c.Get("/support/enroll/" + bad); res.StatusCode == http.StatusOK || strings.Contains(string(res.Body), "sam@") {
			t.Errorf("bad link %q = %d (mentions the staff member: %v)", bad, res.StatusCode, strings.Contains(string(res.Body), "sam@"))
		}
	}

	res = c.PostForm(link, nil)
	secret := strings.ReplaceAll(res.Doc().Find("[data-testid=totp-secret]").Text(), " ", "")
	if res.StatusCode != http.StatusOK || secret == "" {
		t.Fatalf("start = %d, secret %q", res.StatusCode, secret)
	}
	if res := c.PostForm(link+"/totp", url.Values{"code": {wrongCode(t, env, secret)}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code = %d", res.StatusCode)
	}
	res = c.PostForm(link+"/totp", url.Values{"code": {nowCode(t, env, secret)}})
	if res.StatusCode != http.StatusOK || res.Doc().Find("[data-testid=recovery-codes] li").Length() != 10 {
		t.Fatalf("right code = %d %s", res.StatusCode, res.Body)
	}
	// The link is spent.
	if res := c.Get(link); res.StatusCode == http.StatusOK {
		t.Errorf("spent link = %d", res.StatusCode)
	}
	if res := c.PostForm(link, nil); res.StatusCode == http.StatusOK {
		t.Errorf("restarting with a spent link = %d", res.StatusCode)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE event = ? AND subject_user_id = ?`, db.EventStaffEnrolled, staff.ID); n != 1 {
		t.Errorf("%d staff.enrolled events", n)
	}

	// Sign in: password, then the app, then the console.
	sc := staffPage(t, env, "sam@gatehouse.test", secret)
	res = sc.Get("/support/members")
	if res.StatusCode != http.StatusOK || res.Doc().Find("form[role=search]").Length() != 1 {
		t.Fatalf("console = %d", res.StatusCode)
	}
	if res.Doc().Find(`a[href="/support/admin"]`).Length() != 0 {
		t.Error("the console links to an admin console")
	}
}

func TestStaffEnrollmentAPI(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	_, token := newStaff(t, env, "sam@gatehouse.test", false)
	c := env.Client()
	for _, bad := range []any{map[string]string{"enrollment_token": "x"}, map[string]string{}, map[string]string{"enrollment_token": strings.Repeat("A", 43)}} {
		res := c.API(http.MethodPost, "/support/api/v1/enroll/totp/setup", "", bad)
		if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_enrollment_token" {
			t.Errorf("setup with %v = %d %s", bad, res.StatusCode, res.Body)
		}
	}
	res := c.API(http.MethodPost, "/support/api/v1/enroll/totp/setup", "", map[string]string{"enrollment_token": token})
	secret, _ := res.JSON()["secret"].(string)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.JSON()["otpauth_uri"].(string), "otpauth://totp/") {
		t.Fatalf("setup = %d %s", res.StatusCode, res.Body)
	}
	if res := c.API(http.MethodPost, "/support/api/v1/enroll/totp/verify", "", map[string]string{"enrollment_token": token, "code": wrongCode(t, env, secret)}); res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_code" {
		t.Errorf("wrong code = %d %s", res.StatusCode, res.Body)
	}
	res = c.API(http.MethodPost, "/support/api/v1/enroll/totp/verify", "", map[string]string{"enrollment_token": token, "code": nowCode(t, env, secret)})
	if codes, _ := res.JSON()["recovery_codes"].([]any); res.StatusCode != http.StatusOK || len(codes) != 10 {
		t.Fatalf("verify = %d %s", res.StatusCode, res.Body)
	}
	for _, path := range []string{"setup", "verify"} {
		res := c.API(http.MethodPost, "/support/api/v1/enroll/totp/"+path, "", map[string]string{"enrollment_token": token, "code": nextCode(t, env, secret)})
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a spent token = %d %s", path, res.StatusCode, res.Body)
		}
	}
	staffToken(t, env, "sam@gatehouse.test", secret)

	// An expired link is refused, and says nothing more.
	_, late := newStaff(t, env, "late@gatehouse.test", false)
	env.Clock.Advance(app.StaffEnrollmentTTL + time.Second)
	res = c.API(http.MethodPost, "/support/api/v1/enroll/totp/setup", "", map[string]string{"enrollment_token": late})
	if res.StatusCode != http.StatusUnauthorized || strings.Contains(string(res.Body), "late@") {
		t.Errorf("expired link = %d %s", res.StatusCode, res.Body)
	}
}

// A staff member without a second factor gets no session at all.
func TestStaffNoSessionBelowAAL2(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	newStaff(t, env, "sam@gatehouse.test", false)
	c := env.Client()
	res := c.PostForm("/support/login", url.Values{"email": {"sam@gatehouse.test"}, "password": {staffPW}})
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(res.Body), "enrollment link") {
		t.Errorf("page sign-in without a factor = %d", res.StatusCode)
	}
	if res := c.Get("/support/account"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/support/login") {
		t.Errorf("after a refused sign-in the account page = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	res = c.API(http.MethodPost, "/support/api/v1/login", "", map[string]string{"email": "sam@gatehouse.test", "password": staffPW})
	if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "mfa_enrollment_required" || res.JSON()["session_token"] != nil {
		t.Errorf("API sign-in without a factor = %d %s", res.StatusCode, res.Body)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM user_sessions s JOIN workspaces w ON w.id = s.workspace_id WHERE w.platform = 1`); n != 0 {
		t.Errorf("%d staff sessions exist", n)
	}
}

// The console and the workspaces share nothing: sessions, tokens, routes.
func TestSupportApartFromWorkspaces(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	_, token := newStaff(t, env, "alice@acme.test", false) // the same address as acme's alice
	secret := enrollStaff(t, env, token)
	staff := staffPage(t, env, "alice@acme.test", secret)
	staffTok := staffToken(t, env, "alice@acme.test", secret)

	member := env.Client()
	member.Login("acme", "alice@acme.test", pw)
	memberTok := member.APILogin("acme", "alice@acme.test", pw)

	if res := member.Get("/support/members"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/support/login") {
		t.Errorf("member's browser at the console = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := member.API(http.MethodGet, "/support/api/v1/members?email=alice@acme.test", memberTok, nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("member token at the support API = %d", res.StatusCode)
	}
	if res := staff.Get("/t/acme/account"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login") {
		t.Errorf("staff browser in acme = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := staff.API(http.MethodGet, "/t/acme/api/v1/session", staffTok, nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("staff token in acme = %d", res.StatusCode)
	}
	// The staff password is not acme alice's and the other way round.
	if res := env.Client().PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {staffPW}}); res.StatusCode == http.StatusSeeOther {
		t.Error("the staff password signs in to acme")
	}
	// Routes that do not exist on the other side.
	for _, path := range []string{"/support/admin", "/support/admin/members", "/support/admin/settings/security", "/support/account/enroll", "/support/invite/" + strings.Repeat("A", 43),
		"/t/_support/login", "/t/_support/members", "/t/acme/members", "/t/acme/enroll/" + token, "/support/api/v1/mfa", "/support/api/v1/admin/policy"} {
		if res := staff.Get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, res.StatusCode)
		}
	}
	if res := staff.API(http.MethodGet, "/support/api/v1/admin/members", staffTok, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("support admin API = %d, want 404", res.StatusCode)
	}
	if _, err := env.Store.WorkspaceBySlug(context.Background(), db.PlatformSlug); err == nil {
		t.Error("the platform workspace is found as a customer workspace")
	}
	// Staff keep their last factor.
	res := staff.PostForm("/support/account/mfa/totp/remove", url.Values{"code": {nextCode(t, env, secret)}})
	if res.StatusCode < 400 {
		t.Errorf("removing the staff member's only factor = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM totp_credentials t JOIN workspaces w ON w.id = t.workspace_id WHERE w.platform = 1 AND t.confirmed_at IS NOT NULL`); n != 1 {
		t.Errorf("staff has %d apps, want 1", n)
	}
}

func TestSupportMemberSearch(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	_, token := newStaff(t, env, "alice@acme.test", false)
	secret := enrollStaff(t, env, token)
	staff := staffPage(t, env, "alice@acme.test", secret)
	tok := staffToken(t, env, "alice@acme.test", secret)

	res := staff.API(http.MethodGet, "/support/api/v1/members?email="+url.QueryEscape("ALICE@acme.test"), tok, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("search = %d %s", res.StatusCode, res.Body)
	}
	found := map[string]map[string]any{}
	for _, m := range res.JSON()["members"].([]any) {
		mm := m.(map[string]any)
		found[mm["workspace"].(string)] = mm
	}
	if len(found) != 2 || found[db.PlatformSlug] != nil {
		t.Fatalf("found %v, want acme's and globex's alice only", found)
	}
	if a := found["acme"]; fmt.Sprint(a["factors"]) != "[totp]" || a["recovery_codes_remaining"] != float64(10) {
		t.Errorf("acme's alice = %v", a)
	}
	if g := found["globex"]; fmt.Sprint(g["factors"]) != "[]" {
		t.Errorf("globex's alice = %v", g)
	}
	for _, secretish := range []string{"secret", "hash", "phone", "otpauth"} {
		if strings.Contains(string(res.Body), secretish) {
			t.Errorf("search answer mentions %q: %s", secretish, res.Body)
		}
	}
	page := staff.Get("/support/members?email=alice%40acme.test")
	if page.StatusCode != http.StatusOK || page.Doc().Find("[data-testid=support-results] tbody tr").Length() != 2 {
		t.Errorf("search page = %d %s", page.StatusCode, page.Body)
	}
	if res := staff.Get("/support/members?email=nobody%40acme.test"); res.Doc().Find("[data-testid=support-none]").Length() != 1 {
		t.Error("an address nobody has shows no 'none' message")
	}
	if res := staff.API(http.MethodGet, "/support/api/v1/members?email=not-an-address", tok, nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("bad address = %d", res.StatusCode)
	}
	// Audited in the platform's trail, never in acme's.
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events e JOIN workspaces w ON w.id = e.workspace_id WHERE w.platform = 1 AND e.event = ?`, db.EventSupportMemberSearch); n != 3 {
		t.Errorf("%d searches audited, want 3", n)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, acme.ID, db.EventSupportMemberSearch); n != 0 {
		t.Errorf("acme's trail has %d searches", n)
	}
	// Rate limited per staff member.
	limited := false
	for range 70 {
		if res := staff.API(http.MethodGet, "/support/api/v1/members?email=bob%40acme.test", tok, nil); res.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("70 searches in a row were never limited")
	}
}
