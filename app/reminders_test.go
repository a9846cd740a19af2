package app_test

// Reminder emails end to end: the whole application (apptest) on a real
// SQLite file, the jobs delivering through a real SMTP server (mailtest),
// and a clock the tests move hour by hour — nothing sleeps. Every test
// asserts exactly which emails reached the SMTP server, for whom and when.
//
// Each was checked to fail by breaking the rule it guards (in a scratch
// copy), then restored:
//   - TestRemindersThirtyDays: with the announcement allowed again for a new
//     deadline (toldSQL ignored in db/reminders.go), the member whose
//     deadline was extended gets a second announcement on day 9; with
//     RunOnce delivering before it scans, every email arrives an hour late.
//   - TestRemindersSMTPOutage: with NewJobs keeping mail.NewSender's 12
//     attempts (mailMaxAttempts not applied), the 7-day reminders queued in
//     the four days of outage are given up on and never arrive.
//   - TestRemindersServiceOutage: with DueReminder picking the first
//     reminder day reached rather than the most urgent, the 7-day reminder
//     goes out on return (mfa_reminders shows days 7) and the 1-day one never.
//   - TestRemindersTwoSchedulers: with the in-transaction check of what was
//     already queued removed (recordReminders, formerly queueReminder) and
//     the ON CONFLICT DO NOTHING outcome ignored, the two schedulers send
//     every reminder twice.
//   - TestRemindersRunErrors: with Run's reminder loop ending at its first
//     failed scan, the second error is never logged and the test times out.
//   - TestRemindersStop: with the scan and the queueing transaction not
//     checking compliance, enrolled members keep getting reminders; with the
//     scan ignoring the policy mode, SetPolicy keeping the deadlines and
//     the queueing transaction not checking that the policy still applies,
//     relaxed workspaces keep getting them.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mail/mailtest"
	"github.com/gatehouse/gatehouse/db"
)

const oneDay = 24 * time.Hour

// remindStart is when the requirement starts in every test: a whole hour,
// so that hourly steps land exactly on every reminder day.
var remindStart = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

// remindSim is one workspace, acme, under a requirement: the application,
// an SMTP server, jobs delivering through it, and what arrived.
type remindSim struct {
	t       *testing.T
	env     *apptest.Env
	smtp    *mailtest.Server
	jobs    *app.Jobs
	ws      db.Workspace
	owner   db.User
	members []db.User
	logs    *remindLog

	mu  sync.Mutex
	got []remindMail
}

// remindMail is one email the SMTP server accepted.
type remindMail struct {
	To    string
	Label string        // "announce", "7 days left", … or the subject
	At    time.Duration // since remindStart, by the test clock
	Msg   mailtest.Message
}

const remindPassword = "correct horse battery staple"

// newRemindSim builds acme with a compliant owner and n members without a
// second factor, m0000@acme.test…; the members whose index is in withPassword
// can sign in with remindPassword. The clock is at remindStart; the policy
// is not set yet.
func newRemindSim(t *testing.T, n int, withPassword ...int) *remindSim {
	t.Helper()
	ctx := context.Background()
	s := &remindSim{t: t, env: apptest.New(t), smtp: mailtest.NewServer(t), logs: newRemindLog()}
	s.env.Clock.Set(remindStart)
	s.ws = s.env.Workspace("acme", "Acme")
	s.owner = s.env.User(s.ws, "owner@acme.test", db.RoleOwner, remindPassword)
	s.enrollTOTP(s.owner)
	for i := range n {
		email := fmt.Sprintf("m%04d@acme.test", i)
		var u db.User
		if slices.Contains(withPassword, i) {
			u = s.env.User(s.ws, email, db.RoleMember, remindPassword)
		} else {
			var err error
			if u, err = s.env.Store.CreateUser(ctx, s.ws.ID, email, db.RoleMember, "x", db.Meta{}, 0); err != nil {
				t.Fatal(err)
			}
		}
		s.members = append(s.members, u)
	}
	s.smtp.OnMessage(func(m mailtest.Message) {
		at := s.env.Clock.Now().Sub(remindStart)
		s.mu.Lock()
		s.got = append(s.got, remindMail{To: strings.Join(m.To, ","), Label: remindLabel(m), At: at, Msg: m})
		s.mu.Unlock()
	})
	s.jobs = s.newJobs(s.env.Store)
	return s
}

