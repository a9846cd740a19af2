package app_test

// Methods the policy does not allow cannot be enrolled (API and page), and
// the last allowed factor cannot be removed (the key's DELETE and the
// page), with nothing stored or deleted.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const notAllowedMessage = "Your workspace does not allow this method of two-step verification."

// enrollState counts what enrolling leaves behind for the member.
func enrollState(t *testing.T, env *apptest.Env, u db.User) string {
	t.Helper()
	return fmt.Sprintf("totp=%d keys=%d ceremonies=%d codes=%d audit=%d",
		countFor(t, env, "totp_credentials", u), countFor(t, env, "webauthn_credentials", u),
		countFor(t, env, "webauthn_ceremonies", u), countFor(t, env, "recovery_codes", u),
		queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND subject_user_id = ?`, u.WorkspaceID, u.ID))
}

func TestEnforceMethodNotAllowed(t *testing.T) {
	t.Parallel()
	t.Run("TOTP", func(t *testing.T) {
		env, acme, alice := setup(t)
		requireSystem(t, env, acme, db.MethodWebAuthn)
		c := env.Client()
		tok := c.APILogin("acme", "alice@acme.test", pw)
		page := env.Client()
		page.Login("acme", "alice@acme.test", pw)
		before := enrollState(t, env, alice)
		res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil)
		wantErr(t, "POST /mfa/totp/setup", res, "method_not_allowed", http.StatusForbidden)
		res = c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", tok, map[string]string{"code": "123456"})
		wantErr(t, "POST /mfa/totp/verify-setup", res, "method_not_allowed", http.StatusForbidden)

		res = page.PostForm("/t/acme/account/mfa/totp/setup", nil)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(string(res.Body), notAllowedMessage) {
			t.Fatalf("page setup = %d %s", res.StatusCode, res.Body)
		}
		if after := enrollState(t, env, alice); after != before {
			t.Fatalf("refused enrollment stored something: %s -> %s", before, after)
		}
	})
	t.Run("WebAuthn", func(t *testing.T) {
		env, acme, alice := waSetup(t)
		requireSystem(t, env, acme, db.MethodTOTP)
		c := env.Client()
		tok := c.APILogin("acme", "alice@acme.test", pw)
		page := env.Client()
		page.Login("acme", "alice@acme.test", pw)
		before := enrollState(t, env, alice)
		res := c.API(http.MethodPost, api("acme", "/mfa/webauthn/register/begin"), tok, map[string]string{"name": "Key"})
		wantErr(t, "POST /mfa/webauthn/register/begin", res, "method_not_allowed", http.StatusForbidden)
		res = c.API(http.MethodPost, api("acme", "/mfa/webauthn/register/finish"), tok, map[string]any{"ceremony": "x", "credential": map[string]any{}})
		wantErr(t, "POST /mfa/webauthn/register/finish", res, "method_not_allowed", http.StatusForbidden)

		res = pageJSON(page, "/t/acme/account/mfa/webauthn/register/begin", map[string]string{"name": "Key"})
		wantErr(t, "page register begin", res, "method_not_allowed", http.StatusForbidden)
		if res.JSON()["message"] != notAllowedMessage {
			t.Fatalf("page register begin message = %s", res.Body)
		}
		if after := enrollState(t, env, alice); after != before {
			t.Fatalf("refused enrollment stored something: %s -> %s", before, after)
		}
	})
	// A member the requirement does not cover may enroll any method.
	t.Run("NotCovered", func(t *testing.T) {
		env, acme, _ := setup(t)
		p := db.DefaultPolicy()
		p.Mode, p.Methods = db.PolicyRequiredForAdmins, []string{db.MethodWebAuthn}
		if _, _, err := env.Store.SetPolicy(t.Context(), acme.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
			t.Fatal(err)
		}
		c := env.Client()
		tok := c.APILogin("acme", "alice@acme.test", pw)
		if res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("member not covered: setup = %d %s", res.StatusCode, res.Body)
		}
	})
}

// removalState is what removing a factor changes.
func removalState(t *testing.T, env *apptest.Env, u db.User) string {
	t.Helper()
	return fmt.Sprintf("totp=%d keys=%d codes=%d epoch=%d removed=%d mails=%d sessions=%d",
		countFor(t, env, "totp_credentials", u), countFor(t, env, "webauthn_credentials", u), countFor(t, env, "recovery_codes", u),
		queryInt(t, env, `SELECT session_epoch FROM users WHERE id = ?`, u.ID),
		auditCount(t, env, u, db.EventWebAuthnRemoved)+auditCount(t, env, u, db.EventTOTPRemoved),
		queryInt(t, env, `SELECT COUNT(*) FROM outbox WHERE workspace_id = ?`, u.WorkspaceID),
		activeSessions(t, env, u))
}

// The key is alice's last allowed factor (her authenticator app is not
// allowed): DELETE and the page's remove are refused, nothing changes.
func TestEnforceLastKeyRequired(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	secret, _, tok := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	k, res := register(t, env, "acme", tok, "Key", virtualwebauthn.AuthenticatorOptions{})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	requireSystem(t, env, acme, db.MethodWebAuthn)
	page := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if res := challengeWith(env, page, "acme", nextCode(t, env, secret)); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("page challenge = %d", res.StatusCode)
	}
	before := removalState(t, env, alice)

	res = env.Client().API(http.MethodDelete, fmt.Sprintf("/t/acme/api/v1/mfa/webauthn/%d", k.id), tok, nil)
	wantErr(t, "DELETE the last allowed key", res, "factor_required_by_policy", http.StatusConflict)
	if res.JSON()["message"] == "" {
		t.Errorf("no message in %s", res.Body)
	}
	res = page.PostForm(fmt.Sprintf("/t/acme/account/mfa/webauthn/%d/remove", k.id), nil)
	if res.StatusCode != http.StatusConflict || !strings.Contains(string(res.Body), "add another allowed method before removing this one") {
		t.Fatalf("page remove = %d %s", res.StatusCode, res.Body)
	}
	if after := removalState(t, env, alice); after != before {
		t.Fatalf("refused removal changed something: %s -> %s", before, after)
	}
	// The authenticator app is not allowed: it may go, and the key stays
	// required.
	if res := env.Client().API(http.MethodDelete, "/t/acme/api/v1/mfa/totp", tok, map[string]string{"code": nextCode(t, env, secret)}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE the app = %d %s", res.StatusCode, res.Body)
	}
	res = env.Client().API(http.MethodDelete, fmt.Sprintf("/t/acme/api/v1/mfa/webauthn/%d", k.id), tok, nil)
	wantErr(t, "DELETE the only key", res, "factor_required_by_policy", http.StatusConflict)
	if n := countFor(t, env, "webauthn_credentials", alice); n != 1 {
		t.Fatalf("%d keys", n)
	}
}
