package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MFA policies of a workspace (DESIGN "Policies and enforcement").
const (
	PolicyOff               = "off"
	PolicyOptional          = "optional"
	PolicyRequired          = "required"
	PolicyRequiredForAdmins = "required_for_admins"
)

// Second-factor methods a policy can allow. Recovery codes are always a
// backup and never make a member compliant on their own.
const (
	MethodTOTP     = "totp"
	MethodWebAuthn = "webauthn"
	// MethodSMS is never a default: a workspace turns it on.
	MethodSMS = "sms"
)

// Events of the policy and enforcement.
const (
	EventPolicyChanged    = "policy.changed"
	EventDeadlineExtended = "member.deadline_extended"
	EventDeadlineStarted  = "member.deadline_started"
	EventReminderQueued   = "mfa.reminder_queued"
)

// Policy bounds.
const (
	MaxGraceDays         = 365
	MaxReminders         = 10
	MaxTrustedDeviceDays = 30
	MaxExtendDays        = 90
)

// AnnounceDays is the days value of the announcement in mfa_reminders: the
// first enforcement email, due as soon as a deadline starts.
const AnnounceDays = -1

// ErrEnrollFirst is returned when an admin would put themselves under a
// requirement they do not meet yet.
var ErrEnrollFirst = errors.New("enroll a second factor first")

// ErrNotCovered is returned when extending the deadline of a member the
// requirement does not apply to.
var ErrNotCovered = errors.New("the MFA requirement does not apply to this member")

// Policy is a workspace's MFA policy.
type Policy struct {
	Mode              string
	Methods           []string // allowed second factors: totp, webauthn, sms
	GraceDays         int
	ReminderDays      []int // whole days before the deadline, most distant first
	TrustedDeviceDays int   // 0 = "trust this browser" is off
	// EnforcedSince is when the current requirement started; zero while the
	// policy requires nothing.
	EnforcedSince time.Time
	// SMSAdminsForbidden keeps owners and admins from SMS: their phones
	// neither sign them in nor make them compliant. It is one of the
	// workspace's SMS settings (SetSMSSettings changes it); SetPolicy keeps
	// the stored value whatever this field says.
	SMSAdminsForbidden bool
}

// DefaultPolicy is a new workspace's policy.
func DefaultPolicy() Policy {
	return Policy{Mode: PolicyOptional, Methods: []string{MethodTOTP, MethodWebAuthn}, GraceDays: 30, ReminderDays: []int{7, 3, 1}}
}

// Requires reports whether the policy requires a second factor of anyone.
func (p Policy) Requires() bool { return p.Mode == PolicyRequired || p.Mode == PolicyRequiredForAdmins }

// AppliesTo reports whether the requirement covers a member with that role.
func (p Policy) AppliesTo(role string) bool {
	return p.Mode == PolicyRequired || (p.Mode == PolicyRequiredForAdmins && (role == RoleOwner || role == RoleAdmin))
}

// Allows reports whether method (totp, webauthn, sms) is an allowed factor.
func (p Policy) Allows(method string) bool { return slices.Contains(p.Methods, method) }

// Grace is the grace period.
func (p Policy) Grace() time.Duration { return time.Duration(p.GraceDays) * 24 * time.Hour }

