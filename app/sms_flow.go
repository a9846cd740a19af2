package app

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/app/sms"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// SMS one-time codes (DESIGN "SMS", SECURITY "SMS codes"): the pages and
// the JSON API both go through these functions. The store applies every
// cap and queues the text in the transaction that makes the code
// (db.RequestSMSCode); the jobs' SMS sender delivers it (jobs.go).

var (
	errInvalidPhone  = errorf(http.StatusBadRequest, "invalid_phone", "That doesn't look like a mobile number. Enter it with its country code, like +44 7400 123456.")
	errSMSNotAllowed = errorf(http.StatusForbidden, "sms_not_allowed", "Your workspace doesn't allow text messages to this number.")
	errSMSCodeWrong  = errorf(http.StatusBadRequest, "invalid_code", "That code didn't work. Check the text message and try again.")
	errSMSSetupGone  = errorf(http.StatusBadRequest, "invalid_code", "This setup has expired. Start again.")
	// errSMSUnavailable is the answer to a setup while the circuit breaker
	// is open (sms_breaker.go): new numbers are not texted for a while.
	// It is the same for every member and every number: it tells nothing
	// about either.
	errSMSUnavailable = &Error{Status: http.StatusServiceUnavailable, Code: "sms_unavailable", RetryAfter: smsBreakerWindow,
		Message: "Text messages can't be set up right now. Try again later, or use an authenticator app."}
)

// smsCodePurpose is the keyed hash's purpose of a member's SMS codes:
// bound to the workspace and the member, so that a hash is worth nothing
// for anyone else.
func smsCodePurpose(u db.User) string { return fmt.Sprintf("sms_code:%d:%d", u.WorkspaceID, u.ID) }

// smsAAD binds a sealed text to its sms_outbox row.
func smsAAD(messageID int64) []byte { return fmt.Appendf(nil, "sms_outbox:%d", messageID) }

// openSMS decrypts a queued text (the sender, the dev outbox).
func (s *Server) openSMS(m db.SMSMessage) (string, error) {
	return openSMSBody(s.keys.Decrypt, m)
}

func openSMSBody(decrypt func(keyID string, ciphertext, aad []byte) ([]byte, error), m db.SMSMessage) (string, error) {
	body, err := decrypt(m.KeyID, m.Body, smsAAD(m.ID))
	if err != nil {
		return "", fmt.Errorf("open sms %d: %w", m.ID, err)
	}
	return string(body), nil
}

// newSMSCode returns 6 random digits.
func newSMSCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// sendSMSCode asks the store to text a new code for purpose
// (db.SMSPurposeSetup, Challenge or StepUp), bound to challengeID (a
// sign-in) or to b (a setup or step-up). Refusals by a control are
// results (db.SMSSendResult.Result), not errors: the caller decides what
// they may tell (the sign-in's answer is the same whatever happened:
// smsChallengeAnswer; a setup's: smsSendRefusal). Errors: errInvalidMFAToken
// (the challenge is gone), the member's lock (429/403), errSMSUnavailable
// (a setup while the breaker is open), db.ErrNotFound (no phone for the
// purpose), db.ErrSMSCodesExhausted.
func (s *Server) sendSMSCode(c echo.Context, t *tenants.Tenant, u db.User, purpose, challengeID string, b db.SessionBinding) (db.SMSSendResult, error) {
	ctx := c.Request().Context()
	if purpose == db.SMSPurposeSetup {
		if open, err := s.smsBreakerOpen(ctx); err != nil {
			return db.SMSSendResult{}, err
		} else if open {
			s.metrics.smsRequested("breaker_open")
			return db.SMSSendResult{}, errSMSUnavailable
		}
	}
	// The price by the phone's country; the store texts the phone it finds
	// in its transaction (a phone replaced in between costs the same but
	// for a different country: the budget is an estimate anyway).
	var phone db.SMSPhone
	var err error
	if purpose == db.SMSPurposeSetup {
		phone, err = s.store.PendingSMSPhone(ctx, t.ID, u.ID, b)
	} else {
		phone, err = s.store.SMSPhone(ctx, t.ID, u.ID)
	}
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return db.SMSSendResult{}, err
	}
	code := newSMSCode()
	rpID, _ := s.rpHost(t)
	body := sms.Body(code, t.Name, rpID)
	req := db.SMSCodeRequest{
		WorkspaceID: t.ID, UserID: u.ID, Purpose: purpose, ChallengeID: challengeID, Binding: b,
		CodeHash: s.keys.HashToken(smsCodePurpose(u), code),
		Seal: func(id int64) (string, []byte) {
			return s.keys.Encrypt([]byte(body), smsAAD(id))
		},
		PriceMicros: s.cfg.SMSPrices.For(phone.Country),
		// Global, not per workspace: the number's caps hold across them.
		NumberKey: func(e164 string) string { return s.keys.HashToken("sms_number", e164) },
		IPKey:     s.keys.HashToken("sms_ip", c.RealIP()),
		CapAlert:  func(a db.SMSCapAlert) (db.OutboxMessage, error) { return s.smsCapMail(t, a) },
		Meta:      meta(c),
	}
	res, err := s.store.RequestSMSCode(ctx, req)
	switch {
	case errors.Is(err, db.ErrChallengeGone):
		return db.SMSSendResult{}, errInvalidMFAToken
	case errors.Is(err, db.ErrMFALocked):
		return db.SMSSendResult{}, s.lockedError(c, t, u)
	case err != nil:
		return db.SMSSendResult{}, err
	}
	s.metrics.smsRequested(string(res.Result))
	if res.Result != db.ResultSent {
		s.logger(c).Info("sms code refused", slog.Int64("workspace_id", t.ID), slog.Int64("user_id", u.ID),
			slog.String("purpose", purpose), slog.String("result", string(res.Result)))
	}
	return res, nil
}

