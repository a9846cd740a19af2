package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// SMS one-time codes (DESIGN "SMS", SECURITY "SMS codes"). A member's
// phone is pending until a texted code verifies it; a verified phone is a
// second factor (FactorSMS). Codes are made by the app, which hands the
// store a keyed hash of each and the text sealed under the master key: the
// store never sees a code. Every text goes through sms_outbox, queued in
// the transaction that applies every cap (RequestSMSCode), so no cap can
// be passed by racing requests, on one node or several.

// SMS audit events. Their details carry the masked number (never the
// whole one), the country and, for texts, the price.
const (
	EventSMSPhoneAdded      = "mfa.sms.phone_added"
	EventSMSPhoneVerified   = "mfa.sms.phone_verified"
	EventSMSPhoneRemoved    = "mfa.sms.phone_removed"
	EventSMSCodeSent        = "mfa.sms.code_sent"
	EventSMSCodeUsed        = "mfa.sms.code_used"
	EventSMSCapHit          = "mfa.sms.cap_hit"
	EventSMSThrottled       = "mfa.sms.throttled"
	EventSMSSettingsChanged = "mfa.sms.settings_changed"
)

// What a code is for.
const (
	SMSPurposeSetup     = "setup"     // verifies a pending phone; bound to the session
	SMSPurposeChallenge = "challenge" // a sign-in's second factor; bound to the challenge
	SMSPurposeStepUp    = "step_up"   // re-verifies a signed-in member; bound to the session
)

// SMS limits (SECURITY "SMS codes"; the caps against toll fraud and
// harassment).
const (
	SMSCodeTTL         = 5 * time.Minute
	SMSCodeMaxFailures = 5
	SMSResendCooldown  = 30 * time.Second
	// Per number (a keyed hash of it, across workspaces): 3 texts in 15
	// minutes, 10 a day.
	SMSNumberWindow      = 15 * time.Minute
	SMSNumberWindowLimit = 3
	SMSNumberDayLimit    = 10
	// Per member: 5 texts an hour. Per client IP: 20 an hour.
	SMSMemberHourLimit = 5
	SMSIPHourLimit     = 20
	// Bounds of a workspace's settings.
	MaxSMSDailyCap      = 100_000
	MaxSMSMonthlyTexts  = 1_000_000
	MaxSMSMonthlyMicros = 100_000_000_000 // $100,000
)

// Default SMS settings of a workspace (migration 0017): no country allowed.
const (
	DefaultSMSDailyCap      = 500
	DefaultSMSMonthlyTexts  = 5000
	DefaultSMSMonthlyMicros = 50_000_000 // $50
)

// The workspace caps an SMSCapAlert and EventSMSCapHit name.
const (
	SMSCapDaily        = "daily_cap"
	SMSCapBudgetTexts  = "budget_texts"
	SMSCapBudgetMicros = "budget_micros"
)

// ErrSMSNotAllowed is returned when the workspace does not let the member
// use SMS (the policy's methods leave it out, or it keeps owners and
// admins from it) or does not allow the number's country.
var ErrSMSNotAllowed = errors.New("SMS is not allowed here")

// ErrSMSCodesExhausted is returned when the codes sent for a challenge or
// session have had their SMSCodeMaxFailures wrong tries: a resend would
// carry them, so no text is sent.
var ErrSMSCodesExhausted = errors.New("too many wrong SMS codes")

// SMSPhone is a member's phone number.
type SMSPhone struct {
	ID          int64
	WorkspaceID int64
	UserID      int64
	E164        string // "+447700900123"
	Country     string // ISO 3166 alpha-2, "GB"
	Masked      string // as shown: "+44 •••• ••• 123"
	CreatedAt   time.Time
	VerifiedAt  time.Time // zero while pending
	LastUsedAt  time.Time
}

// Verified reports whether a texted code verified the phone.
func (p SMSPhone) Verified() bool { return !p.VerifiedAt.IsZero() }

const smsPhoneColumns = `id, workspace_id, user_id, e164, country, masked, created_at, verified_at, last_used_at`

func scanSMSPhone(row interface{ Scan(...any) error }) (SMSPhone, error) {
	var p SMSPhone
	var created int64
	var verified, used sql.NullInt64
	if err := row.Scan(&p.ID, &p.WorkspaceID, &p.UserID, &p.E164, &p.Country, &p.Masked, &created, &verified, &used); err != nil {
		return SMSPhone{}, err
	}
	p.CreatedAt, p.VerifiedAt, p.LastUsedAt = unix(created), nullTime(verified), nullTime(used)
	return p, nil
}

// SMSSettings are a workspace's SMS rules: where texts may go, who may use
// them, and how many the workspace pays for.
type SMSSettings struct {
	// Countries whose numbers may be texted (ISO 3166 alpha-2, upper
	// case, sorted); none by default, so SMS works nowhere until an admin
	// names countries.
	Countries []string
	// AdminsForbidden keeps owners and admins from SMS: their phones
	// neither sign them in nor make them compliant (Policy.SMSAllowedFor).
	AdminsForbidden bool
	// DailyCap is the texts a UTC day; MonthlyBudgetTexts and
	// MonthlyBudgetMicros (micro-dollars) bound a UTC month.
	DailyCap            int
	MonthlyBudgetTexts  int
	MonthlyBudgetMicros int64
}

// AllowsCountry reports whether numbers of country may be texted.
func (st SMSSettings) AllowsCountry(country string) bool {
	return country != "" && slices.Contains(st.Countries, country)
}

// Validate checks the settings and normalises the countries (upper case,
// sorted, no duplicates).
func (st *SMSSettings) Validate() error {
	var cs []string
	for _, c := range st.Countries {
		c = strings.ToUpper(strings.TrimSpace(c))
		if !isCountry(c) {
			return fmt.Errorf("%q is not an ISO 3166 alpha-2 country code", c)
		}
		cs = append(cs, c)
	}
	slices.Sort(cs)
	st.Countries = slices.Compact(cs)
	if st.DailyCap < 0 || st.DailyCap > MaxSMSDailyCap {
		return fmt.Errorf("the daily cap must be 0 to %d texts", MaxSMSDailyCap)
	}
	if st.MonthlyBudgetTexts < 0 || st.MonthlyBudgetTexts > MaxSMSMonthlyTexts {
		return fmt.Errorf("the monthly budget must be 0 to %d texts", MaxSMSMonthlyTexts)
	}
	if st.MonthlyBudgetMicros < 0 || st.MonthlyBudgetMicros > MaxSMSMonthlyMicros {
		return fmt.Errorf("the monthly budget must be 0 to %d micro-dollars", int64(MaxSMSMonthlyMicros))
	}
	return nil
}