// Validate checks the policy's values and normalises its lists (methods in
// a fixed order, reminder days most distant first, no duplicates). SMS is
// a restricted authenticator (NIST SP 800-63B §5.1.3.3, 63B-4 §3.2.9): it
// is allowed only beside a method that is not.
func (p *Policy) Validate() error {
	switch p.Mode {
	case PolicyOff, PolicyOptional, PolicyRequired, PolicyRequiredForAdmins:
	default:
		return fmt.Errorf("policy must be off, optional, required or required_for_admins, not %q", p.Mode)
	}
	var methods []string
	for _, m := range []string{MethodTOTP, MethodWebAuthn, MethodSMS} {
		if slices.Contains(p.Methods, m) {
			methods = append(methods, m)
		}
	}
	for _, m := range p.Methods {
		if m != MethodTOTP && m != MethodWebAuthn && m != MethodSMS {
			return fmt.Errorf("unknown method %q (allowed: totp, webauthn, sms)", m)
		}
	}
	if len(methods) == 0 {
		return errors.New("allow at least one method")
	}
	if len(methods) == 1 && methods[0] == MethodSMS {
		return errors.New("SMS is allowed only beside an authenticator app or a passkey")
	}
	p.Methods = methods
	if p.GraceDays < 0 || p.GraceDays > MaxGraceDays {
		return fmt.Errorf("the grace period must be 0 to %d days", MaxGraceDays)
	}
	days := slices.Clone(p.ReminderDays)
	slices.Sort(days)
	days = slices.Compact(days)
	slices.Reverse(days)
	if len(days) > MaxReminders {
		return fmt.Errorf("at most %d reminder days", MaxReminders)
	}
	for _, d := range days {
		if d < 1 || d > MaxGraceDays {
			return fmt.Errorf("reminder days must be 1 to %d days before the deadline", MaxGraceDays)
		}
	}
	p.ReminderDays = days
	if p.TrustedDeviceDays < 0 || p.TrustedDeviceDays > MaxTrustedDeviceDays {
		return fmt.Errorf("trusted devices last 0 (off) to %d days", MaxTrustedDeviceDays)
	}
	return nil
}

// ParseDays parses "7,3,1" (spaces allowed; empty is no reminders).
func ParseDays(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		d, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("reminder days: %q is not a whole number", f)
		}
		out = append(out, d)
	}
	return out, nil
}

func joinDays(days []int) string {
	parts := make([]string, len(days))
	for i, d := range days {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, ",")
}

const policyColumns = `mfa_policy, mfa_methods, grace_days, reminder_days, trusted_device_days, enforced_since, sms_admins_forbidden`

func scanPolicy(row interface{ Scan(...any) error }) (Policy, error) {
	var p Policy
	var methods, days string
	var since sql.NullInt64
	if err := row.Scan(&p.Mode, &methods, &p.GraceDays, &days, &p.TrustedDeviceDays, &since, &p.SMSAdminsForbidden); err != nil {
		return Policy{}, err
	}
	p.Methods = strings.Split(methods, ",")
	p.ReminderDays, _ = ParseDays(days)
	if since.Valid {
		p.EnforcedSince = unix(since.Int64)
	}
	return p, nil
}

// Policy returns the workspace's MFA policy.
func (s *Store) Policy(ctx context.Context, workspaceID int64) (Policy, error) {
	p, err := scanPolicy(s.q(ctx).QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID))
	if err != nil {
		return Policy{}, notFound("policy", err)
	}
	return p, nil
}

// PolicyImpact says what a policy change does (or would do, on a dry run).
type PolicyImpact struct {
	Covered      int // members the requirement applies to
	NonCompliant int // of those, members without an allowed second factor
	PastDeadline int // of those, members whose deadline has passed
	// Deadline is the deadline of members the requirement starts to apply
	// to now (or started to, for an unchanged requirement); zero when the
	// policy requires nothing.
	Deadline      time.Time
	NewlyCovered  int // members who get a deadline with this change
	SessionsEnded int // sessions of non-compliant members ended
}

// PolicyChange is an admin's change of the policy.
type PolicyChange struct {
	Policy Policy
	// Passkeys, when set, are the workspace's new passkey rules, changed
	// and audited with the policy; nil keeps them.
	Passkeys *PasskeySettings
	// Recovery, when set, is the workspace's new self-service recovery
	// setting, changed and audited with the policy; nil keeps it.
	Recovery                *RecoverySettings
	EndNonCompliantSessions bool
	DryRun                  bool // compute the impact, save nothing
}

var errDryRun = errors.New("dry run")

