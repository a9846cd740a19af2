package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"
	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// Every workspace is an OpenID Connect provider (docs/OIDC.md). The
// protocol is zitadel/oidc's op package, one provider for all workspaces:
// the issuer, the clients, the keys and the tokens come from the request's
// workspace (tenant), so nothing of workspace A is known at B. Gatehouse
// writes the storage (this file), the sign-in pages the authorize endpoint
// sends the browser to (oidc_flow.go) and the rules.

// Assurance values of the ID token's acr claim.
const (
	ACRAAL1 = "urn:gatehouse:aal1"
	ACRAAL2 = "urn:gatehouse:aal2"
)

// Lifetimes of what the provider hands out.
const (
	AccessTokenLifetime = 15 * time.Minute
	IDTokenLifetime     = 15 * time.Minute
	// authRequestLifetime bounds a pending authorization: the sign-in,
	// the second factor and an enrollment interstitial fit in it.
	authRequestLifetime = 30 * time.Minute
	// signingKeyCache is how long a node keeps a workspace's keys before
	// reading them again (a rotation on another node shows within it).
	signingKeyCache = time.Minute
)

// Endpoint paths under the issuer. Discovery lists them; clients follow
// discovery.
const (
	oidcAuthorizePath  = "/oauth/authorize"
	oidcCallbackPath   = "/oauth/authorize/callback"
	oidcTokenPath      = "/oauth/token"
	oidcUserinfoPath   = "/oauth/userinfo"
	oidcIntrospectPath = "/oauth/introspect"
	oidcRevokePath     = "/oauth/revoke"
	oidcLogoutPath     = "/oauth/logout"
	oidcJWKSPath       = "/oauth/jwks"
	oidcDiscoveryPath  = "/.well-known/openid-configuration"
	oidcContinuePath   = "/oauth/continue"
)

// Purposes of keyed hashes.
const (
	purposeOAuthBrowser = "oauth_browser"
	purposeOAuthCode    = "oauth_code"
	purposeOAuthRefresh = "oauth_refresh"
	purposeClientSecret = "oauth_client_secret"
)

// oidcScopes are the scopes a client may be allowed.
var oidcScopes = []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeProfile, oidc.ScopeOfflineAccess}

type echoCtxKey struct{}

// echoFrom returns the Echo context of the request a provider call runs
// in (cookies, client IP, logger).
func echoFrom(ctx context.Context) echo.Context {
	c, _ := ctx.Value(echoCtxKey{}).(echo.Context)
	return c
}

// withEcho returns the request's context carrying the Echo context, as
// the provider's calls see it.
func withEcho(c echo.Context) context.Context {
	return context.WithValue(c.Request().Context(), echoCtxKey{}, c)
}

// newProvider builds the OpenID provider.
func (s *Server) newProvider() (*op.Provider, error) {
	cfg := &op.Config{
		CryptoKey:             [32]byte(s.keys.Derive("oidc access tokens")),
		CryptoKeyId:           "gh1",
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedScopes:       oidcScopes,
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "at_hash", "c_hash",
			"azp", "email", "email_verified"},
	}
	opts := []op.Option{
		op.WithCustomAuthEndpoint(op.NewEndpoint(strings.TrimPrefix(oidcAuthorizePath, "/"))),
		op.WithCustomTokenEndpoint(op.NewEndpoint(strings.TrimPrefix(oidcTokenPath, "/"))),
		op.WithCustomUserinfoEndpoint(op.NewEndpoint(strings.TrimPrefix(oidcUserinfoPath, "/"))),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint(strings.TrimPrefix(oidcIntrospectPath, "/"))),
		op.WithCustomRevocationEndpoint(op.NewEndpoint(strings.TrimPrefix(oidcRevokePath, "/"))),
		op.WithCustomEndSessionEndpoint(op.NewEndpoint(strings.TrimPrefix(oidcLogoutPath, "/"))),
		op.WithCustomKeysEndpoint(op.NewEndpoint(strings.TrimPrefix(oidcJWKSPath, "/"))),
		// Browsers' applications (SPAs) call the token, userinfo,
		// revocation endpoints and discovery cross-origin; none of them
		// reads a cookie, so no credentials are allowed.
		op.WithCORSOptions(&cors.Options{
			AllowedOrigins: []string{"*"},
			AllowedMethods: []string{http.MethodGet, http.MethodPost},
			AllowedHeaders: []string{"Authorization", "Content-Type", "Accept"},
			MaxAge:         600,
		}),
	}
	if s.cfg.BaseURL.Scheme != "https" {
		opts = append(opts, op.WithAllowInsecure())
	}
	issuer := func(bool) (op.IssuerFromRequest, error) {
		return func(r *http.Request) string { return s.issuer(tenants.FromContext(r.Context())) }, nil
	}
	return op.NewProvider(cfg, &oidcStorage{s: s}, issuer, opts...)
}

