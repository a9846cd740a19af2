package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Second-factor audit events.
const (
	EventTOTPEnrollStarted       = "mfa.totp.enrollment_started"
	EventTOTPEnrolled            = "mfa.totp.enrolled"
	EventTOTPRemoved             = "mfa.totp.removed"
	EventChallengePassed         = "mfa.challenge.passed"
	EventChallengeFailed         = "mfa.challenge.failed"
	EventChallengeEnded          = "mfa.challenge.ended"
	EventMFALocked               = "mfa.locked"
	EventMFADisabled             = "mfa.disabled"
	EventRecoveryCodeUsed        = "mfa.recovery_code.used"
	EventRecoveryCodesCreated    = "mfa.recovery_codes.created"
	EventRecoveryCodesRegenerate = "mfa.recovery_codes.regenerated"
	EventStepUp                  = "mfa.step_up"
)

// Second-factor failure limits (NIST SP 800-63B §5.2.2, RFC 4226 §7.3).
const (
	ChallengeMaxFailures = 5
	GuardWindow          = 15 * time.Minute
	GuardWindowFailures  = 10
	GuardLockFor         = 15 * time.Minute
	GuardDisableAfter    = 100
)

// ErrChallengeGone is returned when a challenge was already spent, ended or
// has expired.
var ErrChallengeGone = errors.New("challenge ended or expired")

// ErrMFALocked is returned when a factor would be spent while the member's
// second factor is locked or disabled (the lock was committed after the
// factor was checked).
var ErrMFALocked = errors.New("second factor locked")

// TOTPCredential is a member's authenticator app. Secret is ciphertext.
type TOTPCredential struct {
	ID          int64
	WorkspaceID int64
	UserID      int64
	Name        string
	KeyID       string
	Secret      []byte
	LastStep    int64 // 0 when no code was accepted yet
	CreatedAt   time.Time
	ConfirmedAt time.Time // zero while the enrollment is unconfirmed
	ExpiresAt   time.Time // for unconfirmed enrollments
	LastUsedAt  time.Time
}

// Confirmed reports whether the enrollment was confirmed with a code.
func (c TOTPCredential) Confirmed() bool { return !c.ConfirmedAt.IsZero() }

const totpColumns = `id, workspace_id, user_id, name, key_id, secret, last_step, created_at, confirmed_at, expires_at, last_used_at`

func scanTOTP(row interface{ Scan(...any) error }) (TOTPCredential, error) {
	var c TOTPCredential
	var last, confirmed, expires, used sql.NullInt64
	var created int64
	if err := row.Scan(&c.ID, &c.WorkspaceID, &c.UserID, &c.Name, &c.KeyID, &c.Secret, &last, &created, &confirmed, &expires, &used); err != nil {
		return TOTPCredential{}, err
	}
	c.LastStep, c.CreatedAt, c.ConfirmedAt, c.ExpiresAt, c.LastUsedAt = last.Int64, unix(created), nullTime(confirmed), nullTime(expires), nullTime(used)
	return c, nil
}

// Sealer encrypts a secret for the credential with the given id; the id is
// only known once the row exists, and it is part of the associated data.
type Sealer func(credentialID int64) (keyID string, ciphertext []byte)

// SessionBinding names what started a pending enrollment or a WebAuthn
// ceremony: the session (its user_sessions id) and when that session last
// passed a second factor (zero for never). Only the same session, having
// proved nothing new since, may see or finish it (SECURITY rule 12). The
// zero binding is for what no session starts: staff enrollment links and
// sign-in ceremonies.
type SessionBinding struct {
	SessionID string
	StepUpAt  time.Time
}

func (b SessionBinding) stepUpUnix() int64 {
	if b.StepUpAt.IsZero() {
		return 0
	}
	return b.StepUpAt.Unix()
}

// StartTOTPEnrollment replaces the member's unconfirmed enrollment, if any,
// with a new one that expires at expires and belongs to no session (a staff
// enrollment link). It returns ErrConflict when the member already has a
// confirmed authenticator app.
func (s *Store) StartTOTPEnrollment(ctx context.Context, workspaceID, userID int64, seal Sealer, expires time.Time, meta Meta) (TOTPCredential, error) {
	return s.StartSessionTOTPEnrollment(ctx, workspaceID, userID, SessionBinding{}, seal, expires, meta)
}

