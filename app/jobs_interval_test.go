package app_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// GATEHOUSE_JOBS_INTERVAL sets how often serve's mail loop and its reminder
// and reset scans run; unset, they keep 5 s and one minute.
func TestJobsInterval(t *testing.T) {
	env := map[string]string{"GATEHOUSE_SMTP_URL": "smtp://127.0.0.1:25?from=a@example.com&tls=none"}
	getenv := func(k string) string { return env[k] }
	jobs := func() *app.Jobs {
		t.Helper()
		cfg, err := app.LoadConfig(getenv)
		if err != nil {
			t.Fatal(err)
		}
		return app.NewJobs(nil, slog.New(slog.DiscardHandler), cfg)
	}
	if j := jobs(); j.ReminderEvery != time.Minute || j.Mail.Interval != 5*time.Second {
		t.Errorf("unset: reminders every %v, mail every %v; want 1m and 5s", j.ReminderEvery, j.Mail.Interval)
	}
	env["GATEHOUSE_JOBS_INTERVAL"] = "250ms"
	if j := jobs(); j.ReminderEvery != 250*time.Millisecond || j.Mail.Interval != 250*time.Millisecond || j.CleanupEvery != 10*time.Minute {
		t.Errorf("250ms: reminders every %v, mail every %v, cleanup every %v; want 250ms, 250ms, 10m", j.ReminderEvery, j.Mail.Interval, j.CleanupEvery)
	}
	for _, bad := range []string{"5", "50ms", "2h", "soon"} {
		env["GATEHOUSE_JOBS_INTERVAL"] = bad
		if _, err := app.LoadConfig(getenv); err == nil {
			t.Errorf("GATEHOUSE_JOBS_INTERVAL=%q accepted", bad)
		}
	}
}
