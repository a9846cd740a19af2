package app

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// The authorize endpoint sends the browser here (oidcClient.LoginURL):
// Gatehouse's own pages run the sign-in (password or passkey), the
// challenge, the enrollment interstitial, a step-up when the application
// asks for aal2 (acr_values), and consent for third-party applications;
// then the authorization completes and the browser goes to the callback,
// which issues the code. Each page comes back here with next.

var (
	errAuthorizationGone = errorf(http.StatusBadRequest, "authorization_gone",
		"This sign-in request has expired or was started in another browser. Go back to the application and sign in again.")
	errClientGone = errorf(http.StatusBadRequest, "invalid_client", "This application is no longer registered with the workspace.")
)

// keyOAuthRequest names, in the native flow's pending session (its
// mfa_token), the authorization the challenge completes.
const keyOAuthRequest = "oauth_request"

// acrOf is the acr claim for a session's assurance level.
func acrOf(aal string) string {
	if aal == AAL2 {
		return ACRAAL2
	}
	return ACRAAL1
}

// amrOf maps a session's methods to RFC 8176 values: pwd, otp (an
// authenticator app), hwk (a passkey or security key: a key held by an
// authenticator), and mfa when the session is aal2. A recovery code (a
// look-up secret) and a trusted browser have no RFC 8176 value of their
// own: they appear only through mfa (recovery code) or not at all.
func amrOf(aal string, methods []AMR) []string {
	var out []string
	add := func(v string) {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, m := range methods {
		switch m.Method {
		case "password":
			add("pwd")
		case "totp":
			add("otp")
		case "webauthn", "passkey":
			add("hwk")
		case "sms":
			add("sms")
		}
	}
	if aal == AAL2 {
		add("mfa")
	}
	return out
}

// wantsAAL2 reports whether the request asks for the second factor
// (acr_values, RFC 9470).
func wantsAAL2(req *oidc.AuthRequest) bool { return slices.Contains(req.ACRValues, ACRAAL2) }

// handleOAuthContinue is GET /oauth/continue?id=: the next step of a
// pending authorization in this browser.
func (s *Server) handleOAuthContinue(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	ar, err := s.browserAuthorization(c, t, c.QueryParam("id"))
	if err != nil {
		return err
	}
	return s.continueAuthorization(c, t, ar, false)
}

// handleOAuthConsent is POST /oauth/continue: the member's answer on the
// consent page.
func (s *Server) handleOAuthConsent(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	ar, err := s.browserAuthorization(c, t, c.FormValue("id"))
	if err != nil {
		return err
	}
	if c.FormValue("decision") != "allow" {
		return s.authorizeError(c, ar.req, oidc.ErrAccessDenied().WithDescription("the member did not allow access"))
	}
	a := authFrom(c)
	if err := s.store.GrantConsent(ctx, t.ID, a.User.ID, ar.row.ClientID, ar.req.Scopes, meta(c)); err != nil {
		return err
	}
	return s.continueAuthorization(c, t, ar, true)
}

// browserAuthorization loads a pending authorization of the workspace
// that belongs to this browser.
func (s *Server) browserAuthorization(c echo.Context, t *tenants.Tenant, id string) (*authRequest, error) {
	ctx := c.Request().Context()
	if len(id) > 64 {
		return nil, errAuthorizationGone
	}
	ar, err := s.loadAuthRequest(ctx, t, id)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errAuthorizationGone
	} else if err != nil {
		return nil, err
	}
	if !s.sameBrowser(withEcho(c), t, ar.row) || ar.Done() {
		return nil, errAuthorizationGone
	}
	return ar, nil
}

