package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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
}

// Meta is where a request came from, for the audit trail.
type Meta struct {
	IP        string
	UserAgent string
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// insertAudit appends ev inside tx.
func (s *Store) insertAudit(ctx context.Context, tx *sql.Tx, ev AuditEvent) error {
	details := []byte("{}")
	if len(ev.Details) > 0 {
		var err error
		if details, err = json.Marshal(ev.Details); err != nil {
			return fmt.Errorf("audit details: %w", err)
		}
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO audit_events (workspace_id, actor_user_id, subject_user_id, event, ip, user_agent, details, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		nullID(ev.WorkspaceID), nullID(ev.ActorUserID), nullID(ev.SubjectUserID), ev.Event,
		truncate(ev.IP, 64), truncate(ev.UserAgent, 512), string(details), s.now())
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}

// Audit appends one event on its own.
func (s *Store) Audit(ctx context.Context, ev AuditEvent) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.insertAudit(ctx, tx, ev) })
}

// AuditEvents lists a workspace's events, newest first, optionally about
// one member, with ids below before (0 = from the newest).
func (s *Store) AuditEvents(ctx context.Context, workspaceID, subjectUserID, before int64, limit int) ([]AuditEvent, error) {
	query := `SELECT id, workspace_id, actor_user_id, subject_user_id, event, ip, user_agent, details, created_at
		FROM audit_events WHERE workspace_id = ?`
	args := []any{workspaceID}
	if subjectUserID != 0 {
		query += ` AND subject_user_id = ?`
		args = append(args, subjectUserID)
	}
	if before != 0 {
		query += ` AND id < ?`
		args = append(args, before)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
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
		if err := rows.Scan(&ev.ID, &ws, &actor, &subject, &ev.Event, &ev.IP, &ev.UserAgent, &details, &created); err != nil {
			return nil, fmt.Errorf("audit events: %w", err)
		}
		ev.WorkspaceID, ev.ActorUserID, ev.SubjectUserID = ws.Int64, actor.Int64, subject.Int64
		ev.CreatedAt = unix(created)
		_ = json.Unmarshal([]byte(details), &ev.Details)
		out = append(out, ev)
	}
	return out, rows.Err()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
