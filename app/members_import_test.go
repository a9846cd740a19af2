package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const importPath = "/t/acme/api/v1/admin/members/import"

func importReq(c *apptest.Client, path, token, contentType, body string) *apptest.Response {
	req, _ := http.NewRequest(http.MethodPost, c.URL(path), strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	return c.Do(req)
}

func TestAdminAPIMembersImport(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	count := func(ws db.Workspace) int {
		n, err := env.Store.CountMembers(t.Context(), ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	globex, _ := env.Store.WorkspaceBySlug(t.Context(), "globex")
	before, globexBefore := count(a.acme), count(globex)

	// Bad bodies: 400 with the line, 415, 403 for an owner row; nothing written.
	for _, tc := range []struct {
		ctype, body string
		status      int
		want        string
	}{
		{"text/csv", "email,role\nn1@acme.test,member\nn2@acme.test,boss\n", 400, "line 3: role \"boss\""},
		{"text/csv", "email,role\nn1@acme.test,member\nN1@acme.test,member\n", 400, "line 3: N1@acme.test is already on line 2"},
		{"application/x-ndjson", `{"email":"n1@acme.test","role":"member","password_hash":"plain"}`, 400, "line 1: password_hash: not a PHC argon2id hash"},
		{"text/csv", "", 400, "the file has no members"},
		{"application/json", `{"email":"n1@acme.test","role":"member"}`, 415, "unsupported_media_type"},
		{"text/csv", "email,role\nn1@acme.test,owner\n", 403, "owner_only"},
	} {
		res := importReq(a.c, importPath, a.token, tc.ctype, tc.body)
		if got := string(res.Body) + " " + fmt.Sprint(res.JSON()["message"]); res.StatusCode != tc.status || !strings.Contains(got, tc.want) {
			t.Errorf("import %q = %d %s, want %d with %q", tc.body, res.StatusCode, res.Body, tc.status, tc.want)
		}
		if tc.status == 400 && res.JSON()["error"] != "invalid_import" {
			t.Errorf("import %q: error = %v, want invalid_import", tc.body, res.JSON()["error"])
		}
	}
	big := "email,role\n" + strings.Repeat("x", 21<<20)
	if res := importReq(a.c, importPath, a.token, "text/csv", big); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("import of 21 MB = %d, want 413", res.StatusCode)
	}
	if n := count(a.acme); n != before {
		t.Fatalf("acme members after bad imports = %d, want %d", n, before)
	}

	// OK: CSV, then NDJSON; alice is already a member.
	res := importReq(a.c, importPath, a.token, "text/csv; charset=utf-8", "email,role,name\nn1@acme.test,member,N One\nalice@acme.test,admin,\n")
	if res.StatusCode != http.StatusOK || res.JSON()["imported"] != float64(1) || res.JSON()["existing"] != float64(1) || res.JSON()["without_password"] != float64(1) {
		t.Errorf("import CSV = %d %s", res.StatusCode, res.Body)
	}
	if u, _ := env.Store.UserByEmail(t.Context(), a.acme.ID, "alice@acme.test"); u.Role != db.RoleMember {
		t.Errorf("alice's role = %q after an import said admin, want member unchanged", u.Role)
	}
	res = importReq(a.c, importPath, a.token, "application/x-ndjson", `{"email":"n2@acme.test","role":"admin"}`+"\n")
	if res.StatusCode != http.StatusOK || res.JSON()["imported"] != float64(1) {
		t.Errorf("import NDJSON = %d %s", res.StatusCode, res.Body)
	}
	if n := count(a.acme); n != before+2 {
		t.Errorf("acme members = %d, want %d", n, before+2)
	}
	evs, _ := env.Store.AuditEvents(t.Context(), a.acme.ID, db.AuditFilter{Event: db.EventMembersImported, Limit: 10})
	if len(evs) != 2 || evs[0].ActorUserID != a.admin.ID {
		t.Errorf("import audit events = %+v", evs)
	}

	// Another workspace's URL with acme's token, a member's token, a stale step-up: refused, nothing written.
	if res := importReq(a.c, "/t/globex/api/v1/admin/members/import", a.token, "text/csv", "email,role\nx@globex.test,member\n"); res.StatusCode < 400 {
		t.Errorf("import into globex with acme's token = %d", res.StatusCode)
	}
	_, _, aliceToken := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	if res := importReq(a.c, importPath, aliceToken, "text/csv", "email,role\nx@acme.test,member\n"); res.StatusCode != http.StatusForbidden {
		t.Errorf("import by a member = %d, want 403", res.StatusCode)
	}
	env.Clock.Advance(11 * time.Minute)
	res = importReq(a.c, importPath, a.token, "text/csv", "email,role\nlate@acme.test,member\n")
	if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
		t.Errorf("import without step-up = %d %s", res.StatusCode, res.Body)
	}
	if n, g := count(a.acme), count(globex); n != before+2 || g != globexBefore {
		t.Errorf("members after refused imports: acme %d, globex %d; want %d, %d", n, g, before+2, globexBefore)
	}
}