// StartSessionTOTPEnrollment is StartTOTPEnrollment for the session (and
// step-up) b: only PendingSessionTOTPEnrollment with the same binding finds
// it.
func (s *Store) StartSessionTOTPEnrollment(ctx context.Context, workspaceID, userID int64, b SessionBinding, seal Sealer, expires time.Time, meta Meta) (TOTPCredential, error) {
	var c TOTPCredential
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM totp_credentials WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL`,
			workspaceID, userID).Scan(&n); err != nil {
			return fmt.Errorf("start totp enrollment: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("start totp enrollment: %w", ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM totp_credentials WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NULL`,
			workspaceID, userID); err != nil {
			return fmt.Errorf("start totp enrollment: %w", err)
		}
		var id int64
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO totp_credentials (workspace_id, user_id, key_id, secret, created_at, expires_at, session_id, step_up_at)
			VALUES (?, ?, '', ?, ?, ?, ?, ?) RETURNING id`, workspaceID, userID, []byte{}, s.now(), expires.Unix(), b.SessionID, b.stepUpUnix()).Scan(&id); err != nil {
			return fmt.Errorf("start totp enrollment: %w", err)
		}
		keyID, ct := seal(id)
		row := tx.QueryRowContext(ctx, `UPDATE totp_credentials SET key_id = ?, secret = ? WHERE id = ? RETURNING `+totpColumns, keyID, ct, id)
		var err error
		if c, err = scanTOTP(row); err != nil {
			return fmt.Errorf("start totp enrollment: %w", err)
		}
		if err := s.refreshFactorSummary(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventTOTPEnrollStarted, IP: meta.IP, UserAgent: meta.UserAgent})
	})
	return c, err
}

// PendingTOTPEnrollment returns the member's unconfirmed, unexpired
// enrollment whoever started it, or ErrNotFound.
func (s *Store) PendingTOTPEnrollment(ctx context.Context, workspaceID, userID int64) (TOTPCredential, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+totpColumns+` FROM totp_credentials
		WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NULL AND expires_at > ?`, workspaceID, userID, s.now())
	c, err := scanTOTP(row)
	if err != nil {
		return TOTPCredential{}, notFound("pending totp enrollment", err)
	}
	return c, nil
}

// PendingSessionTOTPEnrollment returns the member's unconfirmed, unexpired
// enrollment if the session and step-up of b started it; ErrNotFound
// otherwise, as if there were none.
func (s *Store) PendingSessionTOTPEnrollment(ctx context.Context, workspaceID, userID int64, b SessionBinding) (TOTPCredential, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+totpColumns+` FROM totp_credentials
		WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NULL AND expires_at > ? AND session_id = ? AND step_up_at = ?`,
		workspaceID, userID, s.now(), b.SessionID, b.stepUpUnix())
	c, err := scanTOTP(row)
	if err != nil {
		return TOTPCredential{}, notFound("pending totp enrollment", err)
	}
	return c, nil
}

// TOTPCredential returns the member's confirmed authenticator app, or
// ErrNotFound.
func (s *Store) TOTPCredential(ctx context.Context, workspaceID, userID int64) (TOTPCredential, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+totpColumns+` FROM totp_credentials
		WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL`, workspaceID, userID)
	c, err := scanTOTP(row)
	if err != nil {
		return TOTPCredential{}, notFound("totp credential", err)
	}
	return c, nil
}

// ConfirmTOTPEnrollment turns an enrollment on with the time step of the
// code that confirmed it (consumed like any other: the same code cannot
// then sign in). When recoveryHashes is not nil (the member's first second
// factor), they replace any recovery codes. Every trusted browser of the
// member is voided (a factor change, DESIGN) and msg, a notice to the
// member, is queued, in the same transaction. It returns ErrNotFound if the enrollment
// is gone, expired, already confirmed or the step was used.
func (s *Store) ConfirmTOTPEnrollment(ctx context.Context, workspaceID, userID, credID, step int64, recoveryHashes []string, meta Meta, msg OutboxMessage) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		return s.confirmTOTPTx(ctx, tx, workspaceID, userID, credID, step, recoveryHashes, meta, msg)
	})
}

// ConfirmCountedTOTPEnrollment is ConfirmTOTPEnrollment for a code that
// ClaimMFAGuess counted before it was judged: in the same transaction the
// member's lock is read again (ErrMFALocked: a lock committed after the
// code was counted holds) and, once the enrollment is confirmed, the guess
// is taken back (it was right). The pending enrollment must still be the
// one of binding b (ErrNotFound otherwise).
func (s *Store) ConfirmCountedTOTPEnrollment(ctx context.Context, workspaceID, userID, credID, step int64, b SessionBinding, recoveryHashes []string, meta Meta, msg OutboxMessage) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		// The lock read again, and the guess taken back (it was right,
		// and anything below that fails rolls this back too).
		if err := s.openGuard(ctx, tx, workspaceID, userID, true, false); err != nil {
			return fmt.Errorf("confirm totp: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM totp_credentials WHERE id = ? AND workspace_id = ? AND user_id = ? AND session_id = ? AND step_up_at = ?`,
			credID, workspaceID, userID, b.SessionID, b.stepUpUnix()).Scan(&n); err != nil {
			return fmt.Errorf("confirm totp: %w", err)
		}
		if n != 1 {
			return fmt.Errorf("confirm totp: %w", ErrNotFound)
		}
		return s.confirmTOTPTx(ctx, tx, workspaceID, userID, credID, step, recoveryHashes, meta, msg)
	})
}

func (s *Store) confirmTOTPTx(ctx context.Context, tx *sql.Tx, workspaceID, userID, credID, step int64, recoveryHashes []string, meta Meta, msg OutboxMessage) error {
	now := s.now()
	res, err := tx.ExecContext(ctx, `
		UPDATE totp_credentials SET confirmed_at = ?, expires_at = NULL, last_step = ?, last_used_at = ?
		WHERE id = ? AND workspace_id = ? AND user_id = ? AND confirmed_at IS NULL AND expires_at > ?
		  AND (last_step IS NULL OR last_step < ?)`, now, step, now, credID, workspaceID, userID, now, step)
	if err != nil {
		return fmt.Errorf("confirm totp: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("confirm totp: %w", ErrNotFound)
	}
	if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
		Event: EventTOTPEnrolled, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"credential_id": credID}}); err != nil {
		return err
	}
	if err := s.factorAdded(ctx, tx, workspaceID, userID, recoveryHashes, meta); err != nil {
		return err
	}
	return s.enqueue(ctx, tx, workspaceID, msg)
}

// UseTOTPStep consumes a time step of a confirmed credential: one
// conditional update, so of two requests (or app nodes) racing with one
// code exactly one succeeds. It returns ErrNotFound when the step is at or
// below the last accepted one, ErrMFALocked while the member is locked.
func (s *Store) UseTOTPStep(ctx context.Context, workspaceID, userID, credID, step int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		_, err := s.useFactor(ctx, tx, workspaceID, userID, FactorUse{Method: "totp", TOTPID: credID, Step: step}, false)
		return err
	})
}