// continueAuthorization runs the checks in order and sends the browser to
// the first page still needed; when none is, it completes the
// authorization and goes to the callback. consented is set right after
// the member allowed the application on the consent page.
func (s *Server) continueAuthorization(c echo.Context, t *tenants.Tenant, ar *authRequest, consented bool) error {
	ctx := c.Request().Context()
	req := ar.req
	client, err := s.store.OAuthClientByClientID(ctx, t.ID, ar.row.ClientID)
	if errors.Is(err, db.ErrNotFound) {
		return errClientGone
	} else if err != nil {
		return err
	}
	none := slices.Contains(req.Prompt, oidc.PromptNone)
	here := t.Base + oidcContinuePath + "?id=" + url.QueryEscape(ar.row.ID)
	a := authFrom(c)

	// A session, recent enough: prompt=login and max_age ask for a
	// sign-in after the request (or within max_age).
	if a == nil || s.tooOld(a, ar) {
		if none {
			return s.authorizeError(c, req, oidc.ErrLoginRequired())
		}
		target := t.Base + "/login?next=" + urlQueryEscape(here) + "&app=" + urlQueryEscape(client.Name)
		if a != nil {
			target += "&reauth=1"
		}
		return c.Redirect(http.StatusSeeOther, target)
	}
	// A member past the enrollment deadline enrolls first.
	e, err := s.enforcement(ctx, t.ID, a.User)
	if err != nil {
		return err
	}
	if e.PastDeadline() {
		if none {
			return s.authorizeError(c, req, oidc.ErrInteractionRequired().WithDescription("the member must enroll a second factor"))
		}
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/enroll")
	}
	// The application asked for the second factor (RFC 9470 step-up).
	if wantsAAL2(req) && a.AAL != AAL2 {
		has, err := s.store.HasSecondFactor(ctx, t.ID, a.User.ID)
		if err != nil {
			return err
		}
		if !has {
			return s.authorizeError(c, req, &oidc.Error{ErrorType: "unmet_authentication_requirements",
				Description: "the member has no second factor enrolled"})
		}
		if none {
			return s.authorizeError(c, req, oidc.ErrInteractionRequired().WithDescription("a second factor is required"))
		}
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/verify?next="+urlQueryEscape(here))
	}
	// Third-party applications need the member's consent.
	if !client.FirstParty && !consented {
		granted, err := s.store.Consent(ctx, t.ID, a.User.ID, client.ClientID)
		if err != nil {
			return err
		}
		covered := !slices.ContainsFunc(req.Scopes, func(sc string) bool { return !slices.Contains(granted, sc) })
		if !covered || slices.Contains(req.Prompt, oidc.PromptConsent) {
			if none {
				return s.authorizeError(c, req, &oidc.Error{ErrorType: "consent_required", Description: "the member has not allowed this application"})
			}
			return s.renderConsent(c, client, ar, a)
		}
	}
	row := ar.row
	row.UserID, row.ACR, row.AMR, row.AuthTime, row.SessionID = a.User.ID, acrOf(a.AAL), amrOf(a.AAL, a.AMR), a.AuthTime, a.Session.ID
	err = s.store.CompleteAuthRequest(ctx, row, meta(c), map[string]any{"client_id": client.ClientID, "client": client.Name,
		"acr": row.ACR, "amr": row.AMR, "flow": "browser"})
	if errors.Is(err, db.ErrNotFound) {
		return errAuthorizationGone
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+oidcCallbackPath+"?id="+url.QueryEscape(row.ID))
}

// tooOld reports whether the session must sign in again for the request:
// prompt=login or max_age ask for an authentication more recent than the
// session's, and a sign-in after the request was made always satisfies.
func (s *Server) tooOld(a *Auth, ar *authRequest) bool {
	if !a.AuthTime.Before(ar.row.CreatedAt) {
		return false
	}
	if slices.Contains(ar.req.Prompt, oidc.PromptLogin) {
		return true
	}
	if ar.req.MaxAge != nil {
		return s.now().Sub(a.AuthTime) > time.Duration(*ar.req.MaxAge)*time.Second
	}
	return false
}

// scopeDescriptions say what each scope lets an application see.
var scopeDescriptions = map[string]string{
	oidc.ScopeOpenID:        "Confirm who you are in this workspace",
	oidc.ScopeEmail:         "See your email address",
	oidc.ScopeProfile:       "See your profile (your email as user name)",
	oidc.ScopeOfflineAccess: "Stay signed in while you are away (until your session limit)",
}

func (s *Server) renderConsent(c echo.Context, client db.OAuthClient, ar *authRequest, a *Auth) error {
	v := views.ConsentView{ID: ar.row.ID, App: client.Name, Email: a.User.Email}
	if u, err := url.Parse(ar.req.RedirectURI); err == nil {
		v.Host = u.Host
	}
	for _, sc := range ar.req.Scopes {
		if d, ok := scopeDescriptions[sc]; ok {
			v.Scopes = append(v.Scopes, d)
		}
	}
	return s.render(c, http.StatusOK, views.ConsentPage(s.page(c, "Allow "+client.Name+"?"), v))
}

// The native JSON flow (API.md): a first-party application that draws its
// own sign-in form posts the member's email and password with the
// authorization request; a member with a second factor gets an mfa_token
// that completes that authorization only.