// smsSendRefusal is what a signed-in member is told when their text was
// refused (a setup, a step-up): nil when it was sent; 403 when SMS is not
// allowed; else 429, the same for every cap (the number's caps count every
// workspace's texts: which one was met is not told).
func (s *Server) smsSendRefusal(res db.SMSSendResult) error {
	now := s.now()
	switch res.Result {
	case db.ResultSent:
		return nil
	case db.ResultNotAllowed:
		return errSMSNotAllowed
	case db.ResultCooldown:
		e := errRateLimited(res.RetryAt, now)
		e.Message = "A code was just sent. Wait a few seconds before asking for another."
		return e
	}
	until := res.RetryAt
	if until.IsZero() || until.Before(now) {
		until = now.Add(db.SMSNumberWindow)
	}
	e := errRateLimited(until, now)
	e.Message = "We can't send another text right now. Try again later, or use another method."
	return e
}

// smsChallengeAnswer is what asking for a sign-in text answers: nothing
// (202, the same whatever happened to the text: capped, throttled,
// refused by the provider later, cooling down), except the requester's own
// member and IP throttles, which say only what the requester did (429).
func (s *Server) smsChallengeAnswer(res db.SMSSendResult) error {
	switch res.Result {
	case db.ResultMemberLimited, db.ResultIPLimited:
		return errRateLimited(res.RetryAt, s.now())
	}
	return nil
}

// smsCapMail is the email to an owner or admin when a workspace cap
// refused a text for the first time in a month.
func (s *Server) smsCapMail(t *tenants.Tenant, a db.SMSCapAlert) (db.OutboxMessage, error) {
	what := map[string]string{
		db.SMSCapDaily:        fmt.Sprintf("the daily cap of %d texts", a.Settings.DailyCap),
		db.SMSCapBudgetTexts:  fmt.Sprintf("the monthly budget of %d texts", a.Settings.MonthlyBudgetTexts),
		db.SMSCapBudgetMicros: "the monthly budget of $" + microsToUSD(a.Settings.MonthlyBudgetMicros),
	}[a.Cap]
	return mail.Compose(mail.KindSMSCap, a.Admin.Email, map[string]any{
		"Workspace": t.Name, "Email": a.Admin.Email, "When": mail.When(s.now()), "Cap": what, "Month": a.Month,
		"TextsToday": a.TextsToday, "TextsMonth": a.TextsMonth, "SpentMonth": "$" + microsToUSD(a.MicrosMonth),
		"Link": s.absoluteURL(t, "/admin/settings/security"),
	})
}

// microsToUSD formats micro-dollars as dollars and cents ("50.00").
func microsToUSD(micros int64) string {
	cents := (micros + 5_000) / 10_000
	return fmt.Sprintf("%d.%02d", cents/100, cents%100)
}

