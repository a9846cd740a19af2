package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app"
)

func TestSecurityHeadersEverywhere(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	c := env.Client()
	for _, path := range []string{"/", "/t/acme/login", "/t/nowhere/login", "/no/such/page", "/healthz", "/assets/css/app.css", "/t/acme/api/v1/session"} {
		res := c.Get(path)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows unsafe code: %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, h)
		}
		if h.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: HSTS over plain http dev", path)
		}
	}
	// Pages have no inline script or style attributes the CSP would block.
	body := string(c.Get("/t/acme/login").Body)
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, " onclick=") {
		t.Error("the sign-in page has inline script or style")
	}
}

func TestUnknownWorkspaceIs404Page(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	for _, path := range []string{"/t/nowhere/login", "/t/nowhere/account", "/t/UPPER/login", "/t/a/login", "/t/" + strings.Repeat("x", 40) + "/login", "/t/%2e%2e/login"} {
		res := env.Client().Get(path)
		if res.StatusCode != http.StatusNotFound || !strings.Contains(string(res.Body), "There is nothing here") {
			t.Errorf("GET %s = %d, want the 404 page", path, res.StatusCode)
		}
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	if res := env.Client().Get("/healthz"); res.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", res.StatusCode)
	}
	if res := env.Client().Get("/readyz"); res.StatusCode != http.StatusOK {
		t.Fatalf("readyz = %d", res.StatusCode)
	}
	env.Store.Close()
	if res := env.Client().Get("/readyz"); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database closed = %d, want 503", res.StatusCode)
	}
	if res := env.Client().Get("/healthz"); res.StatusCode != http.StatusOK {
		t.Fatalf("healthz with the database closed = %d, want 200", res.StatusCode)
	}
}

// With a base domain, {slug}.{domain} serves the workspace at the root, and
// a workspace host never serves another workspace.
func TestWorkspaceHost(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t, func(c *app.Config) { c.BaseDomain = "gatehouse.test" })
	get := func(host, path string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, env.HTTP.URL+path, nil)
		req.Host = host
		res := env.Client().Do(req)
		return res.Response
	}
	res := get("acme.gatehouse.test", "/login")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("acme host /login = %d", res.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, env.HTTP.URL+"/login", nil)
	req.Host = "acme.gatehouse.test"
	page := env.Client().Do(req)
	if action, _ := page.Doc().Find("form").Attr("action"); action != "/login" {
		t.Errorf("form action on the workspace host = %q, want /login", action)
	}
	for host, path := range map[string]string{
		"nowhere.gatehouse.test": "/login",
		"acme.gatehouse.test":    "/t/globex/login",
	} {
		if res := get(host, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s%s = %d, want 404", host, path, res.StatusCode)
		}
	}
	if res := get("acme.gatehouse.test", "/t/acme/login"); res.StatusCode != http.StatusOK {
		t.Errorf("own path on own host = %d", res.StatusCode)
	}
	if res := get("elsewhere.test", "/t/acme/login"); res.StatusCode != http.StatusOK {
		t.Errorf("path form on another host = %d", res.StatusCode)
	}
	// Sign in on the workspace host: redirects stay on it.
	c := env.Client()
	c.CSRF()
	form := "email=alice%40acme.test&password=" + strings.ReplaceAll(pw, " ", "+") + "&_csrf=" + c.CSRF()
	req, _ = http.NewRequest(http.MethodPost, env.HTTP.URL+"/login", strings.NewReader(form))
	req.Host = "acme.gatehouse.test"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "gh_csrf", Value: c.CSRF()}) // the jar keys on the URL's host
	if res := c.Do(req); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account" {
		t.Fatalf("sign-in on the workspace host = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}