type nativeAuthorizeRequest struct {
	ClientID            string `json:"client_id"`
	RedirectURI         string `json:"redirect_uri"`
	Scope               string `json:"scope"`
	State               string `json:"state"`
	Nonce               string `json:"nonce"`
	CodeChallenge       string `json:"code_challenge"`
	CodeChallengeMethod string `json:"code_challenge_method"`
	Email               string `json:"email"`
	Password            string `json:"password"`
}

// handleOAuthAuthorizePost is POST /oauth/authorize: a JSON body is the
// native flow; a form is the standard authorization request (OpenID
// Connect Core §3.1.2.1), handled by the provider.
func (s *Server) handleOAuthAuthorizePost(c echo.Context) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), echo.MIMEApplicationJSON) {
		return s.handleOIDC(c)
	}
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	var in nativeAuthorizeRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	client, err := s.store.OAuthClientByClientID(ctx, t.ID, in.ClientID)
	if errors.Is(err, db.ErrNotFound) {
		return errorf(http.StatusBadRequest, "invalid_client", "Unknown client.")
	} else if err != nil {
		return err
	}
	if !client.FirstParty {
		return errorf(http.StatusBadRequest, "unauthorized_client", "Only first-party applications may send a member's password.")
	}
	if !slices.Contains(client.RedirectURIs, in.RedirectURI) {
		return errorf(http.StatusBadRequest, "invalid_request", "redirect_uri is not registered for this client.")
	}
	if in.CodeChallenge == "" || in.CodeChallengeMethod != string(oidc.CodeChallengeMethodS256) {
		return errorf(http.StatusBadRequest, "invalid_request", "PKCE is required: send code_challenge with code_challenge_method S256.")
	}
	var scopes []string
	for _, sc := range strings.Fields(in.Scope) {
		if slices.Contains(client.Scopes, sc) && !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		return errorf(http.StatusBadRequest, "invalid_scope", "None of the requested scopes is allowed for this client.")
	}
	u, err := s.checkPassword(c, t, in.Email, in.Password)
	if err != nil {
		return err
	}
	e, err := s.enforcement(ctx, t.ID, u)
	if err != nil {
		return err
	}
	mfaOn, err := s.store.HasSecondFactor(ctx, t.ID, u.ID)
	if err != nil {
		return err
	}
	if e.PastDeadline() && !mfaOn {
		return errEnrollmentRequired
	}
	req := &oidc.AuthRequest{Scopes: scopes, ResponseType: oidc.ResponseTypeCode, ClientID: client.ClientID, RedirectURI: in.RedirectURI,
		State: in.State, Nonce: in.Nonce, CodeChallenge: in.CodeChallenge, CodeChallengeMethod: oidc.CodeChallengeMethodS256}
	binding := "native:" + s.keys.HashToken(purposeOAuthBrowser, in.CodeChallenge)
	ar, err := s.createAuthRequest(ctx, t, req, binding)
	if err != nil {
		return err
	}
	if !mfaOn {
		now := s.now()
		return s.completeNative(c, t, client, ar, u, AAL1, []AMR{{Method: "password", CompletedAt: now}}, now, -1)
	}
	// The mfa_token is a pending session that holds the challenge and
	// the authorization it completes: no session, no authorization.
	if _, err := s.startChallenge(c, t, u); err != nil {
		return err
	}
	s.sessions.Put(ctx, keyOAuthRequest, ar.row.ID)
	token, err := s.commitToken(c)
	if err != nil {
		return err
	}
	methods, err := s.methods(c, u)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"mfa_required": true, "mfa_token": token, "methods": methods})
}

type nativeMFARequest struct {
	MFAToken   string `json:"mfa_token"`
	Code       string `json:"code"`
	BackupCode string `json:"backup_code"`
	SMSCode    string `json:"sms_code"`
}