// issuer is the workspace's issuer identifier: {base URL}/t/{slug}, or
// the workspace's own host when the request came to it.
func (s *Server) issuer(t *tenants.Tenant) string {
	if t == nil {
		return ""
	}
	if t.OnHost && s.cfg.BaseDomain != "" {
		u := *s.cfg.BaseURL
		u.Host = t.Slug + "." + s.cfg.BaseDomain
		if p := s.cfg.BaseURL.Port(); p != "" {
			u.Host += ":" + p
		}
		u.Path, u.RawQuery = "", ""
		return strings.TrimRight(u.String(), "/")
	}
	return workspaceURL(s.cfg.BaseURL, t.Slug, "")
}

// handleOIDC hands a protocol request to the provider, with the path
// relative to the issuer.
func (s *Server) handleOIDC(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	r := c.Request().WithContext(withEcho(c))
	u := *r.URL
	u.Path = strings.TrimPrefix(u.Path, "/t/"+t.Slug)
	u.RawPath = ""
	r.URL = &u
	// The provider answers with its own JSON and redirects; our strict
	// headers stay (securityHeaders), and a browser never caches them.
	s.oidc.ServeHTTP(c.Response(), r)
	return nil
}

// handleDiscovery serves the provider's metadata: op's, corrected to what
// Gatehouse offers (the authorization code flow only, no device flow) and
// completed with the assurance values (acr_values_supported).
func (s *Server) handleDiscovery(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	ctx := op.ContextWithIssuer(withEcho(c), s.issuer(t))
	d := op.CreateDiscoveryConfig(ctx, s.oidc, s.oidc.Storage())
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery)}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	d.DeviceAuthorizationEndpoint, d.CheckSessionIframe = "", ""
	d.ACRValuesSupported = []string{ACRAAL1, ACRAAL2}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	c.Response().Header().Set("Access-Control-Allow-Origin", "*")
	return c.JSON(http.StatusOK, d)
}

// oidcStorage is op's storage over the Gatehouse store. Every method reads
// the workspace from the request (tenants.FromContext): a client, a code
// or a token of another workspace is unknown here.
type oidcStorage struct{ s *Server }

var _ op.Storage = (*oidcStorage)(nil)

func tenantOf(ctx context.Context) (*tenants.Tenant, error) {
	t := tenants.FromContext(ctx)
	if t == nil {
		return nil, errors.New("oidc: no workspace in request")
	}
	return t, nil
}

func metaOf(ctx context.Context) db.Meta {
	if c := echoFrom(ctx); c != nil {
		return meta(c)
	}
	return db.Meta{}
}

// browserBinding returns the keyed hash of the browser's authorization
// cookie, setting a new cookie when there is none: a pending authorization
// belongs to the browser that started it.
func (s *Server) browserBinding(ctx context.Context, t *tenants.Tenant, create bool) (string, error) {
	c := echoFrom(ctx)
	if c == nil {
		return "", errors.New("oidc: no request")
	}
	name := s.cookieName(cookieOAuth, t.Slug)
	if ck, err := c.Cookie(name); err == nil && wellFormedToken(ck.Value) {
		return s.keys.HashToken(purposeOAuthBrowser, ck.Value), nil
	}
	if !create {
		return "", nil
	}
	v := auth.NewToken()
	c.SetCookie(&http.Cookie{Name: name, Value: v, Path: "/", HttpOnly: true, Secure: s.cfg.SecureCookies(), SameSite: http.SameSiteLaxMode})
	c.Request().AddCookie(&http.Cookie{Name: name, Value: v})
	return s.keys.HashToken(purposeOAuthBrowser, v), nil
}

