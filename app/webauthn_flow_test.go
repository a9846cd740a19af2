package app_test

// WebAuthn flows under attack: passwordless with and without user
// verification, "passkeys satisfy MFA" off, device-bound keys only,
// enrollment and removal, the lock, and malformed bodies. Helpers are in
// webauthn_test.go.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

// amrMethods lists the methods of a sign-in response's amr.
func amrMethods(res *apptest.Response) []string {
	var out []string
	list, _ := res.JSON()["amr"].([]any)
	for _, m := range list {
		mm, _ := m.(map[string]any)
		s, _ := mm["method"].(string)
		out = append(out, s)
	}
	return out
}

func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// Passwordless needs user verification: without it there is never a
// session (whatever the workspace setting); with it, aal2 and AMR passkey.
// For the second factor user verification is only preferred.
func TestWebAuthnPasswordlessUserVerification(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	c := env.Client()
	k, _ := register(t, env, "acme", c.APILogin("acme", "alice@acme.test", pw), "Key", virtualwebauthn.AuthenticatorOptions{})
	noUV := *k
	noUV.auth.Options.UserNotVerified = true
	before, sessions, aal2 := keyState(t, env, k.id), sessionCount(t, env, alice), aal2Sessions(t, env, alice)

	for _, satisfy := range []bool{true, false} {
		if err := env.Store.SetPasskeySettings(context.Background(), acme.ID, db.PasskeySettings{SatisfyMFA: satisfy}); err != nil {
			t.Fatal(err)
		}
		cer, opts := loginBegin(t, env, "acme", "")
		res := loginFinish(env, "acme", cer, noUV.signAt(noUV.rp, before.SignCount32()+1, opts), "")
		wantErr(t, fmt.Sprintf("passwordless without UV (satisfy MFA %v)", satisfy), res, "invalid_credential", http.StatusUnauthorized)
		if _, ok := res.JSON()["mfa_token"]; ok {
			t.Fatalf("passwordless without UV gave an mfa_token: %s", res.Body)
		}
	}
	if got := keyState(t, env, k.id); got != before {
		t.Fatalf("refused assertions moved the key: %+v -> %+v", before, got)
	}
	if sessionCount(t, env, alice) != sessions || aal2Sessions(t, env, alice) != aal2 {
		t.Fatal("a session was made without user verification")
	}

	env.Store.SetPasskeySettings(context.Background(), acme.ID, db.PasskeySettings{SatisfyMFA: true})
	k.cred.Counter = uint32(before.SignCount)
	cer, opts := loginBegin(t, env, "acme", "")
	res := loginFinish(env, "acme", cer, k.sign(opts), "")
	if res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" || strings.Join(amrMethods(res), ",") != "passkey" {
		t.Fatalf("passwordless with UV = %d %s, want aal2, amr [passkey]", res.StatusCode, res.Body)
	}
	tok := res.JSON()["session_token"].(string)
	if r := c.API(http.MethodGet, api("acme", "/mfa"), tok, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("the passwordless session can't read /mfa: %d", r.StatusCode)
	}
	if aal2Sessions(t, env, alice) != aal2+1 {
		t.Fatal("no aal2 session recorded")
	}

	// Second factor without UV: accepted (preferred, not required).
	noUV.cred.Counter = k.cred.Counter
	mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
	cer, opts = loginBegin(t, env, "acme", mt)
	res = loginFinish(env, "acme", cer, noUV.sign(opts), mt)
	if m := amrMethods(res); res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" || len(m) != 2 || m[1] != "webauthn" {
		t.Fatalf("second factor without UV = %d %s", res.StatusCode, res.Body)
	}
}

// SignCount32 is the stored count as the authenticator's type.
func (r keyRow) SignCount32() uint32 { return uint32(r.SignCount) }

