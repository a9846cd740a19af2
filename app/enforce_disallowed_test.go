package app_test

// A member whose only factor is one the policy does not allow is not
// compliant: passing the challenge with it leads to the interstitial in
// grace and to enrollment only past the deadline, as for a member with no
// factor at all.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// pageJSON posts JSON from a page (the WebAuthn ceremonies' fetch calls),
// with the CSRF header.
func pageJSON(c *apptest.Client, path string, body any) *apptest.Response {
	c.Env.T.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.URL(path), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", c.CSRF())
	return c.Do(req)
}

// pageAssertion runs a page's WebAuthn assertion (begin, then finish with
// the key) and returns the finish response.
func pageAssertion(t *testing.T, c *apptest.Client, begin, finish string, k *vkey) *apptest.Response {
	t.Helper()
	res := pageJSON(c, begin, map[string]any{})
	var b ceremonyJSON
	if err := json.Unmarshal(res.Body, &b); res.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("POST %s = %d %s", begin, res.StatusCode, res.Body)
	}
	opts, err := virtualwebauthn.ParseAssertionOptions(string(b.Options))
	if err != nil {
		t.Fatalf("assertion options %s: %v", b.Options, err)
	}
	return pageJSON(c, finish, map[string]any{"ceremony": b.Ceremony, "credential": json.RawMessage(k.sign(opts))})
}

func TestEnforceDisallowedFactorTOTP(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)

	t.Run("AllowedNoInterstitial", func(t *testing.T) {
		requireSystem(t, env, acme)
		c := pendingPage(t, env, "acme", "alice@acme.test", pw)
		if res := challengeWith(env, c, "acme", nextCode(t, env, secret)); location(res) != "/t/acme/account" {
			t.Fatalf("compliant member's challenge goes to %q", location(res))
		}
	})

	// Passkeys only: alice's authenticator app no longer counts.
	requireSystem(t, env, acme, db.MethodWebAuthn)

	t.Run("Grace", func(t *testing.T) {
		c := pendingPage(t, env, "acme", "alice@acme.test", pw)
		res := challengeWith(env, c, "acme", nextCode(t, env, secret))
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(location(res), "/t/acme/account/enroll?next=") {
			t.Fatalf("challenge with the app goes to %d %q, want the interstitial", res.StatusCode, location(res))
		}
		res = c.Get(location(res))
		body := string(res.Body)
		if res.StatusCode != http.StatusOK || !strings.Contains(body, "days left") || !strings.Contains(body, "Remind me later") {
			t.Fatalf("interstitial = %d %s", res.StatusCode, body)
		}
		// "Remind me later": the portal, with the banner.
		res = c.Get("/t/acme/account")
		if res.StatusCode != http.StatusOK || res.Doc().Find(".banner a[href='/t/acme/account/enroll']").Length() != 1 {
			t.Fatalf("portal in grace = %d, no banner", res.StatusCode)
		}
	})

	t.Run("PastDeadline", func(t *testing.T) {
		env.Clock.Advance(15 * 24 * time.Hour)
		c := pendingPage(t, env, "acme", "alice@acme.test", pw)
		res := challengeWith(env, c, "acme", nextCode(t, env, secret))
		if !strings.HasPrefix(location(res), "/t/acme/account/enroll") {
			t.Fatalf("past deadline: challenge goes to %q", location(res))
		}
		for _, p := range []string{"/t/acme/account", "/t/acme/account/sessions/end-others"} {
			var res *apptest.Response
			if strings.HasSuffix(p, "end-others") {
				res = c.PostForm(p, nil)
			} else {
				res = c.Get(p)
			}
			if res.StatusCode != http.StatusSeeOther || location(res) != "/t/acme/account/enroll" {
				t.Fatalf("%s past deadline = %d %q, want confined", p, res.StatusCode, location(res))
			}
		}
		if res := c.Get("/t/acme/account/enroll"); res.StatusCode != http.StatusOK {
			t.Fatalf("enroll page = %d", res.StatusCode)
		}
		// The API alike: the session is confined to enrollment.
		mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
		res = loginMFA(env, "acme", map[string]string{"mfa_token": mt, "code": nextCode(t, env, secret)})
		tok, _ := res.JSON()["session_token"].(string)
		if res.StatusCode != http.StatusOK || tok == "" {
			t.Fatalf("API sign-in = %d %s", res.StatusCode, res.Body)
		}
		res = env.Client().API(http.MethodGet, "/t/acme/api/v1/session", tok, nil)
		wantErr(t, "GET /session past deadline", res, "mfa_enrollment_required", http.StatusForbidden)
	})
}

// A security key under an authenticator-app-only policy, on the page's
// key challenge and as a passkey that satisfies MFA.
func TestEnforceDisallowedFactorKey(t *testing.T) {
	t.Parallel()
	env, acme, _ := waSetup(t)
	k, _ := register(t, env, "acme", env.Client().APILogin("acme", "alice@acme.test", pw), "Key", virtualwebauthn.AuthenticatorOptions{})
	requireSystem(t, env, acme, db.MethodTOTP)

	c := env.Client()
	if res := c.Login("acme", "alice@acme.test", pw); !strings.HasPrefix(location(res), "/t/acme/login/mfa") {
		t.Fatalf("password step goes to %q", location(res))
	}
	res := pageAssertion(t, c, "/t/acme/login/mfa/webauthn/begin", "/t/acme/login/mfa/webauthn/finish?next=/t/acme/account", k)
	if target, _ := res.JSON()["redirect"].(string); res.StatusCode != http.StatusOK || !strings.HasPrefix(target, "/t/acme/account/enroll?next=") {
		t.Fatalf("key challenge = %d %s, want the interstitial", res.StatusCode, res.Body)
	}

	if err := env.Store.SetPasskeySettings(t.Context(), acme.ID, db.PasskeySettings{SatisfyMFA: true}); err != nil {
		t.Fatal(err)
	}
	c = env.Client()
	res = pageAssertion(t, c, "/t/acme/login/passkey/begin", "/t/acme/login/passkey/finish", k)
	if target, _ := res.JSON()["redirect"].(string); res.StatusCode != http.StatusOK || !strings.HasPrefix(target, "/t/acme/account/enroll?next=") {
		t.Fatalf("passkey sign-in = %d %s, want the interstitial", res.StatusCode, res.Body)
	}
	if !signedIn(t, c, "acme") {
		t.Fatal("not signed in after the passkey")
	}
}
