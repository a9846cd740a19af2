package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Platform staff are members of the platform workspace (migration 0009):
// the members' machinery (passwords, second factors, lockouts, sessions,
// audit) serves them too, and nothing of a customer workspace can reach
// them or be reached from them by a workspace-scoped call.

// PlatformSlug is the platform workspace's slug: not a valid workspace
// slug, so no customer workspace can take it or reach it by /t/{slug}.
const PlatformSlug = "_support"

// Staff roles are workspace roles of the platform workspace: a lead is an
// admin there, a staff member a member.
const (
	StaffRole = RoleMember
	LeadRole  = RoleAdmin
)

// Staff audit events (in the platform workspace's trail).
const (
	EventStaffCreated        = "staff.created"
	EventStaffEnrollmentLink = "staff.enrollment_link_created"
	EventStaffEnrolled       = "staff.enrolled"
	EventSupportMemberSearch = "support.member_search"
)

// ErrEnrollmentLink is a staff enrollment link that is unknown, used or
// expired: the callers say nothing more.
var ErrEnrollmentLink = errors.New("staff enrollment link not usable")

// PlatformWorkspace returns the platform workspace, creating it on first
// use: staff sessions last 8 hours at most, 15 idle minutes; its policy
// requires a second factor of everyone with no grace and no reminders
// (staff get a deadline that has passed when created), so the rules that
// keep a member's last factor and refuse API sessions without one hold for
// staff too.
func (s *Store) PlatformWorkspace(ctx context.Context) (Workspace, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE platform = 1`)
	w, err := scanWorkspace(row)
	if err == nil {
		return w, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Workspace{}, fmt.Errorf("platform workspace: %w", err)
	}
	if _, err := s.exec(ctx, `INSERT INTO workspaces (slug, name, session_absolute_minutes, session_idle_minutes, created_at, platform,
			mfa_policy, grace_days, reminder_days, enforced_since)
		VALUES (?, 'Gatehouse support', 480, 15, ?, 1, 'required', 0, '', ?) ON CONFLICT DO NOTHING`, PlatformSlug, s.now(), s.now()); err != nil {
		return Workspace{}, fmt.Errorf("platform workspace: %w", err)
	}
	w, err = scanWorkspace(s.q(ctx).QueryRowContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE platform = 1`))
	if err != nil {
		return Workspace{}, fmt.Errorf("platform workspace: %w", err)
	}
	return w, nil
}