// With "passkeys satisfy MFA" off a passkey stands for the password: an
// mfa_token follows, keys are not offered again, and a TOTP code or a
// recovery code completes it with AMR [passkey, totp|recovery_code].
func TestWebAuthnPasskeyThenSecondFactor(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	alignClock(env)
	secret, codes, tok := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	k, res := register(t, env, "acme", tok, "Passkey", virtualwebauthn.AuthenticatorOptions{})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	if _, ok := res.JSON()["recovery_codes"]; ok {
		t.Fatalf("a key after TOTP issued recovery codes: %s", res.Body)
	}
	if err := env.Store.SetPasskeySettings(context.Background(), acme.ID, db.PasskeySettings{SatisfyMFA: false}); err != nil {
		t.Fatal(err)
	}
	c := env.Client()
	passkeyStep := func() string {
		t.Helper()
		aal2 := aal2Sessions(t, env, alice)
		cer, opts := loginBegin(t, env, "acme", "")
		res := loginFinish(env, "acme", cer, k.sign(opts), "")
		mt, _ := res.JSON()["mfa_token"].(string)
		if res.StatusCode != http.StatusOK || res.JSON()["mfa_required"] != true || mt == "" {
			t.Fatalf("passkey with the setting off = %d %s, want mfa_required", res.StatusCode, res.Body)
		}
		if _, ok := res.JSON()["session_token"]; ok {
			t.Fatalf("a session token before the second factor: %s", res.Body)
		}
		if m := strs(res.JSON()["methods"]); strings.Join(m, ",") != "totp,recovery_code" {
			t.Fatalf("methods after a passkey = %v, want [totp recovery_code]", m)
		}
		if aal2Sessions(t, env, alice) != aal2 {
			t.Fatal("an aal2 session after the passkey alone")
		}
		if got := keyState(t, env, k.id).SignCount; got != int64(k.cred.Counter) {
			t.Fatalf("the passkey's count is %d, want %d (consumed)", got, k.cred.Counter)
		}
		// The mfa_token is no session, and the key can't be the second
		// factor too.
		if r := c.API(http.MethodGet, api("acme", "/mfa"), mt, nil); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("mfa_token as a bearer = %d", r.StatusCode)
		}
		r := c.API(http.MethodPost, api("acme", "/login/webauthn/begin"), "", map[string]string{"mfa_token": mt})
		wantErr(t, "the key again as second factor", r, "method_not_allowed", http.StatusBadRequest)
		return mt
	}

	mt := passkeyStep()
	res = loginMFA(env, "acme", map[string]string{"mfa_token": mt, "code": nextCode(t, env, secret)})
	if m := amrMethods(res); res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" || strings.Join(m, ",") != "passkey,totp" {
		t.Fatalf("passkey + TOTP = %d %s, want aal2, amr [passkey totp]", res.StatusCode, res.Body)
	}
	mt = passkeyStep()
	res = loginMFA(env, "acme", map[string]string{"mfa_token": mt, "recovery_code": codes[0]})
	if m := amrMethods(res); res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" || strings.Join(m, ",") != "passkey,recovery_code" {
		t.Fatalf("passkey + recovery code = %d %s, want aal2, amr [passkey recovery_code]", res.StatusCode, res.Body)
	}
	// A wrong code after the passkey is still a wrong code.
	mt = passkeyStep()
	wantErr(t, "passkey + wrong code", loginMFA(env, "acme", map[string]string{"mfa_token": mt, "code": wrongCode(t, env, secret)}), "invalid_code", http.StatusUnauthorized)
	// Back on: the passkey alone is aal2.
	env.Store.SetPasskeySettings(context.Background(), acme.ID, db.PasskeySettings{SatisfyMFA: true})
	cer, opts := loginBegin(t, env, "acme", "")
	res = loginFinish(env, "acme", cer, k.sign(opts), "")
	if res.StatusCode != http.StatusOK || strings.Join(amrMethods(res), ",") != "passkey" {
		t.Fatalf("passkey with the setting on = %d %s", res.StatusCode, res.Body)
	}
}