func isCountry(c string) bool {
	return len(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z'
}

const smsSettingsColumns = `sms_countries, sms_admins_forbidden, sms_daily_cap, sms_monthly_budget_texts, sms_monthly_budget_micros`

func scanSMSSettings(row interface{ Scan(...any) error }) (SMSSettings, error) {
	var st SMSSettings
	var countries string
	if err := row.Scan(&countries, &st.AdminsForbidden, &st.DailyCap, &st.MonthlyBudgetTexts, &st.MonthlyBudgetMicros); err != nil {
		return SMSSettings{}, err
	}
	if countries != "" {
		st.Countries = strings.Split(countries, ",")
	}
	return st, nil
}

// SMSSettings returns the workspace's SMS settings, or ErrNotFound.
func (s *Store) SMSSettings(ctx context.Context, workspaceID int64) (SMSSettings, error) {
	st, err := scanSMSSettings(s.q(ctx).QueryRowContext(ctx, `SELECT `+smsSettingsColumns+` FROM workspaces WHERE id = ?`, workspaceID))
	if err != nil {
		return SMSSettings{}, notFound("sms settings", err)
	}
	return st, nil
}

// SetSMSSettings changes the workspace's SMS settings on behalf of actorID
// (0: the system), under the workspace's lock, audited with the old and
// new values. Changed caps re-arm the month's alert to the admins. It
// returns the settings as stored; a validation error; ErrEnrollFirst when
// keeping admins from SMS would leave the acting admin, covered by the
// policy, without an allowed factor; ErrNotFound for no such workspace.
func (s *Store) SetSMSSettings(ctx context.Context, workspaceID, actorID int64, st SMSSettings, meta Meta) (SMSSettings, error) {
	if err := st.Validate(); err != nil {
		return SMSSettings{}, err
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		old, err := scanSMSSettings(tx.QueryRowContext(ctx, `SELECT `+smsSettingsColumns+` FROM workspaces WHERE id = ?`, workspaceID))
		if err != nil {
			return notFound("set sms settings", err)
		}
		if actorID != 0 {
			p, err := scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID))
			if err != nil {
				return notFound("set sms settings", err)
			}
			var role string
			var held Factors
			if err := tx.QueryRowContext(ctx, `SELECT role, mfa_factors FROM users WHERE workspace_id = ? AND id = ?`,
				workspaceID, actorID).Scan(&role, &held); err != nil {
				return notFound("set sms settings: actor", err)
			}
			after := p
			after.SMSAdminsForbidden = st.AdminsForbidden
			if p.AppliesTo(role) && p.CompliantWith(role, held) && !after.CompliantWith(role, held) {
				return ErrEnrollFirst
			}
		}
		alerted := `sms_budget_alerted_month`
		if st.DailyCap != old.DailyCap || st.MonthlyBudgetTexts != old.MonthlyBudgetTexts || st.MonthlyBudgetMicros != old.MonthlyBudgetMicros {
			alerted = `''`
		}
		if _, err := tx.ExecContext(ctx, `UPDATE workspaces SET sms_countries = ?, sms_admins_forbidden = ?, sms_daily_cap = ?,
				sms_monthly_budget_texts = ?, sms_monthly_budget_micros = ?, sms_budget_alerted_month = `+alerted+` WHERE id = ?`,
			strings.Join(st.Countries, ","), st.AdminsForbidden, st.DailyCap, st.MonthlyBudgetTexts, st.MonthlyBudgetMicros, workspaceID); err != nil {
			return fmt.Errorf("set sms settings: %w", err)
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: actorID, Event: EventSMSSettingsChanged,
			IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{"old": smsSettingsDetails(old), "new": smsSettingsDetails(st)}})
	})
	if err != nil {
		return SMSSettings{}, err
	}
	return st, nil
}

func smsSettingsDetails(st SMSSettings) map[string]any {
	countries := st.Countries
	if countries == nil {
		countries = []string{}
	}
	return map[string]any{"countries": countries, "admins_forbidden": st.AdminsForbidden, "daily_cap": st.DailyCap,
		"monthly_budget_texts": st.MonthlyBudgetTexts, "monthly_budget_micros": st.MonthlyBudgetMicros}
}

// smsGate is what decides, inside a transaction, whether a member may use
// SMS: the policy (its methods and SMSAdminsForbidden), the SMS settings
// and the member's role.
type smsGate struct {
	policy       Policy
	settings     SMSSettings
	role         string
	alertedMonth string
}

func (g smsGate) allows(country string) bool {
	return g.policy.SMSAllowedFor(g.role) && g.settings.AllowsCountry(country)
}

func (s *Store) smsGate(ctx context.Context, tx *sql.Tx, workspaceID, userID int64) (smsGate, error) {
	var g smsGate
	var err error
	if g.policy, err = scanPolicy(tx.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM workspaces WHERE id = ?`, workspaceID)); err != nil {
		return smsGate{}, notFound("sms", err)
	}
	if g.settings, err = scanSMSSettings(tx.QueryRowContext(ctx, `SELECT `+smsSettingsColumns+` FROM workspaces WHERE id = ?`, workspaceID)); err != nil {
		return smsGate{}, notFound("sms", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT w.sms_budget_alerted_month, u.role FROM workspaces w JOIN users u ON u.workspace_id = w.id
		WHERE w.id = ? AND u.id = ?`, workspaceID, userID).Scan(&g.alertedMonth, &g.role); err != nil {
		return smsGate{}, notFound("sms", err)
	}
	return g, nil
}