func (s *Store) useTOTPStep(ctx context.Context, tx *sql.Tx, workspaceID, userID, credID, step int64) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE totp_credentials SET last_step = ?, last_used_at = ?
		WHERE id = ? AND workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL
		  AND (last_step IS NULL OR last_step < ?)`, step, s.now(), credID, workspaceID, userID, step)
	if err != nil {
		return fmt.Errorf("use totp step: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("use totp step: %w", ErrNotFound)
	}
	return nil
}

// ErrFactorRequired is returned when a member would remove the last second
// factor the policy allows while the requirement covers them.
var ErrFactorRequired = errors.New("the workspace's policy requires this factor")

// RemoveTOTP deletes the member's authenticator app. When it was the last
// second factor the recovery codes go too (they exist only while MFA is
// on). The session epoch is bumped and every session but keepSessionID
// ended; the change is audited and msg queued. It returns the new epoch;
// ErrFactorRequired when it is the member's last allowed factor under a
// requirement (nothing changes), ErrNotFound when there is none.
func (s *Store) RemoveTOTP(ctx context.Context, workspaceID, userID int64, keepSessionID string, meta Meta, msg OutboxMessage) (int64, error) {
	epoch, _, err := s.removeFactorTx(ctx, workspaceID, userID, MethodTOTP, 0, keepSessionID, meta, msg)
	return epoch, err
}

// RemoveWebAuthnKey deletes one of the member's keys, like RemoveTOTP: the
// policy check, the removal, the recovery codes when it was the last second
// factor, the epoch, the other sessions, the audit and msg in one
// transaction. It returns the new epoch and the removed key;
// ErrFactorRequired when it is the member's last allowed factor under a
// requirement, ErrNotFound for a key that is not the member's.
func (s *Store) RemoveWebAuthnKey(ctx context.Context, workspaceID, userID, id int64, keepSessionID string, meta Meta, msg OutboxMessage) (int64, WebAuthnCredential, error) {
	return s.removeFactorTx(ctx, workspaceID, userID, MethodWebAuthn, id, keepSessionID, meta, msg)
}

// removeFactorTx runs removeFactor in a transaction of its own, under the
// workspace's lock (the policy it checks) and then the member's.
func (s *Store) removeFactorTx(ctx context.Context, workspaceID, userID int64, method string, keyID int64, keepSessionID string, meta Meta, msg OutboxMessage) (int64, WebAuthnCredential, error) {
	var epoch int64
	var removed WebAuthnCredential
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		var err error
		epoch, removed, err = s.removeFactor(ctx, tx, workspaceID, userID, method, keyID, keepSessionID, meta, msg)
		return err
	})
	return epoch, removed, err
}

// removeFactor removes a member's own second factor (method, and keyID for
// a key) unless the policy needs it. The member's row is written first (the
// epoch bump): writers to it queue behind this transaction (SQLite takes
// the write lock at BEGIN IMMEDIATE, PostgreSQL locks the row), so two
// removals racing for a member's last two factors see each other's delete
// and exactly one goes through.
func (s *Store) removeFactor(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, method string, keyID int64, keepSessionID string, meta Meta, msg OutboxMessage) (int64, WebAuthnCredential, error) {
	op := "remove " + method
	var epoch int64
	if err := tx.QueryRowContext(ctx, `UPDATE users SET session_epoch = session_epoch + 1 WHERE workspace_id = ? AND id = ? RETURNING session_epoch`,
		workspaceID, userID).Scan(&epoch); err != nil {
		return 0, WebAuthnCredential{}, notFound(op, err)
	}
	required, err := s.factorRequired(ctx, tx, workspaceID, userID, method, keyID)
	if err != nil {
		return 0, WebAuthnCredential{}, err
	}
	if required {
		return 0, WebAuthnCredential{}, fmt.Errorf("%s: %w", op, ErrFactorRequired)
	}
	var removed WebAuthnCredential
	event, details := EventTOTPRemoved, map[string]any(nil)
	switch method {
	case MethodTOTP:
		res, err := tx.ExecContext(ctx, `DELETE FROM totp_credentials WHERE workspace_id = ? AND user_id = ?`, workspaceID, userID)
		if err != nil {
			return 0, WebAuthnCredential{}, fmt.Errorf("%s: %w", op, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return 0, WebAuthnCredential{}, fmt.Errorf("%s: %w", op, ErrNotFound)
		}
	case MethodWebAuthn:
		row := tx.QueryRowContext(ctx, `DELETE FROM webauthn_credentials WHERE workspace_id = ? AND user_id = ? AND id = ? RETURNING `+webauthnColumns,
			workspaceID, userID, keyID)
		if removed, err = scanWebAuthn(row); err != nil {
			return 0, WebAuthnCredential{}, notFound(op, err)
		}
		event, details = EventWebAuthnRemoved, map[string]any{"credential": keyID, "name": removed.Name}
	case MethodSMS:
		// The verified phone, and with it any pending one: SMS is off for
		// the member.
		var masked, country string
		if err := tx.QueryRowContext(ctx, `SELECT masked, country FROM sms_phones WHERE workspace_id = ? AND user_id = ? AND verified_at IS NOT NULL`,
			workspaceID, userID).Scan(&masked, &country); err != nil {
			return 0, WebAuthnCredential{}, notFound(op, err)
		}
		if _, err := s.dropPhones(ctx, tx, workspaceID, userID, phonesAll, "phone removed"); err != nil {
			return 0, WebAuthnCredential{}, err
		}
		event, details = EventSMSPhoneRemoved, map[string]any{"phone": masked, "country": country}
	default:
		return 0, WebAuthnCredential{}, fmt.Errorf("%s: unknown method", op)
	}
	if !s.hasSecondFactor(ctx, tx, workspaceID, userID) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE workspace_id = ? AND user_id = ?`, workspaceID, userID); err != nil {
			return 0, WebAuthnCredential{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := s.refreshFactorSummary(ctx, tx, workspaceID, userID); err != nil {
		return 0, WebAuthnCredential{}, err
	}
	if _, err := s.endSessions(ctx, tx, workspaceID, userID, keepSessionID, "factor_removed"); err != nil {
		return 0, WebAuthnCredential{}, err
	}
	// A factor removed voids every trusted browser (DESIGN "Sign-in" 4).
	if _, err := s.voidTrustedDevices(ctx, tx, workspaceID, userID, userID, "factor_removed", meta); err != nil {
		return 0, WebAuthnCredential{}, err
	}
	if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
		Event: event, IP: meta.IP, UserAgent: meta.UserAgent, Details: details}); err != nil {
		return 0, WebAuthnCredential{}, err
	}
	return epoch, removed, s.enqueue(ctx, tx, workspaceID, msg)
}

// FactorRequired reports whether the policy keeps the member from removing
// the factor (method, and keyID for a key): the requirement covers them,
// they hold an allowed second factor and this is the last one. It is only
// an early answer (a page can say so before a code is spent); RemoveTOTP
// and RemoveWebAuthnKey decide again in their transaction.
func (s *Store) FactorRequired(ctx context.Context, workspaceID, userID int64, method string, keyID int64) (bool, error) {
	return s.factorRequired(ctx, s.db, workspaceID, userID, method, keyID)
}

func (s *Store) factorRequired(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, workspaceID, userID int64, method string, keyID int64) (bool, error) {
	p, err := scanPolicy(q.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID))
	if err != nil {
		return false, notFound("factor required", err)
	}
	if !p.Allows(method) {
		return false, nil
	}
	var role string
	var deadline sql.NullInt64
	var apps, keys, otherKeys, phones int
	if err := q.QueryRowContext(ctx, `SELECT role, mfa_deadline,
			(SELECT COUNT(*) FROM totp_credentials WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL),
			(SELECT COUNT(*) FROM webauthn_credentials WHERE workspace_id = ? AND user_id = ?),
			(SELECT COUNT(*) FROM webauthn_credentials WHERE workspace_id = ? AND user_id = ? AND id <> ?),
			(SELECT COUNT(*) FROM sms_phones WHERE workspace_id = ? AND user_id = ? AND verified_at IS NOT NULL)
		FROM users WHERE workspace_id = ? AND id = ?`,
		workspaceID, userID, workspaceID, userID, workspaceID, userID, keyID, workspaceID, userID, workspaceID, userID).
		Scan(&role, &deadline, &apps, &keys, &otherKeys, &phones); err != nil {
		return false, notFound("factor required", err)
	}
	if !deadline.Valid || !p.AppliesTo(role) {
		return false, nil
	}
	appsAfter, keysAfter, phonesAfter := apps, keys, phones
	switch method {
	case MethodTOTP:
		appsAfter = 0
	case MethodSMS:
		phonesAfter = 0
	default:
		keysAfter = otherKeys
	}
	return p.CompliantWith(role, HeldFactors(apps > 0, keys > 0, phones > 0)) &&
		!p.CompliantWith(role, HeldFactors(appsAfter > 0, keysAfter > 0, phonesAfter > 0)), nil
}