// newJobs builds production jobs over store, delivering to the SMTP server.
func (s *remindSim) newJobs(store *db.Store) *app.Jobs {
	cfg := s.env.Config
	cfg.SMTPURL = s.smtp.URL("Gatehouse <no-reply@gatehouse.test>", nil)
	return app.NewJobs(store, slog.New(s.logs), cfg)
}

var reminderSubject = regexp.MustCompile(`^(\d+) days? left to set up two-step verification for Acme$`)

// remindLabel names an email by its subject: "announce", "N days left",
// or the subject itself for any other email.
func remindLabel(m mailtest.Message) string {
	subj := m.Header.Get("Subject")
	if subj == "Acme now requires two-step verification" {
		return "announce"
	}
	if g := reminderSubject.FindStringSubmatch(subj); g != nil {
		return g[1] + " days left"
	}
	return subj
}

// require sets acme's policy: required, 14 days of grace, reminders 7, 3
// and 1 day before the deadline.
func (s *remindSim) require() {
	s.t.Helper()
	p := db.DefaultPolicy()
	p.Mode, p.GraceDays, p.ReminderDays = db.PolicyRequired, 14, []int{7, 3, 1}
	s.setPolicy(p)
}

// relax changes acme's policy mode only, keeping its grace period and
// reminder days.
func (s *remindSim) relax(mode string) {
	s.t.Helper()
	p, err := s.env.Store.Policy(context.Background(), s.ws.ID)
	if err != nil {
		s.t.Fatal(err)
	}
	p.Mode = mode
	s.setPolicy(p)
}

func (s *remindSim) setPolicy(p db.Policy) {
	s.t.Helper()
	if _, _, err := s.env.Store.SetPolicy(context.Background(), s.ws.ID, s.owner.ID, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		s.t.Fatal(err)
	}
}

// at moves the clock to remindStart + d.
func (s *remindSim) at(d time.Duration) { s.env.Clock.Set(remindStart.Add(d)) }

// run does one pass of each of jobs (s.jobs when none), at once.
func (s *remindSim) run(jobs ...*app.Jobs) []app.RunResult {
	s.t.Helper()
	if len(jobs) == 0 {
		jobs = []*app.Jobs{s.jobs}
	}
	out := make([]app.RunResult, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() { defer wg.Done(); out[i], errs[i] = j.RunOnce(context.Background()) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			s.t.Fatalf("RunOnce at %v: %v", s.env.Clock.Now().Sub(remindStart), err)
		}
	}
	return out
}

func (s *remindSim) enrollTOTP(u db.User) {
	s.t.Helper()
	ctx := context.Background()
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	cred, err := s.env.Store.StartTOTPEnrollment(ctx, s.ws.ID, u.ID, seal, s.env.Clock.Now().Add(time.Hour), db.Meta{})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.env.Store.ConfirmTOTPEnrollment(ctx, s.ws.ID, u.ID, cred.ID, 1, nil, db.Meta{}, db.OutboxMessage{}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *remindSim) enrollKey(u db.User) {
	s.t.Helper()
	_, err := s.env.Store.AddWebAuthnCredential(context.Background(), db.WebAuthnCredential{WorkspaceID: s.ws.ID, UserID: u.ID,
		Name: "Key", CredentialID: []byte(u.Email), PublicKey: []byte{0}}, nil, db.Meta{}, db.OutboxMessage{})
	if err != nil {
		s.t.Fatal(err)
	}
}

// mails returns what arrived, by recipient.
func (s *remindSim) mails() map[string][]remindMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]remindMail{}
	for _, m := range s.got {
		out[m.To] = append(out[m.To], m)
	}
	return out
}

