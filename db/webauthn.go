package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// WebAuthn audit events.
const (
	EventWebAuthnRegistered  = "mfa.webauthn.registered"
	EventWebAuthnRemoved     = "mfa.webauthn.removed"
	EventWebAuthnRenamed     = "mfa.webauthn.renamed"
	EventWebAuthnCloneWarned = "mfa.webauthn.sign_count_regressed"
)

// ErrCeremonyGone is returned for a ceremony handle that is unknown, used,
// expired or of another kind, member or workspace.
var ErrCeremonyGone = errors.New("ceremony ended or expired")

// WebAuthnCredential is a member's passkey or security key.
type WebAuthnCredential struct {
	ID                int64
	WorkspaceID       int64
	UserID            int64
	Name              string
	CredentialID      []byte
	PublicKey         []byte
	SignCount         uint32
	AAGUID            []byte
	Transports        []string
	BackupEligible    bool
	BackupState       bool
	UserVerified      bool
	AttestationFormat string
	AttestationType   string
	CreatedAt         time.Time
	LastUsedAt        time.Time
}

// Synced reports whether the credential is a synced (backup eligible)
// passkey rather than a device-bound key.
func (c WebAuthnCredential) Synced() bool { return c.BackupEligible }

const webauthnColumns = `id, workspace_id, user_id, name, credential_id, public_key, sign_count, aaguid, transports,
	backup_eligible, backup_state, user_verified, attestation_format, attestation_type, created_at, last_used_at`

func scanWebAuthn(row interface{ Scan(...any) error }) (WebAuthnCredential, error) {
	var c WebAuthnCredential
	var transports string
	var signCount, created int64
	var used sql.NullInt64
	if err := row.Scan(&c.ID, &c.WorkspaceID, &c.UserID, &c.Name, &c.CredentialID, &c.PublicKey, &signCount, &c.AAGUID, &transports,
		&c.BackupEligible, &c.BackupState, &c.UserVerified, &c.AttestationFormat, &c.AttestationType, &created, &used); err != nil {
		return WebAuthnCredential{}, err
	}
	c.SignCount, c.CreatedAt, c.LastUsedAt = uint32(signCount), unix(created), nullTime(used)
	if transports != "" {
		c.Transports = strings.Split(transports, ",")
	}
	return c, nil
}

// WebAuthnHandle returns the member's WebAuthn user handle, making a random
// 64-byte one on first use.
func (s *Store) WebAuthnHandle(ctx context.Context, workspaceID, userID int64) ([]byte, error) {
	// Read first: only the first use needs the write lock.
	var h []byte
	err := s.q(ctx).QueryRowContext(ctx, `SELECT webauthn_handle FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, userID).Scan(&h)
	if err != nil {
		return nil, notFound("webauthn handle", err)
	}
	if len(h) == 64 {
		return h, nil
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT webauthn_handle FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, userID).Scan(&h); err != nil {
			return notFound("webauthn handle", err)
		}
		if len(h) == 64 {
			return nil
		}
		h = make([]byte, 64)
		if _, err := rand.Read(h); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE users SET webauthn_handle = ? WHERE workspace_id = ? AND id = ?`, h, workspaceID, userID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn handle: %w", err)
	}
	return h, nil
}

