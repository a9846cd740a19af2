package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

const day = 24 * time.Hour

// reminderRig is a workspace with a compliant owner and one member, bob,
// and a scan that records what it queued for whom.
type reminderRig struct {
	t      *testing.T
	store  *db.Store
	clock  *dbtest.Clock
	ws     db.Workspace
	owner  db.User
	bob    db.User
	queued []int // days of every email queued, in order
	// during runs inside compose, between the scan's read and the
	// transaction that queues the email.
	during func(db.ReminderDue)
}

func newReminderRig(t *testing.T) *reminderRig {
	t.Helper()
	ctx := context.Background()
	r := &reminderRig{t: t}
	r.store, r.clock = dbtest.New(t)
	var err error
	if r.ws, err = r.store.CreateWorkspace(ctx, "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	if r.owner, err = r.store.CreateUser(ctx, r.ws.ID, "owner@acme.test", db.RoleOwner, "x", db.Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	r.enroll(r.owner.ID)
	if r.bob, err = r.store.CreateUser(ctx, r.ws.ID, "bob@acme.test", db.RoleMember, "x", db.Meta{}, 0); err != nil {
		t.Fatal(err)
	}
	r.setPolicy(db.PolicyRequired)
	return r
}

func (r *reminderRig) enroll(userID int64) {
	r.t.Helper()
	ctx := context.Background()
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	cred, err := r.store.StartTOTPEnrollment(ctx, r.ws.ID, userID, seal, r.clock.Now().Add(time.Hour), db.Meta{})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.store.ConfirmTOTPEnrollment(ctx, r.ws.ID, userID, cred.ID, 1, nil, db.Meta{}, db.OutboxMessage{}); err != nil {
		r.t.Fatal(err)
	}
}

// setPolicy sets mode with a 14-day grace period and reminders 7, 3, 1.
func (r *reminderRig) setPolicy(mode string) {
	r.t.Helper()
	p := db.DefaultPolicy()
	p.Mode, p.GraceDays, p.ReminderDays = mode, 14, []int{7, 3, 1}
	if _, _, err := r.store.SetPolicy(context.Background(), r.ws.ID, r.owner.ID, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		r.t.Fatal(err)
	}
}

// scan runs one scan and returns the days of the emails it queued (the
// rows it added to mfa_reminders, which must be what it counted).
func (r *reminderRig) scan() []int {
	r.t.Helper()
	n, err := r.store.ScanReminders(context.Background(), func(d db.ReminderDue) (db.OutboxMessage, error) {
		if d.User.ID != r.bob.ID {
			r.t.Errorf("reminder for %s", d.User.Email)
		}
		if !d.Now.Equal(r.clock.Now()) {
			r.t.Errorf("ReminderDue.Now = %v, want the clock's %v", d.Now, r.clock.Now())
		}
		if r.during != nil {
			r.during(d)
		}
		return db.OutboxMessage{Kind: "reminder", To: d.User.Email, Subject: "s"}, nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	rows, err := r.store.DB().Query(`SELECT days FROM mfa_reminders ORDER BY created_at, user_id, deadline, days DESC LIMIT 100000 OFFSET ?`, len(r.queued))
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var d int
		if err := rows.Scan(&d); err != nil {
			r.t.Fatal(err)
		}
		got = append(got, d)
	}
	if n != len(got) {
		r.t.Errorf("scan returned %d, but added %v to mfa_reminders", n, got)
	}
	r.queued = append(r.queued, got...)
	return got
}

// An admin who extends a member's deadline does not make the scan announce
// the requirement a second time: the member gets the reminder days counted
// from the new deadline. A new coverage period (the requirement relaxed,
// then back) is announced again.
//
// Checked to fail: without toldSQL in the scan and in queueReminders, the
// scan right after the extension queues a second announcement.
func TestScanRemindersExtendedDeadline(t *testing.T) {
	ctx := context.Background()
	r := newReminderRig(t)
	start := r.clock.Now()
	at := func(days int) { r.clock.Set(start.Add(time.Duration(days) * day)) }
	steps := []struct {
		day  int
		want []int
	}{
		{0, []int{db.AnnounceDays}},
		{7, []int{7}},
		{9, nil}, // extended below, before this scan
		{10, nil},
		{14, []int{7}}, // 7 days before the new deadline (day 21)
		{18, []int{3}},
		{20, []int{1}},
		{21, nil},
	}
	for _, s := range steps {
		at(s.day)
		if s.day == 9 {
			d, err := r.store.ExtendDeadline(ctx, r.ws.ID, r.owner.ID, r.bob.ID, 7, db.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(21 * day); !d.Equal(want) {
				t.Fatalf("ExtendDeadline = %v, want %v", d, want)
			}
		}
		if got := r.scan(); !slices.Equal(got, s.want) {
			t.Errorf("day %d: scan queued %v, want %v", s.day, got, s.want)
		}
		if got := r.scan(); len(got) != 0 {
			t.Errorf("day %d: second scan queued %v", s.day, got)
		}
	}

	// Relaxed, then required again: a new deadline and a new announcement.
	at(22)
	r.setPolicy(db.PolicyOptional)
	if got := r.scan(); len(got) != 0 {
		t.Errorf("optional: scan queued %v", got)
	}
	r.setPolicy(db.PolicyRequired)
	if got := r.scan(); !slices.Equal(got, []int{db.AnnounceDays}) {
		t.Errorf("required again: scan queued %v, want the announcement", got)
	}
	want := []int{db.AnnounceDays, 7, 7, 3, 1, db.AnnounceDays}
	if !slices.Equal(r.queued, want) {
		t.Errorf("queued %v, want %v", r.queued, want)
	}
}

// The transaction that queues an email checks again what the scan read:
// a member who enrolled, whose deadline moved, whose workspace relaxed its
// policy, or whose email another scan queued meanwhile gets nothing.
//
// Checked to fail: with the re-check in queueReminders reduced to the
// ON CONFLICT of mfa_reminders, "enrolled", "extended" and "relaxed" queue
// an email.
func TestScanRemindersRecheck(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		during func(r *reminderRig)
	}{
		{"Enrolled", func(r *reminderRig) { r.enroll(r.bob.ID) }},
		{"Extended", func(r *reminderRig) {
			if _, err := r.store.ExtendDeadline(ctx, r.ws.ID, r.owner.ID, r.bob.ID, 3, db.Meta{}); err != nil {
				r.t.Fatal(err)
			}
		}},
		{"Relaxed", func(r *reminderRig) { r.setPolicy(db.PolicyOff) }},
		{"QueuedByAnother", func(r *reminderRig) {
			r.during = nil
			if got := r.scan(); !slices.Equal(got, []int{db.AnnounceDays}) {
				r.t.Errorf("the other scan queued %v", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReminderRig(t)
			r.during = func(db.ReminderDue) { tc.during(r) }
			if got := r.scan(); len(got) != 0 {
				t.Errorf("scan queued %v", got)
			}
			msgs, err := r.store.OutboxMessages(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			var reminders int
			for _, m := range msgs {
				if m.Kind == "reminder" {
					reminders++
				}
			}
			if want := len(r.queued); reminders != want {
				t.Errorf("outbox holds %d reminders, want %d", reminders, want)
			}
		})
	}
}

// The scan's SQL (dueRemindersSQL) decides what Go's rule decides (the
// members it composes an email for, and which: the transaction's re-check
// would hide a member it wrongly found due), around every edge: deadlines a second before, on and after each reminder day,
// due now or passed, far ahead; nothing queued yet, each email already
// queued for this deadline, an email of this coverage period for another
// deadline (told), one of an earlier period (not told); under reminder
// days 7, 3, 1, under none, and under 30, 14, 2. The rule is DueReminder,
// then "not if this or a more urgent email was queued for this deadline,
// nor the announcement if told", as the transaction that queues checks it.
//
// Checked to fail: with the windows of dueDaysSQL off by one second (<
// instead of <=), and with the announcement's told check left out.
func TestScanRemindersMatchesRule(t *testing.T) {
	for _, days := range [][]int{{7, 3, 1}, {}, {30, 14, 2}} {
		t.Run(fmt.Sprint(days), func(t *testing.T) {
			ctx := context.Background()
			r := newReminderRig(t)
			if _, err := r.store.DB().Exec(`UPDATE workspaces SET reminder_days = ? WHERE id = ?`, joinDays(days), r.ws.ID); err != nil {
				t.Fatal(err)
			}
			p, err := r.store.Policy(ctx, r.ws.ID)
			if err != nil || !slices.Equal(p.ReminderDays, days) {
				t.Fatalf("policy %v, %v", p.ReminderDays, err)
			}
			now := r.clock.Now()
			since := now.Add(-20 * day)
			offsets := []time.Duration{-time.Second, 0, time.Second, time.Hour, 60 * day}
			for _, d := range days {
				offsets = append(offsets, time.Duration(d)*day-time.Second, time.Duration(d)*day, time.Duration(d)*day+time.Second)
			}
			type sent struct {
				other  bool // for another deadline
				before bool // before mfa_since
				days   int
			}
			histories := [][]sent{nil, {{days: db.AnnounceDays}}, {{other: true, days: db.AnnounceDays}}, {{other: true, before: true, days: db.AnnounceDays}}}
			for _, d := range days {
				histories = append(histories, []sent{{days: db.AnnounceDays}, {days: d}})
			}
			urgency := func(d int) int {
				if d == db.AnnounceDays {
					return 1 << 30
				}
				return d
			}
			want := map[int64]int{}
			n := 0
			for _, off := range offsets {
				for _, h := range histories {
					for _, nullSince := range []bool{false, true} {
						if nullSince && len(h) == 0 {
							continue
						}
						u, err := r.store.CreateUser(ctx, r.ws.ID, fmt.Sprintf("m%d@acme.test", n), db.RoleMember, "x", db.Meta{}, 0)
						if err != nil {
							t.Fatal(err)
						}
						n++
						deadline := now.Add(off)
						s := sql.NullInt64{Int64: since.Unix(), Valid: !nullSince}
						if _, err := r.store.DB().Exec(`UPDATE users SET mfa_since = ?, mfa_deadline = ? WHERE id = ?`, s, deadline.Unix(), u.ID); err != nil {
							t.Fatal(err)
						}
						minSent, told := 0, false
						for _, x := range h {
							dl, at := deadline, since.Add(time.Hour)
							if x.other {
								dl = deadline.Add(-7 * day)
							}
							if x.before {
								at = since.Add(-time.Hour)
							}
							if _, err := r.store.DB().Exec(`INSERT INTO mfa_reminders (workspace_id, user_id, deadline, days, created_at) VALUES (?, ?, ?, ?, ?)`,
								r.ws.ID, u.ID, dl.Unix(), x.days, at.Unix()); err != nil {
								t.Fatal(err)
							}
							if !x.other && (minSent == 0 || urgency(x.days) < minSent) {
								minSent = urgency(x.days)
							}
							if !x.before || nullSince {
								told = true
							}
						}
						due, ok := db.DueReminder(p, deadline, now)
						if ok && !(minSent != 0 && minSent <= urgency(due)) && !(due == db.AnnounceDays && told) {
							want[u.ID] = due
						}
					}
				}
			}
			// Bob (no deadline of his own here) and a member with an
			// allowed factor get nothing.
			got := map[int64]int{}
			queued, err := r.store.ScanReminders(ctx, func(d db.ReminderDue) (db.OutboxMessage, error) {
				if _, dup := got[d.User.ID]; dup {
					t.Errorf("member %d composed twice", d.User.ID)
				}
				got[d.User.ID] = d.Days
				return db.OutboxMessage{Kind: "reminder", To: d.User.Email, Subject: "s"}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(want) < 5 || len(want) > n-5 {
				t.Fatalf("%d of %d members due: the cases do not cover both answers", len(want), n)
			}
			if delete(got, r.bob.ID); !maps.Equal(got, want) {
				for id, d := range want {
					if g, ok := got[id]; !ok || g != d {
						t.Errorf("member %d: queued %v (%v), want %d", id, g, ok, d)
					}
				}
				for id, d := range got {
					if _, ok := want[id]; !ok {
						t.Errorf("member %d: queued %d, want nothing", id, d)
					}
				}
			}
			if queued != len(want)+1 {
				t.Errorf("ScanReminders = %d, want %d", queued, len(want)+1)
			}
		})
	}
}

func joinDays(days []int) string {
	var s []string
	for _, d := range days {
		s = append(s, strconv.Itoa(d))
	}
	return strings.Join(s, ",")
}

// A scan with more due members than one transaction takes queues each of
// them exactly once, with one outbox row and one audit event each, and
// the next scan nothing; two processes scanning at once (two handles on
// the database, several rounds as the clock crosses each reminder day)
// queue each email once between them.
//
// Checked to fail: with queueReminders auditing and enqueuing every
// member it decided, whether or not its mfa_reminders row went in (the
// ON CONFLICT outcome ignored), and with the re-check in the transaction
// removed, the two processes queue emails twice.
func TestScanRemindersBatches(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	ws, err := store.CreateWorkspace(ctx, "bench", "Bench")
	if err != nil {
		t.Fatal(err)
	}
	// 1,200 members without a factor, all covered with a deadline 14 days
	// ahead: more than two transactions' worth.
	dbtest.Members(t, store, ws.ID, 4_000, clock.Now())
	start := clock.Now()
	if _, err := store.DB().Exec(`UPDATE workspaces SET mfa_policy = 'required', reminder_days = '7,3,1' WHERE id = ?`, ws.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := store.DB().Exec(`UPDATE users SET mfa_since = ?, mfa_deadline = ? WHERE workspace_id = ?`, start.Unix(), start.Add(14*day).Unix(), ws.ID); err != nil {
		t.Fatal(err)
	}
	var due int
	if err := store.DB().QueryRow(`SELECT COUNT(*) FROM users WHERE workspace_id = ? AND mfa_factors = 0`, ws.ID).Scan(&due); err != nil || due != 1_200 {
		t.Fatalf("%d members without a factor, %v", due, err)
	}
	other, err := db.Open(ctx, store.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	other.Now = clock.Now
	compose := func(d db.ReminderDue) (db.OutboxMessage, error) {
		return db.OutboxMessage{Kind: "reminder", To: d.User.Email, Subject: fmt.Sprint(d.Days)}, nil
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := store.DB().QueryRow(q, ws.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	total := 0
	for i, at := range []time.Duration{0, 7 * day, 11 * day, 13 * day} {
		clock.Set(start.Add(at))
		if i == 0 {
			n, err := store.ScanReminders(ctx, compose)
			if err != nil || n != due {
				t.Fatalf("first scan queued %d, %v; want %d", n, err, due)
			}
			total += n
		} else {
			var wg sync.WaitGroup
			var n [2]int
			var errs [2]error
			for j, s := range []*db.Store{store, other} {
				wg.Add(1)
				go func() { defer wg.Done(); n[j], errs[j] = s.ScanReminders(ctx, compose) }()
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatal(errs)
			}
			if n[0]+n[1] != due {
				t.Errorf("+%v: the two scans queued %d and %d, want %d in all", at, n[0], n[1], due)
			}
			total += n[0] + n[1]
		}
		if n, err := store.ScanReminders(ctx, compose); err != nil || n != 0 {
			t.Errorf("+%v: a scan after queued %d, %v", at, n, err)
		}
	}
	if got := count(`SELECT COUNT(*) FROM outbox WHERE workspace_id = ? AND kind = 'reminder'`); got != 4*due || total != 4*due {
		t.Errorf("outbox holds %d reminders, scans counted %d; want %d", got, total, 4*due)
	}
	if got := count(`SELECT COUNT(*) FROM (SELECT DISTINCT to_addr, subject FROM outbox WHERE workspace_id = ? AND kind = 'reminder') x`); got != 4*due {
		t.Errorf("outbox holds %d distinct reminders, want %d", got, 4*due)
	}
	if got := count(`SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = 'mfa.reminder_queued'`); got != 4*due {
		t.Errorf("%d reminder_queued events, want %d", got, 4*due)
	}
	if got := count(`SELECT COUNT(*) FROM mfa_reminders WHERE workspace_id = ?`); got != 4*due {
		t.Errorf("mfa_reminders holds %d rows, want %d", got, 4*due)
	}
}
