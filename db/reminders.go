package db

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
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

// reminderBatch is how many members' emails one transaction queues: what a
// transaction costs beyond its rows (on SQLite a step of the writer's group
// commit, on PostgreSQL a commit and its round trips) is shared by them,
// and one holds the write lock (SQLite) or the workspace's lock
// (PostgreSQL) some tens of milliseconds at most.
const reminderBatch = 500

// ScanReminders queues the enforcement emails that are due: for every
// member covered by a requirement, without an allowed factor and before
// their deadline, the most urgent email due now, unless that one or a more
// urgent one was already queued for this deadline. Missed reminders are
// thus sent late, once, and only the most urgent. The announcement goes
// once per coverage period, not once per deadline: a member whose deadline
// an admin extended (or whose grace period changed) was already told, and
// gets only the reminder days counted from the new deadline.
//
// The members due are found by one statement per workspace under a
// requirement (dueRemindersSQL), which returns only them. Their emails are
// then composed, reminderBatch members at a time, and written to the
// outbox in the transaction that records them in mfa_reminders, after
// checking again inside it what the scan read; the key of mfa_reminders
// and the workspace's lock that transaction takes make a second sending
// impossible, so several processes may scan at once. compose writes the email; it
// returns how many were queued.
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
	q, args := dueRemindersSQL(w.ID, p, now)
	rows, err := s.q(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("scan reminders: %w", err)
	}
	// What is due, kept small (a workspace of a million members that just
	// turned the requirement on has most of them due): the ReminderDue of
	// each is made with its batch.
	type member struct {
		id, deadline int64
		days         int
	}
	var due []member
	for rows.Next() {
		var m member
		if err := rows.Scan(&m.id, &m.deadline, &m.days); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan reminders: %w", err)
		}
		due = append(due, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("scan reminders: %w", err)
	}
	queued := 0
	batch := make([]ReminderDue, 0, min(len(due), reminderBatch))
	for len(due) > 0 {
		batch = batch[:0]
		for _, m := range due[:min(len(due), reminderBatch)] {
			batch = append(batch, ReminderDue{Workspace: w, Policy: p, User: User{ID: m.id}, Deadline: unix(m.deadline), Days: m.days, Now: now})
		}
		due = due[len(batch):]
		n, err := s.queueReminders(ctx, w.ID, batch, compose)
		queued += n
		if err != nil {
			return queued, err
		}
	}
	return queued, nil
}

// dueRemindersSQL is the statement that finds the members of workspace
// workspaceID who are due an enforcement email at now under p, with the
// email due: rows of (users.id, mfa_deadline, days). It is the scan's
// rule in SQL, one statement for the whole workspace:
//
//   - the candidates are the members without an allowed factor whose
//     deadline is ahead (noncompliantSQL over the factor summary), covered
//     by p when p does not cover every role: a range of the users_reminders
//     index (workspace_id, mfa_factors, mfa_deadline, mfa_since, id), which
//     holds everything the statement reads of them when p covers every
//     role (and SMS, allowed, is not kept from admins);
//   - the email due is DueReminder's, decided by which window between the
//     reminder days the deadline falls in (dueDaysSQL, generated from it);
//   - a candidate is due unless mfa_reminders holds that email or a more
//     urgent one for this deadline, or, for the announcement, any email
//     since the requirement started to apply to them (toldSQL): one look
//     at the member's few rows through the key of mfa_reminders.
//
// A scan with nothing due thus returns no row and reads no users row
// (on PostgreSQL, none whose page the visibility map shows all-visible).
func dueRemindersSQL(workspaceID int64, p Policy, now time.Time) (string, []any) {
	days, dargs := dueDaysSQL(p, "u.mfa_deadline", now)
	covered := ""
	if !(p.AppliesTo(RoleOwner) && p.AppliesTo(RoleAdmin) && p.AppliesTo(RoleMember)) {
		covered = ` AND ` + p.coversSQL("u.role")
	}
	q := `SELECT c.id, c.deadline, c.days FROM (
			SELECT u.id, u.mfa_deadline AS deadline, COALESCE(u.mfa_since, 0) AS since, ` + days + ` AS days
			FROM users u
			WHERE u.workspace_id = ? AND ` + p.noncompliantSQL("u.mfa_factors", "u.role") + covered + ` AND u.mfa_deadline > ?) c
		WHERE NOT EXISTS (SELECT 1 FROM mfa_reminders r WHERE r.workspace_id = ? AND r.user_id = c.id
			AND ((r.deadline = c.deadline AND (c.days = ? OR (r.days <> ? AND r.days <= c.days)))
				OR (c.days = ? AND r.created_at >= c.since)))`
	args := append(dargs, workspaceID, now.Unix(), workspaceID, AnnounceDays, AnnounceDays, AnnounceDays)
	return q, args
}

