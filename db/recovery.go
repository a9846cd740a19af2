package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Self-service recovery by email (migration 0012): a member who lost every
// factor asks, after their password, for a link by email; following it
// starts a waiting period announced by email with a cancel link; then the
// jobs reset the member as an admin reset would. Signing in with a second
// factor meanwhile cancels it.

// Self-service recovery audit events.
const (
	EventRecoveryRequested      = "recovery.requested"
	EventRecoveryStarted        = "recovery.started"
	EventRecoveryCancelled      = "recovery.cancelled"
	EventMFAResetBySelfRecovery = "mfa.reset_by_self_recovery"
)

// Waiting period bounds, in hours.
const (
	DefaultRecoveryWaitHours = 72
	MinRecoveryWaitHours     = 24
	MaxRecoveryWaitHours     = 336
)

// RecoverySettings is a workspace's self-service recovery setting.
type RecoverySettings struct {
	SelfService bool // off by default
	WaitHours   int  // the waiting period
}

// Validate checks the waiting period.
func (r RecoverySettings) Validate() error {
	if r.WaitHours < MinRecoveryWaitHours || r.WaitHours > MaxRecoveryWaitHours {
		return fmt.Errorf("the recovery waiting period is %d to %d hours", MinRecoveryWaitHours, MaxRecoveryWaitHours)
	}
	return nil
}

// ErrRecoveryOff is a request for self-service recovery in a workspace
// that does not allow it.
var ErrRecoveryOff = errors.New("self-service recovery is off in this workspace")

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func recoverySettings(ctx context.Context, q rowQuerier, workspaceID int64) (RecoverySettings, error) {
	var r RecoverySettings
	if err := q.QueryRowContext(ctx, `SELECT self_recovery, self_recovery_wait_hours FROM workspaces WHERE id = ?`, workspaceID).
		Scan(&r.SelfService, &r.WaitHours); err != nil {
		return RecoverySettings{}, notFound("recovery settings", err)
	}
	return r, nil
}

// RecoverySettings returns the workspace's self-service recovery setting.
func (s *Store) RecoverySettings(ctx context.Context, workspaceID int64) (RecoverySettings, error) {
	return recoverySettings(ctx, s.db, workspaceID)
}

// RequestSelfRecovery stores a recovery link (its hash) for the member and
// queues its email, audited, in one transaction; at most limit requests
// per member and window, counted first (a *TooManyError, ErrTooMany, when
// the member had limit already); ErrRecoveryOff when the workspace
// does not allow it.
func (s *Store) RequestSelfRecovery(ctx context.Context, workspaceID, userID int64, linkHash string, expires time.Time, limit int, window time.Duration, meta Meta, msg OutboxMessage) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		r, err := recoverySettings(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		if !r.SelfService {
			return ErrRecoveryOff
		}
		if _, err := s.throttleTake(ctx, tx, fmt.Sprintf("recovery_link:%d:%d", workspaceID, userID), window, limit); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO self_recoveries (workspace_id, user_id, link_hash, link_expires_at, status, created_at)
			VALUES (?, ?, ?, ?, 'requested', ?)`, workspaceID, userID, linkHash, expires.Unix(), s.now()); err != nil {
			return fmt.Errorf("request recovery: %w", err)
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventRecoveryRequested, IP: meta.IP, UserAgent: meta.UserAgent}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
}

// RecoveryStart is the member whose recovery link was followed, and when
// the reset will happen.
type RecoveryStart struct {
	User       User
	ExecutesAt time.Time
	// Already: a recovery of this member was waiting already; this link
	// was spent and changed nothing.
	Already bool
}

// StartSelfRecovery spends a recovery link (one of the token's hashes; in
// this workspace, unused, unexpired, the setting still on) and starts the
// waiting period: the cancel link's hash is stored and the email mail
// writes is queued, audited, in one transaction. Any refusal is
// ErrNotFound: the answer tells nothing about the account.
func (s *Store) StartSelfRecovery(ctx context.Context, workspaceID int64, linkHashes []string, cancelHash string, mail func(User, time.Time) (OutboxMessage, error), meta Meta) (RecoveryStart, error) {
	var out RecoveryStart
	if len(linkHashes) == 0 {
		return out, ErrNotFound
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := recoverySettings(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		if !r.SelfService {
			return ErrNotFound
		}
		now := s.now()
		args := []any{workspaceID, now}
		for _, h := range linkHashes {
			args = append(args, h)
		}
		var id, userID int64
		if err := tx.QueryRowContext(ctx, `SELECT id, user_id FROM self_recoveries
			WHERE workspace_id = ? AND status = 'requested' AND link_expires_at > ? AND link_hash IN (?`+strings.Repeat(", ?", len(linkHashes)-1)+`)`,
			args...).Scan(&id, &userID); err != nil {
			return notFound("start recovery", err)
		}
		if out.User, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, userID)); err != nil {
			return notFound("start recovery", err)
		}
		var waiting int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(executes_at), 0) FROM self_recoveries WHERE workspace_id = ? AND user_id = ? AND status = 'waiting'`,
			workspaceID, userID).Scan(&waiting); err != nil {
			return fmt.Errorf("start recovery: %w", err)
		}
		if waiting != 0 {
			out.Already, out.ExecutesAt = true, unix(waiting)
			_, err := tx.ExecContext(ctx, `UPDATE self_recoveries SET status = 'cancelled', closed_at = ?, closed_reason = 'already_waiting' WHERE id = ?`, now, id)
			return err
		}
		executes := now + int64(r.WaitHours)*3600
		res, err := tx.ExecContext(ctx, `UPDATE self_recoveries SET status = 'waiting', started_at = ?, executes_at = ?, cancel_hash = ?
			WHERE id = ? AND status = 'requested'`, now, executes, cancelHash, id)
		if err != nil {
			return fmt.Errorf("start recovery: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		out.ExecutesAt = unix(executes)
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventRecoveryStarted, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
				"executes_at": out.ExecutesAt.UTC().Format(time.RFC3339), "wait_hours": r.WaitHours}}); err != nil {
			return err
		}
		msg, err := mail(out.User, out.ExecutesAt)
		if err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
	return out, err
}

