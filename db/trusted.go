package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Audit events of trusted devices ("trust this browser").
const (
	EventTrustedDeviceAdded   = "mfa.trusted_device.added"
	EventTrustedDeviceUsed    = "mfa.trusted_device.used"
	EventTrustedDeviceRevoked = "mfa.trusted_device.revoked"
	// EventTrustedDevicesVoided records the devices a reset, password
	// change or factor change (removed, added, recovery codes regenerated)
	// voided, in that change's transaction.
	EventTrustedDevicesVoided = "mfa.trusted_devices.voided"
)

// Reasons a trusted device stops working (trusted_devices.revoked_reason).
const (
	TrustedRevokedByMember = "revoked_by_member"
	TrustedRevokedByAdmin  = "revoked_by_admin"
	// Factor changes that void every device of the member, the browser
	// that made the change included (like a password change or a factor
	// removal): its trust was given under the old set of factors.
	TrustedVoidedFactorAdded      = "factor_added"
	TrustedVoidedCodesRegenerated = "recovery_codes_regenerated"
)

// TrustedDevice is a browser a member trusts to skip the second factor at
// sign-in. Only the keyed hash of its token is stored.
type TrustedDevice struct {
	ID            int64
	WorkspaceID   int64
	UserID        int64
	Label         string // browser and system, from the user agent
	CreatedAt     time.Time
	ExpiresAt     time.Time
	LastUsedAt    time.Time // zero until first used
	RevokedAt     time.Time // zero while usable
	RevokedReason string
}

const (
	trustedColumns  = `id, workspace_id, user_id, label, created_at, expires_at, last_used_at, revoked_at, COALESCE(revoked_reason, '')`
	trustedColumnsD = `d.id, d.workspace_id, d.user_id, d.label, d.created_at, d.expires_at, d.last_used_at, d.revoked_at, COALESCE(d.revoked_reason, '')`
)

func scanTrusted(row interface{ Scan(...any) error }) (TrustedDevice, error) {
	var d TrustedDevice
	var created, expires int64
	var used, revoked sql.NullInt64
	if err := row.Scan(&d.ID, &d.WorkspaceID, &d.UserID, &d.Label, &created, &expires, &used, &revoked, &d.RevokedReason); err != nil {
		return TrustedDevice{}, err
	}
	d.CreatedAt, d.ExpiresAt = unix(created), unix(expires)
	d.LastUsedAt, d.RevokedAt = nullTime(used), nullTime(revoked)
	return d, nil
}

// usableTrusted is the condition on a trusted_devices row d (joined with
// its workspace w) under which it may skip the challenge at now (its two
// parameters, usableArgs): not revoked, not expired, and trusted devices
// still on in the workspace, for no longer than the workspace allows today
// (a shortened setting shortens existing devices).
const usableTrusted = `d.revoked_at IS NULL AND d.expires_at > ?
	AND w.trusted_device_days > 0 AND d.created_at + w.trusted_device_days * 86400 > ?`

// usableArgs are usableTrusted's parameters at now.
func usableArgs(now int64) []any { return []any{now, now} }

// CreateTrustedDevice stores a trusted device (the hash of its token) for
// the member, expiring at expires, and audits it, in one transaction. It
// returns ErrNotFound when userID is no member of workspaceID.
func (s *Store) CreateTrustedDevice(ctx context.Context, workspaceID, userID int64, tokenHash, label string, expires time.Time, meta Meta) (TrustedDevice, error) {
	var d TrustedDevice
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		now := s.now()
		row := tx.QueryRowContext(ctx, `
			INSERT INTO trusted_devices (workspace_id, user_id, token_hash, label, created_at, expires_at)
			SELECT workspace_id, id, ?, ?, ?, ? FROM users WHERE workspace_id = ? AND id = ?
			RETURNING `+trustedColumns, tokenHash, truncate(label, 100), now, expires.Unix(), workspaceID, userID)
		var err error
		if d, err = scanTrusted(row); err != nil {
			return notFound("create trusted device", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventTrustedDeviceAdded, IP: meta.IP, UserAgent: meta.UserAgent,
			Details: map[string]any{"device": d.ID, "label": d.Label, "expires_at": d.ExpiresAt.Unix()}})
	})
	return d, err
}

// UseTrustedDevice finds the member's usable device whose token hash is
// one of tokenHashes (the token under each key, for rotation), records its
// use and audits the sign-in it allows, in one transaction. Anything else
// — another member's or workspace's token, an expired or revoked device,
// trusted devices turned off, the member's second factor locked or
// blocked (read in the same statement, so a lock committed after the
// caller looked still holds) — is ErrNotFound and changes nothing.
func (s *Store) UseTrustedDevice(ctx context.Context, workspaceID, userID int64, tokenHashes []string, meta Meta) (TrustedDevice, error) {
	if len(tokenHashes) == 0 {
		return TrustedDevice{}, fmt.Errorf("use trusted device: %w", ErrNotFound)
	}
	var d TrustedDevice
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		now := s.now()
		hashes, hashArgs := inList(tokenHashes)
		q := `UPDATE trusted_devices SET last_used_at = ?
			WHERE id = (SELECT d.id FROM trusted_devices d JOIN workspaces w ON w.id = d.workspace_id
				WHERE d.workspace_id = ? AND d.user_id = ? AND ` + usableTrusted + ` AND d.token_hash IN (` + hashes + `)
				AND NOT EXISTS (SELECT 1 FROM mfa_guards g WHERE g.workspace_id = d.workspace_id AND g.user_id = d.user_id
					AND (g.locked_until > ? OR g.disabled_at IS NOT NULL)))
			RETURNING ` + trustedColumns
		qargs := append([]any{now, workspaceID, userID}, usableArgs(now)...)
		qargs = append(append(qargs, hashArgs...), now)
		row := tx.QueryRowContext(ctx, q, qargs...)
		var err error
		if d, err = scanTrusted(row); err != nil {
			return notFound("use trusted device", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventTrustedDeviceUsed, IP: meta.IP, UserAgent: meta.UserAgent,
			Details: map[string]any{"device": d.ID, "label": d.Label}})
	})
	return d, err
}

