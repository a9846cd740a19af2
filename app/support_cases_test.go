package app_test

// Support reset cases (issue 6): the whole lifecycle with a clock the test
// moves (open, approve by another, cancel by the member, execute after the
// delay), four eyes (the opener cannot approve; nobody acts on their own
// account), expiry, idempotent execution even with two job runners at
// once, the member's emails and both audit trails.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

var cancelLinkRE = regexp.MustCompile(`https?://\S+(/t/[a-z0-9-]+/reset/cancel/[A-Za-z0-9_-]{43})`)

type supportEnv struct {
	env            *apptest.Env
	acme           db.Workspace
	alice          db.User
	sam, tina, lee db.User
	samSecret      string
	tinaSecret     string
	leeSecret      string
}

func supportSetup(t *testing.T) *supportEnv {
	t.Helper()
	env, acme, alice := setup(t)
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	s := &supportEnv{env: env, acme: acme, alice: alice}
	var tok string
	s.sam, tok = newStaff(t, env, "sam@gatehouse.test", false)
	s.samSecret = enrollStaff(t, env, tok)
	s.tina, tok = newStaff(t, env, "tina@gatehouse.test", false)
	s.tinaSecret = enrollStaff(t, env, tok)
	s.lee, tok = newStaff(t, env, "lee@gatehouse.test", true)
	s.leeSecret = enrollStaff(t, env, tok)
	return s
}

func (s *supportEnv) token(t *testing.T, who db.User) string {
	secret := map[int64]string{s.sam.ID: s.samSecret, s.tina.ID: s.tinaSecret, s.lee.ID: s.leeSecret}[who.ID]
	return staffToken(t, s.env, who.Email, secret)
}

func (s *supportEnv) open(t *testing.T, tok string, member int64) (int, map[string]any) {
	t.Helper()
	res := s.env.Client().API(http.MethodPost, "/support/api/v1/cases", tok, map[string]any{
		"workspace": "acme", "member_id": member,
		"verification": map[string]string{"method": "video_id_document", "evidence_ref": "TICKET-42", "notes": "Passport checked on a video call."}})
	return res.StatusCode, res.JSON()
}

func (s *supportEnv) approve(t *testing.T, tok string, id any, body any) (int, map[string]any) {
	t.Helper()
	res := s.env.Client().API(http.MethodPost, fmt.Sprintf("/support/api/v1/cases/%v/approve", id), tok, body)
	return res.StatusCode, res.JSON()
}