// "Device-bound keys only" refuses backup-eligible credentials at
// registration (nothing stored, no codes, no email) and takes device-bound
// ones; backup flags are stored and reported as "synced"; a device-bound
// key that later claims to be backup eligible is refused.
func TestWebAuthnDeviceBoundOnly(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	ctx := context.Background()
	if err := env.Store.SetPasskeySettings(ctx, acme.ID, db.PasskeySettings{SatisfyMFA: true, DeviceBoundOnly: true}); err != nil {
		t.Fatal(err)
	}
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	for _, ao := range []virtualwebauthn.AuthenticatorOptions{{BackupEligible: true, BackupState: true}, {BackupEligible: true}} {
		cer, opts := registerBegin(t, c, "acme", tok, "Synced")
		k := newKey(rpOf(env, "acme"), opts, ao)
		wantErr(t, fmt.Sprintf("backup-eligible key %+v", ao), registerFinish(c, "acme", tok, cer, k.attest(opts)), "invalid_credential", http.StatusBadRequest)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials`); n != 0 {
		t.Fatalf("%d keys stored", n)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes`); n != 0 {
		t.Fatalf("%d recovery codes issued for a refused key", n)
	}
	if n := outboxCount(t, env.Store, mail.KindWebAuthnAdded, "alice@acme.test"); n != 0 {
		t.Fatalf("%d key-added emails for refused keys", n)
	}
	if n := auditCount(t, env, alice, db.EventWebAuthnRegistered); n != 0 {
		t.Fatalf("%d registrations audited", n)
	}

	bound, res := register(t, env, "acme", tok, "YubiKey", virtualwebauthn.AuthenticatorOptions{})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	if res.JSON()["synced"] != false || len(strs(res.JSON()["recovery_codes"])) != 10 {
		t.Fatalf("device-bound key = %s", res.Body)
	}
	if st := keyState(t, env, bound.id); st.BackupEligible || st.BackupState {
		t.Fatalf("device-bound key stored as %+v", st)
	}
	// The same key claiming backup eligibility at sign-in.
	liar := *bound
	liar.auth.Options.BackupEligible, liar.auth.Options.BackupState = true, true
	for _, mt := range []string{mfaToken(t, env, "acme", "alice@acme.test", pw), ""} {
		cer, opts := loginBegin(t, env, "acme", mt)
		wantErr(t, "device-bound key claiming BE", loginFinish(env, "acme", cer, liar.signAt(liar.rp, 10, opts), mt), "invalid_credential", http.StatusUnauthorized)
	}
	if st := keyState(t, env, bound.id); st.BackupEligible || st.SignCount != 0 {
		t.Fatalf("device-bound key after refusals: %+v", st)
	}

	// Setting off: a synced passkey is taken and reported as such.
	env.Store.SetPasskeySettings(ctx, acme.ID, db.PasskeySettings{SatisfyMFA: true})
	synced, res := register(t, env, "acme", tok, "iPhone", virtualwebauthn.AuthenticatorOptions{BackupEligible: true, BackupState: true})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	if res.JSON()["synced"] != true {
		t.Fatalf("synced passkey = %s", res.Body)
	}
	if st := keyState(t, env, synced.id); !st.BackupEligible || !st.BackupState {
		t.Fatalf("synced passkey stored as %+v", st)
	}
	got := map[string]any{}
	for _, f := range c.API(http.MethodGet, api("acme", "/mfa"), tok, nil).JSON()["factors"].([]any) {
		m := f.(map[string]any)
		if m["type"] == "webauthn" {
			got[m["name"].(string)] = m["synced"]
		}
	}
	if len(got) != 2 || got["YubiKey"] != false || got["iPhone"] != true {
		t.Fatalf("GET /mfa keys = %v, want YubiKey synced false, iPhone synced true", got)
	}
	// The backup state is recorded from each assertion.
	notBacked := *synced
	notBacked.auth.Options.BackupState = false
	cer, opts := loginBegin(t, env, "acme", "")
	if res := loginFinish(env, "acme", cer, notBacked.sign(opts), ""); res.StatusCode != http.StatusOK {
		t.Fatalf("synced passkey sign-in = %d %s", res.StatusCode, res.Body)
	}
	if st := keyState(t, env, synced.id); !st.BackupEligible || st.BackupState {
		t.Fatalf("after an assertion without backup state: %+v", st)
	}
}

