package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/mfa"
)

// TestTOTPHappyPath enrolls through the API, signs in through the challenge
// page, and checks the basics; the adversarial suite lives beside it.
func TestTOTPHappyPath(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("setup = %d %s", res.StatusCode, res.Body)
	}
	secret := res.JSON()["secret"].(string)
	if !strings.HasPrefix(res.JSON()["otpauth_uri"].(string), "otpauth://totp/Acme:alice@acme.test?") {
		t.Errorf("uri = %v", res.JSON()["otpauth_uri"])
	}
	code, _ := mfa.CodeAt(secret, mfa.Step(env.Clock.Now()), 6)
	res = c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", tok, map[string]string{"code": code})
	codes, _ := res.JSON()["recovery_codes"].([]any)
	if res.StatusCode != http.StatusOK || len(codes) != 10 {
		t.Fatalf("verify-setup = %d %s", res.StatusCode, res.Body)
	}
	// The enrollment code is consumed: it cannot sign in.
	env.Clock.Advance(time.Second)
	b := env.Client()
	b.Login("acme", "alice@acme.test", pw)
	if res := b.Get("/t/acme/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("pending state opened the portal: %d", res.StatusCode)
	}
	res = b.PostForm("/t/acme/login/mfa", url.Values{"code": {code}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("enrollment code reused = %d", res.StatusCode)
	}
	env.Clock.Advance(30 * time.Second)
	code2, _ := mfa.CodeAt(secret, mfa.Step(env.Clock.Now()), 6)
	res = b.PostForm("/t/acme/login/mfa", url.Values{"code": {code2}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account" {
		t.Fatalf("challenge = %d %q %s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	if !signedIn(t, b, "acme") {
		t.Fatal("not signed in after the challenge")
	}
	// API: password then recovery code.
	res = c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
	mfaTok, _ := res.JSON()["mfa_token"].(string)
	if res.StatusCode != http.StatusOK || res.JSON()["mfa_required"] != true || mfaTok == "" {
		t.Fatalf("login = %d %s", res.StatusCode, res.Body)
	}
	if res := c.API(http.MethodGet, "/t/acme/api/v1/session", mfaTok, nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("mfa_token as a session = %d", res.StatusCode)
	}
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/mfa", "", map[string]string{"mfa_token": mfaTok, "recovery_code": strings.ToUpper(strings.ReplaceAll(codes[0].(string), "-", ""))})
	if res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" || res.JSON()["remaining_recovery_codes"] != float64(9) {
		t.Fatalf("login/mfa = %d %s", res.StatusCode, res.Body)
	}
	sess := c.API(http.MethodGet, "/t/acme/api/v1/session", res.JSON()["session_token"].(string), nil)
	if sess.StatusCode != http.StatusOK || sess.JSON()["aal"] != "aal2" || len(sess.JSON()["amr"].([]any)) != 2 {
		t.Fatalf("session = %d %s", sess.StatusCode, sess.Body)
	}
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/mfa", "", map[string]string{"mfa_token": mfaTok, "recovery_code": codes[1].(string)})
	if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_mfa_token" {
		t.Fatalf("mfa_token reused = %d %s", res.StatusCode, res.Body)
	}
}
