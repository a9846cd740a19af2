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
	"GET /healthz":                                true,
	"GET /readyz":                                 true,
	"GET /metrics":                                true, // needs GATEHOUSE_METRICS_TOKEN as a bearer token, checked in the handler (404 without one configured)
	"GET /assets/*":                               true,
	"GET /":                                       true,
	"GET /t/:slug/login":                          true,
	"POST /t/:slug/login":                         true,
	"GET /t/:slug/invite/:token":                  true,
	"POST /t/:slug/invite/:token":                 true,
	"POST /t/:slug/api/v1/login":                  true,
	"POST /t/:slug/api/v1/login/mfa":              true, // needs the mfa_token, checked in the handler
	"POST /t/:slug/api/v1/login/sms/send":         true, // needs the mfa_token, checked in the handler
	"GET /t/:slug/login/mfa":                      true, // the challenge: needs the pending state, checked in the handler
	"POST /t/:slug/login/mfa":                     true,
	"POST /t/:slug/login/mfa/cancel":              true,
	"POST /t/:slug/login/mfa/sms":                 true, // checks the session's pending challenge; the same answer whatever happened
	"POST /t/:slug/login/mfa/webauthn/begin":      true, // needs the pending state, checked in the handler
	"POST /t/:slug/login/mfa/webauthn/finish":     true,
	"POST /t/:slug/login/passkey/begin":           true, // passwordless sign-in
	"POST /t/:slug/login/passkey/finish":          true,
	"POST /t/:slug/api/v1/login/webauthn/begin":   true,
	"POST /t/:slug/api/v1/login/webauthn/finish":  true,
	"GET /t/:slug/enroll/:token":                  true, // support only: staff enrollment link (changes nothing)
	"POST /t/:slug/enroll/:token":                 true, // support only: needs the enrollment token, checked in the handler
	"POST /t/:slug/enroll/:token/totp":            true,
	"POST /t/:slug/enroll/:token/webauthn/begin":  true, // support only: needs the enrollment token
	"POST /t/:slug/enroll/:token/webauthn/finish": true,
	"POST /t/:slug/api/v1/enroll/totp/setup":      true, // support only: needs the enrollment token
	"POST /t/:slug/api/v1/enroll/totp/verify":     true,
	"POST /t/:slug/login/mfa/recover":             true, // needs the pending challenge (the password), checked in the handler
	"GET /t/:slug/recover/:token":                 true, // the emailed recovery link (changes nothing)
	"POST /t/:slug/recover/:token":                true, // needs the link's token
	"GET /t/:slug/reset/cancel/:token":            true, // a member's link to cancel a support reset (changes nothing)
	"POST /t/:slug/reset/cancel/:token":           true, // needs the token, checked in the handler
	// OpenID Connect (oidc.go): the protocol's endpoints check their own
	// credentials (client authentication, PKCE, bearer tokens); continue
	// and the callback need the browser's pending authorization.
	"GET /t/:slug/.well-known/openid-configuration": true, // metadata
	"GET /t/:slug/oauth/jwks":                       true, // public keys
	"GET /t/:slug/oauth/authorize":                  true, // starts an authorization; changes no account
	"POST /t/:slug/oauth/authorize":                 true, // the same as a form; the native flow needs the password
	"GET /t/:slug/oauth/authorize/callback":         true, // needs a completed authorization of this browser
	"POST /t/:slug/oauth/authorize/mfa":             true, // needs the native flow's mfa_token
	"POST /t/:slug/oauth/authorize/sms/send":        true, // needs the native flow's mfa_token; 202 whatever happened
	"GET /t/:slug/oauth/continue":                   true, // sends the browser to sign-in when anonymous
	"POST /t/:slug/oauth/token":                     true, // client authentication and PKCE
	"GET /t/:slug/oauth/userinfo":                   true, // bearer access token
	"POST /t/:slug/oauth/userinfo":                  true,
	"POST /t/:slug/oauth/introspect":                true, // confidential client authentication
	"POST /t/:slug/oauth/revoke":                    true, // client authentication
	"GET /t/:slug/oauth/logout":                     true, // ends this browser's own session (RP-initiated logout)
	"POST /t/:slug/oauth/logout":                    true,
	"GET /dev/mailbox":                              true, // dev mode only
	"GET /dev/mailbox/:id":                          true, // dev mode only
}

// TestRoutesDefaultDeny walks every route: each one is either on the public
// list or refuses an anonymous request (API: 401; pages: redirect to sign-in).
func TestRoutesDefaultDeny(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	env.Workspace("acme", "Acme")
	c := env.Client()
	for _, r := range env.Server.Echo().Routes() {
		key := r.Method + " " + r.Path
		if env.Server.IsPublic(r.Method, r.Path) {
			if !wantPublic[key] {
				t.Errorf("route %s is public but not on the reviewed list", key)
			}
			if f, _ := env.Server.Route(r.Method, r.Path); f.Support && !f.InWorkspaces {
				path := strings.NewReplacer(":slug", "acme", ":token", "x").Replace(r.Path)
				if res := c.Do(anonymousRequest(r.Method, c.URL(path))); res.StatusCode != http.StatusNotFound {
					t.Errorf("%s %s = %d, want 404 (a support-only route)", r.Method, path, res.StatusCode)
				}
			}
			continue
		}
		f, _ := env.Server.Route(r.Method, r.Path)
		inSupport, onlySupport := f.Support, f.Support && !f.InWorkspaces
		if strings.HasPrefix(r.Path, "/t/:slug") {
			// In the support console the route is either there (and
			// refuses the anonymous) or a 404; elsewhere the console's own
			// routes are a 404.
			spath := strings.NewReplacer("/t/:slug", "/support", ":id", "1", ":token", "x").Replace(r.Path)
			res := c.Do(anonymousRequest(r.Method, c.URL(spath)))
			switch {
			case !inSupport:
				if res.StatusCode != http.StatusNotFound {
					t.Errorf("anonymous %s %s = %d, want 404 (not a support route)", r.Method, spath, res.StatusCode)
				}
			case strings.Contains(spath, "/api/"):
				if res.StatusCode != http.StatusUnauthorized {
					t.Errorf("anonymous %s %s = %d, want 401", r.Method, spath, res.StatusCode)
				}
			case res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/support/login"):
				t.Errorf("anonymous %s %s = %d (Location %q), want 303 to the support sign-in", r.Method, spath, res.StatusCode, res.Header.Get("Location"))
			}
			if onlySupport {
				path := strings.NewReplacer(":slug", "acme", ":id", "1", ":token", "x").Replace(r.Path)
				if res := c.Do(anonymousRequest(r.Method, c.URL(path))); res.StatusCode != http.StatusNotFound {
					t.Errorf("anonymous %s %s = %d, want 404 (a support-only route)", r.Method, path, res.StatusCode)
				}
				continue
			}
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

// anonymousRequest is a request without a session that gets past CSRF to
// the auth gate.
func anonymousRequest(method, url string) *http.Request {
	req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	if method == http.MethodPost && !strings.Contains(url, "/api/") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Body = http.NoBody
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	return req
}

// Dev routes exist only in dev mode.
func TestDevMailboxOnlyInDev(t *testing.T) {
	t.Parallel()
	env := apptest.New(t, func(c *app.Config) { c.Dev = false })
	res := env.Client().Get("/dev/mailbox")
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /dev/mailbox outside dev = %d, want 404", res.StatusCode)
	}
}