// hasSecondFactor reports whether the member holds a confirmed second
// factor (recovery codes alone do not count).
func (s *Store) hasSecondFactor(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, workspaceID, userID int64) bool {
	n, _ := s.countSecondFactors(ctx, q, workspaceID, userID)
	return n > 0
}

// secondFactorsQuery counts a member's confirmed authenticator apps, keys
// and verified phones.
const secondFactorsQuery = `SELECT
	(SELECT COUNT(*) FROM totp_credentials WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL) +
	(SELECT COUNT(*) FROM webauthn_credentials WHERE workspace_id = ? AND user_id = ?) +
	(SELECT COUNT(*) FROM sms_phones WHERE workspace_id = ? AND user_id = ? AND verified_at IS NOT NULL)`

func (s *Store) countSecondFactors(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, workspaceID, userID int64) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, secondFactorsQuery, workspaceID, userID, workspaceID, userID, workspaceID, userID).Scan(&n)
	return n, err
}

// HasSecondFactor reports whether the member must pass a second factor: a
// confirmed authenticator app, a passkey / security key or a verified
// phone.
func (s *Store) HasSecondFactor(ctx context.Context, workspaceID, userID int64) (bool, error) {
	n, err := s.countSecondFactors(ctx, s.db, workspaceID, userID)
	if err != nil {
		return false, fmt.Errorf("has second factor: %w", err)
	}
	return n > 0, nil
}

// RecoveryCode is one stored (hashed) recovery code.
type RecoveryCode struct {
	ID   int64
	Hash string
}

// factorAdded is what follows a member's new second factor, in its
// transaction, whichever the factor: the recovery codes of a first factor
// (recoveryHashes, nil otherwise), the factor summary, and the trusted
// browsers voided (a new factor may be an attacker's).
func (s *Store) factorAdded(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, recoveryHashes []string, meta Meta) error {
	if recoveryHashes != nil {
		if err := s.replaceRecoveryCodes(ctx, tx, workspaceID, userID, recoveryHashes); err != nil {
			return err
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventRecoveryCodesCreated, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"count": len(recoveryHashes)}}); err != nil {
			return err
		}
	}
	if err := s.refreshFactorSummary(ctx, tx, workspaceID, userID); err != nil {
		return err
	}
	_, err := s.voidTrustedDevices(ctx, tx, workspaceID, userID, userID, TrustedVoidedFactorAdded, meta)
	return err
}

func (s *Store) replaceRecoveryCodes(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, hashes []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE workspace_id = ? AND user_id = ?`, workspaceID, userID); err != nil {
		return fmt.Errorf("replace recovery codes: %w", err)
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (workspace_id, user_id, code_hash, created_at) VALUES (?, ?, ?, ?)`,
			workspaceID, userID, h, s.now()); err != nil {
			return fmt.Errorf("replace recovery codes: %w", err)
		}
	}
	return nil
}

// RegenerateRecoveryCodes replaces every recovery code of a member who has
// a second factor (else ErrNotFound), voids their trusted browsers (a
// factor change: the recovery codes are one), audits it and queues msg.
func (s *Store) RegenerateRecoveryCodes(ctx context.Context, workspaceID, userID int64, hashes []string, meta Meta, msg OutboxMessage) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		if !s.hasSecondFactor(ctx, tx, workspaceID, userID) {
			return fmt.Errorf("regenerate recovery codes: %w", ErrNotFound)
		}
		if err := s.replaceRecoveryCodes(ctx, tx, workspaceID, userID, hashes); err != nil {
			return err
		}
		if err := s.refreshFactorSummary(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventRecoveryCodesRegenerate, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"count": len(hashes)}}); err != nil {
			return err
		}
		if _, err := s.voidTrustedDevices(ctx, tx, workspaceID, userID, userID, TrustedVoidedCodesRegenerated, meta); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
}

// UnusedRecoveryCodes returns the member's unused codes (hashes).
func (s *Store) UnusedRecoveryCodes(ctx context.Context, workspaceID, userID int64) ([]RecoveryCode, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT id, code_hash FROM recovery_codes WHERE workspace_id = ? AND user_id = ? AND used_at IS NULL ORDER BY id`,
		workspaceID, userID)
	if err != nil {
		return nil, fmt.Errorf("unused recovery codes: %w", err)
	}
	defer rows.Close()
	var out []RecoveryCode
	for rows.Next() {
		var rc RecoveryCode
		if err := rows.Scan(&rc.ID, &rc.Hash); err != nil {
			return nil, fmt.Errorf("unused recovery codes: %w", err)
		}
		out = append(out, rc)
	}
	return out, rows.Err()
}

// useRecoveryCode spends one code: one conditional update, so of two
// concurrent uses exactly one succeeds. It returns how many remain.
func (s *Store) useRecoveryCode(ctx context.Context, tx *sql.Tx, workspaceID, userID, codeID int64) (int, error) {
	res, err := tx.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ? WHERE id = ? AND workspace_id = ? AND user_id = ? AND used_at IS NULL`,
		s.now(), codeID, workspaceID, userID)
	if err != nil {
		return 0, fmt.Errorf("use recovery code: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return 0, fmt.Errorf("use recovery code: %w", ErrNotFound)
	}
	if err := s.refreshFactorSummary(ctx, tx, workspaceID, userID); err != nil {
		return 0, err
	}
	var left int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE workspace_id = ? AND user_id = ? AND used_at IS NULL`,
		workspaceID, userID).Scan(&left); err != nil {
		return 0, fmt.Errorf("use recovery code: %w", err)
	}
	return left, nil
}

// RecoveryCodesRemaining counts a member's unused codes.
func (s *Store) RecoveryCodesRemaining(ctx context.Context, workspaceID, userID int64) (int, error) {
	var n int
	err := s.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE workspace_id = ? AND user_id = ? AND used_at IS NULL`,
		workspaceID, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("recovery codes remaining: %w", err)
	}
	return n, nil
}

