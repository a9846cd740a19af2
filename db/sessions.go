package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// UserSession is one signed-in session of a member, as the portal lists it.
// TokenHash is the hash under which scs stores the session's current token.
type UserSession struct {
	ID          string
	WorkspaceID int64
	UserID      int64
	TokenHash   string
	AAL         string
	AuthTime    time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time
	IP          string
	UserAgent   string
	EndedAt     time.Time
	EndedReason string
}

// Active reports whether the session has not been ended.
func (us UserSession) Active() bool { return us.EndedAt.IsZero() }

const userSessionColumns = `id, workspace_id, user_id, token_hash, aal, auth_time, last_seen_at, expires_at, ip, user_agent, ended_at, COALESCE(ended_reason, '')`

func scanUserSession(row interface{ Scan(...any) error }) (UserSession, error) {
	var us UserSession
	var auth, seen, expires int64
	var ended sql.NullInt64
	if err := row.Scan(&us.ID, &us.WorkspaceID, &us.UserID, &us.TokenHash, &us.AAL, &auth, &seen, &expires,
		&us.IP, &us.UserAgent, &ended, &us.EndedReason); err != nil {
		return UserSession{}, err
	}
	us.AuthTime, us.LastSeenAt, us.ExpiresAt, us.EndedAt = unix(auth), unix(seen), unix(expires), nullTime(ended)
	return us, nil
}

// CreateUserSession registers a new signed-in session and audits the sign-in.
func (s *Store) CreateUserSession(ctx context.Context, us UserSession, details map[string]any) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO user_sessions (id, workspace_id, user_id, token_hash, aal, auth_time, last_seen_at, expires_at, ip, user_agent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			us.ID, us.WorkspaceID, us.UserID, us.TokenHash, us.AAL, us.AuthTime.Unix(), us.LastSeenAt.Unix(), us.ExpiresAt.Unix(),
			truncate(us.IP, 64), truncate(us.UserAgent, 512))
		if err != nil {
			return fmt.Errorf("create user session: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: us.WorkspaceID, ActorUserID: us.UserID, SubjectUserID: us.UserID,
			Event: EventSignInSucceeded, IP: us.IP, UserAgent: us.UserAgent, Details: details})
	})
}

// UserSession returns one session of the workspace, or ErrNotFound.
func (s *Store) UserSession(ctx context.Context, workspaceID int64, id string) (UserSession, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+userSessionColumns+` FROM user_sessions WHERE workspace_id = ? AND id = ?`, workspaceID, id)
	us, err := scanUserSession(row)
	if err != nil {
		return UserSession{}, notFound("user session", err)
	}
	return us, nil
}

// TouchUserSession records activity on a session.
func (s *Store) TouchUserSession(ctx context.Context, workspaceID int64, id string, at time.Time, ip string) error {
	_, err := s.exec(ctx, `UPDATE user_sessions SET last_seen_at = ?, ip = ? WHERE workspace_id = ? AND id = ? AND ended_at IS NULL`,
		at.Unix(), truncate(ip, 64), workspaceID, id)
	if err != nil {
		return fmt.Errorf("touch user session: %w", err)
	}
	return nil
}

// RotateUserSessionToken records the hash of a session's new token, so that
// the old token is refused even if a slow request writes it back.
func (s *Store) RotateUserSessionToken(ctx context.Context, workspaceID int64, id, oldHash, newHash string) error {
	res, err := s.exec(ctx, `UPDATE user_sessions SET token_hash = ? WHERE workspace_id = ? AND id = ? AND token_hash = ? AND ended_at IS NULL`,
		newHash, workspaceID, id, oldHash)
	if err != nil {
		return fmt.Errorf("rotate user session token: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("rotate user session token: %w", ErrNotFound)
	}
	return nil
}

// ActiveUserSessions lists a member's sessions that are neither ended nor
// past their absolute expiry, newest first.
func (s *Store) ActiveUserSessions(ctx context.Context, workspaceID, userID int64) ([]UserSession, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+userSessionColumns+` FROM user_sessions
		WHERE workspace_id = ? AND user_id = ? AND ended_at IS NULL AND expires_at > ?
		ORDER BY auth_time DESC, id`, workspaceID, userID, s.now())
	if err != nil {
		return nil, fmt.Errorf("active user sessions: %w", err)
	}
	defer rows.Close()
	var out []UserSession
	for rows.Next() {
		us, err := scanUserSession(rows)
		if err != nil {
			return nil, fmt.Errorf("active user sessions: %w", err)
		}
		out = append(out, us)
	}
	return out, rows.Err()
}

