package app

import (
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/tenants"
)

type apiCodeRequest struct {
	Code         string `json:"code"`
	RecoveryCode string `json:"recovery_code"`
	SMSCode      string `json:"sms_code"`
}

// handleAPITOTPSetup is POST /mfa/totp/setup.
func (s *Server) handleAPITOTPSetup(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	if _, err := s.store.TOTPCredential(c.Request().Context(), t.ID, a.User.ID); err == nil {
		return errAlreadyEnrolled
	}
	secret, err := s.startTOTPEnrollment(c, a)
	if err != nil {
		return err
	}
	uri := mfa.URI(t.Name, a.User.Email, secret)
	png, err := mfa.QRCode(uri)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"secret": secret, "otpauth_uri": uri, "qr_code": "data:image/png;base64," + base64.StdEncoding.EncodeToString(png),
	})
}

// handleAPITOTPVerifySetup is POST /mfa/totp/verify-setup.
func (s *Server) handleAPITOTPVerifySetup(c echo.Context) error {
	var req apiCodeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	codes, err := s.confirmTOTP(c, authFrom(c), req.Code)
	if err != nil {
		return err
	}
	return s.factorEnabled(c, codes)
}

// factorEnabled answers a confirmed enrollment (an authenticator app, a
// phone): the recovery codes of a first factor, and the session's new
// token, since the session is now aal2 and the old token is dead.
func (s *Server) factorEnabled(c echo.Context, codes []string) error {
	body := map[string]any{"enabled": true}
	if codes != nil {
		body["recovery_codes"] = codes
	}
	var err error
	if body["session_token"], err = s.commitToken(c); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, body)
}

// handleAPITOTPDelete is DELETE /mfa/totp.
func (s *Server) handleAPITOTPDelete(c echo.Context) error {
	var req apiCodeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	a := authFrom(c)
	err := s.removeTOTP(c, a, req.Code)
	var e *Error
	if errors.As(err, &e) && e.Code == "invalid_code" {
		return &Error{Status: http.StatusBadRequest, Code: e.Code, Message: e.Message}
	} else if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handleAPIRecoveryCodes is POST /mfa/recovery-codes.
func (s *Server) handleAPIRecoveryCodes(c echo.Context) error {
	a := authFrom(c)
	codes, err := s.regenerateRecoveryCodes(c, a)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"recovery_codes": codes})
}

type apiFactor struct {
	Type       string  `json:"type"`
	ID         int64   `json:"id"`
	Name       string  `json:"name"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
	// Synced tells a synced passkey (true) from a device-bound key; keys only.
	Synced *bool `json:"synced,omitempty"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// handleAPIMFA is GET /mfa.
func (s *Server) handleAPIMFA(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	factors, err := s.memberFactors(ctx, t.ID, a.User.ID)
	if err != nil {
		return err
	}
	left, err := s.store.RecoveryCodesRemaining(ctx, t.ID, a.User.ID)
	if err != nil {
		return err
	}
	e, err := s.enforcement(ctx, t.ID, a.User)
	if err != nil {
		return err
	}
	var deadline any
	if e.Pending() {
		deadline = rfc3339(e.Deadline)
	}
	trusted, err := s.apiTrustedDevices(c, t.ID, a.User.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"factors": factors, "recovery_codes_remaining": left, "policy": e.Policy.Mode, "deadline": deadline,
		"trusted_devices": trusted,
	})
}

// handleAPIStepUp is POST /step-up (an extension of API v1): re-verify with
// a second factor. The session token is rotated; the new one is returned.
func (s *Server) handleAPIStepUp(c echo.Context) error {
	var req apiCodeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	a := authFrom(c)
	if err := s.stepUp(c, a, factorInput{Code: req.Code, RecoveryCode: req.RecoveryCode, SMSCode: req.SMSCode}); err != nil {
		return err
	}
	token, err := s.commitToken(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"session_token": token, "aal": a.AAL, "amr": amrJSON(a.AMR)})
}