// SetPolicy changes a workspace's MFA policy on behalf of actorID, in one
// transaction: members newly covered get a deadline (now + grace period),
// members no longer covered lose theirs, a changed grace period moves the
// existing deadlines by the difference (extensions are kept), and, when
// asked, non-compliant covered members' sessions end. The change is audited
// with the old and new values. It returns ErrEnrollFirst when the actor
// would be covered without an allowed factor. The passkey rules, when
// given, change in the same transaction and their old and new values are
// in the same audit event. With DryRun nothing is saved and the impact is
// what the change would do.
func (s *Store) SetPolicy(ctx context.Context, workspaceID, actorID int64, ch PolicyChange, meta Meta) (Policy, PolicyImpact, error) {
	p := ch.Policy
	if err := p.Validate(); err != nil {
		return Policy{}, PolicyImpact{}, err
	}
	var im PolicyImpact
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		now := s.now()
		old, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID))
		if err != nil {
			return notFound("set policy", err)
		}
		// The SMS settings are SetSMSSettings's: a policy built from a form
		// that knows nothing of them keeps them.
		p.SMSAdminsForbidden = old.SMSAdminsForbidden
		var oldKeys PasskeySettings
		if err := tx.QueryRowContext(ctx, `SELECT passkeys_satisfy_mfa, device_bound_keys_only FROM workspaces WHERE id = ?`, workspaceID).
			Scan(&oldKeys.SatisfyMFA, &oldKeys.DeviceBoundOnly); err != nil {
			return notFound("set policy", err)
		}
		keys := oldKeys
		if ch.Passkeys != nil {
			keys = *ch.Passkeys
		}
		oldRecovery, err := recoverySettings(ctx, tx, workspaceID)
		if err != nil {
			return err
		}
		recovery := oldRecovery
		if ch.Recovery != nil {
			if err := ch.Recovery.Validate(); err != nil {
				return err
			}
			recovery = *ch.Recovery
		}
		// actorID 0 is the system (the CLI): no acting admin to check.
		if actorID != 0 {
			var actorRole string
			var actorFactors Factors
			if err := tx.QueryRowContext(ctx, `SELECT role, mfa_factors FROM users WHERE workspace_id = ? AND id = ?`,
				workspaceID, actorID).Scan(&actorRole, &actorFactors); err != nil {
				return notFound("set policy: actor", err)
			}
			if p.AppliesTo(actorRole) && !p.CompliantWith(actorRole, actorFactors) {
				return ErrEnrollFirst
			}
		}
		switch {
		case !p.Requires():
			p.EnforcedSince = time.Time{}
		case old.Requires():
			p.EnforcedSince = old.EnforcedSince
		default:
			p.EnforcedSince = unix(now)
		}
		var since any
		if !p.EnforcedSince.IsZero() {
			since = p.EnforcedSince.Unix()
		}
		if _, err := tx.ExecContext(ctx, `UPDATE workspaces SET mfa_policy = ?, mfa_methods = ?, grace_days = ?, reminder_days = ?,
			trusted_device_days = ?, enforced_since = ?, passkeys_satisfy_mfa = ?, device_bound_keys_only = ?,
			self_recovery = ?, self_recovery_wait_hours = ? WHERE id = ?`,
			p.Mode, strings.Join(p.Methods, ","), p.GraceDays, joinDays(p.ReminderDays), p.TrustedDeviceDays, since,
			keys.SatisfyMFA, keys.DeviceBoundOnly, recovery.SelfService, recovery.WaitHours, workspaceID); err != nil {
			return fmt.Errorf("set policy: %w", err)
		}
		// Members no longer covered lose their deadline.
		if _, err := tx.ExecContext(ctx, `UPDATE users SET mfa_since = NULL, mfa_deadline = NULL
			WHERE workspace_id = ? AND mfa_deadline IS NOT NULL AND mfa_reenroll = 0 AND NOT `+p.coversSQL("role"), workspaceID); err != nil {
			return fmt.Errorf("set policy: clear deadlines: %w", err)
		}
		// A new grace period moves the grace-period deadlines (not the
		// zero-grace deadlines of members who joined under the rule).
		if delta := int64(p.GraceDays-old.GraceDays) * 86400; delta != 0 && old.Requires() {
			if _, err := tx.ExecContext(ctx, `UPDATE users SET mfa_deadline = mfa_deadline + ?
				WHERE workspace_id = ? AND mfa_deadline IS NOT NULL AND mfa_deadline > mfa_since AND mfa_reenroll = 0`, delta, workspaceID); err != nil {
				return fmt.Errorf("set policy: move deadlines: %w", err)
			}
		}
		// Recovery by email turned off: the links and waiting periods open
		// now stop (a workspace may turn it off because it is abused).
		if oldRecovery.SelfService && !recovery.SelfService {
			if err := s.cancelWorkspaceRecoveriesTx(ctx, tx, workspaceID); err != nil {
				return err
			}
		}
		// Members newly covered get their deadline.
		deadline := now + int64(p.GraceDays)*86400
		res, err := tx.ExecContext(ctx, `UPDATE users SET mfa_since = ?, mfa_deadline = ?
			WHERE workspace_id = ? AND mfa_deadline IS NULL AND `+p.coversSQL("role"), now, deadline, workspaceID)
		if err != nil {
			return fmt.Errorf("set policy: start deadlines: %w", err)
		}
		n, _ := res.RowsAffected()
		im.NewlyCovered = int(n)
		if p.Requires() {
			im.Deadline = unix(p.EnforcedSince.Unix() + int64(p.GraceDays)*86400)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*),
				COALESCE(SUM(CASE WHEN `+p.noncompliantSQL("u.mfa_factors", "u.role")+` THEN 1 ELSE 0 END), 0),
				COALESCE(SUM(CASE WHEN `+p.noncompliantSQL("u.mfa_factors", "u.role")+` AND u.mfa_deadline <= ? THEN 1 ELSE 0 END), 0)
			FROM users u WHERE u.workspace_id = ? AND u.mfa_deadline IS NOT NULL`, now, workspaceID).
			Scan(&im.Covered, &im.NonCompliant, &im.PastDeadline); err != nil {
			return fmt.Errorf("set policy: impact: %w", err)
		}
		if ch.EndNonCompliantSessions && p.Requires() {
			rows, err := tx.QueryContext(ctx, `SELECT u.id FROM users u
				WHERE u.workspace_id = ? AND u.mfa_deadline IS NOT NULL AND `+p.noncompliantSQL("u.mfa_factors", "u.role"), workspaceID)
			if err != nil {
				return fmt.Errorf("set policy: %w", err)
			}
			ids, err := scanIDs(rows)
			if err != nil {
				return fmt.Errorf("set policy: %w", err)
			}
			for _, id := range ids {
				if _, err := tx.ExecContext(ctx, `UPDATE users SET session_epoch = session_epoch + 1 WHERE workspace_id = ? AND id = ?`, workspaceID, id); err != nil {
					return fmt.Errorf("set policy: %w", err)
				}
				n, err := s.endSessions(ctx, tx, workspaceID, id, "", "policy_noncompliant")
				if err != nil {
					return err
				}
				im.SessionsEnded += n
			}
		}
		if ch.DryRun {
			return errDryRun
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, Event: EventPolicyChanged,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
				"old": policyDetails(old, oldKeys, oldRecovery), "new": policyDetails(p, keys, recovery),
				"end_noncompliant_sessions": ch.EndNonCompliantSessions, "sessions_ended": im.SessionsEnded,
				"newly_covered": im.NewlyCovered, "non_compliant": im.NonCompliant,
			}})
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	if err != nil {
		return Policy{}, PolicyImpact{}, err
	}
	return p, im, nil
}

func policyDetails(p Policy, keys PasskeySettings, r RecoverySettings) map[string]any {
	return map[string]any{"policy": p.Mode, "methods": p.Methods, "grace_days": p.GraceDays,
		"reminder_days": p.ReminderDays, "trusted_device_days": p.TrustedDeviceDays,
		"passkeys_satisfy_mfa": keys.SatisfyMFA, "device_bound_keys_only": keys.DeviceBoundOnly,
		"self_service_recovery": r.SelfService, "self_recovery_wait_hours": r.WaitHours}
}

func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Compliant reports whether the member holds a second factor the workspace's
// policy allows.
func (s *Store) Compliant(ctx context.Context, workspaceID, userID int64, p Policy) (bool, error) {
	var f Factors
	var role string
	err := s.q(ctx).QueryRowContext(ctx, `SELECT mfa_factors, role FROM users WHERE workspace_id = ? AND id = ?`,
		workspaceID, userID).Scan(&f, &role)
	if err != nil {
		return false, notFound("compliant", err)
	}
	return p.CompliantWith(role, f), nil
}

// ExtendDeadline gives a covered member more time: the deadline becomes
// the later of the current one and now, plus days. It is audited and
// returns the new deadline; ErrNotCovered when the requirement does not
// apply to the member, ErrNotFound for another workspace's member.
func (s *Store) ExtendDeadline(ctx context.Context, workspaceID, actorID, memberID int64, days int, meta Meta) (time.Time, error) {
	if days < 1 || days > MaxExtendDays {
		return time.Time{}, fmt.Errorf("extend deadline: days must be 1 to %d", MaxExtendDays)
	}
	var out int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		if err := s.lockMember(ctx, tx, workspaceID, memberID); err != nil {
			return err
		}
		if err := s.mayManage(ctx, tx, workspaceID, actorID, memberID); err != nil {
			return fmt.Errorf("extend deadline: %w", err)
		}
		var deadline sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT mfa_deadline FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, memberID).Scan(&deadline); err != nil {
			return notFound("extend deadline", err)
		}
		if !deadline.Valid {
			return ErrNotCovered
		}
		now := s.now()
		out = max(deadline.Int64, now) + int64(days)*86400
		if _, err := tx.ExecContext(ctx, `UPDATE users SET mfa_deadline = ? WHERE workspace_id = ? AND id = ?`, out, workspaceID, memberID); err != nil {
			return fmt.Errorf("extend deadline: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, SubjectUserID: memberID,
			Event: EventDeadlineExtended, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
				"days": days, "old": unix(deadline.Int64).Format(time.RFC3339), "new": unix(out).Format(time.RFC3339)}})
	})
	return unix(out), err
}

// coverRole starts or ends a member's deadline after a role change (for
// required_for_admins): promoted into the requirement, the deadline is now
// plus the grace period; out of it, the deadline goes.
func (s *Store) coverRole(ctx context.Context, tx *sql.Tx, workspaceID, actorID, memberID int64, role string, meta Meta) error {
	p, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID))
	if err != nil {
		return fmt.Errorf("cover role: %w", err)
	}
	if !p.AppliesTo(role) {
		_, err := tx.ExecContext(ctx, `UPDATE users SET mfa_since = NULL, mfa_deadline = NULL WHERE workspace_id = ? AND id = ? AND mfa_reenroll = 0`, workspaceID, memberID)
		return err
	}
	now := s.now()
	deadline := now + int64(p.GraceDays)*86400
	res, err := tx.ExecContext(ctx, `UPDATE users SET mfa_since = ?, mfa_deadline = ? WHERE workspace_id = ? AND id = ? AND mfa_deadline IS NULL`,
		now, deadline, workspaceID, memberID)
	if err != nil {
		return fmt.Errorf("cover role: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, SubjectUserID: memberID,
			Event: EventDeadlineStarted, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
				"reason": "role", "role": role, "deadline": unix(deadline).Format(time.RFC3339)}})
	}
	return nil
}

func prefixed(prefix, columns string) string {
	parts := strings.Split(columns, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}
