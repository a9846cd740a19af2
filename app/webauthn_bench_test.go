package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/descope/virtualwebauthn"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
)

// Benchmarks of the WebAuthn assertion path through the JSON API: POST
// /t/{slug}/api/v1/login/webauthn/finish over a real loopback connection to
// the whole app (apptest: Echo, middleware, scs, a real SQLite file). What a
// timed request does on the server:
//
//   - second factor: the scs session behind the mfa_token and its open
//     challenge; the ceremony spent (conditional UPDATE … RETURNING); the
//     member's handle and keys; the guard row; go-webauthn's parse and
//     ValidateLogin (P-256 ECDSA verify); the PassChallenge transaction
//     (spend the challenge, conditional sign-count update, reset failures,
//     register the session, audit); the scs session writes.
//   - passwordless: the ceremony spent; the member found by user handle; the
//     handle and keys; the guard row; ValidateDiscoverableLogin; the
//     workspace's passkey rules; the SignInWithFactor transaction (sign-count
//     update, reset failures, register the session, audit); the scs writes.
//
// A ceremony, a challenge and a sign count are each single use, so every
// iteration gets its own. With the timer stopped, a batch at a time, each
// member signs in with its password (POST /login, for the mfa_token; second
// factor only), begins a ceremony (POST /login/webauthn/begin) and its
// virtual authenticator signs the assertion with the next counter. The
// request body is marshalled then too: the timed part is the HTTP round trip
// and the server's verification, nothing on the authenticator's side.

// waBenchMembers is how many members take turns, one ceremony each per
// batch.
const waBenchMembers = 16

type waBenchMember struct {
	email string
	authr virtualwebauthn.Authenticator
	cred  virtualwebauthn.Credential
	body  []byte // the prepared finish request
	res   []byte // its answer
}

// waBenchEnv starts the app on http://localhost:port (RP ID localhost) with
// waBenchMembers members who each registered one key (EC2, P-256) through
// the API. The first key counts as enrolling in MFA, so a password sign-in
// asks for a second factor.
func waBenchEnv(b *testing.B) (*apptest.Env, *apptest.Client, virtualwebauthn.RelyingParty, []*waBenchMember) {
	b.Helper()
	env := apptest.New(b, func(c *app.Config) {
		_, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			b.Fatal(err)
		}
		c.BaseURL, _ = app.ParseBaseURL("http://localhost:" + port)
	})
	_, port, _ := net.SplitHostPort(env.Config.Addr)
	rp := virtualwebauthn.RelyingParty{Name: "Acme", ID: "localhost", Origin: "http://localhost:" + port}
	ws := env.Workspace("acme", "Acme")
	c := env.Client()
	members := make([]*waBenchMember, waBenchMembers)
	for i := range members {
		m := &waBenchMember{email: fmt.Sprintf("member%d@acme.test", i)}
		env.User(ws, m.email, "member", benchPassword)
		tok := c.APILogin("acme", m.email, benchPassword)
		res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/begin", tok, map[string]string{"name": "YubiKey 5"})
		var begin struct {
			Ceremony string          `json:"ceremony"`
			Options  json.RawMessage `json:"options"`
		}
		if res.StatusCode != http.StatusOK || json.Unmarshal(res.Body, &begin) != nil {
			b.Fatalf("register begin = %d %s", res.StatusCode, res.Body)
		}
		attOpts, err := virtualwebauthn.ParseAttestationOptions(string(begin.Options))
		if err != nil {
			b.Fatal(err)
		}
		m.authr = virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(attOpts.UserID)})
		m.cred = newCredential()
		att := virtualwebauthn.CreateAttestationResponse(rp, m.authr, m.cred, *attOpts)
		m.authr.AddCredential(m.cred)
		res = c.API(http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/finish", tok, map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(att)})
		if res.StatusCode != http.StatusOK {
			b.Fatalf("register finish = %d %s\n%s", res.StatusCode, res.Body, env.Logs())
		}
		members[i] = m
	}
	return env, c, rp, members
}

// beginAssertion begins a ceremony (with mfaToken for the second step,
// without for passwordless) and signs its assertion with the member's key
// and the next counter (virtualwebauthn never moves it on its own).
func (m *waBenchMember) beginAssertion(b *testing.B, c *apptest.Client, rp virtualwebauthn.RelyingParty, mfaToken string) {
	req := map[string]string{}
	if mfaToken != "" {
		req["mfa_token"] = mfaToken
	}
	res := c.API(http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", "", req)
	var begin struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(res.Body, &begin) != nil || begin.Ceremony == "" {
		b.Fatalf("login/webauthn/begin = %d %s", res.StatusCode, res.Body)
	}
	opts, err := virtualwebauthn.ParseAssertionOptions(string(begin.Options))
	if err != nil {
		b.Fatalf("assertion options %s: %v", begin.Options, err)
	}
	m.cred.Counter++
	as := virtualwebauthn.CreateAssertionResponse(rp, m.authr, m.cred, *opts)
	body := map[string]any{"ceremony": begin.Ceremony, "credential": json.RawMessage(as)}
	if mfaToken != "" {
		body["mfa_token"] = mfaToken
	}
	if m.body, err = json.Marshal(body); err != nil {
		b.Fatal(err)
	}
}

// postFinish is the measured request; it reads the whole answer.
func postFinish(b *testing.B, client *http.Client, url string, body []byte) []byte {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.Fatalf("POST login/webauthn/finish = %d %s", res.StatusCode, out)
	}
	return out
}