// startSMSEnrollment records phone (E.164, or national in country) as the
// member's pending phone, bound to b, and texts it a setup code. Errors:
// errInvalidPhone, errSMSNotAllowed (the policy, the member's role or the
// number's country), errSMSUnavailable (the breaker), a 429 when the text
// was refused by a cap or throttle (the phone stays pending: a resend may
// pass later).
func (s *Server) startSMSEnrollment(c echo.Context, t *tenants.Tenant, u db.User, b db.SessionBinding, phone, country string) (db.SMSPhone, error) {
	ctx := c.Request().Context()
	st, err := s.store.SMSSettings(ctx, t.ID)
	if err != nil {
		return db.SMSPhone{}, err
	}
	n, err := sms.Parse(phone, country, st.Countries)
	switch {
	case errors.Is(err, sms.ErrCountryNotAllowed):
		return db.SMSPhone{}, errSMSNotAllowed
	case err != nil:
		return db.SMSPhone{}, errInvalidPhone
	}
	if open, err := s.smsBreakerOpen(ctx); err != nil {
		return db.SMSPhone{}, err
	} else if open {
		s.metrics.smsRequested("breaker_open")
		return db.SMSPhone{}, errSMSUnavailable
	}
	p, err := s.store.StartSMSEnrollment(ctx, t.ID, u.ID, b, n.E164, n.Country, sms.Mask(n.E164), meta(c))
	if errors.Is(err, db.ErrSMSNotAllowed) {
		return db.SMSPhone{}, errSMSNotAllowed
	} else if err != nil {
		return db.SMSPhone{}, err
	}
	res, err := s.sendSMSCode(c, t, u, db.SMSPurposeSetup, "", b)
	if err != nil {
		return db.SMSPhone{}, err
	}
	return p, s.smsSendRefusal(res)
}