// UserByWebAuthnHandle returns the workspace's member with that handle, or
// ErrNotFound.
func (s *Store) UserByWebAuthnHandle(ctx context.Context, workspaceID int64, handle []byte) (User, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND webauthn_handle = ?`, workspaceID, handle)
	u, err := scanUser(row)
	if err != nil {
		return User{}, notFound("user by webauthn handle", err)
	}
	return u, nil
}

// WebAuthnCredentials lists a member's keys, oldest first.
func (s *Store) WebAuthnCredentials(ctx context.Context, workspaceID, userID int64) ([]WebAuthnCredential, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+webauthnColumns+` FROM webauthn_credentials WHERE workspace_id = ? AND user_id = ? ORDER BY id`,
		workspaceID, userID)
	if err != nil {
		return nil, fmt.Errorf("webauthn credentials: %w", err)
	}
	defer rows.Close()
	var out []WebAuthnCredential
	for rows.Next() {
		c, err := scanWebAuthn(rows)
		if err != nil {
			return nil, fmt.Errorf("webauthn credentials: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// WebAuthnCredentialByCredentialID returns the workspace's key with that
// credential id, or ErrNotFound (a key of another workspace is not found).
func (s *Store) WebAuthnCredentialByCredentialID(ctx context.Context, workspaceID int64, credentialID []byte) (WebAuthnCredential, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+webauthnColumns+` FROM webauthn_credentials WHERE workspace_id = ? AND credential_id = ?`,
		workspaceID, credentialID)
	c, err := scanWebAuthn(row)
	if err != nil {
		return WebAuthnCredential{}, notFound("webauthn credential", err)
	}
	return c, nil
}

// Ceremony is the server-side state of one WebAuthn ceremony.
type Ceremony struct {
	ID          string
	WorkspaceID int64
	UserID      int64 // 0 for passwordless sign-in, where the member is not known yet
	Kind        string
	ChallengeID string // the second-factor challenge, for kind second_factor
	Name        string // the key's name, for kind register
	SessionData string // go-webauthn's SessionData as JSON
	ExpiresAt   time.Time
	// Binding is the session (and step-up) that began a registration or a
	// step-up; zero for the others, which no signed-in session starts.
	Binding SessionBinding
}

// Ceremony kinds.
const (
	CeremonyRegister     = "register"
	CeremonySecondFactor = "second_factor"
	CeremonyPasswordless = "passwordless"
	CeremonyStepUp       = "step_up"
)

// CreateCeremony stores a ceremony's state.
func (s *Store) CreateCeremony(ctx context.Context, c Ceremony) error {
	_, err := s.exec(ctx, `
		INSERT INTO webauthn_ceremonies (id, workspace_id, user_id, kind, challenge_id, name, session_data, created_at, expires_at, session_id, step_up_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.WorkspaceID, nullID(c.UserID), c.Kind, sql.NullString{String: c.ChallengeID, Valid: c.ChallengeID != ""}, c.Name, c.SessionData, s.now(), c.ExpiresAt.Unix(),
		c.Binding.SessionID, c.Binding.stepUpUnix())
	if err != nil {
		return fmt.Errorf("create ceremony: %w", err)
	}
	return nil
}

// UseCeremony spends a ceremony of the given kind (and member, unless
// userID is 0) that no session began, with one conditional update, so that
// it works once whatever the outcome of its verification; ErrCeremonyGone
// otherwise.
func (s *Store) UseCeremony(ctx context.Context, workspaceID int64, id, kind string, userID int64) (Ceremony, error) {
	return s.UseSessionCeremony(ctx, workspaceID, id, kind, userID, SessionBinding{})
}

// UseSessionCeremony is UseCeremony for a ceremony begun by the session
// (and step-up) of b: another session's attempt is ErrCeremonyGone and
// leaves the ceremony to the session that began it.
func (s *Store) UseSessionCeremony(ctx context.Context, workspaceID int64, id, kind string, userID int64, b SessionBinding) (Ceremony, error) {
	now := s.now()
	var c Ceremony
	var uid sql.NullInt64
	var chID sql.NullString
	var expires int64
	err := s.queryRowWrite(ctx, func(row func(query string, args ...any) *sql.Row) error {
		return row(`
		UPDATE webauthn_ceremonies SET used_at = ?
		WHERE workspace_id = ? AND id = ? AND kind = ? AND used_at IS NULL AND expires_at > ?
		  AND (? = 0 OR user_id = ?) AND session_id = ? AND step_up_at = ?
		RETURNING id, workspace_id, user_id, kind, challenge_id, name, session_data, expires_at`,
			now, workspaceID, id, kind, now, userID, userID, b.SessionID, b.stepUpUnix()).Scan(&c.ID, &c.WorkspaceID, &uid, &c.Kind, &chID, &c.Name, &c.SessionData, &expires)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Ceremony{}, ErrCeremonyGone
	} else if err != nil {
		return Ceremony{}, fmt.Errorf("use ceremony: %w", err)
	}
	c.UserID, c.ChallengeID, c.ExpiresAt, c.Binding = uid.Int64, chID.String, unix(expires), b
	return c, nil
}

// AddWebAuthnCredential stores a new key for the member, voids their
// trusted browsers (a factor change, DESIGN), audits it and queues msg.
// When recoveryHashes is not nil (the member's first second factor) they
// replace any recovery codes. It returns ErrConflict when the
// credential id is already registered in the workspace.
func (s *Store) AddWebAuthnCredential(ctx context.Context, c WebAuthnCredential, recoveryHashes []string, meta Meta, msg OutboxMessage) (WebAuthnCredential, error) {
	var out WebAuthnCredential
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, c.WorkspaceID, c.UserID); err != nil {
			return err
		}
		var err error
		out, err = s.addWebAuthnTx(ctx, tx, c, recoveryHashes, meta, msg)
		return err
	})
	return out, err
}

