package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// ChallengeLifetime is how long a member has for the second factor after a
// correct password; activity does not extend it (NIST SP 800-63B-4 §5.1).
const ChallengeLifetime = 5 * time.Minute

var (
	errInvalidCode     = errorf(http.StatusUnauthorized, "invalid_code", "That code didn't work. Check your authenticator app and try again.")
	errInvalidMFAToken = errorf(http.StatusUnauthorized, "invalid_mfa_token", "This sign-in has expired or ended. Sign in again with your password.")
	errMFADisabled     = errorf(http.StatusForbidden, "mfa_disabled", "Second-factor sign-in is blocked after too many wrong codes. Ask your workspace administrator to reset it.")
	errStepUpRequired  = errorf(http.StatusForbidden, "step_up_required", "Confirm it's you with your second factor first.")
)

// factorMessage is the message a page shows for a refused second factor:
// errInvalidCode speaks of the authenticator app, which is wrong for a
// recovery code.
func factorMessage(e *Error, in factorInput) string {
	if e == errInvalidCode && in.RecoveryCode != "" {
		return "That recovery code didn't work. Check it and try again; each code works only once."
	}
	if e == errInvalidCode && in.SMSCode != "" {
		return errSMSCodeWrong.Message
	}
	return e.Message
}

func errMFALocked(until, now time.Time) *Error {
	e := errRateLimited(until, now)
	e.Message = fmt.Sprintf("Too many wrong codes. Second-factor sign-in is paused for %d minute(s).", int((until.Sub(now)+time.Minute-time.Second)/time.Minute))
	return e
}

// startChallenge opens a second-factor challenge for u, who just gave the
// right password, in a fresh session that holds only the challenge id.
func (s *Server) startChallenge(c echo.Context, t *tenants.Tenant, u db.User) (db.Challenge, error) {
	if err := s.freshSession(c, t); err != nil {
		return db.Challenge{}, err
	}
	now := s.now()
	ch := db.Challenge{ID: auth.NewID(), WorkspaceID: t.ID, UserID: u.ID, PasswordAt: now, CreatedAt: now, ExpiresAt: now.Add(ChallengeLifetime)}
	if err := s.store.CreateChallenge(c.Request().Context(), ch); err != nil {
		return db.Challenge{}, err
	}
	s.sessions.Put(c.Request().Context(), keyPendingChallenge, ch.ID)
	return ch, nil
}

// pendingChallenge returns the open challenge held by the session in ctx, or
// ErrChallengeGone. The challenge of a native OpenID authorization (its
// mfa_token) is not pending here: it completes that authorization only
// (loadMFAToken), never a session.
func (s *Server) pendingChallenge(ctx context.Context, t *tenants.Tenant) (db.Challenge, db.User, error) {
	if s.sessions.GetString(ctx, keyOAuthRequest) != "" {
		return db.Challenge{}, db.User{}, db.ErrChallengeGone
	}
	return s.openChallenge(ctx, t)
}

// openChallenge returns the open challenge the session in ctx holds.
func (s *Server) openChallenge(ctx context.Context, t *tenants.Tenant) (db.Challenge, db.User, error) {
	id := s.sessions.GetString(ctx, keyPendingChallenge)
	if id == "" {
		return db.Challenge{}, db.User{}, db.ErrChallengeGone
	}
	ch, err := s.store.OpenChallenge(ctx, t.ID, id)
	if errors.Is(err, db.ErrNotFound) {
		return db.Challenge{}, db.User{}, db.ErrChallengeGone
	} else if err != nil {
		return db.Challenge{}, db.User{}, err
	}
	u, err := s.store.UserByID(ctx, t.ID, ch.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return db.Challenge{}, db.User{}, db.ErrChallengeGone
	}
	return ch, u, err
}

// factorInput is what a member typed: a code from the app, a recovery
// code, or a code texted to them.
type factorInput struct {
	Code         string
	RecoveryCode string
	SMSCode      string
}

// method is the factor the input is for.
func (in factorInput) method() string {
	switch {
	case in.RecoveryCode != "":
		return "recovery_code"
	case in.SMSCode != "":
		return db.MethodSMS
	}
	return "totp"
}