// CreateStaff adds a staff member (role StaffRole or LeadRole) with the
// password hash and an enrollment link (the token's hash), audited, in one
// transaction. ErrConflict: the email is already staff.
func (s *Store) CreateStaff(ctx context.Context, email, role, passwordHash, tokenHash string, expires time.Time) (User, error) {
	if role != StaffRole && role != LeadRole {
		return User{}, fmt.Errorf("create staff: role %q", role)
	}
	p, err := s.PlatformWorkspace(ctx)
	if err != nil {
		return User{}, err
	}
	var u User
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if u, err = s.insertUser(ctx, tx, p.ID, email, role, passwordHash); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET mfa_since = ?, mfa_deadline = ? WHERE workspace_id = ? AND id = ?`,
			s.now(), s.now(), p.ID, u.ID); err != nil {
			return fmt.Errorf("create staff: %w", err)
		}
		u.MFADeadline = unix(s.now())
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: p.ID, SubjectUserID: u.ID, Event: EventStaffCreated, IP: "cli",
			Details: map[string]any{"role": role}}); err != nil {
			return err
		}
		return s.insertStaffEnrollment(ctx, tx, p.ID, u.ID, tokenHash, expires)
	})
	return u, err
}

// NewStaffEnrollment gives an existing staff member a new enrollment link
// (earlier unused ones stop working). ErrNotFound: no such staff member.
func (s *Store) NewStaffEnrollment(ctx context.Context, email, tokenHash string, expires time.Time) (User, error) {
	p, err := s.PlatformWorkspace(ctx)
	if err != nil {
		return User{}, err
	}
	var u User
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND email_key = ?`, p.ID, EmailKey(email))); err != nil {
			return notFound("staff enrollment", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE staff_enrollments SET used_at = ? WHERE workspace_id = ? AND user_id = ? AND used_at IS NULL`,
			s.now(), p.ID, u.ID); err != nil {
			return fmt.Errorf("staff enrollment: %w", err)
		}
		return s.insertStaffEnrollment(ctx, tx, p.ID, u.ID, tokenHash, expires)
	})
	return u, err
}

func (s *Store) insertStaffEnrollment(ctx context.Context, tx *sql.Tx, platformID, userID int64, tokenHash string, expires time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO staff_enrollments (workspace_id, user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		platformID, userID, tokenHash, s.now(), expires.Unix()); err != nil {
		return fmt.Errorf("staff enrollment: %w", err)
	}
	return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: platformID, SubjectUserID: userID, Event: EventStaffEnrollmentLink, IP: "cli",
		Details: map[string]any{"expires": expires.UTC().Format(time.RFC3339)}})
}

// StaffEnrollment returns the staff member whose unused, unexpired
// enrollment link has one of the hashes (one per master key), or
// ErrEnrollmentLink.
func (s *Store) StaffEnrollment(ctx context.Context, tokenHashes []string) (User, error) {
	if len(tokenHashes) == 0 {
		return User{}, ErrEnrollmentLink
	}
	q := `SELECT ` + prefixed("u.", userColumns) + ` FROM staff_enrollments e
		JOIN users u ON u.workspace_id = e.workspace_id AND u.id = e.user_id
		JOIN workspaces w ON w.id = e.workspace_id AND w.platform = 1
		WHERE e.used_at IS NULL AND e.expires_at > ? AND e.token_hash IN (?` + strings.Repeat(", ?", len(tokenHashes)-1) + `)`
	args := []any{s.now()}
	for _, h := range tokenHashes {
		args = append(args, h)
	}
	u, err := scanUser(s.q(ctx).QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrEnrollmentLink
	} else if err != nil {
		return User{}, fmt.Errorf("staff enrollment: %w", err)
	}
	return u, nil
}

// spendStaffEnrollmentTx marks the link used inside tx, on condition that
// it still is usable, and audits the enrollment; ErrEnrollmentLink when
// another request spent it first or it expired meanwhile.
func (s *Store) spendStaffEnrollmentTx(ctx context.Context, tx *sql.Tx, u User, tokenHashes []string, method string, meta Meta) error {
	if len(tokenHashes) == 0 {
		return ErrEnrollmentLink
	}
	args := []any{s.now(), u.WorkspaceID, u.ID, s.now()}
	for _, h := range tokenHashes {
		args = append(args, h)
	}
	res, err := tx.ExecContext(ctx, `UPDATE staff_enrollments SET used_at = ?
		WHERE workspace_id = ? AND user_id = ? AND used_at IS NULL AND expires_at > ? AND token_hash IN (?`+strings.Repeat(", ?", len(tokenHashes)-1)+`)
		AND workspace_id = (SELECT id FROM workspaces WHERE platform = 1)`, args...)
	if err != nil {
		return fmt.Errorf("spend staff enrollment: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrEnrollmentLink
	}
	return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: u.WorkspaceID, ActorUserID: u.ID, SubjectUserID: u.ID, Event: EventStaffEnrolled,
		IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"method": method}})
}

// EnrollStaffTOTP turns a staff member's authenticator app on with its
// first code and spends their enrollment link, in one transaction: of two
// requests racing with one link, one binds a factor and the other gets
// ErrEnrollmentLink. The rest is as ConfirmTOTPEnrollment.
func (s *Store) EnrollStaffTOTP(ctx context.Context, u User, tokenHashes []string, credID, step int64, recoveryHashes []string, meta Meta, msg OutboxMessage) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, u.WorkspaceID, u.ID); err != nil {
			return err
		}
		if err := s.spendStaffEnrollmentTx(ctx, tx, u, tokenHashes, MethodTOTP, meta); err != nil {
			return err
		}
		return s.confirmTOTPTx(ctx, tx, u.WorkspaceID, u.ID, credID, step, recoveryHashes, meta, msg)
	})
}

// EnrollStaffKey stores a staff member's new key and spends their
// enrollment link in one transaction, as EnrollStaffTOTP.
func (s *Store) EnrollStaffKey(ctx context.Context, u User, tokenHashes []string, c WebAuthnCredential, recoveryHashes []string, meta Meta, msg OutboxMessage) (WebAuthnCredential, error) {
	var out WebAuthnCredential
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, u.WorkspaceID, u.ID); err != nil {
			return err
		}
		if err := s.spendStaffEnrollmentTx(ctx, tx, u, tokenHashes, MethodWebAuthn, meta); err != nil {
			return err
		}
		var err error
		out, err = s.addWebAuthnTx(ctx, tx, c, recoveryHashes, meta, msg)
		return err
	})
	return out, err
}

// FoundMember is a customer workspace's member as the support console
// shows them: no secret, code or phone number, only what a factor is.
type FoundMember struct {
	WorkspaceID            int64
	WorkspaceSlug          string
	WorkspaceName          string
	ID                     int64
	Email                  string
	Role                   string
	Factors                []string // "totp", "webauthn"
	RecoveryCodesRemaining int
}

// SearchMembers finds the members of every customer workspace whose email
// is email (ignoring case), at most 100, and audits the search as actor's
// in the platform workspace.
func (s *Store) SearchMembers(ctx context.Context, actorID int64, email string, meta Meta) ([]FoundMember, error) {
	p, err := s.PlatformWorkspace(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT w.id, w.slug, w.name, u.id, u.email, u.role, u.mfa_factors, u.mfa_codes
		FROM users u JOIN workspaces w ON w.id = u.workspace_id
		WHERE w.platform = 0 AND u.email_key = ? ORDER BY w.slug LIMIT 100`, EmailKey(email))
	if err != nil {
		return nil, fmt.Errorf("search members: %w", err)
	}
	defer rows.Close()
	var out []FoundMember
	for rows.Next() {
		var m FoundMember
		var held Factors
		if err := rows.Scan(&m.WorkspaceID, &m.WorkspaceSlug, &m.WorkspaceName, &m.ID, &m.Email, &m.Role, &held, &m.RecoveryCodesRemaining); err != nil {
			return nil, fmt.Errorf("search members: %w", err)
		}
		m.Factors = held.Methods()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search members: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: p.ID, ActorUserID: actorID, Event: EventSupportMemberSearch,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"email": EmailKey(email), "found": len(out)}})
	})
	return out, err
}