// The first key is an MFA enrollment (10 recovery codes), a second one
// issues none; adding and removing need a fresh second factor; removing
// ends the other sessions, and removing the last factor deletes the
// recovery codes; rename is scoped; emails go out; GET /mfa and the
// challenge's methods list keys.
func TestWebAuthnEnrollmentLifecycle(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	ctx := context.Background()
	bob := env.User(acme, "bob@acme.test", db.RoleMember, pw)
	galice := userIn(t, env, "globex", "alice@acme.test")
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	k1, res := register(t, env, "acme", tok, "YubiKey 5", virtualwebauthn.AuthenticatorOptions{})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	codes := strs(res.JSON()["recovery_codes"])
	if len(codes) != 10 || res.JSON()["synced"] != false {
		t.Fatalf("first key = %s, want 10 recovery codes", res.Body)
	}
	k2, res := register(t, env, "acme", tok, "Backup key", virtualwebauthn.AuthenticatorOptions{})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	if _, ok := res.JSON()["recovery_codes"]; ok {
		t.Fatalf("second key issued recovery codes: %s", res.Body)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`, alice.ID); n != 10 {
		t.Fatalf("%d recovery codes stored, want 10", n)
	}
	if n := outboxCount(t, env.Store, mail.KindWebAuthnAdded, "alice@acme.test"); n != 2 {
		t.Fatalf("%d key-added emails, want 2", n)
	}
	if n := auditCount(t, env, alice, db.EventWebAuthnRegistered); n != 2 {
		t.Fatalf("%d registrations audited, want 2", n)
	}
	bk, _ := register(t, env, "acme", c.APILogin("acme", "bob@acme.test", pw), "Bob key", virtualwebauthn.AuthenticatorOptions{})

	list := c.API(http.MethodGet, api("acme", "/mfa"), tok, nil).JSON()
	factors, _ := list["factors"].([]any)
	if len(factors) != 2 || list["recovery_codes_remaining"] != float64(10) {
		t.Fatalf("GET /mfa = %v", list)
	}
	for i, want := range []*vkey{k1, k2} {
		f := factors[i].(map[string]any)
		if f["type"] != "webauthn" || f["id"] != float64(want.id) || f["synced"] != false || f["created_at"] == "" || f["last_used_at"] != nil {
			t.Fatalf("factor %d = %v", i, f)
		}
	}
	// The challenge offers keys first.
	r := c.API(http.MethodPost, api("acme", "/login"), "", map[string]string{"email": "alice@acme.test", "password": pw})
	if m := strs(r.JSON()["methods"]); strings.Join(m, ",") != "webauthn,recovery_code" {
		t.Fatalf("methods = %v, want [webauthn recovery_code]", m)
	}

	old := keyLogin(t, env, "acme", "alice@acme.test", pw, k1)
	if f := c.API(http.MethodGet, api("acme", "/mfa"), tok, nil).JSON()["factors"].([]any)[0].(map[string]any); f["last_used_at"] == nil {
		t.Fatalf("used key has no last_used_at: %v", f)
	}

	// Eleven minutes on, adding and removing need a fresh second factor.
	env.Clock.Advance(11 * time.Minute)
	wantErr(t, "register without step-up", c.API(http.MethodPost, api("acme", "/mfa/webauthn/register/begin"), tok, map[string]string{"name": "x"}), "step_up_required", http.StatusForbidden)
	del := func(tok string, id any) *apptest.Response {
		return c.API(http.MethodDelete, api("acme", fmt.Sprintf("/mfa/webauthn/%v", id)), tok, nil)
	}
	wantErr(t, "delete without step-up", del(tok, k1.id), "step_up_required", http.StatusForbidden)
	if n := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?`, alice.ID); n != 2 {
		t.Fatal("a key was removed without step-up")
	}

	fresh := keyLogin(t, env, "acme", "alice@acme.test", pw, k2)
	for _, id := range []any{bk.id, "abc", 999999, -1} {
		if r := del(fresh, id); r.StatusCode != http.StatusNotFound {
			t.Fatalf("delete %v = %d %s, want 404", id, r.StatusCode, r.Body)
		}
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?`, bob.ID); n != 1 {
		t.Fatal("bob's key was removed by alice")
	}
	if r := del(fresh, k1.id); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete = %d %s", r.StatusCode, r.Body)
	}
	for name, s := range map[string]string{"registration": tok, "older": old} {
		if r := c.API(http.MethodGet, api("acme", "/mfa"), s, nil); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the %s session after removing a key = %d, want 401", name, r.StatusCode)
		}
	}
	list = c.API(http.MethodGet, api("acme", "/mfa"), fresh, nil).JSON()
	if f, _ := list["factors"].([]any); len(f) != 1 || list["recovery_codes_remaining"] != float64(10) {
		t.Fatalf("after removing one key: %v", list)
	}
	if n := outboxCount(t, env.Store, mail.KindWebAuthnRemoved, "alice@acme.test"); n != 1 {
		t.Fatalf("%d key-removed emails, want 1", n)
	}
	if n := auditCount(t, env, alice, db.EventWebAuthnRemoved); n != 1 {
		t.Fatalf("%d removals audited", n)
	}
	// The removed key no longer signs in.
	mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
	cer, opts := loginBegin(t, env, "acme", mt)
	wantErr(t, "removed key", loginFinish(env, "acme", cer, k1.sign(opts), mt), "invalid_credential", http.StatusUnauthorized)

	// Rename through the store is scoped to workspace and member.
	for name, scope := range map[string][2]int64{"bob": {acme.ID, bob.ID}, "globex": {galice.WorkspaceID, galice.ID}, "globex alice": {galice.WorkspaceID, alice.ID}} {
		if err := env.Store.RenameWebAuthnCredential(ctx, scope[0], scope[1], k2.id, "Stolen", db.Meta{}); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("rename as %s: %v, want ErrNotFound", name, err)
		}
	}
	if err := env.Store.RenameWebAuthnCredential(ctx, acme.ID, alice.ID, k2.id, "Desk key", db.Meta{}); err != nil {
		t.Fatal(err)
	}
	f := c.API(http.MethodGet, api("acme", "/mfa"), fresh, nil).JSON()["factors"].([]any)
	if len(f) != 1 || f[0].(map[string]any)["name"] != "Desk key" {
		t.Fatalf("after rename: %v", f)
	}

	// Removing the last factor deletes the recovery codes.
	if r := del(fresh, k2.id); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete last = %d %s", r.StatusCode, r.Body)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?`, alice.ID); n != 0 {
		t.Fatalf("%d recovery codes left after the last factor went", n)
	}
	list = c.API(http.MethodGet, api("acme", "/mfa"), fresh, nil).JSON()
	if f, _ := list["factors"].([]any); len(f) != 0 || list["recovery_codes_remaining"] != float64(0) {
		t.Fatalf("after removing the last key: %v", list)
	}
	if n := outboxCount(t, env.Store, mail.KindWebAuthnRemoved, "alice@acme.test"); n != 2 {
		t.Fatalf("%d key-removed emails, want 2", n)
	}
	// No factor: the password alone signs in, and a new first key issues
	// new codes again.
	tok = c.APILogin("acme", "alice@acme.test", pw)
	if _, res := register(t, env, "acme", tok, "New key", virtualwebauthn.AuthenticatorOptions{}); len(strs(res.JSON()["recovery_codes"])) != 10 {
		t.Fatalf("new first key = %s", res.Body)
	}
}

