package app

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// The SMS calls of the JSON API (API.md "SMS"); the work is in
// sms_flow.go, which the pages share.

type apiSMSSetupRequest struct {
	Phone   string `json:"phone"`
	Country string `json:"country"`
}

// handleAPISMSSetup is POST /mfa/sms/setup: the number becomes the
// member's pending phone and a code is texted to it.
func (s *Server) handleAPISMSSetup(c echo.Context) error {
	var req apiSMSSetupRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	p, err := s.startSMSEnrollment(c, t, a.User, a.binding(), req.Phone, req.Country)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"phone": p.Masked})
}

// handleAPISMSVerifySetup is POST /mfa/sms/verify-setup.
func (s *Server) handleAPISMSVerifySetup(c echo.Context) error {
	var req apiCodeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	codes, err := s.confirmSMSEnrollment(c, t, a.User, a.binding(), req.Code)
	if err != nil {
		return err
	}
	return s.factorEnabled(c, codes)
}

// handleAPISMSDelete is DELETE /mfa/sms (step-up: the route's fact).
func (s *Server) handleAPISMSDelete(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	if err := s.removeSMS(c, t, a.User, a.Session.ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type apiMFATokenRequest struct {
	MFAToken string `json:"mfa_token"`
}

// smsSendAccepted is the one answer to a sign-in's request for a text,
// whatever happened to it.
var smsSendAccepted = map[string]any{"message": "If a phone is set up for text messages, a code is on its way."}

// handleAPILoginSMSSend is POST /login/sms/send: texts a sign-in code for
// the challenge of mfa_token (so never before the password step). It
// answers 202 whatever happened to the text: no phone, SMS not allowed,
// the number's or the workspace's caps, the cooldown and the provider's
// fate all look the same. Only the requester's own throttles (the
// member's, the client IP's) answer 429.
func (s *Server) handleAPILoginSMSSend(c echo.Context) error {
	return s.challengeSMSSend(c, false)
}

// handleOAuthAuthorizeSMSSend is POST /oauth/authorize/sms/send: the same
// for the mfa_token of the native OpenID Connect flow.
func (s *Server) handleOAuthAuthorizeSMSSend(c echo.Context) error {
	return s.challengeSMSSend(c, true)
}

// challengeSMSSend texts a sign-in code for the challenge of an mfa_token
// of the API (authorization false) or of the native flow (true).
func (s *Server) challengeSMSSend(c echo.Context, authorization bool) error {
	t := tenants.FromContext(c.Request().Context())
	var req apiMFATokenRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ch, u, cancel, err := s.loadMFAToken(c, t, req.MFAToken, authorization)
	if err != nil {
		return err
	}
	defer cancel()
	res, err := s.sendSMSCode(c, t, u, db.SMSPurposeChallenge, ch.ID, db.SessionBinding{})
	switch {
	case errors.Is(err, db.ErrNotFound), errors.Is(err, db.ErrSMSCodesExhausted):
		return c.JSON(http.StatusAccepted, smsSendAccepted)
	case err != nil:
		return err
	}
	if err := s.smsChallengeAnswer(res); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, smsSendAccepted)
}

// handleAPIStepUpSMSSend is POST /step-up/sms/send (an extension of API
// v1, beside /step-up): texts a step-up code for this session to the
// member's verified phone. 202 when it was queued; 404 without a verified
// phone; the setup's refusals otherwise (smsSendRefusal).
func (s *Server) handleAPIStepUpSMSSend(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	res, err := s.sendSMSCode(c, t, a.User, db.SMSPurposeStepUp, "", a.binding())
	if errors.Is(err, db.ErrSMSCodesExhausted) {
		return errRateLimited(s.now().Add(db.SMSCodeTTL), s.now())
	} else if err != nil {
		return err
	}
	if err := s.smsSendRefusal(res); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"phone": res.Masked})
}
