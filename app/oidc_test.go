package app_test

// The OpenID provider against a real relying party: coreos/go-oidc and
// x/oauth2 drive discovery, the code flow with PKCE, ID token
// verification, refresh, userinfo, introspection and revocation through
// the whole stack; a browser-like client walks Gatehouse's pages.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const rpRedirect = "http://127.0.0.1:9/callback"

// oidcEnv is a workspace with a registered application and a member.
type oidcEnv struct {
	env      *apptest.Env
	ws       db.Workspace
	user     db.User
	client   db.OAuthClient
	secret   string
	issuer   string
	provider *gooidc.Provider
	cfg      oauth2.Config
	ctx      context.Context
}

const oidcPassword = "correct horse battery staple"

// newOIDCEnv starts Gatehouse with workspace acme, member ada and a web
// application (first-party unless thirdParty).
func newOIDCEnv(t *testing.T, thirdParty bool, scopes ...string) *oidcEnv {
	t.Helper()
	env := apptest.New(t)
	ws := env.Workspace("acme", "Acme")
	u := env.User(ws, "ada@acme.test", db.RoleMember, oidcPassword)
	return addApp(t, env, ws, u, "Acme CRM", db.ClientWeb, !thirdParty, scopes...)
}

// addApp registers an application in ws.
func addApp(t *testing.T, env *apptest.Env, ws db.Workspace, u db.User, name, kind string, firstParty bool, scopes ...string) *oidcEnv {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"openid", "email", "profile", "offline_access"}
	}
	secret := ""
	c := db.OAuthClient{ClientID: db.NewClientID(), Name: name, Kind: kind, RedirectURIs: []string{rpRedirect},
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:9/bye"}, Scopes: scopes, FirstParty: firstParty}
	if kind == db.ClientWeb {
		secret = "s3cret-" + name
		c.SecretHash = env.Keys.HashToken("oauth_client_secret", secret)
	}
	c, err := env.Store.CreateOAuthClient(context.Background(), ws.ID, 0, c, db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcEnv{env: env, ws: ws, user: u, client: c, secret: secret, issuer: env.HTTP.URL + "/t/" + ws.Slug, ctx: context.Background()}
	o.provider, err = gooidc.NewProvider(o.ctx, o.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	o.cfg = oauth2.Config{ClientID: c.ClientID, ClientSecret: secret, Endpoint: o.provider.Endpoint(), RedirectURL: rpRedirect,
		Scopes: []string{"openid", "email", "offline_access"}}
	return o
}

// pathOf turns a Location into a path on the test server; ok is false
// for a location elsewhere (the application's redirect URI).
func (o *oidcEnv) pathOf(loc string) (string, bool) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", false
	}
	if u.Host == "" {
		return loc, true
	}
	if "http://"+u.Host == o.env.HTTP.URL {
		return u.RequestURI(), true
	}
	return "", false
}

// authorizeURL starts an authorization with PKCE; extra adds parameters.
func (o *oidcEnv) authorizeURL(state, nonce, verifier string, extra ...oauth2.AuthCodeOption) string {
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)}, extra...)
	return o.cfg.AuthCodeURL(state, opts...)
}

// walk follows redirects on the test server from start and returns the
// last response: the one that leaves it (a redirect to the application)
// or a page.
func (o *oidcEnv) walk(t *testing.T, c *apptest.Client, start string) *apptest.Response {
	t.Helper()
	p, ok := o.pathOf(start)
	if !ok {
		t.Fatalf("walk: %s is not on the server", start)
	}
	for range 20 {
		res := c.Get(p)
		loc := res.Header.Get("Location")
		if res.StatusCode < 300 || res.StatusCode >= 400 || loc == "" {
			return res
		}
		if p, ok = o.pathOf(loc); !ok {
			return res
		}
	}
	t.Fatal("walk: too many redirects")
	return nil
}

// codeFrom reads code and state from a redirect to the application.
func codeFrom(t *testing.T, res *apptest.Response) (code, state string) {
	t.Helper()
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, rpRedirect) {
		t.Fatalf("status %d to %q, want a redirect to the application\n%s", res.StatusCode, loc, res.Body)
	}
	u, _ := url.Parse(loc)
	if e := u.Query().Get("error"); e != "" {
		t.Fatalf("authorization error %s: %s", e, u.Query().Get("error_description"))
	}
	return u.Query().Get("code"), u.Query().Get("state")
}

