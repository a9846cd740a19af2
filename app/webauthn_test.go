package app_test

// The adversarial suite for WebAuthn (issue 4, SECURITY.md "WebAuthn"):
// the real application on SQLite, driven through the JSON API by
// descope/virtualwebauthn, which makes the same attestations and assertions
// a browser posts. Helpers first, then cross-workspace use, replays and
// reused or expired ceremonies, sign counts, origins and RP IDs, and other
// members' or unknown credentials. The flows (passwordless, device-bound
// keys, enrollment, the lock, malformed bodies) are in
// webauthn_flow_test.go.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// waSetup is setup with the base URL on http://localhost:PORT (a valid RP
// ID, unlike 127.0.0.1); opts come after, so a test can set a base domain.
func waSetup(t *testing.T, opts ...func(*app.Config)) (*apptest.Env, db.Workspace, db.User) {
	t.Helper()
	base := func(c *app.Config) { c.BaseURL, _ = app.ParseBaseURL("http://localhost:" + portOf(c.Addr)) }
	return setup(t, append([]func(*app.Config){base}, opts...)...)
}

// withBaseDomain gives every workspace its own RP ID, {slug}.localhost.
func withBaseDomain(c *app.Config) { c.BaseDomain = "localhost" }

// rpOf is the relying party a browser on the workspace's pages would see.
func rpOf(env *apptest.Env, slug string) virtualwebauthn.RelyingParty {
	port := portOf(env.Config.Addr)
	host := "localhost"
	if env.Config.BaseDomain != "" {
		host = slug + "." + env.Config.BaseDomain
	}
	return virtualwebauthn.RelyingParty{Name: slug, ID: host, Origin: "http://" + host + ":" + port}
}

func api(slug, path string) string { return "/t/" + slug + "/api/v1" + path }

// vkey is one virtual authenticator holding one credential.
type vkey struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
	id   int64 // the stored key's id, once registered
}

// newKey makes a key for the member whose registration options are opts
// (its user handle is theirs, so discoverable sign-in finds them).
func newKey(rp virtualwebauthn.RelyingParty, opts *virtualwebauthn.AttestationOptions, ao virtualwebauthn.AuthenticatorOptions) *vkey {
	ao.UserHandle = []byte(opts.UserID)
	return &vkey{rp: rp, auth: virtualwebauthn.NewAuthenticatorWithOptions(ao), cred: newCredential()}
}

