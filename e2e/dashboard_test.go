package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/db/dbtest"
)

// An admin opens the dashboard of a workspace of 240 generated members
// under "required": the figures shown are the seeded data's, counted here
// with plain SQL over the factor tables; the next deadline is the earliest
// of a member in grace; the chart is an SVG with both series over 90 days,
// and its summary ends at today's figures; the page is
// photographed at desktop width and at 390 px, where nothing scrolls
// sideways.
func TestBrowserDashboard(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	now := env.Clock.Now()
	// Joined over 180 days; 60 % with an app, 10 % a key only; half with a
	// deadline a week back, now or a week ahead.
	dbtest.Members(t, env.Store, ws.ID, 240, now)
	// The workspace is older than the chart's 90 days, as its members are.
	if _, err := env.Store.DB().Exec(`UPDATE workspaces SET created_at = ? WHERE id = ?`, now.Add(-200*24*time.Hour).Unix(), ws.ID); err != nil {
		t.Fatal(err)
	}
	alice := env.User(ws, "alice@acme.test", "admin", password)
	requireFor(t, env, "alice@acme.test", now.Add(10*24*time.Hour))

	count := func(where string, args ...any) int {
		t.Helper()
		var n int
		q := `SELECT COUNT(*) FROM users u WHERE u.workspace_id = ? AND ` + where
		if err := env.Store.DB().QueryRow(q, append([]any{ws.ID}, args...)...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	const factor = `(EXISTS (SELECT 1 FROM totp_credentials t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL)
		OR EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.user_id = u.id))`
	const low = `(SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = u.id AND r.used_at IS NULL) <= 3`
	members, enrolled := count(`1 = 1`), count(factor)
	want := map[string]string{
		"members":            fmt.Sprint(members),
		"enrolled":           fmt.Sprintf("%d%%", enrolled*100/members),
		"in_grace":           fmt.Sprint(count(`NOT `+factor+` AND u.mfa_deadline > ?`, now.Unix())),
		"past_deadline":      fmt.Sprint(count(`NOT `+factor+` AND u.mfa_deadline <= ?`, now.Unix())),
		"low_recovery_codes": fmt.Sprint(count(factor + ` AND ` + low)),
		"no_mfa":             fmt.Sprint(count(`NOT ` + factor)),
	}
	var next int64
	if err := env.Store.DB().QueryRow(`SELECT MIN(mfa_deadline) FROM users u WHERE u.workspace_id = ? AND NOT `+factor+` AND u.mfa_deadline > ?`,
		ws.ID, now.Unix()).Scan(&next); err != nil {
		t.Fatal(err)
	}
	if members != 241 || enrolled == 0 || want["in_grace"] == "0" || want["past_deadline"] == "0" || want["low_recovery_codes"] == "0" {
		t.Fatalf("the fixture does not cover every figure: %v", want)
	}

	b := newBrowser(t, 1280, 900)
	b.signIn(base, "acme", alice.Email, password)
	b.do("interstitial", chromedp.WaitVisible(chromedp.CSS(`[data-testid=enroll-later]`)))
	b.submit(`[data-testid=enroll-later]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))

	b.navigate(base + "/t/acme/admin")
	b.do("dashboard", chromedp.WaitVisible(chromedp.CSS(`[data-testid=coverage]`)))
	for id, w := range want {
		if got := b.text(`[data-testid=figure-` + id + `] .figure-value`); got != w {
			t.Errorf("figure %s = %q, want %q", id, got, w)
		}
	}
	nextText := time.Unix(next, 0).UTC().Format("2 Jan 2006 15:04 UTC")
	if got := b.text(`[data-testid=next-deadline]`); !strings.HasPrefix(got, nextText) || !strings.Contains(got, "members in grace") {
		t.Errorf("next deadline = %q, want %s and the members in grace", got, nextText)
	}
	chart := run(b, "chart", chromedp.Evaluate[[]float64](`(() => {
		const svg = document.querySelector("svg[data-testid=chart]");
		if (!svg) return [];
		const pts = s => (svg.querySelector(s)?.getAttribute("points") || "").trim().split(/\s+/).filter(Boolean).length;
		const r = svg.getBoundingClientRect();
		return [pts("[data-testid=line-members]"), pts("[data-testid=line-enrolled]"), r.width, r.height];
	})()`))
	if len(chart) != 4 || chart[0] != 90 || chart[1] != 90 || chart[2] < 600 || chart[3] < 200 {
		t.Errorf("chart [members points, enrolled points, width, height] = %v", chart)
	}
	if got := b.text(`.chart-summary`); !strings.Contains(got, fmt.Sprintf("to %d of %d", enrolled, members)) {
		t.Errorf("chart summary = %q, want today's %d of %d", got, enrolled, members)
	}
	b.checkPage("dashboard")
	b.screenshot("dashboard-desktop")

	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.navigate(base + "/t/acme/admin")
	b.do("dashboard", chromedp.WaitVisible(chromedp.CSS(`[data-testid=chart]`)))
	b.noHorizontalScroll("dashboard")
	// Every figure and the chart fit in the 390 px viewport.
	if wide := run(b, "widths", chromedp.Evaluate[[]string](`[...document.querySelectorAll("[data-testid^=figure-], svg[data-testid=chart], [data-testid=next-deadline]")]
		.filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
		.map(el => el.getAttribute("data-testid"))`)); len(wide) > 0 {
		t.Errorf("wider than the phone: %v", wide)
	}
	// The chart's table for screen readers adds nothing to the page's length.
	if h := run(b, "page end", chromedp.Evaluate[[]float64](`[document.documentElement.scrollHeight,
		document.querySelector("footer.site").getBoundingClientRect().bottom + window.scrollY]`)); len(h) != 2 || h[0] > h[1]+1 {
		t.Errorf("the page [scroll height, end of the footer] = %v: something hidden makes it longer", h)
	}
	b.screenshot("dashboard-phone")
	b.checkConsole()
}
