package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ReminderDue is an enforcement email the scan decided to send.
type ReminderDue struct {
	Workspace Workspace
	Policy    Policy
	User      User
	Deadline  time.Time
	Days      int       // AnnounceDays for the announcement, else the reminder day
	Now       time.Time // when the scan found it due
}

// DueReminder returns which enforcement email is due at now for a deadline
// (the most urgent one), and whether any is: the announcement until the
// first reminder day, then each reminder day; nothing once the deadline
// has passed.
func DueReminder(p Policy, deadline, now time.Time) (int, bool) {
	if !now.Before(deadline) {
		return 0, false
	}
	due := AnnounceDays
	for _, d := range p.ReminderDays { // most distant first
		if !now.Before(deadline.Add(-time.Duration(d) * 24 * time.Hour)) {
			due = d
		}
	}
	return due, true
}

// urgency orders reminder days: the announcement is the least urgent.
func urgency(days int) int {
	if days == AnnounceDays {
		return 1 << 30
	}
	return days
}

// ScanReminders queues the enforcement emails that are due: for every
// member covered by a requirement, without an allowed factor and before
// their deadline, the most urgent email due now, unless that one or a more
// urgent one was already queued for this deadline. Missed reminders are
// thus sent late, once, and only the most urgent. The announcement goes
// once per coverage period, not once per deadline: a member whose deadline
// an admin extended (or whose grace period changed) was already told, and
// gets only the reminder days counted from the new deadline. Each email is written to
// the outbox in the transaction that records it in mfa_reminders, whose
// key makes a second sending impossible, so several processes may scan at
// once. compose writes the email; it returns how many were queued.
func (s *Store) ScanReminders(ctx context.Context, compose func(ReminderDue) (OutboxMessage, error)) (int, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+workspaceColumns+`, `+policyColumns+` FROM workspaces WHERE mfa_policy IN ('required', 'required_for_admins') ORDER BY id`)
	if err != nil {
		return 0, fmt.Errorf("scan reminders: %w", err)
	}
	type ws struct {
		w Workspace
		p Policy
	}
	var list []ws
	for rows.Next() {
		var w Workspace
		var p Policy
		var abs, idle, created int64
		var methods, days string
		var since sql.NullInt64
		if err := rows.Scan(&w.ID, &w.Slug, &w.Name, &abs, &idle, &created, &p.Mode, &methods, &p.GraceDays, &days, &p.TrustedDeviceDays, &since, &p.SMSAdminsForbidden); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan reminders: %w", err)
		}
		w.SessionAbsolute, w.SessionIdle, w.CreatedAt = time.Duration(abs)*time.Minute, time.Duration(idle)*time.Minute, unix(created)
		p.Methods = strings.Split(methods, ",")
		p.ReminderDays, _ = ParseDays(days)
		if since.Valid {
			p.EnforcedSince = unix(since.Int64)
		}
		list = append(list, ws{w, p})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("scan reminders: %w", err)
	}
	queued := 0
	for _, x := range list {
		n, err := s.scanWorkspaceReminders(ctx, x.w, x.p, compose)
		queued += n
		if err != nil {
			return queued, err
		}
	}
	return queued, nil
}