// checkFactor verifies a second factor for u and returns how to consume it.
// The member's lock is checked first: while locked, even the right code is
// refused. Malformed input is refused like a wrong code but not counted:
// it cannot succeed. Every well-formed guess is counted (for the member,
// and for challengeID when set) before it is compared with anything
// (countGuess); a wrong one is then settled, a right one comes back with
// Counted set so that spending it takes the count back, and one that could
// not be judged (a server fault) is taken back at once. Nothing is consumed
// here; the caller does that atomically with what the factor unlocks.
func (s *Server) checkFactor(c echo.Context, t *tenants.Tenant, u db.User, challengeID string, in factorInput) (db.FactorUse, error) {
	ctx := c.Request().Context()
	now := s.now()
	if err := s.guardOpen(c, t, u.ID); err != nil {
		return db.FactorUse{}, err
	}
	method := in.method()
	var code string
	var ok bool
	switch method {
	case "recovery_code":
		code, ok = mfa.NormalizeRecoveryCode(in.RecoveryCode)
	case db.MethodSMS:
		code, ok = mfa.WellFormedCode(in.SMSCode)
	default:
		code, ok = mfa.WellFormedCode(in.Code)
	}
	if !ok {
		return db.FactorUse{}, errInvalidCode
	}
	if err := s.countGuess(c, t, u, challengeID); err != nil {
		return db.FactorUse{}, err
	}
	use, matched, err := s.judgeFactor(c, t, u, challengeID, method, code, now)
	if err != nil {
		// Not judged (a server fault): the guess is taken back.
		if rerr := s.store.ReleaseMFAGuess(ctx, t.ID, u.ID, challengeID); rerr != nil {
			return db.FactorUse{}, errors.Join(err, rerr)
		}
		return db.FactorUse{}, err
	}
	if !matched {
		return db.FactorUse{}, s.guessFailed(c, t, u, challengeID, method)
	}
	use.Counted = true
	return use, nil
}

// judgeFactor compares a well-formed code with the member's factor of
// method: the TOTP secret's current and previous steps, every unused
// recovery code's keyed hash (all of them, in constant time, whatever
// matches), or the live SMS code of challengeID (of the session's step-up
// without one; judgeSMS).
func (s *Server) judgeFactor(c echo.Context, t *tenants.Tenant, u db.User, challengeID, method, code string, now time.Time) (db.FactorUse, bool, error) {
	ctx := c.Request().Context()
	if method == db.MethodSMS {
		return s.judgeSMS(c, t, u, challengeID, code)
	}
	if method == "recovery_code" {
		codes, err := s.store.UnusedRecoveryCodes(ctx, t.ID, u.ID)
		if err != nil {
			return db.FactorUse{}, false, err
		}
		var use db.FactorUse
		matched := false
		for _, rc := range codes {
			if s.keys.VerifyHash(recoveryPurpose(u), code, rc.Hash) && !matched {
				matched, use = true, db.FactorUse{Method: method, RecoveryCode: rc.ID}
			}
		}
		return use, matched, nil
	}
	cred, err := s.store.TOTPCredential(ctx, t.ID, u.ID)
	if errors.Is(err, db.ErrNotFound) {
		return db.FactorUse{}, false, nil
	} else if err != nil {
		return db.FactorUse{}, false, err
	}
	secret, err := s.keys.Decrypt(cred.KeyID, cred.Secret, totpAAD(cred.ID, u.ID))
	if err != nil {
		return db.FactorUse{}, false, fmt.Errorf("decrypt totp secret %d: %w", cred.ID, err)
	}
	if step := mfa.Match(string(secret), code, now); step != 0 {
		return db.FactorUse{Method: method, TOTPID: cred.ID, Step: step}, true, nil
	}
	return db.FactorUse{}, false, nil
}

// countGuess counts a second-factor guess of u (and of challengeID when
// set) before it is judged (SECURITY rule 11): one conditional write,
// refused while the member is locked or disabled or while as many guesses
// as the lock allows are already out. A guess that cannot be counted is not
// judged: 429 with Retry-After (403 when disabled), or, for a challenge
// that is spent or has had its five guesses, errInvalidMFAToken.
func (s *Server) countGuess(c echo.Context, t *tenants.Tenant, u db.User, challengeID string) error {
	err := s.store.ClaimMFAGuess(c.Request().Context(), t.ID, u.ID, challengeID)
	switch {
	case errors.Is(err, db.ErrMFALocked):
		return s.lockedError(c, t, u)
	case errors.Is(err, db.ErrChallengeGone):
		return errInvalidMFAToken
	}
	return err
}

