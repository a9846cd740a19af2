package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Support cases: identity-verified MFA resets with four eyes and a delay
// (DESIGN "Support console"; migration 0010). Every step is one
// transaction that checks the case's state with a conditional update,
// writes the case's timeline and both audit trails (the platform's, with
// the staff member as actor, and the member's workspace's, visible to its
// admins), and queues the member's email when there is one.

// Case statuses.
const (
	CaseAwaitingApproval = "awaiting_approval"
	CaseScheduled        = "scheduled"
	CaseCancelled        = "cancelled"
	CaseRejected         = "rejected"
	CaseExpired          = "expired"
	CaseExecuted         = "executed"
)

// Case audit events.
const (
	EventCaseOpened        = "support.case_opened"
	EventCaseApproved      = "support.case_approved"
	EventCaseRejected      = "support.case_rejected"
	EventCaseCancelled     = "support.case_cancelled"
	EventCaseExpired       = "support.case_expired"
	EventMFAResetBySupport = "mfa.reset_by_support"
)

// Verification methods: how a staff member verified the member's identity.
var VerificationMethods = map[string]string{
	"video_id_document":  "Video call with an ID document",
	"admin_attestation":  "Attestation by a workspace admin",
	"signed_request":     "Signed request from the customer's domain",
	"callback_on_record": "Call back to a number on record with the customer",
}

// Case errors.
var (
	ErrCaseOpen    = errors.New("the member already has an open case")
	ErrCaseState   = errors.New("the case is not in a state that allows this")
	ErrCaseExpired = errors.New("the case expired before it was approved")
	ErrSameStaff   = errors.New("the approver opened the case")
	ErrOwnAccount  = errors.New("a staff member cannot act on a case for their own account")
)

// Verification is how identity was verified, as the opener records it.
type Verification struct {
	Method      string
	EvidenceRef string
	Notes       string
}

// Case is a support case with the names a person reads.
type Case struct {
	ID            int64
	WorkspaceID   int64
	WorkspaceSlug string
	WorkspaceName string
	UserID        int64
	MemberEmail   string
	OpenedBy      int64
	OpenerEmail   string
	Verification  Verification
	Status        string
	CreatedAt     time.Time
	ApproveBy     time.Time
	ApprovedBy    int64
	ApproverEmail string
	ApprovedAt    time.Time
	DelayHours    int
	ExecutesAt    time.Time
	ClosedAt      time.Time
	Reason        string
}

// CaseEvent is one line of a case's timeline.
type CaseEvent struct {
	At    time.Time
	Actor string // "staff sam@example.com", "member", "system"
	Event string // opened, approved, rejected, cancelled, expired, executed
}

const caseSelect = `SELECT c.id, c.workspace_id, w.slug, w.name, c.user_id, u.email, c.opened_by, COALESCE(o.email, ''),
		c.verification_method, c.evidence_ref, c.notes, c.status, c.created_at, c.approve_by,
		COALESCE(c.approved_by, 0), COALESCE(a.email, ''), COALESCE(c.approved_at, 0), COALESCE(c.delay_hours, 0),
		COALESCE(c.executes_at, 0), COALESCE(c.closed_at, 0), COALESCE(c.reason, '')
	FROM support_cases c
	JOIN workspaces w ON w.id = c.workspace_id
	JOIN users u ON u.id = c.user_id AND u.workspace_id = c.workspace_id
	LEFT JOIN users o ON o.id = c.opened_by
	LEFT JOIN users a ON a.id = c.approved_by`

func scanCase(row interface{ Scan(...any) error }) (Case, error) {
	var c Case
	var created, approveBy, approvedAt, executes, closed int64
	err := row.Scan(&c.ID, &c.WorkspaceID, &c.WorkspaceSlug, &c.WorkspaceName, &c.UserID, &c.MemberEmail, &c.OpenedBy, &c.OpenerEmail,
		&c.Verification.Method, &c.Verification.EvidenceRef, &c.Verification.Notes, &c.Status, &created, &approveBy,
		&c.ApprovedBy, &c.ApproverEmail, &approvedAt, &c.DelayHours, &executes, &closed, &c.Reason)
	if err != nil {
		return Case{}, err
	}
	c.CreatedAt, c.ApproveBy = unix(created), unix(approveBy)
	if approvedAt != 0 {
		c.ApprovedAt = unix(approvedAt)
	}
	if executes != 0 {
		c.ExecutesAt = unix(executes)
	}
	if closed != 0 {
		c.ClosedAt = unix(closed)
	}
	return c, nil
}