var e164Pattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// checkMasked refuses a masked form that shows the number: it must show
// at most all but four of its digits.
func checkMasked(e164, masked string) error {
	digits := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s)
	}
	full, shown := digits(e164), digits(masked)
	if masked == "" || strings.Contains(shown, full) || len(shown) > len(full)-4 {
		return errors.New("the masked number shows too much of it")
	}
	return nil
}

// StartSMSEnrollment records a pending phone for the member, bound to the
// session and step-up b, replacing any pending one (its codes die and its
// unsent texts are not sent); a verified phone stays until the new one is
// verified (ConfirmSMSEnrollment). e164 is the number in E.164, country
// its ISO 3166 alpha-2 code and masked what pages and the audit trail show
// of it (never the whole number). The audit event flags a country other
// than the member's other phones' (country_mismatch). It returns
// ErrSMSNotAllowed when the workspace does not let the member use SMS or
// does not allow the country, ErrNotFound for no such member.
func (s *Store) StartSMSEnrollment(ctx context.Context, workspaceID, userID int64, b SessionBinding, e164, country, masked string, meta Meta) (SMSPhone, error) {
	if !e164Pattern.MatchString(e164) {
		return SMSPhone{}, fmt.Errorf("start sms enrollment: %q is not an E.164 number", masked)
	}
	if !isCountry(country) {
		return SMSPhone{}, fmt.Errorf("start sms enrollment: %q is not a country code", country)
	}
	if err := checkMasked(e164, masked); err != nil {
		return SMSPhone{}, fmt.Errorf("start sms enrollment: %w", err)
	}
	if b.SessionID == "" {
		return SMSPhone{}, errors.New("start sms enrollment: no session")
	}
	var p SMSPhone
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		g, err := s.smsGate(ctx, tx, workspaceID, userID)
		if err != nil {
			return err
		}
		if !g.allows(country) {
			return fmt.Errorf("start sms enrollment: %w", ErrSMSNotAllowed)
		}
		var others int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sms_phones WHERE workspace_id = ? AND user_id = ? AND country <> ?`,
			workspaceID, userID, country).Scan(&others); err != nil {
			return fmt.Errorf("start sms enrollment: %w", err)
		}
		if _, err := s.dropPhones(ctx, tx, workspaceID, userID, phonesPending, "phone replaced"); err != nil {
			return err
		}
		row := tx.QueryRowContext(ctx, `
			INSERT INTO sms_phones (workspace_id, user_id, e164, country, masked, created_at, session_id, step_up_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+smsPhoneColumns,
			workspaceID, userID, e164, country, masked, s.now(), b.SessionID, b.stepUpUnix())
		if p, err = scanSMSPhone(row); err != nil {
			return fmt.Errorf("start sms enrollment: %w", err)
		}
		details := map[string]any{"phone_id": p.ID, "phone": masked, "country": country}
		if others > 0 {
			details["country_mismatch"] = true
		}
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventSMSPhoneAdded, IP: meta.IP, UserAgent: meta.UserAgent, Details: details})
	})
	return p, err
}

// SMSPhone returns the member's verified phone, or ErrNotFound.
func (s *Store) SMSPhone(ctx context.Context, workspaceID, userID int64) (SMSPhone, error) {
	p, err := scanSMSPhone(s.q(ctx).QueryRowContext(ctx, `SELECT `+smsPhoneColumns+` FROM sms_phones
		WHERE workspace_id = ? AND user_id = ? AND verified_at IS NOT NULL`, workspaceID, userID))
	if err != nil {
		return SMSPhone{}, notFound("sms phone", err)
	}
	return p, nil
}

// PendingSMSPhone returns the member's pending phone if the session and
// step-up of b started it; ErrNotFound otherwise, as if there were none.
func (s *Store) PendingSMSPhone(ctx context.Context, workspaceID, userID int64, b SessionBinding) (SMSPhone, error) {
	p, err := scanSMSPhone(s.q(ctx).QueryRowContext(ctx, `SELECT `+smsPhoneColumns+` FROM sms_phones
		WHERE workspace_id = ? AND user_id = ? AND verified_at IS NULL AND session_id = ? AND step_up_at = ?`,
		workspaceID, userID, b.SessionID, b.stepUpUnix()))
	if err != nil {
		return SMSPhone{}, notFound("pending sms phone", err)
	}
	return p, nil
}

// Which of a member's phones dropPhones removes.
const (
	phonesPending  = ` AND verified_at IS NULL`
	phonesVerified = ` AND verified_at IS NOT NULL`
	phonesAll      = ``
)