// CancelSelfRecovery cancels a waiting recovery by its cancel link, before
// it executes; anything else is ErrNotFound.
func (s *Store) CancelSelfRecovery(ctx context.Context, workspaceID int64, cancelHashes []string, meta Meta) error {
	if len(cancelHashes) == 0 {
		return ErrNotFound
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		args := []any{s.now(), workspaceID, s.now()}
		for _, h := range cancelHashes {
			args = append(args, h)
		}
		var userID int64
		if err := tx.QueryRowContext(ctx, `UPDATE self_recoveries SET status = 'cancelled', closed_at = ?, closed_reason = 'cancel_link'
			WHERE workspace_id = ? AND status = 'waiting' AND executes_at > ? AND cancel_hash IN (?`+strings.Repeat(", ?", len(cancelHashes)-1)+`)
			RETURNING user_id`, args...).Scan(&userID); err != nil {
			return notFound("cancel recovery", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventRecoveryCancelled,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"reason": "cancel_link"}})
	})
}

// cancelRecoveriesTx cancels the member's open recoveries (requested links
// and a waiting period) inside tx: they signed in with a second factor, so
// they have one. Audited when one was waiting.
func (s *Store) cancelRecoveriesTx(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, reason string) error {
	res, err := tx.ExecContext(ctx, `UPDATE self_recoveries SET status = 'cancelled', closed_at = ?, closed_reason = ?
		WHERE workspace_id = ? AND user_id = ? AND status IN ('requested', 'waiting')`, s.now(), reason, workspaceID, userID)
	if err != nil {
		return fmt.Errorf("cancel recoveries: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID, Event: EventRecoveryCancelled,
		Details: map[string]any{"reason": reason}})
}

// cancelWorkspaceRecoveriesTx cancels every open recovery of a workspace
// that turned recovery by email off, audited per member.
func (s *Store) cancelWorkspaceRecoveriesTx(ctx context.Context, tx *sql.Tx, workspaceID int64) error {
	rows, err := tx.QueryContext(ctx, `UPDATE self_recoveries SET status = 'cancelled', closed_at = ?, closed_reason = 'turned_off'
		WHERE workspace_id = ? AND status IN ('requested', 'waiting') RETURNING user_id`, s.now(), workspaceID)
	if err != nil {
		return fmt.Errorf("cancel recoveries: %w", err)
	}
	users, err := scanIDs(rows)
	if err != nil {
		return fmt.Errorf("cancel recoveries: %w", err)
	}
	seen := map[int64]bool{}
	for _, uid := range users {
		if seen[uid] {
			continue
		}
		seen[uid] = true
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: uid, Event: EventRecoveryCancelled,
			Details: map[string]any{"reason": "turned_off"}}); err != nil {
			return err
		}
	}
	return nil
}

// RunSelfRecoveries resets the members whose waiting period has passed,
// one transaction each with a conditional update (a recovery executes
// once, however many processes run this), queuing mail's email.
func (s *Store) RunSelfRecoveries(ctx context.Context, mail func(User, Workspace) (OutboxMessage, error)) (int, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT id FROM self_recoveries WHERE status = 'waiting' AND executes_at <= ? ORDER BY id`, s.now())
	if err != nil {
		return 0, fmt.Errorf("self recoveries: %w", err)
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return 0, fmt.Errorf("self recoveries: %w", err)
	}
	executed := 0
	var errs []error
	for _, id := range ids {
		done := false
		if err := s.tx(ctx, func(tx *sql.Tx) error {
			var wid, uid int64
			err := tx.QueryRowContext(ctx, `UPDATE self_recoveries SET status = 'executed', closed_at = ?
				WHERE id = ? AND status = 'waiting' AND executes_at <= ?
				AND EXISTS (SELECT 1 FROM workspaces w WHERE w.id = self_recoveries.workspace_id AND w.self_recovery = 1)
				RETURNING workspace_id, user_id`, s.now(), id, s.now()).Scan(&wid, &uid)
			if errors.Is(err, sql.ErrNoRows) {
				return nil // cancelled, or another process ran it
			} else if err != nil {
				return fmt.Errorf("self recovery: %w", err)
			}
			u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND id = ?`, wid, uid))
			if err != nil {
				return notFound("self recovery", err)
			}
			w, err := scanWorkspace(tx.QueryRowContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE id = ?`, wid))
			if err != nil {
				return notFound("self recovery", err)
			}
			r, err := s.resetFactors(ctx, tx, wid, uid, true, "self_recovery")
			if err != nil {
				return err
			}
			if err := s.requireReenroll(ctx, tx, wid, uid); err != nil {
				return err
			}
			if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: wid, SubjectUserID: uid, Event: EventMFAResetBySelfRecovery,
				Details: map[string]any{"totp": r.TOTP, "keys": r.Keys, "phones": r.Phones, "recovery_codes": r.RecoveryCodes, "sessions_ended": r.SessionsEnded}}); err != nil {
				return err
			}
			msg, err := mail(u, w)
			if err != nil {
				return err
			}
			done = true
			return s.enqueue(ctx, tx, wid, msg)
		}); err != nil {
			errs = append(errs, fmt.Errorf("self recovery %d: %w", id, err))
			continue
		}
		if done {
			executed++
		}
	}
	return executed, errors.Join(errs...)
}
