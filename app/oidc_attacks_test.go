package app_test

// The OpenID provider's rules, each tried by an attacker (issue 13): exact
// redirect URIs, codes spent once and bound to client, redirect URI and
// PKCE verifier, PKCE downgrades, workspaces that know nothing of each
// other, the native flow's mfa_token, dead clients and reset members,
// consent CSRF and framing, authorizations bound to their browser, and the
// assurance the application asked for.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// signedInCode runs a whole browser authorization for a member without a
// second factor and returns the code and the verifier.
func (o *oidcEnv) signedInCode(t *testing.T, c *apptest.Client, extra ...oauth2.AuthCodeOption) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	res := o.walk(t, c, o.authorizeURL("st", "nonce", verifier, extra...))
	if res.StatusCode == http.StatusOK && res.Doc().Find(`input[name="password"]`).Length() > 0 {
		res = o.signInPage(t, c, res)
		p, _ := o.pathOf(res.Header.Get("Location"))
		res = o.walk(t, c, p)
	}
	code, _ = codeFrom(t, res)
	return code, verifier
}

// exchangeRaw posts a code exchange as given and returns the response.
func (o *oidcEnv) exchangeRaw(t *testing.T, form url.Values) *apptest.Response {
	t.Helper()
	form.Set("grant_type", "authorization_code")
	return o.postClient(t, "/oauth/token", form)
}

func TestOIDCRedirectURIExact(t *testing.T) {
	o := newOIDCEnv(t, false)
	c := o.env.Client()
	for _, bad := range []string{
		rpRedirect + "/../evil", rpRedirect + "x", rpRedirect + "?next=https://evil.test", "http://127.0.0.1:10/callback",
		"https://evil.test/callback", "HTTP://127.0.0.1:9/callback", rpRedirect + "#frag", "",
	} {
		q := url.Values{"client_id": {o.client.ClientID}, "redirect_uri": {bad}, "response_type": {"code"}, "scope": {"openid"},
			"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
		res := c.Get("/t/acme/oauth/authorize?" + q.Encode())
		if loc := res.Header.Get("Location"); loc != "" {
			t.Errorf("redirect_uri %q: redirected to %q (an open redirect or a prefix match)", bad, loc)
		}
		if res.StatusCode < 400 {
			t.Errorf("redirect_uri %q: status %d, want an error page", bad, res.StatusCode)
		}
	}
	if n := countRows(t, o.env, "oauth_auth_requests"); n != 0 {
		t.Fatalf("%d authorizations stored for refused redirect URIs", n)
	}

	// The redirect URI of the token request must be the authorization's.
	code, verifier := o.signedInCode(t, o.env.Client())
	res := o.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect + "/other"}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(res.Body), "invalid_grant") {
		t.Fatalf("exchange with another redirect_uri = %d %s, want invalid_grant", res.StatusCode, res.Body)
	}
}