// dueDaysSQL is DueReminder in SQL, generated from it, for a deadline (an
// expression of unix seconds) that is ahead of now: a CASE over the
// windows between the reminder days, nearest first. DueReminder names the
// same email for every deadline of a window (the same reminder days have
// come for all of them), so the CASE asks it at each window's far edge,
// and beyond the last one.
func dueDaysSQL(p Policy, deadline string, now time.Time) (string, []any) {
	var edges []int
	for _, d := range p.ReminderDays {
		if d > 0 {
			edges = append(edges, d)
		}
	}
	slices.Sort(edges)
	edges = slices.Compact(edges)
	var b strings.Builder
	var args []any
	b.WriteString(`CASE`)
	last := now
	for _, d := range edges {
		last = now.Add(time.Duration(d) * 24 * time.Hour)
		days, _ := DueReminder(p, last, now)
		b.WriteString(` WHEN ` + deadline + ` <= ? THEN CAST(? AS BIGINT)`)
		args = append(args, last.Unix(), days)
	}
	days, _ := DueReminder(p, last.Add(time.Second), now)
	if len(edges) == 0 {
		return `CAST(? AS BIGINT)`, []any{days}
	}
	b.WriteString(` ELSE CAST(? AS BIGINT) END`)
	return b.String(), append(args, days)
}

// toldSQL is a SQL expression over a users row u: whether any enforcement
// email was queued for the member since the requirement started to apply
// to them (mfa_since), whatever the deadline then.
const toldSQL = `EXISTS (SELECT 1 FROM mfa_reminders rm WHERE rm.workspace_id = u.workspace_id AND rm.user_id = u.id
	AND rm.created_at >= COALESCE(u.mfa_since, 0))`

// reminderEmail is a due email, composed.
type reminderEmail struct {
	d   ReminderDue
	msg OutboxMessage
}

