package e2e

// Gatehouse as an OpenID provider, seen from the applications that use it:
// small relying parties built with coreos/go-oidc and x/oauth2 (as a
// developer would build one) run in the test on 127.0.0.1, a different
// site from Gatehouse on localhost. Chromium signs in through them; the
// TOTP codes come from oathtool, which shares no code with Gatehouse.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// relyingParty is a web application that signs its users in with
// Gatehouse: /login starts the code flow (PKCE S256, state and nonce in
// cookies of its own), /callback exchanges the code, verifies the ID token
// and shows who signed in.
type relyingParty struct {
	t        *testing.T
	name     string
	srv      *httptest.Server
	client   db.OAuthClient
	provider *gooidc.Provider
	cfg      oauth2.Config
	params   []oauth2.AuthCodeOption // extra authorization parameters

	mu     sync.Mutex
	claims []rpClaims // every verified ID token, oldest first
}

// rpClaims are the ID token claims the application shows.
type rpClaims struct {
	Subject  string   `json:"sub"`
	Email    string   `json:"email"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
}

// newRelyingParty registers a confidential web application named name in
// ws (first-party, or third-party and so asking for consent) and starts
// it. Discovery runs against issuer, as a real application's would.
func newRelyingParty(t *testing.T, env *apptest.Env, ws db.Workspace, issuer, name string, firstParty bool, params ...oauth2.AuthCodeOption) *relyingParty {
	t.Helper()
	rp := &relyingParty{t: t, name: name, params: params}
	// The listener exists before the server serves: the redirect URI is
	// known, and everything the handlers read is set before Start.
	rp.srv = httptest.NewUnstartedServer(http.HandlerFunc(rp.serveHTTP))
	base := "http://" + rp.srv.Listener.Addr().String()
	secret := "rp-secret-" + newState()
	c, err := env.Store.CreateOAuthClient(context.Background(), ws.ID, 0, db.OAuthClient{
		ClientID: db.NewClientID(), Name: name, Kind: db.ClientWeb, FirstParty: firstParty,
		SecretHash:   env.Keys.HashToken("oauth_client_secret", secret),
		RedirectURIs: []string{base + "/callback"}, Scopes: []string{"openid", "email", "profile"},
	}, db.Meta{})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	rp.client = c
	if rp.provider, err = gooidc.NewProvider(context.Background(), issuer); err != nil {
		t.Fatalf("%s: discovery at %s: %v", name, issuer, err)
	}
	rp.cfg = oauth2.Config{ClientID: c.ClientID, ClientSecret: secret, Endpoint: rp.provider.Endpoint(),
		RedirectURL: base + "/callback", Scopes: []string{gooidc.ScopeOpenID, "email"}}
	rp.srv.Start()
	t.Cleanup(rp.srv.Close)
	return rp
}

// URL is the application's address.
func (rp *relyingParty) URL() string { return rp.srv.URL }

// verified returns the ID tokens the application verified so far.
func (rp *relyingParty) verified() []rpClaims {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return slices.Clone(rp.claims)
}

func newState() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (rp *relyingParty) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		state, nonce, verifier := newState(), newState(), oauth2.GenerateVerifier()
		for k, v := range map[string]string{"rp_state": state, "rp_nonce": nonce, "rp_verifier": verifier} {
			http.SetCookie(w, &http.Cookie{Name: k, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)}, rp.params...)
		http.Redirect(w, r, rp.cfg.AuthCodeURL(state, opts...), http.StatusFound)
	case "/callback":
		claims, err := rp.callback(r)
		if err != nil {
			rp.t.Logf("%s: callback: %v", rp.name, err)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<!doctype html><title>%s</title><h1 data-testid="rp-error">Sign-in failed: %s</h1>`,
				html.EscapeString(rp.name), html.EscapeString(err.Error()))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><title>%s</title><h1 data-testid="rp-signed-in">Signed in as %s (acr %s, amr %s)</h1>`,
			html.EscapeString(rp.name), html.EscapeString(claims.Email), html.EscapeString(claims.ACR),
			html.EscapeString(strings.Join(claims.AMR, " ")))
	case "/favicon.ico":
		w.WriteHeader(http.StatusNoContent) // the browser asks; not a broken link
	default:
		http.NotFound(w, r)
	}
}

// callback checks state, exchanges the code with the PKCE verifier,
// verifies the ID token (signature, issuer, audience, expiry) and its
// nonce.
func (rp *relyingParty) callback(r *http.Request) (rpClaims, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return rpClaims{}, fmt.Errorf("%s: %s", e, q.Get("error_description"))
	}
	cookie := func(name string) string {
		c, err := r.Cookie(name)
		if err != nil {
			return ""
		}
		return c.Value
	}
	if st := cookie("rp_state"); st == "" || st != q.Get("state") {
		return rpClaims{}, fmt.Errorf("state %q does not match the cookie's %q", q.Get("state"), st)
	}
	ctx := r.Context()
	tok, err := rp.cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(cookie("rp_verifier")))
	if err != nil {
		return rpClaims{}, fmt.Errorf("exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.provider.Verifier(&gooidc.Config{ClientID: rp.client.ClientID}).Verify(ctx, raw)
	if err != nil {
		return rpClaims{}, fmt.Errorf("verify ID token: %w", err)
	}
	if idt.Nonce == "" || idt.Nonce != cookie("rp_nonce") {
		return rpClaims{}, fmt.Errorf("nonce %q does not match the cookie's", idt.Nonce)
	}
	var cl rpClaims
	if err := idt.Claims(&cl); err != nil {
		return rpClaims{}, err
	}
	rp.mu.Lock()
	rp.claims = append(rp.claims, cl)
	rp.mu.Unlock()
	return cl, nil
}

// enrollTOTPWithOathtool turns on the member's authenticator app through
// the JSON API, as a phone would: the secret is read from the otpauth URI
// of the setup answer, the confirming code comes from oathtool. The clock
// then moves a step on, so that the next code is a new one. It returns
// the secret and the recovery codes.
func enrollTOTPWithOathtool(t *testing.T, env *apptest.Env, slug, email string) (string, []string) {
	t.Helper()
	c := env.Client()
	tok := c.APILogin(slug, email, password)
	res := c.API(http.MethodPost, "/t/"+slug+"/api/v1/mfa/totp/setup", tok, nil)
	uri, _ := res.JSON()["otpauth_uri"].(string)
	u, err := url.Parse(uri)
	if res.StatusCode != http.StatusOK || err != nil || u.Query().Get("secret") == "" {
		t.Fatalf("totp setup for %s = %d %s", email, res.StatusCode, res.Body)
	}
	secret := u.Query().Get("secret")
	res = c.API(http.MethodPost, "/t/"+slug+"/api/v1/mfa/totp/verify-setup", tok,
		map[string]string{"code": oathtoolCode(t, secret, env.Clock.Now())})
	if res.StatusCode != http.StatusOK || res.JSON()["enabled"] != true {
		t.Fatalf("verify-setup for %s = %d %s", email, res.StatusCode, res.Body)
	}
	var codes []string
	list, _ := res.JSON()["recovery_codes"].([]any)
	for _, c := range list {
		s, _ := c.(string)
		codes = append(codes, s)
	}
	env.Clock.Advance(30 * time.Second)
	return secret, codes
}

// header returns a response header, whatever the case of its name.
func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// A member signs in to an application with Gatehouse: password and a code
// from the authenticator app on Gatehouse's pages, then back at the
// application with a verified ID token at aal2. A second, third-party
// application then asks for consent (a page no other site can frame), and
// remembers it.
func TestBrowserOIDCSignInWithTOTPAndConsent(t *testing.T) {
	needTools(t, "oathtool")
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	const email = "alice@acme.test"
	env.User(ws, email, "member", password)
	secret, _ := enrollTOTPWithOathtool(t, env, "acme", email)
	issuer := base + "/t/acme"
	crm := newRelyingParty(t, env, ws, issuer, "Acme CRM", true, oauth2.SetAuthURLParam("acr_values", "urn:gatehouse:aal2"))
	planner := newRelyingParty(t, env, ws, issuer, "Trip Planner", false)

	b := newBrowser(t, 1024, 768)
	b.navigate(crm.URL() + "/login")
	b.do("Gatehouse sign-in", chromedp.WaitVisible(chromedp.ID("email")))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login?") {
		t.Errorf("the application sent the browser to %s, want Gatehouse's sign-in page", got)
	}
	if got := b.text(`[data-testid=login-app]`); !strings.Contains(got, "Acme CRM") {
		t.Errorf("the sign-in page says %q, want it to name Acme CRM", got)
	}
	b.checkPage("sign-in page for an application")
	b.screenshot("oidc-sign-in")
	b.do("fill sign-in form",
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	b.submit(`[data-testid=sign-in]`)
	b.challengePage()
	b.screenshot("oidc-challenge")
	b.do("type code", chromedp.SendKeys(chromedp.ID("code"), oathtoolCode(t, secret, env.Clock.Now())))
	b.submit(`[data-testid=verify]`)
	b.waitApp(crm)
	const want = "Signed in as alice@acme.test (acr urn:gatehouse:aal2, amr pwd otp mfa)"
	if got := b.text(`[data-testid=rp-signed-in]`); got != want {
		t.Errorf("Acme CRM shows %q, want %q", got, want)
	}
	cl := crm.verified()
	if len(cl) != 1 || cl[0].ACR != "urn:gatehouse:aal2" || !slices.Contains(cl[0].AMR, "otp") || !slices.Contains(cl[0].AMR, "mfa") {
		t.Fatalf("Acme CRM verified %+v, want one ID token at aal2 with otp and mfa", cl)
	}
	if at := time.Unix(cl[0].AuthTime, 0); at.Before(env.Clock.Now().Add(-time.Minute)) || at.After(env.Clock.Now()) {
		t.Errorf("auth_time %v, want the sign-in (clock %v)", at, env.Clock.Now())
	}
	b.screenshot("oidc-app-signed-in")

	// The third-party application: the member is signed in at Gatehouse,
	// so the next page is the consent page.
	res, err := chromedp.RunResponse(b.ctx, chromedp.Navigate(planner.URL()+"/login"))
	if err != nil {
		b.fail("open Trip Planner", err)
	}
	b.do("consent page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=consent-allow]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/oauth/continue?id=") {
		t.Errorf("consent page at %s", got)
	}
	if !strings.HasPrefix(res.URL, base+"/t/acme/oauth/continue") || res.Status != http.StatusOK {
		t.Errorf("the document response is %d %s, want the consent page", res.Status, res.URL)
	}
	// No other site may frame the consent page (clickjacking the Allow
	// button).
	if csp := header(res.Headers, "Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("consent page CSP = %q, want frame-ancestors 'none'", csp)
	}
	if xfo := header(res.Headers, "X-Frame-Options"); !strings.EqualFold(xfo, "DENY") {
		t.Errorf("consent page X-Frame-Options = %q, want DENY", xfo)
	}
	if got := b.text(`h1`); !strings.Contains(got, "Trip Planner") {
		t.Errorf("consent heading %q does not name Trip Planner", got)
	}
	scopes := run(b, "scopes", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("[data-testid=consent-scopes] li")].map(li => li.textContent.trim())`))
	if wantScopes := []string{"Confirm who you are in this workspace", "See your email address"}; !slices.Equal(scopes, wantScopes) {
		t.Errorf("consent scopes = %q, want %q", scopes, wantScopes)
	}
	if got := b.text(`main`); !strings.Contains(got, email) || !strings.Contains(got, strings.TrimPrefix(planner.URL(), "http://")) {
		t.Errorf("consent page does not name the member and the application's host:\n%s", got)
	}
	b.checkPage("consent page")
	b.screenshot("oidc-consent")
	b.submit(`[data-testid=consent-allow]`)
	b.waitApp(planner)
	if got := b.text(`[data-testid=rp-signed-in]`); got != want {
		t.Errorf("Trip Planner shows %q, want %q", got, want)
	}

	// Consent is remembered: the next sign-in goes straight back.
	b.navigate(planner.URL() + "/login")
	b.waitApp(planner)
	if n := len(planner.verified()); n != 2 {
		t.Errorf("Trip Planner verified %d ID tokens, want 2", n)
	}
	if a, p := crm.verified()[0].Subject, planner.verified()[0].Subject; a == "" || a != p {
		t.Errorf("sub at Acme CRM %q, at Trip Planner %q: want the member's one subject", a, p)
	}
	b.checkConsole()
}

// waitApp waits until the browser is back at the application and the
// application has shown the result of its callback.
func (b *browser) waitApp(rp *relyingParty) {
	b.t.Helper()
	b.do("back at "+rp.name, chromedp.WaitVisible(chromedp.CSS(`[data-testid=rp-signed-in], [data-testid=rp-error]`)))
	loc := run(b, "location", chromedp.Location())
	if !strings.HasPrefix(loc, rp.URL()+"/callback?") {
		b.t.Errorf("the browser is at %s, want %s/callback", loc, rp.URL())
	}
	if msg, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](
		`(document.querySelector("[data-testid=rp-error]") || {}).textContent || ""`)); err == nil && msg != "" {
		b.t.Fatalf("%s: %s", rp.name, msg)
	}
}
