package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/db"
)

// TestWebAuthnHappyPath registers a key through the API, signs in with the
// password and the key, then passwordless; the adversarial suite is beside
// it.
func TestWebAuthnHappyPath(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t, func(c *app.Config) {
		c.BaseURL, _ = app.ParseBaseURL("http://localhost:" + portOf(c.Addr))
	})
	rp := virtualwebauthn.RelyingParty{Name: "Acme", ID: "localhost", Origin: "http://localhost:" + portOf(env.Config.Addr)}
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)

	res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/begin", tok, map[string]string{"name": "YubiKey 5"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("register begin = %d %s", res.StatusCode, res.Body)
	}
	var begin struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	json.Unmarshal(res.Body, &begin)
	attOpts, err := virtualwebauthn.ParseAttestationOptions(string(begin.Options))
	if err != nil {
		t.Fatal(err)
	}
	authr := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(attOpts.UserID)})
	cred := newCredential() // not NewCredential: see newCredential
	att := virtualwebauthn.CreateAttestationResponse(rp, authr, cred, *attOpts)
	authr.AddCredential(cred)
	res = c.API(http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/finish", tok, map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(att)})
	if res.StatusCode != http.StatusOK || res.JSON()["name"] != "YubiKey 5" || len(res.JSON()["recovery_codes"].([]any)) != 10 {
		t.Fatalf("register finish = %d %s", res.StatusCode, res.Body)
	}

	// Password, then the key.
	res = c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
	mfaTok, _ := res.JSON()["mfa_token"].(string)
	if mfaTok == "" || res.JSON()["methods"].([]any)[0] != "webauthn" {
		t.Fatalf("login = %s", res.Body)
	}
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", "", map[string]string{"mfa_token": mfaTok})
	json.Unmarshal(res.Body, &begin)
	asOpts, err := virtualwebauthn.ParseAssertionOptions(string(begin.Options))
	if err != nil {
		t.Fatalf("assertion options %s: %v", res.Body, err)
	}
	cred.Counter++
	as := virtualwebauthn.CreateAssertionResponse(rp, authr, cred, *asOpts)
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/finish", "", map[string]any{"mfa_token": mfaTok, "ceremony": begin.Ceremony, "credential": json.RawMessage(as)})
	if res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" {
		t.Fatalf("second factor = %d %s", res.StatusCode, res.Body)
	}
	// Passwordless.
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", "", map[string]string{})
	json.Unmarshal(res.Body, &begin)
	asOpts, _ = virtualwebauthn.ParseAssertionOptions(string(begin.Options))
	cred.Counter++
	as = virtualwebauthn.CreateAssertionResponse(rp, authr, cred, *asOpts)
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/finish", "", map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(as)})
	amr, _ := res.JSON()["amr"].([]any)
	if res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" || len(amr) != 1 || amr[0].(map[string]any)["method"] != "passkey" {
		t.Fatalf("passwordless = %d %s", res.StatusCode, res.Body)
	}
	// Step-up with the key: eleven minutes after sign-in, removing it needs
	// a fresh assertion first.
	sessTok := res.JSON()["session_token"].(string)
	keyID := int64(0)
	for _, f := range c.API(http.MethodGet, "/t/acme/api/v1/mfa", sessTok, nil).JSON()["factors"].([]any) {
		if m := f.(map[string]any); m["type"] == "webauthn" {
			keyID = int64(m["id"].(float64))
		}
	}
	env.Clock.Advance(11 * time.Minute)
	del := "/t/acme/api/v1/mfa/webauthn/" + strconv.FormatInt(keyID, 10)
	if res := c.API(http.MethodDelete, del, sessTok, nil); res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
		t.Fatalf("delete without step-up = %d %s", res.StatusCode, res.Body)
	}
	res2 := c.API(http.MethodPost, "/t/acme/api/v1/step-up/webauthn/begin", sessTok, map[string]string{})
	var su struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	json.Unmarshal(res2.Body, &su)
	suOpts, err := virtualwebauthn.ParseAssertionOptions(string(su.Options))
	if err != nil {
		t.Fatalf("step-up options %s: %v", res2.Body, err)
	}
	cred.Counter++
	res2 = c.API(http.MethodPost, "/t/acme/api/v1/step-up/webauthn/finish", sessTok, map[string]any{"ceremony": su.Ceremony, "credential": json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, authr, cred, *suOpts))})
	fresh, _ := res2.JSON()["session_token"].(string)
	if res2.StatusCode != http.StatusOK || fresh == "" || fresh == sessTok {
		t.Fatalf("step-up = %d %s", res2.StatusCode, res2.Body)
	}
	if res := c.API(http.MethodDelete, del, fresh, nil); res.StatusCode != http.StatusNoContent {
		t.Fatalf("delete after step-up = %d %s", res.StatusCode, res.Body)
	}

	// The same assertion again (replay) is refused.
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/finish", "", map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(as)})
	if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed assertion = %d %s", res.StatusCode, res.Body)
	}
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}