// sameBrowser reports, in constant time, whether the request's browser is
// the one a pending authorization belongs to.
func (s *Server) sameBrowser(ctx context.Context, t *tenants.Tenant, r db.AuthRequest) bool {
	h, err := s.browserBinding(ctx, t, false)
	return err == nil && h != "" && subtle.ConstantTimeCompare([]byte(h), []byte(r.BrowserHash)) == 1
}

func (st *oidcStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	// PKCE with S256 for every client, public or confidential (OAuth 2.1,
	// RFC 9700 §2.1.1): plain and missing challenges are refused before
	// anything is stored.
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required: send code_challenge with code_challenge_method=S256")
	}
	if req.ResponseMode != "" && req.ResponseMode != oidc.ResponseModeQuery {
		return nil, oidc.ErrInvalidRequest().WithDescription("response_mode must be query")
	}
	for _, p := range req.Prompt {
		if !slices.Contains([]string{oidc.PromptNone, oidc.PromptLogin, oidc.PromptConsent}, p) {
			return nil, oidc.ErrInvalidRequest().WithDescription("unsupported prompt value %q", p)
		}
	}
	// op keeps the standard scopes for every client; a client gets only
	// those its admin allowed.
	client, err := st.s.store.OAuthClientByClientID(ctx, t.ID, req.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithParent(err)
	}
	req.Scopes = slices.DeleteFunc(slices.Clone(req.Scopes), func(sc string) bool { return !slices.Contains(client.Scopes, sc) })
	if len(req.Scopes) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("none of the requested scopes is allowed for this client")
	}
	browser, err := st.s.browserBinding(ctx, t, true)
	if err != nil {
		return nil, err
	}
	return st.s.createAuthRequest(ctx, t, req, browser)
}

// createAuthRequest stores a validated authorization request bound to
// binding (the browser's cookie hash, or the native flow's).
func (s *Server) createAuthRequest(ctx context.Context, t *tenants.Tenant, req *oidc.AuthRequest, binding string) (*authRequest, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	now := s.now()
	row := db.AuthRequest{ID: auth.NewID(), WorkspaceID: t.ID, ClientID: req.ClientID, Request: raw, BrowserHash: binding,
		CreatedAt: now, ExpiresAt: now.Add(authRequestLifetime)}
	if err := s.store.CreateAuthRequest(ctx, row); err != nil {
		return nil, err
	}
	return &authRequest{row: row, req: req}, nil
}

func (st *oidcStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	ar, err := st.s.loadAuthRequest(ctx, t, id)
	if err != nil {
		return nil, err
	}
	// The callback completes only in the browser that asked.
	if !st.s.sameBrowser(ctx, t, ar.row) {
		return nil, oidc.ErrInvalidRequest().WithDescription("this authorization belongs to another browser")
	}
	return ar, nil
}

// loadAuthRequest loads a live pending authorization of the workspace with
// its member's subject.
func (s *Server) loadAuthRequest(ctx context.Context, t *tenants.Tenant, id string) (*authRequest, error) {
	row, err := s.store.AuthRequestByID(ctx, t.ID, id)
	if err != nil {
		return nil, err
	}
	return s.authRequestFromRow(ctx, row)
}

func (s *Server) authRequestFromRow(ctx context.Context, row db.AuthRequest) (*authRequest, error) {
	ar := &authRequest{row: row, req: new(oidc.AuthRequest)}
	if err := json.Unmarshal(row.Request, ar.req); err != nil {
		return nil, err
	}
	if row.UserID != 0 {
		sub, err := s.store.MemberSubject(ctx, row.WorkspaceID, row.UserID)
		if err != nil {
			return nil, err
		}
		ar.subject = sub
	}
	return ar, nil
}

