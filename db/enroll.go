package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Audit events of enrollment under enforcement.
const (
	EventEnrollLinkSent = "mfa.enroll_link.sent"
	EventEnrollLinkUsed = "mfa.enroll_link.used"
)

// CreateEnrollLink stores an enrollment link (its token's hash) for the
// member and the session that asked, audits it and queues msg, in one
// transaction. The request is counted first, per member, by the throttle
// (limit links a window): a *TooManyError (ErrTooMany) when the member
// already had limit, and nothing is stored or sent.
func (s *Store) CreateEnrollLink(ctx context.Context, workspaceID, userID int64, sessionID, tokenHash string, expires time.Time, limit int, window time.Duration, meta Meta, msg OutboxMessage) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		now := s.now()
		if _, err := s.throttleTake(ctx, tx, fmt.Sprintf("enroll_link:%d:%d", workspaceID, userID), window, limit); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO enroll_links (workspace_id, user_id, session_id, token_hash, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, workspaceID, userID, sessionID, tokenHash, now, expires.Unix()); err != nil {
			return fmt.Errorf("create enroll link: %w", err)
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID, Event: EventEnrollLinkSent,
			IP: meta.IP, UserAgent: meta.UserAgent}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
}

// UseEnrollLink consumes the link with one of those token hashes if it is
// the member's, of that workspace and session, unused and unexpired: a
// conditional update, so of two racing requests exactly one wins. Anything
// else is ErrNotFound and changes nothing.
func (s *Store) UseEnrollLink(ctx context.Context, workspaceID, userID int64, sessionID string, tokenHashes []string, meta Meta) error {
	in, args := inList(tokenHashes)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		now := s.now()
		res, err := tx.ExecContext(ctx, `UPDATE enroll_links SET used_at = ?
			WHERE workspace_id = ? AND user_id = ? AND session_id = ? AND token_hash IN (`+in+`) AND used_at IS NULL AND expires_at > ?`,
			append(append([]any{now, workspaceID, userID, sessionID}, args...), now)...)
		if err != nil {
			return fmt.Errorf("use enroll link: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("use enroll link: %w", err)
		} else if n != 1 {
			return fmt.Errorf("use enroll link: %w", ErrNotFound)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID, Event: EventEnrollLinkUsed,
			IP: meta.IP, UserAgent: meta.UserAgent})
	})
}
