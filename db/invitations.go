package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Invitation asks someone to join a workspace. Only the hash of its token is
// stored.
type Invitation struct {
	ID          int64
	WorkspaceID int64
	Email       string
	Role        string
	InvitedBy   int64
	CreatedAt   time.Time
	ExpiresAt   time.Time
	AcceptedAt  time.Time
}

const invitationColumns = `id, workspace_id, email, role, invited_by, created_at, expires_at, accepted_at`

func scanInvitation(row interface{ Scan(...any) error }) (Invitation, error) {
	var inv Invitation
	var by, accepted sql.NullInt64
	var created, expires int64
	if err := row.Scan(&inv.ID, &inv.WorkspaceID, &inv.Email, &inv.Role, &by, &created, &expires, &accepted); err != nil {
		return Invitation{}, err
	}
	inv.InvitedBy, inv.CreatedAt, inv.ExpiresAt, inv.AcceptedAt = by.Int64, unix(created), unix(expires), nullTime(accepted)
	return inv, nil
}

// CreateInvitation stores an invitation, audits it and queues msg (the
// invitation email) in one transaction. It returns ErrConflict when the
// email is already a member.
func (s *Store) CreateInvitation(ctx context.Context, workspaceID, invitedBy int64, email, role, tokenHash string, expires time.Time, meta Meta, msg OutboxMessage) (Invitation, error) {
	var inv Invitation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE workspace_id = ? AND email_key = ?`,
			workspaceID, EmailKey(email)).Scan(&exists); err != nil {
			return fmt.Errorf("create invitation: %w", err)
		}
		if exists > 0 {
			return fmt.Errorf("create invitation: %w", ErrConflict)
		}
		row := tx.QueryRowContext(ctx, `
			INSERT INTO invitations (workspace_id, email, email_key, role, token_hash, invited_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+invitationColumns,
			workspaceID, email, EmailKey(email), role, tokenHash, nullID(invitedBy), s.now(), expires.Unix())
		var err error
		if inv, err = scanInvitation(row); err != nil {
			return fmt.Errorf("create invitation: %w", err)
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: invitedBy, Event: EventInvitationCreated,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"email": email, "role": role, "invitation_id": inv.ID}}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
	return inv, err
}

// PendingInvitation returns the workspace's invitation with one of those
// token hashes (the token hashed under each key)
// if it is neither used, revoked nor expired; otherwise ErrNotFound, whatever
// the reason, so that a stale link reveals nothing.
func (s *Store) PendingInvitation(ctx context.Context, workspaceID int64, tokenHashes []string) (Invitation, error) {
	in, args := inList(tokenHashes)
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+invitationColumns+` FROM invitations
		WHERE workspace_id = ? AND token_hash IN (`+in+`) AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
		append(append([]any{workspaceID}, args...), s.now())...)
	inv, err := scanInvitation(row)
	if err != nil {
		return Invitation{}, notFound("pending invitation", err)
	}
	return inv, nil
}

// AcceptInvitation spends the invitation and creates the member with the
// given password hash, in one transaction. Spending is one conditional
// update, so two concurrent acceptances let exactly one through; the loser,
// and any used, revoked or expired link, gets ErrNotFound. It returns
// ErrConflict if the email became a member meanwhile.
func (s *Store) AcceptInvitation(ctx context.Context, workspaceID int64, tokenHashes []string, passwordHash string, meta Meta) (User, error) {
	var u User
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		in, args := inList(tokenHashes)
		row := tx.QueryRowContext(ctx, `
			UPDATE invitations SET accepted_at = ?
			WHERE workspace_id = ? AND token_hash IN (`+in+`) AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?
			RETURNING `+invitationColumns, append(append([]any{now, workspaceID}, args...), now)...)
		inv, err := scanInvitation(row)
		if err != nil {
			return notFound("accept invitation", err)
		}
		if u, err = s.insertUser(ctx, tx, workspaceID, inv.Email, inv.Role, passwordHash); err != nil {
			return err
		}
		// Other open invitations for the same address are void now.
		if _, err := tx.ExecContext(ctx, `UPDATE invitations SET revoked_at = ? WHERE workspace_id = ? AND email_key = ? AND accepted_at IS NULL AND revoked_at IS NULL`,
			now, workspaceID, EmailKey(inv.Email)); err != nil {
			return fmt.Errorf("accept invitation: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: u.ID, SubjectUserID: u.ID,
			Event: EventInvitationAccepted, IP: meta.IP, UserAgent: meta.UserAgent,
			Details: map[string]any{"invitation_id": inv.ID, "role": inv.Role}})
	})
	return u, err
}

// PendingInvitations lists a workspace's open invitations, newest first.
func (s *Store) PendingInvitations(ctx context.Context, workspaceID int64, limit int) ([]Invitation, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+invitationColumns+` FROM invitations
		WHERE workspace_id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?
		ORDER BY id DESC LIMIT ?`, workspaceID, s.now(), limit)
	if err != nil {
		return nil, fmt.Errorf("pending invitations: %w", err)
	}
	defer rows.Close()
	var out []Invitation
	for rows.Next() {
		inv, err := scanInvitation(rows)
		if err != nil {
			return nil, fmt.Errorf("pending invitations: %w", err)
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}