// dropPhones deletes the member's phones that which selects, with their
// codes; their texts still waiting to go are given up (reason), since the
// codes in them are dead. It returns how many phones went. The caller
// refreshes the factor summary when a verified phone may have gone.
func (s *Store) dropPhones(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, which, reason string) (int, error) {
	phones := `SELECT id FROM sms_phones WHERE workspace_id = ? AND user_id = ?` + which
	if _, err := tx.ExecContext(ctx, `UPDATE sms_outbox SET failed_at = ?, last_error = ?, claim_token = NULL, claimed_until = NULL
		WHERE workspace_id = ? AND sent_at IS NULL AND failed_at IS NULL AND phone_id IN (`+phones+`)`,
		s.now(), reason, workspaceID, workspaceID, userID); err != nil {
		return 0, fmt.Errorf("drop phones: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sms_codes WHERE workspace_id = ? AND user_id = ? AND phone_id IN (`+phones+`)`,
		workspaceID, userID, workspaceID, userID); err != nil {
		return 0, fmt.Errorf("drop phones: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM sms_phones WHERE workspace_id = ? AND user_id = ?`+which, workspaceID, userID)
	if err != nil {
		return 0, fmt.Errorf("drop phones: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// SMSResult says what RequestSMSCode did: sent the code, or which control
// refused it. The app answers the same for every refusal that must not
// tell an attacker which control they met.
type SMSResult string

// The outcomes of RequestSMSCode.
const (
	ResultSent            SMSResult = "sent"
	ResultCooldown        SMSResult = "cooldown"         // a code for the same purpose and challenge or session less than 30 s ago
	ResultNumberCapped    SMSResult = "number_capped"    // 3 texts to the number in 15 minutes, or 10 in a day
	ResultMemberLimited   SMSResult = "member_limited"   // 5 texts to the member in an hour
	ResultIPLimited       SMSResult = "ip_limited"       // 20 texts asked from the client IP in an hour
	ResultWorkspaceCapped SMSResult = "workspace_capped" // the workspace's daily cap
	ResultBudgetExceeded  SMSResult = "budget_exceeded"  // the workspace's monthly budget, in texts or in money
	ResultNotAllowed      SMSResult = "not_allowed"      // SMS is not allowed for the member or the number's country
)

// SMSCodeRequest asks for one code to be texted.
type SMSCodeRequest struct {
	WorkspaceID int64
	UserID      int64
	// Purpose is SMSPurposeSetup (the pending phone of Binding),
	// SMSPurposeChallenge (the verified phone, for ChallengeID) or
	// SMSPurposeStepUp (the verified phone, for Binding.SessionID).
	Purpose     string
	ChallengeID string
	Binding     SessionBinding
	// CodeHash is the app's keyed hash of the code; Seal seals the text
	// (which holds the code) for the sms_outbox row with the given id.
	CodeHash string
	Seal     Sealer
	// PriceMicros is what the text costs, in micro-dollars.
	PriceMicros int64
	// NumberKey returns the keyed hash of a number: the per-number caps'
	// key, which must not hold the number itself. It is given the number
	// the store is about to text.
	NumberKey func(e164 string) string
	// IPKey names the client IP for its cap (a keyed hash of it, or the
	// address).
	IPKey string
	// CapAlert writes the email to one of the workspace's owners and
	// admins when a workspace cap is first hit in a UTC month; nil sends
	// none (and the month stays unalerted).
	CapAlert func(SMSCapAlert) (OutboxMessage, error)
	Meta     Meta
}

// SMSCapAlert is what the email to an owner or admin says when a workspace
// cap refused a text for the first time in a month.
type SMSCapAlert struct {
	WorkspaceID int64
	Admin       User
	Cap         string // SMSCapDaily, SMSCapBudgetTexts or SMSCapBudgetMicros
	Month       string // "2026-12"
	Settings    SMSSettings
	TextsToday  int
	TextsMonth  int
	MicrosMonth int64
}

// SMSSendResult is what RequestSMSCode did.
type SMSSendResult struct {
	Result SMSResult
	// RetryAt is when a cooldown or a throttle lets the same request
	// through again (zero for the caps that last the day or month, and
	// for a sent code).
	RetryAt time.Time
	// For ResultSent: the code, its text in sms_outbox and when it dies.
	CodeID    int64
	MessageID int64
	ExpiresAt time.Time
	// The phone the code was for (set whenever it was found).
	PhoneID int64
	Masked  string
	Country string
}

// RequestSMSCode texts a code, in one transaction under the workspace's
// and the member's locks that applies every control and, when all pass,
// writes the code and its text together:
//
//   - SMS allowed for the member and the number's country
//     (ResultNotAllowed);
//   - a resend cooldown of 30 s for the same purpose and challenge or
//     session (ResultCooldown);
//   - the workspace's monthly budget in texts and in micro-dollars
//     (ResultBudgetExceeded) and its daily cap (ResultWorkspaceCapped),
//     counted from sms_outbox: the first refusal of a UTC month queues
//     CapAlert's email to every owner and admin, once; every refusal is
//     audited (EventSMSCapHit);
//   - per number 3 texts in 15 minutes and 10 a day (ResultNumberCapped),
//     per member 5 an hour (ResultMemberLimited), per client IP 20 an hour
//     (ResultIPLimited): counters taken in that order, given back when a
//     later one refuses, each refusal audited (EventSMSThrottled).
//
// A new code voids the live one of the same purpose and challenge or
// session, and carries the failures of the last one: a resend never resets
// them. Refusals are results, not errors. Errors: ErrNotFound (no pending
// phone of the binding for a setup, no verified phone otherwise, no live
// session of the member for a step-up),
// ErrChallengeGone, ErrMFALocked (the member's second factor is locked or
// disabled), ErrSMSCodesExhausted.
func (s *Store) RequestSMSCode(ctx context.Context, req SMSCodeRequest) (SMSSendResult, error) {
	bound, err := req.bound()
	if err != nil {
		return SMSSendResult{}, fmt.Errorf("request sms code: %w", err)
	}
	if req.CodeHash == "" || req.Seal == nil || req.NumberKey == nil || req.IPKey == "" || req.PriceMicros < 0 {
		return SMSSendResult{}, errors.New("request sms code: incomplete request")
	}
	var out SMSSendResult
	err = s.tx(ctx, func(tx *sql.Tx) error {
		ws, uid := req.WorkspaceID, req.UserID
		// The workspace's lock first: its caps count every member's texts.
		if err := s.lockWorkspace(ctx, tx, ws); err != nil {
			return err
		}
		if err := s.lockMember(ctx, tx, ws, uid); err != nil {
			return err
		}
		g, err := s.smsGate(ctx, tx, ws, uid)
		if err != nil {
			return err
		}
		now := s.now()
		var phone SMSPhone
		switch req.Purpose {
		case SMSPurposeSetup:
			phone, err = scanSMSPhone(tx.QueryRowContext(ctx, `SELECT `+smsPhoneColumns+` FROM sms_phones
				WHERE workspace_id = ? AND user_id = ? AND verified_at IS NULL AND session_id = ? AND step_up_at = ?`,
				ws, uid, req.Binding.SessionID, req.Binding.stepUpUnix()))
		case SMSPurposeChallenge:
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mfa_challenges
				WHERE workspace_id = ? AND id = ? AND user_id = ? AND ended_at IS NULL AND expires_at > ?`,
				ws, req.ChallengeID, uid, now).Scan(&n); err != nil {
				return fmt.Errorf("request sms code: %w", err)
			}
			if n != 1 {
				return fmt.Errorf("request sms code: %w", ErrChallengeGone)
			}
			fallthrough
		default:
			if req.Purpose == SMSPurposeStepUp {
				// A step-up is for a live session of the member.
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_sessions
					WHERE workspace_id = ? AND id = ? AND user_id = ? AND ended_at IS NULL AND expires_at > ?`,
					ws, req.Binding.SessionID, uid, now).Scan(&n); err != nil {
					return fmt.Errorf("request sms code: %w", err)
				}
				if n != 1 {
					return fmt.Errorf("request sms code: session: %w", ErrNotFound)
				}
			}
			phone, err = scanSMSPhone(tx.QueryRowContext(ctx, `SELECT `+smsPhoneColumns+` FROM sms_phones
				WHERE workspace_id = ? AND user_id = ? AND verified_at IS NOT NULL`, ws, uid))
		}
		if err != nil {
			return notFound("request sms code", err)
		}
		out.PhoneID, out.Masked, out.Country = phone.ID, phone.Masked, phone.Country
		if err := s.guardClosed(ctx, tx, ws, uid); err != nil {
			return fmt.Errorf("request sms code: %w", err)
		}
		if !g.allows(phone.Country) {
			out.Result = ResultNotAllowed
			return nil
		}

		// The last code of this purpose and challenge or session: the
		// cooldown runs from it and its failures carry over (a code that
		// was spent proved the phone: nothing carries).
		var lastCreated, lastFailures int64
		var lastUsed sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT created_at, failures, used_at FROM sms_codes
			WHERE workspace_id = ? AND user_id = ? AND purpose = ? AND challenge_id = ? AND session_id = ? AND phone_id = ?
			ORDER BY id DESC LIMIT 1`, ws, uid, req.Purpose, bound.challengeID, bound.sessionID, phone.ID).
			Scan(&lastCreated, &lastFailures, &lastUsed)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			lastCreated = 0
		case err != nil:
			return fmt.Errorf("request sms code: %w", err)
		}
		if cool := lastCreated + int64(SMSResendCooldown/time.Second); lastCreated != 0 && now < cool {
			out.Result, out.RetryAt = ResultCooldown, unix(cool)
			return nil
		}
		carried := lastFailures
		if lastUsed.Valid {
			carried = 0
		}
		if carried >= SMSCodeMaxFailures {
			return fmt.Errorf("request sms code: %w", ErrSMSCodesExhausted)
		}

		// The workspace's caps, from its texts of the UTC month.
		nowT := unix(now)
		monthStart := time.Date(nowT.Year(), nowT.Month(), 1, 0, 0, 0, 0, time.UTC).Unix()
		dayStart := now - now%86400
		var today, month int
		var micros int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END), 0), COUNT(*), COALESCE(SUM(price_micros), 0)
			FROM sms_outbox WHERE workspace_id = ? AND created_at >= ?`, dayStart, ws, monthStart).Scan(&today, &month, &micros); err != nil {
			return fmt.Errorf("request sms code: usage: %w", err)
		}
		capHit, result := "", ResultSent
		switch {
		case month+1 > g.settings.MonthlyBudgetTexts:
			capHit, result = SMSCapBudgetTexts, ResultBudgetExceeded
		case micros+req.PriceMicros > g.settings.MonthlyBudgetMicros:
			capHit, result = SMSCapBudgetMicros, ResultBudgetExceeded
		case today+1 > g.settings.DailyCap:
			capHit, result = SMSCapDaily, ResultWorkspaceCapped
		}
		if capHit != "" {
			out.Result = result
			return s.smsCapHit(ctx, tx, req, g, phone, SMSCapAlert{WorkspaceID: ws, Cap: capHit, Month: nowT.Format("2006-01"),
				Settings: g.settings, TextsToday: today, TextsMonth: month, MicrosMonth: micros})
		}

		// The counters, always in this order (so that transactions taking
		// the same ones cannot deadlock), each given back if a later one
		// refuses.
		numberKey := req.NumberKey(phone.E164)
		if numberKey == "" || strings.Contains(numberKey, strings.TrimPrefix(phone.E164, "+")) {
			return errors.New("request sms code: the number key must be a keyed hash of the number")
		}
		limits := []struct {
			key    string
			window time.Duration
			limit  int
			result SMSResult
			name   string
		}{
			{"sms_number_15m:" + numberKey, SMSNumberWindow, SMSNumberWindowLimit, ResultNumberCapped, "number_15m"},
			{"sms_number_day:" + numberKey, 24 * time.Hour, SMSNumberDayLimit, ResultNumberCapped, "number_day"},
			{fmt.Sprintf("sms_member:%d:%d", ws, uid), time.Hour, SMSMemberHourLimit, ResultMemberLimited, "member_hour"},
			{"sms_ip:" + req.IPKey, time.Hour, SMSIPHourLimit, ResultIPLimited, "ip_hour"},
		}
		var taken []Throttle
		for _, l := range limits {
			th, err := s.throttleTake(ctx, tx, l.key, l.window, l.limit)
			var tm *TooManyError
			if errors.As(err, &tm) {
				for _, t := range taken {
					if err := s.throttleRefund(ctx, tx, t); err != nil {
						return err
					}
				}
				out.Result, out.RetryAt = l.result, tm.Until
				return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: ws, ActorUserID: uid, SubjectUserID: uid, Event: EventSMSThrottled,
					IP: req.Meta.IP, UserAgent: req.Meta.UserAgent, Details: map[string]any{
						"limit": l.name, "purpose": req.Purpose, "phone": phone.Masked, "country": phone.Country}})
			} else if err != nil {
				return err
			}
			taken = append(taken, th)
		}

		// Sent: the live code of this purpose and challenge or session
		// goes, the new one takes its place with the failures so far, and
		// its text is queued.
		if _, err := tx.ExecContext(ctx, `UPDATE sms_codes SET voided_at = ?
			WHERE workspace_id = ? AND user_id = ? AND purpose = ? AND challenge_id = ? AND session_id = ?
			  AND used_at IS NULL AND voided_at IS NULL`, now, ws, uid, req.Purpose, bound.challengeID, bound.sessionID); err != nil {
			return fmt.Errorf("request sms code: %w", err)
		}
		expires := now + int64(SMSCodeTTL/time.Second)
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO sms_codes (workspace_id, user_id, phone_id, purpose, challenge_id, session_id, code_hash, created_at, expires_at, failures)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			ws, uid, phone.ID, req.Purpose, bound.challengeID, bound.sessionID, req.CodeHash, now, expires, carried).Scan(&out.CodeID); err != nil {
			return fmt.Errorf("request sms code: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `
			INSERT INTO sms_outbox (workspace_id, user_id, phone_id, to_e164, country, key_id, body_sealed, price_micros, verified_number,
				created_at, expires_at, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?) RETURNING id`,
			ws, uid, phone.ID, phone.E164, phone.Country, []byte{}, req.PriceMicros, phone.Verified(), now, expires, now).Scan(&out.MessageID); err != nil {
			return fmt.Errorf("request sms code: %w", err)
		}
		keyID, sealed := req.Seal(out.MessageID)
		if len(sealed) == 0 {
			return errors.New("request sms code: empty sealed text")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sms_outbox SET key_id = ?, body_sealed = ? WHERE id = ?`, keyID, sealed, out.MessageID); err != nil {
			return fmt.Errorf("request sms code: %w", err)
		}
		out.Result, out.ExpiresAt = ResultSent, unix(expires)
		return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: ws, ActorUserID: uid, SubjectUserID: uid, Event: EventSMSCodeSent,
			IP: req.Meta.IP, UserAgent: req.Meta.UserAgent, Details: map[string]any{
				"purpose": req.Purpose, "phone": phone.Masked, "country": phone.Country, "price_micros": req.PriceMicros,
				"verified_number": phone.Verified(), "failures_carried": carried}})
	})
	if err != nil {
		return SMSSendResult{}, err
	}
	return out, nil
}

