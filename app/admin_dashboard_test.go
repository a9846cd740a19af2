package app_test

// The dashboard, the policy-aware members list and extending a member's
// deadline, through the whole stack on real SQLite.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/db"
)

// policyEnv is acme under "required" with authenticator apps only (14
// days' grace): admin is enrolled with 2 unused recovery codes (low), alice
// is in grace, bob past his deadline, carol holds only a security key
// row (a method the policy does not allow: in grace, not no_mfa).
type policyEnv struct {
	adminEnv
	bob, carol db.User
}

func policySetup(t *testing.T) policyEnv {
	t.Helper()
	a := aal2AdminSetup(t)
	env, ctx := a.env, context.Background()
	bob := env.User(a.acme, "bob@acme.test", db.RoleMember, pw)
	carol := env.User(a.acme, "carol@acme.test", db.RoleMember, pw)
	p := db.Policy{Mode: db.PolicyRequired, Methods: []string{db.MethodTOTP}, GraceDays: 14, ReminderDays: []int{7, 3, 1}}
	if _, _, err := env.Store.SetPolicy(ctx, a.acme.ID, a.admin.ID, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	now := env.Clock.Now().Unix()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		// bob's deadline passed an hour ago (as if the policy had been set 15 days back).
		{`UPDATE users SET mfa_deadline = ? WHERE id = ?`, []any{now - 3600, bob.ID}},
		{`INSERT INTO webauthn_credentials (workspace_id, user_id, credential_id, public_key, name, sign_count, created_at)
			VALUES (?, ?, ?, ?, 'key', 0, ?)`, []any{a.acme.ID, carol.ID, []byte{1}, []byte{2}, now}},
		{`UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND id NOT IN (SELECT id FROM recovery_codes WHERE user_id = ? LIMIT 2)`,
			[]any{now, a.admin.ID, a.admin.ID}},
	} {
		if _, err := env.Store.DB().Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	// Factor rows written behind the store's back: its summary is
	// recounted as its own methods would.
	if err := env.Store.RecountFactorSummaries(ctx, a.acme.ID); err != nil {
		t.Fatal(err)
	}
	return policyEnv{adminEnv: a, bob: bob, carol: carol}
}

func listEmails(t *testing.T, a policyEnv, status string) []string {
	t.Helper()
	res := a.c.Get("/t/acme/admin/members?status=" + status)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("members?status=%s = %d", status, res.StatusCode)
	}
	var got []string
	res.Doc().Find("[data-testid=members] tbody tr td:first-child a").Each(func(_ int, s *goquery.Selection) {
		got = append(got, s.Text())
	})
	return got
}