// runAssertions runs b.N finish requests, waBenchMembers per batch;
// prepare readies one member's next request (untimed). Every answer must
// be an aal2 session.
func runAssertions(b *testing.B, c *apptest.Client, members []*waBenchMember, prepare func(*waBenchMember)) {
	url := c.URL("/t/acme/api/v1/login/webauthn/finish")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections)
	check := func(m *waBenchMember) {
		var r struct {
			AAL   string `json:"aal"`
			Token string `json:"session_token"`
		}
		if json.Unmarshal(m.res, &r) != nil || r.AAL != "aal2" || r.Token == "" {
			b.Fatalf("login/webauthn/finish answered %s", m.res)
		}
	}
	var cpu timedCPU
	var batch []*waBenchMember
	b.ReportAllocs()
	b.ResetTimer()
	cpu.startTimer(b)
	for i := 0; i < b.N; i++ {
		k := i % len(members)
		if k == 0 {
			cpu.stopTimer(b)
			for _, m := range batch {
				check(m)
			}
			batch = members[:min(len(members), b.N-i)]
			for _, m := range batch {
				prepare(m)
			}
			cpu.startTimer(b)
		}
		m := members[k]
		m.res = postFinish(b, client, url, m.body)
	}
	cpu.stopTimer(b)
	for _, m := range batch {
		check(m)
	}
	cpu.report(b)
}

// BenchmarkWebAuthnSecondFactor is the second step with a security key:
// finish with the mfa_token of a password sign-in → 200 with an aal2
// session token.
func BenchmarkWebAuthnSecondFactor(b *testing.B) {
	_, c, rp, members := waBenchEnv(b)
	runAssertions(b, c, members, func(m *waBenchMember) {
		res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": m.email, "password": benchPassword})
		mfaToken, _ := res.JSON()["mfa_token"].(string)
		if res.StatusCode != http.StatusOK || mfaToken == "" {
			b.Fatalf("login %s = %d %s", m.email, res.StatusCode, res.Body)
		}
		m.beginAssertion(b, c, rp, mfaToken)
	})
}

// BenchmarkWebAuthnPasswordless is a passwordless sign-in with a
// discoverable credential and user verification ("passkeys satisfy MFA" on,
// the default): finish without mfa_token → 200 with an aal2 session token.
func BenchmarkWebAuthnPasswordless(b *testing.B) {
	_, c, rp, members := waBenchEnv(b)
	runAssertions(b, c, members, func(m *waBenchMember) {
		m.beginAssertion(b, c, rp, "")
	})
}

// BenchmarkValidateAssertion is go-webauthn alone, as checkAssertion calls
// it, with no HTTP and no database: a P-256 key registered once, then one
// signed assertion checked again and again (go-webauthn keeps no state, and
// the stored sign count stays 0). "validate" is ValidateLogin on the parsed
// assertion (client data, RP ID hash, flags, counter and the ECDSA
// signature); "parse_and_validate" adds ParseCredentialRequestResponseBytes
// (JSON, base64url, CBOR of the authenticator data).
func BenchmarkValidateAssertion(b *testing.B) {
	rp := virtualwebauthn.RelyingParty{Name: "Acme", ID: "localhost", Origin: "http://localhost:8080"}
	w, err := webauthn.New(&webauthn.Config{RPID: rp.ID, RPDisplayName: rp.Name, RPOrigins: []string{rp.Origin},
		AttestationPreference: protocol.PreferNoAttestation})
	if err != nil {
		b.Fatal(err)
	}
	user := &benchWAUser{handle: bytes.Repeat([]byte{1}, 64)}
	creation, sd, err := w.BeginRegistration(user)
	if err != nil {
		b.Fatal(err)
	}
	attOpts, err := virtualwebauthn.ParseAttestationOptions(mustJSON(b, creation.Response))
	if err != nil {
		b.Fatal(err)
	}
	authr := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: user.handle})
	vcred := newCredential()
	att, err := protocol.ParseCredentialCreationResponseBytes([]byte(virtualwebauthn.CreateAttestationResponse(rp, authr, vcred, *attOpts)))
	if err != nil {
		b.Fatal(err)
	}
	cred, err := w.CreateCredential(user, *sd, att)
	if err != nil {
		b.Fatal(err)
	}
	user.creds = []webauthn.Credential{*cred}
	authr.AddCredential(vcred)

	assertion, lsd, err := w.BeginLogin(user, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		b.Fatal(err)
	}
	asOpts, err := virtualwebauthn.ParseAssertionOptions(mustJSON(b, assertion.Response))
	if err != nil {
		b.Fatal(err)
	}
	vcred.Counter++
	raw := []byte(virtualwebauthn.CreateAssertionResponse(rp, authr, vcred, *asOpts))
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("validate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := w.ValidateLogin(user, *lsd, parsed)
			if err != nil || c.Authenticator.CloneWarning {
				b.Fatalf("ValidateLogin: %v", err)
			}
		}
	})
	b.Run("parse_and_validate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := protocol.ParseCredentialRequestResponseBytes(raw)
			if err != nil {
				b.Fatal(err)
			}
			c, err := w.ValidateLogin(user, *lsd, p)
			if err != nil || c.Authenticator.CloneWarning {
				b.Fatalf("ValidateLogin: %v", err)
			}
		}
	})
}

// benchWAUser is a go-webauthn user for BenchmarkValidateAssertion.
type benchWAUser struct {
	handle []byte
	creds  []webauthn.Credential
}

func (u *benchWAUser) WebAuthnID() []byte                         { return u.handle }
func (u *benchWAUser) WebAuthnName() string                       { return "bench@acme.test" }
func (u *benchWAUser) WebAuthnDisplayName() string                { return "bench@acme.test" }
func (u *benchWAUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func mustJSON(b *testing.B, v any) string {
	b.Helper()
	j, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return string(j)
}
