package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Admin actions on members, audited.
const (
	EventMFAResetByAdmin     = "mfa.reset_by_admin"
	EventSessionEndedByAdmin = "session.ended_by_admin"
	EventMemberRoleChanged   = "member.role_changed"
	EventInvitationResent    = "invitation.resent"
)

// LowRecoveryCodesThreshold is the number of unused recovery codes at or
// below which a member is warned (and listed as low_recovery_codes).
const LowRecoveryCodesThreshold = 3

// ErrNotAllowed is returned when the acting member's role does not allow
// the change (an admin making or demoting an owner).
var ErrNotAllowed = errors.New("not allowed for this role")

// ErrLastOwner is returned when a change would leave a workspace without
// an owner.
var ErrLastOwner = errors.New("last owner")

// ResetResult says what an admin's MFA reset removed.
type ResetResult struct {
	TOTP          int
	Keys          int
	Phones        int // verified and pending phones
	RecoveryCodes int
	// TrustedDevices is how many trusted browsers the reset voided.
	TrustedDevices int
	SessionsEnded  int
	SessionEpoch   int64
	// OAuthTokens is how many application tokens (access and refresh)
	// the reset revoked.
	OAuthTokens int64
}

// ResetMFA removes every second factor of a member on an admin's request,
// in one transaction: authenticator apps (confirmed and pending), passkeys
// and security keys, phones (verified and pending, their codes and unsent
// texts), recovery codes, and the member's failure counters (a
// lock or a disable after 100 wrong codes is lifted). Open sign-in
// challenges end, since they ask for factors that are gone, and trusted
// devices are revoked. When endSessions is set the session epoch is bumped
// and every session of the member ends.
// The reset is audited (actor adminID, subject memberID) and msg, the
// notice to the member, queued. It returns ErrNotFound when memberID is no
// member of workspaceID.
func (s *Store) ResetMFA(ctx context.Context, workspaceID, adminID, memberID int64, endSessions bool, meta Meta, msg OutboxMessage) (ResetResult, error) {
	var r ResetResult
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.mayManage(ctx, tx, workspaceID, adminID, memberID); err != nil {
			return fmt.Errorf("reset mfa: %w", err)
		}
		var err error
		if r, err = s.resetFactors(ctx, tx, workspaceID, memberID, endSessions, "mfa_reset_by_admin"); err != nil {
			return err
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: adminID, SubjectUserID: memberID,
			Event: EventMFAResetByAdmin, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
				"totp": r.TOTP, "keys": r.Keys, "phones": r.Phones, "recovery_codes": r.RecoveryCodes,
				"end_sessions": endSessions, "sessions_ended": r.SessionsEnded,
			}}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
	return r, err
}

// mayManage refuses (ErrNotAllowed) an admin's change to a member that
// MayManage forbids, both roles read inside tx: the route checked it
// before, and this decides when a role changed in between. ErrNotFound
// when either is not of the workspace.
func (s *Store) mayManage(ctx context.Context, tx *sql.Tx, workspaceID, actorID, memberID int64) error {
	// Roles change under the workspace's lock (ChangeRole): holding it,
	// the roles read here stay true until the change commits.
	if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
		return err
	}
	var actor, member User
	for _, u := range []struct {
		id  int64
		out *User
	}{{actorID, &actor}, {memberID, &member}} {
		var err error
		if *u.out, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, u.id)); err != nil {
			return notFound("may manage", err)
		}
	}
	if !MayManage(actor, member) {
		return ErrNotAllowed
	}
	return nil
}

// requireReenroll makes a member just reset by support or by recovery by
// email set up a second factor at their next sign-in, whatever the policy:
// the flag (cleared by enrolling, refreshFactorSummaries) and a deadline
// that has passed, so sign-in leads only to enrollment behind an emailed
// link.
func (s *Store) requireReenroll(ctx context.Context, tx *sql.Tx, workspaceID, memberID int64) error {
	now := s.now()
	if _, err := tx.ExecContext(ctx, `UPDATE users SET mfa_reenroll = 1, mfa_since = COALESCE(mfa_since, ?),
			mfa_deadline = CASE WHEN mfa_deadline < ? THEN mfa_deadline ELSE ? END WHERE workspace_id = ? AND id = ?`,
		now, now, now, workspaceID, memberID); err != nil {
		return fmt.Errorf("require re-enrollment: %w", err)
	}
	return nil
}