// errorFrom reads the error of a redirect to the application.
func errorFrom(t *testing.T, res *apptest.Response) string {
	t.Helper()
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, rpRedirect) {
		t.Fatalf("status %d to %q, want an error redirect to the application\n%s", res.StatusCode, loc, res.Body)
	}
	u, _ := url.Parse(loc)
	return u.Query().Get("error")
}

// signInPage signs in on the login page a walk stopped at (next kept).
func (o *oidcEnv) signInPage(t *testing.T, c *apptest.Client, page *apptest.Response) *apptest.Response {
	t.Helper()
	next, _ := page.Doc().Find(`input[name="next"]`).Attr("value")
	if page.StatusCode != http.StatusOK || next == "" {
		t.Fatalf("want the sign-in page with next, got %d\n%s", page.StatusCode, page.Body)
	}
	res := c.PostForm("/t/"+o.ws.Slug+"/login", url.Values{"email": {o.user.Email}, "password": {oidcPassword}, "next": {next}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in = %d\n%s", res.StatusCode, res.Body)
	}
	return res
}

// passChallenge enters a TOTP code on the challenge page a sign-in went to.
func (o *oidcEnv) passChallenge(t *testing.T, c *apptest.Client, res *apptest.Response, code string) *apptest.Response {
	t.Helper()
	p, _ := o.pathOf(res.Header.Get("Location"))
	if !strings.Contains(p, "/login/mfa") {
		t.Fatalf("sign-in went to %q, want the challenge", p)
	}
	page := c.Get(p)
	next, _ := page.Doc().Find(`input[name="next"]`).Attr("value")
	res = c.PostForm("/t/"+o.ws.Slug+"/login/mfa", url.Values{"code": {code}, "next": {next}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("challenge = %d\n%s", res.StatusCode, res.Body)
	}
	return res
}

// idClaims are the ID token claims the tests check.
type idClaims struct {
	Email    string   `json:"email"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce"`
}

// exchange trades the code for tokens and verifies the ID token.
func (o *oidcEnv) exchange(t *testing.T, code, verifier, nonce string) (*oauth2.Token, idClaims) {
	t.Helper()
	tok, err := o.cfg.Exchange(o.ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := o.provider.Verifier(&gooidc.Config{ClientID: o.client.ClientID}).Verify(o.ctx, raw)
	if err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	var cl idClaims
	if err := idt.Claims(&cl); err != nil {
		t.Fatal(err)
	}
	if cl.Nonce != nonce {
		t.Fatalf("nonce %q, want %q", cl.Nonce, nonce)
	}
	if idt.Issuer != o.issuer || !slices.Contains(idt.Audience, o.client.ClientID) {
		t.Fatalf("iss %q aud %v", idt.Issuer, idt.Audience)
	}
	return tok, cl
}

// TestOIDCCodeFlowWithTOTP: the whole round trip a relying party makes:
// discovery, authorize with PKCE, Gatehouse's sign-in and TOTP challenge,
// the code exchange, a verified ID token carrying the assurance, userinfo,
// introspection, refresh with rotation, reuse detection and revocation.
func TestOIDCCodeFlowWithTOTP(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	secret, _, _ := enrollAPI(t, env, "acme", o.user.Email, oidcPassword)

	c := env.Client()
	verifier, nonce := oauth2.GenerateVerifier(), "n-0S6_WzA2Mj"
	page := o.walk(t, c, o.authorizeURL("xyz", nonce, verifier))
	res := o.signInPage(t, c, page)
	res = o.passChallenge(t, c, res, nextCode(t, env, secret))
	p, _ := o.pathOf(res.Header.Get("Location"))
	code, state := codeFrom(t, o.walk(t, c, p))
	if state != "xyz" || code == "" {
		t.Fatalf("state %q code %q", state, code)
	}
	tok, cl := o.exchange(t, code, verifier, nonce)
	if cl.ACR != "urn:gatehouse:aal2" || !slices.Equal(cl.AMR, []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("acr %q amr %v, want aal2 with pwd, otp, mfa", cl.ACR, cl.AMR)
	}
	if cl.AuthTime < env.Clock.Now().Add(-time.Minute).Unix() || cl.AuthTime > env.Clock.Now().Unix() {
		t.Fatalf("auth_time %d, clock %d", cl.AuthTime, env.Clock.Now().Unix())
	}
	if cl.Email != o.user.Email {
		t.Fatalf("email %q", cl.Email)
	}

	// Userinfo with the access token.
	ui, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Email != o.user.Email {
		t.Fatalf("userinfo: %v %+v", err, ui)
	}

	// Introspection by a resource server (the client itself here).
	in := o.introspect(t, tok.AccessToken)
	if in["active"] != true || in["acr"] != "urn:gatehouse:aal2" || in["client_id"] != o.client.ClientID {
		t.Fatalf("introspection %v", in)
	}

	// Refresh rotates; the rotated token used again kills the family.
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	old := tok.RefreshToken
	tok2, err := o.cfg.TokenSource(o.ctx, &oauth2.Token{RefreshToken: old, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil || tok2.RefreshToken == "" || tok2.RefreshToken == old {
		t.Fatalf("refresh: %v (new %q)", err, tok2.RefreshToken)
	}
	if _, err := o.cfg.TokenSource(o.ctx, &oauth2.Token{RefreshToken: old, Expiry: time.Now().Add(-time.Hour)}).Token(); err == nil ||
		!strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("reused refresh token: %v, want invalid_grant", err)
	}
	if _, err := o.cfg.TokenSource(o.ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err == nil {
		t.Fatal("the family's newest refresh token still works after a reuse")
	}
	for _, at := range []string{tok.AccessToken, tok2.AccessToken} {
		if in := o.introspect(t, at); in["active"] != false {
			t.Fatalf("access token of a revoked family: %v", in)
		}
	}
	if n := wsEvents(t, env, o.ws.ID, db.EventOAuthRefreshReused); n != 1 {
		t.Fatalf("%d refresh reuse events", n)
	}
}

// introspect asks the introspection endpoint about a token.
func (o *oidcEnv) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	res := o.postClient(t, "/oauth/introspect", url.Values{"token": {token}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("introspect = %d %s", res.StatusCode, res.Body)
	}
	var m map[string]any
	json.Unmarshal(res.Body, &m)
	return m
}

// postClient posts to a protocol endpoint with the client's credentials.
func (o *oidcEnv) postClient(t *testing.T, path string, form url.Values) *apptest.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, o.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(o.client.ClientID), url.QueryEscape(o.secret))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	return &apptest.Response{Response: r, Body: body}
}

func wsEvents(t *testing.T, env *apptest.Env, wsID int64, event string) int {
	t.Helper()
	evs, err := env.Store.AuditEvents(context.Background(), wsID, db.AuditFilter{Event: event, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// TestOIDCKeyRotation: a rotation signs with the new key at once and keeps
// publishing the old one until the tokens it signed have expired; ES256
// works as well as RS256; discovery tells what is offered.
func TestOIDCKeyRotation(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	code, verifier := o.signedInCode(t, env.Client())
	oldTok, _ := o.exchange(t, code, verifier, "nonce")
	kid, err := env.Server.RotateSigningKey(context.Background(), o.ws.ID, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	keys := o.jwks(t)
	if len(keys) != 2 {
		t.Fatalf("%d keys published after a rotation, want the old and the new", len(keys))
	}
	code, verifier = o.signedInCode(t, env.Client())
	newTok, _ := o.exchange(t, code, verifier, "nonce") // verified by go-oidc against the JWKS
	if h := jwtHeader(t, newTok.Extra("id_token").(string)); h["kid"] != kid || h["alg"] != "ES256" {
		t.Fatalf("new ID token header %v, want kid %s ES256", h, kid)
	}
	if _, err := o.provider.Verifier(&gooidc.Config{ClientID: o.client.ClientID}).Verify(o.ctx, oldTok.Extra("id_token").(string)); err != nil {
		t.Fatalf("a token signed before the rotation no longer verifies: %v", err)
	}
	// Once its tokens have expired, the old key is no longer published.
	env.Clock.Advance(time.Hour)
	if keys := o.jwks(t); len(keys) != 1 || keys[0]["kid"] != kid {
		t.Fatalf("keys an hour after the rotation: %v", keys)
	}

	var d map[string]any
	res := env.Client().Get("/t/acme/.well-known/openid-configuration")
	json.Unmarshal(res.Body, &d)
	if d["issuer"] != o.issuer || !sameJSON(d["response_types_supported"], []string{"code"}) ||
		!sameJSON(d["code_challenge_methods_supported"], []string{"S256"}) ||
		!sameJSON(d["acr_values_supported"], []string{"urn:gatehouse:aal1", "urn:gatehouse:aal2"}) || d["device_authorization_endpoint"] != nil {
		t.Fatalf("discovery: %s", res.Body)
	}
}

func (o *oidcEnv) jwks(t *testing.T) []map[string]any {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	res := o.env.Client().Get("/t/acme/oauth/jwks")
	if err := json.Unmarshal(res.Body, &set); err != nil {
		t.Fatalf("jwks %d: %s", res.StatusCode, res.Body)
	}
	return set.Keys
}

func jwtHeader(t *testing.T, jwt string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.SplitN(jwt, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.Unmarshal(b, &h)
	return h
}

func sameJSON(got any, want []string) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	return string(a) == string(b)
}

// TestOIDCIssuerOnHost: a workspace reached on its own host is its own
// issuer there, and its endpoints follow.
func TestOIDCIssuerOnHost(t *testing.T) {
	env := apptest.New(t, func(c *app.Config) { c.BaseDomain = "gatehouse.test" })
	env.Workspace("acme", "Acme")
	req, _ := http.NewRequest(http.MethodGet, env.HTTP.URL+"/.well-known/openid-configuration", nil)
	req.Host = "acme.gatehouse.test"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var d map[string]any
	json.NewDecoder(res.Body).Decode(&d)
	_, port, _ := strings.Cut(strings.TrimPrefix(env.HTTP.URL, "http://"), ":")
	want := "http://acme.gatehouse.test:" + port
	if d["issuer"] != want || d["token_endpoint"] != want+"/oauth/token" {
		t.Fatalf("on its host: issuer %v token %v, want %s", d["issuer"], d["token_endpoint"], want)
	}
}

// TestOIDCFlowPagesAllowTheRedirect: browsers check form-action on every
// redirect after a form is sent, and a sign-in for an application ends
// with a redirect to it. The pages of a pending authorization allow that
// authorization's redirect URI, and only those pages.
func TestOIDCFlowPagesAllowTheRedirect(t *testing.T) {
	o := newOIDCEnv(t, true)
	c := o.env.Client()
	formAction := func(res *apptest.Response) string {
		for _, d := range strings.Split(res.Header.Get("Content-Security-Policy"), ";") {
			if d = strings.TrimSpace(d); strings.HasPrefix(d, "form-action") {
				return d
			}
		}
		return ""
	}
	const want = "form-action 'self' http://127.0.0.1:9"
	page := o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier()))
	if got := formAction(page); got != want {
		t.Errorf("sign-in page of an authorization: %q, want %q", got, want)
	}
	res := o.signInPage(t, c, page)
	p, _ := o.pathOf(res.Header.Get("Location"))
	consent := o.walk(t, c, p)
	if consent.Doc().Find(`[data-testid=consent-allow]`).Length() != 1 {
		t.Fatalf("want the consent page, got %d\n%s", consent.StatusCode, consent.Body)
	}
	if got := formAction(consent); got != want {
		t.Errorf("consent page: %q, want %q", got, want)
	}
	for _, path := range []string{"/t/acme/login", "/t/acme/account", "/t/acme/login?next=" + url.QueryEscape("/t/acme/oauth/continue?id=nope")} {
		if got := formAction(c.Get(path)); got != "form-action 'self'" {
			t.Errorf("%s: %q, want form-action 'self' alone", path, got)
		}
	}
}