// spendRefused answers a factor that was checked but could not be spent
// (its step or code was used meanwhile, or its key's sign count moved): a
// wrong factor, settled if countGuess already counted it, else counted now.
func (s *Server) spendRefused(c echo.Context, t *tenants.Tenant, u db.User, challengeID string, use db.FactorUse) error {
	if use.Counted {
		return s.guessFailed(c, t, u, challengeID, use.Method)
	}
	return s.factorFailed(c, t, u, challengeID, use.Method)
}

// lockedError is the answer when the factor was refused because the
// member's second factor is locked or disabled, or because the guesses the
// lock allows are all out (being judged: the lock may follow, so the
// member is told to wait as long as a lock would last).
func (s *Server) lockedError(c echo.Context, t *tenants.Tenant, u db.User) error {
	g, err := s.store.MFAGuard(c.Request().Context(), t.ID, u.ID)
	if err != nil {
		return err
	}
	if !g.DisabledAt.IsZero() {
		return errMFADisabled
	}
	now := s.now()
	until := g.LockedUntil
	if !until.After(now) {
		until = now.Add(db.GuardLockFor)
	}
	return errMFALocked(until, now)
}

// guardOpen refuses while the member's second-factor sign-in is locked
// (429 with Retry-After) or disabled: then even the right factor is not
// looked at.
func (s *Server) guardOpen(c echo.Context, t *tenants.Tenant, userID int64) error {
	g, err := s.store.MFAGuard(c.Request().Context(), t.ID, userID)
	if err != nil {
		return err
	}
	if !g.DisabledAt.IsZero() {
		return errMFADisabled
	}
	if now := s.now(); g.LockedUntil.After(now) {
		return errMFALocked(g.LockedUntil, now)
	}
	return nil
}

// factorFailed counts a wrong second factor that was not counted before
// it was judged (a WebAuthn assertion) and returns the answer to give.
func (s *Server) factorFailed(c echo.Context, t *tenants.Tenant, u db.User, challengeID, method string) error {
	return s.recordFailure(c, t, u, challengeID, method, s.store.RecordMFAFailure)
}

// guessFailed settles a guess countGuess counted that proved wrong (the
// challenge may end, the member be locked or disabled) and returns the
// answer to give.
func (s *Server) guessFailed(c echo.Context, t *tenants.Tenant, u db.User, challengeID, method string) error {
	return s.recordFailure(c, t, u, challengeID, method, s.store.MFAGuessFailed)
}

type failureRecorder func(ctx context.Context, workspaceID, userID int64, challengeID, method string, meta db.Meta, lockMsg, disableMsg db.OutboxMessage) (db.FailureOutcome, error)

func (s *Server) recordFailure(c echo.Context, t *tenants.Tenant, u db.User, challengeID, method string, record failureRecorder) error {
	ctx := c.Request().Context()
	now := s.now()
	data := s.mailData(c, t, u)
	data["Until"] = mail.When(now.Add(db.GuardLockFor))
	lockMsg, err := mail.Compose(mail.KindMFALocked, u.Email, data)
	if err != nil {
		return err
	}
	disableMsg, err := mail.Compose(mail.KindMFADisabled, u.Email, data)
	if err != nil {
		return err
	}
	out, err := record(ctx, t.ID, u.ID, challengeID, method, meta(c), lockMsg, disableMsg)
	if errors.Is(err, db.ErrChallengeGone) {
		// A sibling request of the same sign-in passed it meanwhile: not
		// counted, and answered as if this one had come a moment later.
		return errInvalidMFAToken
	} else if err != nil {
		return err
	}
	s.metrics.lockout(out)
	s.logger(c).Info("second factor failed", slog.Int64("workspace_id", t.ID), slog.Int64("user_id", u.ID),
		slog.String("method", method), slog.Bool("mfa_failed", true), slog.Bool("locked", out.NewlyLocked), slog.Bool("disabled", out.NewlyDisabled))
	switch {
	case out.NewlyDisabled:
		return errMFADisabled
	case out.NewlyLocked:
		return errMFALocked(out.LockedUntil, now)
	}
	return errInvalidCode
}