// timeline formats a member's emails as "label +at", oldest first.
func timeline(ms []remindMail) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s +%s", m.Label, days(m.At)))
	}
	return out
}

// labels formats a member's emails without their times.
func labels(ms []remindMail) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Label)
	}
	return out
}

// days writes a duration as days and hours: "7d", "12d6h".
func days(d time.Duration) string {
	out := strconv.Itoa(int(d/oneDay)) + "d"
	if h := (d % oneDay) / time.Hour; h != 0 {
		out += strconv.Itoa(int(h)) + "h"
	}
	if m := (d % time.Hour) / time.Minute; m != 0 {
		out += strconv.Itoa(int(m)) + "m"
	}
	return out
}

// expect checks that every member's emails are exactly want(member) and
// that no Message-ID arrived twice.
func (s *remindSim) expect(want func(i int, u db.User) []string, got func([]remindMail) []string) {
	s.t.Helper()
	mails := s.mails()
	bad := 0
	for i, u := range s.members {
		if g, w := got(mails[u.Email]), want(i, u); !slices.Equal(g, w) && bad < 10 {
			bad++
			s.t.Errorf("%s received %q, want %q", u.Email, g, w)
		}
		delete(mails, u.Email)
	}
	for to, ms := range mails {
		s.t.Errorf("unexpected emails to %s: %q", to, timeline(ms))
	}
	for id, n := range s.smtp.MessageIDs() {
		if n != 1 {
			s.t.Errorf("Message-ID %s arrived %d times", id, n)
		}
	}
}

// checkLogs fails if the jobs logged a member's address (or anything that
// looks like a secret).
func (s *remindSim) checkLogs() {
	s.t.Helper()
	logs := s.logs.String()
	for _, bad := range []string{"@acme.test", "password", "secret", "token"} {
		if strings.Contains(logs, bad) {
			s.t.Errorf("the jobs logged %q:\n%s", bad, logs)
		}
	}
}

// loginState signs a member in through the API and says where the
// enforcement puts them: "blocked" (403 mfa_enrollment_required), "mfa"
// (second factor asked), "grace until <deadline>", or "free".
func (s *remindSim) loginState(email string) string {
	s.t.Helper()
	res := s.env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": email, "password": remindPassword})
	j := res.JSON()
	switch {
	case res.StatusCode == http.StatusForbidden && j["error"] == "mfa_enrollment_required":
		return "blocked"
	case res.StatusCode != http.StatusOK:
		s.t.Fatalf("login %s = %d %s", email, res.StatusCode, res.Body)
	case j["mfa_required"] == true:
		return "mfa"
	case j["enrollment_deadline"] != nil:
		return fmt.Sprint("grace until ", j["enrollment_deadline"])
	}
	return "free"
}

// pastDeadline counts acme's members the enforcement confines now: covered,
// without an allowed factor, past their deadline (the policy's impact).
func (s *remindSim) pastDeadline() int {
	s.t.Helper()
	p, err := s.env.Store.Policy(context.Background(), s.ws.ID)
	if err != nil {
		s.t.Fatal(err)
	}
	_, im, err := s.env.Store.SetPolicy(context.Background(), s.ws.ID, s.owner.ID, db.PolicyChange{Policy: p, DryRun: true}, db.Meta{})
	if err != nil {
		s.t.Fatal(err)
	}
	return im.PastDeadline
}