func (s *supportEnv) caseStatus(t *testing.T, id any) string {
	t.Helper()
	var st string
	if err := s.env.Store.DB().QueryRow(`SELECT status FROM support_cases WHERE id = ?`, id).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (s *supportEnv) jobs() *app.Jobs {
	return app.NewJobs(s.env.Store, slog.New(slog.NewTextHandler(io.Discard, nil)), s.env.Config)
}

// aliceFactors counts alice's factor rows (app, keys, recovery codes).
func (s *supportEnv) aliceFactors(t *testing.T) int64 {
	return mfaRows(t, s.env, s.alice)
}

func TestSupportCaseLifecycle(t *testing.T) {
	t.Parallel()
	s := supportSetup(t)
	env := s.env
	samTok, tinaTok := s.token(t, s.sam), s.token(t, s.tina)

	// Bad input: nothing opened.
	for _, body := range []map[string]any{
		{"workspace": "acme", "member_id": s.alice.ID, "verification": map[string]string{"method": "gut_feeling", "evidence_ref": "x", "notes": "y"}},
		{"workspace": "acme", "member_id": s.alice.ID, "verification": map[string]string{"method": "video_id_document", "evidence_ref": "", "notes": "y"}},
		{"workspace": "acme", "member_id": s.alice.ID, "verification": map[string]string{"method": "video_id_document", "evidence_ref": "x", "notes": " "}},
	} {
		if res := env.Client().API(http.MethodPost, "/support/api/v1/cases", samTok, body); res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_verification" {
			t.Errorf("open with %v = %d %s", body, res.StatusCode, res.Body)
		}
	}
	globex := mustWorkspace(t, env, "globex")
	globexAlice, _ := env.Store.UserByEmail(context.Background(), globex.ID, "alice@acme.test")
	for _, id := range []int64{globexAlice.ID, 1_000_000} { // another workspace's member under acme's slug; nobody
		if status, body := s.open(t, samTok, id); status != http.StatusNotFound {
			t.Errorf("open for member %d of acme = %d %v", id, status, body)
		}
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM support_cases`); n != 0 {
		t.Fatalf("%d cases after refused requests", n)
	}

	status, body := s.open(t, samTok, s.alice.ID)
	if status != http.StatusCreated || body["status"] != "awaiting_approval" {
		t.Fatalf("open = %d %v", status, body)
	}
	id := body["id"]
	if status, body := s.open(t, tinaTok, s.alice.ID); status != http.StatusConflict || body["error"] != "case_open" {
		t.Errorf("a second open case = %d %v", status, body)
	}
	// Four eyes: the opener cannot approve.
	if status, body := s.approve(t, samTok, id, nil); status != http.StatusForbidden || body["error"] != "same_staff" {
		t.Errorf("opener approves = %d %v", status, body)
	}
	// Only a lead lengthens the delay, and nobody shortens it.
	if status, body := s.approve(t, tinaTok, id, map[string]int{"delay_hours": 48}); status != http.StatusForbidden || body["error"] != "lead_only" {
		t.Errorf("staff lengthens the delay = %d %v", status, body)
	}
	for _, h := range []int{23, 0, -5, 721} {
		if status, body := s.approve(t, tinaTok, id, map[string]int{"delay_hours": h}); status != http.StatusBadRequest || body["error"] != "invalid_delay" {
			t.Errorf("delay %d = %d %v", h, status, body)
		}
	}
	if st := s.caseStatus(t, id); st != db.CaseAwaitingApproval || outboxCount(t, env.Store, mail.KindSupportResetScheduled, "alice@acme.test") != 0 {
		t.Fatalf("after refused approvals: %s, %d emails", st, outboxCount(t, env.Store, mail.KindSupportResetScheduled, "alice@acme.test"))
	}

	approvedAt := env.Clock.Now()
	status, body = s.approve(t, tinaTok, id, nil)
	if status != http.StatusOK || body["status"] != "scheduled" || body["executes_at"] != approvedAt.Add(24*time.Hour).UTC().Format(time.RFC3339) {
		t.Fatalf("approve = %d %v", status, body)
	}
	if status, body := s.approve(t, s.token(t, s.lee), id, nil); status != http.StatusConflict {
		t.Errorf("approving twice = %d %v", status, body)
	}
	msgs, _ := env.Store.OutboxMessages(context.Background(), 1)
	if msgs[0].Kind != mail.KindSupportResetScheduled || msgs[0].To != "alice@acme.test" || !cancelLinkRE.MatchString(msgs[0].Text) {
		t.Fatalf("the member's email = %+v", msgs[0])
	}

	// The delay holds: nothing happens a minute before it ends.
	j := s.jobs()
	env.Clock.Advance(24*time.Hour - time.Minute)
	if executed, _, err := j.RunSupportCases(context.Background()); err != nil || executed != 0 || s.aliceFactors(t) != 11 {
		t.Fatalf("before the delay: executed %d, err %v, alice has %d factor rows", executed, err, s.aliceFactors(t))
	}
	env.Clock.Advance(2 * time.Minute)
	aliceTok := env.Client().APILogin("globex", "alice@acme.test", "globex password 1") // alice's other account: must survive
	// Two runners at once execute it once.
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			n, _, err := s.jobs().RunSupportCases(context.Background())
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 1 || s.caseStatus(t, id) != db.CaseExecuted {
		t.Fatalf("two runners executed %v; status %s", counts, s.caseStatus(t, id))
	}
	if n, _, _ := j.RunSupportCases(context.Background()); n != 0 {
		t.Errorf("a third run executed %d", n)
	}
	if n := s.aliceFactors(t); n != 0 {
		t.Errorf("alice has %d factor rows after the reset", n)
	}
	if n := activeSessions(t, env, s.alice); n != 0 {
		t.Errorf("alice has %d sessions after the reset", n)
	}
	if res := env.Client().API(http.MethodGet, "/t/globex/api/v1/session", aliceTok, nil); res.StatusCode != http.StatusOK {
		t.Errorf("alice's globex session = %d after acme's reset", res.StatusCode)
	}
	if n := outboxCount(t, env.Store, mail.KindSupportResetDone, "alice@acme.test"); n != 1 {
		t.Errorf("%d reset-done emails, want 1", n)
	}
	// She must set up a factor again before anything else (acme's policy
	// is only optional): no API session, pages confined to enrollment.
	if res := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw}); res.StatusCode != http.StatusForbidden {
		t.Errorf("alice's API sign-in after the reset = %d %s", res.StatusCode, res.Body)
	}
	// The timeline, in order, with who did it.
	res := env.Client().API(http.MethodGet, fmt.Sprintf("/support/api/v1/cases/%v", id), s.token(t, s.sam), nil)
	var steps []string
	for _, e := range res.JSON()["timeline"].([]any) {
		ev := e.(map[string]any)
		steps = append(steps, ev["event"].(string)+" by "+ev["actor"].(string))
	}
	if want := "opened by staff sam@gatehouse.test, approved by staff tina@gatehouse.test, executed by system"; strings.Join(steps, ", ") != want {
		t.Errorf("timeline = %q, want %q", strings.Join(steps, ", "), want)
	}
	// Both trails: the workspace's (visible to its admins, about alice) and
	// the platform's (with the staff member as actor).
	for _, ev := range []string{db.EventCaseOpened, db.EventCaseApproved, db.EventMFAResetBySupport} {
		if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND subject_user_id = ? AND event = ?`, s.acme.ID, s.alice.ID, ev); n != 1 {
			t.Errorf("acme's trail has %d %s", n, ev)
		}
		if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events e JOIN workspaces w ON w.id = e.workspace_id WHERE w.platform = 1 AND e.event = ?`, ev); n != 1 {
			t.Errorf("the platform's trail has %d %s", n, ev)
		}
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE event = ? AND actor_user_id = ?`, db.EventCaseApproved, s.tina.ID); n != 1 {
		t.Errorf("tina is the actor of %d approvals", n)
	}
	// The cancel link is dead once the reset ran.
	path := cancelLinkRE.FindStringSubmatch(msgs[0].Text)[1]
	if res := env.Client().PostForm(path, nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("cancel after the reset = %d", res.StatusCode)
	}
}