// smsBound is what a code is bound to: a challenge, or a session.
type smsBound struct{ challengeID, sessionID string }

func (req SMSCodeRequest) bound() (smsBound, error) {
	switch req.Purpose {
	case SMSPurposeChallenge:
		if req.ChallengeID == "" {
			return smsBound{}, errors.New("a sign-in code needs its challenge")
		}
		return smsBound{challengeID: req.ChallengeID}, nil
	case SMSPurposeSetup, SMSPurposeStepUp:
		if req.Binding.SessionID == "" {
			return smsBound{}, errors.New("a setup or step-up code needs its session")
		}
		return smsBound{sessionID: req.Binding.SessionID}, nil
	}
	return smsBound{}, fmt.Errorf("unknown purpose %q", req.Purpose)
}

// smsCapHit audits a workspace cap's refusal and, the first time in the
// month (sms_budget_alerted_month, read and written under the workspace's
// lock), queues the email to every owner and admin.
func (s *Store) smsCapHit(ctx context.Context, tx *sql.Tx, req SMSCodeRequest, g smsGate, phone SMSPhone, a SMSCapAlert) error {
	alerted := false
	if g.alertedMonth != a.Month && req.CapAlert != nil {
		rows, err := tx.QueryContext(ctx, `SELECT `+userColumns+` FROM users WHERE workspace_id = ? AND role IN (?, ?) ORDER BY id`,
			req.WorkspaceID, RoleOwner, RoleAdmin)
		if err != nil {
			return fmt.Errorf("sms cap alert: %w", err)
		}
		var admins []User
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("sms cap alert: %w", err)
			}
			u.PasswordHash = ""
			admins = append(admins, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sms cap alert: %w", err)
		}
		for _, u := range admins {
			a.Admin = u
			msg, err := req.CapAlert(a)
			if err != nil {
				return fmt.Errorf("sms cap alert: compose: %w", err)
			}
			if err := s.enqueue(ctx, tx, req.WorkspaceID, msg); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE workspaces SET sms_budget_alerted_month = ? WHERE id = ?`, a.Month, req.WorkspaceID); err != nil {
			return fmt.Errorf("sms cap alert: %w", err)
		}
		alerted = true
	}
	return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: req.WorkspaceID, ActorUserID: req.UserID, SubjectUserID: req.UserID,
		Event: EventSMSCapHit, IP: req.Meta.IP, UserAgent: req.Meta.UserAgent, Details: map[string]any{
			"cap": a.Cap, "month": a.Month, "admins_alerted": alerted, "texts_today": a.TextsToday, "texts_month": a.TextsMonth,
			"micros_month": a.MicrosMonth, "price_micros": req.PriceMicros, "purpose": req.Purpose,
			"phone": phone.Masked, "country": phone.Country}})
}

// SMSCode is a texted code, as the store holds it (a keyed hash).
type SMSCode struct {
	ID          int64
	WorkspaceID int64
	UserID      int64
	PhoneID     int64
	Purpose     string
	ChallengeID string
	SessionID   string
	CodeHash    string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Failures    int
}

// LiveSMSCode returns the member's live code for purpose, bound to the
// challenge (SMSPurposeChallenge) or the session (setup, step-up) named by
// bound: not spent, voided or expired, with fewer than five failures, and
// for a phone that is still the member's (the pending one for a setup, the
// verified one otherwise). ErrNotFound when there is none. The caller
// compares CodeHash in constant time, then spends the code (PassChallenge,
// StepUp, ConsumeFactor with FactorUse.SMSCodeID, or ConfirmSMSEnrollment)
// or counts a wrong one (SMSCodeFailed).
func (s *Store) LiveSMSCode(ctx context.Context, workspaceID, userID int64, purpose, bound string) (SMSCode, error) {
	challengeID, sessionID := "", bound
	if purpose == SMSPurposeChallenge {
		challengeID, sessionID = bound, ""
	}
	if bound == "" {
		return SMSCode{}, fmt.Errorf("live sms code: %w", ErrNotFound)
	}
	var c SMSCode
	var created, expires int64
	err := s.q(ctx).QueryRowContext(ctx, `SELECT c.id, c.workspace_id, c.user_id, c.phone_id, c.purpose, c.challenge_id, c.session_id, c.code_hash,
			c.created_at, c.expires_at, c.failures
		FROM sms_codes c JOIN sms_phones p ON p.id = c.phone_id AND p.workspace_id = c.workspace_id AND p.user_id = c.user_id
		WHERE c.workspace_id = ? AND c.user_id = ? AND c.purpose = ? AND c.challenge_id = ? AND c.session_id = ?
		  AND c.used_at IS NULL AND c.voided_at IS NULL AND c.expires_at > ? AND c.failures < ?
		  AND ((c.purpose = 'setup' AND p.verified_at IS NULL) OR (c.purpose <> 'setup' AND p.verified_at IS NOT NULL))
		ORDER BY c.id DESC LIMIT 1`,
		workspaceID, userID, purpose, challengeID, sessionID, s.now(), SMSCodeMaxFailures).
		Scan(&c.ID, &c.WorkspaceID, &c.UserID, &c.PhoneID, &c.Purpose, &c.ChallengeID, &c.SessionID, &c.CodeHash, &created, &expires, &c.Failures)
	if err != nil {
		return SMSCode{}, notFound("live sms code", err)
	}
	c.CreatedAt, c.ExpiresAt = unix(created), unix(expires)
	return c, nil
}

// SMSCodeFailed counts a wrong try at the member's code: one conditional
// update, so racing wrong tries are all counted. At SMSCodeMaxFailures the
// code is dead (and so are resends for the same challenge or session,
// which carry its failures). It returns the code's failures;
// ErrNotFound when the code is spent, voided or already dead. The
// member's guard counts the try too, through the app's ClaimMFAGuess or
// RecordMFAFailure.
func (s *Store) SMSCodeFailed(ctx context.Context, workspaceID, userID, codeID int64) (int, error) {
	var n int
	err := s.queryRowWrite(ctx, func(row func(query string, args ...any) *sql.Row) error {
		return row(`UPDATE sms_codes SET failures = failures + 1
		WHERE id = ? AND workspace_id = ? AND user_id = ? AND used_at IS NULL AND voided_at IS NULL AND failures < ?
		RETURNING failures`, codeID, workspaceID, userID, SMSCodeMaxFailures).Scan(&n)
	})
	if err != nil {
		return 0, notFound("sms code failed", err)
	}
	return n, nil
}

// useSMSCode spends a code with one conditional update, so that of two
// requests racing with one code exactly one gets through: live, bound to
// what spends it (the challenge of PassChallenge, else a step-up of
// f.SessionID), for the member's verified phone, and SMS still allowed for
// the member (ErrSMSNotAllowed). ErrNotFound otherwise.
func (s *Store) useSMSCode(ctx context.Context, tx *sql.Tx, workspaceID, userID int64, f FactorUse) error {
	purpose, challengeID, sessionID := SMSPurposeStepUp, "", f.SessionID
	if f.challengeID != "" {
		purpose, challengeID, sessionID = SMSPurposeChallenge, f.challengeID, ""
	}
	if challengeID == "" && sessionID == "" {
		return fmt.Errorf("use sms code: %w", ErrNotFound)
	}
	g, err := s.smsGate(ctx, tx, workspaceID, userID)
	if err != nil {
		return err
	}
	if !g.policy.SMSAllowedFor(g.role) {
		return fmt.Errorf("use sms code: %w", ErrSMSNotAllowed)
	}
	now := s.now()
	var phoneID int64
	err = tx.QueryRowContext(ctx, `UPDATE sms_codes SET used_at = ?
		WHERE id = ? AND workspace_id = ? AND user_id = ? AND purpose = ? AND challenge_id = ? AND session_id = ?
		  AND used_at IS NULL AND voided_at IS NULL AND expires_at > ? AND failures < ?
		  AND phone_id IN (SELECT id FROM sms_phones WHERE workspace_id = ? AND user_id = ? AND verified_at IS NOT NULL)
		RETURNING phone_id`,
		now, f.SMSCodeID, workspaceID, userID, purpose, challengeID, sessionID, now, SMSCodeMaxFailures, workspaceID, userID).Scan(&phoneID)
	if err != nil {
		return notFound("use sms code", err)
	}
	var masked, country string
	if err := tx.QueryRowContext(ctx, `UPDATE sms_phones SET last_used_at = ? WHERE id = ? RETURNING masked, country`, now, phoneID).
		Scan(&masked, &country); err != nil {
		return fmt.Errorf("use sms code: %w", err)
	}
	return s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID, Event: EventSMSCodeUsed,
		Details: map[string]any{"purpose": purpose, "code_id": f.SMSCodeID, "phone": masked, "country": country}})
}

// SMSEnrollment is what ConfirmSMSEnrollment did.
type SMSEnrollment struct {
	Phone SMSPhone
	// Replaced is set when the new phone took the place of a verified
	// one: that phone is removed like any factor (the epoch bumped, every
	// other session of the member ended).
	Replaced      bool
	SessionEpoch  int64 // the member's session epoch now
	SessionsEnded int
}

// ConfirmSMSEnrollment verifies the pending phone phoneID of binding b with
// the setup code codeID, whose hash the caller compared after ClaimMFAGuess
// counted the try (the guess is taken back once the phone is verified). In
// one transaction: the code is spent (one conditional update), a verified
// phone of the member is replaced (removed, the session epoch bumped and
// every session but b's ended), the phone verified, the factor summary
// recounted; when recoveryHashes is not nil (the member's first second
// factor) they replace any recovery codes; every trusted browser is voided
// and msg, the notice to the member, queued. Errors: ErrMFALocked while the
// member is locked; ErrNotFound when the phone or the code is not live for
// b; ErrSMSNotAllowed when the workspace no longer lets the member use SMS
// or the number's country.
func (s *Store) ConfirmSMSEnrollment(ctx context.Context, workspaceID, userID, phoneID, codeID int64, b SessionBinding, recoveryHashes []string, meta Meta, msg OutboxMessage) (SMSEnrollment, error) {
	var out SMSEnrollment
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMember(ctx, tx, workspaceID, userID); err != nil {
			return err
		}
		// The lock read again, and the guess taken back (it was right,
		// and anything below that fails rolls this back too).
		if err := s.openGuard(ctx, tx, workspaceID, userID, true, false); err != nil {
			return fmt.Errorf("confirm sms: %w", err)
		}
		if b.SessionID == "" {
			return fmt.Errorf("confirm sms: %w", ErrNotFound)
		}
		p, err := scanSMSPhone(tx.QueryRowContext(ctx, `SELECT `+smsPhoneColumns+` FROM sms_phones
			WHERE id = ? AND workspace_id = ? AND user_id = ? AND verified_at IS NULL AND session_id = ? AND step_up_at = ?`,
			phoneID, workspaceID, userID, b.SessionID, b.stepUpUnix()))
		if err != nil {
			return notFound("confirm sms", err)
		}
		g, err := s.smsGate(ctx, tx, workspaceID, userID)
		if err != nil {
			return err
		}
		if !g.allows(p.Country) {
			return fmt.Errorf("confirm sms: %w", ErrSMSNotAllowed)
		}
		now := s.now()
		res, err := tx.ExecContext(ctx, `UPDATE sms_codes SET used_at = ?
			WHERE id = ? AND workspace_id = ? AND user_id = ? AND phone_id = ? AND purpose = 'setup' AND session_id = ?
			  AND used_at IS NULL AND voided_at IS NULL AND expires_at > ? AND failures < ?`,
			now, codeID, workspaceID, userID, phoneID, b.SessionID, now, SMSCodeMaxFailures)
		if err != nil {
			return fmt.Errorf("confirm sms: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("confirm sms: %w", ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT session_epoch FROM users WHERE workspace_id = ? AND id = ?`, workspaceID, userID).
			Scan(&out.SessionEpoch); err != nil {
			return notFound("confirm sms", err)
		}
		var oldMasked, oldCountry string
		err = tx.QueryRowContext(ctx, `SELECT masked, country FROM sms_phones WHERE workspace_id = ? AND user_id = ? AND verified_at IS NOT NULL`,
			workspaceID, userID).Scan(&oldMasked, &oldCountry)
		switch {
		case err == nil:
			out.Replaced = true
			if _, err := s.dropPhones(ctx, tx, workspaceID, userID, phonesVerified, "phone replaced"); err != nil {
				return err
			}
			if err := tx.QueryRowContext(ctx, `UPDATE users SET session_epoch = session_epoch + 1 WHERE workspace_id = ? AND id = ? RETURNING session_epoch`,
				workspaceID, userID).Scan(&out.SessionEpoch); err != nil {
				return fmt.Errorf("confirm sms: %w", err)
			}
			if out.SessionsEnded, err = s.endSessions(ctx, tx, workspaceID, userID, b.SessionID, "factor_removed"); err != nil {
				return err
			}
			if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
				Event: EventSMSPhoneRemoved, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
					"phone": oldMasked, "country": oldCountry, "replaced_by": p.Masked}}); err != nil {
				return err
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("confirm sms: %w", err)
		}
		if p, err = scanSMSPhone(tx.QueryRowContext(ctx, `UPDATE sms_phones SET verified_at = ?, last_used_at = ? WHERE id = ? RETURNING `+smsPhoneColumns,
			now, now, phoneID)); err != nil {
			return fmt.Errorf("confirm sms: %w", err)
		}
		out.Phone = p
		if err := s.insertAudit(ctx, tx, AuditEvent{WorkspaceID: workspaceID, ActorUserID: userID, SubjectUserID: userID,
			Event: EventSMSPhoneVerified, IP: meta.IP, UserAgent: meta.UserAgent, Details: map[string]any{
				"phone_id": p.ID, "phone": p.Masked, "country": p.Country, "replaced": out.Replaced}}); err != nil {
			return err
		}
		if err := s.factorAdded(ctx, tx, workspaceID, userID, recoveryHashes, meta); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, workspaceID, msg)
	})
	if err != nil {
		return SMSEnrollment{}, err
	}
	return out, nil
}