// A month of a 100-member workspace going from optional to required
// (14 days of grace, reminders 7, 3, 1), the jobs running every hour.
// Members: 40 % with an authenticator app and 10 % with a security key
// beforehand; 10 % enroll on day 3 (one through the API), 10 % on day 9
// (a key), 10 % on day 12; 20 % never, one of whom an admin gives 7 more
// days on day 9. Each email arrives exactly once, in the pass of its day;
// none after enrolling; the deadline confines exactly who it should.
func TestRemindersThirtyDays(t *testing.T) {
	t.Parallel()
	// 100 members: every class below has 10, and each is checked member by
	// member (the announcements still fill several outbox batches); the
	// scan's cost at 100,000 members is a benchmark's job
	// (db BenchmarkScanReminders100k), not this test's.
	const n = 100
	const api, never, extended = 5, 8, 9 // members who sign in
	s := newRemindSim(t, n, 0, api, never, extended)
	class := func(i int) int { return i % 10 }
	for i, u := range s.members {
		switch class(i) {
		case 0, 1, 2, 3:
			s.enrollTOTP(u)
		case 4:
			s.enrollKey(u)
		}
	}
	s.require()
	deadline := remindStart.Add(14 * oneDay)
	extendedDeadline := remindStart.Add(21 * oneDay)

	var apiToken string
	for h := 0; h <= 30*24; h++ {
		s.at(time.Duration(h) * time.Hour)
		switch h {
		case 3 * 24:
			apiToken = s.env.Client().APILogin("acme", s.members[api].Email, remindPassword)
			res := s.env.Client().API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", apiToken, nil)
			secret, _ := res.JSON()["secret"].(string)
			res = s.env.Client().API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", apiToken, map[string]string{"code": nowCode(t, s.env, secret)})
			if res.StatusCode != http.StatusOK {
				t.Fatalf("enroll %s through the API = %d %s", s.members[api].Email, res.StatusCode, res.Body)
			}
			for i, u := range s.members {
				if class(i) == 5 && i != api {
					s.enrollTOTP(u)
				}
			}
		case 9 * 24:
			for i, u := range s.members {
				if class(i) == 6 {
					s.enrollKey(u)
				}
			}
			d, err := s.env.Store.ExtendDeadline(context.Background(), s.ws.ID, s.owner.ID, s.members[extended].ID, 7, db.Meta{})
			if err != nil || !d.Equal(extendedDeadline) {
				t.Fatalf("ExtendDeadline = %v, %v; want %v", d, err, extendedDeadline)
			}
		case 12 * 24:
			for i, u := range s.members {
				if class(i) == 7 {
					s.enrollTOTP(u)
				}
			}
		}
		s.run()

		// Who is confined, checked at every day's first and last hour.
		if h%24 != 0 && h%24 != 23 {
			continue
		}
		now := s.env.Clock.Now()
		grace := func(d time.Time) string {
			if now.Before(d) {
				return "grace until " + d.Format(time.RFC3339)
			}
			return "blocked"
		}
		wantState := map[int]string{0: "mfa", api: grace(deadline), never: grace(deadline), extended: grace(deadline)}
		if h >= 3*24 {
			wantState[api] = "mfa"
		}
		if h >= 9*24 {
			wantState[extended] = grace(extendedDeadline)
		}
		for i, want := range wantState {
			if got := s.loginState(s.members[i].Email); got != want {
				t.Errorf("+%s: %s signs in %q, want %q", days(now.Sub(remindStart)), s.members[i].Email, got, want)
			}
		}
		wantPast := 0
		if !now.Before(deadline) {
			wantPast = n/5 - 1
		}
		if !now.Before(extendedDeadline) {
			wantPast++
		}
		if got := s.pastDeadline(); got != wantPast {
			t.Errorf("+%s: %d members past their deadline, want %d", days(now.Sub(remindStart)), got, wantPast)
		}
	}

	full := []string{"announce +0d", "7 days left +7d", "3 days left +11d", "1 days left +13d"}
	s.expect(func(i int, u db.User) []string {
		switch {
		case i == api:
			return []string{"announce +0d", "An authenticator app was added to your Acme account +3d"}
		case i == extended:
			return []string{"announce +0d", "7 days left +7d", "7 days left +14d", "3 days left +18d", "1 days left +20d"}
		}
		switch class(i) {
		case 0, 1, 2, 3, 4:
			return nil
		case 5:
			return full[:1]
		case 6:
			return full[:2]
		case 7:
			return full[:3]
		}
		return full
	}, timeline)

	// The emails themselves: absolute link to the security page, the
	// deadline, the days left (the extended member's, from the new one).
	mails := s.mails()
	link := s.env.HTTP.URL + "/t/acme/account/mfa"
	for _, c := range []struct {
		m    remindMail
		want []string
	}{
		{mails[s.members[never].Email][0], []string{link, mail.When(deadline), "now requires two-step verification"}},
		{mails[s.members[never].Email][3], []string{link, mail.When(deadline), "(1 day from now)"}},
		{mails[s.members[extended].Email][2], []string{link, mail.When(extendedDeadline), "(7 days from now)"}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.m.Msg.Text, w) || !strings.Contains(c.m.Msg.HTML, w) {
				t.Errorf("%q to %s lacks %q:\n%s", c.m.Label, c.m.To, w, c.m.Msg.Text)
			}
		}
	}
	if got := mails[s.members[never].Email][3].Msg.Header.Get("Subject"); got != "1 day left to set up two-step verification for Acme" {
		t.Errorf("1-day subject %q", got)
	}
	s.checkLogs()
}