// Challenge is a second-factor challenge after a correct password.
type Challenge struct {
	ID          string
	WorkspaceID int64
	UserID      int64
	PasswordAt  time.Time // when the first factor passed
	FirstMethod string    // "password", or "passkey" when passkeys do not satisfy MFA alone
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Failures    int
	EndedAt     time.Time
	EndedReason string
}

const challengeColumns = `id, workspace_id, user_id, password_at, first_method, created_at, expires_at, failures, ended_at, COALESCE(ended_reason, '')`

func scanChallenge(row interface{ Scan(...any) error }) (Challenge, error) {
	var ch Challenge
	var pw, created, expires int64
	var ended sql.NullInt64
	if err := row.Scan(&ch.ID, &ch.WorkspaceID, &ch.UserID, &pw, &ch.FirstMethod, &created, &expires, &ch.Failures, &ended, &ch.EndedReason); err != nil {
		return Challenge{}, err
	}
	ch.PasswordAt, ch.CreatedAt, ch.ExpiresAt, ch.EndedAt = unix(pw), unix(created), unix(expires), nullTime(ended)
	return ch, nil
}

// CreateChallenge stores a new challenge.
func (s *Store) CreateChallenge(ctx context.Context, ch Challenge) error {
	if ch.FirstMethod == "" {
		ch.FirstMethod = "password"
	}
	_, err := s.exec(ctx, `INSERT INTO mfa_challenges (id, workspace_id, user_id, password_at, first_method, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		ch.ID, ch.WorkspaceID, ch.UserID, ch.PasswordAt.Unix(), ch.FirstMethod, ch.CreatedAt.Unix(), ch.ExpiresAt.Unix())
	if err != nil {
		return fmt.Errorf("create challenge: %w", err)
	}
	return nil
}

// OpenChallenge returns the workspace's challenge if it is neither ended nor
// expired, else ErrNotFound.
func (s *Store) OpenChallenge(ctx context.Context, workspaceID int64, id string) (Challenge, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+challengeColumns+` FROM mfa_challenges
		WHERE workspace_id = ? AND id = ? AND ended_at IS NULL AND expires_at > ?`, workspaceID, id, s.now())
	ch, err := scanChallenge(row)
	if err != nil {
		return Challenge{}, notFound("open challenge", err)
	}
	return ch, nil
}

// EndChallenge ends a challenge (the member went back, or signed out).
func (s *Store) EndChallenge(ctx context.Context, workspaceID int64, id, reason string) error {
	_, err := s.exec(ctx, `UPDATE mfa_challenges SET ended_at = ?, ended_reason = ? WHERE workspace_id = ? AND id = ? AND ended_at IS NULL`,
		s.now(), reason, workspaceID, id)
	if err != nil {
		return fmt.Errorf("end challenge: %w", err)
	}
	return nil
}

// Guard is a member's second-factor failure state.
type Guard struct {
	WindowStart    time.Time
	WindowFailures int
	Consecutive    int
	LockedUntil    time.Time
	DisabledAt     time.Time
}

// MFAGuard returns the member's failure state (zero when none).
func (s *Store) MFAGuard(ctx context.Context, workspaceID, userID int64) (Guard, error) {
	var g Guard
	var start, locked int64
	var disabled sql.NullInt64
	err := s.q(ctx).QueryRowContext(ctx, `SELECT window_start, window_failures, consecutive, locked_until, disabled_at FROM mfa_guards WHERE workspace_id = ? AND user_id = ?`,
		workspaceID, userID).Scan(&start, &g.WindowFailures, &g.Consecutive, &locked, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return Guard{}, nil
	} else if err != nil {
		return Guard{}, fmt.Errorf("mfa guard: %w", err)
	}
	g.WindowStart, g.LockedUntil, g.DisabledAt = unix(start), unix(locked), nullTime(disabled)
	if locked == 0 {
		g.LockedUntil = time.Time{}
	}
	return g, nil
}

// FailureOutcome is what one wrong second factor led to.
type FailureOutcome struct {
	ChallengeFailures int
	ChallengeEnded    bool // the 5th failure of the challenge ended it
	LockedUntil       time.Time
	NewlyLocked       bool
	NewlyDisabled     bool
}

// ClaimMFAGuess counts one second-factor guess (a TOTP or recovery code)
// for the member, and for the challenge when challengeID is set, before
// anything judges it (SECURITY rule 11): one conditional write that counts
// it as a failure, which a right guess takes back when it is spent (see
// FactorUse.Counted). The write refuses, and nothing is counted, while the
// member is locked or disabled, or when the 15-minute window already holds
// as many guesses as the lock allows or the 100th consecutive one is
// already out: those are being judged, and the lock may follow. So N
// guesses sent at once get no more answers than N sent one by one. It
// returns ErrMFALocked then, and ErrChallengeGone when the challenge is
// spent, ended, expired or has had its five guesses.
func (s *Store) ClaimMFAGuess(ctx context.Context, workspaceID, userID int64, challengeID string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		now := s.now()
		cutoff := now - int64(GuardWindow/time.Second)
		var n int
		err := tx.QueryRowContext(ctx, `
			INSERT INTO mfa_guards (workspace_id, user_id, window_start, window_failures, consecutive) VALUES (?, ?, ?, 1, 1)
			ON CONFLICT (workspace_id, user_id) DO UPDATE SET
				window_failures = CASE WHEN mfa_guards.window_start <= ? THEN 1 ELSE mfa_guards.window_failures + 1 END,
				window_start    = CASE WHEN mfa_guards.window_start <= ? THEN ? ELSE mfa_guards.window_start END,
				consecutive     = mfa_guards.consecutive + 1
			WHERE mfa_guards.disabled_at IS NULL AND mfa_guards.locked_until <= ? AND mfa_guards.consecutive < ?
			  AND (mfa_guards.window_start <= ? OR mfa_guards.window_failures < ?)
			RETURNING window_failures`,
			workspaceID, userID, now, cutoff, cutoff, now, now, GuardDisableAfter, cutoff, GuardWindowFailures).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("claim mfa guess: %w", ErrMFALocked)
		} else if err != nil {
			return fmt.Errorf("claim mfa guess: %w", err)
		}
		if challengeID == "" {
			return nil
		}
		err = tx.QueryRowContext(ctx, `UPDATE mfa_challenges SET failures = failures + 1
			WHERE workspace_id = ? AND id = ? AND user_id = ? AND ended_at IS NULL AND expires_at > ? AND failures < ?
			RETURNING failures`, workspaceID, challengeID, userID, now, ChallengeMaxFailures).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			// Rolled back: the member's count too.
			return fmt.Errorf("claim mfa guess: %w", ErrChallengeGone)
		} else if err != nil {
			return fmt.Errorf("claim mfa guess: %w", err)
		}
		return nil
	})
}

// ReleaseMFAGuess takes back a guess ClaimMFAGuess counted that could not
// be judged (a server fault before the comparison: an unreadable secret, a
// failed read): it told the guesser nothing, so it must not lock the
// member either. The challenge's count is taken back too.
func (s *Store) ReleaseMFAGuess(ctx context.Context, workspaceID, userID int64, challengeID string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		if err := s.takeBackGuess(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		if challengeID == "" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mfa_challenges SET failures = failures - 1 WHERE workspace_id = ? AND id = ? AND failures > 0`,
			workspaceID, challengeID); err != nil {
			return fmt.Errorf("release mfa guess: %w", err)
		}
		return nil
	})
}