func TestAdminMembersStatusFilters(t *testing.T) {
	t.Parallel()
	a := policySetup(t)
	for status, want := range map[string][]string{
		"":                   {"admin@acme.test", "alice@acme.test", "bob@acme.test", "carol@acme.test"},
		"enrolled":           {"admin@acme.test"},
		"low_recovery_codes": {"admin@acme.test"},
		"in_grace":           {"alice@acme.test", "carol@acme.test"},
		"past_deadline":      {"bob@acme.test"},
		"no_mfa":             {"alice@acme.test", "bob@acme.test"},
	} {
		if got := listEmails(t, a, status); !slices.Equal(got, want) {
			t.Errorf("members?status=%s = %v, want %v", status, got, want)
		}
	}
	// Each row shows its status and deadline.
	doc := a.c.Get("/t/acme/admin/members").Doc()
	statuses := map[string]string{}
	doc.Find("[data-testid=members] tbody tr").Each(func(_ int, s *goquery.Selection) {
		st, _ := s.Find("td[data-status]").Attr("data-status")
		statuses[s.Find("td:first-child").Text()] = st
	})
	want := map[string]string{"admin@acme.test": "low_recovery_codes", "alice@acme.test": "in_grace", "bob@acme.test": "past_deadline", "carol@acme.test": "in_grace"}
	for k, v := range want {
		if statuses[k] != v {
			t.Errorf("list status of %s = %q, want %q", k, statuses[k], v)
		}
	}
	// The API agrees and gives the deadline.
	for status, want := range map[string][]string{"in_grace": {"alice@acme.test", "carol@acme.test"}, "past_deadline": {"bob@acme.test"}} {
		res := a.c.API(http.MethodGet, "/t/acme/api/v1/admin/members?status="+status, a.token, nil)
		var got []string
		for _, m := range res.JSON()["members"].([]any) {
			mm := m.(map[string]any)
			got = append(got, mm["email"].(string))
			if mm["status"] != status {
				t.Errorf("API %s: %s has status %v", status, mm["email"], mm["status"])
			}
			if d, _ := mm["deadline"].(string); d == "" {
				t.Errorf("API %s: %s has no deadline", status, mm["email"])
			} else if _, err := time.Parse(time.RFC3339, d); err != nil {
				t.Errorf("API deadline %q: %v", d, err)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("API status=%s = %v, want %v", status, got, want)
		}
	}
}

func TestAdminDashboard(t *testing.T) {
	t.Parallel()
	a := policySetup(t)
	res := a.c.Get("/t/acme/admin")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("dashboard = %d", res.StatusCode)
	}
	doc := res.Doc()
	for id, want := range map[string]string{
		"members": "4", "enrolled": "25%", "in_grace": "2", "past_deadline": "1", "low_recovery_codes": "1", "no_mfa": "2",
	} {
		sel := doc.Find("[data-testid=figure-" + id + "]")
		if got := strings.TrimSpace(sel.Find(".figure-value").Text()); got != want {
			t.Errorf("figure %s = %q, want %q", id, got, want)
		}
		href, _ := sel.Attr("href")
		if id != "members" && href != "/t/acme/admin/members?status="+id {
			t.Errorf("figure %s links to %q", id, href)
		}
	}
	svg := doc.Find("svg[data-testid=chart]")
	if svg.Length() != 1 || svg.Find("title").Length() != 1 || svg.Find("desc").Length() != 1 {
		t.Fatalf("no accessible SVG chart: %d svg", svg.Length())
	}
	// Today's point: 4 members, admin (app) and carol (key: any method) hold a factor.
	if desc := svg.Find("desc").Text(); !strings.Contains(desc, "to 2 of 4") {
		t.Errorf("chart summary = %q, want today's 2 of 4", desc)
	}
	last := doc.Find("[data-testid=history] tbody tr").Last().Find("td")
	if got := fmt.Sprint(last.Eq(1).Text(), "/", last.Eq(2).Text()); got != "4/2" {
		t.Errorf("history today = %s, want 4/2", got)
	}
	if doc.Find("script").FilterFunction(func(_ int, s *goquery.Selection) bool { return s.Closest("main").Length() > 0 }).Length() != 0 {
		t.Error("the dashboard has a script in main")
	}
	// alice and carol got 14 days when the policy was set; bob's passed.
	next := policyDeadline(a)
	if got := strings.Join(strings.Fields(doc.Find("[data-testid=next-deadline]").Text()), " "); got != next+" in 14 days, for the first of 2 members in grace" {
		t.Errorf("next deadline = %q, want %s in 14 days", got, next)
	}
	nav := doc.Find(`nav[aria-label="Admin console"] a`)
	var links []string
	nav.Each(func(_ int, s *goquery.Selection) { h, _ := s.Attr("href"); links = append(links, s.Text()+" "+h) })
	wantNav := []string{"Dashboard /t/acme/admin", "Members /t/acme/admin/members", "Applications /t/acme/admin/apps", "Security settings /t/acme/admin/settings/security", "Audit log /t/acme/admin/audit"}
	if !slices.Equal(links, wantNav) {
		t.Errorf("admin nav = %v, want %v", links, wantNav)
	}
	if cur := doc.Find(`nav[aria-label="Admin console"] a[aria-current=page]`).Text(); cur != "Dashboard" {
		t.Errorf("current nav = %q", cur)
	}
}

// policyDeadline is the deadline the policy gave alice and carol, as the page
// writes it.
func policyDeadline(a policyEnv) string {
	return a.env.Clock.Now().Add(14 * 24 * time.Hour).UTC().Format("2 Jan 2006 15:04 UTC")
}

// figures reads the dashboard's coverage figures.
func figures(t *testing.T, a policyEnv) map[string]string {
	t.Helper()
	res := a.c.Get("/t/acme/admin")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("dashboard = %d", res.StatusCode)
	}
	out := map[string]string{}
	res.Doc().Find("[data-testid^=figure-]").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("data-testid")
		out[strings.TrimPrefix(id, "figure-")] = strings.TrimSpace(s.Find(".figure-value").Text())
	})
	out["next-deadline"] = strings.Join(strings.Fields(res.Doc().Find("[data-testid=next-deadline]").Text()), " ")
	return out
}