// The SMTP server is down (connection refused) from day 6 to day 10, then
// refuses every message (451) from day 12 12:00 to day 13 06:00. The 7-day
// and 1-day reminders wait in the outbox and arrive after it recovers,
// within one backoff period; nothing is lost, nothing arrives twice.
func TestRemindersSMTPOutage(t *testing.T) {
	t.Parallel()
	const n = 60
	s := newRemindSim(t, n)
	s.require()
	up := s.jobs.Mail.Transport
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := *up.(*mail.SMTP)
	down.Port = l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there any more: connection refused

	failed := 0
	for h := 0; h <= 16*24; h++ {
		s.at(time.Duration(h) * time.Hour)
		switch time.Duration(h) * time.Hour {
		case 6 * oneDay:
			s.jobs.Mail.Transport = &down
		case 10 * oneDay:
			s.jobs.Mail.Transport = up
		case 12*oneDay + 12*time.Hour:
			s.smtp.FailNext(1 << 30)
		case 13*oneDay + 6*time.Hour:
			s.smtp.FailNext(0)
		}
		failed += s.run()[0].MailFailed
	}
	if failed < 2*n {
		t.Errorf("%d failed attempts, want at least one for each email queued in the outages", failed)
	}
	s.expect(func(int, db.User) []string {
		return []string{"announce", "7 days left", "3 days left", "1 days left"}
	}, labels)
	// Delayed, not later than one backoff period (at most 72 minutes with
	// the jitter) after the server came back.
	for _, u := range s.members {
		ms := s.mails()[u.Email]
		if len(ms) != 4 {
			continue // reported above
		}
		for _, c := range []struct {
			m        remindMail
			from, to time.Duration
		}{
			{ms[0], 0, 0},
			{ms[1], 10 * oneDay, 10*oneDay + 72*time.Minute},
			{ms[2], 11 * oneDay, 11 * oneDay},
			{ms[3], 13*oneDay + 6*time.Hour, 13*oneDay + 6*time.Hour + 72*time.Minute},
		} {
			if c.m.At < c.from || c.m.At > c.to {
				t.Errorf("%s: %q arrived at +%s, want between +%s and +%s", u.Email, c.m.Label, days(c.m.At), days(c.from), days(c.to))
			}
		}
	}
	msgs, err := s.env.Store.OutboxMessages(context.Background(), 10*n)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.SentAt.IsZero() || !m.FailedAt.IsZero() {
			t.Errorf("outbox %d (%s to %s): sent %v, failed %v, attempts %d", m.ID, m.Kind, m.To, m.SentAt, m.FailedAt, m.Attempts)
		}
	}
	s.checkLogs()
}