// mailData holds the fields every security notice uses.
func (s *Server) mailData(c echo.Context, t *tenants.Tenant, u db.User) map[string]any {
	return map[string]any{"Workspace": t.Name, "Email": u.Email, "When": mail.When(s.now()), "IP": c.RealIP()}
}

func totpAAD(credID, userID int64) []byte { return fmt.Appendf(nil, "totp:%d:%d", credID, userID) }

func recoveryPurpose(u db.User) string {
	return fmt.Sprintf("recovery:%d:%d", u.WorkspaceID, u.ID)
}

// signInFactor checks a code typed for a sign-in challenge and, when it is
// right, passes the challenge (checkFactor, then passChallenge). The page,
// the API and the native OpenID flow all sign in through it; the step is
// counted in the metrics.
func (s *Server) signInFactor(c echo.Context, t *tenants.Tenant, u db.User, ch db.Challenge, in factorInput) (*Auth, int, error) {
	method := in.method()
	use, err := s.checkFactor(c, t, u, ch.ID, in)
	var a *Auth
	var remaining int
	if err == nil {
		a, remaining, err = s.passChallenge(c, t, u, ch, use)
	}
	s.metrics.signInStep(method, err)
	return a, remaining, err
}

// passChallenge consumes the factor and turns the pending state into an
// aal2 session, in one transaction with the challenge being spent, then
// trusts the browser when the member asked to (trustRequested). It
// returns the recovery codes left (-1 when a TOTP code was used).
func (s *Server) passChallenge(c echo.Context, t *tenants.Tenant, u db.User, ch db.Challenge, use db.FactorUse) (*Auth, int, error) {
	ctx := c.Request().Context()
	us := s.newUserSession(c, t, u, AAL2)
	var msg db.OutboxMessage
	if use.Method == "recovery_code" {
		var err error
		if msg, err = s.recoveryUsedMail(c, t, u); err != nil {
			return nil, 0, err
		}
	}
	remaining, err := s.store.PassChallenge(ctx, ch, use, us, msg)
	if errors.Is(err, db.ErrNotFound) {
		// The step or the code was consumed meanwhile (a replay, or a
		// concurrent request with the same code): a wrong code.
		return nil, 0, s.spendRefused(c, t, u, ch.ID, use)
	} else if errors.Is(err, db.ErrChallengeGone) {
		return nil, 0, errInvalidMFAToken
	} else if errors.Is(err, db.ErrMFALocked) {
		return nil, 0, s.lockedError(c, t, u)
	} else if err != nil {
		return nil, 0, err
	}
	// The register entry was written without a token; bind it to the new
	// one now.
	if err := s.sessions.Clear(ctx); err != nil {
		return nil, 0, err
	}
	if err := s.sessions.RenewToken(ctx); err != nil {
		return nil, 0, err
	}
	if err := s.store.RotateUserSessionToken(ctx, t.ID, us.ID, "", scsHash(s.sessions.Token(ctx))); err != nil {
		return nil, 0, err
	}
	amr := []AMR{{Method: ch.FirstMethod, CompletedAt: ch.PasswordAt}, {Method: use.Method, CompletedAt: us.AuthTime}}
	a := s.bindSession(c, u, us, amr)
	// "Trust this browser" ticked (pages only): only now that a second
	// factor was passed, whichever it was.
	if trustRequested(c) {
		if err := s.trustDevice(c, t, u); err != nil {
			return nil, 0, err
		}
	}
	return a, remaining, nil
}

func (s *Server) recoveryUsedMail(c echo.Context, t *tenants.Tenant, u db.User) (db.OutboxMessage, error) {
	left, err := s.store.RecoveryCodesRemaining(c.Request().Context(), t.ID, u.ID)
	if err != nil {
		return db.OutboxMessage{}, err
	}
	data := s.mailData(c, t, u)
	data["Remaining"] = max(left-1, 0)
	data["Link"] = s.absoluteURL(t, "/account/mfa")
	return mail.Compose(mail.KindRecoveryUsed, u.Email, data)
}

