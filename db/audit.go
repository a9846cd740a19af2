package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Audit event names.
const (
	EventSignInSucceeded     = "sign_in.succeeded"
	EventSignInFailed        = "sign_in.failed"
	EventSignInThrottled     = "sign_in.throttled"
	EventSignedOut           = "session.signed_out"
	EventSessionEnded        = "session.ended"
	EventSessionsEndedOthers = "session.ended_others"
	EventPasswordChanged     = "password.changed"
	EventMemberCreated       = "member.created"
	EventInvitationCreated   = "invitation.created"
	EventInvitationAccepted  = "invitation.accepted"
)

// AuditEvent is one entry of the append-only audit trail.
type AuditEvent struct {
	ID            int64
	WorkspaceID   int64 // 0 for platform events
	ActorUserID   int64 // 0 when nobody is signed in
	SubjectUserID int64 // 0 when the event is about no member
	Event         string
	IP            string
	UserAgent     string
	Details       map[string]any
	CreatedAt     time.Time
	// ActorEmail and SubjectEmail are read by AuditEvents: the members'
	// emails, "" when there is none in the workspace.
	ActorEmail, SubjectEmail string
}

// Meta is where a request came from, for the audit trail.
type Meta struct {
	IP        string
	UserAgent string
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// insertAudit appends ev inside tx.
func (s *Store) insertAudit(ctx context.Context, tx *sql.Tx, ev AuditEvent) error {
	return s.insertAudits(ctx, tx, ev)
}

// insertAudits appends evs inside tx, one statement for up to
// rowsPerInsert events.
func (s *Store) insertAudits(ctx context.Context, tx *sql.Tx, evs ...AuditEvent) error {
	now := s.now()
	rows := make([][]any, 0, len(evs))
	for _, ev := range evs {
		details := []byte("{}")
		if len(ev.Details) > 0 {
			var err error
			if details, err = json.Marshal(ev.Details); err != nil {
				return fmt.Errorf("audit details: %w", err)
			}
		}
		rows = append(rows, []any{nullID(ev.WorkspaceID), nullID(ev.ActorUserID), nullID(ev.SubjectUserID), ev.Event,
			truncate(ev.IP, 64), truncate(ev.UserAgent, 512), string(details), now})
	}
	if err := insertValues(ctx, tx, `INSERT INTO audit_events (workspace_id, actor_user_id, subject_user_id, event, ip, user_agent, details, created_at)`, rows); err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}

// insertValues runs insert (an INSERT INTO … with its column list) with a
// VALUES list of rows, one statement for up to rowsPerInsert of them.
// Every row has one value per column.
func insertValues(ctx context.Context, tx *sql.Tx, insert string, rows [][]any) error {
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), rowsPerInsert)]
		rows = rows[len(chunk):]
		var q strings.Builder
		q.WriteString(insert + ` VALUES `)
		var args []any
		for i, r := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?" + strings.Repeat(", ?", len(r)-1) + ")")
			args = append(args, r...)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// rowsPerInsert bounds a multi-row INSERT: 500 rows of 8 values stay far
// below either engine's limit on bound parameters.
const rowsPerInsert = 500

// Audit appends one event on its own.
func (s *Store) Audit(ctx context.Context, ev AuditEvent) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.insertAudit(ctx, tx, ev) })
}

// AuditFilter narrows AuditEvents. Zero values filter nothing.
type AuditFilter struct {
	// MemberID matches events where the member is the actor or the subject.
	MemberID int64
	// SubjectUserID matches events about one member only.
	SubjectUserID int64
	// Event is an exact event name, or a prefix when it ends with "."
	// ("mfa." matches every MFA event).
	Event string
	// Since and Until bound created_at: Since <= created_at < Until.
	Since, Until time.Time
	// Before is the keyset cursor: only ids below it (0 = from the newest).
	Before int64
	// Limit caps the rows returned; at most 1000.
	Limit int
}

// MaxAuditPage is the largest Limit AuditEvents accepts.
const MaxAuditPage = 1000