// Failed assertions count toward the member's lock like wrong codes: ten
// across challenges and passwordless attempts lock second-factor sign-in
// (429), a valid assertion is then refused everywhere, and 15 minutes
// later it works.
func TestWebAuthnFailuresLock(t *testing.T) {
	t.Parallel()
	env, _, alice := waSetup(t)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	k, res := register(t, env, "acme", tok, "Key", virtualwebauthn.AuthenticatorOptions{})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	evil := virtualwebauthn.RelyingParty{ID: "localhost", Origin: "http://evil.localhost:" + portOf(env.Config.Addr)}
	before, sessions := keyState(t, env, k.id), sessionCount(t, env, alice)

	// Five in one challenge: the fifth ends it.
	mt1 := mfaToken(t, env, "acme", "alice@acme.test", pw)
	for i := range 5 {
		cer, opts := loginBegin(t, env, "acme", mt1)
		wantErr(t, fmt.Sprintf("bad assertion %d", i+1), loginFinish(env, "acme", cer, k.signAt(evil, 50, opts), mt1), "invalid_credential", http.StatusUnauthorized)
	}
	r := c.API(http.MethodPost, api("acme", "/login/webauthn/begin"), "", map[string]string{"mfa_token": mt1})
	wantErr(t, "the challenge after 5 failures", r, "invalid_mfa_token", http.StatusUnauthorized)
	// Four passwordless.
	for i := range 4 {
		cer, opts := loginBegin(t, env, "acme", "")
		wantErr(t, fmt.Sprintf("bad passwordless %d", i+1), loginFinish(env, "acme", cer, k.signAt(evil, 50, opts), ""), "invalid_credential", http.StatusUnauthorized)
	}
	if g := mfaGuard(t, env, alice); g.WindowFailures != 9 || g.LockedUntil.After(env.Clock.Now()) {
		t.Fatalf("guard after 9 failures: %+v", g)
	}
	// The tenth, in a new challenge: 429.
	mt2 := mfaToken(t, env, "acme", "alice@acme.test", pw)
	cer, opts := loginBegin(t, env, "acme", mt2)
	res = loginFinish(env, "acme", cer, k.signAt(evil, 50, opts), mt2)
	wantErr(t, "10th failure", res, "rate_limited", http.StatusTooManyRequests)
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 890 || ra > 900 {
		t.Fatalf("Retry-After = %q", res.Header.Get("Retry-After"))
	}
	lockedAt := env.Clock.Now()

	// Locked: valid assertions are refused as second factor, passwordless
	// and for step-up.
	cer, opts = loginBegin(t, env, "acme", mt2)
	wantErr(t, "valid assertion while locked", loginFinish(env, "acme", cer, k.sign(opts), mt2), "rate_limited", http.StatusTooManyRequests)
	cer, opts = loginBegin(t, env, "acme", "")
	wantErr(t, "valid passwordless while locked", loginFinish(env, "acme", cer, k.sign(opts), ""), "rate_limited", http.StatusTooManyRequests)
	r = c.API(http.MethodPost, api("acme", "/step-up/webauthn/begin"), tok, map[string]string{})
	var su ceremonyJSON
	json.Unmarshal(r.Body, &su)
	suOpts, err := virtualwebauthn.ParseAssertionOptions(string(su.Options))
	if err != nil {
		t.Fatalf("step-up begin = %d %s", r.StatusCode, r.Body)
	}
	r = c.API(http.MethodPost, api("acme", "/step-up/webauthn/finish"), tok, map[string]any{"ceremony": su.Ceremony, "credential": json.RawMessage(k.sign(suOpts))})
	wantErr(t, "valid step-up while locked", r, "rate_limited", http.StatusTooManyRequests)

	if got := keyState(t, env, k.id); got != before {
		t.Fatalf("the key moved while locked: %+v -> %+v", before, got)
	}
	if n := sessionCount(t, env, alice); n != sessions {
		t.Fatalf("%d sessions made while locked", n-sessions)
	}
	if n := auditCount(t, env, alice, db.EventChallengeFailed); n != 10 {
		t.Fatalf("%d failures audited, want 10", n)
	}
	if n := auditCount(t, env, alice, db.EventMFALocked); n != 1 {
		t.Fatalf("%d locks audited, want 1", n)
	}
	if n := outboxCount(t, env.Store, mail.KindMFALocked, "alice@acme.test"); n != 1 {
		t.Fatalf("%d lock emails, want 1", n)
	}

	env.Clock.Set(lockedAt.Add(15 * time.Minute))
	keyLogin(t, env, "acme", "alice@acme.test", pw, k)
	if g := mfaGuard(t, env, alice); g.Consecutive != 0 {
		t.Fatalf("guard after a good sign-in: %+v", g)
	}
}