// confirmSMSEnrollment verifies the pending phone b started with the code
// texted to it. The code is a guess like any other: counted against the
// member's lock before it is compared (SECURITY rule 11), and against the
// code's own five tries when wrong. For a first second factor it returns
// the new recovery codes. When the request is signed in (authFrom), the
// session is upgraded to aal2 under a new token, as after a TOTP setup,
// and keeps its place when the new phone replaced a verified one.
func (s *Server) confirmSMSEnrollment(c echo.Context, t *tenants.Tenant, u db.User, b db.SessionBinding, code string) ([]string, error) {
	ctx := c.Request().Context()
	p, err := s.store.PendingSMSPhone(ctx, t.ID, u.ID, b)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errSMSSetupGone
	} else if err != nil {
		return nil, err
	}
	wrong := func(err error) error {
		if err == errInvalidCode {
			return errSMSCodeWrong
		}
		return err
	}
	code, ok := mfa.WellFormedCode(code)
	if !ok {
		return nil, errSMSCodeWrong // cannot succeed, so not counted
	}
	if err := s.countGuess(c, t, u, ""); err != nil {
		return nil, err
	}
	live, err := s.store.LiveSMSCode(ctx, t.ID, u.ID, db.SMSPurposeSetup, b.SessionID)
	if errors.Is(err, db.ErrNotFound) {
		// No live code (expired, five wrong tries, never sent): a wrong guess.
		return nil, wrong(s.guessFailed(c, t, u, "", db.MethodSMS))
	} else if err != nil {
		return nil, errors.Join(err, s.store.ReleaseMFAGuess(ctx, t.ID, u.ID, ""))
	}
	if !s.keys.VerifyHash(smsCodePurpose(u), code, live.CodeHash) {
		if _, err := s.store.SMSCodeFailed(ctx, t.ID, u.ID, live.ID); err != nil && !errors.Is(err, db.ErrNotFound) {
			return nil, err
		}
		return nil, wrong(s.guessFailed(c, t, u, "", db.MethodSMS))
	}
	has, err := s.store.HasSecondFactor(ctx, t.ID, u.ID)
	if err != nil {
		return nil, errors.Join(err, s.store.ReleaseMFAGuess(ctx, t.ID, u.ID, ""))
	}
	var codes, hashes []string
	if !has {
		codes = mfa.NewRecoveryCodes()
		for _, rc := range codes {
			hashes = append(hashes, s.keys.HashToken(recoveryPurpose(u), rc))
		}
	}
	data := s.mailData(c, t, u)
	data["Phone"] = p.Masked
	msg, err := mail.Compose(mail.KindSMSAdded, u.Email, data)
	if err != nil {
		return nil, err
	}
	out, err := s.store.ConfirmSMSEnrollment(ctx, t.ID, u.ID, p.ID, live.ID, b, hashes, meta(c), msg)
	switch {
	case errors.Is(err, db.ErrNotFound):
		// Spent meanwhile (a replay, or a concurrent confirmation with the
		// same code), or the setup replaced: a wrong guess.
		return nil, wrong(s.guessFailed(c, t, u, "", db.MethodSMS))
	case errors.Is(err, db.ErrMFALocked):
		return nil, s.lockedError(c, t, u)
	case errors.Is(err, db.ErrSMSNotAllowed):
		return nil, errors.Join(errSMSNotAllowed, s.store.ReleaseMFAGuess(ctx, t.ID, u.ID, ""))
	case err != nil:
		return nil, err
	}
	if out.Replaced {
		// The old phone went like any removed factor: every other session
		// ended and the epoch moved on; this session follows it.
		s.sessions.Put(ctx, keyEpoch, out.SessionEpoch)
	}
	if a := authFrom(c); a != nil && a.Session.ID == b.SessionID {
		if err := s.upgradeSession(c, a, db.MethodSMS); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

// removeSMS removes the member's verified phone (the route asks for a
// fresh step-up first), with the notice email; every session but
// keepSessionID ends. errNotFound when there is none; errFactorRequired
// when the policy needs it.
func (s *Server) removeSMS(c echo.Context, t *tenants.Tenant, u db.User, keepSessionID string) error {
	ctx := c.Request().Context()
	p, err := s.store.SMSPhone(ctx, t.ID, u.ID)
	if errors.Is(err, db.ErrNotFound) {
		return errNotFound
	} else if err != nil {
		return err
	}
	if err := s.checkRemoval(c, u, db.MethodSMS, 0); err != nil {
		return err
	}
	data := s.mailData(c, t, u)
	data["Phone"] = p.Masked
	msg, err := mail.Compose(mail.KindSMSRemoved, u.Email, data)
	if err != nil {
		return err
	}
	epoch, err := s.store.RemoveSMSPhone(ctx, t.ID, u.ID, keepSessionID, meta(c), msg)
	if errors.Is(err, db.ErrNotFound) {
		return errNotFound
	} else if err != nil {
		return removalError(err)
	}
	if a := authFrom(c); a != nil && a.Session.ID == keepSessionID {
		if a.Bearer {
			s.sessions.Put(ctx, keyEpoch, epoch)
			return nil
		}
		return s.rotateToken(c, a, epoch)
	}
	return nil
}

// judgeSMS compares a well-formed code with the member's live code for
// challengeID (a sign-in) or, without one, for a step-up of the request's
// session. A wrong code counts against the code's own five tries.
func (s *Server) judgeSMS(c echo.Context, t *tenants.Tenant, u db.User, challengeID, code string) (db.FactorUse, bool, error) {
	ctx := c.Request().Context()
	purpose, bound, sessionID := db.SMSPurposeChallenge, challengeID, ""
	if challengeID == "" {
		a := authFrom(c)
		if a == nil {
			return db.FactorUse{}, false, nil
		}
		purpose, bound, sessionID = db.SMSPurposeStepUp, a.Session.ID, a.Session.ID
	}
	live, err := s.store.LiveSMSCode(ctx, t.ID, u.ID, purpose, bound)
	if errors.Is(err, db.ErrNotFound) {
		return db.FactorUse{}, false, nil
	} else if err != nil {
		return db.FactorUse{}, false, err
	}
	if !s.keys.VerifyHash(smsCodePurpose(u), code, live.CodeHash) {
		if _, err := s.store.SMSCodeFailed(ctx, t.ID, u.ID, live.ID); err != nil && !errors.Is(err, db.ErrNotFound) {
			return db.FactorUse{}, false, err
		}
		return db.FactorUse{}, false, nil
	}
	return db.FactorUse{Method: db.MethodSMS, SMSCodeID: live.ID, SessionID: sessionID}, true, nil
}