func (s *Store) scanWorkspaceReminders(ctx context.Context, w Workspace, p Policy, compose func(ReminderDue) (OutboxMessage, error)) (int, error) {
	now := s.Now()
	// The candidates come from the users_reminders index alone (with a
	// look at mfa_reminders for each): a scan with nothing due reads no
	// users row. Their factors are the summary's (users.mfa_factors), read
	// again in the transaction that queues.
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT u.id, u.mfa_deadline,
			(SELECT MIN(CASE WHEN r.days = ? THEN ? ELSE r.days END) FROM mfa_reminders r
				WHERE r.workspace_id = u.workspace_id AND r.user_id = u.id AND r.deadline = u.mfa_deadline),
			`+toldSQL+`
		FROM users u WHERE u.workspace_id = ? AND `+p.noncompliantSQL("u.mfa_factors", "u.role")+` AND u.mfa_deadline > ?`,
		AnnounceDays, urgency(AnnounceDays), w.ID, now.Unix())
	if err != nil {
		return 0, fmt.Errorf("scan reminders: %w", err)
	}
	var due []ReminderDue
	for rows.Next() {
		var id, deadline int64
		var sent sql.NullInt64
		var told bool
		if err := rows.Scan(&id, &deadline, &sent, &told); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan reminders: %w", err)
		}
		days, ok := DueReminder(p, unix(deadline), now)
		if !ok || (sent.Valid && sent.Int64 <= int64(urgency(days))) || (days == AnnounceDays && told) {
			continue
		}
		due = append(due, ReminderDue{Workspace: w, Policy: p, User: User{ID: id}, Deadline: unix(deadline), Days: days, Now: now})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("scan reminders: %w", err)
	}
	queued := 0
	for _, d := range due {
		u, err := s.UserByID(ctx, w.ID, d.User.ID)
		if errors.Is(err, ErrNotFound) {
			continue // gone since
		} else if err != nil {
			return queued, fmt.Errorf("scan reminders: %w", err)
		}
		u.PasswordHash = "" // not needed past this point
		d.User = u
		msg, err := compose(d)
		if err != nil {
			return queued, fmt.Errorf("scan reminders: compose: %w", err)
		}
		ok, err := s.queueReminder(ctx, d, msg)
		if err != nil {
			return queued, err
		}
		if ok {
			queued++
		}
	}
	return queued, nil
}

// toldSQL is a SQL expression over a users row u: whether any enforcement
// email was queued for the member since the requirement started to apply
// to them (mfa_since), whatever the deadline then.
const toldSQL = `EXISTS (SELECT 1 FROM mfa_reminders rm WHERE rm.workspace_id = u.workspace_id AND rm.user_id = u.id
	AND rm.created_at >= COALESCE(u.mfa_since, 0))`

// queueReminder records one due email and writes it to the outbox in one
// transaction, after checking again (inside it) that neither it nor a more
// urgent one was queued meanwhile by another process (nor, for the
// announcement, any email of this coverage period), and that the member
// still has this deadline, is still covered by the workspace's current
// policy and holds none of the factors it allows.
func (s *Store) queueReminder(ctx context.Context, d ReminderDue, msg OutboxMessage) (bool, error) {
	queued := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		p, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, d.Workspace.ID))
		if err != nil {
			return notFound("queue reminder", err)
		}
		var still, told bool
		var role string
		if err := tx.QueryRowContext(ctx, `SELECT u.role,
				CASE WHEN u.mfa_deadline = ? AND `+p.noncompliantSQL("u.mfa_factors", "u.role")+` THEN 1 ELSE 0 END, `+toldSQL+`
			FROM users u WHERE u.workspace_id = ? AND u.id = ?`,
			d.Deadline.Unix(), d.Workspace.ID, d.User.ID).Scan(&role, &still, &told); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil // the member is gone
			}
			return fmt.Errorf("queue reminder: %w", err)
		}
		if !still || !p.AppliesTo(role) || (d.Days == AnnounceDays && told) {
			return nil // no longer concerned, or already told
		}
		var sent sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MIN(CASE WHEN days = ? THEN ? ELSE days END) FROM mfa_reminders
			WHERE workspace_id = ? AND user_id = ? AND deadline = ?`, AnnounceDays, urgency(AnnounceDays),
			d.Workspace.ID, d.User.ID, d.Deadline.Unix()).Scan(&sent); err != nil {
			return fmt.Errorf("queue reminder: %w", err)
		}
		if sent.Valid && sent.Int64 <= int64(urgency(d.Days)) {
			return nil
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO mfa_reminders (workspace_id, user_id, deadline, days, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, d.Workspace.ID, d.User.ID, d.Deadline.Unix(), d.Days, s.now())
		if err != nil {
			return fmt.Errorf("queue reminder: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: d.Workspace.ID, SubjectUserID: d.User.ID, Event: EventReminderQueued,
			Details: map[string]any{"days": d.Days, "deadline": d.Deadline.Format(time.RFC3339)}}); err != nil {
			return err
		}
		queued = true
		return s.enqueue(ctx, tx, d.Workspace.ID, msg)
	})
	return queued, err
}