// TrustedDevices lists the member's devices that can still skip the
// challenge, newest first.
func (s *Store) TrustedDevices(ctx context.Context, workspaceID, userID int64) ([]TrustedDevice, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `
		SELECT `+trustedColumnsD+` FROM trusted_devices d JOIN workspaces w ON w.id = d.workspace_id
		WHERE d.workspace_id = ? AND d.user_id = ? AND `+usableTrusted+`
		ORDER BY d.created_at DESC, d.id DESC`, append([]any{workspaceID, userID}, usableArgs(s.now())...)...)
	if err != nil {
		return nil, fmt.Errorf("trusted devices: %w", err)
	}
	defer rows.Close()
	var out []TrustedDevice
	for rows.Next() {
		d, err := scanTrusted(rows)
		if err != nil {
			return nil, fmt.Errorf("trusted devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("trusted devices: %w", err)
	}
	return out, nil
}

// RevokeTrustedDevice revokes one of the member's devices (id) on the
// request of actorID (the member, or an admin: reason says which) and
// audits it. It returns ErrNotFound for a device that is not the member's
// in this workspace, or already revoked.
func (s *Store) RevokeTrustedDevice(ctx context.Context, workspaceID, actorID, userID, id int64, reason string, meta Meta) (TrustedDevice, error) {
	var d TrustedDevice
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		if actorID != userID {
			if err := s.mayManage(ctx, tx, workspaceID, actorID, userID); err != nil {
				return fmt.Errorf("revoke trusted device: %w", err)
			}
		}
		row := tx.QueryRowContext(ctx, `
			UPDATE trusted_devices SET revoked_at = ?, revoked_reason = ?
			WHERE workspace_id = ? AND user_id = ? AND id = ? AND revoked_at IS NULL
			RETURNING `+trustedColumns, s.now(), reason, workspaceID, userID, id)
		var err error
		if d, err = scanTrusted(row); err != nil {
			return notFound("revoke trusted device", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, SubjectUserID: userID,
			Event: EventTrustedDeviceRevoked, IP: meta.IP, UserAgent: meta.UserAgent,
			Details: map[string]any{"device": d.ID, "label": d.Label, "reason": reason}})
	})
	return d, err
}

// RevokeTrustedDevices revokes every device of the member on the request
// of actorID and audits it (when there was one); it returns how many.
func (s *Store) RevokeTrustedDevices(ctx context.Context, workspaceID, actorID, userID int64, reason string, meta Meta) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		var err error
		n, err = s.voidTrustedDevices(ctx, tx, workspaceID, actorID, userID, reason, meta)
		return err
	})
	return n, err
}

// voidTrustedDevices revokes every unrevoked device of the member inside
// tx, with the reason, and audits how many when any were. Resets,
// password changes and factor changes (removal, addition, recovery-code
// regeneration) call it in their own transaction, so a device trusted
// before the change never skips a challenge after it.
func (s *Store) voidTrustedDevices(ctx context.Context, tx *sql.Tx, workspaceID, actorID, userID int64, reason string, meta Meta) (int, error) {
	res, err := tx.ExecContext(ctx, `UPDATE trusted_devices SET revoked_at = ?, revoked_reason = ?
		WHERE workspace_id = ? AND user_id = ? AND revoked_at IS NULL`, s.now(), reason, workspaceID, userID)
	if err != nil {
		return 0, fmt.Errorf("void trusted devices: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("void trusted devices: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return int(n), s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, SubjectUserID: userID,
		Event: EventTrustedDevicesVoided, IP: meta.IP, UserAgent: meta.UserAgent,
		Details: map[string]any{"count": n, "reason": reason}})
}

// DeleteStaleTrustedDevices removes the devices that expired or were
// revoked more than horizon ago (the audit trail keeps their story).
func (s *Store) DeleteStaleTrustedDevices(ctx context.Context, horizon time.Duration) (int64, error) {
	cutoff := s.now() - int64(horizon/time.Second)
	res, err := s.exec(ctx, `DELETE FROM trusted_devices WHERE expires_at <= ? OR (revoked_at IS NOT NULL AND revoked_at <= ?)`, cutoff, cutoff)
	if err != nil {
		return 0, fmt.Errorf("delete stale trusted devices: %w", err)
	}
	return res.RowsAffected()
}