// newCredential is virtualwebauthn.NewCredential(KeyTypeEC2) without its
// flake: v1.0.3 encodes the public key's x and y with big.Int.Bytes, which
// drops leading zero bytes, and go-webauthn rightly refuses the short
// coordinate ("EC2 key x or y coordinate has invalid length") about once
// in 128 keys. Real authenticators always send 32 bytes.
func newCredential() virtualwebauthn.Credential {
	for {
		pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		pub, _ := pk.PublicKey.Bytes() // 0x04 || x || y
		if pub[1] == 0 || pub[33] == 0 {
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(pk)
		if err != nil {
			panic(err)
		}
		return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
	}
}

// attest makes the key's attestation for opts.
func (k *vkey) attest(opts *virtualwebauthn.AttestationOptions) string {
	return virtualwebauthn.CreateAttestationResponse(k.rp, k.auth, k.cred, *opts)
}

// sign makes an assertion for opts with the next sign count.
func (k *vkey) sign(opts *virtualwebauthn.AssertionOptions) string {
	k.cred.Counter++
	return virtualwebauthn.CreateAssertionResponse(k.rp, k.auth, k.cred, *opts)
}

// signAt makes an assertion with the given sign count and relying party.
func (k *vkey) signAt(rp virtualwebauthn.RelyingParty, counter uint32, opts *virtualwebauthn.AssertionOptions) string {
	cred := k.cred
	cred.Counter = counter
	return virtualwebauthn.CreateAssertionResponse(rp, k.auth, cred, *opts)
}

type ceremonyJSON struct {
	Ceremony string          `json:"ceremony"`
	Options  json.RawMessage `json:"options"`
}

// registerBegin starts adding a key and fails the test unless it may.
func registerBegin(t *testing.T, c *apptest.Client, slug, tok, name string) (string, *virtualwebauthn.AttestationOptions) {
	t.Helper()
	res := c.API(http.MethodPost, api(slug, "/mfa/webauthn/register/begin"), tok, map[string]string{"name": name})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("register begin = %d %s", res.StatusCode, res.Body)
	}
	var b ceremonyJSON
	if err := json.Unmarshal(res.Body, &b); err != nil || b.Ceremony == "" {
		t.Fatalf("register begin body %s: %v", res.Body, err)
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(string(b.Options))
	if err != nil {
		t.Fatalf("attestation options %s: %v", b.Options, err)
	}
	return b.Ceremony, opts
}

func registerFinish(c *apptest.Client, slug, tok, ceremony, credential string) *apptest.Response {
	return c.API(http.MethodPost, api(slug, "/mfa/webauthn/register/finish"), tok, map[string]any{"ceremony": ceremony, "credential": json.RawMessage(credential)})
}

// rotated returns the new session token of a response that raised a
// bearer session to aal2 (key registration, TOTP confirmation): the old
// one is dead.
func rotated(t testing.TB, res *apptest.Response) string {
	t.Helper()
	tok, _ := res.JSON()["session_token"].(string)
	if tok == "" {
		t.Fatalf("no session_token in %s", res.Body)
	}
	return tok
}

// register adds a key for the member of tok and fails the test unless it
// is accepted; it returns the key and the finish response.
func register(t *testing.T, env *apptest.Env, slug, tok, name string, ao virtualwebauthn.AuthenticatorOptions) (*vkey, *apptest.Response) {
	t.Helper()
	c := env.Client()
	cer, opts := registerBegin(t, c, slug, tok, name)
	k := newKey(rpOf(env, slug), opts, ao)
	res := registerFinish(c, slug, tok, cer, k.attest(opts))
	if res.StatusCode != http.StatusOK || res.JSON()["name"] != name {
		t.Fatalf("register finish %s = %d %s", name, res.StatusCode, res.Body)
	}
	k.id = int64(res.JSON()["id"].(float64))
	k.auth.AddCredential(k.cred)
	return k, res
}

// loginBegin starts an assertion: the second step with mfaTok, else
// passwordless. It fails the test unless the server answers with options.
func loginBegin(t *testing.T, env *apptest.Env, slug, mfaTok string) (string, *virtualwebauthn.AssertionOptions) {
	t.Helper()
	body := map[string]string{}
	if mfaTok != "" {
		body["mfa_token"] = mfaTok
	}
	res := env.Client().API(http.MethodPost, api(slug, "/login/webauthn/begin"), "", body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("login begin = %d %s", res.StatusCode, res.Body)
	}
	var b ceremonyJSON
	json.Unmarshal(res.Body, &b)
	opts, err := virtualwebauthn.ParseAssertionOptions(string(b.Options))
	if err != nil || b.Ceremony == "" {
		t.Fatalf("assertion options %s: %v", res.Body, err)
	}
	return b.Ceremony, opts
}

func loginFinish(env *apptest.Env, slug, ceremony, credential, mfaTok string) *apptest.Response {
	body := map[string]any{"ceremony": ceremony, "credential": json.RawMessage(credential)}
	if mfaTok != "" {
		body["mfa_token"] = mfaTok
	}
	return env.Client().API(http.MethodPost, api(slug, "/login/webauthn/finish"), "", body)
}

// keyLogin signs in with the password and the key; it returns the session
// token.
func keyLogin(t *testing.T, env *apptest.Env, slug, email, password string, k *vkey) string {
	t.Helper()
	mt := mfaToken(t, env, slug, email, password)
	cer, opts := loginBegin(t, env, slug, mt)
	res := loginFinish(env, slug, cer, k.sign(opts), mt)
	tok, _ := res.JSON()["session_token"].(string)
	if res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" || tok == "" {
		t.Fatalf("sign-in with key = %d %s", res.StatusCode, res.Body)
	}
	return tok
}

// wantErr fails unless res is the JSON error code with one of statuses.
func wantErr(t *testing.T, what string, res *apptest.Response, code string, statuses ...int) {
	t.Helper()
	for _, s := range statuses {
		if res.StatusCode == s && res.JSON()["error"] == code {
			if _, ok := res.JSON()["session_token"]; ok {
				t.Fatalf("%s: an error with a session token: %s", what, res.Body)
			}
			return
		}
	}
	t.Fatalf("%s = %d %s, want %v %s", what, res.StatusCode, res.Body, statuses, code)
}

// keyRow is what the store holds of a key.
type keyRow struct {
	SignCount, LastUsed int64
	BackupEligible      bool
	BackupState         bool
}

func keyState(t testing.TB, env *apptest.Env, id int64) keyRow {
	t.Helper()
	var r keyRow
	if err := env.Store.DB().QueryRow(`SELECT sign_count, COALESCE(last_used_at, 0), backup_eligible, backup_state FROM webauthn_credentials WHERE id = ?`, id).
		Scan(&r.SignCount, &r.LastUsed, &r.BackupEligible, &r.BackupState); err != nil {
		t.Fatalf("key %d: %v", id, err)
	}
	return r
}

func sessionCount(t testing.TB, env *apptest.Env, u db.User) int64 {
	return queryInt(t, env, `SELECT COUNT(*) FROM user_sessions WHERE workspace_id = ? AND user_id = ?`, u.WorkspaceID, u.ID)
}