// AuditEvents lists a workspace's events matching f, newest (highest id)
// first, with the emails of actor and subject when they belong to the
// workspace. Paging is by id (f.Before), so rows written while a reader
// pages never shift its pages.
func (s *Store) AuditEvents(ctx context.Context, workspaceID int64, f AuditFilter) ([]AuditEvent, error) {
	if f.Limit <= 0 || f.Limit > MaxAuditPage {
		return nil, fmt.Errorf("audit events: limit %d out of range", f.Limit)
	}
	// cond is every filter but the member, on the alias e.
	cond := `e.workspace_id = ?`
	args := []any{workspaceID}
	if f.SubjectUserID != 0 {
		cond += ` AND e.subject_user_id = ?`
		args = append(args, f.SubjectUserID)
	}
	if prefix, ok := strings.CutSuffix(f.Event, "."); ok && prefix != "" {
		// A range rather than LIKE: no wildcard escaping, and it is
		// case-sensitive like the exact match. '/' sorts right after '.'.
		// The || '' keeps the planner off the event index here: a prefix
		// such as "mfa." matches much of the log, and walking ids newest
		// first beats sorting every match (a rare prefix scans instead).
		cond += ` AND e.event || '' >= ? AND e.event || '' < ?`
		args = append(args, prefix+".", prefix+"/")
	} else if f.Event != "" {
		cond += ` AND e.event = ?`
		args = append(args, f.Event)
	}
	if !f.Since.IsZero() {
		cond += ` AND e.created_at >= ?`
		args = append(args, f.Since.Unix())
	}
	if !f.Until.IsZero() {
		cond += ` AND e.created_at < ?`
		args = append(args, f.Until.Unix())
	}
	if f.Before != 0 {
		cond += ` AND e.id < ?`
		args = append(args, f.Before)
	}
	if f.MemberID != 0 {
		// Actor or subject: each half walks its own index newest first
		// and stops at the limit, so a rare member costs a few rows, not
		// a scan of the workspace's log (an OR would pick one index).
		half := `SELECT id FROM (SELECT e.id FROM audit_events e WHERE ` + cond + ` AND e.%[1]s_user_id = ? ORDER BY e.id DESC LIMIT ?) AS %[1]s_half`
		both := append(append([]any{}, args...), f.MemberID, f.Limit)
		both = append(append(both, args...), f.MemberID, f.Limit)
		cond = `e.workspace_id = ? AND e.id IN (` + fmt.Sprintf(half, "subject") + ` UNION ALL ` + fmt.Sprintf(half, "actor") + `)`
		args = append([]any{workspaceID}, both...)
	}
	// The user joins repeat the workspace: an id from elsewhere (a platform
	// actor) never yields another workspace's email.
	query := `SELECT e.id, e.workspace_id, e.actor_user_id, e.subject_user_id, e.event, e.ip, e.user_agent, e.details, e.created_at,
			COALESCE(a.email, ''), COALESCE(su.email, '')
		FROM audit_events e
		LEFT JOIN users a ON a.id = e.actor_user_id AND a.workspace_id = e.workspace_id
		LEFT JOIN users su ON su.id = e.subject_user_id AND su.workspace_id = e.workspace_id
		WHERE ` + cond + ` ORDER BY e.id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.q(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("audit events: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var ev AuditEvent
		var ws, actor, subject sql.NullInt64
		var details string
		var created int64
		if err := rows.Scan(&ev.ID, &ws, &actor, &subject, &ev.Event, &ev.IP, &ev.UserAgent, &details, &created,
			&ev.ActorEmail, &ev.SubjectEmail); err != nil {
			return nil, fmt.Errorf("audit events: %w", err)
		}
		ev.WorkspaceID, ev.ActorUserID, ev.SubjectUserID = ws.Int64, actor.Int64, subject.Int64
		ev.CreatedAt = unix(created)
		_ = json.Unmarshal([]byte(details), &ev.Details)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit events: %w", err)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