func (s *Store) addWebAuthnTx(ctx context.Context, tx *sql.Tx, c WebAuthnCredential, recoveryHashes []string, meta Meta, msg OutboxMessage) (WebAuthnCredential, error) {
	var out WebAuthnCredential
	err := func() error {
		row := tx.QueryRowContext(ctx, `
			INSERT INTO webauthn_credentials (workspace_id, user_id, name, credential_id, public_key, sign_count, aaguid, transports,
				backup_eligible, backup_state, user_verified, attestation_format, attestation_type, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+webauthnColumns,
			c.WorkspaceID, c.UserID, c.Name, c.CredentialID, c.PublicKey, int64(c.SignCount), c.AAGUID, strings.Join(c.Transports, ","),
			c.BackupEligible, c.BackupState, c.UserVerified, c.AttestationFormat, c.AttestationType, s.now())
		var err error
		out, err = scanWebAuthn(row)
		if isUniqueViolation(err) {
			return fmt.Errorf("add webauthn credential: %w", ErrConflict)
		} else if err != nil {
			return fmt.Errorf("add webauthn credential: %w", err)
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: c.WorkspaceID, ActorUserID: c.UserID, SubjectUserID: c.UserID,
			Event: EventWebAuthnRegistered, IP: meta.IP, UserAgent: meta.UserAgent,
			Details: map[string]any{"credential": out.ID, "name": c.Name, "synced": c.BackupEligible}}); err != nil {
			return err
		}
		if err := s.factorAdded(ctx, tx, c.WorkspaceID, c.UserID, recoveryHashes, meta); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, c.WorkspaceID, msg)
	}()
	return out, err
}

// RenameWebAuthnCredential renames one of the member's keys (ErrNotFound
// for another member's or workspace's key).
func (s *Store) RenameWebAuthnCredential(ctx context.Context, workspaceID, userID, id int64, name string, meta Meta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webauthn_credentials SET name = ? WHERE workspace_id = ? AND user_id = ? AND id = ?`, name, workspaceID, userID, id)
		if err != nil {
			return fmt.Errorf("rename webauthn credential: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("rename webauthn credential: %w", ErrNotFound)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventWebAuthnRenamed, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"credential": id, "name": name}})
	})
}

// AuditSignCountRegression records a refused assertion whose sign count
// went backwards: a possible cloned authenticator.
func (s *Store) AuditSignCountRegression(ctx context.Context, workspaceID, userID, credID int64, stored, got uint32, meta Meta) error {
	return s.Audit(ctx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventWebAuthnCloneWarned, IP: meta.IP, UserAgent: meta.UserAgent,
		Details: map[string]any{"credential": credID, "stored_sign_count": stored, "sign_count": got}})
}