// A synced passkey registered before "device-bound keys only" was turned
// on no longer signs in, and the refusal is not counted as an attack.
func TestWebAuthnDeviceBoundOnlyAtSignIn(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t, func(c *app.Config) {
		c.BaseURL, _ = app.ParseBaseURL("http://localhost:" + portOf(c.Addr))
	})
	rp := virtualwebauthn.RelyingParty{Name: "Acme", ID: "localhost", Origin: "http://localhost:" + portOf(env.Config.Addr)}
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/begin", tok, map[string]string{"name": "Phone"})
	var begin struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	json.Unmarshal(res.Body, &begin)
	attOpts, _ := virtualwebauthn.ParseAttestationOptions(string(begin.Options))
	authr := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(attOpts.UserID), BackupEligible: true, BackupState: true})
	cred := newCredential()
	att := virtualwebauthn.CreateAttestationResponse(rp, authr, cred, *attOpts)
	authr.AddCredential(cred)
	if res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/finish", tok, map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(att)}); res.StatusCode != http.StatusOK || res.JSON()["synced"] != true {
		t.Fatalf("register synced passkey = %d %s", res.StatusCode, res.Body)
	}
	if err := env.Store.SetPasskeySettings(context.Background(), acme.ID, db.PasskeySettings{SatisfyMFA: true, DeviceBoundOnly: true}); err != nil {
		t.Fatal(err)
	}
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", "", map[string]string{})
	json.Unmarshal(res.Body, &begin)
	asOpts, _ := virtualwebauthn.ParseAssertionOptions(string(begin.Options))
	cred.Counter++
	res = c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/finish", "", map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, authr, cred, *asOpts))})
	if res.StatusCode != http.StatusUnauthorized || res.JSON()["session_token"] != nil || !strings.Contains(res.JSON()["message"].(string), "synced") {
		t.Fatalf("synced passkey under device-bound-only = %d %s", res.StatusCode, res.Body)
	}
	if g, _ := env.Store.MFAGuard(context.Background(), acme.ID, alice.ID); g.Consecutive != 0 {
		t.Fatalf("the policy refusal was counted as a failure: %+v", g)
	}
}

// Starting passwordless ceremonies is bounded per client IP: each is a row,
// and anyone can ask for one.
func TestPasswordlessBeginBounded(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t, func(c *app.Config) {
		c.BaseURL, _ = app.ParseBaseURL("http://localhost:" + portOf(c.Addr))
	})
	c := env.Client()
	for i := range app.PasswordlessBeginLimit {
		if res := c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", "", map[string]string{}); res.StatusCode != http.StatusOK {
			t.Fatalf("begin %d = %d %s", i+1, res.StatusCode, res.Body)
		}
	}
	res := c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", "", map[string]string{})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("begin past the limit = %d, want 429 with Retry-After", res.StatusCode)
	}
	env.Clock.Advance(15 * time.Minute)
	if res := c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", "", map[string]string{}); res.StatusCode != http.StatusOK {
		t.Fatalf("begin after the window = %d", res.StatusCode)
	}
}

// With "passkeys satisfy MFA" off, a member whose only factors are keys
// (and recovery codes) is told to sign in with the password: recovery codes
// are not spent as an everyday second step.
func TestPasskeyNotEnoughWithoutApp(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t, func(c *app.Config) {
		c.BaseURL, _ = app.ParseBaseURL("http://localhost:" + portOf(c.Addr))
	})
	rp := virtualwebauthn.RelyingParty{Name: "Acme", ID: "localhost", Origin: "http://localhost:" + portOf(env.Config.Addr)}
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	var begin struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	json.Unmarshal(c.API(http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/begin", tok, map[string]string{"name": "Key"}).Body, &begin)
	attOpts, _ := virtualwebauthn.ParseAttestationOptions(string(begin.Options))
	authr := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(attOpts.UserID)})
	cred := newCredential()
	att := virtualwebauthn.CreateAttestationResponse(rp, authr, cred, *attOpts)
	authr.AddCredential(cred)
	if res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/finish", tok, map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(att)}); res.StatusCode != http.StatusOK {
		t.Fatalf("register = %d %s", res.StatusCode, res.Body)
	}
	env.Store.SetPasskeySettings(context.Background(), acme.ID, db.PasskeySettings{SatisfyMFA: false})
	json.Unmarshal(c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", "", map[string]string{}).Body, &begin)
	asOpts, _ := virtualwebauthn.ParseAssertionOptions(string(begin.Options))
	cred.Counter++
	res := c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/finish", "", map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, authr, cred, *asOpts))})
	if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "second_factor_required" || res.JSON()["mfa_token"] != nil {
		t.Fatalf("passkey alone, no app = %d %s", res.StatusCode, res.Body)
	}
}
