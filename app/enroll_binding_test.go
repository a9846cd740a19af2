package app_test

// What a session started, only that session finishes (issue 12, defect 3;
// SECURITY rule 12): a pending authenticator-app setup and a key
// registration belong to the session and the step-up that began them.
// Another session of the same member (bearer, browser, trusted aal1
// browser) neither reads nor confirms them and does not become aal2; the
// same session after a new step-up starts again. Real SQLite, the whole
// stack.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app/apptest"
)

// totpSetupAPI starts an authenticator app setup for the session of tok and
// returns its secret.
func totpSetupAPI(t *testing.T, c *apptest.Client, slug, tok string) string {
	t.Helper()
	res := c.API(http.MethodPost, api(slug, "/mfa/totp/setup"), tok, nil)
	secret, _ := res.JSON()["secret"].(string)
	if res.StatusCode != http.StatusOK || secret == "" {
		t.Fatalf("totp setup = %d %s", res.StatusCode, res.Body)
	}
	return secret
}

func apiAAL(t *testing.T, c *apptest.Client, slug, tok string) string {
	t.Helper()
	res := c.API(http.MethodGet, api(slug, "/session"), tok, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET session = %d %s", res.StatusCode, res.Body)
	}
	aal, _ := res.JSON()["aal"].(string)
	return aal
}

// otherSessionCannotConfirm checks that the browser p neither sees nor
// confirms the pending setup whose current code is code, and stays aal1.
func otherSessionCannotConfirm(t *testing.T, p *apptest.Client, slug, code string) {
	t.Helper()
	res := p.Get("/t/" + slug + "/account/mfa/totp")
	if res.StatusCode != http.StatusSeeOther || p.Get("/t/"+slug+"/account/mfa/totp").Doc().Find("[data-testid=totp-secret]").Length() != 0 {
		t.Fatalf("another session's GET of the pending setup = %d, want 303 and no secret", res.StatusCode)
	}
	res = p.PostForm("/t/"+slug+"/account/mfa/totp", url.Values{"code": {code}})
	if res.StatusCode == http.StatusOK || strings.Contains(location(res), "totp_enabled") {
		t.Fatalf("another session confirmed the pending setup: %d %q", res.StatusCode, location(res))
	}
	if aal := pageSession(t, p, slug).JSON()["aal"]; aal != "aal1" {
		t.Fatalf("another session's confirmation made it %v", aal)
	}
}

// A setup begun by one bearer session: a second bearer session and a
// browser session of the same member can neither read nor confirm it, nor
// become aal2; the first session then confirms it with the same code.
func TestTOTPEnrollmentBoundToSession(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	alignClock(env)
	a := env.Client()
	tokA := a.APILogin("acme", "alice@acme.test", pw)
	secret := totpSetupAPI(t, a, "acme", tokA)
	code := nowCode(t, env, secret)

	b := env.Client()
	tokB := b.APILogin("acme", "alice@acme.test", pw)
	res := b.API(http.MethodPost, api("acme", "/mfa/totp/verify-setup"), tokB, map[string]string{"code": code})
	if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusNotFound {
		t.Fatalf("verify-setup from another bearer session = %d %s, want 400 or 404", res.StatusCode, res.Body)
	}
	if aal := apiAAL(t, b, "acme", tokB); aal != "aal1" {
		t.Fatalf("the other bearer session is %s", aal)
	}

	p := env.Client()
	p.Login("acme", "alice@acme.test", pw)
	otherSessionCannotConfirm(t, p, "acme", code)
	if hasTOTP(t, env, alice) {
		t.Fatal("another session turned the app on")
	}

	res = a.API(http.MethodPost, api("acme", "/mfa/totp/verify-setup"), tokA, map[string]string{"code": code})
	if res.StatusCode != http.StatusOK || res.JSON()["enabled"] != true {
		t.Fatalf("verify-setup from the session that began it = %d %s", res.StatusCode, res.Body)
	}
	tokA = rotated(t, res) // aal2 now: the token rotated
	if aal := apiAAL(t, a, "acme", tokA); aal != "aal2" {
		t.Fatalf("the confirming session is %s", aal)
	}
}

