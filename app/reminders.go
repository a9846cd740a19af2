package app

import (
	"context"
	"errors"
	"log/slog"
	"math"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

// ScanReminders queues the enforcement emails due now (DESIGN "Policies
// and enforcement"): the announcement when the requirement starts to apply
// to a member, then one reminder at each reminder day before their
// deadline. The store makes each one happen once per member and deadline
// whatever the number of processes scanning; the outbox delivers them.
func (j *Jobs) ScanReminders(ctx context.Context) (int, error) {
	n, err := j.Store.ScanReminders(ctx, j.composeReminder)
	if n > 0 {
		j.Log.Info("mfa reminders queued", slog.Int("count", n))
	}
	return n, err
}

// composeReminder writes the email a due reminder stands for. It holds no
// secret: the link is the member's security page, which needs a sign-in.
func (j *Jobs) composeReminder(d db.ReminderDue) (db.OutboxMessage, error) {
	if j.BaseURL == nil {
		return db.OutboxMessage{}, errors.New("reminder: no base URL for the link")
	}
	data := map[string]any{
		"Workspace": d.Workspace.Name,
		"Email":     d.User.Email,
		"Deadline":  mail.When(d.Deadline),
		"Link":      workspaceURL(j.BaseURL, d.Workspace.Slug, "/account/mfa"),
	}
	if d.Days == db.AnnounceDays {
		return mail.Compose(mail.KindMFAEnforced, d.User.Email, data)
	}
	// The days actually left, which is the reminder day unless the scan
	// comes late (after an outage: the most urgent missed reminder goes
	// out with the true count), rounded up like the banner's.
	data["DaysLeft"] = max(1, int(math.Ceil(d.Deadline.Sub(d.Now).Hours()/24)))
	return mail.Compose(mail.KindMFAReminder, d.User.Email, data)
}