// MustReenroll reports whether a member was reset by support or by
// recovery by email and has not set up a second factor since.
func (s *Store) MustReenroll(ctx context.Context, workspaceID, memberID int64) (bool, error) {
	var v bool
	if err := s.q(ctx).QueryRowContext(ctx, `SELECT mfa_reenroll FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, memberID).Scan(&v); err != nil {
		return false, notFound("must reenroll", err)
	}
	return v, nil
}

// resetFactors removes a member's second factors, recovery codes and
// failure counters, revokes their trusted devices, ends their pending
// challenges and, with endSessions, their sessions (reason recorded on
// each), inside tx. ErrNotFound: no such member in the workspace (checked
// first).
func (s *Store) resetFactors(ctx context.Context, tx *sql.Tx, workspaceID, memberID int64, endSessions bool, reason string) (ResetResult, error) {
	var r ResetResult
	err := func() error {
		var epoch int64
		// Scoping first: nothing below runs for another workspace's member.
		if err := tx.QueryRowContext(ctx, `SELECT session_epoch FROM users WHERE workspace_id = ? AND id = ?`,
			workspaceID, memberID).Scan(&epoch); err != nil {
			return notFound("reset mfa", err)
		}
		r.SessionEpoch = epoch
		del := func(table string) (int, error) {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE workspace_id = ? AND user_id = ?`, workspaceID, memberID)
			if err != nil {
				return 0, fmt.Errorf("reset mfa: %s: %w", table, err)
			}
			n, _ := res.RowsAffected()
			return int(n), nil
		}
		var err error
		if r.TOTP, err = del("totp_credentials"); err != nil {
			return err
		}
		if r.Keys, err = del("webauthn_credentials"); err != nil {
			return err
		}
		// Phones, with their codes and the texts still waiting to go.
		if r.Phones, err = s.dropPhones(ctx, tx, workspaceID, memberID, phonesAll, "mfa reset"); err != nil {
			return err
		}
		if r.RecoveryCodes, err = del("recovery_codes"); err != nil {
			return err
		}
		if err := s.refreshFactorSummary(ctx, tx, workspaceID, memberID); err != nil {
			return err
		}
		if _, err = del("mfa_guards"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mfa_challenges SET ended_at = ?, ended_reason = 'mfa_reset'
			WHERE workspace_id = ? AND user_id = ? AND ended_at IS NULL`, s.now(), workspaceID, memberID); err != nil {
			return fmt.Errorf("reset mfa: %w", err)
		}
		// Every trusted browser goes with the factors: after a reset the
		// member passes the challenge (or enrolls) before skipping it again.
		if r.TrustedDevices, err = s.voidTrustedDevices(ctx, tx, workspaceID, 0, memberID, reason, Meta{}); err != nil {
			return err
		}
		// Applications' tokens were issued on the factors that are gone:
		// they stop working too (introspection answers inactive).
		if r.OAuthTokens, err = s.revokeMemberOAuthTx(ctx, tx, workspaceID, memberID); err != nil {
			return err
		}
		if endSessions {
			if err := tx.QueryRowContext(ctx, `UPDATE users SET session_epoch = session_epoch + 1 WHERE workspace_id = ? AND id = ? RETURNING session_epoch`,
				workspaceID, memberID).Scan(&r.SessionEpoch); err != nil {
				return fmt.Errorf("reset mfa: %w", err)
			}
			if r.SessionsEnded, err = s.endSessions(ctx, tx, workspaceID, memberID, "", reason); err != nil {
				return err
			}
		}
		return nil
	}()
	return r, err
}

// EndMemberSessions ends every session of a member on an admin's request
// and bumps the member's session epoch, so that a session a slow request
// writes back stays dead. It is audited and returns how many sessions
// ended and the new epoch, or ErrNotFound for another workspace's member.
func (s *Store) EndMemberSessions(ctx context.Context, workspaceID, adminID, memberID int64, meta Meta) (n int, epoch int64, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.mayManage(ctx, tx, workspaceID, adminID, memberID); err != nil {
			return fmt.Errorf("end member sessions: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `UPDATE users SET session_epoch = session_epoch + 1 WHERE workspace_id = ? AND id = ? RETURNING session_epoch`,
			workspaceID, memberID).Scan(&epoch); err != nil {
			return notFound("end member sessions", err)
		}
		if n, err = s.endSessions(ctx, tx, workspaceID, memberID, "", "ended_by_admin"); err != nil {
			return err
		}
		// Signed out everywhere includes the applications.
		tokens, err := s.revokeMemberOAuthTx(ctx, tx, workspaceID, memberID)
		if err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: adminID, SubjectUserID: memberID,
			Event: EventSessionEndedByAdmin, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"count": n, "oauth_tokens_revoked": tokens}})
	})
	return n, epoch, err
}

// ChangeRole sets a member's role on the request of actorID. Only an owner
// may make an owner or change an owner's role (else ErrNotAllowed), and the
// last owner keeps the role (ErrLastOwner). Both roles are read inside the
// transaction (an immediate one on SQLite), so two concurrent demotions
// cannot both pass the owner count. A change of role is a change of
// privilege (SECURITY rule 5): in the same transaction the member's session
// epoch is bumped and every session of theirs ended (the actor's own too
// when they change their own role), so no token issued before the change
// carries its privileges; the member signs in again. It returns
// ErrNotFound for another workspace's member and the updated member; an
// unchanged role is neither audited nor ends anything.
func (s *Store) ChangeRole(ctx context.Context, workspaceID, actorID, memberID int64, role string, meta Meta) (User, error) {
	if !ValidRole(role) {
		return User{}, fmt.Errorf("change role: invalid role %q", role)
	}
	var u User
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The last owner is a rule over the workspace's members.
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		var actorRole string
		if err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, actorID).Scan(&actorRole); err != nil {
			return notFound("change role: actor", err)
		}
		var err error
		if u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, memberID)); err != nil {
			return notFound("change role", err)
		}
		if actorRole != RoleOwner && actorRole != RoleAdmin {
			return fmt.Errorf("change role: %w", ErrNotAllowed)
		}
		if u.Role == role {
			return nil
		}
		if actorRole != RoleOwner && (role == RoleOwner || u.Role == RoleOwner) {
			return fmt.Errorf("change role: %w", ErrNotAllowed)
		}
		if u.Role == RoleOwner {
			var owners int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE workspace_id = ? AND role = ?`, workspaceID, RoleOwner).Scan(&owners); err != nil {
				return fmt.Errorf("change role: %w", err)
			}
			if owners <= 1 {
				return fmt.Errorf("change role: %w", ErrLastOwner)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET role = ?, session_epoch = session_epoch + 1 WHERE workspace_id = ? AND id = ?`,
			role, workspaceID, memberID); err != nil {
			return fmt.Errorf("change role: %w", err)
		}
		ended, err := s.endSessions(ctx, tx, workspaceID, memberID, "", "role_changed")
		if err != nil {
			return err
		}
		from := u.Role
		u.Role = role
		// Under required_for_admins a promotion starts the member's grace
		// period and a demotion ends their deadline.
		if err := s.coverRole(ctx, tx, workspaceID, actorID, memberID, role, meta); err != nil {
			return err
		}
		if u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, memberID)); err != nil {
			return fmt.Errorf("change role: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, SubjectUserID: memberID,
			Event: EventMemberRoleChanged, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"from": from, "to": role, "sessions_ended": ended}})
	})
	return u, err
}

// OpenInvitation returns the workspace's invitation with that id if it is
// neither accepted nor revoked (an expired one may be resent), else
// ErrNotFound.
func (s *Store) OpenInvitation(ctx context.Context, workspaceID, id int64) (Invitation, error) {
	row := s.q(ctx).QueryRowContext(ctx, `SELECT `+invitationColumns+` FROM invitations
		WHERE workspace_id = ? AND id = ? AND accepted_at IS NULL AND revoked_at IS NULL`, workspaceID, id)
	inv, err := scanInvitation(row)
	if err != nil {
		return Invitation{}, notFound("open invitation", err)
	}
	return inv, nil
}

// ResendInvitation revokes an open invitation (its link stops working) and
// creates a new one for the same email and role with a new token, audits it
// and queues msg (the new invitation email), in one transaction. It returns
// ErrNotFound when the invitation is not open in this workspace (accepted,
// revoked, or another workspace's) and ErrConflict when the email became a
// member meanwhile.
func (s *Store) ResendInvitation(ctx context.Context, workspaceID, actorID, id int64, tokenHash string, expires time.Time, meta Meta, msg OutboxMessage) (Invitation, error) {
	var inv Invitation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		old, err := scanInvitation(tx.QueryRowContext(ctx, `
			UPDATE invitations SET revoked_at = ?
			WHERE workspace_id = ? AND id = ? AND accepted_at IS NULL AND revoked_at IS NULL
			RETURNING `+invitationColumns, now, workspaceID, id))
		if err != nil {
			return notFound("resend invitation", err)
		}
		if EmailKey(old.Email) != EmailKey(msg.To) {
			return fmt.Errorf("resend invitation: message to %q for invitation to another address", msg.To)
		}
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE workspace_id = ? AND email_key = ?`,
			workspaceID, EmailKey(old.Email)).Scan(&exists); err != nil {
			return fmt.Errorf("resend invitation: %w", err)
		}
		if exists > 0 {
			return fmt.Errorf("resend invitation: %w", ErrConflict)
		}
		if inv, err = scanInvitation(tx.QueryRowContext(ctx, `
			INSERT INTO invitations (workspace_id, email, email_key, role, token_hash, invited_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+invitationColumns,
			workspaceID, old.Email, EmailKey(old.Email), old.Role, tokenHash, nullID(actorID), now, expires.Unix())); err != nil {
			return fmt.Errorf("resend invitation: %w", err)
		}
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, Event: EventInvitationResent,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
				"email": old.Email, "role": old.Role, "invitation_id": inv.ID, "revoked_invitation_id": old.ID}}); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
	return inv, err
}

// Member statuses of the admin API and the members list.
const (
	StatusEnrolled         = "enrolled"
	StatusNoMFA            = "no_mfa"
	StatusLowRecoveryCodes = "low_recovery_codes"
	StatusInGrace          = "in_grace"
	StatusPastDeadline     = "past_deadline"
)

// MemberMFA is a member with a summary of their second factors.
type MemberMFA struct {
	User
	TOTP              bool
	Keys              int
	SMS               bool // a verified phone
	RecoveryRemaining int
}

// HasSecondFactor reports whether the member holds a confirmed second
// factor of any method, allowed by the policy or not.
func (m MemberMFA) HasSecondFactor() bool { return m.Factors() != 0 }

// Factors is the set of methods the member holds.
func (m MemberMFA) Factors() Factors { return HeldFactors(m.TOTP, m.Keys > 0, m.SMS) }

// Compliant reports whether the member holds a confirmed factor of a method
// the policy allows them (Policy.CompliantWith).
func (m MemberMFA) Compliant(p Policy) bool { return p.CompliantWith(m.Role, m.Factors()) }

// Status is the member's most pressing status under policy p at now:
//   - past_deadline: covered (mfa_deadline set), not compliant, deadline passed;
//   - in_grace: covered, not compliant, deadline still ahead;
//   - no_mfa: not covered and no second factor at all;
//   - low_recovery_codes: compliant (or holding some factor) with at most 3 unused codes;
//   - enrolled: compliant, or not covered and holding a factor.
//
// A member outside the requirement who holds only a factor of a disallowed
// method counts as enrolled; covered, the same member is in_grace or
// past_deadline.
func (m MemberMFA) Status(p Policy, now time.Time) string {
	covered := !m.MFADeadline.IsZero()
	switch {
	case covered && !m.Compliant(p) && !m.MFADeadline.After(now):
		return StatusPastDeadline
	case covered && !m.Compliant(p):
		return StatusInGrace
	case !m.HasSecondFactor():
		return StatusNoMFA
	case m.RecoveryRemaining <= LowRecoveryCodesThreshold:
		return StatusLowRecoveryCodes
	default:
		return StatusEnrolled
	}
}

// MemberMFAFilter narrows MembersMFA. Status is "" (all) or one of:
// enrolled (compliant with the policy: a confirmed factor of an allowed
// method, whatever the codes left), in_grace (covered, not compliant,
// deadline ahead of Now), past_deadline (covered, not compliant, deadline
// at or before Now), no_mfa (no confirmed second factor of any method) or
// low_recovery_codes (compliant with at most 3 unused codes). The lists
// overlap where the statuses do (low_recovery_codes is within enrolled).
type MemberMFAFilter struct {
	Status string
	Policy Policy    // methods that make a member compliant
	Now    time.Time // the clock for in_grace/past_deadline
	Query  string    // part of the email or of the name, any case
	After  string    // cursor: the email key of the last member of the previous page
	Limit  int
}

// MembersMFA returns a page of a workspace's members ordered by email, each
// with their second factors and unused recovery codes.
func (s *Store) MembersMFA(ctx context.Context, workspaceID int64, f MemberMFAFilter) ([]MemberMFA, error) {
	if f.Limit <= 0 || f.Limit > 201 {
		f.Limit = 50
	}
	// The factors and codes are the member's summary (users.mfa_factors,
	// mfa_codes); only the page's members have their keys counted.
	query := `SELECT ` + prefixed("u.", userColumns) + `,
		u.mfa_factors, (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.workspace_id = u.workspace_id AND w.user_id = u.id), u.mfa_codes
		FROM users u WHERE u.workspace_id = ? AND u.email_key > ?`
	args := []any{workspaceID, f.After}
	if q := EmailKey(f.Query); q != "" && f.Status == "" {
		// A search alone: the page's ids first, from the users_search
		// index alone (email order, both keys tested on the index's
		// entries, never the members' rows: the engines' planners take
		// the smaller unique index for the one-query form and read every
		// member's row for name_key), then those members' rows.
		term, targs := memberSearch("", q)
		query += ` AND u.id IN (SELECT id FROM users WHERE workspace_id = ? AND email_key > ?` + term + ` ORDER BY email_key LIMIT ?)`
		args = append(append(append(args, workspaceID, f.After), targs...), f.Limit)
	} else if q != "" {
		// With a status the rows are read anyway for the status's columns.
		term, targs := memberSearch("u.", q)
		query += term
		args = append(args, targs...)
	}
	switch f.Status {
	case "":
	case StatusEnrolled:
		query += ` AND ` + f.Policy.compliantSQL("u.mfa_factors", "u.role")
	case StatusNoMFA:
		query += ` AND u.mfa_factors = 0`
	case StatusLowRecoveryCodes:
		query += ` AND ` + f.Policy.compliantSQL("u.mfa_factors", "u.role") + ` AND u.mfa_codes <= ?`
		args = append(args, LowRecoveryCodesThreshold)
	case StatusInGrace:
		query += ` AND u.mfa_deadline > ? AND ` + f.Policy.noncompliantSQL("u.mfa_factors", "u.role")
		args = append(args, f.Now.Unix())
	case StatusPastDeadline:
		query += ` AND u.mfa_deadline <= ? AND ` + f.Policy.noncompliantSQL("u.mfa_factors", "u.role")
		args = append(args, f.Now.Unix())
	default:
		return nil, fmt.Errorf("members mfa: unknown status %q", f.Status)
	}
	query += ` ORDER BY u.email_key LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.q(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("members mfa: %w", err)
	}
	defer rows.Close()
	var out []MemberMFA
	for rows.Next() {
		var m MemberMFA
		var us userScan
		var held Factors
		if err := rows.Scan(append(us.dest(), &held, &m.Keys, &m.RecoveryRemaining)...); err != nil {
			return nil, fmt.Errorf("members mfa: %w", err)
		}
		m.User = us.user()
		m.TOTP, m.SMS = held.Has(FactorTOTP), held.Has(FactorSMS)
		out = append(out, m)
	}
	return out, rows.Err()
}

// MemberEvents lists the most recent audit events about one member of the
// workspace, newest first.
func (s *Store) MemberEvents(ctx context.Context, workspaceID, memberID int64, limit int) ([]AuditEvent, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT id, actor_user_id, event, ip, user_agent, details, created_at
		FROM audit_events WHERE workspace_id = ? AND subject_user_id = ? ORDER BY id DESC LIMIT ?`, workspaceID, memberID, limit)
	if err != nil {
		return nil, fmt.Errorf("member events: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		ev := AuditEvent{WorkspaceID: workspaceID, SubjectUserID: memberID}
		var actor sql.NullInt64
		var details string
		var created int64
		if err := rows.Scan(&ev.ID, &actor, &ev.Event, &ev.IP, &ev.UserAgent, &details, &created); err != nil {
			return nil, fmt.Errorf("member events: %w", err)
		}
		ev.ActorUserID, ev.CreatedAt = actor.Int64, unix(created)
		_ = json.Unmarshal([]byte(details), &ev.Details)
		out = append(out, ev)
	}
	return out, rows.Err()
}
