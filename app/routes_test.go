package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
)

// The public allow-list is exactly this; adding a public route means adding
// it here too, on purpose.
var wantPublic = map[string]bool{
	"GET /healthz":                               true,
	"GET /readyz":                                true,
	"GET /assets/*":                              true,
	"GET /":                                      true,
	"GET /t/:slug/login":                         true,
	"POST /t/:slug/login":                        true,
	"GET /t/:slug/invite/:token":                 true,
	"POST /t/:slug/invite/:token":                true,
	"POST /t/:slug/api/v1/login":                 true,
	"POST /t/:slug/api/v1/login/mfa":             true, // needs the mfa_token, checked in the handler
	"GET /t/:slug/login/mfa":                     true, // the challenge: needs the pending state, checked in the handler
	"POST /t/:slug/login/mfa":                    true,
	"POST /t/:slug/login/mfa/cancel":             true,
	"POST /t/:slug/login/mfa/webauthn/begin":     true, // needs the pending state, checked in the handler
	"POST /t/:slug/login/mfa/webauthn/finish":    true,
	"POST /t/:slug/login/passkey/begin":          true, // passwordless sign-in
	"POST /t/:slug/login/passkey/finish":         true,
	"POST /t/:slug/api/v1/login/webauthn/begin":  true,
	"POST /t/:slug/api/v1/login/webauthn/finish": true,
	"GET /dev/mailbox":                           true, // dev mode only
	"GET /dev/mailbox/:id":                       true, // dev mode only
}

// TestRoutesDefaultDeny walks every route: each one is either on the public
// list or refuses an anonymous request (API: 401; pages: redirect to sign-in).
func TestRoutesDefaultDeny(t *testing.T) {
	env := apptest.New(t)
	env.Workspace("acme", "Acme")
	c := env.Client()
	for _, r := range env.Server.Echo().Routes() {
		key := r.Method + " " + r.Path
		if env.Server.IsPublic(r.Method, r.Path) {
			if !wantPublic[key] {
				t.Errorf("route %s is public but not on the reviewed list", key)
			}
			continue
		}
		path := strings.NewReplacer(":slug", "acme", ":id", "1", ":token", "x", "*", "x").Replace(r.Path)
		req, _ := http.NewRequest(r.Method, c.URL(path), strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if r.Method == http.MethodPost && !strings.Contains(path, "/api/") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Body = http.NoBody
			req.Header.Set("Sec-Fetch-Site", "same-origin") // get past CSRF to reach the auth gate
		}
		res := c.Do(req)
		switch {
		case strings.Contains(path, "/api/"):
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("anonymous %s %s = %d, want 401", r.Method, path, res.StatusCode)
			}
		case res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login"):
			t.Errorf("anonymous %s %s = %d (Location %q), want 303 to the sign-in page", r.Method, path, res.StatusCode, res.Header.Get("Location"))
		}
	}
	for key := range wantPublic {
		method, path, _ := strings.Cut(key, " ")
		if !env.Server.IsPublic(method, path) {
			t.Errorf("reviewed public route %s is not registered as public", key)
		}
	}
}

// Dev routes exist only in dev mode.
func TestDevMailboxOnlyInDev(t *testing.T) {
	env := apptest.New(t, func(c *app.Config) { c.Dev = false })
	res := env.Client().Get("/dev/mailbox")
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /dev/mailbox outside dev = %d, want 404", res.StatusCode)
	}
}
