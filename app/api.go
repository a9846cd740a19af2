package app

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/tenants"
)

var errInvalidJSON = errorf(http.StatusBadRequest, "invalid_request", "The body must be a JSON object with the documented fields.")

// decodeJSON reads a JSON object body into v. Only application/json is
// accepted: a cross-site form cannot send it without a CORS preflight,
// which is part of why the API needs no CSRF token.
func decodeJSON(c echo.Context, v any) error {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as application/json.")
	}
	dec := json.NewDecoder(c.Request().Body)
	if err := dec.Decode(v); err != nil {
		return errInvalidJSON
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errInvalidJSON
	}
	return nil
}

type apiLoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// handleAPILogin is POST /login: the password step.
func (s *Server) handleAPILogin(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	var req apiLoginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.checkPassword(c, t, req.Email, req.Password)
	if err != nil {
		return err
	}
	a, err := s.signIn(c, t, u, AAL1, "password")
	if err != nil {
		return err
	}
	token, err := s.commitToken(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"mfa_required": false, "session_token": token, "aal": a.AAL, "enrollment_deadline": nil,
	})
}

type apiAMR struct {
	Method      string `json:"method"`
	CompletedAt string `json:"completed_at"`
}

func amrJSON(amr []AMR) []apiAMR {
	out := make([]apiAMR, len(amr))
	for i, m := range amr {
		out[i] = apiAMR{Method: m.Method, CompletedAt: m.CompletedAt.UTC().Format(time.RFC3339)}
	}
	return out
}

// handleAPISession is GET /session.
func (s *Server) handleAPISession(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	return c.JSON(http.StatusOK, map[string]any{
		"user":       map[string]any{"id": a.User.ID, "email": a.User.Email, "role": a.User.Role},
		"workspace":  t.Slug,
		"aal":        a.AAL,
		"amr":        amrJSON(a.AMR),
		"expires_at": a.ExpiresAt.UTC().Format(time.RFC3339),
	})
}

// handleAPILogout is POST /logout.
func (s *Server) handleAPILogout(c echo.Context) error {
	if err := s.signOut(c, authFrom(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