// RecordMFAFailure counts a wrong second factor for the member and, when
// challengeID is set, for the challenge; both atomically, in the database,
// so that no challenge, session, IP or app node escapes the count. It ends
// the challenge at its 5th failure, locks second-factor sign-in for 15
// minutes at the 10th failure in 15 minutes, and disables it at the 100th
// consecutive one, queuing lockMsg or disableMsg to the member then.
// Guesses counted beforehand by ClaimMFAGuess are settled with
// MFAGuessFailed instead.
func (s *Store) RecordMFAFailure(ctx context.Context, workspaceID, userID int64, challengeID, method string, meta Meta, lockMsg, disableMsg OutboxMessage) (FailureOutcome, error) {
	return s.recordFailure(ctx, workspaceID, userID, challengeID, method, true, meta, lockMsg, disableMsg)
}

// MFAGuessFailed settles a guess that ClaimMFAGuess counted and that was
// judged wrong: nothing is counted again, but the challenge ends at its
// 5th failure, the member is locked at the 10th in the window and disabled
// at the 100th consecutive one, as RecordMFAFailure does. When a sibling
// request of the same sign-in passed challengeID meanwhile (the guess found
// the code it spent), the guess is taken back and ErrChallengeGone
// returned: retries of a sign-in that succeeded never lock its member.
func (s *Store) MFAGuessFailed(ctx context.Context, workspaceID, userID int64, challengeID, method string, meta Meta, lockMsg, disableMsg OutboxMessage) (FailureOutcome, error) {
	return s.recordFailure(ctx, workspaceID, userID, challengeID, method, false, meta, lockMsg, disableMsg)
}

func (s *Store) recordFailure(ctx context.Context, workspaceID, userID int64, challengeID, method string, count bool, meta Meta, lockMsg, disableMsg OutboxMessage) (FailureOutcome, error) {
	var out FailureOutcome
	gone := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		now := s.now()
		failures := 0
		if challengeID != "" {
			// A sibling request of the same sign-in passed the challenge
			// while this one was judged (it found the code spent): the
			// sign-in succeeded, so this is no wrong guess. It is answered
			// as one that came a moment later would be (ErrChallengeGone,
			// not counted), and a counted guess is taken back.
			var reason sql.NullString
			err := tx.QueryRowContext(ctx, `SELECT failures, ended_reason FROM mfa_challenges WHERE workspace_id = ? AND id = ? AND user_id = ?`,
				workspaceID, challengeID, userID).Scan(&failures, &reason)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("record mfa failure: %w", err)
			}
			if reason.String == "passed" {
				gone = true
				if count {
					return nil
				}
				return s.takeBackGuess(ctx, tx, workspaceID, userID)
			}
		}
		cutoff := now - int64(GuardWindow/time.Second)
		var windowFailures, consecutive int
		var locked int64
		var disabled sql.NullInt64
		var err error
		if count {
			err = tx.QueryRowContext(ctx, `
				INSERT INTO mfa_guards (workspace_id, user_id, window_start, window_failures, consecutive) VALUES (?, ?, ?, 1, 1)
				ON CONFLICT (workspace_id, user_id) DO UPDATE SET
					window_failures = CASE WHEN mfa_guards.window_start <= ? THEN 1 ELSE mfa_guards.window_failures + 1 END,
					window_start    = CASE WHEN mfa_guards.window_start <= ? THEN ? ELSE mfa_guards.window_start END,
					consecutive     = mfa_guards.consecutive + 1
				RETURNING window_failures, consecutive, locked_until, disabled_at`,
				workspaceID, userID, now, cutoff, cutoff, now).Scan(&windowFailures, &consecutive, &locked, &disabled)
		} else {
			err = tx.QueryRowContext(ctx, `SELECT window_failures, consecutive, locked_until, disabled_at FROM mfa_guards WHERE workspace_id = ? AND user_id = ?`,
				workspaceID, userID).Scan(&windowFailures, &consecutive, &locked, &disabled)
			if errors.Is(err, sql.ErrNoRows) {
				// Reset meanwhile (an admin or support reset): nothing to settle.
				err = nil
				disabled.Valid = true
			}
		}
		if err != nil {
			return fmt.Errorf("record mfa failure: %w", err)
		}
		details := map[string]any{"method": method, "consecutive": consecutive}
		if challengeID != "" {
			if count {
				err := tx.QueryRowContext(ctx, `UPDATE mfa_challenges SET failures = failures + 1 WHERE workspace_id = ? AND id = ? RETURNING failures`,
					workspaceID, challengeID).Scan(&failures)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("record mfa failure: %w", err)
				}
			}
			out.ChallengeFailures = failures
			if failures >= ChallengeMaxFailures {
				out.ChallengeEnded = true
				if _, err := tx.ExecContext(ctx, `UPDATE mfa_challenges SET ended_at = ?, ended_reason = 'too_many_failures' WHERE id = ? AND ended_at IS NULL`,
					now, challengeID); err != nil {
					return fmt.Errorf("record mfa failure: %w", err)
				}
			}
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventChallengeFailed,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: details}); err != nil {
			return err
		}
		if windowFailures >= GuardWindowFailures && locked <= now {
			locked = now + int64(GuardLockFor/time.Second)
			out.NewlyLocked = true
			if _, err := tx.ExecContext(ctx, `UPDATE mfa_guards SET locked_until = ?, window_start = ?, window_failures = 0 WHERE workspace_id = ? AND user_id = ?`,
				locked, now, workspaceID, userID); err != nil {
				return fmt.Errorf("record mfa failure: %w", err)
			}
			if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventMFALocked,
				IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"until": locked}}); err != nil {
				return err
			}
			if err := s.enqueue(ctx, tx, workspaceID, lockMsg); err != nil {
				return err
			}
		}
		if locked > now {
			out.LockedUntil = unix(locked)
		}
		if consecutive >= GuardDisableAfter && !disabled.Valid {
			out.NewlyDisabled = true
			if _, err := tx.ExecContext(ctx, `UPDATE mfa_guards SET disabled_at = ? WHERE workspace_id = ? AND user_id = ?`, now, workspaceID, userID); err != nil {
				return fmt.Errorf("record mfa failure: %w", err)
			}
			if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, SubjectUserID: userID, Event: EventMFADisabled,
				IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"consecutive": consecutive}}); err != nil {
				return err
			}
			if err := s.enqueue(ctx, tx, workspaceID, disableMsg); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && gone {
		err = fmt.Errorf("record mfa failure: %w", ErrChallengeGone)
	}
	return out, err
}

