package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// adminSetup is acme with alice and an admin, signed in with the password
// only: enough to read the console.
func adminSetup(t *testing.T) (*apptest.Env, db.Workspace, *apptest.Client) {
	t.Helper()
	env, acme, _ := setup(t)
	env.User(acme, "admin@acme.test", db.RoleAdmin, "admin password 1")
	c := env.Client()
	c.Login("acme", "admin@acme.test", "admin password 1")
	return env, acme, c
}

// inviterSetup is acme with alice and an admin signed in at aal2 just now:
// every admin change, an invitation included, asks for a fresh second
// factor. The enrollment's notice is taken out of the outbox.
func inviterSetup(t *testing.T) (*apptest.Env, db.Workspace, *apptest.Client) {
	t.Helper()
	env, acme, _ := setup(t)
	env.User(acme, "admin@acme.test", db.RoleAdmin, "admin password 1")
	c := aal2Page(t, env, "acme", "admin@acme.test", "admin password 1")
	if _, err := env.Store.DB().Exec(`DELETE FROM outbox`); err != nil {
		t.Fatal(err)
	}
	return env, acme, c
}

// aal2Page enrolls the member's authenticator app and signs them in on the
// page with it: a browser at aal2 with a fresh step-up.
func aal2Page(t *testing.T, env *apptest.Env, slug, email, password string) *apptest.Client {
	t.Helper()
	secret, _, _ := enrollAPI(t, env, slug, email, password)
	c := pendingPage(t, env, slug, email, password)
	if res := challengeWith(env, c, slug, nextCode(t, env, secret)); !passed(res, slug) {
		t.Fatalf("challenge of %s = %d %q", email, res.StatusCode, res.Header.Get("Location"))
	}
	return c
}