// handleChallengeShow is the second-factor page after the password.
func (s *Server) handleChallengeShow(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	ch, u, err := s.pendingChallenge(c.Request().Context(), t)
	if errors.Is(err, db.ErrChallengeGone) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/login?notice=challenge_expired")
	} else if err != nil {
		return err
	}
	v, err := s.challengeView(c, u, ch, c.QueryParam("method") == "recovery", c.QueryParam("next"))
	if err != nil {
		return err
	}
	v.SMS = c.QueryParam("method") == "sms"
	return s.render(c, http.StatusOK, views.ChallengePage(s.page(c, "Two-step verification"), v))
}

// challengeView is the challenge page's model: the member's methods, most
// convenient first (after a passkey sign-in, keys are not offered again),
// and "trust this browser" when the workspace allows it.
func (s *Server) challengeView(c echo.Context, u db.User, ch db.Challenge, recovery bool, next string) (views.ChallengeView, error) {
	v := views.ChallengeView{Recovery: recovery, Next: next, Trust: trustRequested(c)}
	var err error
	t := tenants.FromContext(c.Request().Context())
	if v.TrustDays, err = s.trustedDays(c, t); err != nil {
		return v, err
	}
	if !t.Support {
		r, err := s.store.RecoverySettings(c.Request().Context(), t.ID)
		if err != nil {
			return v, err
		}
		v.SelfRecovery = r.SelfService
	}
	for _, m := range s.methodsFor(c, u, ch) {
		switch m {
		case "webauthn":
			v.HasKey = true
		case "totp":
			v.HasTOTP = true
		case "recovery_code":
			v.HasRecovery = true
		}
	}
	phone, usable, err := s.usablePhone(c, u)
	if err != nil {
		return v, err
	}
	v.HasSMS, v.SMSPhone, v.SMSResendIn = usable, phone.Masked, s.smsResendIn(c)
	return v, nil
}

// handleChallengeCheck checks the code and signs the member in.
func (s *Server) handleChallengeCheck(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	ch, u, err := s.pendingChallenge(c.Request().Context(), t)
	if errors.Is(err, db.ErrChallengeGone) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/login?notice=challenge_expired")
	} else if err != nil {
		return err
	}
	in := factorInput{Code: c.FormValue("code"), RecoveryCode: c.FormValue("recovery_code"), SMSCode: c.FormValue("sms_code")}
	v, err := s.challengeView(c, u, ch, c.FormValue("method") == "recovery", c.FormValue("next"))
	if err != nil {
		return err
	}
	v.SMS = c.FormValue("method") == "sms"
	if v.SMS && in.SMSCode == "" {
		// An empty field is a wrong code, like an empty TOTP field.
		in.SMSCode = " "
	}
	var remaining int
	err = s.inOneWrite(c, func() (err error) {
		_, remaining, err = s.signInFactor(c, t, u, ch, in)
		return err
	})
	if e, status, ok := formError(c, err); ok {
		if e == errInvalidMFAToken {
			return c.Redirect(http.StatusSeeOther, t.Base+"/login?notice=challenge_expired")
		}
		if _, _, gone := s.pendingChallenge(c.Request().Context(), t); errors.Is(gone, db.ErrChallengeGone) {
			// The fifth wrong code ended the challenge: back to the password.
			return c.Redirect(http.StatusSeeOther, t.Base+"/login?notice=challenge_failed")
		}
		v.Error = factorMessage(e, in)
		return s.render(c, status, views.ChallengePage(s.page(c, "Two-step verification"), v))
	} else if err != nil {
		return err
	}
	target := s.safeNext(t, v.Next)
	if remaining >= 0 {
		target = t.Base + fmt.Sprintf("/account/mfa?notice=recovery_used&left=%d", remaining)
	}
	if target, err = s.afterSignIn(c, t, u, target); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// handleChallengeCancel abandons the challenge and goes back to the
// password.
func (s *Server) handleChallengeCancel(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	if err := s.freshSession(c, t); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/login")
}