func (s *Store) caseTx(ctx context.Context, tx *sql.Tx, id int64) (Case, error) {
	c, err := scanCase(tx.QueryRowContext(ctx, caseSelect+` WHERE c.id = ?`, id))
	if err != nil {
		return Case{}, notFound("support case", err)
	}
	return c, nil
}

// SupportCase returns one case, or ErrNotFound.
func (s *Store) SupportCase(ctx context.Context, id int64) (Case, error) {
	c, err := scanCase(s.q(ctx).QueryRowContext(ctx, caseSelect+` WHERE c.id = ?`, id))
	if err != nil {
		return Case{}, notFound("support case", err)
	}
	return c, nil
}

// SupportCases lists cases, newest first: open ones (awaiting approval or
// scheduled) when open, else the most recent closed ones; at most limit.
func (s *Store) SupportCases(ctx context.Context, open bool, limit int) ([]Case, error) {
	cond := `c.status IN ('awaiting_approval', 'scheduled')`
	if !open {
		cond = `c.status NOT IN ('awaiting_approval', 'scheduled')`
	}
	rows, err := s.q(ctx).QueryContext(ctx, caseSelect+` WHERE `+cond+` ORDER BY c.id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("support cases: %w", err)
	}
	defer rows.Close()
	var out []Case
	for rows.Next() {
		c, err := scanCase(rows)
		if err != nil {
			return nil, fmt.Errorf("support cases: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CaseTimeline returns a case's events, oldest first.
func (s *Store) CaseTimeline(ctx context.Context, id int64) ([]CaseEvent, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT created_at, actor, event FROM support_case_events WHERE case_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("case timeline: %w", err)
	}
	defer rows.Close()
	var out []CaseEvent
	for rows.Next() {
		var e CaseEvent
		var at int64
		if err := rows.Scan(&at, &e.Actor, &e.Event); err != nil {
			return nil, fmt.Errorf("case timeline: %w", err)
		}
		e.At = unix(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// caseStep records one step of a case: its timeline line and both audit
// trails. staff is the acting staff member (zero for the member or the
// system).
//
// private details go to the platform's trail only (the evidence of an
// identity check is not the customer's to read).
func (s *Store) caseStep(ctx context.Context, tx *sql.Tx, c Case, staff User, actor, step, event string, meta Meta, details map[string]any, private ...map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	details["case_id"] = c.ID
	if staff.ID != 0 {
		actor = "staff " + staff.Email
		details["staff"] = staff.Email
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO support_case_events (workspace_id, case_id, created_at, actor, event) VALUES (?, ?, ?, ?, ?)`,
		c.WorkspaceID, c.ID, s.now(), actor, step); err != nil {
		return fmt.Errorf("case %s: %w", step, err)
	}
	var platformID int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM workspaces WHERE platform = 1`).Scan(&platformID); err != nil {
		return fmt.Errorf("case %s: platform workspace: %w", step, err)
	}
	platform := map[string]any{"workspace": c.WorkspaceSlug, "member_id": c.UserID, "actor": actor}
	for _, m := range append([]map[string]any{details}, private...) {
		for k, v := range m {
			platform[k] = v
		}
	}
	if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: platformID, ActorUserID: staff.ID, Event: event,
		IP: meta.IP, UserAgent: meta.UserAgent, Details: platform}); err != nil {
		return err
	}
	// In the member's workspace the actor is no member of it: the staff
	// member is named in the details.
	return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: c.WorkspaceID, SubjectUserID: c.UserID, Event: event,
		IP: meta.IP, UserAgent: meta.UserAgent, Details: details})
}

// OpenCase opens a reset case for a member of a customer workspace. The
// member must exist there (ErrNotFound), must not be the staff member
// themself (ErrOwnAccount: same address) and must have no open case
// (ErrCaseOpen). It must be approved before approveBy.
func (s *Store) OpenCase(ctx context.Context, staff User, workspaceSlug string, memberID int64, v Verification, approveBy time.Time, meta Meta) (Case, error) {
	var c Case
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var wid int64
		var email string
		if err := tx.QueryRowContext(ctx, `SELECT w.id, u.email FROM workspaces w JOIN users u ON u.workspace_id = w.id
			WHERE w.slug = ? AND w.platform = 0 AND u.id = ?`, workspaceSlug, memberID).Scan(&wid, &email); err != nil {
			return notFound("open case", err)
		}
		if EmailKey(email) == EmailKey(staff.Email) {
			return ErrOwnAccount
		}
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO support_cases (workspace_id, user_id, opened_by, verification_method, evidence_ref, notes,
				status, created_at, approve_by) VALUES (?, ?, ?, ?, ?, ?, 'awaiting_approval', ?, ?) RETURNING id`,
			wid, memberID, staff.ID, v.Method, v.EvidenceRef, v.Notes, s.now(), approveBy.Unix()).Scan(&id)
		if isUniqueViolation(err) {
			return ErrCaseOpen
		} else if err != nil {
			return fmt.Errorf("open case: %w", err)
		}
		if c, err = s.caseTx(ctx, tx, id); err != nil {
			return err
		}
		return s.caseStep(ctx, tx, c, staff, "", "opened", EventCaseOpened, meta, map[string]any{
			"verification_method": v.Method}, map[string]any{"evidence_ref": v.EvidenceRef})
	})
	return c, err
}