// EndUserSession ends one of a member's sessions and deletes its data. It
// returns ErrNotFound when no active session of that member has that id.
func (s *Store) EndUserSession(ctx context.Context, workspaceID, userID int64, id, reason string, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		var tokenHash string
		err := tx.QueryRowContext(ctx, `
			UPDATE user_sessions SET ended_at = ?, ended_reason = ?
			WHERE workspace_id = ? AND user_id = ? AND id = ? AND ended_at IS NULL
			RETURNING token_hash`, s.now(), reason, workspaceID, userID, id).Scan(&tokenHash)
		if err != nil {
			return notFound("end user session", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE token = ?`, tokenHash); err != nil {
			return fmt.Errorf("end user session: %w", err)
		}
		event := EventSessionEnded
		if reason == "signed_out" {
			event = EventSignedOut
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: event, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"reason": reason}})
	})
}

// EndOtherUserSessions ends every session of a member but keepID and bumps
// the member's session epoch, so that sessions a slow request writes back
// stay dead. It returns how many sessions ended and the new epoch.
func (s *Store) EndOtherUserSessions(ctx context.Context, workspaceID, userID int64, keepID string, meta Meta) (n int, epoch int64, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `UPDATE users SET session_epoch = session_epoch + 1 WHERE workspace_id = ? AND id = ? RETURNING session_epoch`,
			workspaceID, userID).Scan(&epoch); err != nil {
			return notFound("end other sessions", err)
		}
		if n, err = s.endSessions(ctx, tx, workspaceID, userID, keepID, "ended_by_member"); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventSessionsEndedOthers, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"count": n}})
	})
	return n, epoch, err
}

// endSessions ends a member's active sessions except keepID and deletes their
// session data.
func (s *Store) endSessions(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, keepID, reason string) (int, error) {
	rows, err := tx.QueryContext(ctx, `
		UPDATE user_sessions SET ended_at = ?, ended_reason = ?
		WHERE workspace_id = ? AND user_id = ? AND id <> ? AND ended_at IS NULL
		RETURNING token_hash`, s.now(), reason, workspaceID, userID, keepID)
	if err != nil {
		return 0, fmt.Errorf("end sessions: %w", err)
	}
	var hashes []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return 0, fmt.Errorf("end sessions: %w", err)
		}
		hashes = append(hashes, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("end sessions: %w", err)
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE token = ?`, h); err != nil {
			return 0, fmt.Errorf("end sessions: %w", err)
		}
	}
	return len(hashes), nil
}

// DeleteExpiredSessions removes session registers past their absolute expiry
// plus a week (kept a while for the member's view), and returns how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM user_sessions WHERE expires_at < ?`, s.now()-7*24*3600)
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return res.RowsAffected()
}

// SetUserSessionAAL records a session's new assurance level (after a second
// factor passed in it).
func (s *Store) SetUserSessionAAL(ctx context.Context, workspaceID int64, id, aal string) error {
	if _, err := s.exec(ctx, `UPDATE user_sessions SET aal = ? WHERE workspace_id = ? AND id = ?`, aal, workspaceID, id); err != nil {
		return fmt.Errorf("set user session aal: %w", err)
	}
	return nil
}