// Malformed bodies get 4xx JSON errors, never a 500, and store nothing:
// not JSON, arrays, wrong types, huge bodies, a missing ceremony, garbage
// credentials, and mutated or truncated attestations and assertions.
func TestWebAuthnMalformedBodies(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	bob := env.User(acme, "bob@acme.test", db.RoleMember, pw)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	btok := c.APILogin("acme", "bob@acme.test", pw)
	bk, _ := register(t, env, "acme", btok, "Bob key", virtualwebauthn.AuthenticatorOptions{})
	keys, sessions, codes := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials`), queryInt(t, env, `SELECT COUNT(*) FROM user_sessions`), queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes`)

	check := func(what string, res *apptest.Response) {
		t.Helper()
		if res.StatusCode < 400 || res.StatusCode > 499 {
			t.Fatalf("%s = %d %s, want 4xx", what, res.StatusCode, res.Body)
		}
		if e, _ := res.JSON()["error"].(string); e == "" || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: not a JSON error: %s %q", what, res.Header.Get("Content-Type"), res.Body)
		}
		if _, ok := res.JSON()["session_token"]; ok {
			t.Fatalf("%s gave a session", what)
		}
	}
	huge := `{"name":"` + strings.Repeat("a", 70<<10) + `"}`
	hugeCred := `{"ceremony":"x","credential":{"id":"` + strings.Repeat("A", 60<<10) + `"}}`
	bodies := []string{
		"not json", "[]", `[{"ceremony":"x"}]`, `"string"`, `42`, `{"ceremony":`, `{"ceremony": 5}`, `{"name": ["a"]}`,
		`{"credential": "x"}`, `{}`, `null`, huge, hugeCred, `{"ceremony":"x"} {"ceremony":"y"}`, `{"mfa_token": 7}`,
		`{"mfa_token": "not-a-token"}`, `{"ceremony":"x","credential":"garbage"}`, "\xff\xfe{}",
	}
	endpoints := []struct{ path, tok string }{
		{"/mfa/webauthn/register/begin", tok}, {"/mfa/webauthn/register/finish", tok},
		{"/login/webauthn/begin", ""}, {"/login/webauthn/finish", ""},
		{"/step-up/webauthn/begin", btok}, {"/step-up/webauthn/finish", btok},
	}
	for _, ep := range endpoints {
		for _, b := range bodies {
			res := c.API(http.MethodPost, api("acme", ep.path), ep.tok, b)
			if strings.HasSuffix(ep.path, "/begin") && res.StatusCode == http.StatusOK {
				continue // begin ignores what it does not need ({} and null start a ceremony)
			}
			check(fmt.Sprintf("POST %s %.40q", ep.path, b), res)
		}
		req, _ := http.NewRequest(http.MethodPost, c.URL(api("acme", ep.path)), strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "text/plain")
		if ep.tok != "" {
			req.Header.Set("Authorization", "Bearer "+ep.tok)
		}
		if res := c.Do(req); res.StatusCode != http.StatusOK || !strings.HasSuffix(ep.path, "/begin") {
			check("POST "+ep.path+" as text/plain", res)
		}
	}
	// Key names: too long, control characters. (Invalid UTF-8 can't get
	// through: encoding/json decodes it as U+FFFD.)
	for _, body := range []string{`{"name":"` + strings.Repeat("x", 65) + `"}`, `{"name":"a\u0000b"}`, `{"name":"line\nbreak"}`} {
		check(fmt.Sprintf("key name %q", body), c.API(http.MethodPost, api("acme", "/mfa/webauthn/register/begin"), tok, body))
	}

	// Garbage credentials on live ceremonies.
	garbage := []string{
		`"garbage"`, `{}`, `[]`, `null`, `{"id":"!!!","rawId":"%%%","type":"public-key","response":{}}`,
		`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"bm90IGpzb24","attestationObject":"AAAA","authenticatorData":"AAAA","signature":"AAAA"}}`,
		`{"id":"AAAA","rawId":"AAAA","type":"other","response":{"clientDataJSON":"e30","attestationObject":"oA","authenticatorData":"","signature":""}}`,
	}
	for _, g := range garbage {
		cer, _ := registerBegin(t, c, "acme", tok, "Garbage")
		check("register "+g, registerFinish(c, "acme", tok, cer, g))
		cer, _ = loginBegin(t, env, "acme", "")
		check("passwordless "+g, loginFinish(env, "acme", cer, g, ""))
	}
	// An assertion to register, an attestation to sign in.
	cer, ropts := registerBegin(t, c, "acme", tok, "Swapped")
	nk := newKey(rpOf(env, "acme"), ropts, virtualwebauthn.AuthenticatorOptions{})
	_, aopts := loginBegin(t, env, "acme", "")
	check("assertion to register", registerFinish(c, "acme", tok, cer, nk.sign(aopts)))
	cer, ropts = registerBegin(t, c, "acme", tok, "Swapped")
	pcer, _ := loginBegin(t, env, "acme", "")
	check("attestation to sign in", loginFinish(env, "acme", pcer, nk.attest(ropts), ""))

	// Mutated and truncated attestations (alice registering) and
	// assertions (bob signing in passwordless: he may end up locked, which
	// is a 4xx too).
	rng := rand.New(rand.NewPCG(1, 2))
	mutate := func(credJSON, field string, i int) string {
		var m map[string]any
		json.Unmarshal([]byte(credJSON), &m)
		resp := m["response"].(map[string]any)
		raw, _ := base64.RawURLEncoding.DecodeString(resp[field].(string))
		if i%3 == 0 {
			raw = raw[:rng.IntN(len(raw))]
		} else {
			for range 1 + rng.IntN(3) {
				raw[rng.IntN(len(raw))] ^= byte(1 + rng.IntN(255))
			}
		}
		resp[field] = base64.RawURLEncoding.EncodeToString(raw)
		b, _ := json.Marshal(m)
		return string(b)
	}
	for i := range 30 {
		field := []string{"attestationObject", "clientDataJSON"}[i%2]
		cer, opts := registerBegin(t, c, "acme", tok, "Mutant")
		k := newKey(rpOf(env, "acme"), opts, virtualwebauthn.AuthenticatorOptions{})
		check(fmt.Sprintf("attestation with %s mutated (%d)", field, i), registerFinish(c, "acme", tok, cer, mutate(k.attest(opts), field, i)))
	}
	for i := range 30 {
		field := []string{"authenticatorData", "clientDataJSON", "signature", "userHandle"}[i%4]
		cer, opts := loginBegin(t, env, "acme", "")
		check(fmt.Sprintf("assertion with %s mutated (%d)", field, i), loginFinish(env, "acme", cer, mutate(bk.signAt(bk.rp, 100, opts), field, i), ""))
	}

	if n := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials`); n != keys {
		t.Fatalf("%d keys stored by malformed requests", n-keys)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM user_sessions`); n != sessions {
		t.Fatalf("%d sessions made by malformed requests", n-sessions)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes`); n != codes {
		t.Fatalf("recovery codes changed: %d -> %d", codes, n)
	}
	if st := keyState(t, env, bk.id); st.SignCount != 0 || st.LastUsed != 0 {
		t.Fatalf("bob's key moved: %+v", st)
	}
	if aal2Sessions(t, env, alice) != 0 || aal2Sessions(t, env, bob) != 1 {
		t.Fatal("aal2 sessions changed")
	}
	if logs := env.Logs(); strings.Contains(logs, `"status":500`) || strings.Contains(strings.ToLower(logs), "panic") {
		t.Fatalf("a request failed with 500 or panicked:\n%s", grepLines(logs, "500"))
	}
}