// CaseMail writes the member's email for a case step.
type CaseMail func(c Case) (OutboxMessage, error)

// ApproveCase approves an awaiting case as staff (who must not have opened
// it, ErrSameStaff, nor be its member, ErrOwnAccount) and schedules the
// reset after delay; the member's email with the cancel link (its hash is
// cancelHash) is queued in the same transaction. A case past its approval
// deadline is marked expired (ErrCaseExpired); another state is
// ErrCaseState.
func (s *Store) ApproveCase(ctx context.Context, id int64, staff User, delay time.Duration, cancelHash string, mail CaseMail, meta Meta) (Case, error) {
	var c Case
	var expired bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = s.caseTx(ctx, tx, id); err != nil {
			return err
		}
		if c.Status != CaseAwaitingApproval {
			return ErrCaseState
		}
		if c.OpenedBy == staff.ID {
			return ErrSameStaff
		}
		if EmailKey(c.MemberEmail) == EmailKey(staff.Email) {
			return ErrOwnAccount
		}
		now := s.now()
		if c.ApproveBy.Unix() <= now {
			expired = true
			return s.expireCase(ctx, tx, c)
		}
		executes := now + int64(delay/time.Second)
		res, err := tx.ExecContext(ctx, `UPDATE support_cases SET status = 'scheduled', approved_by = ?, approved_at = ?, delay_hours = ?,
				executes_at = ?, cancel_token_hash = ? WHERE id = ? AND status = 'awaiting_approval'`,
			staff.ID, now, int(delay/time.Hour), executes, cancelHash, id)
		if err != nil {
			return fmt.Errorf("approve case: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrCaseState
		}
		if c, err = s.caseTx(ctx, tx, id); err != nil {
			return err
		}
		if err := s.caseStep(ctx, tx, c, staff, "", "approved", EventCaseApproved, meta, map[string]any{
			"delay_hours": c.DelayHours, "executes_at": c.ExecutesAt.UTC().Format(time.RFC3339)}); err != nil {
			return err
		}
		msg, err := mail(c)
		if err != nil {
			return err
		}
		return s.enqueue(ctx, tx, c.WorkspaceID, msg)
	})
	if expired && err == nil {
		return c, ErrCaseExpired
	}
	return c, err
}