func TestSupportCaseCancelledByMember(t *testing.T) {
	t.Parallel()
	s := supportSetup(t)
	env := s.env
	_, body := s.open(t, s.token(t, s.sam), s.alice.ID)
	id := body["id"]
	if status, body := s.approve(t, s.token(t, s.lee), id, map[string]int{"delay_hours": 72}); status != http.StatusOK {
		t.Fatalf("lead approves with 72 h = %d %v", status, body)
	}
	msgs, _ := env.Store.OutboxMessages(context.Background(), 1)
	path := cancelLinkRE.FindStringSubmatch(msgs[0].Text)[1]
	c := env.Client()
	// Following the link changes nothing; wrong links say nothing.
	if res := c.Get(path); res.StatusCode != http.StatusOK || s.caseStatus(t, id) != db.CaseScheduled {
		t.Fatalf("GET cancel link = %d, status %s", res.StatusCode, s.caseStatus(t, id))
	}
	token := path[strings.LastIndex(path, "/")+1:]
	for _, bad := range []string{"/t/globex/reset/cancel/" + token, "/t/acme/reset/cancel/" + strings.Repeat("A", 43), "/t/acme/reset/cancel/short"} {
		res := c.PostForm(bad, nil)
		if res.StatusCode != http.StatusBadRequest || strings.Contains(string(res.Body), "alice") || s.caseStatus(t, id) != db.CaseScheduled {
			t.Errorf("cancel with %s = %d, status %s", bad, res.StatusCode, s.caseStatus(t, id))
		}
	}
	env.Clock.Advance(48 * time.Hour)
	res := c.PostForm(path, nil)
	if res.StatusCode != http.StatusOK || res.Doc().Find("[data-testid=reset-cancelled]").Length() != 1 || s.caseStatus(t, id) != db.CaseCancelled {
		t.Fatalf("cancel = %d, status %s", res.StatusCode, s.caseStatus(t, id))
	}
	if res := c.PostForm(path, nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("cancel twice = %d", res.StatusCode)
	}
	env.Clock.Advance(48 * time.Hour)
	if n, _, _ := s.jobs().RunSupportCases(context.Background()); n != 0 || s.aliceFactors(t) != 11 {
		t.Errorf("a cancelled case executed (%d) or alice lost factors (%d rows)", n, s.aliceFactors(t))
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, s.acme.ID, db.EventCaseCancelled); n != 1 {
		t.Errorf("%d cancellations in acme's trail", n)
	}
	// A new case can be opened once this one is closed.
	if status, body := s.open(t, s.token(t, s.tina), s.alice.ID); status != http.StatusCreated {
		t.Errorf("open after a cancelled case = %d %v", status, body)
	}
}

