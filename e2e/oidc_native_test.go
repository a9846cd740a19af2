package e2e

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// The native JSON flow, as a first-party mobile application drives it: it
// draws its own sign-in form, posts the password with the authorization
// request, gets an mfa_token, posts the member's code (from oathtool, as
// an authenticator app) and gets the redirect with the code; x/oauth2
// exchanges it with the PKCE verifier at the token endpoint found by
// discovery, and go-oidc verifies the ID token.
func TestOIDCNativeFlowWithOathtool(t *testing.T) {
	needTools(t, "oathtool")
	env := apptest.New(t)
	ws := env.Workspace("acme", "Acme Corp")
	const email = "alice@acme.test"
	env.User(ws, email, "member", password)
	secret, recovery := enrollTOTPWithOathtool(t, env, "acme", email)

	const redirect = "com.acme.crm:/oauth/callback" // a native app's own scheme (RFC 8252 §7.1)
	client, err := env.Store.CreateOAuthClient(context.Background(), ws.ID, 0, db.OAuthClient{
		ClientID: db.NewClientID(), Name: "Acme CRM for phones", Kind: db.ClientNative, FirstParty: true,
		RedirectURIs: []string{redirect}, Scopes: []string{"openid", "email", "offline_access"},
	}, db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	issuer := env.HTTP.URL + "/t/acme"
	provider, err := gooidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	// A public client: no secret, PKCE only.
	cfg := oauth2.Config{ClientID: client.ClientID, Endpoint: provider.Endpoint(), RedirectURL: redirect,
		Scopes: []string{"openid", "email", "offline_access"}}
	verify := func(tok *oauth2.Token, nonce string) rpClaims {
		t.Helper()
		raw, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&gooidc.Config{ClientID: client.ClientID}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("verify ID token: %v", err)
		}
		if idt.Nonce != nonce {
			t.Errorf("nonce %q, want %q", idt.Nonce, nonce)
		}
		var cl rpClaims
		if err := idt.Claims(&cl); err != nil {
			t.Fatal(err)
		}
		return cl
	}

	// authorize posts the sign-in form's answer with a new authorization
	// request and returns the mfa_token.
	authorize := func(c *apptest.Client, state, nonce, verifier string) string {
		t.Helper()
		res := c.API(http.MethodPost, "/t/acme/oauth/authorize", "", map[string]string{
			"client_id": client.ClientID, "redirect_uri": redirect, "scope": "openid email offline_access",
			"state": state, "nonce": nonce, "code_challenge": oauth2.S256ChallengeFromVerifier(verifier),
			"code_challenge_method": "S256", "email": email, "password": password,
		})
		j := res.JSON()
		token, _ := j["mfa_token"].(string)
		if res.StatusCode != http.StatusOK || j["mfa_required"] != true || token == "" {
			t.Fatalf("POST /oauth/authorize = %d %s, want mfa_required with an mfa_token", res.StatusCode, res.Body)
		}
		if methods, _ := j["methods"].([]any); !containsAny(methods, "totp") {
			t.Errorf("methods = %v, want totp among them", methods)
		}
		if _, ok := j["code"]; ok || strings.Contains(string(res.Body), "redirect_to") {
			t.Errorf("a code before the second factor: %s", res.Body)
		}
		return token
	}
	// codeFrom reads the code of the redirect to the application.
	codeFrom := func(loc, state string) string {
		t.Helper()
		u, err := url.Parse(loc)
		if err != nil || !strings.HasPrefix(loc, redirect+"?") || u.Query().Get("state") != state || u.Query().Get("code") == "" {
			t.Fatalf("redirect %q, want %s?code=…&state=%s", loc, redirect, state)
		}
		return u.Query().Get("code")
	}

	// 1. A code from the authenticator app; the answer is the redirect.
	start := time.Now()
	c := env.Client()
	verifier, nonce := oauth2.GenerateVerifier(), "n-native-1"
	mfaToken := authorize(c, "st-1", nonce, verifier)
	if wrong := "000000"; oathtoolCode(t, secret, env.Clock.Now()) != wrong {
		res := c.API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{"mfa_token": mfaToken, "code": wrong})
		if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_code" {
			t.Errorf("a wrong code = %d %s, want 401 invalid_code", res.StatusCode, res.Body)
		}
	}
	res := c.API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{
		"mfa_token": mfaToken, "code": oathtoolCode(t, secret, env.Clock.Now())})
	if res.StatusCode != http.StatusFound {
		t.Fatalf("POST /oauth/authorize/mfa = %d %s, want 302 to the application", res.StatusCode, res.Body)
	}
	code := codeFrom(res.Header.Get("Location"), "st-1")
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	cl := verify(tok, nonce)
	if cl.Email != email || cl.ACR != "urn:gatehouse:aal2" || !slices.Equal(cl.AMR, []string{"pwd", "otp", "mfa"}) {
		t.Errorf("ID token %+v, want %s at aal2 with amr pwd otp mfa", cl, email)
	}
	// The refresh token of a public client rotates.
	refresh := func(rt string) (*oauth2.Token, error) {
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}).Token()
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	tok2, err := refresh(tok.RefreshToken)
	if err != nil || tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v, want a new refresh token", err)
	}
	// The code is spent: a second exchange fails and revokes what the
	// first issued, rotated refresh tokens included.
	if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("second exchange of the code: %v, want invalid_grant", err)
	}
	if _, err := refresh(tok2.RefreshToken); err == nil {
		t.Errorf("the refresh token still works after its code was used again")
	}
	// The mfa_token is spent too.
	env.Clock.Advance(30 * time.Second)
	res = c.API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{
		"mfa_token": mfaToken, "code": oathtoolCode(t, secret, env.Clock.Now())})
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the mfa_token used again = %d %s, want 401", res.StatusCode, res.Body)
	}
	t.Logf("TOTP round: %v", time.Since(start).Round(time.Millisecond))

	// 2. A recovery code, answered in JSON: the code shows only as mfa.
	c = env.Client()
	c.Header.Set("Accept", "application/json")
	verifier = oauth2.GenerateVerifier()
	mfaToken = authorize(c, "st-2", "n-native-2", verifier)
	res = c.API(http.MethodPost, "/t/acme/oauth/authorize/mfa", "", map[string]string{"mfa_token": mfaToken, "backup_code": recovery[0]})
	to, _ := res.JSON()["redirect_to"].(string)
	if res.StatusCode != http.StatusOK || res.JSON()["remaining_codes"] != float64(len(recovery)-1) {
		t.Fatalf("POST /oauth/authorize/mfa with a recovery code = %d %s, want 200 with %d remaining_codes", res.StatusCode, res.Body, len(recovery)-1)
	}
	tok, err = cfg.Exchange(ctx, codeFrom(to, "st-2"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if cl := verify(tok, "n-native-2"); cl.ACR != "urn:gatehouse:aal2" || !slices.Equal(cl.AMR, []string{"pwd", "mfa"}) {
		t.Errorf("ID token after a recovery code: acr %q amr %v, want aal2 with pwd, mfa", cl.ACR, cl.AMR)
	}
	if strings.Contains(env.Logs(), secret) || strings.Contains(env.Logs(), recovery[0]) {
		t.Errorf("the logs contain the TOTP secret or a recovery code")
	}
}