func TestAdminNeedsAdminRole(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	if res := c.Get("/t/acme/admin"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("member GET admin = %d, want 403", res.StatusCode)
	}
	if res := c.PostForm("/t/acme/admin/invitations", url.Values{"email": {"x@acme.test"}, "role": {"member"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("member POST invitation = %d, want 403", res.StatusCode)
	}
	if n := countRows(t, env, "invitations"); n != 0 {
		t.Fatalf("%d invitations after a refused post", n)
	}
	if res := c.Get("/t/acme/account"); strings.Contains(string(res.Body), `href="/t/acme/admin"`) {
		t.Error("a member's header links to the admin console")
	}
}

// An admin of one workspace has nothing in another.
func TestAdminCrossWorkspace(t *testing.T) {
	t.Parallel()
	env, _, c := adminSetup(t)
	if res := c.Get("/t/globex/admin"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("acme admin GET globex admin = %d, want a redirect to globex sign-in", res.StatusCode)
	}
	c.SetCookie("gh_s_globex", c.Cookie("gh_s_acme"))
	if res := c.PostForm("/t/globex/admin/invitations", url.Values{"email": {"x@globex.test"}, "role": {"owner"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("acme admin inviting into globex = %d, want a redirect to sign-in", res.StatusCode)
	}
	if n := countRows(t, env, "invitations"); n != 0 {
		t.Fatalf("%d invitations created across workspaces", n)
	}
	// The member list shows only the workspace's own members.
	body := string(c.Get("/t/acme/admin/members").Body)
	if strings.Count(body, "alice@acme.test") != 1 {
		t.Errorf("acme's list shows alice %d times (globex has an alice too)", strings.Count(body, "alice@acme.test"))
	}
}

func countRows(t *testing.T, env *apptest.Env, table string) int {
	t.Helper()
	var n int
	if err := env.Store.DB().QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAdminMembersPagedAndSearch(t *testing.T) {
	t.Parallel()
	env, acme, c := adminSetup(t)
	for i := range 120 {
		if _, err := env.Store.CreateUser(context.Background(), acme.ID, fmt.Sprintf("user%03d@acme.test", i), db.RoleMember, "x", db.Meta{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	env.User(acme, "under_score@acme.test", db.RoleMember, "pw pw pw pw")
	env.User(acme, "percent%sign@acme.test", db.RoleMember, "pw pw pw pw")
	seen := map[string]bool{}
	path := "/t/acme/admin/members"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		doc := c.Get(path).Doc()
		doc.Find("[data-testid=members] tbody tr td:first-child").Each(func(_ int, s *goquery.Selection) {
			if seen[s.Text()] {
				t.Errorf("%s listed twice", s.Text())
			}
			seen[s.Text()] = true
		})
		path, _ = doc.Find(`a[rel=next]`).Attr("href")
	}
	if len(seen) != 124 { // alice, admin, 120 users and 2 more
		t.Fatalf("paging showed %d members, want 124", len(seen))
	}
	for q, want := range map[string][]string{
		"user11":  {"user110@acme.test", "user111@acme.test", "user112@acme.test", "user113@acme.test", "user114@acme.test", "user115@acme.test", "user116@acme.test", "user117@acme.test", "user118@acme.test", "user119@acme.test"},
		"_":       {"under_score@acme.test"},
		"%":       {"percent%sign@acme.test"},
		"ALICE":   {"alice@acme.test"},
		"' OR 1=": {"No members match."},
	} {
		var got []string
		c.Get("/t/acme/admin/members?q=" + url.QueryEscape(q)).Doc().Find("[data-testid=members] tbody tr td:first-child").Each(func(_ int, s *goquery.Selection) {
			got = append(got, s.Text())
		})
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("search %q = %v, want %v", q, got, want)
		}
	}
}

var linkRE = regexp.MustCompile(`https?://\S+/invite/[A-Za-z0-9_-]{43}`)

// invite sends an invitation through the admin form and returns the link
// from the queued email.
func invite(t *testing.T, env *apptest.Env, c *apptest.Client, email, role string) string {
	t.Helper()
	res := c.PostForm("/t/acme/admin/invitations", url.Values{"email": {email}, "role": {role}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("invite %s = %d: %s", email, res.StatusCode, res.Body)
	}
	all, err := env.Store.OutboxMessages(context.Background(), 1)
	var msgs []db.OutboxMessage
	for _, m := range all {
		if m.Kind == "invitation" {
			msgs = append(msgs, m)
		}
	}
	if err != nil || len(msgs) != 1 || msgs[0].To != email {
		t.Fatalf("invitations in the outbox = %+v, %v", msgs, err)
	}
	link := linkRE.FindString(msgs[0].Text)
	if link == "" || !strings.Contains(msgs[0].HTML, link) {
		t.Fatalf("no invitation link in %q", msgs[0].Text)
	}
	if !strings.HasPrefix(link, env.Config.BaseURL.String()+"/t/acme/invite/") {
		t.Fatalf("link %q is not absolute on the base URL", link)
	}
	return strings.TrimPrefix(link, env.Config.BaseURL.String())
}

func accept(c *apptest.Client, path, password string) *apptest.Response {
	return c.PostForm(path, url.Values{"password": {password}, "confirm_password": {password}})
}

func TestInvitation(t *testing.T) {
	t.Parallel()
	env, acme, admin := inviterSetup(t)
	path := invite(t, env, admin, "newbie@acme.test", db.RoleMember)

	// The token is stored only as a keyed hash.
	token := path[strings.LastIndexByte(path, '/')+1:]
	var n int
	env.Store.DB().QueryRow(`SELECT COUNT(*) FROM invitations WHERE token_hash = ?`, token).Scan(&n)
	if n != 0 {
		t.Fatal("the invitation token is stored in the clear")
	}

	// Opening the link changes nothing (mail scanners follow links).
	invitee := env.Client()
	for range 2 {
		res := invitee.Get(path)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(res.Body), "newbie@acme.test") {
			t.Fatalf("GET invitation = %d", res.StatusCode)
		}
	}
	// Bad passwords keep the invitation usable.
	if res := invitee.PostForm(path, url.Values{"password": {"short"}, "confirm_password": {"short"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("short password = %d, want 422", res.StatusCode)
	}
	if res := invitee.PostForm(path, url.Values{"password": {"long enough 1"}, "confirm_password": {"long enough 2"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("mismatched passwords = %d, want 422", res.StatusCode)
	}
	res := accept(invitee, path, "newbie password")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account?notice=welcome" {
		t.Fatalf("accept = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if !signedIn(t, invitee, "acme") {
		t.Fatal("accepting did not sign the member in")
	}
	u, err := env.Store.UserByEmail(context.Background(), acme.ID, "newbie@acme.test")
	if err != nil || u.Role != db.RoleMember {
		t.Fatalf("new member = %+v, %v", u, err)
	}
	// Single use.
	again := env.Client()
	if res := again.Get(path); res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET used invitation = %d, want 404", res.StatusCode)
	}
	if res := accept(again, path, "attacker password"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("reusing the invitation = %d, want 404", res.StatusCode)
	}
	env.Client().Login("acme", "newbie@acme.test", "newbie password")
	// Inviting an existing member is refused.
	if res := admin.PostForm("/t/acme/admin/invitations", url.Values{"email": {"NEWBIE@acme.test"}, "role": {"member"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("inviting a member = %d, want 422", res.StatusCode)
	}
}

func TestInvitationExpiresAndIsScoped(t *testing.T) {
	t.Parallel()
	env, _, admin := inviterSetup(t)
	path := invite(t, env, admin, "late@acme.test", db.RoleMember)
	// The acme token used on globex's path is nothing.
	if res := accept(env.Client(), strings.Replace(path, "/t/acme/", "/t/globex/", 1), "late password 1"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("acme invitation on globex = %d, want 404", res.StatusCode)
	}
	env.Clock.Advance(7*24*time.Hour + time.Second)
	if res := env.Client().Get(path); res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET expired invitation = %d, want 404", res.StatusCode)
	}
	if res := accept(env.Client(), path, "late password 1"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("accept expired invitation = %d, want 404", res.StatusCode)
	}
	for _, bad := range []string{"/t/acme/invite/short", "/t/acme/invite/" + strings.Repeat("A", 43), "/t/acme/invite/" + url.PathEscape(strings.Repeat("é", 20))} {
		if res := env.Client().Get(bad); res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 404", bad, res.StatusCode)
		}
	}
}

// Two people racing with one invitation: exactly one account.
func TestInvitationRace(t *testing.T) {
	t.Parallel()
	env, acme, admin := inviterSetup(t)
	path := invite(t, env, admin, "race@acme.test", db.RoleAdmin)
	clients := make([]*apptest.Client, 10)
	for i := range clients {
		clients[i] = env.Client()
		clients[i].CSRF()
	}
	var wg sync.WaitGroup
	codes := make([]int, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = accept(c, path, fmt.Sprintf("racer password %d", i)).StatusCode
		}()
	}
	wg.Wait()
	won := 0
	for _, code := range codes {
		switch code {
		case http.StatusSeeOther:
			won++
		case http.StatusNotFound:
		default:
			t.Errorf("racing accept = %d", code)
		}
	}
	if won != 1 {
		t.Fatalf("%d acceptances won, want exactly 1 (codes %v)", won, codes)
	}
	var n int
	env.Store.DB().QueryRow(`SELECT COUNT(*) FROM users WHERE workspace_id = ? AND email_key = 'race@acme.test'`, acme.ID).Scan(&n)
	if n != 1 {
		t.Fatalf("%d accounts for race@acme.test", n)
	}
}

func TestInvitationFormValidation(t *testing.T) {
	t.Parallel()
	env, _, admin := inviterSetup(t)
	for name, f := range map[string]url.Values{
		"NoEmail":      {"role": {"member"}},
		"BadEmail":     {"email": {"not-an-email"}, "role": {"member"}},
		"DisplayName":  {"email": {"Eve <eve@evil.test>"}, "role": {"member"}},
		"LongEmail":    {"email": {strings.Repeat("a", 300) + "@acme.test"}, "role": {"member"}},
		"BadRole":      {"email": {"x@acme.test"}, "role": {"superuser"}},
		"AdminToOwner": {"email": {"x@acme.test"}, "role": {"owner"}},
		"Header":       {"email": {"x@acme.test\r\nBcc: all@evil.test"}, "role": {"member"}},
	} {
		res := admin.PostForm("/t/acme/admin/invitations", f)
		if res.StatusCode != http.StatusUnprocessableEntity || res.Doc().Find(".field-error").Length() == 0 {
			t.Errorf("%s: %d, want 422 with a field error", name, res.StatusCode)
		}
	}
	if n := countRows(t, env, "invitations") + countRows(t, env, "outbox"); n != 0 {
		t.Fatalf("invalid invitations left %d rows", n)
	}
	// The typed email is kept.
	res := admin.PostForm("/t/acme/admin/invitations", url.Values{"email": {"typo@acme"}, "role": {"member"}})
	if v, _ := res.Doc().Find("#email").Attr("value"); v != "typo@acme" {
		t.Errorf("email field = %q, want the typed value", v)
	}
}