// RejectCase closes an awaiting case with the staff member's reason.
func (s *Store) RejectCase(ctx context.Context, id int64, staff User, reason string, meta Meta) (Case, error) {
	var c Case
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = s.caseTx(ctx, tx, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE support_cases SET status = 'rejected', closed_at = ?, reason = ? WHERE id = ? AND status = 'awaiting_approval'`,
			s.now(), reason, id)
		if err != nil {
			return fmt.Errorf("reject case: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrCaseState
		}
		c.Status, c.Reason, c.ClosedAt = CaseRejected, reason, unix(s.now())
		return s.caseStep(ctx, tx, c, staff, "", "rejected", EventCaseRejected, meta, map[string]any{"reason": reason})
	})
	return c, err
}

// CancelCase cancels a scheduled case by its member's emailed link (one of
// the token's hashes), before it executes. Anything else is ErrNotFound,
// whatever the reason: the answer tells nothing about the case.
func (s *Store) CancelCase(ctx context.Context, workspaceID int64, tokenHashes []string, meta Meta) (Case, error) {
	var c Case
	if len(tokenHashes) == 0 {
		return c, ErrNotFound
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		args := []any{s.now(), workspaceID, s.now()}
		for _, h := range tokenHashes {
			args = append(args, h)
		}
		var id int64
		err := tx.QueryRowContext(ctx, `UPDATE support_cases SET status = 'cancelled', closed_at = ?
			WHERE workspace_id = ? AND status = 'scheduled' AND executes_at > ? AND cancel_token_hash IN (?`+strings.Repeat(", ?", len(tokenHashes)-1)+`)
			RETURNING id`, args...).Scan(&id)
		if err != nil {
			return notFound("cancel case", err)
		}
		if c, err = s.caseTx(ctx, tx, id); err != nil {
			return err
		}
		return s.caseStep(ctx, tx, c, User{}, "member", "cancelled", EventCaseCancelled, meta, nil)
	})
	return c, err
}

func (s *Store) expireCase(ctx context.Context, tx *sql.Tx, c Case) error {
	res, err := tx.ExecContext(ctx, `UPDATE support_cases SET status = 'expired', closed_at = ? WHERE id = ? AND status = 'awaiting_approval'`, s.now(), c.ID)
	if err != nil {
		return fmt.Errorf("expire case: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil
	}
	c.Status = CaseExpired
	return s.caseStep(ctx, tx, c, User{}, "system", "expired", EventCaseExpired, Meta{}, nil)
}

// RunSupportCases expires the cases not approved in time and executes the
// scheduled ones whose delay has passed: the member's factors, recovery
// codes and failure counters are removed and their sessions ended, audited
// in both trails, with the member's email (mail) queued, in one
// transaction per case. A case executes once, however many processes run
// this at once.
func (s *Store) RunSupportCases(ctx context.Context, mail CaseMail) (executed, expired int, err error) {
	now := s.now()
	var errs []error
	ids := func(status, col string) ([]int64, error) {
		rows, err := s.q(ctx).QueryContext(ctx, `SELECT id FROM support_cases WHERE status = ? AND `+col+` <= ? ORDER BY id`, status, now)
		if err != nil {
			return nil, fmt.Errorf("support cases: %w", err)
		}
		return scanIDs(rows)
	}
	stale, err := ids(CaseAwaitingApproval, "approve_by")
	if err != nil {
		return 0, 0, err
	}
	for _, id := range stale {
		counted := false
		if err := s.tx(ctx, func(tx *sql.Tx) error {
			c, err := s.caseTx(ctx, tx, id)
			if err != nil {
				return err
			}
			counted = c.Status == CaseAwaitingApproval
			return s.expireCase(ctx, tx, c)
		}); err != nil {
			// One bad case must not hold up the others: go on, report all.
			errs = append(errs, fmt.Errorf("expire case %d: %w", id, err))
			continue
		}
		if counted {
			expired++
		}
	}
	due, err := ids(CaseScheduled, "executes_at")
	if err != nil {
		return executed, expired, errors.Join(append(errs, err)...)
	}
	for _, id := range due {
		done := false
		if err := s.tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE support_cases SET status = 'executed', closed_at = ? WHERE id = ? AND status = 'scheduled' AND executes_at <= ?`,
				s.now(), id, s.now())
			if err != nil {
				return fmt.Errorf("execute case: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return nil // cancelled, or another process executed it
			}
			c, err := s.caseTx(ctx, tx, id)
			if err != nil {
				return err
			}
			r, err := s.resetFactors(ctx, tx, c.WorkspaceID, c.UserID, true, "mfa_reset_by_support")
			if err != nil {
				return err
			}
			if err := s.requireReenroll(ctx, tx, c.WorkspaceID, c.UserID); err != nil {
				return err
			}
			if err := s.caseStep(ctx, tx, c, User{}, "system", "executed", EventMFAResetBySupport, Meta{}, map[string]any{
				"totp": r.TOTP, "keys": r.Keys, "phones": r.Phones, "recovery_codes": r.RecoveryCodes, "sessions_ended": r.SessionsEnded}); err != nil {
				return err
			}
			msg, err := mail(c)
			if err != nil {
				return err
			}
			done = true
			return s.enqueue(ctx, tx, c.WorkspaceID, msg)
		}); err != nil {
			errs = append(errs, fmt.Errorf("execute case %d: %w", id, err))
			continue
		}
		if done {
			executed++
		}
	}
	return executed, expired, errors.Join(errs...)
}