func (st *oidcStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	row, err := st.s.store.AuthRequestByCode(ctx, t.ID, st.s.codeHash(code))
	if err != nil {
		return nil, err
	}
	return st.s.authRequestFromRow(ctx, row)
}

// storedHash is the form in which an authorization code or a refresh
// token is stored and looked up: SHA-256 under its purpose. Both are
// unguessable (a refresh token is 256 random bits, a code op's encrypted
// request id), so a plain hash is enough to make a copy of the database
// worthless, and it does not change with the master key.
func storedHash(purpose, token string) string {
	h := sha256.Sum256([]byte(purpose + "\x00" + token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (s *Server) codeHash(code string) string { return storedHash(purposeOAuthCode, code) }

func (s *Server) refreshHash(token string) string { return storedHash(purposeOAuthRefresh, token) }

func (st *oidcStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	t, err := tenantOf(ctx)
	if err != nil {
		return err
	}
	return st.s.store.SaveAuthCode(ctx, t.ID, id, st.s.codeHash(code))
}

// DeleteAuthRequest is called once the code was exchanged. The row stays
// (code_used_at) until it expires: a second use of the code must find it
// to revoke what the first issued.
func (st *oidcStorage) DeleteAuthRequest(context.Context, string) error { return nil }

// grantOf turns what op asks tokens for into a token row.
func (s *Server) grantOf(ctx context.Context, t *tenants.Tenant, req op.TokenRequest) (db.OAuthToken, error) {
	now := s.now()
	tok := db.OAuthToken{ID: auth.NewID(), WorkspaceID: t.ID, Scopes: req.GetScopes(), Audience: req.GetAudience(),
		CreatedAt: now, ExpiresAt: now.Add(AccessTokenLifetime)}
	switch r := req.(type) {
	case *authRequest:
		tok.FamilyID, tok.AuthRequestID, tok.ClientID, tok.UserID = auth.NewID(), r.row.ID, r.row.ClientID, r.row.UserID
		tok.AMR, tok.ACR, tok.AuthTime = r.row.AMR, r.row.ACR, r.row.AuthTime
	case *refreshRequest:
		g := r.grant
		tok.FamilyID, tok.AuthRequestID, tok.ClientID, tok.UserID = g.FamilyID, g.AuthRequestID, g.ClientID, g.UserID
		tok.AMR, tok.ACR, tok.AuthTime = g.AMR, g.ACR, g.AuthTime
		tok.Scopes = r.scopes
	default:
		return db.OAuthToken{}, oidc.ErrUnsupportedGrantType()
	}
	return tok, nil
}

func (st *oidcStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := st.s.grantOf(ctx, t, req)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := st.s.store.IssueOAuthTokens(ctx, tok, nil, "", "authorization_code", metaOf(ctx)); err != nil {
		return "", time.Time{}, invalidGrant(err)
	}
	return tok.ID, tok.ExpiresAt, nil
}

func (st *oidcStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return "", "", time.Time{}, err
	}
	s := st.s
	tok, err := s.grantOf(ctx, t, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	refresh := tok
	refresh.ID = auth.NewID()
	// A refresh token lives no longer than the workspace's absolute
	// session limit from the sign-in it carries (NIST SP 800-63B
	// reauthentication): after that the application signs the member in
	// again.
	refresh.ExpiresAt = tok.AuthTime.Add(min(t.SessionAbsolute, MaxSessionAbsolute))
	if !refresh.ExpiresAt.After(s.now()) {
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the sign-in is too old; sign in again")
	}
	raw := auth.NewToken()
	refresh.TokenHash = s.refreshHash(raw)
	grant, rotate := "authorization_code", ""
	if current != "" {
		grant, rotate = "refresh_token", s.refreshHash(current)
	}
	if err := s.store.IssueOAuthTokens(ctx, tok, &refresh, rotate, grant, metaOf(ctx)); err != nil {
		return "", "", time.Time{}, invalidGrant(err)
	}
	return tok.ID, raw, tok.ExpiresAt, nil
}

// invalidGrant maps the store's refusals to invalid_grant.
func invalidGrant(err error) error {
	if errors.Is(err, db.ErrNotFound) || errors.Is(err, db.ErrRefreshReused) || errors.Is(err, db.ErrCodeReused) {
		return oidc.ErrInvalidGrant().WithParent(err)
	}
	return err
}

func (st *oidcStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	g, err := st.s.store.RefreshToken(ctx, t.ID, st.s.refreshHash(token), metaOf(ctx))
	if err != nil {
		return nil, invalidGrant(err)
	}
	sub, err := st.s.store.MemberSubject(ctx, t.ID, g.UserID)
	if err != nil {
		return nil, invalidGrant(err)
	}
	return &refreshRequest{grant: g, subject: sub, scopes: g.Scopes}, nil
}

// TerminateSession is not called: TerminateSessionFromRequest is.
func (st *oidcStorage) TerminateSession(context.Context, string, string) error { return nil }

// TerminateSessionFromRequest is RP-initiated logout: the browser's
// session at the workspace ends (when it is the member the id_token_hint
// names, or there is no hint), and the member's tokens for that
// application are revoked.
func (st *oidcStorage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return "", err
	}
	s := st.s
	c := echoFrom(ctx)
	done := t.Base + "/login?notice=signed_out"
	if req.RedirectURI != "" {
		done = req.RedirectURI
	}
	a := authFrom(c)
	var hinted db.User
	if req.UserID != "" {
		if hinted, err = s.store.MemberBySubject(ctx, t.ID, req.UserID); err != nil && !errors.Is(err, db.ErrNotFound) {
			return "", err
		}
	}
	if hinted.ID != 0 && req.ClientID != "" {
		if err := s.store.RevokeMemberOAuth(ctx, t.ID, hinted.ID, req.ClientID, "logout", metaOf(ctx)); err != nil {
			return "", err
		}
	}
	if a != nil && (hinted.ID == 0 || hinted.ID == a.User.ID) {
		if err := s.signOut(c, a); err != nil {
			return "", err
		}
	}
	return done, nil
}

// refreshRef marks the refresh token ids GetRefreshTokenInfo hands to
// op, so that RevokeToken tells them from access token ids.
const refreshRef = "rt:"

// RevokeToken revokes what op found: a refresh token (refreshRef and its
// row id, from GetRefreshTokenInfo) with its whole grant, or an access
// token (its id, with the subject). A token the client does not own, or
// nobody issued, is no error (RFC 7009 §2.2).
func (st *oidcStorage) RevokeToken(ctx context.Context, token, userID, clientID string) *oidc.Error {
	t, err := tenantOf(ctx)
	if err != nil {
		return oidc.ErrServerError()
	}
	s := st.s
	switch {
	case strings.HasPrefix(token, refreshRef):
		err = s.store.RevokeRefreshToken(ctx, t.ID, strings.TrimPrefix(token, refreshRef), clientID, metaOf(ctx))
	case userID != "":
		err = s.store.RevokeAccessToken(ctx, t.ID, token, clientID, metaOf(ctx))
	}
	if err != nil {
		s.log.Error("revoke token", slog.Any("err", err))
		return oidc.ErrServerError()
	}
	return nil
}

func (st *oidcStorage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return "", "", err
	}
	userID, id, err := st.s.store.RefreshTokenOwner(ctx, t.ID, st.s.refreshHash(token), clientID)
	if err != nil {
		return "", "", op.ErrInvalidRefreshToken
	}
	sub, err := st.s.store.MemberSubject(ctx, t.ID, userID)
	if err != nil {
		return "", "", op.ErrInvalidRefreshToken
	}
	return sub, refreshRef + id, nil
}

// keySet returns the request's workspace's keys.
func (st *oidcStorage) keySet(ctx context.Context) (*keySet, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	return st.s.signingKeys(ctx, t.ID)
}

func (st *oidcStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	ks, err := st.keySet(ctx)
	if err != nil {
		return nil, err
	}
	return ks.signing, nil
}

// SignatureAlgorithms are both algorithms a workspace may sign with,
// whichever signs now: relying parties read them from discovery once, and
// a rotation may change the algorithm.
func (st *oidcStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256}, nil
}

