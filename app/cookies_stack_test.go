package app_test

import (
	"net/http"
	"testing"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// A workspace whose slug spells a fixed cookie's name ("csrf": reserved
// now, but an installation may hold one from before) keeps its session
// and the CSRF token apart: the token rendered into every form is not a
// session token (issue 12, defect 5).
func TestCookieWorkspaceNamedCSRF(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	// Straight into the table: the store refuses the slug today.
	if _, err := env.Store.DB().Exec(`INSERT INTO workspaces (slug, name, created_at) VALUES ('csrf', 'CSRF', ?)`, env.Clock.Now().Unix()); err != nil {
		t.Fatal(err)
	}
	ws := db.Workspace{}
	if err := env.Store.DB().QueryRow(`SELECT id FROM workspaces WHERE slug = 'csrf'`).Scan(&ws.ID); err != nil {
		t.Fatal(err)
	}
	env.User(ws, "alice@csrf.test", db.RoleMember, pw)

	c := env.Client()
	c.Login("csrf", "alice@csrf.test", pw)
	res := c.Get("/t/csrf/account")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET account after sign-in = %d", res.StatusCode)
	}
	field, ok := res.Doc().Find(`input[name=_csrf]`).First().Attr("value")
	if !ok || field == "" {
		t.Fatal("no _csrf field on the account page")
	}
	if res := env.Client().API(http.MethodGet, "/t/csrf/api/v1/session", field, nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the _csrf field rendered into forms works as a session token: GET session = %d", res.StatusCode)
	}
	// Both still do their jobs: the form posts, and signs the member out.
	res = c.PostForm("/t/csrf/logout", nil)
	if res.StatusCode != http.StatusSeeOther || location(res) != "/t/csrf/login?notice=signed_out" {
		t.Fatalf("sign out = %d %q", res.StatusCode, location(res))
	}
}
