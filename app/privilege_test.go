package app_test

// A change of privilege never keeps the session token (SECURITY rule 5,
// issue 12 defect 8): a role change ends the member's sessions, and an API
// enrollment that raises a bearer session to aal2 rotates its token and
// returns the new one.

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// sessionOf is GET /session with tok: its status and, when 200, the body.
func sessionOf(env *apptest.Env, tok string) (int, map[string]any) {
	res := env.Client().API(http.MethodGet, "/t/acme/api/v1/session", tok, nil)
	return res.StatusCode, res.JSON()
}

func TestRoleChangeEndsMemberSessions(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env, alice := a.env, a.alice
	browser := env.Client()
	browser.Login("acme", "alice@acme.test", pw)
	tok := env.Client().APILogin("acme", "alice@acme.test", pw)

	// Promotion on the admin's page: every token alice held dies with it,
	// whoever holds a copy.
	if res := a.c.PostForm(memberPath(alice, "role"), url.Values{"role": {"admin"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("promote = %d %s", res.StatusCode, res.Body)
	}
	if status, _ := sessionOf(env, tok); status != http.StatusUnauthorized {
		t.Errorf("alice's bearer token after her promotion = %d, want 401", status)
	}
	if signedIn(t, browser, "acme") {
		t.Error("alice's browser session survived her promotion")
	}
	if n := activeSessions(t, env, alice); n != 0 {
		t.Errorf("%d sessions of alice active after her promotion", n)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM user_sessions WHERE user_id = ? AND ended_reason = 'role_changed'`, alice.ID); n != 2 {
		t.Errorf("%d sessions ended as role_changed, want 2", n)
	}

	// Signed in again, she is an admin under a new token.
	tok = env.Client().APILogin("acme", "alice@acme.test", pw)
	if status, body := sessionOf(env, tok); status != http.StatusOK || body["user"].(map[string]any)["role"] != db.RoleAdmin {
		t.Fatalf("alice signed in again = %d %v", status, body)
	}

	// Demotion through the admin API: the same.
	res := a.c.API(http.MethodPost, apiMemberPath(alice.ID, "role"), a.token, map[string]string{"role": "member"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("demote = %d %s", res.StatusCode, res.Body)
	}
	if status, _ := sessionOf(env, tok); status != http.StatusUnauthorized {
		t.Errorf("alice's token after her demotion = %d, want 401", status)
	}
	// The admin who made the changes keeps their own session.
	if status, _ := sessionOf(env, a.token); status != http.StatusOK {
		t.Errorf("the admin's token after changing alice's role = %d", status)
	}
	// An unchanged role ends nothing.
	tok = env.Client().APILogin("acme", "alice@acme.test", pw)
	a.c.API(http.MethodPost, apiMemberPath(alice.ID, "role"), a.token, map[string]string{"role": "member"})
	if status, _ := sessionOf(env, tok); status != http.StatusOK {
		t.Errorf("alice's token after a role change to the same role = %d", status)
	}
}

// Confirming an authenticator app or registering a key through the API
// raises the bearer session to aal2 under a new token, returned as
// session_token; the old token is dead.
func TestAPIEnrollmentRotatesToken(t *testing.T) {
	t.Parallel()
	env, acme, _ := waSetup(t)
	env.User(acme, "bob@acme.test", db.RoleMember, pw)
	c := env.Client()

	t.Run("TOTP", func(t *testing.T) {
		old := c.APILogin("acme", "alice@acme.test", pw)
		res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", old, nil)
		secret, _ := res.JSON()["secret"].(string)
		res = c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", old, map[string]string{"code": nowCode(t, env, secret)})
		if res.StatusCode != http.StatusOK || res.JSON()["enabled"] != true {
			t.Fatalf("verify-setup = %d %s", res.StatusCode, res.Body)
		}
		checkRotated(t, env, old, res)
	})
	t.Run("WebAuthn", func(t *testing.T) {
		old := c.APILogin("acme", "bob@acme.test", pw)
		_, res := register(t, env, "acme", old, "YubiKey", virtualwebauthn.AuthenticatorOptions{})
		checkRotated(t, env, old, res)
	})
}

func checkRotated(t *testing.T, env *apptest.Env, old string, res *apptest.Response) {
	t.Helper()
	tok, _ := res.JSON()["session_token"].(string)
	if tok == "" || tok == old {
		t.Fatalf("session_token = %q (old %q) in %s, want a new token", tok, old, res.Body)
	}
	if status, _ := sessionOf(env, old); status != http.StatusUnauthorized {
		t.Errorf("the token used to enroll = %d after enrollment, want 401", status)
	}
	if status, body := sessionOf(env, tok); status != http.StatusOK || body["aal"] != "aal2" {
		t.Errorf("the new token = %d %v, want aal2", status, body)
	}
}