// No job runs from day 6 to day 12 (the process is down over the 7- and
// 3-day reminders). On return, only the most urgent reminder due goes out,
// late, once: the 3-day one, which says 2 days; then the 1-day one on time.
func TestRemindersServiceOutage(t *testing.T) {
	t.Parallel()
	const n = 40
	s := newRemindSim(t, n)
	s.require()
	for h := 0; h <= 15*24; h++ {
		if d := time.Duration(h) * time.Hour; d >= 6*oneDay && d < 12*oneDay {
			continue
		}
		s.at(time.Duration(h) * time.Hour)
		s.run()
	}
	s.expect(func(int, db.User) []string {
		return []string{"announce +0d", "2 days left +12d", "1 days left +13d"}
	}, timeline)
	rows, err := s.env.Store.DB().Query(`SELECT days, COUNT(*) FROM mfa_reminders WHERE workspace_id = ? GROUP BY days ORDER BY days`, s.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var d, c int
		rows.Scan(&d, &c)
		got = append(got, fmt.Sprintf("%d:%d", d, c))
	}
	if want := []string{fmt.Sprintf("-1:%d", n), fmt.Sprintf("1:%d", n), fmt.Sprintf("3:%d", n)}; !slices.Equal(got, want) {
		t.Errorf("mfa_reminders days:count %q, want %q", got, want)
	}
}