// RemoveSMSPhone removes the member's verified phone (and any pending one,
// their codes and unsent texts), like RemoveTOTP: the policy check, the
// recovery codes when it was the last second factor, the epoch, the other
// sessions, the trusted browsers, the audit and msg in one transaction. It
// returns the new epoch; ErrFactorRequired when it is the member's last
// allowed factor under a requirement, ErrNotFound when there is no
// verified phone.
func (s *Store) RemoveSMSPhone(ctx context.Context, workspaceID, userID int64, keepSessionID string, meta Meta, msg OutboxMessage) (int64, error) {
	epoch, _, err := s.removeFactorTx(ctx, workspaceID, userID, MethodSMS, 0, keepSessionID, meta, msg)
	return epoch, err
}

// SMSUsage counts the workspace's texts queued in the UTC month of month,
// and what they cost in micro-dollars: what the caps count.
func (s *Store) SMSUsage(ctx context.Context, workspaceID int64, month time.Time) (texts int, micros int64, err error) {
	m := month.UTC()
	start := time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, time.UTC)
	err = s.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(price_micros), 0) FROM sms_outbox
		WHERE workspace_id = ? AND created_at >= ? AND created_at < ?`, workspaceID, start.Unix(), start.AddDate(0, 1, 0).Unix()).Scan(&texts, &micros)
	if err != nil {
		return 0, 0, fmt.Errorf("sms usage: %w", err)
	}
	return texts, micros, nil
}

// SMSStats is the SMS traffic of the whole service since a moment, for the
// circuit breaker and the metrics.
type SMSStats struct {
	Queued       int // texts queued
	ToUnverified int // of those, to numbers not verified when queued (setup texts)
	Sent         int // texts handed to the provider
	Failed       int // texts given up on (refused, expired, phone gone)
	Unsent       int // texts still to send, now
}

// SMSStats counts the texts of every workspace since since. Each count is
// a range of an index of sms_outbox.
func (s *Store) SMSStats(ctx context.Context, since time.Time) (SMSStats, error) {
	var st SMSStats
	at := since.Unix()
	err := s.q(ctx).QueryRowContext(ctx, `SELECT
			(SELECT COUNT(*) FROM sms_outbox WHERE created_at >= ?),
			(SELECT COUNT(*) FROM sms_outbox WHERE created_at >= ? AND verified_number = 0),
			(SELECT COUNT(*) FROM sms_outbox WHERE sent_at >= ?),
			(SELECT COUNT(*) FROM sms_outbox WHERE sent_at IS NULL AND failed_at >= ?),
			(SELECT COUNT(*) FROM sms_outbox WHERE sent_at IS NULL AND failed_at IS NULL)`,
		at, at, at, at).Scan(&st.Queued, &st.ToUnverified, &st.Sent, &st.Failed, &st.Unsent)
	if err != nil {
		return SMSStats{}, fmt.Errorf("sms stats: %w", err)
	}
	return st, nil
}