// The figures are read afresh on every request: an enrollment and a reset
// show on the next reload.
func TestAdminDashboardFresh(t *testing.T) {
	t.Parallel()
	a := policySetup(t)
	ctx := context.Background()
	if got := figures(t, a); got["enrolled"] != "25%" || got["in_grace"] != "2" {
		t.Fatalf("before = %v", got)
	}
	seal := func(int64) (string, []byte) { return "k", []byte{0} }
	cred, err := a.env.Store.StartTOTPEnrollment(ctx, a.acme.ID, a.alice.ID, seal, a.env.Clock.Now().Add(time.Hour), db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.env.Store.ConfirmTOTPEnrollment(ctx, a.acme.ID, a.alice.ID, cred.ID, 1, nil, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if got := figures(t, a); got["enrolled"] != "50%" || got["in_grace"] != "1" || got["no_mfa"] != "1" {
		t.Errorf("after alice enrolls = %v", got)
	}
	if _, err := a.env.Store.ResetMFA(ctx, a.acme.ID, a.admin.ID, a.alice.ID, true, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if got := figures(t, a); got["enrolled"] != "25%" || got["in_grace"] != "2" || got["no_mfa"] != "2" {
		t.Errorf("after alice's reset = %v", got)
	}
}

// Without a deadline ahead, the row says why instead of staying empty.
func TestAdminDashboardNoNextDeadline(t *testing.T) {
	t.Parallel()
	t.Run("NoRequirement", func(t *testing.T) {
		a := policyEnv{adminEnv: aal2AdminSetup(t)}
		if got := figures(t, a)["next-deadline"]; got != "None: the policy does not require a second factor." {
			t.Errorf("next deadline = %q", got)
		}
	})
	t.Run("OnlyPastDeadline", func(t *testing.T) {
		a := policySetup(t)
		if _, err := a.env.Store.DB().Exec(`UPDATE users SET mfa_deadline = ? WHERE mfa_deadline IS NOT NULL`, a.env.Clock.Now().Unix()-60); err != nil {
			t.Fatal(err)
		}
		if got := figures(t, a)["next-deadline"]; got != "None ahead: 3 members are already past their deadline." {
			t.Errorf("next deadline = %q", got)
		}
	})
	t.Run("NobodyPending", func(t *testing.T) {
		a := policySetup(t)
		if _, err := a.env.Store.DB().Exec(`DELETE FROM users WHERE id IN (?, ?, ?)`, a.alice.ID, a.bob.ID, a.carol.ID); err != nil {
			t.Fatal(err)
		}
		if got := figures(t, a)["next-deadline"]; got != "None: everyone the requirement covers has a second factor." {
			t.Errorf("next deadline = %q", got)
		}
	})
}

func deadlineOf(t *testing.T, a policyEnv, u db.User) int64 {
	return queryInt(t, a.env, `SELECT COALESCE(mfa_deadline, 0) FROM users WHERE id = ?`, u.ID)
}

func TestAdminExtendDeadline(t *testing.T) {
	t.Parallel()
	a := policySetup(t)
	env := a.env
	before := deadlineOf(t, a, a.bob)
	t.Run("Page", func(t *testing.T) {
		for _, days := range []string{"0", "91", "x", ""} {
			res := a.c.PostForm(memberPath(a.bob, "extend-deadline"), url.Values{"days": {days}})
			if res.StatusCode != http.StatusUnprocessableEntity || deadlineOf(t, a, a.bob) != before {
				t.Errorf("extend by %q = %d, deadline %d (was %d)", days, res.StatusCode, deadlineOf(t, a, a.bob), before)
			}
		}
		res := a.c.PostForm(memberPath(a.bob, "extend-deadline"), url.Values{"days": {"7"}})
		if res.StatusCode != http.StatusSeeOther || !strings.HasSuffix(res.Header.Get("Location"), "notice=deadline_extended") {
			t.Fatalf("extend = %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		// The later of the deadline (passed) and now, plus 7 days.
		if got, want := deadlineOf(t, a, a.bob), env.Clock.Now().Unix()+7*86400; got != want {
			t.Errorf("deadline = %d, want %d", got, want)
		}
		doc := a.c.Get(res.Header.Get("Location")).Doc()
		if st, _ := doc.Find("[data-testid=member-status]").Attr("data-status"); st != db.StatusInGrace {
			t.Errorf("bob's status after extension = %q", st)
		}
		if !strings.Contains(doc.Text(), "The deadline was extended.") {
			t.Error("no notice after extending")
		}
		if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE subject_user_id = ? AND event = ?`, a.bob.ID, db.EventDeadlineExtended); n != 1 {
			t.Errorf("%d audit events, want 1", n)
		}
		// The admin (not covered? covered and compliant) — a member outside the requirement: 409.
		if _, err := env.Store.DB().Exec(`UPDATE users SET mfa_deadline = NULL WHERE id = ?`, a.alice.ID); err != nil {
			t.Fatal(err)
		}
		if res := a.c.PostForm(memberPath(a.alice, "extend-deadline"), url.Values{"days": {"7"}}); res.StatusCode != http.StatusConflict {
			t.Errorf("extend uncovered = %d, want 409", res.StatusCode)
		}
		if doc := a.c.Get(memberPath(a.alice, "")).Doc(); doc.Find("[data-testid=extend-form]").Length() != 0 {
			t.Error("extend form shown for a member without a deadline")
		}
	})
	t.Run("API", func(t *testing.T) {
		path := fmt.Sprintf("/t/acme/api/v1/admin/members/%d/extend-deadline", a.carol.ID)
		was := deadlineOf(t, a, a.carol)
		for _, body := range []any{map[string]any{"days": 0}, map[string]any{"days": 91}, map[string]any{"days": "7"}, map[string]any{}, "x"} {
			if res := a.c.API(http.MethodPost, path, a.token, body); res.StatusCode != http.StatusBadRequest || deadlineOf(t, a, a.carol) != was {
				t.Errorf("API extend %v = %d %s", body, res.StatusCode, res.Body)
			}
		}
		res := a.c.API(http.MethodPost, path, a.token, map[string]int{"days": 10})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("API extend = %d %s", res.StatusCode, res.Body)
		}
		if got, want := res.JSON()["deadline"], time.Unix(was+10*86400, 0).UTC().Format(time.RFC3339); got != want {
			t.Errorf("API deadline = %v, want %v", got, want)
		}
		res = a.c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/extend-deadline", a.alice.ID), a.token, map[string]int{"days": 10})
		if res.StatusCode != http.StatusConflict || res.JSON()["error"] != "not_covered" {
			t.Errorf("API extend uncovered = %d %s", res.StatusCode, res.Body)
		}
	})
	t.Run("OtherWorkspace", func(t *testing.T) {
		globex := env.Workspace("initech", "Initech")
		g := env.User(globex, "g@initech.test", db.RoleMember, pw)
		if _, err := env.Store.DB().Exec(`UPDATE users SET mfa_deadline = ? WHERE id = ?`, env.Clock.Now().Unix()+86400, g.ID); err != nil {
			t.Fatal(err)
		}
		if res := a.c.PostForm(memberPath(g, "extend-deadline"), url.Values{"days": {"7"}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("page extend of globex's member = %d", res.StatusCode)
		}
		if res := a.c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/extend-deadline", g.ID), a.token, map[string]int{"days": 7}); res.StatusCode != http.StatusNotFound {
			t.Errorf("API extend of globex's member = %d", res.StatusCode)
		}
		if got := queryInt(t, env, `SELECT mfa_deadline FROM users WHERE id = ?`, g.ID); got != env.Clock.Now().Unix()+86400 {
			t.Error("globex's deadline changed")
		}
	})
	t.Run("StepUp", func(t *testing.T) {
		env.Clock.Advance(11 * time.Minute)
		was := deadlineOf(t, a, a.bob)
		res := a.c.PostForm(memberPath(a.bob, "extend-deadline"), url.Values{"days": {"7"}})
		if res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "/account/verify") {
			t.Errorf("page extend without step-up = %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		res = a.c.API(http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/extend-deadline", a.bob.ID), a.token, map[string]int{"days": 7})
		if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
			t.Errorf("API extend without step-up = %d %s", res.StatusCode, res.Body)
		}
		if deadlineOf(t, a, a.bob) != was {
			t.Error("deadline changed without step-up")
		}
	})
}