// handleOAuthAuthorizeMFA is POST /oauth/authorize/mfa: the second factor
// of the native flow.
func (s *Server) handleOAuthAuthorizeMFA(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	var in nativeMFARequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ch, u, cancel, err := s.loadMFAToken(c, t, in.MFAToken, true)
	if err != nil {
		return err
	}
	defer cancel()
	ctx := c.Request().Context()
	ar, err := s.loadAuthRequest(ctx, t, s.sessions.GetString(ctx, keyOAuthRequest))
	if errors.Is(err, db.ErrNotFound) {
		return errInvalidMFAToken
	} else if err != nil {
		return err
	}
	client, err := s.store.OAuthClientByClientID(ctx, t.ID, ar.row.ClientID)
	if errors.Is(err, db.ErrNotFound) {
		return errorf(http.StatusBadRequest, "invalid_client", "Unknown client.")
	} else if err != nil {
		return err
	}
	a, remaining, err := s.signInFactor(c, t, u, ch, factorInput{Code: in.Code, RecoveryCode: in.BackupCode, SMSCode: in.SMSCode})
	if err != nil {
		return err
	}
	// The challenge is spent in the same transaction that opened a
	// session; the application gets a code, not that session: it ends
	// now.
	if err := s.store.EndUserSession(ctx, t.ID, u.ID, a.Session.ID, "oauth_native", meta(c)); err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	if err := s.sessions.Destroy(ctx); err != nil {
		return err
	}
	c.Set("auth", nil)
	return s.completeNative(c, t, client, ar, u, a.AAL, a.AMR, a.AuthTime, remaining)
}

// completeNative completes a native authorization and answers with the
// redirect carrying the code (JSON with Accept: application/json).
func (s *Server) completeNative(c echo.Context, t *tenants.Tenant, client db.OAuthClient, ar *authRequest, u db.User, aal string, methods []AMR, authTime time.Time, remaining int) error {
	ctx := withEcho(c)
	row := ar.row
	row.UserID, row.ACR, row.AMR, row.AuthTime = u.ID, acrOf(aal), amrOf(aal, methods), authTime
	if err := s.store.CompleteAuthRequest(ctx, row, meta(c), map[string]any{"client_id": client.ClientID, "client": client.Name,
		"acr": row.ACR, "amr": row.AMR, "flow": "native"}); errors.Is(err, db.ErrNotFound) {
		return errInvalidMFAToken
	} else if err != nil {
		return err
	}
	row.DoneAt = s.now()
	done, err := s.authRequestFromRow(ctx, row)
	if err != nil {
		return err
	}
	code, err := op.CreateAuthRequestCode(ctx, done, s.oidc.Storage(), s.oidc.Crypto())
	if err != nil {
		return err
	}
	to, err := op.AuthResponseURL(done.GetRedirectURI(), oidc.ResponseTypeCode, "", &op.CodeResponseType{Code: code, State: done.GetState()}, s.oidc.Encoder())
	if err != nil {
		return err
	}
	if strings.Contains(c.Request().Header.Get(echo.HeaderAccept), echo.MIMEApplicationJSON) {
		body := map[string]any{"redirect_to": to}
		if remaining >= 0 {
			body["remaining_codes"] = remaining
		}
		return c.JSON(http.StatusOK, body)
	}
	return c.Redirect(http.StatusFound, to)
}

// flowFormAction lets the forms of a page that is a step of a pending
// authorization (the sign-in, the challenge or the step-up with next at
// /oauth/continue, and the consent page) end at the application's
// redirect URI. Browsers check form-action on every redirect that follows
// a form submission, and the last redirect of the flow goes to the
// application: with form-action 'self' alone, Chromium blocks the sign-in
// at its very end. Only that authorization's registered redirect URI is
// added; every other page, and any failed lookup, keeps 'self' alone.
func (s *Server) flowFormAction(c echo.Context) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	if t == nil {
		return
	}
	var id string
	if c.Path() == "/t/:slug"+oidcContinuePath {
		id = c.FormValue("id")
	} else if next := c.FormValue("next"); next != "" {
		u, err := url.Parse(next)
		if err != nil || u.Path != t.Base+oidcContinuePath {
			return
		}
		id = u.Query().Get("id")
	}
	if id == "" || len(id) > 64 {
		return
	}
	ar, err := s.loadAuthRequest(ctx, t, id)
	if err != nil {
		return
	}
	if src := cspSource(ar.req.RedirectURI); src != "" {
		c.Response().Header().Set("Content-Security-Policy",
			strings.Replace(contentSecurityPolicy, "form-action 'self'", "form-action 'self' "+src, 1))
	}
}

// cspSource is the CSP source expression of a redirect URI: its origin for
// http(s), its scheme for a native application's own scheme (RFC 8252
// §7.1); "" when it cannot be written safely.
func cspSource(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "http" || scheme == "https" {
		if u.Host == "" || strings.ContainsAny(u.Host, " ;,'\"") {
			return ""
		}
		return scheme + "://" + u.Host
	}
	return scheme + ":"
}