// guardClosed returns ErrMFALocked while the member's second factor is
// locked or disabled. It is read again inside the transaction that spends
// a factor: a request that checked the factor before the tenth wrong code
// was committed (here or on another node) must not get through.
func (s *Store) guardClosed(ctx context.Context, tx *sql.Tx, workspaceID, userID int64) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mfa_guards WHERE workspace_id = ? AND user_id = ? AND (locked_until > ? OR disabled_at IS NOT NULL)`,
		workspaceID, userID, s.now()).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrMFALocked
	}
	return nil
}

// openGuard refuses (ErrMFALocked) while the member's second factor is
// locked or disabled. In the same statement it takes back the guess
// ClaimMFAGuess counted for the factor being used (counted: it proved
// right) and, when the factor passed a sign-in or a step-up (passed),
// clears the consecutive failures; a refusal rolls both back with the
// transaction. Without either it only reads.
func (s *Store) openGuard(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, counted, passed bool) error {
	if !counted && !passed {
		return s.guardClosed(ctx, tx, workspaceID, userID)
	}
	var closed bool
	err := tx.QueryRowContext(ctx, `UPDATE mfa_guards SET
			window_failures = CASE WHEN ? = 1 AND window_failures > 0 THEN window_failures - 1 ELSE window_failures END,
			consecutive     = CASE WHEN ? = 1 THEN 0 WHEN consecutive > 0 THEN consecutive - 1 ELSE 0 END
		WHERE workspace_id = ? AND user_id = ?
		RETURNING CASE WHEN locked_until > ? OR disabled_at IS NOT NULL THEN 1 ELSE 0 END`, one(counted), one(passed), workspaceID, userID, s.now()).Scan(&closed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil // never guessed wrong, nor counted
	case err != nil:
		return fmt.Errorf("open guard: %w", err)
	case closed:
		return ErrMFALocked
	}
	return nil
}

// one is a flag as the integer both engines compare alike.
func one(b bool) int {
	if b {
		return 1
	}
	return 0
}

// takeBackGuess uncounts a guess ClaimMFAGuess counted that proved right.
// CASE, not MAX or GREATEST: the common SQLite/PostgreSQL subset.
func (s *Store) takeBackGuess(ctx context.Context, tx *sql.Tx, workspaceID, userID int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE mfa_guards SET
			window_failures = CASE WHEN window_failures > 0 THEN window_failures - 1 ELSE 0 END,
			consecutive     = CASE WHEN consecutive > 0 THEN consecutive - 1 ELSE 0 END
		WHERE workspace_id = ? AND user_id = ?`, workspaceID, userID); err != nil {
		return fmt.Errorf("take back mfa guess: %w", err)
	}
	return nil
}

// FactorUse is how a challenge or step-up was passed: exactly one of a TOTP
// step, a recovery code, a WebAuthn assertion or an SMS code.
type FactorUse struct {
	Method       string // "totp", "recovery_code", "webauthn", "passkey" or "sms"
	TOTPID       int64
	Step         int64
	RecoveryCode int64
	// A WebAuthn assertion: the key, the sign count it reported and the
	// one stored when it was checked (the update is conditional on it, so
	// two assertions racing on one key cannot both pass), and its backup
	// state now.
	WebAuthnID   int64
	SignCount    uint32
	OldSignCount uint32
	BackupState  bool
	// An SMS code (LiveSMSCode), whose hash the caller compared: spent
	// once, and only for what it was sent for: PassChallenge spends a
	// sign-in code of its challenge; StepUp and ConsumeFactor a step-up
	// code sent to the session SessionID.
	SMSCodeID int64
	SessionID string
	// Counted is set when ClaimMFAGuess counted the guess before it was
	// judged: spending it takes the count back.
	Counted bool
	// challengeID is PassChallenge's challenge, which an SMS code must be
	// bound to.
	challengeID string
}

func (s *Store) useFactor(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, f FactorUse, passed bool) (remaining int, err error) {
	if err := s.openGuard(ctx, tx, workspaceID, userID, f.Counted, passed); err != nil {
		return 0, fmt.Errorf("use factor: %w", err)
	}
	remaining = -1
	switch f.Method {
	case "totp":
		err = s.useTOTPStep(ctx, tx, workspaceID, userID, f.TOTPID, f.Step)
	case "recovery_code":
		remaining, err = s.useRecoveryCode(ctx, tx, workspaceID, userID, f.RecoveryCode)
	case "webauthn", "passkey":
		err = s.useWebAuthn(ctx, tx, workspaceID, userID, f)
	case MethodSMS:
		err = s.useSMSCode(ctx, tx, workspaceID, userID, f)
	default:
		return 0, fmt.Errorf("use factor: unknown method %q", f.Method)
	}
	if err != nil {
		return remaining, err
	}
	// A member who proves a factor has one: a self-service recovery they
	// (or someone with their password) started is cancelled.
	return remaining, s.cancelRecoveriesTx(ctx, tx, workspaceID, userID, "signed_in_with_factor")
}