// With a key as first second factor: a trusted browser (aal1) and another
// aal2 session cannot read or confirm the authenticator-app setup the key's
// session began, nor finish its key registration; after a new step-up the
// same session's old setup is gone too. The beginning session finishes
// both.
func TestEnrollmentBoundToSessionAndStepUp(t *testing.T) {
	t.Parallel()
	env, _, alice := waSetup(t)
	setTrustedDays(t, env, "acme", trustDays)
	alignClock(env)
	k := env.Client()
	tokK := k.APILogin("acme", "alice@acme.test", pw)
	key, res := register(t, env, "acme", tokK, "Key", virtualwebauthn.AuthenticatorOptions{})
	tokK = rotated(t, res) // aal2 now: the token rotated
	var rc []string
	for _, c := range res.JSON()["recovery_codes"].([]any) {
		rc = append(rc, c.(string))
	}

	// A trusted browser: the challenge once with "trust", then aal1 sign-ins.
	d := env.Client()
	d.Login("acme", "alice@acme.test", pw)
	if res := d.PostForm("/t/acme/login/mfa", url.Values{"recovery_code": {rc[0]}, "trust_device": {"1"}}); !passed(res, "acme") {
		t.Fatalf("challenge with trust = %d %q", res.StatusCode, location(res))
	}
	if !signInAgain(t, d, "acme", "alice@acme.test", pw) {
		t.Fatal("the trusted browser was challenged")
	}
	other := keyLogin(t, env, "acme", "alice@acme.test", pw, key) // another aal2 session

	secret := totpSetupAPI(t, k, "acme", tokK)
	code := nowCode(t, env, secret)
	otherSessionCannotConfirm(t, d, "acme", code)
	res = env.Client().API(http.MethodPost, api("acme", "/mfa/totp/verify-setup"), other, map[string]string{"code": code})
	if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusNotFound {
		t.Fatalf("verify-setup from another aal2 session = %d %s", res.StatusCode, res.Body)
	}

	// A new step-up changes what the session proved: the setup is gone.
	env.Clock.Advance(time.Minute)
	res = k.API(http.MethodPost, api("acme", "/step-up"), tokK, map[string]string{"recovery_code": rc[1]})
	tokK, _ = res.JSON()["session_token"].(string)
	if res.StatusCode != http.StatusOK || tokK == "" {
		t.Fatalf("step-up = %d %s", res.StatusCode, res.Body)
	}
	res = k.API(http.MethodPost, api("acme", "/mfa/totp/verify-setup"), tokK, map[string]string{"code": nowCode(t, env, secret)})
	if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusNotFound {
		t.Fatalf("verify-setup after a new step-up = %d %s, want 400 or 404", res.StatusCode, res.Body)
	}
	if hasTOTP(t, env, alice) {
		t.Fatal("the app was turned on by a session that did not begin its setup")
	}
	secret = totpSetupAPI(t, k, "acme", tokK)
	res = k.API(http.MethodPost, api("acme", "/mfa/totp/verify-setup"), tokK, map[string]string{"code": nowCode(t, env, secret)})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("verify-setup of the session's own new setup = %d %s", res.StatusCode, res.Body)
	}
	tokK = rotated(t, res)

	// A key registration begun by k: neither the trusted browser's page nor
	// the other session's API finishes it; k does.
	cer, opts := registerBegin(t, k, "acme", tokK, "Second key")
	att := newKey(rpOf(env, "acme"), opts, virtualwebauthn.AuthenticatorOptions{}).attest(opts)
	body := map[string]any{"ceremony": cer, "credential": json.RawMessage(att)}
	res = pageJSON(d, "/t/acme/account/mfa/webauthn/register/finish", body)
	wantErr(t, "registration finished by a trusted browser", res, "invalid_credential", http.StatusBadRequest)
	if aal := pageSession(t, d, "acme").JSON()["aal"]; aal != "aal1" {
		t.Fatalf("the trusted browser became %v", aal)
	}
	wantErr(t, "registration finished by another session", registerFinish(env.Client(), "acme", other, cer, att), "invalid_credential", http.StatusBadRequest)
	if n := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?`, alice.ID); n != 1 {
		t.Fatalf("%d keys after other sessions tried to finish, want 1", n)
	}
	if res := registerFinish(k, "acme", tokK, cer, att); res.StatusCode != http.StatusOK {
		t.Fatalf("registration finished by the session that began it = %d %s", res.StatusCode, res.Body)
	}
}

// A key registration begun by one bearer session of a member without a
// second factor cannot be finished by a second bearer session; the first
// finishes it.
func TestWebAuthnRegistrationBoundToSession(t *testing.T) {
	t.Parallel()
	env, _, alice := waSetup(t)
	a := env.Client()
	tokA := a.APILogin("acme", "alice@acme.test", pw)
	cer, opts := registerBegin(t, a, "acme", tokA, "Key")
	att := newKey(rpOf(env, "acme"), opts, virtualwebauthn.AuthenticatorOptions{}).attest(opts)

	b := env.Client()
	tokB := b.APILogin("acme", "alice@acme.test", pw)
	wantErr(t, "registration finished by another session", registerFinish(b, "acme", tokB, cer, att), "invalid_credential", http.StatusBadRequest)
	if aal := apiAAL(t, b, "acme", tokB); aal != "aal1" {
		t.Fatalf("the other session is %s", aal)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?`, alice.ID); n != 0 {
		t.Fatalf("%d keys registered by another session", n)
	}
	if res := registerFinish(a, "acme", tokA, cer, att); res.StatusCode != http.StatusOK {
		t.Fatalf("registration finished by the session that began it = %d %s", res.StatusCode, res.Body)
	}
}