func (st *oidcStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	ks, err := st.keySet(ctx)
	if err != nil {
		return nil, err
	}
	return ks.public, nil
}

func (st *oidcStorage) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	c, err := st.s.store.OAuthClientByClientID(ctx, t.ID, clientID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	} else if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return &oidcClient{c: c, base: t.Base}, nil
}

func (st *oidcStorage) AuthorizeClientIDSecret(ctx context.Context, clientID, secret string) error {
	t, err := tenantOf(ctx)
	if err != nil {
		return err
	}
	c, err := st.s.store.OAuthClientByClientID(ctx, t.ID, clientID)
	if errors.Is(err, db.ErrNotFound) {
		return oidc.ErrInvalidClient()
	} else if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if !c.Confidential() || c.SecretHash == "" || !st.s.keys.VerifyHash(purposeClientSecret, secret, c.SecretHash) {
		return oidc.ErrInvalidClient()
	}
	return nil
}

func (st *oidcStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims from the scopes.
func (st *oidcStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	t, err := tenantOf(ctx)
	if err != nil {
		return err
	}
	return st.s.fillUserinfo(ctx, t, ui, req.GetSubject(), scopes)
}

func (s *Server) fillUserinfo(ctx context.Context, t *tenants.Tenant, ui *oidc.UserInfo, sub string, scopes []string) error {
	u, err := s.store.MemberBySubject(ctx, t.ID, sub)
	if err != nil {
		return err
	}
	ui.Subject = sub
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeEmail:
			// Emails are verified: a member joins by an emailed invitation.
			ui.Email, ui.EmailVerified = u.Email, true
		case oidc.ScopeProfile:
			ui.PreferredUsername = u.Email
		}
	}
	return nil
}

