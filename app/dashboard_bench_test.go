package app_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// Page-level benchmarks of the admin console at 100,000 members: a GET with
// an admin's session through the whole Echo stack (middleware, session and
// tenant loads, handler, store, templ), served by calling the server's
// ServeHTTP into a recorder, so ns/op is the server's time alone, without
// the client or the socket. See docs/BENCHMARKS.md.
func BenchmarkAdminPages100k(b *testing.B) {
	env, c := benchEnv(b)
	ws, err := env.Store.WorkspaceBySlug(b.Context(), "acme")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	dbtest.Members(b, env.Store, ws.ID, 100_000, env.Clock.Now())
	b.Logf("fixture of 100,000 members: %s", time.Since(start).Round(time.Millisecond))
	// A workspace older than the chart's 90 days, and an admin signed in
	// with a password (the policy is optional, so no second step).
	if _, err := env.Store.DB().Exec(`UPDATE workspaces SET created_at = ? WHERE id = ?`, env.Clock.Now().AddDate(0, 0, -200).Unix(), ws.ID); err != nil {
		b.Fatal(err)
	}
	env.User(ws, "admin@acme.test", db.RoleAdmin, benchPassword)
	c.Login("acme", "admin@acme.test", benchPassword)
	base, _ := url.Parse(c.URL("/"))
	cookies := c.Jar.Cookies(base)

	for _, bc := range []struct{ name, path, want string }{
		{"Dashboard", "/t/acme/admin", `data-testid="chart"`},
		{"Members", "/t/acme/admin/members", `data-testid="members"`},
		{"MembersLater", "/t/acme/admin/members?after=user1090000%40bench.test", `data-testid="members"`},
		{"MembersPastDeadline", "/t/acme/admin/members?status=past_deadline", `data-testid="members"`},
		{"MembersLowCodes", "/t/acme/admin/members?status=low_recovery_codes", `data-testid="members"`},
		{"MembersSearchEmail", "/t/acme/admin/members?q=user10900", `data-testid="members"`},
		{"MembersSearchName", "/t/acme/admin/members?q=MEMBER+90001", `data-testid="members"`},
		{"MembersSearchMiss", "/t/acme/admin/members?q=nobody-matches", `data-testid="members"`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			get := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodGet, c.URL(bc.path), nil)
				for _, ck := range cookies {
					req.AddCookie(ck)
				}
				rec := httptest.NewRecorder()
				env.Server.ServeHTTP(rec, req)
				return rec
			}
			if rec := get(); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), bc.want) {
				b.Fatalf("GET %s = %d\n%.500s", bc.path, rec.Code, rec.Body.String())
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if rec := get(); rec.Code != http.StatusOK {
					b.Fatalf("GET %s = %d", bc.path, rec.Code)
				}
			}
			reportCPU(b, cpu)
		})
	}
}