func userIn(t testing.TB, env *apptest.Env, slug, email string) db.User {
	t.Helper()
	ws, err := env.Store.WorkspaceBySlug(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	u, err := env.Store.UserByEmail(context.Background(), ws.ID, email)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A key registered in acme is refused in globex, where the same email has
// a member with her own key: as the second factor and passwordless, with
// acme's user handle and with globex's; nothing is updated and no session
// made. The key still works in acme afterwards.
func TestWebAuthnCrossWorkspace(t *testing.T) {
	t.Parallel()
	env, _, alice := waSetup(t)
	galice := userIn(t, env, "globex", "alice@acme.test")
	c := env.Client()
	acmeKey, _ := register(t, env, "acme", c.APILogin("acme", "alice@acme.test", pw), "Acme key", virtualwebauthn.AuthenticatorOptions{})
	globexKey, _ := register(t, env, "globex", c.APILogin("globex", "alice@acme.test", "globex password 1"), "Globex key", virtualwebauthn.AuthenticatorOptions{})
	sessions := sessionCount(t, env, galice)
	before := keyState(t, env, acmeKey.id)
	gbefore := keyState(t, env, globexKey.id)

	// Second factor in globex, signed with acme's key.
	mt := mfaToken(t, env, "globex", "alice@acme.test", "globex password 1")
	cer, opts := loginBegin(t, env, "globex", mt)
	if len(opts.AllowCredentials) != 1 || opts.AllowCredentials[0] != base64.RawURLEncoding.EncodeToString(globexKey.cred.ID) {
		t.Fatalf("globex offers %v, want only globex's key", opts.AllowCredentials)
	}
	wantErr(t, "acme key for globex's challenge", loginFinish(env, "globex", cer, acmeKey.sign(opts), mt), "invalid_credential", http.StatusUnauthorized)

	// Passwordless in globex with acme's key, its own (acme) user handle.
	cer, opts = loginBegin(t, env, "globex", "")
	wantErr(t, "acme key passwordless in globex", loginFinish(env, "globex", cer, acmeKey.sign(opts), ""), "invalid_credential", http.StatusUnauthorized)

	// The same, claiming globex alice's user handle.
	forged := *acmeKey
	forged.auth.Options.UserHandle = globexKey.auth.Options.UserHandle
	cer, opts = loginBegin(t, env, "globex", "")
	wantErr(t, "acme key with globex's handle", loginFinish(env, "globex", cer, forged.sign(opts), ""), "invalid_credential", http.StatusUnauthorized)

	if got := keyState(t, env, acmeKey.id); got != before {
		t.Fatalf("acme key changed by its use in globex: %+v -> %+v", before, got)
	}
	if got := keyState(t, env, globexKey.id); got != gbefore {
		t.Fatalf("globex key changed: %+v -> %+v", gbefore, got)
	}
	if n := sessionCount(t, env, galice); n != sessions {
		t.Fatalf("globex alice has %d sessions, had %d", n, sessions)
	}
	if n := aal2Sessions(t, env, alice); n != 1 { // the registration's
		t.Fatalf("acme alice has %d aal2 sessions", n)
	}
	// The key is fine in its own workspace (so the refusals were about the
	// workspace), and globex's key in globex.
	keyLogin(t, env, "acme", "alice@acme.test", pw, acmeKey)
	keyLogin(t, env, "globex", "alice@acme.test", "globex password 1", globexKey)
}

// With a base domain each workspace is its own relying party
// (acme.localhost, globex.localhost). Even a credential registered in both
// (a virtual authenticator can) is refused in globex when the assertion
// was made for acme's RP ID or origin.
func TestWebAuthnCrossWorkspaceRPID(t *testing.T) {
	t.Parallel()
	env, _, _ := waSetup(t, withBaseDomain)
	c := env.Client()
	acmeTok := c.APILogin("acme", "alice@acme.test", pw)
	globexTok := c.APILogin("globex", "alice@acme.test", "globex password 1")

	_, aopts := registerBegin(t, c, "acme", acmeTok, "probe")
	_, gopts := registerBegin(t, c, "globex", globexTok, "probe")
	if aopts.RelyingPartyID != "acme.localhost" || gopts.RelyingPartyID != "globex.localhost" {
		t.Fatalf("RP IDs %q and %q, want acme.localhost and globex.localhost", aopts.RelyingPartyID, gopts.RelyingPartyID)
	}

	acmeKey, _ := register(t, env, "acme", acmeTok, "Acme key", virtualwebauthn.AuthenticatorOptions{})
	// The very same credential (id and private key), registered in globex
	// under globex's RP ID.
	cer, opts := registerBegin(t, c, "globex", globexTok, "Same key")
	globexKey := newKey(rpOf(env, "globex"), opts, virtualwebauthn.AuthenticatorOptions{})
	globexKey.cred = acmeKey.cred
	if res := registerFinish(c, "globex", globexTok, cer, globexKey.attest(opts)); res.StatusCode != http.StatusOK {
		t.Fatalf("same credential in globex = %d %s", res.StatusCode, res.Body)
	}
	globexKey.id = queryInt(t, env, `SELECT id FROM webauthn_credentials WHERE workspace_id = (SELECT id FROM workspaces WHERE slug = 'globex')`)
	before := keyState(t, env, globexKey.id)

	acmeRP, globexRP := rpOf(env, "acme"), rpOf(env, "globex")
	mixed := map[string]virtualwebauthn.RelyingParty{
		"acme's RP ID and origin":         acmeRP,
		"acme's RP ID, globex's origin":   {ID: acmeRP.ID, Origin: globexRP.Origin},
		"globex's RP ID, acme's origin":   {ID: globexRP.ID, Origin: acmeRP.Origin},
		"the base domain as RP ID":        {ID: "localhost", Origin: globexRP.Origin},
		"the base domain origin":          {ID: globexRP.ID, Origin: "http://localhost:" + portOf(env.Config.Addr)},
		"globex's origin on another port": {ID: globexRP.ID, Origin: "http://globex.localhost:1"},
	}
	for name, rp := range mixed {
		mt := mfaToken(t, env, "globex", "alice@acme.test", "globex password 1")
		cer, opts := loginBegin(t, env, "globex", mt)
		if opts.RelyingPartyID != "globex.localhost" {
			t.Fatalf("assertion options rpId %q", opts.RelyingPartyID)
		}
		wantErr(t, name+" (second factor)", loginFinish(env, "globex", cer, globexKey.signAt(rp, 50, opts), mt), "invalid_credential", http.StatusUnauthorized)
		cer, opts = loginBegin(t, env, "globex", "")
		wantErr(t, name+" (passwordless)", loginFinish(env, "globex", cer, globexKey.signAt(rp, 50, opts), ""), "invalid_credential", http.StatusUnauthorized)
		env.Clock.Advance(16 * time.Minute) // a new failure window: no lock
	}
	if got := keyState(t, env, globexKey.id); got != before {
		t.Fatalf("globex key changed by refused assertions: %+v -> %+v", before, got)
	}
	// Control: made for globex's RP ID, the same credential passes there.
	pcer, popts := loginBegin(t, env, "globex", "")
	if res := loginFinish(env, "globex", pcer, globexKey.signAt(globexRP, 51, popts), ""); res.StatusCode != http.StatusOK || res.JSON()["aal"] != "aal2" {
		t.Fatalf("globex assertion for globex's RP ID = %d %s", res.StatusCode, res.Body)
	}
}

// An assertion is good once: the same ceremony again, the same signed
// assertion on a new ceremony, and a ceremony already spent by a failure
// are refused, for the second factor and passwordless. Nothing moves.
func TestWebAuthnReplay(t *testing.T) {
	t.Parallel()
	env, _, alice := waSetup(t)
	k, _ := register(t, env, "acme", env.Client().APILogin("acme", "alice@acme.test", pw), "Key", virtualwebauthn.AuthenticatorOptions{})

	// Second factor.
	mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
	cer1, opts := loginBegin(t, env, "acme", mt)
	as1 := k.sign(opts)
	if res := loginFinish(env, "acme", cer1, as1, mt); res.StatusCode != http.StatusOK {
		t.Fatalf("first use = %d %s", res.StatusCode, res.Body)
	}
	after := keyState(t, env, k.id)
	sessions := sessionCount(t, env, alice)
	mt2 := mfaToken(t, env, "acme", "alice@acme.test", pw)
	wantErr(t, "same ceremony and assertion again", loginFinish(env, "acme", cer1, as1, mt2), "invalid_credential", http.StatusBadRequest, http.StatusUnauthorized)
	cer2, _ := loginBegin(t, env, "acme", mt2)
	wantErr(t, "same assertion on a new ceremony", loginFinish(env, "acme", cer2, as1, mt2), "invalid_credential", http.StatusUnauthorized)
	if got := keyState(t, env, k.id); got != after || sessionCount(t, env, alice) != sessions {
		t.Fatalf("second-factor replays moved the key (%+v -> %+v) or made a session", after, got)
	}

	// A ceremony spent by a failed attempt cannot be used for a good one.
	cer3, opts := loginBegin(t, env, "acme", mt2)
	wantErr(t, "wrong origin", loginFinish(env, "acme", cer3, k.signAt(virtualwebauthn.RelyingParty{ID: "localhost", Origin: "http://evil.localhost"}, 90, opts), mt2),
		"invalid_credential", http.StatusUnauthorized)
	wantErr(t, "good assertion on a spent ceremony", loginFinish(env, "acme", cer3, k.sign(opts), mt2), "invalid_credential", http.StatusBadRequest, http.StatusUnauthorized)

	// Passwordless.
	cer4, opts := loginBegin(t, env, "acme", "")
	as4 := k.sign(opts)
	if res := loginFinish(env, "acme", cer4, as4, ""); res.StatusCode != http.StatusOK {
		t.Fatalf("passwordless = %d %s", res.StatusCode, res.Body)
	}
	after = keyState(t, env, k.id)
	sessions = sessionCount(t, env, alice)
	wantErr(t, "passwordless replay", loginFinish(env, "acme", cer4, as4, ""), "invalid_credential", http.StatusBadRequest, http.StatusUnauthorized)
	cer5, _ := loginBegin(t, env, "acme", "")
	wantErr(t, "passwordless assertion on a new ceremony", loginFinish(env, "acme", cer5, as4, ""), "invalid_credential", http.StatusUnauthorized)
	// The assertion of a second-factor ceremony, replayed passwordless.
	cer6, _ := loginBegin(t, env, "acme", "")
	wantErr(t, "second-factor assertion passwordless", loginFinish(env, "acme", cer6, as1, ""), "invalid_credential", http.StatusUnauthorized)

	if got := keyState(t, env, k.id); got != after {
		t.Fatalf("replays moved the key: %+v -> %+v", after, got)
	}
	if n := sessionCount(t, env, alice); n != sessions {
		t.Fatalf("replays made %d sessions", n-sessions)
	}
	// The key still works.
	keyLogin(t, env, "acme", "alice@acme.test", pw, k)
}

// A ceremony lives 5 minutes and belongs to one kind, member, workspace and
// challenge: anything else is refused.
func TestWebAuthnCeremonyScope(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	bob := env.User(acme, "bob@acme.test", db.RoleMember, pw)
	c := env.Client()
	aliceTok := c.APILogin("acme", "alice@acme.test", pw)
	k, _ := register(t, env, "acme", aliceTok, "Alice key", virtualwebauthn.AuthenticatorOptions{})
	bk, _ := register(t, env, "acme", c.APILogin("acme", "bob@acme.test", pw), "Bob key", virtualwebauthn.AuthenticatorOptions{})
	before := keyState(t, env, k.id)
	sessions := sessionCount(t, env, alice)

	// Expired: 5 minutes and a second after begin (passwordless, so that no
	// mfa_token expires with it).
	cer, opts := loginBegin(t, env, "acme", "")
	env.Clock.Advance(5*time.Minute + time.Second)
	wantErr(t, "expired ceremony", loginFinish(env, "acme", cer, k.sign(opts), ""), "invalid_credential", http.StatusBadRequest, http.StatusUnauthorized)
	// 4 minutes is fine (control).
	cer, opts = loginBegin(t, env, "acme", "")
	env.Clock.Advance(4 * time.Minute)
	if res := loginFinish(env, "acme", cer, k.sign(opts), ""); res.StatusCode != http.StatusOK {
		t.Fatalf("ceremony after 4 minutes = %d %s", res.StatusCode, res.Body)
	}
	before, sessions = keyState(t, env, k.id), sessionCount(t, env, alice)

	// Expired registration ceremony.
	fresh := keyLoginAt(t, env, k)
	rcer, ropts := registerBegin(t, c, "acme", fresh, "Late key")
	env.Clock.Advance(5*time.Minute + time.Second)
	late := newKey(rpOf(env, "acme"), ropts, virtualwebauthn.AuthenticatorOptions{})
	wantErr(t, "expired registration", registerFinish(c, "acme", fresh, rcer, late.attest(ropts)), "invalid_credential", http.StatusBadRequest)
	before, sessions = keyState(t, env, k.id), sessionCount(t, env, alice)

	mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
	// A passwordless ceremony for the second step.
	pcer, popts := loginBegin(t, env, "acme", "")
	wantErr(t, "passwordless ceremony as second factor", loginFinish(env, "acme", pcer, k.sign(popts), mt), "invalid_credential", http.StatusBadRequest)
	// A second-factor ceremony for passwordless.
	scer, sopts := loginBegin(t, env, "acme", mt)
	wantErr(t, "second-factor ceremony passwordless", loginFinish(env, "acme", scer, k.sign(sopts), ""), "invalid_credential", http.StatusBadRequest)
	// A registration ceremony for sign-in.
	fresh = keyLoginAt(t, env, k)
	before, sessions = keyState(t, env, k.id), sessionCount(t, env, alice)
	rcer, _ = registerBegin(t, c, "acme", fresh, "Other")
	_, aopts := loginBegin(t, env, "acme", mt)
	wantErr(t, "registration ceremony as second factor", loginFinish(env, "acme", rcer, k.sign(aopts), mt), "invalid_credential", http.StatusBadRequest)
	rcer, _ = registerBegin(t, c, "acme", fresh, "Other")
	_, popts = loginBegin(t, env, "acme", "")
	wantErr(t, "registration ceremony passwordless", loginFinish(env, "acme", rcer, k.sign(popts), ""), "invalid_credential", http.StatusBadRequest)
	// A sign-in ceremony to register a key.
	pcer, _ = loginBegin(t, env, "acme", "")
	_, ropts = registerBegin(t, c, "acme", fresh, "Other")
	other := newKey(rpOf(env, "acme"), ropts, virtualwebauthn.AuthenticatorOptions{})
	wantErr(t, "sign-in ceremony to register", registerFinish(c, "acme", fresh, pcer, other.attest(ropts)), "invalid_credential", http.StatusBadRequest)
	// A step-up ceremony for the second step.
	res := c.API(http.MethodPost, api("acme", "/step-up/webauthn/begin"), fresh, map[string]string{})
	var su ceremonyJSON
	json.Unmarshal(res.Body, &su)
	suOpts, err := virtualwebauthn.ParseAssertionOptions(string(su.Options))
	if err != nil {
		t.Fatalf("step-up begin %d %s", res.StatusCode, res.Body)
	}
	wantErr(t, "step-up ceremony as second factor", loginFinish(env, "acme", su.Ceremony, k.sign(suOpts), mt), "invalid_credential", http.StatusBadRequest)

	// Bob's ceremony (his challenge) with alice's mfa_token and key.
	bmt := mfaToken(t, env, "acme", "bob@acme.test", pw)
	bcer, bopts := loginBegin(t, env, "acme", bmt)
	wantErr(t, "bob's ceremony for alice", loginFinish(env, "acme", bcer, k.sign(bopts), mt), "invalid_credential", http.StatusBadRequest)
	// Bob's registration ceremony finished by alice.
	btok := keyLogin(t, env, "acme", "bob@acme.test", pw, bk)
	brcer, bropts := registerBegin(t, c, "acme", btok, "Bob's second")
	steal := newKey(rpOf(env, "acme"), bropts, virtualwebauthn.AuthenticatorOptions{})
	wantErr(t, "bob's registration finished by alice", registerFinish(c, "acme", fresh, brcer, steal.attest(bropts)), "invalid_credential", http.StatusBadRequest)
	// Alice's ceremony of one challenge for another challenge of hers.
	mt2 := mfaToken(t, env, "acme", "alice@acme.test", pw)
	ccer, copts := loginBegin(t, env, "acme", mt2)
	wantErr(t, "ceremony of another challenge", loginFinish(env, "acme", ccer, k.sign(copts), mt), "invalid_credential", http.StatusBadRequest)
	// Globex's passwordless ceremony in acme.
	gcer, gopts := loginBegin(t, env, "globex", "")
	wantErr(t, "globex ceremony in acme", loginFinish(env, "acme", gcer, k.sign(gopts), ""), "invalid_credential", http.StatusBadRequest)
	// No ceremony, or a made-up one.
	_, nopts := loginBegin(t, env, "acme", mt)
	wantErr(t, "no ceremony", loginFinish(env, "acme", "", k.sign(nopts), mt), "invalid_credential", http.StatusBadRequest)
	wantErr(t, "made-up ceremony", loginFinish(env, "acme", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", k.sign(nopts), mt), "invalid_credential", http.StatusBadRequest)

	if got := keyState(t, env, k.id); got != before {
		t.Fatalf("refused ceremonies moved the key: %+v -> %+v", before, got)
	}
	if n := sessionCount(t, env, alice); n != sessions {
		t.Fatalf("refused ceremonies made %d sessions", n-sessions)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials WHERE user_id IN (?, ?)`, alice.ID, bob.ID); n != 2 {
		t.Fatalf("%d keys, want 2 (none added by a foreign ceremony)", n)
	}
	// The mfa_token whose challenge saw those refusals still signs in.
	cer, opts = loginBegin(t, env, "acme", mt)
	if res := loginFinish(env, "acme", cer, k.sign(opts), mt); res.StatusCode != http.StatusOK {
		t.Fatalf("right ceremony = %d %s", res.StatusCode, res.Body)
	}
}

// keyLoginAt is keyLogin for alice in acme.
func keyLoginAt(t *testing.T, env *apptest.Env, k *vkey) string {
	t.Helper()
	return keyLogin(t, env, "acme", "alice@acme.test", pw, k)
}

// A sign count that goes backwards (or stands still when non-zero, or
// drops to 0) is refused and audited, and the stored count stays; a key
// that always says 0 (synced passkeys) is fine.
func TestWebAuthnSignCount(t *testing.T) {
	t.Parallel()
	env, _, alice := waSetup(t)
	tok := env.Client().APILogin("acme", "alice@acme.test", pw)
	k, res := register(t, env, "acme", tok, "Counting key", virtualwebauthn.AuthenticatorOptions{})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	zero, res := register(t, env, "acme", tok, "Synced passkey", virtualwebauthn.AuthenticatorOptions{BackupEligible: true, BackupState: true})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token

	assertAt := func(key *vkey, counter uint32, passwordless bool) *apptest.Response {
		mt := ""
		if !passwordless {
			mt = mfaToken(t, env, "acme", "alice@acme.test", pw)
		}
		cer, opts := loginBegin(t, env, "acme", mt)
		return loginFinish(env, "acme", cer, key.signAt(key.rp, counter, opts), mt)
	}
	if res := assertAt(k, 5, false); res.StatusCode != http.StatusOK {
		t.Fatalf("count 5 = %d %s", res.StatusCode, res.Body)
	}
	if got := keyState(t, env, k.id).SignCount; got != 5 {
		t.Fatalf("stored count %d, want 5", got)
	}
	for i, tc := range []struct {
		counter      uint32
		passwordless bool
	}{{3, false}, {5, false}, {0, true}, {4, true}} {
		wantErr(t, "count "+strconv.Itoa(int(tc.counter)), assertAt(k, tc.counter, tc.passwordless), "invalid_credential", http.StatusUnauthorized)
		if n := auditCount(t, env, alice, db.EventWebAuthnCloneWarned); n != int64(i+1) {
			t.Fatalf("%d %s events after %d regressions", n, db.EventWebAuthnCloneWarned, i+1)
		}
		if got := keyState(t, env, k.id); got.SignCount != 5 {
			t.Fatalf("stored count %d after a regression, want 5", got.SignCount)
		}
	}
	var details string
	env.Store.DB().QueryRow(`SELECT details FROM audit_events WHERE event = ? ORDER BY id LIMIT 1`, db.EventWebAuthnCloneWarned).Scan(&details)
	var d map[string]any
	if json.Unmarshal([]byte(details), &d); d["stored_sign_count"] != float64(5) || d["sign_count"] != float64(3) || d["credential"] != float64(k.id) {
		t.Fatalf("audit details %s", details)
	}
	// The regressions counted as failures (not yet a lock).
	if g := mfaGuard(t, env, alice); g.WindowFailures != 4 {
		t.Fatalf("guard %+v, want 4 failures", g)
	}
	// Going on from 6 works.
	if res := assertAt(k, 6, true); res.StatusCode != http.StatusOK {
		t.Fatalf("count 6 = %d %s", res.StatusCode, res.Body)
	}

	// Zero stays zero: accepted again and again, stored 0.
	for i := range 3 {
		if res := assertAt(zero, 0, i%2 == 0); res.StatusCode != http.StatusOK {
			t.Fatalf("count 0, use %d = %d %s", i+1, res.StatusCode, res.Body)
		}
	}
	if got := keyState(t, env, zero.id); got.SignCount != 0 || got.LastUsed == 0 {
		t.Fatalf("synced key %+v, want count 0 and a last use", got)
	}
	if n := auditCount(t, env, alice, db.EventWebAuthnCloneWarned); n != 4 {
		t.Fatalf("%d regression events, want still 4", n)
	}
}

// Wrong origins and RP IDs are refused at registration and at sign-in;
// so are another member's key, a key nobody registered, and a registered
// credential id signed by another private key.
func TestWebAuthnWrongOriginAndCredential(t *testing.T) {
	t.Parallel()
	env, acme, alice := waSetup(t)
	bob := env.User(acme, "bob@acme.test", db.RoleMember, pw)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	port := portOf(env.Config.Addr)
	good := rpOf(env, "acme")
	bad := map[string]virtualwebauthn.RelyingParty{
		"evil origin":          {ID: good.ID, Origin: "http://evil.localhost:" + port},
		"https origin":         {ID: good.ID, Origin: "https://localhost:" + port},
		"other port":           {ID: good.ID, Origin: "http://localhost:1"},
		"no port":              {ID: good.ID, Origin: "http://localhost"},
		"evil RP ID":           {ID: "evil.localhost", Origin: good.Origin},
		"RP ID of a subdomain": {ID: "acme.localhost", Origin: good.Origin},
		"127.0.0.1":            {ID: "127.0.0.1", Origin: "http://127.0.0.1:" + port},
	}
	for name, rp := range bad {
		cer, opts := registerBegin(t, c, "acme", tok, name)
		k := newKey(rp, opts, virtualwebauthn.AuthenticatorOptions{})
		wantErr(t, "registration with "+name, registerFinish(c, "acme", tok, cer, k.attest(opts)), "invalid_credential", http.StatusBadRequest)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM webauthn_credentials`); n != 0 {
		t.Fatalf("%d keys stored by refused registrations", n)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM recovery_codes`); n != 0 {
		t.Fatalf("%d recovery codes issued by refused registrations", n)
	}
	k, res := register(t, env, "acme", tok, "Alice key", virtualwebauthn.AuthenticatorOptions{})
	tok = rotated(t, res) // registering raised the session to aal2 under a new token
	bk, _ := register(t, env, "acme", c.APILogin("acme", "bob@acme.test", pw), "Bob key", virtualwebauthn.AuthenticatorOptions{})
	before, bbefore := keyState(t, env, k.id), keyState(t, env, bk.id)
	sessions := sessionCount(t, env, alice)

	for name, rp := range bad {
		mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
		cer, opts := loginBegin(t, env, "acme", mt)
		wantErr(t, "second factor with "+name, loginFinish(env, "acme", cer, k.signAt(rp, 100, opts), mt), "invalid_credential", http.StatusUnauthorized, http.StatusTooManyRequests)
	}
	// That was 7 failures; the next three are passwordless.
	for _, name := range []string{"evil origin", "evil RP ID"} {
		cer, opts := loginBegin(t, env, "acme", "")
		wantErr(t, "passwordless with "+name, loginFinish(env, "acme", cer, k.signAt(bad[name], 100, opts), ""), "invalid_credential", http.StatusUnauthorized)
	}
	if got := keyState(t, env, k.id); got != before {
		t.Fatalf("refused assertions moved the key: %+v -> %+v", before, got)
	}
	env.Clock.Advance(16 * time.Minute) // past any lock

	mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
	// Bob's key in alice's challenge.
	cer, opts := loginBegin(t, env, "acme", mt)
	wantErr(t, "bob's key for alice", loginFinish(env, "acme", cer, bk.signAt(bk.rp, 100, opts), mt), "invalid_credential", http.StatusUnauthorized)
	// Bob's key claiming alice's user handle, passwordless.
	forged := *bk
	forged.auth.Options.UserHandle = k.auth.Options.UserHandle
	cer, opts = loginBegin(t, env, "acme", "")
	wantErr(t, "bob's key with alice's handle", loginFinish(env, "acme", cer, forged.signAt(good, 100, opts), ""), "invalid_credential", http.StatusUnauthorized)
	// Alice's key claiming bob's user handle.
	forged = *k
	forged.auth.Options.UserHandle = bk.auth.Options.UserHandle
	cer, opts = loginBegin(t, env, "acme", "")
	wantErr(t, "alice's key with bob's handle", loginFinish(env, "acme", cer, forged.signAt(good, 100, opts), ""), "invalid_credential", http.StatusUnauthorized)
	// A key nobody registered, with alice's handle.
	stranger := newKey(good, &virtualwebauthn.AttestationOptions{UserID: string(k.auth.Options.UserHandle)}, virtualwebauthn.AuthenticatorOptions{})
	cer, opts = loginBegin(t, env, "acme", mt)
	wantErr(t, "unregistered key", loginFinish(env, "acme", cer, stranger.sign(opts), mt), "invalid_credential", http.StatusUnauthorized)
	cer, opts = loginBegin(t, env, "acme", "")
	wantErr(t, "unregistered key passwordless", loginFinish(env, "acme", cer, stranger.sign(opts), ""), "invalid_credential", http.StatusUnauthorized)
	// Alice's credential id, signed by another private key.
	impostor := *stranger
	impostor.cred.ID = k.cred.ID
	cer, opts = loginBegin(t, env, "acme", mt)
	wantErr(t, "alice's id, another key", loginFinish(env, "acme", cer, impostor.signAt(good, 100, opts), mt), "invalid_credential", http.StatusUnauthorized)

	if got := keyState(t, env, k.id); got != before {
		t.Fatalf("alice's key moved: %+v -> %+v", before, got)
	}
	if got := keyState(t, env, bk.id); got != bbefore {
		t.Fatalf("bob's key moved: %+v -> %+v", bbefore, got)
	}
	if n := sessionCount(t, env, alice); n != sessions {
		t.Fatalf("%d sessions made for alice", n-sessions)
	}
	if n := aal2Sessions(t, env, bob); n != 1 { // his registration's
		t.Fatalf("bob has %d aal2 sessions", n)
	}
	// The right key at the right origin passes on the same mfa_token.
	cer, opts = loginBegin(t, env, "acme", mt)
	if res := loginFinish(env, "acme", cer, k.sign(opts), mt); res.StatusCode != http.StatusOK {
		t.Fatalf("right key = %d %s", res.StatusCode, res.Body)
	}
}