// liveToken returns the access token tokenID of the member sub, if it is
// still good: not expired or revoked, its client not deleted.
func (s *Server) liveToken(ctx context.Context, t *tenants.Tenant, tokenID, sub string) (db.OAuthToken, error) {
	tok, err := s.store.AccessToken(ctx, t.ID, tokenID)
	if err != nil {
		return db.OAuthToken{}, err
	}
	want, err := s.store.MemberSubject(ctx, t.ID, tok.UserID)
	if err != nil {
		return db.OAuthToken{}, err
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(sub)) != 1 {
		return db.OAuthToken{}, db.ErrNotFound
	}
	return tok, nil
}

func (st *oidcStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, sub, _ string) error {
	t, err := tenantOf(ctx)
	if err != nil {
		return err
	}
	tok, err := st.s.liveToken(ctx, t, tokenID, sub)
	if err != nil {
		return oidc.ErrAccessDenied().WithDescription("token is not active")
	}
	return st.s.fillUserinfo(ctx, t, ui, sub, tok.Scopes)
}

// SetIntrospectionFromToken answers a resource server (any confidential
// client of the workspace) about an access token, with the assurance the
// resource server needs for RFC 9470 step-up: acr, amr and auth_time.
func (st *oidcStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, sub, _ string) error {
	t, err := tenantOf(ctx)
	if err != nil {
		return err
	}
	s := st.s
	tok, err := s.liveToken(ctx, t, tokenID, sub)
	if err != nil {
		return err
	}
	ui := new(oidc.UserInfo)
	if err := s.fillUserinfo(ctx, t, ui, sub, tok.Scopes); err != nil {
		return err
	}
	resp.SetUserInfo(ui)
	resp.Scope = tok.Scopes
	resp.ClientID = tok.ClientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(tok.ExpiresAt)
	resp.IssuedAt = oidc.FromTime(tok.CreatedAt)
	resp.AuthTime = oidc.FromTime(tok.AuthTime)
	resp.Audience = tok.Audience
	resp.AuthenticationMethodsReferences = tok.AMR
	resp.Issuer = s.issuer(t)
	resp.JWTID = tok.ID
	resp.Claims = map[string]any{"acr": tok.ACR}
	return nil
}

