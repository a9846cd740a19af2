package db_test

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// BenchmarkScanReminders100k is the reminder scan the jobs run every minute,
// over the 100,000-member fixture under a required policy (dbtest.Members:
// half covered by a deadline, a third of those past it, a third an hour
// away, a third a week and an hour away; 30 % without a factor): 6,667
// members are in their grace period without an allowed factor.
//
//   - NothingDue: everything due was queued already; the scan reads and
//     queues nothing (what nearly every minute's scan does).
//   - AllDue: nothing was queued yet, so every one of those members gets
//     an email (the 1-day reminder or the announcement), each composed and
//     queued in its own transaction; the rows are removed between
//     iterations, off the clock. Run it with -benchtime 3x.
func BenchmarkScanReminders100k(b *testing.B) {
	benchScanReminders(b, 100_000, 6_667)
}

// BenchmarkScanReminders1M is BenchmarkScanReminders100k at 1,000,000
// members (66,667 of them due). Its fixture takes a while, so it runs only
// when asked by name: -bench ScanReminders1M (not with -bench .).
func BenchmarkScanReminders1M(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "1M") {
		b.Skip("run with -bench ScanReminders1M")
	}
	benchScanReminders(b, 1_000_000, 66_667)
}

func benchScanReminders(b *testing.B, members, due int) {
	ctx := context.Background()
	store, clock := dbtest.New(b)
	ws, err := store.CreateWorkspace(ctx, "bench", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	dbtest.Members(b, store, ws.ID, members, clock.Now())
	b.Logf("fixture of %d members: %s", members, time.Since(start).Round(time.Millisecond))
	// The fixture's deadlines as they are: only the mode changes.
	if _, err := store.DB().ExecContext(ctx, `UPDATE workspaces SET mfa_policy = 'required', enforced_since = ? WHERE id = ?`,
		clock.Now().Add(-30*24*time.Hour).Unix(), ws.ID); err != nil {
		b.Fatal(err)
	}
	compose := func(d db.ReminderDue) (db.OutboxMessage, error) {
		data := map[string]any{"Workspace": d.Workspace.Name, "Email": d.User.Email, "Deadline": mail.When(d.Deadline),
			"Link": "https://gatehouse.example/t/" + d.Workspace.Slug + "/account/mfa"}
		if d.Days == db.AnnounceDays {
			return mail.Compose(mail.KindMFAEnforced, d.User.Email, data)
		}
		data["DaysLeft"] = d.Days
		return mail.Compose(mail.KindMFAReminder, d.User.Email, data)
	}
	reset := func() {
		for _, q := range []string{`DELETE FROM mfa_reminders`, `DELETE FROM outbox`} {
			if _, err := store.DB().ExecContext(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("AllDue", func(b *testing.B) {
		queued := 0
		for b.Loop() {
			b.StopTimer()
			reset()
			b.StartTimer()
			n, err := store.ScanReminders(ctx, compose)
			if err != nil {
				b.Fatal(err)
			}
			if n != due {
				b.Fatalf("queued %d, want %d", n, due)
			}
			queued = n
		}
		b.ReportMetric(float64(queued), "queued/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(queued), "ns/queued")
	})

	b.Run("NothingDue", func(b *testing.B) {
		reset()
		if n, err := store.ScanReminders(ctx, compose); err != nil || n != due {
			b.Fatalf("first scan: %d, %v", n, err)
		}
		for b.Loop() {
			n, err := store.ScanReminders(ctx, compose)
			if err != nil {
				b.Fatal(err)
			}
			if n != 0 {
				b.Fatalf("queued %d, want 0", n)
			}
		}
	})
}
