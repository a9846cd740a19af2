package app

// The SMS pages: the member's phone in the portal (add, verify, replace,
// remove), "Text me a code" at the challenge and at the step-up. The
// store work and every check are sms_flow.go's; these handlers parse,
// call it and pick a view.

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// keySMSSentAt is when the browser last asked for a sign-in or step-up
// text (Unix seconds), whatever happened to it: the page says when it may
// ask again.
const keySMSSentAt = "sms_sent_at"

// smsAllowedFor reports whether the workspace lets u use SMS, and the
// countries numbers may be in.
func (s *Server) smsAllowedFor(c echo.Context, u db.User) (bool, db.SMSSettings, error) {
	ctx := c.Request().Context()
	p, err := s.store.Policy(ctx, u.WorkspaceID)
	if err != nil {
		return false, db.SMSSettings{}, err
	}
	st, err := s.store.SMSSettings(ctx, u.WorkspaceID)
	if err != nil {
		return false, db.SMSSettings{}, err
	}
	return p.SMSAllowedFor(u.Role) && len(st.Countries) > 0, st, nil
}

// usablePhone returns u's verified phone when the workspace lets u sign
// in with it (the policy, the role, the phone's country).
func (s *Server) usablePhone(c echo.Context, u db.User) (db.SMSPhone, bool, error) {
	phone, err := s.store.SMSPhone(c.Request().Context(), u.WorkspaceID, u.ID)
	if errors.Is(err, db.ErrNotFound) {
		return db.SMSPhone{}, false, nil
	} else if err != nil {
		return db.SMSPhone{}, false, err
	}
	ok, st, err := s.smsAllowedFor(c, u)
	if err != nil {
		return db.SMSPhone{}, false, err
	}
	return phone, ok && st.AllowsCountry(phone.Country), nil
}

// fillSMS puts the member's phone on the MFA page.
func (s *Server) fillSMS(c echo.Context, a *Auth, v *views.MFAView) error {
	ok, _, err := s.smsAllowedFor(c, a.User)
	if err != nil {
		return err
	}
	v.SMS.Allowed = ok
	phone, err := s.store.SMSPhone(c.Request().Context(), a.User.WorkspaceID, a.User.ID)
	if err == nil {
		v.SMS.Phone = &views.SMSPhoneRow{Masked: phone.Masked, Added: phone.VerifiedAt, LastUsed: phone.LastUsedAt}
	} else if !errors.Is(err, db.ErrNotFound) {
		return err
	}
	return nil
}

// Portal: adding, replacing and removing the phone.

// smsSetupView lists the countries the workspace allows, the member's
// current phone first among them.
func (s *Server) smsSetupView(c echo.Context, a *Auth) (views.SMSSetupView, error) {
	ok, st, err := s.smsAllowedFor(c, a.User)
	if err != nil {
		return views.SMSSetupView{}, err
	}
	if !ok {
		return views.SMSSetupView{}, errSMSNotAllowed
	}
	v := views.SMSSetupView{Errors: views.FieldErrors{}}
	for _, code := range countriesByName(st.Countries) {
		v.Countries = append(v.Countries, views.CountryOption{Code: code, Label: countryLabel(code)})
	}
	v.Country = v.Countries[0].Code
	phone, err := s.store.SMSPhone(c.Request().Context(), a.User.WorkspaceID, a.User.ID)
	if err == nil {
		v.Replacing = phone.Masked
		if st.AllowsCountry(phone.Country) {
			v.Country = phone.Country
		}
	} else if !errors.Is(err, db.ErrNotFound) {
		return views.SMSSetupView{}, err
	}
	return v, nil
}

// handleSMSSetupShow asks for the number (after the route's step-up).
func (s *Server) handleSMSSetupShow(c echo.Context) error {
	v, err := s.smsSetupView(c, authFrom(c))
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.SMSSetupPage(s.page(c, "Add a phone"), v))
}

// handleSMSSetupStart records the number as pending and texts it a code.
func (s *Server) handleSMSSetupStart(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	v, err := s.smsSetupView(c, a)
	if err != nil {
		return err
	}
	v.Country, v.Number = c.FormValue("country"), c.FormValue("phone")
	_, err = s.startSMSEnrollment(c, t, a.User, a.binding(), v.Number, v.Country)
	var e *Error
	switch {
	case err == nil:
	case errors.Is(err, errInvalidPhone), errors.Is(err, errSMSNotAllowed):
		errors.As(err, &e)
		v.Errors["phone"] = e.Message
		if errors.Is(err, errSMSNotAllowed) {
			v.Errors["phone"] = "Your workspace doesn't allow texts to this number. Choose its country in the list, or use another number."
		}
		v.Error = "Nothing was sent. Check the number."
		return s.render(c, http.StatusUnprocessableEntity, views.SMSSetupPage(s.page(c, "Add a phone"), v))
	case errors.As(err, &e) && e.Status == http.StatusTooManyRequests:
		// The phone is pending; a cap held the text back. The code page
		// says so and offers to send again later.
		setRetryAfter(c, e)
		return s.renderSMSVerify(c, http.StatusTooManyRequests, e.Message, false)
	default:
		if fe, status, ok := formError(c, err); ok {
			v.Error = fe.Message
			return s.render(c, status, views.SMSSetupPage(s.page(c, "Add a phone"), v))
		}
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa/sms")
}

// renderSMSVerify shows the code page of the pending phone this session
// started; without one, the MFA page.
func (s *Server) renderSMSVerify(c echo.Context, status int, msg string, resent bool) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	p, err := s.store.PendingSMSPhone(c.Request().Context(), a.User.WorkspaceID, a.User.ID, a.binding())
	if errors.Is(err, db.ErrNotFound) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa")
	} else if err != nil {
		return err
	}
	v := views.SMSVerifyView{Masked: p.Masked, Error: msg, Resent: resent, Account: a.User.Email}
	return s.render(c, status, views.SMSVerifyPage(s.page(c, "Enter the code"), v))
}