// DeleteExpiredCeremonies removes ceremonies past their expiry.
func (s *Store) DeleteExpiredCeremonies(ctx context.Context) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM webauthn_ceremonies WHERE expires_at < ?`, s.now())
	if err != nil {
		return 0, fmt.Errorf("delete expired ceremonies: %w", err)
	}
	return res.RowsAffected()
}

// useWebAuthn records an assertion of one of the member's keys: its new
// sign count, backup state and last use, on condition that the stored count
// is still the one the assertion was checked against.
func (s *Store) useWebAuthn(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, f FactorUse) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE webauthn_credentials SET sign_count = ?, backup_state = ?, last_used_at = ?
		WHERE id = ? AND workspace_id = ? AND user_id = ? AND sign_count = ?`,
		int64(f.SignCount), f.BackupState, s.now(), f.WebAuthnID, workspaceID, userID, int64(f.OldSignCount))
	if err != nil {
		return fmt.Errorf("use webauthn credential: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("use webauthn credential: %w", ErrNotFound)
	}
	return nil
}

// SignInWithFactor starts a session with a factor that is a sign-in on its
// own (a passkey with user verification): the factor is consumed, the
// consecutive failures reset and the session registered and audited, in
// one transaction. Any refusal rolls it back (ErrNotFound, ErrMFALocked).
func (s *Store) SignInWithFactor(ctx context.Context, f FactorUse, us UserSession) error {
	if f.Method == MethodSMS {
		// A texted code is a second factor only, never a sign-in.
		return fmt.Errorf("sign in with factor: %w", ErrNotFound)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, us.WorkspaceID, us.UserID); err != nil {
			return err
		}
		if _, err := s.useFactor(ctx, tx, us.WorkspaceID, us.UserID, f, true); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO user_sessions (id, workspace_id, user_id, token_hash, aal, auth_time, last_seen_at, expires_at, ip, user_agent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			us.ID, us.WorkspaceID, us.UserID, us.TokenHash, us.AAL, us.AuthTime.Unix(), us.LastSeenAt.Unix(), us.ExpiresAt.Unix(),
			truncate(us.IP, 64), truncate(us.UserAgent, 512)); err != nil {
			return fmt.Errorf("sign in with factor: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: us.WorkspaceID, ActorUserID: us.UserID, SubjectUserID: us.UserID,
			Event: EventSignInSucceeded, IP: us.IP, UserAgent: us.UserAgent, Details: map[string]any{"methods": []string{f.Method}, "aal": us.AAL}})
	})
}

// PasskeySettings are a workspace's passkey rules.
type PasskeySettings struct {
	// SatisfyMFA: a passkey with user verification is a whole sign-in
	// (aal2); otherwise it stands for the password and a second factor
	// follows.
	SatisfyMFA bool
	// DeviceBoundOnly refuses synced (backup eligible) passkeys.
	DeviceBoundOnly bool
}

// PasskeySettings returns the workspace's passkey rules.
func (s *Store) PasskeySettings(ctx context.Context, workspaceID int64) (PasskeySettings, error) {
	var p PasskeySettings
	err := s.q(ctx).QueryRowContext(ctx, `SELECT passkeys_satisfy_mfa, device_bound_keys_only FROM workspaces WHERE id = ?`, workspaceID).Scan(&p.SatisfyMFA, &p.DeviceBoundOnly)
	if err != nil {
		return PasskeySettings{}, notFound("passkey settings", err)
	}
	return p, nil
}

// SetPasskeySettings changes the workspace's passkey rules.
func (s *Store) SetPasskeySettings(ctx context.Context, workspaceID int64, p PasskeySettings) error {
	if _, err := s.exec(ctx, `UPDATE workspaces SET passkeys_satisfy_mfa = ?, device_bound_keys_only = ? WHERE id = ?`,
		p.SatisfyMFA, p.DeviceBoundOnly, workspaceID); err != nil {
		return fmt.Errorf("set passkey settings: %w", err)
	}
	return nil
}

// ConsumeFactor spends a factor on its own (a passkey used as the first
// factor, before a second-factor challenge); ErrNotFound when it was spent
// meanwhile, ErrMFALocked while the member is locked.
func (s *Store) ConsumeFactor(ctx context.Context, workspaceID, userID int64, f FactorUse) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		_, err := s.useFactor(ctx, tx, workspaceID, userID, f, false)
		return err
	})
}