// PassChallenge completes a challenge in one transaction: the challenge is
// spent (a reused mfa_token or challenge fails), the factor is consumed
// (TOTP step or recovery code, each a conditional update), the member's
// consecutive failures reset, the new session registered and everything
// audited; msg (the recovery-code notice) is queued. Any refusal rolls it
// all back with ErrNotFound. It returns the recovery codes left after a
// recovery code was used (-1 otherwise).
func (s *Store) PassChallenge(ctx context.Context, ch Challenge, f FactorUse, us UserSession, msg OutboxMessage) (int, error) {
	remaining := -1
	gone := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, ch.WorkspaceID, ch.UserID); err != nil {
			return err
		}
		now := s.now()
		res, err := tx.ExecContext(ctx, `UPDATE mfa_challenges SET ended_at = ?, ended_reason = 'passed'
			WHERE workspace_id = ? AND id = ? AND user_id = ? AND ended_at IS NULL AND expires_at > ?`, now, ch.WorkspaceID, ch.ID, ch.UserID, now)
		if err != nil {
			return fmt.Errorf("pass challenge: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			// Passed by a sibling request of the same sign-in, expired
			// or ended meanwhile: a right factor that came too late is
			// no wrong guess, so a counted one is taken back.
			gone = true
			if f.Counted {
				return s.takeBackGuess(ctx, tx, ch.WorkspaceID, ch.UserID)
			}
			return nil
		}
		f.challengeID = ch.ID
		if remaining, err = s.useFactor(ctx, tx, ch.WorkspaceID, ch.UserID, f, true); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO user_sessions (id, workspace_id, user_id, token_hash, aal, auth_time, last_seen_at, expires_at, ip, user_agent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			us.ID, us.WorkspaceID, us.UserID, us.TokenHash, us.AAL, us.AuthTime.Unix(), us.LastSeenAt.Unix(), us.ExpiresAt.Unix(),
			truncate(us.IP, 64), truncate(us.UserAgent, 512)); err != nil {
			return fmt.Errorf("pass challenge: %w", err)
		}
		return s.passed(ctx, tx, ch.WorkspaceID, ch.UserID, f, remaining, Meta{IP: us.IP, UserAgent: us.UserAgent}, msg, EventChallengePassed,
			AuditEvent{WorkspaceID: us.WorkspaceID, ActorUserID: us.UserID, SubjectUserID: us.UserID,
				Event: EventSignInSucceeded, IP: us.IP, UserAgent: us.UserAgent, Details: map[string]any{"methods": []string{ch.FirstMethod, f.Method}, "aal": us.AAL}})
	})
	if err == nil && gone {
		err = fmt.Errorf("pass challenge: %w", ErrChallengeGone)
	}
	return remaining, err
}

// StepUp consumes a factor to re-verify a signed-in member, resetting the
// consecutive failures, auditing and queuing msg. It returns the recovery
// codes left (-1 for TOTP).
func (s *Store) StepUp(ctx context.Context, workspaceID, userID int64, f FactorUse, meta Meta, msg OutboxMessage) (int, error) {
	remaining := -1
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		var err error
		if remaining, err = s.useFactor(ctx, tx, workspaceID, userID, f, true); err != nil {
			return err
		}
		return s.passed(ctx, tx, workspaceID, userID, f, remaining, meta, msg, EventStepUp)
	})
	return remaining, err
}

// passed audits a factor that passed a sign-in or a step-up (event), with
// more events of the same change in the same statement, and for a
// recovery code its use and msg, the notice to the member.
func (s *Store) passed(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, f FactorUse, remaining int, meta Meta, msg OutboxMessage, event string, more ...AuditEvent) error {
	evs := []AuditEvent{{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
		Event: event, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"method": f.Method}}}
	if f.Method == "recovery_code" {
		evs = append(evs, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventRecoveryCodeUsed, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"remaining": remaining}})
	}
	if err := s.insertAudits(ctx, tx, append(evs, more...)...); err != nil {
		return err
	}
	if f.Method == "recovery_code" {
		return s.enqueue(ctx, tx, workspaceID, msg)
	}
	return nil
}

// DeleteExpiredMFA removes ended or expired challenges, unconfirmed
// enrollments, SMS codes and pending phones older than a day.
func (s *Store) DeleteExpiredMFA(ctx context.Context) (int64, error) {
	horizon := s.now() - 24*3600
	r1, err := s.exec(ctx, `DELETE FROM mfa_challenges WHERE expires_at < ?`, horizon)
	if err != nil {
		return 0, fmt.Errorf("delete expired mfa: %w", err)
	}
	a, _ := r1.RowsAffected()
	// Unconfirmed enrollments count in no member's factor summary, so
	// deleting them changes none: no recount, and so no row lock on the
	// members (a bulk job that locked members across workspaces could
	// deadlock with a policy change on PostgreSQL).
	r2, err := s.exec(ctx, `DELETE FROM totp_credentials WHERE confirmed_at IS NULL AND expires_at < ?`, s.now())
	if err != nil {
		return 0, fmt.Errorf("delete expired mfa: %w", err)
	}
	b, _ := r2.RowsAffected()
	// SMS codes a day past their expiry (their use is in the audit trail)
	// and phones left pending for a day, likewise in no summary.
	r3, err := s.exec(ctx, `DELETE FROM sms_codes WHERE expires_at < ?`, horizon)
	if err != nil {
		return 0, fmt.Errorf("delete expired mfa: %w", err)
	}
	c, _ := r3.RowsAffected()
	r4, err := s.exec(ctx, `DELETE FROM sms_phones WHERE verified_at IS NULL AND created_at < ?`, horizon)
	if err != nil {
		return 0, fmt.Errorf("delete expired mfa: %w", err)
	}
	d, _ := r4.RowsAffected()
	return a + b + c + d, nil
}

// AllTOTPSecrets lists every TOTP credential's ciphertext, for key rotation.
func (s *Store) AllTOTPSecrets(ctx context.Context) ([]TOTPCredential, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+totpColumns+` FROM totp_credentials ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("all totp secrets: %w", err)
	}
	defer rows.Close()
	var out []TOTPCredential
	for rows.Next() {
		c, err := scanTOTP(rows)
		if err != nil {
			return nil, fmt.Errorf("all totp secrets: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ReplaceTOTPSecret stores a re-encrypted secret, if the ciphertext is still
// the one that was read (a concurrent change wins).
func (s *Store) ReplaceTOTPSecret(ctx context.Context, id int64, oldSecret []byte, keyID string, secret []byte) error {
	_, err := s.exec(ctx, `UPDATE totp_credentials SET key_id = ?, secret = ? WHERE id = ? AND secret = ?`, keyID, secret, id, oldSecret)
	if err != nil {
		return fmt.Errorf("replace totp secret: %w", err)
	}
	return nil
}
