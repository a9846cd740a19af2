package app_test

// The last allowed factor under a requirement cannot be removed, even by
// two removals racing: the check and the delete are one transaction.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// requireSystem puts ws under "required" (both methods, 14 days' grace)
// as the CLI does.
func requireSystem(t *testing.T, env *apptest.Env, ws db.Workspace, methods ...string) {
	t.Helper()
	if len(methods) == 0 {
		methods = []string{db.MethodTOTP, db.MethodWebAuthn}
	}
	p := db.Policy{Mode: db.PolicyRequired, Methods: methods, GraceDays: 14, ReminderDays: []int{7, 3, 1}}
	if _, _, err := env.Store.SetPolicy(context.Background(), ws.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
}

// apiRequest builds a JSON request with a bearer token.
func apiRequest(env *apptest.Env, method, path, token string, body any) *http.Request {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, env.HTTP.URL+path, bytes.NewReader(b))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

func keyCount(t testing.TB, env *apptest.Env, u db.User) int64 {
	return countFor(t.(*testing.T), env, "webauthn_credentials", u)
}

// oneWon fails unless exactly one of the statuses is 204 and the other
// refused: 409, or 401 when that request authenticated after the winner
// had ended the member's other sessions (or bumped the epoch of the shared
// one). It reports whether a session died that way.
func oneWon(t *testing.T, what string, codes []int) (unauthenticated bool) {
	t.Helper()
	won, refused := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusNoContent:
			won++
		case http.StatusConflict:
			refused++
		case http.StatusUnauthorized:
			refused++
			unauthenticated = true
		}
	}
	if won != 1 || refused != len(codes)-1 {
		t.Fatalf("%s: statuses %v, want one 204 and the rest 409 (or 401)", what, codes)
	}
	return unauthenticated
}

func TestEnforceRemovalRaceKeys(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	k, _ := register(t, env, "acme", env.Client().APILogin("acme", "alice@acme.test", pw), "Key 0", virtualwebauthn.AuthenticatorOptions{})
	keys := map[int64]*vkey{k.id: k}
	requireSystem(t, env, acme)
	tok := ""
	conflicts := 0
	for i := range 25 {
		creds, err := env.Store.WebAuthnCredentials(context.Background(), acme.ID, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if tok == "" {
			tok = keyLogin(t, env, "acme", "alice@acme.test", pw, keys[creds[0].ID])
		}
		if len(creds) < 2 {
			k, res := register(t, env, "acme", tok, fmt.Sprintf("Key %d", i+1), virtualwebauthn.AuthenticatorOptions{})
			tok = rotated(t, res) // registering raised the session to aal2 under a new token
			keys[k.id] = k
			creds, _ = env.Store.WebAuthnCredentials(context.Background(), acme.ID, alice.ID)
		}
		codes := race(len(creds), func(j int) (*http.Request, *http.Client) {
			return apiRequest(env, http.MethodDelete, fmt.Sprintf("/t/acme/api/v1/mfa/webauthn/%d", creds[j].ID), tok, nil), env.Client().Client
		})
		if oneWon(t, fmt.Sprintf("iteration %d", i), codes) {
			tok = "" // the shared session died with the winner's epoch bump
		} else {
			conflicts++
		}
		if n := keyCount(t, env, alice); n != 1 {
			t.Fatalf("iteration %d: %d keys left, want 1", i, n)
		}
	}
	t.Logf("%d of 25 losers refused by the policy (409), the others unauthenticated", conflicts)
	// The survivor is refused with the policy's error, and stays.
	creds, _ := env.Store.WebAuthnCredentials(context.Background(), acme.ID, alice.ID)
	tok = keyLogin(t, env, "acme", "alice@acme.test", pw, keys[creds[0].ID])
	res := env.Client().API(http.MethodDelete, fmt.Sprintf("/t/acme/api/v1/mfa/webauthn/%d", creds[0].ID), tok, nil)
	wantErr(t, "DELETE the last key", res, "factor_required_by_policy", http.StatusConflict)
	if n := keyCount(t, env, alice); n != 1 {
		t.Fatalf("%d keys after the refusal", n)
	}
	if n := auditCount(t, env, alice, db.EventWebAuthnRemoved); n != 25 {
		t.Errorf("%d key removals audited, want 25", n)
	}
}

// An authenticator app and a key removed at once: one goes, one stays.
func TestEnforceRemovalRaceTOTPAndKey(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	k, _ := register(t, env, "acme", env.Client().APILogin("acme", "alice@acme.test", pw), "Key", virtualwebauthn.AuthenticatorOptions{})
	requireSystem(t, env, acme)
	secret := ""
	for i := range 12 {
		// A fresh aal2 session each round, with whichever factor is left.
		var tok string
		if keyCount(t, env, alice) > 0 {
			tok = keyLogin(t, env, "acme", "alice@acme.test", pw, k)
		} else {
			mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
			res := loginMFA(env, "acme", map[string]string{"mfa_token": mt, "code": nextCode(t, env, secret)})
			tok, _ = res.JSON()["session_token"].(string)
			if tok == "" {
				t.Fatalf("iteration %d: sign-in with the app = %d %s", i, res.StatusCode, res.Body)
			}
		}
		if keyCount(t, env, alice) == 0 {
			var res *apptest.Response
			k, res = register(t, env, "acme", tok, fmt.Sprintf("Key %d", i), virtualwebauthn.AuthenticatorOptions{})
			tok = rotated(t, res) // registering raised the session to aal2 under a new token
		}
		if !hasTOTP(t, env, alice) {
			res := env.Client().API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil)
			secret, _ = res.JSON()["secret"].(string)
			res = env.Client().API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", tok, map[string]string{"code": nowCode(t, env, secret)})
			if res.StatusCode != http.StatusOK {
				t.Fatalf("iteration %d: enroll the app = %d %s", i, res.StatusCode, res.Body)
			}
			tok = rotated(t, res)
		}
		code := nextCode(t, env, secret)
		codes := race(2, func(j int) (*http.Request, *http.Client) {
			if j == 0 {
				return apiRequest(env, http.MethodDelete, "/t/acme/api/v1/mfa/totp", tok, map[string]string{"code": code}), env.Client().Client
			}
			return apiRequest(env, http.MethodDelete, fmt.Sprintf("/t/acme/api/v1/mfa/webauthn/%d", k.id), tok, nil), env.Client().Client
		})
		oneWon(t, fmt.Sprintf("iteration %d", i), codes)
		left := keyCount(t, env, alice)
		if hasTOTP(t, env, alice) {
			left++
		}
		if left != 1 {
			t.Fatalf("iteration %d: %d factors left, want 1", i, left)
		}
	}
}