func TestOIDCCodeOnceAndBound(t *testing.T) {
	o := newOIDCEnv(t, false)
	other := addApp(t, o.env, o.ws, o.user, "Other", db.ClientWeb, true)

	// Wrong verifier, missing verifier, another client: refused.
	code, verifier := o.signedInCode(t, o.env.Client())
	if res := other.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("another client's exchange = %d %s", res.StatusCode, res.Body)
	}
	code, _ = o.signedInCode(t, o.env.Client())
	if res := o.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {oauth2.GenerateVerifier()}, "redirect_uri": {rpRedirect}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("wrong verifier = %d %s", res.StatusCode, res.Body)
	}
	code, _ = o.signedInCode(t, o.env.Client())
	if res := o.exchangeRaw(t, url.Values{"code": {code}, "redirect_uri": {rpRedirect}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("no verifier = %d %s", res.StatusCode, res.Body)
	}

	// Failed attempts by someone who holds the code but not the client's
	// secret or the verifier spend nothing: the application still gets its
	// tokens, and a stranger's replay revokes nothing.
	code, verifier = o.signedInCode(t, o.env.Client())
	other.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}})
	o.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {oauth2.GenerateVerifier()}, "redirect_uri": {rpRedirect}})
	tok, _ := o.exchange(t, code, verifier, "nonce")
	stranger := *o
	stranger.secret = "not the secret"
	if res := stranger.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}}); res.StatusCode == http.StatusOK {
		t.Fatal("exchanged with a wrong secret")
	}
	if in := o.introspect(t, tok.AccessToken); in["active"] != true {
		t.Fatalf("a stranger's replay of the code revoked the application's token: %v", in)
	}
	// A code waits two minutes at most for its exchange.
	code, verifier = o.signedInCode(t, o.env.Client())
	o.env.Clock.Advance(2*time.Minute + time.Second)
	if res := o.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a code after two minutes = %d %s", res.StatusCode, res.Body)
	}
	// The application's own second use of a code revokes what the first
	// issued.
	code, verifier = o.signedInCode(t, o.env.Client())
	tok, _ = o.exchange(t, code, verifier, "nonce")
	if res := o.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("second use = %d %s", res.StatusCode, res.Body)
	}
	if in := o.introspect(t, tok.AccessToken); in["active"] != false {
		t.Fatalf("access token after the code's reuse: %v", in)
	}
	if _, err := o.cfg.TokenSource(o.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("refresh token after the code's reuse still works")
	}
	if n := wsEvents(t, o.env, o.ws.ID, db.EventOAuthCodeReused); n != 1 {
		t.Fatalf("%d code reuse events", n)
	}

	// Two exchanges racing for one code: one wins, and the other's use
	// revokes the winner's tokens.
	code, verifier = o.signedInCode(t, o.env.Client())
	liveBefore := countLive(t, o.env)
	var wg sync.WaitGroup
	results := make([]*apptest.Response, 8)
	for i := range results {
		wg.Go(func() {
			results[i] = o.exchangeRaw(t, url.Values{"code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}})
		})
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		if r.StatusCode == http.StatusOK {
			won++
		}
	}
	if won > 1 {
		t.Fatalf("%d of 8 racing exchanges got tokens", won)
	}
	if n := countLive(t, o.env); n != liveBefore {
		t.Fatalf("%d tokens alive after a raced code, %d before it", n, liveBefore)
	}
}

// countLive counts the access and refresh tokens not revoked.
func countLive(t *testing.T, env *apptest.Env) int {
	t.Helper()
	var n int
	if err := env.Store.DB().QueryRow(`SELECT (SELECT COUNT(*) FROM oauth_access_tokens WHERE revoked_at IS NULL) +
		(SELECT COUNT(*) FROM oauth_refresh_tokens WHERE revoked_at IS NULL)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOIDCPKCERequired(t *testing.T) {
	o := newOIDCEnv(t, false)
	c := o.env.Client()
	verifier := oauth2.GenerateVerifier()
	for name, q := range map[string]url.Values{
		"plain":     {"code_challenge": {verifier}, "code_challenge_method": {"plain"}},
		"no method": {"code_challenge": {verifier}},
		"no pkce":   {},
		"bogus":     {"code_challenge": {verifier}, "code_challenge_method": {"S512"}},
	} {
		q.Set("client_id", o.client.ClientID)
		q.Set("redirect_uri", rpRedirect)
		q.Set("response_type", "code")
		q.Set("scope", "openid")
		q.Set("state", "s")
		res := c.Get("/t/acme/oauth/authorize?" + q.Encode())
		if e := errorFrom(t, res); e != "invalid_request" {
			t.Errorf("%s: error %q, want invalid_request", name, e)
		}
	}
	if n := countRows(t, o.env, "oauth_auth_requests"); n != 0 {
		t.Fatalf("%d authorizations stored without S256", n)
	}
}

func TestOIDCWorkspacesApart(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	globex := env.Workspace("globex", "Globex")
	gu := env.User(globex, "ada@globex.test", db.RoleMember, oidcPassword)
	g := addApp(t, env, globex, gu, "Globex app", db.ClientWeb, true)

	// Acme's client is unknown at Globex's authorize endpoint.
	q := url.Values{"client_id": {o.client.ClientID}, "redirect_uri": {rpRedirect}, "response_type": {"code"}, "scope": {"openid"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	res := env.Client().Get("/t/globex/oauth/authorize?" + q.Encode())
	if res.Header.Get("Location") != "" || res.StatusCode < 400 {
		t.Fatalf("acme client at globex = %d %q", res.StatusCode, res.Header.Get("Location"))
	}

	// An Acme session is worthless at Globex's authorize: sign-in asked.
	c := env.Client()
	code, verifier := o.signedInCode(t, c)
	res = g.walk(t, c, g.authorizeURL("s", "n", oauth2.GenerateVerifier()))
	if res.StatusCode != http.StatusOK || res.Doc().Find(`input[name="password"]`).Length() == 0 {
		t.Fatalf("acme session at globex: %d %q, want globex's sign-in", res.StatusCode, res.Header.Get("Location"))
	}

	// Acme's code and tokens mean nothing at Globex.
	form := url.Values{"code": {code}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}, "grant_type": {"authorization_code"}}
	req, _ := http.NewRequest(http.MethodPost, g.issuer+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(o.client.ClientID), url.QueryEscape(o.secret))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode == http.StatusOK {
		t.Fatal("acme's code and client exchanged at globex")
	}
	tok, _ := o.exchange(t, code, verifier, "nonce")
	if _, err := g.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("acme's access token answered by globex's userinfo")
	}
	if in := g.introspect(t, tok.AccessToken); in["active"] != false {
		t.Fatalf("globex introspects acme's token: %v", in)
	}
}

func TestOIDCNativeFlow(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	secret, _, _ := enrollAPI(t, env, "acme", o.user.Email, oidcPassword)
	verifier := oauth2.GenerateVerifier()
	body := map[string]string{"client_id": o.client.ClientID, "redirect_uri": rpRedirect, "scope": "openid email",
		"state": "st8", "nonce": "nn", "code_challenge": oauth2.S256ChallengeFromVerifier(verifier), "code_challenge_method": "S256",
		"email": o.user.Email, "password": oidcPassword}
	res := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize", "", body)
	mfaTok, _ := res.JSON()["mfa_token"].(string)
	if res.StatusCode != http.StatusOK || res.JSON()["mfa_required"] != true || mfaTok == "" {
		t.Fatalf("native authorize = %d %s", res.StatusCode, res.Body)
	}

	// The mfa_token is no session and no authorization.
	if r := env.Client().API(http.MethodGet, "/t/acme/api/v1/session", mfaTok, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("mfa_token as a session = %d", r.StatusCode)
	}
	if r := loginMFA(env, "acme", map[string]string{"mfa_token": mfaTok, "code": nextCode(t, env, secret)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("mfa_token at the API's second step = %d %s, want 401", r.StatusCode, r.Body)
	}
	if r := o.exchangeRaw(t, url.Values{"code": {mfaTok}, "code_verifier": {verifier}, "redirect_uri": {rpRedirect}}); r.StatusCode == http.StatusOK {
		t.Fatal("mfa_token exchanged as a code")
	}
	// Planted as a browser's session cookie, it is no pending sign-in.
	b := env.Client()
	b.SetCookie("gh_s_acme", mfaTok)
	if r := b.PostForm("/t/acme/login/mfa", url.Values{"code": {nextCode(t, env, secret)}}); strings.Contains(r.Header.Get("Location"), "/account") {
		t.Fatalf("mfa_token as a page cookie passed the challenge: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// An API sign-in's mfa_token completes no authorization.
	apiTok := mfaToken(t, env, "acme", o.user.Email, oidcPassword)
	if r := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{"mfa_token": apiTok, "code": nextCode(t, env, secret)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API mfa_token at authorize/mfa = %d %s", r.StatusCode, r.Body)
	}

	// A wrong code is refused; the right one completes the authorization.
	if r := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{"mfa_token": mfaTok, "code": "000000"}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code = %d %s", r.StatusCode, r.Body)
	}
	res = env.Client().API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{"mfa_token": mfaTok, "code": nextCode(t, env, secret)})
	if res.StatusCode != http.StatusFound {
		t.Fatalf("native mfa = %d %s", res.StatusCode, res.Body)
	}
	code, state := codeFrom(t, res)
	if state != "st8" {
		t.Fatalf("state %q", state)
	}
	_, cl := o.exchange(t, code, verifier, "nn")
	if cl.ACR != "urn:gatehouse:aal2" || !strings.Contains(strings.Join(cl.AMR, " "), "otp") {
		t.Fatalf("native flow acr %q amr %v", cl.ACR, cl.AMR)
	}
	// The token is spent: a replay gets nothing.
	if r := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{"mfa_token": mfaTok, "code": nextCode(t, env, secret)}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("mfa_token replay = %d %s", r.StatusCode, r.Body)
	}
	// The pending session it held is no session either.
	var live int
	env.Store.DB().QueryRow(`SELECT COUNT(*) FROM user_sessions WHERE ended_at IS NULL AND user_id = ?`, o.user.ID).Scan(&live)
	if live != 1 { // enrollAPI's own
		t.Fatalf("%d live sessions after the native flow, want only the enrollment's", live)
	}

	// Third-party applications never see a password.
	third := addApp(t, env, o.ws, o.user, "Third", db.ClientWeb, false)
	body["client_id"] = third.client.ClientID
	if r := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize", "", body); r.StatusCode != http.StatusBadRequest || r.JSON()["error"] != "unauthorized_client" {
		t.Fatalf("third-party native = %d %s", r.StatusCode, r.Body)
	}
	// A wrong password is the sign-in's refusal.
	body["client_id"], body["password"] = o.client.ClientID, "wrong"
	if r := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize", "", body); r.StatusCode != http.StatusUnauthorized || r.JSON()["error"] != "invalid_credentials" {
		t.Fatalf("wrong password = %d %s", r.StatusCode, r.Body)
	}
}

func TestOIDCDeadClientAndResetMember(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	ctx := context.Background()
	code, verifier := o.signedInCode(t, env.Client())
	tok, _ := o.exchange(t, code, verifier, "nonce")

	// A reset of the member's factors kills their tokens.
	owner := env.User(o.ws, "owner@acme.test", db.RoleOwner, oidcPassword)
	if _, err := env.Store.ResetMFA(ctx, o.ws.ID, owner.ID, o.user.ID, false, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if in := o.introspect(t, tok.AccessToken); in["active"] != false {
		t.Fatalf("token of a reset member: %v", in)
	}
	if _, err := o.cfg.TokenSource(o.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("refresh token of a reset member works")
	}

	// Deleting the client kills its tokens.
	code, verifier = o.signedInCode(t, env.Client())
	tok, _ = o.exchange(t, code, verifier, "nonce")
	judge := addApp(t, env, o.ws, o.user, "Resource server", db.ClientWeb, true)
	if in := judge.introspect(t, tok.AccessToken); in["active"] != true {
		t.Fatalf("live token: %v", in)
	}
	if err := env.Store.DeleteOAuthClient(ctx, o.ws.ID, owner.ID, o.client.ID, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if in := judge.introspect(t, tok.AccessToken); in["active"] != false {
		t.Fatalf("token of a deleted client: %v", in)
	}
	if _, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("userinfo answers a deleted client's token")
	}
	if res := o.postClient(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusBadRequest {
		t.Fatalf("deleted client refreshes = %d %s", res.StatusCode, res.Body)
	}
}

func TestOIDCConsent(t *testing.T) {
	o := newOIDCEnv(t, true)
	env := o.env
	c := env.Client()
	res := o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier()))
	res = o.signInPage(t, c, res)
	p, _ := o.pathOf(res.Header.Get("Location"))
	page := o.walk(t, c, p)
	if page.StatusCode != http.StatusOK || page.Doc().Find("[data-testid=consent-allow]").Length() != 1 {
		t.Fatalf("want the consent page, got %d\n%s", page.StatusCode, page.Body)
	}
	if h := page.Header.Get("Content-Security-Policy"); !strings.Contains(h, "frame-ancestors 'none'") || page.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("consent page can be framed: CSP %q XFO %q", h, page.Header.Get("X-Frame-Options"))
	}
	id, _ := page.Doc().Find(`input[name="id"]`).Attr("value")

	// Without the CSRF token (a cross-site form), nothing is granted.
	if r := c.PostRaw("/t/acme/oauth/continue", url.Values{"id": {id}, "decision": {"allow"}}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("consent without CSRF token = %d", r.StatusCode)
	}
	// Another browser of the same member cannot answer it.
	other := env.Client()
	other.Login("acme", o.user.Email, oidcPassword)
	if r := other.PostForm("/t/acme/oauth/continue", url.Values{"id": {id}, "decision": {"allow"}}); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("consent from another browser = %d", r.StatusCode)
	}
	if n := countRows(t, env, "oauth_consents"); n != 0 {
		t.Fatalf("%d consents after refused answers", n)
	}
	// Cancel ends at the application with access_denied.
	if e := errorFrom(t, c.PostForm("/t/acme/oauth/continue", url.Values{"id": {id}, "decision": {"deny"}})); e != "access_denied" {
		t.Fatalf("cancel: %q", e)
	}
	// Allow, and the next authorization goes straight back (SSO).
	res = o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier()))
	id, _ = res.Doc().Find(`input[name="id"]`).Attr("value")
	res = c.PostForm("/t/acme/oauth/continue", url.Values{"id": {id}, "decision": {"allow"}})
	p, _ = o.pathOf(res.Header.Get("Location"))
	codeFrom(t, o.walk(t, c, p))
	codeFrom(t, o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier())))
	if n := wsEvents(t, env, o.ws.ID, db.EventOAuthConsentGranted); n != 1 {
		t.Fatalf("%d consent events", n)
	}
}

func TestOIDCAuthorizationBoundToBrowser(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	victim := env.Client()
	res := victim.Get(mustPath(t, o, o.authorizeURL("s", "n", oauth2.GenerateVerifier())))
	cont := res.Header.Get("Location")
	if !strings.Contains(cont, "/oauth/continue?id=") {
		t.Fatalf("authorize went to %q", cont)
	}
	// An attacker signed in as themselves cannot complete the victim's
	// pending authorization, nor take its callback.
	attacker := env.Client()
	attacker.Login("acme", o.user.Email, oidcPassword)
	if r := attacker.Get(cont); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("another browser's continue = %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	id := strings.SplitN(cont, "id=", 2)[1]
	if r := attacker.Get("/t/acme/oauth/authorize/callback?id=" + id); strings.Contains(r.Header.Get("Location"), "code=") {
		t.Fatalf("another browser got a code: %q", r.Header.Get("Location"))
	}
	// The victim's browser survives the sign-in with its request.
	page := o.walk(t, victim, cont)
	res = o.signInPage(t, victim, page)
	p, _ := o.pathOf(res.Header.Get("Location"))
	codeFrom(t, o.walk(t, victim, p))
}

func mustPath(t *testing.T, o *oidcEnv, u string) string {
	t.Helper()
	p, ok := o.pathOf(u)
	if !ok {
		t.Fatalf("%s is not on the server", u)
	}
	return p
}

func TestOIDCPromptAndMaxAge(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	c := env.Client()
	// prompt=none without a session: login_required at the application.
	if e := errorFrom(t, o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier(), oauth2.SetAuthURLParam("prompt", "none")))); e != "login_required" {
		t.Fatalf("prompt=none: %q", e)
	}
	code, verifier := o.signedInCode(t, c)
	_, first := o.exchange(t, code, verifier, "nonce")
	env.Clock.Advance(5 * 60e9)
	// SSO: straight back, the same auth_time.
	code, verifier = o.signedInCode(t, c, oauth2.SetAuthURLParam("prompt", "none"))
	if _, cl := o.exchange(t, code, verifier, "nonce"); cl.AuthTime != first.AuthTime {
		t.Fatalf("SSO auth_time %d, want %d", cl.AuthTime, first.AuthTime)
	}
	// max_age=60 and prompt=login ask for the password again.
	for _, p := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "60"), oauth2.SetAuthURLParam("prompt", "login")} {
		env.Clock.Advance(5 * 60e9)
		verifier := oauth2.GenerateVerifier()
		page := o.walk(t, c, o.authorizeURL("s", "n", verifier, p))
		if page.StatusCode != http.StatusOK || page.Doc().Find(`input[name="password"]`).Length() == 0 {
			t.Fatalf("re-authentication not asked: %d %q", page.StatusCode, page.Header.Get("Location"))
		}
		res := o.signInPage(t, c, page)
		pth, _ := o.pathOf(res.Header.Get("Location"))
		code, _ := codeFrom(t, o.walk(t, c, pth))
		if _, cl := o.exchange(t, code, verifier, "n"); cl.AuthTime <= first.AuthTime {
			t.Fatalf("auth_time %d after re-authentication, first %d", cl.AuthTime, first.AuthTime)
		}
	}
}

func TestOIDCStepUpForACR(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	setTrustedDays(t, env, "acme", 30)
	secret, _, _ := enrollAPI(t, env, "acme", o.user.Email, oidcPassword)
	c := env.Client()
	trustBrowser(t, env, c, "acme", o.user.Email, oidcPassword, secret)
	if !signInAgain(t, c, "acme", o.user.Email, oidcPassword) {
		t.Fatal("the trusted browser was challenged")
	}
	// The trusted browser's session is aal1: said so in the token.
	code, verifier := o.signedInCode(t, c)
	if _, cl := o.exchange(t, code, verifier, "nonce"); cl.ACR != "urn:gatehouse:aal1" || strings.Join(cl.AMR, " ") != "pwd" {
		t.Fatalf("trusted browser: acr %q amr %v", cl.ACR, cl.AMR)
	}
	// The application asks for aal2 (RFC 9470): the second factor runs now.
	verifier = oauth2.GenerateVerifier()
	res := o.walk(t, c, o.authorizeURL("s", "n", verifier, oauth2.SetAuthURLParam("acr_values", "urn:gatehouse:aal2")))
	next, _ := res.Doc().Find(`input[name="next"]`).Attr("value")
	if res.StatusCode != http.StatusOK || !strings.Contains(next, "/oauth/continue") {
		t.Fatalf("want the step-up page back to continue, got %d (next %q)\n%s", res.StatusCode, next, res.Body)
	}
	res = c.PostForm("/t/acme/account/verify", url.Values{"code": {nextCode(t, env, secret)}, "next": {next}})
	p, _ := o.pathOf(res.Header.Get("Location"))
	code, _ = codeFrom(t, o.walk(t, c, p))
	if _, cl := o.exchange(t, code, verifier, "n"); cl.ACR != "urn:gatehouse:aal2" || !strings.Contains(strings.Join(cl.AMR, " "), "otp") {
		t.Fatalf("after step-up: acr %q amr %v", cl.ACR, cl.AMR)
	}
	// A member without any second factor cannot meet aal2.
	bob := env.User(o.ws, "bob@acme.test", db.RoleMember, oidcPassword)
	ob := *o
	ob.user = bob
	b := env.Client()
	res = ob.walk(t, b, ob.authorizeURL("s", "n", oauth2.GenerateVerifier(), oauth2.SetAuthURLParam("acr_values", "urn:gatehouse:aal2")))
	res = ob.signInPage(t, b, res)
	p, _ = ob.pathOf(res.Header.Get("Location"))
	if e := errorFrom(t, ob.walk(t, b, p)); e != "unmet_authentication_requirements" {
		t.Fatalf("aal2 without a factor: %q", e)
	}
}

// TestOIDCEnforcement: a member who must enroll sees the interstitial and
// the authorization survives it ("remind me later" goes on to the
// application); past the deadline the member enrolls first, and a silent
// request (prompt=none) is told interaction_required.
func TestOIDCEnforcement(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	requireMFA(t, env, o.ws)
	c := env.Client()
	res := o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier()))
	res = o.signInPage(t, c, res)
	p, _ := o.pathOf(res.Header.Get("Location"))
	page := o.walk(t, c, p)
	later, ok := page.Doc().Find("[data-testid=enroll-later]").Attr("href")
	if !ok || !strings.Contains(later, "/oauth/continue") {
		t.Fatalf("want the interstitial going on to the authorization, got %d (later %q)\n%s", page.StatusCode, later, page.Body)
	}
	codeFrom(t, o.walk(t, c, later))

	// Past the deadline: enrollment first.
	env.Clock.Advance(15 * 24 * time.Hour)
	c = env.Client()
	res = o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier()))
	res = o.signInPage(t, c, res)
	p, _ = o.pathOf(res.Header.Get("Location"))
	res = o.walk(t, c, p)
	if res.StatusCode != http.StatusOK || strings.Contains(res.Header.Get("Location"), "code=") || res.Doc().Find("[data-testid=enroll-later]").Length() != 0 {
		t.Fatalf("past the deadline: %d %q\n%s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	if e := errorFrom(t, o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier(), oauth2.SetAuthURLParam("prompt", "none")))); e != "interaction_required" {
		t.Fatalf("prompt=none past the deadline: %q", e)
	}
}

// TestOIDCRevocation (RFC 7009): a client revokes its own tokens, a
// refresh token with its whole grant; another client's revocation does
// nothing; RP-initiated logout ends the browser's session.
func TestOIDCRevocation(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	other := addApp(t, env, o.ws, o.user, "Other", db.ClientWeb, true)
	c := env.Client()
	code, verifier := o.signedInCode(t, c)
	tok, _ := o.exchange(t, code, verifier, "nonce")

	if res := other.postClient(t, "/oauth/revoke", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}); res.StatusCode != http.StatusOK {
		t.Fatalf("another client's revoke = %d %s", res.StatusCode, res.Body)
	}
	if in := o.introspect(t, tok.AccessToken); in["active"] != true {
		t.Fatalf("another client revoked our grant: %v", in)
	}
	if res := o.postClient(t, "/oauth/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}); res.StatusCode != http.StatusOK {
		t.Fatalf("revoke access token = %d %s", res.StatusCode, res.Body)
	}
	if in := o.introspect(t, tok.AccessToken); in["active"] != false {
		t.Fatalf("revoked access token: %v", in)
	}
	tok2, err := o.cfg.TokenSource(o.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh after revoking only the access token: %v", err)
	}
	if res := o.postClient(t, "/oauth/revoke", url.Values{"token": {tok2.RefreshToken}}); res.StatusCode != http.StatusOK {
		t.Fatalf("revoke refresh token = %d %s", res.StatusCode, res.Body)
	}
	if in := o.introspect(t, tok2.AccessToken); in["active"] != false {
		t.Fatalf("access token of a revoked refresh token's grant: %v", in)
	}
	if _, err := o.cfg.TokenSource(o.ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
		t.Fatal("revoked refresh token works")
	}
	if n := wsEvents(t, env, o.ws.ID, db.EventOAuthTokenRevoked); n != 2 {
		t.Fatalf("%d revocation events, want 2", n)
	}

	// RP-initiated logout with the ID token as hint: the browser's
	// session at the workspace ends, and the application's tokens die.
	code, verifier = o.signedInCode(t, c)
	tok3, _ := o.exchange(t, code, verifier, "nonce")
	q := url.Values{"id_token_hint": {tok3.Extra("id_token").(string)}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"},
		"client_id": {o.client.ClientID}, "state": {"bye"}}
	res := c.Get("/t/acme/oauth/logout?" + q.Encode())
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "http://127.0.0.1:9/bye") {
		t.Fatalf("logout = %d %q\n%s", res.StatusCode, loc, res.Body)
	}
	if r := c.Get("/t/acme/account"); r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "/login") {
		t.Fatalf("still signed in after logout: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if in := o.introspect(t, tok3.AccessToken); in["active"] != false {
		t.Fatalf("token after logout: %v", in)
	}
	// An unregistered post-logout URI is no open redirect.
	q.Set("post_logout_redirect_uri", "https://evil.test/")
	if loc := c.Get("/t/acme/oauth/logout?" + q.Encode()).Header.Get("Location"); strings.Contains(loc, "evil.test") {
		t.Fatalf("logout redirected to %q", loc)
	}
}

// TestOIDCNativeSharesGuards: wrong passwords through the native flow
// count for the account everywhere, and so do wrong codes.
func TestOIDCNativeSharesGuards(t *testing.T) {
	o := newOIDCEnv(t, false)
	env := o.env
	secret, _, _ := enrollAPI(t, env, "acme", o.user.Email, oidcPassword)
	body := map[string]string{"client_id": o.client.ClientID, "redirect_uri": rpRedirect, "scope": "openid",
		"code_challenge": oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()), "code_challenge_method": "S256",
		"email": o.user.Email, "password": "wrong"}
	limited := false
	for range 12 {
		r := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize", "", body)
		if r.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("12 wrong passwords through the native flow were never throttled")
	}
	// The page sign-in of the same account is throttled too.
	r := env.Client().PostForm("/t/acme/login", url.Values{"email": {o.user.Email}, "password": {oidcPassword}})
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("page sign-in after the native flow's failures = %d, want 429", r.StatusCode)
	}

	// Wrong codes through the native flow lock the member's second factor
	// for every way in.
	env.Clock.Advance(time.Hour)
	body["password"] = oidcPassword
	locked := false
	for range 12 {
		res := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize", "", body)
		tok, _ := res.JSON()["mfa_token"].(string)
		r := env.Client().API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{"mfa_token": tok, "code": "000000"})
		if r.StatusCode == http.StatusTooManyRequests {
			locked = true
			break
		}
	}
	if !locked {
		t.Fatal("wrong codes through the native flow never locked the second factor")
	}
	tok := mfaToken(t, env, "acme", o.user.Email, oidcPassword)
	if r := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nextCode(t, env, secret)}); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the API's second step after the native flow's wrong codes = %d %s, want 429", r.StatusCode, r.Body)
	}
}

// TestOIDCMemberRemovesApp: a member sees the applications they allowed
// and removes one: its tokens die and it asks again; another member's or
// an unknown application is a 404 and changes nothing.
func TestOIDCMemberRemovesApp(t *testing.T) {
	o := newOIDCEnv(t, true)
	env := o.env
	c := env.Client()
	res := o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier()))
	res = o.signInPage(t, c, res)
	p, _ := o.pathOf(res.Header.Get("Location"))
	o.walk(t, c, p) // the consent page of a first authorization, left unanswered
	verifier := oauth2.GenerateVerifier()
	res = o.walk(t, c, o.authorizeURL("s", "n", verifier))
	id, _ := res.Doc().Find(`input[name="id"]`).Attr("value")
	res = c.PostForm("/t/acme/oauth/continue", url.Values{"id": {id}, "decision": {"allow"}})
	p, _ = o.pathOf(res.Header.Get("Location"))
	code, _ := codeFrom(t, o.walk(t, c, p))
	tok, _ := o.exchange(t, code, verifier, "n")

	account := c.Get("/t/acme/account")
	if account.Doc().Find("[data-testid=apps]").Text() == "" || !strings.Contains(account.Doc().Find("[data-testid=apps]").Text(), "Acme CRM") {
		t.Fatalf("the portal does not list the allowed application\n%s", account.Body)
	}
	// Someone else's session cannot remove it, nor can an unknown id.
	bob := env.User(o.ws, "bob@acme.test", db.RoleMember, oidcPassword)
	b := env.Client()
	b.Login("acme", bob.Email, oidcPassword)
	if r := b.PostForm("/t/acme/account/apps/"+o.client.ClientID+"/revoke", nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("another member's revoke = %d", r.StatusCode)
	}
	if in := o.introspect(t, tok.AccessToken); in["active"] != true {
		t.Fatalf("another member's revoke touched the token: %v", in)
	}
	if r := c.PostForm("/t/acme/account/apps/"+o.client.ClientID+"/revoke", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke = %d %s", r.StatusCode, r.Body)
	}
	if in := o.introspect(t, tok.AccessToken); in["active"] != false {
		t.Fatalf("token after the member removed the app: %v", in)
	}
	res = o.walk(t, c, o.authorizeURL("s", "n", oauth2.GenerateVerifier()))
	if res.Doc().Find("[data-testid=consent-allow]").Length() != 1 {
		t.Fatalf("no consent asked after removal: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}