func TestSupportCaseExpiresAndOwnAccount(t *testing.T) {
	t.Parallel()
	s := supportSetup(t)
	env := s.env
	_, body := s.open(t, s.token(t, s.sam), s.alice.ID)
	id := body["id"]
	env.Clock.Advance(app.CaseApprovalWindow + time.Second)
	if status, body := s.approve(t, s.token(t, s.tina), id, nil); status != http.StatusConflict || body["error"] != "case_expired" {
		t.Errorf("approve after 7 days = %d %v", status, body)
	}
	if st := s.caseStatus(t, id); st != db.CaseExpired || outboxCount(t, env.Store, mail.KindSupportResetScheduled, "alice@acme.test") != 0 {
		t.Errorf("expired case: status %s", st)
	}
	// The job expires the ones nobody touches.
	_, body = s.open(t, s.token(t, s.sam), s.alice.ID)
	env.Clock.Advance(app.CaseApprovalWindow + time.Second)
	if _, expired, err := s.jobs().RunSupportCases(context.Background()); err != nil || expired != 1 || s.caseStatus(t, body["id"]) != db.CaseExpired {
		t.Errorf("job expired %d (%v), status %s", expired, err, s.caseStatus(t, body["id"]))
	}

	// A staff member who is also the member (same address) can neither
	// open nor approve a case for that account.
	_, tok := newStaff(t, env, "alice@acme.test", false)
	selfTok := staffToken(t, env, "alice@acme.test", enrollStaff(t, env, tok))
	if status, body := s.open(t, selfTok, s.alice.ID); status != http.StatusForbidden || body["error"] != "own_account" {
		t.Errorf("open for one's own account = %d %v", status, body)
	}
	_, body = s.open(t, s.token(t, s.sam), s.alice.ID)
	if status, body := s.approve(t, selfTok, body["id"], nil); status != http.StatusForbidden || body["error"] != "own_account" {
		t.Errorf("approve for one's own account = %d %v", status, body)
	}
	if st := s.caseStatus(t, body["id"]); st != db.CaseAwaitingApproval {
		t.Errorf("status %s", st)
	}
}

