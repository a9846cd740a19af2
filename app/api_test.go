package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
)

func TestAPISessionLifecycle(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	c := env.Client()
	res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
	body := res.JSON()
	if res.StatusCode != http.StatusOK || body["mfa_required"] != false || body["aal"] != "aal1" || body["enrollment_deadline"] != nil {
		t.Fatalf("login = %d %s", res.StatusCode, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
	}
	if findCookie(res, "gh_s_acme") != nil {
		t.Error("the API login set a session cookie")
	}
	tok := body["session_token"].(string)

	res = c.API(http.MethodGet, "/t/acme/api/v1/session", tok, nil)
	s := res.JSON()
	user, _ := s["user"].(map[string]any)
	amr, _ := s["amr"].([]any)
	if res.StatusCode != http.StatusOK || user["email"] != "alice@acme.test" || user["role"] != "member" || user["id"] != float64(alice.ID) ||
		s["workspace"] != "acme" || s["aal"] != "aal1" || len(amr) != 1 {
		t.Fatalf("session = %d %s", res.StatusCode, res.Body)
	}
	if m := amr[0].(map[string]any); m["method"] != "password" {
		t.Errorf("amr = %v", amr)
	} else if _, err := time.Parse(time.RFC3339, m["completed_at"].(string)); err != nil {
		t.Errorf("completed_at %v: %v", m["completed_at"], err)
	}
	exp, err := time.Parse(time.RFC3339, s["expires_at"].(string))
	if err != nil || !exp.After(env.Clock.Now()) || exp.After(env.Clock.Now().Add(12*time.Hour)) {
		t.Errorf("expires_at = %v (%v)", s["expires_at"], err)
	}

	if res := c.API(http.MethodPost, "/t/acme/api/v1/logout", tok, nil); res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout = %d", res.StatusCode)
	}
	res = c.API(http.MethodGet, "/t/acme/api/v1/session", tok, nil)
	if res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "unauthenticated" {
		t.Fatalf("session after logout = %d %s", res.StatusCode, res.Body)
	}
	if res := c.API(http.MethodPost, "/t/acme/api/v1/logout", tok, nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second logout = %d, want 401", res.StatusCode)
	}
}

// The API reads only the bearer header; pages read only the cookie.
func TestAPICredentialsDoNotCross(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	browser := env.Client()
	browser.Login("acme", "alice@acme.test", pw)
	// The browser's cookie on the API: anonymous.
	if res := browser.API(http.MethodGet, "/t/acme/api/v1/session", "", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("cookie on the API = %d, want 401", res.StatusCode)
	}
	// A bearer token on a page: anonymous.
	tok := env.Client().APILogin("acme", "alice@acme.test", pw)
	script := env.Client()
	script.Header.Set("Authorization", "Bearer "+tok)
	if signedIn(t, script, "acme") {
		t.Fatal("a bearer token opened the portal page")
	}
	for _, bad := range []string{"", "Bearer", "Bearer " + tok + "x", "Basic " + tok, "Bearer " + strings.Repeat("A", 43), "Bearer " + strings.Repeat("A", 5000)} {
		req, _ := http.NewRequest(http.MethodGet, env.HTTP.URL+"/t/acme/api/v1/session", nil)
		if bad != "" {
			req.Header.Set("Authorization", bad)
		}
		if res := env.Client().Do(req); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %.20q… = %d, want 401", bad, res.StatusCode)
		}
	}
	if res := env.Client().API(http.MethodGet, "/t/acme/api/v1/session", tok, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("the genuine token = %d", res.StatusCode)
	}
}

func TestAPIUnknownWorkspace(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	res := env.Client().API(http.MethodPost, "/t/nowhere/api/v1/login", "", map[string]string{"email": "a@b.test", "password": "x"})
	if res.StatusCode != http.StatusNotFound || res.JSON()["error"] != "not_found" {
		t.Fatalf("unknown workspace = %d %s", res.StatusCode, res.Body)
	}
}

// A JSON body that is not an object (null, an array, a string) is a 400;
// null used to be read as {}, so a null policy was a 200 (found by
// FuzzDecodeJSON).
func TestAPIBodyNotAnObject(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	env.User(acme, "olive@acme.test", db.RoleOwner, pw)
	c := env.Client()
	tok := c.APILogin("acme", "olive@acme.test", pw)
	for _, body := range []string{"null", " null\n", "[]", `"x"`} {
		res := c.API(http.MethodPut, "/t/acme/api/v1/admin/policy?dry_run=true", tok, body)
		if res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_policy" {
			t.Errorf("PUT /admin/policy %q = %d %s, want 400 invalid_policy", body, res.StatusCode, res.Body)
		}
		res = c.API(http.MethodPost, "/t/acme/api/v1/login", "", body)
		if res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_request" {
			t.Errorf("POST /login %q = %d %s, want 400 invalid_request", body, res.StatusCode, res.Body)
		}
	}
}
