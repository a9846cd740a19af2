package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// FuzzAPIJSONBody sends fuzzed bodies and content types through the
// running stack (middleware, body limit, session, routing, handlers, error
// handler) to the API endpoints that read a JSON body: public, member and
// owner ones, with real bearer tokens. Properties: never a 5xx; every
// refusal is a JSON object {"error", "message"} with a 4xx status from the
// documented set; a body over 64 KiB is 413 before any handler; a body
// that is not application/json never gets past 415 into a handler that
// reads it (no 400 invalid_request for it); the bearer token and the
// password are never echoed back.
func FuzzAPIJSONBody(f *testing.F) {
	// On localhost, so that passkeys (which need a host name) are on.
	env := apptest.New(f, func(c *app.Config) {
		_, port, _ := net.SplitHostPort(c.Addr)
		c.BaseURL, _ = app.ParseBaseURL("http://localhost:" + port)
	})
	acme := env.Workspace("acme", "Acme")
	env.User(acme, "alice@acme.test", db.RoleMember, pw)
	bob := env.User(acme, "bob@acme.test", db.RoleMember, pw)
	env.User(acme, "olive@acme.test", db.RoleOwner, pw)
	alice := env.Client().APILogin("acme", "alice@acme.test", pw)
	olive := env.Client().APILogin("acme", "olive@acme.test", pw)

	type endpoint struct{ method, path, token string }
	endpoints := []endpoint{
		{http.MethodPost, "/t/acme/api/v1/login", ""},
		{http.MethodPost, "/t/acme/api/v1/login/mfa", ""},
		{http.MethodPost, "/t/acme/api/v1/login/webauthn/begin", ""},
		{http.MethodPost, "/t/acme/api/v1/step-up", alice},
		{http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", alice},
		{http.MethodDelete, "/t/acme/api/v1/mfa/totp", alice},
		{http.MethodPost, "/t/acme/api/v1/mfa/webauthn/register/finish", alice},
		{http.MethodPut, "/t/acme/api/v1/admin/policy?dry_run=true", olive},
		{http.MethodPost, "/t/acme/api/v1/admin/invitations", olive},
		{http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/role", bob.ID), olive},
		{http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/extend-deadline", bob.ID), olive},
		{http.MethodPost, fmt.Sprintf("/t/acme/api/v1/admin/members/%d/reset-mfa", bob.ID), olive},
	}
	for _, s := range []string{
		`{"email":"alice@acme.test","password":"wrong password 1"}`, `{"code":"123456"}`, `{"recovery_code":"abcd-efgh-jkmn-pqrs"}`,
		`{"mfa_token":"` + strings.Repeat("A", 43) + `","code":"123456"}`, `{"policy":"required","grace_days":7}`,
		`{"email":"new@acme.test","role":"owner"}`, `{"role":"admin"}`, `{"days":30}`, `{"end_sessions":true}`,
		`{"credential":{"id":"x","rawId":"x","type":"public-key","response":{}}}`, `{"polcy":"x"}`,
		``, `null`, `[]`, `"x"`, `{}{}`, `{} x`, `{"code":1}`, `{"code":"\u0000"}`, "{\"code\":\"\xff\"}",
		`{"a":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, `{"code":"` + strings.Repeat("9", 70000) + `"}`,
	} {
		// Each body to one endpoint, in turn, and the first ones to every
		// endpoint: few seeds keep the baseline short in make test.
		f.Add([]byte(s), "application/json", uint8(len(s)%len(endpoints)))
	}
	for i := range endpoints {
		f.Add([]byte(`{"code":"123456","email":"new@acme.test","role":"member","days":1}`), "application/json", uint8(i))
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-8", "application/json;;", "multipart/form-data"} {
		f.Add([]byte(`{"code":"123456"}`), ct, uint8(3))
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	allowed := map[int]bool{200: true, 201: true, 204: true, 400: true, 401: true, 403: true, 404: true, 409: true,
		413: true, 415: true, 422: true, 429: true}

	f.Fuzz(func(t *testing.T, body []byte, ct string, which uint8) {
		ep := endpoints[int(which)%len(endpoints)]
		req, err := http.NewRequest(ep.method, env.HTTP.URL+ep.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		// net/http refuses to send control characters (but tab) in a header.
		ct = strings.Map(func(r rune) rune {
			if (r < ' ' && r != '\t') || r == 0x7f {
				return -1
			}
			return r
		}, ct)
		req.Header.Set("Content-Type", ct)
		if ep.token != "" {
			req.Header.Set("Authorization", "Bearer "+ep.token)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", ep.method, ep.path, err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		where := fmt.Sprintf("%s %s (%q, %d bytes %.80q)", ep.method, ep.path, ct, len(body), body)
		if !allowed[res.StatusCode] {
			t.Fatalf("%s = %d %s", where, res.StatusCode, out)
		}
		if len(body) > 64*1024 && res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: %d for a body over 64 KiB, want 413", where, res.StatusCode)
		}
		if res.StatusCode != http.StatusNoContent && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s = %d with Content-Type %q", where, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if res.StatusCode >= 400 {
			var e struct{ Error, Message string }
			if err := json.Unmarshal(out, &e); err != nil || e.Error == "" || e.Message == "" {
				t.Fatalf("%s = %d %s: not a JSON error", where, res.StatusCode, out)
			}
			if e.Error == "invalid_request" && !isJSONType(ct) {
				t.Fatalf("%s: a %q body was read as JSON", where, ct)
			}
		}
		for _, secret := range []string{alice, olive, pw} {
			if bytes.Contains(out, []byte(secret)) {
				t.Fatalf("%s: the answer echoes a secret: %s", where, out)
			}
		}
	})
}

func isJSONType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}