// queueReminders composes the emails of a batch of due members of one
// workspace, then queues them in one transaction (recordReminders). The
// emails are composed before it, so that it holds the write lock (SQLite)
// or the workspace's lock (PostgreSQL) only for its statements. If compose fails, the emails composed before are queued and
// the error returned.
func (s *Store) queueReminders(ctx context.Context, workspaceID int64, batch []ReminderDue, compose func(ReminderDue) (OutboxMessage, error)) (int, error) {
	ids := make([]int64, len(batch))
	for i, d := range batch {
		ids[i] = d.User.ID
	}
	list, idArgs := inList(ids)
	users := make(map[int64]User, len(batch))
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND id IN (`+list+`)`,
		append([]any{workspaceID}, idArgs...)...)
	if err != nil {
		return 0, fmt.Errorf("scan reminders: %w", err)
	}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan reminders: %w", err)
		}
		u.PasswordHash = "" // not needed past this point
		users[u.ID] = u
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("scan reminders: %w", err)
	}
	emails := make([]reminderEmail, 0, len(batch))
	var composeErr error
	for _, d := range batch {
		u, ok := users[d.User.ID]
		if !ok {
			continue // gone since
		}
		d.User = u
		msg, err := compose(d)
		if err != nil {
			composeErr = fmt.Errorf("scan reminders: compose: %w", err)
			break
		}
		emails = append(emails, reminderEmail{d, msg})
	}
	if len(emails) == 0 {
		return 0, composeErr
	}
	queued := 0
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		queued, err = s.recordReminders(ctx, tx, workspaceID, emails)
		return err
	}); err != nil {
		return 0, err
	}
	return queued, composeErr
}

// recordReminders queues the emails of members of one workspace in tx:
// it records each in mfa_reminders and writes its audit event and its
// outbox row, after checking again (inside tx) for each member that
// neither its email nor a more urgent one was queued meanwhile by another
// process (nor, for the announcement, any email of this coverage period),
// and that the member still has this deadline, is still covered by the
// workspace's current policy and holds none of the factors it allows. It
// returns how many it queued.
func (s *Store) recordReminders(ctx context.Context, tx *sql.Tx, workspaceID int64, emails []reminderEmail) (int, error) {
	// The workspace's lock, as for every rule over many members: the
	// policy and the deadlines cannot change before this commits, and two
	// processes' batches of one workspace take turns, so that each reads
	// below what the other queued (an announcement it queued for a
	// deadline since extended, say, which the key of mfa_reminders alone
	// would let through). The members' rows are not locked: this writes
	// none of them, and what may change them meanwhile without the
	// workspace's lock (a factor added) would change nothing that is
	// written here but the email's relevance, as if it came after.
	if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
		return 0, err
	}
	p, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID))
	if err != nil {
		return 0, notFound("queue reminders", err)
	}
	ids := make([]int64, len(emails))
	for i, e := range emails {
		ids[i] = e.d.User.ID
	}
	list, idArgs := inList(ids)
	type state struct {
		role       string
		deadline   int64
		still      bool          // without an allowed factor
		told       bool          // toldSQL
		mostUrgent sql.NullInt64 // the urgency of the most urgent email queued for the deadline
	}
	members := make(map[int64]state, len(ids))
	rows, err := tx.QueryContext(ctx, `SELECT u.id, u.role, COALESCE(u.mfa_deadline, 0),
			CASE WHEN `+p.noncompliantSQL("u.mfa_factors", "u.role")+` THEN 1 ELSE 0 END, `+toldSQL+`,
			(SELECT MIN(CASE WHEN r.days = ? THEN ? ELSE r.days END) FROM mfa_reminders r
				WHERE r.workspace_id = u.workspace_id AND r.user_id = u.id AND r.deadline = u.mfa_deadline)
		FROM users u WHERE u.workspace_id = ? AND u.id IN (`+list+`)`,
		append([]any{AnnounceDays, urgency(AnnounceDays), workspaceID}, idArgs...)...)
	if err != nil {
		return 0, fmt.Errorf("queue reminders: %w", err)
	}
	for rows.Next() {
		var id int64
		var st state
		if err := rows.Scan(&id, &st.role, &st.deadline, &st.still, &st.told, &st.mostUrgent); err != nil {
			rows.Close()
			return 0, fmt.Errorf("queue reminders: %w", err)
		}
		members[id] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("queue reminders: %w", err)
	}

	// Those still due are recorded: the key of mfa_reminders lets each
	// (member, deadline, days) in once, and RETURNING says which went in.
	now := s.now()
	var values strings.Builder
	var args []any
	for _, e := range emails {
		d := e.d
		st, ok := members[d.User.ID]
		if !ok || !st.still || st.deadline != d.Deadline.Unix() || !p.AppliesTo(st.role) {
			continue // gone, enrolled, given another deadline, or no longer covered
		}
		if (d.Days == AnnounceDays && st.told) || (st.mostUrgent.Valid && st.mostUrgent.Int64 <= int64(urgency(d.Days))) {
			continue // already told
		}
		if len(args) > 0 {
			values.WriteString(", ")
		}
		values.WriteString(`(?, ?, ?, ?, ?)`)
		args = append(args, workspaceID, d.User.ID, d.Deadline.Unix(), d.Days, now)
	}
	if len(args) == 0 {
		return 0, nil
	}
	rows, err = tx.QueryContext(ctx, `INSERT INTO mfa_reminders (workspace_id, user_id, deadline, days, created_at)
		VALUES `+values.String()+` ON CONFLICT DO NOTHING RETURNING user_id`, args...)
	if err != nil {
		return 0, fmt.Errorf("queue reminders: %w", err)
	}
	recorded := make(map[int64]bool, len(args)/5)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("queue reminders: %w", err)
		}
		recorded[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("queue reminders: %w", err)
	}

	// Their audit events and outbox rows: one statement each for the batch.
	var audits []AuditEvent
	var mails []OutboxMessage
	for _, e := range emails {
		d := e.d
		if !recorded[d.User.ID] {
			continue
		}
		audits = append(audits, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: d.User.ID, Event: EventReminderQueued,
			Details: map[string]any{"days": d.Days, "deadline": d.Deadline.Format(time.RFC3339)}})
		mails = append(mails, e.msg)
	}
	if err := s.insertAudits(ctx, tx, audits...); err != nil {
		return 0, err
	}
	if err := s.enqueueAll(ctx, tx, workspaceID, mails...); err != nil {
		return 0, err
	}
	queued := len(audits)
	return queued, nil
}