// handleSMSSetupVerifyShow asks for the code texted to the pending phone.
func (s *Server) handleSMSSetupVerifyShow(c echo.Context) error {
	return s.renderSMSVerify(c, http.StatusOK, "", c.QueryParam("notice") == "resent")
}

// handleSMSSetupConfirm verifies the pending phone with its code: recovery
// codes follow for a first second factor.
func (s *Server) handleSMSSetupConfirm(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	codes, err := s.confirmSMSEnrollment(c, t, a.User, a.binding(), c.FormValue("code"))
	if errors.Is(err, errSMSSetupGone) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa?notice=sms_setup_expired")
	}
	if e, status, ok := formError(c, err); ok {
		return s.renderSMSVerify(c, status, e.Message, false)
	} else if err != nil {
		return err
	}
	if codes == nil {
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa?notice=sms_enabled")
	}
	return s.renderRecoveryCodes(c, codes, "Two-step verification is on")
}

// handleSMSSetupResend texts a new code to the pending phone.
func (s *Server) handleSMSSetupResend(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	res, err := s.sendSMSCode(c, t, a.User, db.SMSPurposeSetup, "", a.binding())
	if errors.Is(err, db.ErrNotFound) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa")
	} else if err == nil {
		err = s.smsSendRefusal(res)
	}
	if e, status, ok := formError(c, err); ok {
		return s.renderSMSVerify(c, status, e.Message, false)
	} else if errors.Is(err, db.ErrSMSCodesExhausted) {
		return s.renderSMSVerify(c, http.StatusTooManyRequests, "Too many wrong codes for this number. Start again with the number.", false)
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa/sms?notice=resent")
}

// handleSMSRemove removes the member's phone (after the route's step-up).
func (s *Server) handleSMSRemove(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	err := s.removeSMS(c, t, a.User, a.Session.ID)
	if e, status, ok := formError(c, err); ok && e != errNotFound {
		return s.renderMFAView(c, status, s.page(c, "Two-step verification"), views.MFAView{SMS: views.SMSSection{Error: e.Message}})
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa?notice=sms_removed")
}

// The challenge and the step-up.

// smsResendIn is the seconds before the browser may ask for another
// text, by the time it last asked.
func (s *Server) smsResendIn(c echo.Context) int {
	at := s.sessions.GetInt64(c.Request().Context(), keySMSSentAt)
	if at == 0 {
		return 0
	}
	left := time.Unix(at, 0).Add(db.SMSResendCooldown).Sub(s.now())
	if left <= 0 {
		return 0
	}
	return int((left + time.Second - 1) / time.Second)
}

// handleChallengeSMSSend texts a sign-in code. The answer is the same
// whatever happened to the text (a cap, a throttle, the cooldown, a phone
// SMS is no longer allowed for): the code page. Only the requester's own
// throttles (member, IP) and the member's lock say so, as for any code.
func (s *Server) handleChallengeSMSSend(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	ch, u, err := s.pendingChallenge(ctx, t)
	if errors.Is(err, db.ErrChallengeGone) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/login?notice=challenge_expired")
	} else if err != nil {
		return err
	}
	next := c.FormValue("next")
	_, usable, err := s.usablePhone(c, u)
	if err != nil {
		return err
	}
	if usable {
		res, err := s.sendSMSCode(c, t, u, db.SMSPurposeChallenge, ch.ID, db.SessionBinding{})
		if err == nil {
			err = s.smsChallengeAnswer(res)
		}
		switch {
		case errors.Is(err, errInvalidMFAToken):
			return c.Redirect(http.StatusSeeOther, t.Base+"/login?notice=challenge_expired")
		case errors.Is(err, db.ErrNotFound), errors.Is(err, db.ErrSMSCodesExhausted):
			// No phone any more, or its codes had their five wrong tries:
			// the same answer.
		case err != nil:
			if e, status, ok := formError(c, err); ok {
				v, verr := s.challengeView(c, u, ch, false, next)
				if verr != nil {
					return verr
				}
				v.Error = e.Message
				return s.render(c, status, views.ChallengePage(s.page(c, "Two-step verification"), v))
			}
			return err
		}
	}
	s.sessions.Put(ctx, keySMSSentAt, s.now().Unix())
	return c.Redirect(http.StatusSeeOther, t.Base+"/login/mfa?method=sms&next="+url.QueryEscape(next))
}

// handleStepUpSMSSend texts a step-up code to the signed-in member.
func (s *Server) handleStepUpSMSSend(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	next := c.FormValue("next")
	res, err := s.sendSMSCode(c, t, a.User, db.SMSPurposeStepUp, "", a.binding())
	if err == nil {
		err = s.smsChallengeAnswer(res)
	}
	if errors.Is(err, db.ErrNotFound) || errors.Is(err, db.ErrSMSCodesExhausted) {
		err = nil
	}
	if e, status, ok := formError(c, err); ok {
		v := views.StepUpView{Next: next, Error: e.Message}
		if err := s.stepUpMethods(c, &v); err != nil {
			return err
		}
		return s.render(c, status, views.StepUpPage(s.page(c, "Confirm it's you"), v))
	} else if err != nil {
		return err
	}
	s.sessions.Put(ctx, keySMSSentAt, s.now().Unix())
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/verify?method=sms&next="+url.QueryEscape(next))
}