// Two processes on one database file (two db.Open handles, two Jobs, one
// SMTP server) send each email exactly once: passes run at the same time
// every hour, and then Run loops, stopped and started again as in a
// restart.
func TestRemindersTwoSchedulers(t *testing.T) {
	t.Parallel()
	const n = 50
	s := newRemindSim(t, n)
	other, err := db.Open(context.Background(), s.env.Store.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	other.Now = s.env.Clock.Now
	second := s.newJobs(other)
	s.require()

	t.Run("RunOnce", func(t *testing.T) {
		queued := 0
		for h := 0; h <= 15*24; h++ {
			s.at(time.Duration(h) * time.Hour)
			for _, r := range s.run(s.jobs, second) {
				queued += r.RemindersQueued
			}
		}
		if queued != 4*n {
			t.Errorf("the two schedulers queued %d reminders, want %d", queued, 4*n)
		}
		s.expect(func(int, db.User) []string {
			return []string{"announce +0d", "7 days left +7d", "3 days left +11d", "1 days left +13d"}
		}, timeline)
	})

	t.Run("Run", func(t *testing.T) {
		// A new requirement period: optional, then required again on day 20.
		s.relax(db.PolicyOptional)
		s.at(20 * oneDay)
		s.require()
		before := len(s.smtp.Messages())
		// Scans every 50 ms still run many times over each phase (and
		// both at once on start); every 5 ms, two processes' scans kept
		// both cores busy under -race and slowed the deliveries waited for.
		for _, j := range []*app.Jobs{s.jobs, second} {
			j.ReminderEvery, j.Mail.Interval = 50*time.Millisecond, 5*time.Millisecond
		}
		// Announcements now; the 7-day reminders after a restart a week on.
		for _, phase := range []time.Duration{20 * oneDay, 27 * oneDay} {
			s.at(phase)
			s.runLoops(t, n, s.jobs, second)
		}
		// Whatever a loop left half done, a last pass of each finishes.
		s.run(s.jobs, second)
		if got := len(s.smtp.Messages()) - before; got != 2*n {
			t.Errorf("the Run loops delivered %d emails, want %d", got, 2*n)
		}
		s.expect(func(int, db.User) []string {
			return []string{"announce +0d", "7 days left +7d", "3 days left +11d", "1 days left +13d", "announce +20d", "7 days left +27d"}
		}, timeline)
	})
	s.checkLogs()
}

// runLoops runs jobs' Run loops until want more emails are marked sent,
// then stops them and checks they return.
func (s *remindSim) runLoops(t *testing.T, want int, jobs ...*app.Jobs) {
	t.Helper()
	sent := s.logs.watch("mail sent")
	defer s.logs.unwatch()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, len(jobs))
	for _, j := range jobs {
		go func() { j.Run(ctx); done <- struct{}{} }()
	}
	// A bound on a hang, not a speed requirement: on a loaded machine
	// under -race a pass can take many seconds.
	timeout := time.After(2 * time.Minute)
	for got := 0; got < want; got++ {
		select {
		case <-sent:
		case <-timeout:
			t.Fatalf("the Run loops marked %d emails sent, want %d", got, want)
		}
	}
	cancel()
	for range jobs {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
}

// A Run loop whose reminder scan fails logs the error and goes on (it
// fails again on the next tick), and still returns when stopped.
func TestRemindersRunErrors(t *testing.T) {
	t.Parallel()
	s := newRemindSim(t, 3)
	s.require()
	s.jobs.BaseURL = nil // the emails cannot be written
	s.jobs.ReminderEvery, s.jobs.Mail.Interval = 5*time.Millisecond, 5*time.Millisecond
	failed := s.logs.watch("mfa reminders")
	defer s.logs.unwatch()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.jobs.Run(ctx); close(done) }()
	for range 3 {
		select {
		case <-failed:
		case <-time.After(30 * time.Second):
			t.Fatal("no error logged")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if !strings.Contains(s.logs.String(), "no base URL") {
		t.Errorf("logs lack the cause:\n%s", s.logs.String())
	}
	if got := len(s.smtp.Messages()); got != 0 {
		t.Errorf("%d emails sent", got)
	}
}

// The reminders stop when they no longer apply: the workspace relaxes its
// policy to optional or off, or the members enroll (on day 9, after the
// 7-day reminder).
func TestRemindersStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(s *remindSim)
	}{
		{"Optional", func(s *remindSim) { s.relax(db.PolicyOptional) }},
		{"Off", func(s *remindSim) { s.relax(db.PolicyOff) }},
		{"Enrolled", func(s *remindSim) {
			for i, u := range s.members {
				if i%2 == 0 {
					s.enrollTOTP(u)
				} else {
					s.enrollKey(u)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 20
			s := newRemindSim(t, n)
			s.require()
			for h := 0; h <= 20*24; h++ {
				s.at(time.Duration(h) * time.Hour)
				if h == 9*24 {
					tc.change(s)
				}
				s.run()
			}
			s.expect(func(int, db.User) []string { return []string{"announce +0d", "7 days left +7d"} }, timeline)
			if got := s.pastDeadline(); got != 0 {
				t.Errorf("%d members past their deadline", got)
			}
		})
	}
}

// remindLog is the jobs' log: JSON lines kept for inspection, and a
// channel told of each record with a given message.
type remindLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
	h   slog.Handler
	msg string
	ch  chan struct{}
}

func newRemindLog() *remindLog {
	l := &remindLog{}
	l.h = slog.NewJSONHandler(lockedBuffer{l}, nil)
	return l
}

type lockedBuffer struct{ l *remindLog }

func (b lockedBuffer) Write(p []byte) (int, error) {
	b.l.mu.Lock()
	defer b.l.mu.Unlock()
	return b.l.buf.Write(p)
}

func (l *remindLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// watch returns a channel told of every record logged with message msg
// from now until unwatch.
func (l *remindLog) watch(msg string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msg, l.ch = msg, make(chan struct{}, 1<<16)
	return l.ch
}

func (l *remindLog) unwatch() {
	l.mu.Lock()
	l.ch = nil
	l.mu.Unlock()
}

func (l *remindLog) Enabled(context.Context, slog.Level) bool { return true }

func (l *remindLog) Handle(ctx context.Context, r slog.Record) error {
	err := l.h.Handle(ctx, r)
	l.mu.Lock()
	if l.ch != nil && r.Message == l.msg {
		select {
		case l.ch <- struct{}{}:
		default: // never blocks the jobs; the buffer outlasts any test
		}
	}
	l.mu.Unlock()
	return err
}

func (l *remindLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *remindLog) WithGroup(string) slog.Handler      { return l }