// Members and workspace sessions cannot reach cases; staff actions need a
// fresh second factor; the pages carry the same flow.
func TestSupportCasePagesAndGuards(t *testing.T) {
	t.Parallel()
	s := supportSetup(t)
	env := s.env
	memberTok := env.Client().APILogin("globex", "alice@acme.test", "globex password 1")
	if res := env.Client().API(http.MethodPost, "/support/api/v1/cases", memberTok, map[string]any{}); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a member's token opens cases: %d", res.StatusCode)
	}
	samTok := s.token(t, s.sam)
	env.Clock.Advance(11 * time.Minute) // step-up window passed; session still alive (idle 15 min)
	if status, body := s.open(t, samTok, s.alice.ID); status != http.StatusForbidden || body["error"] != "step_up_required" {
		t.Errorf("open without step-up = %d %v", status, body)
	}

	sam := staffPage(t, env, "sam@gatehouse.test", s.samSecret)
	res := sam.Get("/support/members?email=alice%40acme.test")
	href, ok := res.Doc().Find("[data-testid=support-results] tr:contains('Acme') [data-testid=case-new]").Attr("href")
	if !ok {
		t.Fatalf("no 'Open a reset case' link: %s", res.Body)
	}
	if res := sam.Get(href); res.StatusCode != http.StatusOK || !strings.Contains(string(res.Body), "alice@acme.test") {
		t.Fatalf("case form = %d", res.StatusCode)
	}
	u, _ := url.Parse(href)
	form := url.Values{"workspace": {u.Query().Get("workspace")}, "member": {u.Query().Get("member")}, "method": {"admin_attestation"}, "evidence_ref": {"MAIL-7"}, "notes": {""}}
	if res := sam.PostForm("/support/cases", form); res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("open without notes = %d", res.StatusCode)
	}
	form.Set("notes", "Admin bob confirmed by signed email.")
	res = sam.PostForm("/support/cases", form)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/support/cases/") {
		t.Fatalf("open from the page = %d %q", res.StatusCode, loc)
	}
	casePath := strings.TrimSuffix(loc, "?notice=opened")
	if res := sam.Get(casePath); res.Doc().Find("[data-testid=case-approve]").Length() != 0 {
		t.Error("the opener is offered Approve")
	}
	tina := staffPage(t, env, "tina@gatehouse.test", s.tinaSecret)
	page := tina.Get(casePath)
	if page.Doc().Find("[data-testid=case-approve]").Length() != 1 || page.Doc().Find("input[name=delay_hours]").Length() != 0 {
		t.Fatalf("tina's case page: approve %d, delay field %d", page.Doc().Find("[data-testid=case-approve]").Length(), page.Doc().Find("input[name=delay_hours]").Length())
	}
	res = tina.PostForm(casePath+"/approve", nil)
	if res.StatusCode != http.StatusSeeOther || !strings.HasSuffix(res.Header.Get("Location"), "?notice=approved") {
		t.Fatalf("approve from the page = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if st := tina.Get(casePath).Doc().Find("[data-testid=case-status]").Text(); st != "Scheduled" {
		t.Errorf("status shown %q", st)
	}
	if res := tina.Get("/support/cases"); res.Doc().Find("[data-testid=cases-open] tbody tr").Length() != 1 {
		t.Errorf("cases list: %s", res.Body)
	}
}

func TestSupportCaseRejected(t *testing.T) {
	t.Parallel()
	s := supportSetup(t)
	env := s.env
	_, body := s.open(t, s.token(t, s.sam), s.alice.ID)
	id := body["id"]
	tina := s.token(t, s.tina)
	reject := func(reason any) *apptest.Response {
		return env.Client().API(http.MethodPost, fmt.Sprintf("/support/api/v1/cases/%v/reject", id), tina, reason)
	}
	for _, bad := range []any{map[string]string{"reason": " "}, map[string]string{}, "nope"} {
		if res := reject(bad); res.StatusCode != http.StatusBadRequest || s.caseStatus(t, id) != db.CaseAwaitingApproval {
			t.Errorf("reject with %v = %d %s", bad, res.StatusCode, res.Body)
		}
	}
	if res := env.Client().API(http.MethodPost, "/support/api/v1/cases/999/reject", tina, map[string]string{"reason": "x"}); res.StatusCode != http.StatusNotFound {
		t.Errorf("reject an unknown case = %d", res.StatusCode)
	}
	if res := reject(map[string]string{"reason": "The caller could not show an ID."}); res.StatusCode != http.StatusOK || res.JSON()["status"] != "rejected" {
		t.Fatalf("reject = %d %s", res.StatusCode, res.Body)
	}
	if status, body := s.approve(t, s.token(t, s.lee), id, nil); status != http.StatusConflict || body["error"] != "case_closed" {
		t.Errorf("approve a rejected case = %d %v", status, body)
	}
	if res := reject(map[string]string{"reason": "again"}); res.StatusCode != http.StatusConflict {
		t.Errorf("reject twice = %d", res.StatusCode)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, s.acme.ID, db.EventCaseRejected); n != 1 {
		t.Errorf("%d rejections in acme's trail", n)
	}
	if n := outboxCount(t, env.Store, mail.KindSupportResetScheduled, "alice@acme.test"); n != 0 {
		t.Errorf("%d reset emails for a rejected case", n)
	}
}
