package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
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
	if err := decodeObject(dec, v, false); err != nil {
		return errInvalidJSON
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errInvalidJSON
	}
	return nil
}

// errNotObject is a body that is valid JSON but not an object.
var errNotObject = errors.New("not a JSON object")

// decodeObject decodes the next value of dec into v if it is an object
// (encoding/json alone reads null into a struct as if it were {}); strict
// refuses unknown fields.
func decodeObject(dec *json.Decoder, v any, strict bool) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if len(raw) == 0 || raw[0] != '{' {
		return errNotObject
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	if strict {
		d.DisallowUnknownFields()
	}
	return d.Decode(v)
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
	ctx := c.Request().Context()
	e, err := s.enforcement(ctx, t.ID, u)
	if err != nil {
		return err
	}
	// Past the deadline, a member without any second factor gets no
	// session from the API: enrollment needs the emailed link (pages).
	if e.PastDeadline() {
		mfaOn, err := s.store.HasSecondFactor(ctx, t.ID, u.ID)
		if err != nil {
			return err
		}
		if !mfaOn {
			return errEnrollmentRequired
		}
	}
	challenged, err := s.afterPassword(c, t, u)
	if err != nil {
		return err
	}
	// With a challenge, the token is that of a session that holds only the
	// challenge: the mfa_token, never a session anywhere else.
	token, err := s.commitToken(c)
	if err != nil {
		return err
	}
	if challenged {
		methods, err := s.methods(c, u)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"mfa_required": true, "mfa_token": token, "methods": methods})
	}
	var deadline any
	if e.InGrace() {
		deadline = rfc3339(e.Deadline)
	}
	return c.JSON(http.StatusOK, map[string]any{
		"mfa_required": false, "session_token": token, "aal": AAL1, "enrollment_deadline": deadline,
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

// loadMFAToken loads the pending session an mfa_token names (it arrives in
// the body, not the Authorization header) into the request, and returns its
// open challenge; errInvalidMFAToken for anything else.
//
// An mfa_token serves one purpose: the API's sign-in (authorization false)
// or one authorization of the native OpenID flow (true, oidc_flow.go). A
// token of the other purpose is invalid here: the native flow's token never
// becomes a session.
func (s *Server) loadMFAToken(c echo.Context, t *tenants.Tenant, token string, authorization bool) (db.Challenge, db.User, context.CancelFunc, error) {
	if !wellFormedToken(token) {
		return db.Challenge{}, db.User{}, nil, errInvalidMFAToken
	}
	// A context of its own (scs keeps the request's cookie session in
	// the request's), in the request's write transaction if it has one.
	ctx, err := s.sessions.Load(db.Carry(c.Request().Context(), context.Background()), token)
	if err != nil {
		return db.Challenge{}, db.User{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c.SetRequest(c.Request().WithContext(tenants.NewContext(ctx, t)))
	if (s.sessions.GetString(ctx, keyOAuthRequest) != "") != authorization {
		cancel()
		return db.Challenge{}, db.User{}, nil, errInvalidMFAToken
	}
	ch, u, err := s.openChallenge(ctx, t)
	if errors.Is(err, db.ErrChallengeGone) {
		cancel()
		return db.Challenge{}, db.User{}, nil, errInvalidMFAToken
	} else if err != nil {
		cancel()
		return db.Challenge{}, db.User{}, nil, err
	}
	return ch, u, cancel, nil
}

type apiMFARequest struct {
	MFAToken     string `json:"mfa_token"`
	Code         string `json:"code"`
	RecoveryCode string `json:"recovery_code"`
	SMSCode      string `json:"sms_code"`
}

// handleAPILoginMFA is POST /login/mfa: the second step, with the mfa_token
// from POST /login.
func (s *Server) handleAPILoginMFA(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	var req apiMFARequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var body map[string]any
	err := s.inOneWrite(c, func() error {
		ch, u, cancel, err := s.loadMFAToken(c, t, req.MFAToken, false)
		if err != nil {
			return err
		}
		defer cancel()
		a, remaining, err := s.signInFactor(c, t, u, ch, factorInput{Code: req.Code, RecoveryCode: req.RecoveryCode, SMSCode: req.SMSCode})
		if err != nil {
			return err
		}
		token, err := s.commitToken(c)
		if err != nil {
			return err
		}
		body = map[string]any{"session_token": token, "aal": a.AAL, "amr": amrJSON(a.AMR)}
		if remaining >= 0 {
			body["remaining_recovery_codes"] = remaining
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, body)
}