func (st *oidcStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID is for the JWT profile grant, which Gatehouse does
// not offer.
func (st *oidcStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, oidc.ErrUnsupportedGrantType()
}

func (st *oidcStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType()
}

func (st *oidcStorage) Health(ctx context.Context) error { return st.s.store.Ping(ctx) }

// authRequest is a pending authorization as op sees it.
type authRequest struct {
	row     db.AuthRequest
	req     *oidc.AuthRequest
	subject string
}

func (a *authRequest) GetID() string                      { return a.row.ID }
func (a *authRequest) GetACR() string                     { return a.row.ACR }
func (a *authRequest) GetAMR() []string                   { return a.row.AMR }
func (a *authRequest) GetAudience() []string              { return []string{a.row.ClientID} }
func (a *authRequest) GetAuthTime() time.Time             { return a.row.AuthTime }
func (a *authRequest) GetClientID() string                { return a.row.ClientID }
func (a *authRequest) GetNonce() string                   { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authRequest) GetScopes() []string                { return a.req.Scopes }
func (a *authRequest) GetState() string                   { return a.req.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return !a.row.DoneAt.IsZero() && a.row.UserID != 0 }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: a.req.CodeChallengeMethod}
}

// refreshRequest is a refresh token's grant as op sees it.
type refreshRequest struct {
	grant   db.OAuthToken
	subject string
	scopes  []string
}

func (r *refreshRequest) GetAMR() []string            { return r.grant.AMR }
func (r *refreshRequest) GetAudience() []string       { return r.grant.Audience }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.grant.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.grant.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.subject }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

// oidcClient is a registered application as op sees it.
type oidcClient struct {
	c    db.OAuthClient
	base string
}

func (c *oidcClient) GetID() string                    { return c.c.ClientID }
func (c *oidcClient) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *oidcClient) PostLogoutRedirectURIs() []string { return c.c.PostLogoutRedirectURIs }
func (c *oidcClient) ApplicationType() op.ApplicationType {
	switch c.c.Kind {
	case db.ClientSPA:
		return op.ApplicationTypeUserAgent
	case db.ClientNative:
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c *oidcClient) AuthMethod() oidc.AuthMethod {
	if c.c.Confidential() {
		return oidc.AuthMethodBasic
	}
	return oidc.AuthMethodNone
}
func (c *oidcClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *oidcClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

// LoginURL is where the authorize endpoint sends the browser: Gatehouse's
// own sign-in, challenge, enrollment and consent pages.
func (c *oidcClient) LoginURL(id string) string {
	return c.base + oidcContinuePath + "?id=" + url.QueryEscape(id)
}
func (c *oidcClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *oidcClient) IDTokenLifetime() time.Duration      { return IDTokenLifetime }
func (c *oidcClient) DevMode() bool                       { return false }
func (c *oidcClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *oidcClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed: only the scopes the admin allowed this client; op keeps
// the standard ones and asks for the rest, so the standard ones are
// filtered again when the request is stored (allowedScopes).
func (c *oidcClient) IsScopeAllowed(scope string) bool     { return slices.Contains(c.c.Scopes, scope) }
func (c *oidcClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *oidcClient) ClockSkew() time.Duration             { return 0 }

// Authorization request errors that end at the client (RFC 6749 §4.1.2.1)
// once its redirect URI is known to be registered.
func (s *Server) authorizeError(c echo.Context, req *oidc.AuthRequest, err *oidc.Error) error {
	op.AuthRequestError(c.Response(), c.Request(), req, err, s.oidc)
	return nil
}
