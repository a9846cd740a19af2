package app_test

// The admin API's applications (OAuth clients) through the whole stack:
// registration rules (bad redirect URIs refused with nothing stored), a
// web client's secret shown once and stored only as its keyed hash, a
// rotation that kills the old secret at the token endpoint, deletion, and
// the usual refusals: another workspace's id is a 404, a member gets 403,
// a stale session must step up.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const clientsPath = "/t/acme/api/v1/admin/clients"

func clientPath(id any, action string) string {
	p := fmt.Sprintf("%s/%v", clientsPath, id)
	if action != "" {
		p += "/" + action
	}
	return p
}

func webClient(name string) map[string]any {
	return map[string]any{"name": name, "type": "web", "redirect_uris": []string{"https://billing.example.com/callback"},
		"scopes": []string{"openid", "email", "offline_access"}, "first_party": true}
}

// storedClient reads an application's row as the store keeps it.
func storedClient(t *testing.T, env *apptest.Env, ws db.Workspace, id int64) db.OAuthClient {
	t.Helper()
	c, err := env.Store.OAuthClient(context.Background(), ws.ID, id)
	if err != nil {
		t.Fatalf("client %d: %v", id, err)
	}
	return c
}

// tokenWithSecret calls the token endpoint as a client authenticating with
// HTTP Basic (grant refresh_token, a refresh token nobody issued): an
// unknown client or wrong secret answers 401 invalid_client, a good one
// gets past client authentication to 400 invalid_grant.
func tokenWithSecret(t *testing.T, env *apptest.Env, slug, clientID, secret string) (int, string) {
	t.Helper()
	c := env.Client()
	req, _ := http.NewRequest(http.MethodPost, c.URL("/t/"+slug+"/oauth/token"),
		strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"not-a-token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	res := c.Do(req)
	code, _ := res.JSON()["error"].(string)
	return res.StatusCode, code
}

func TestAdminAPIClientsLifecycle(t *testing.T) {
	a := aal2AdminSetup(t)
	env := a.env

	// Register a web application: 201, the secret once.
	res := a.c.API(http.MethodPost, clientsPath, a.token, webClient("Billing"))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create = %d %s", res.StatusCode, res.Body)
	}
	created := res.JSON()
	secret, _ := created["client_secret"].(string)
	clientID, _ := created["client_id"].(string)
	id := int64(created["id"].(float64))
	if len(secret) != 43 || !strings.HasPrefix(clientID, "gh_") || created["type"] != "web" || created["confidential"] != true ||
		created["first_party"] != true || fmt.Sprint(created["scopes"]) != "[openid email offline_access]" {
		t.Fatalf("created = %v", created)
	}
	// Stored only as its keyed hash.
	row := storedClient(t, env, a.acme, id)
	if row.SecretHash == "" || strings.Contains(row.SecretHash, secret) || !env.Keys.VerifyHash("oauth_client_secret", secret, row.SecretHash) {
		t.Fatalf("stored secret hash %q does not verify the secret (or holds it)", row.SecretHash)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE details LIKE ?`, "%"+secret+"%"); n != 0 {
		t.Errorf("%d audit events hold the secret", n)
	}
	if code, _ := tokenWithSecret(t, env, "acme", clientID, secret); code != http.StatusBadRequest {
		t.Errorf("token endpoint with the new secret = %d, want 400 (client authenticated, grant refused)", code)
	}

	// Never shown again: not in the list, not in the detail.
	for _, path := range []string{clientsPath, clientPath(id, "")} {
		res := a.c.API(http.MethodGet, path, a.token, nil)
		if res.StatusCode != http.StatusOK || strings.Contains(string(res.Body), secret) || strings.Contains(string(res.Body), "secret_hash") ||
			strings.Contains(string(res.Body), "client_secret") || !strings.Contains(string(res.Body), clientID) {
			t.Errorf("GET %s = %d %s", path, res.StatusCode, res.Body)
		}
	}

	// A public application has no secret, and cannot be given one.
	spa := map[string]any{"name": "Dashboard", "type": "spa", "redirect_uris": []string{"https://dash.example.com/cb", "http://localhost:5173/cb"}}
	res = a.c.API(http.MethodPost, clientsPath, a.token, spa)
	if res.StatusCode != http.StatusCreated || res.JSON()["client_secret"] != nil || res.JSON()["confidential"] != false {
		t.Fatalf("create spa = %d %s", res.StatusCode, res.Body)
	}
	spaID := int64(res.JSON()["id"].(float64))
	if fmt.Sprint(res.JSON()["scopes"]) != "[openid email profile]" {
		t.Errorf("default scopes = %v", res.JSON()["scopes"])
	}
	if res := a.c.API(http.MethodPost, clientPath(spaID, "secret"), a.token, nil); res.StatusCode != http.StatusConflict || res.JSON()["error"] != "public_client" {
		t.Errorf("rotate an spa's secret = %d %s, want 409 public_client", res.StatusCode, res.Body)
	}
	if storedClient(t, env, a.acme, spaID).SecretHash != "" {
		t.Error("the spa got a secret")
	}
	native := map[string]any{"name": "Phone", "type": "native", "redirect_uris": []string{"com.example.phone:/oauth", "http://127.0.0.1:8123/cb"}}
	if res := a.c.API(http.MethodPost, clientsPath, a.token, native); res.StatusCode != http.StatusCreated {
		t.Errorf("create native with a private-use scheme = %d %s", res.StatusCode, res.Body)
	}

	// PATCH: partial; the type never changes; bad input changes nothing.
	res = a.c.API(http.MethodPatch, clientPath(id, ""), a.token, map[string]any{"name": "Billing v2",
		"redirect_uris": []string{"https://billing.example.com/callback", "https://billing.example.com/cb2"}})
	if res.StatusCode != http.StatusOK || res.JSON()["name"] != "Billing v2" || fmt.Sprint(res.JSON()["scopes"]) != "[openid email offline_access]" ||
		res.JSON()["first_party"] != true || len(res.JSON()["redirect_uris"].([]any)) != 2 || res.JSON()["client_secret"] != nil {
		t.Fatalf("patch = %d %s", res.StatusCode, res.Body)
	}
	for _, tc := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"type": "spa"}, "invalid_type"},
		{map[string]any{"name": ""}, "invalid_name"},
		{map[string]any{"redirect_uris": []string{}}, "invalid_redirect_uris"},
		{map[string]any{"redirect_uris": []string{"https://billing.example.com/*"}}, "invalid_redirect_uris"},
		{map[string]any{"post_logout_redirect_uris": []string{"javascript:alert(1)"}}, "invalid_post_logout_redirect_uris"},
		{map[string]any{"scopes": []string{"email"}}, "invalid_scopes"},
		{map[string]any{"scopes": []string{}}, "invalid_scopes"},
	} {
		res := a.c.API(http.MethodPatch, clientPath(id, ""), a.token, tc.body)
		if res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != tc.code || res.JSON()["message"] == "" {
			t.Errorf("patch %v = %d %s, want 400 %s", tc.body, res.StatusCode, res.Body, tc.code)
		}
	}
	if got := storedClient(t, env, a.acme, id); got.Name != "Billing v2" || len(got.RedirectURIs) != 2 || len(got.Scopes) != 3 || got.Kind != "web" {
		t.Errorf("after refused patches: %+v", got)
	}

	// Rotation: the new secret once; the old one fails at once.
	res = a.c.API(http.MethodPost, clientPath(id, "secret"), a.token, nil)
	newSecret, _ := res.JSON()["client_secret"].(string)
	if res.StatusCode != http.StatusOK || len(newSecret) != 43 || newSecret == secret || res.JSON()["secret_rotated_at"] == nil {
		t.Fatalf("rotate = %d %s", res.StatusCode, res.Body)
	}
	row = storedClient(t, env, a.acme, id)
	if env.Keys.VerifyHash("oauth_client_secret", secret, row.SecretHash) || !env.Keys.VerifyHash("oauth_client_secret", newSecret, row.SecretHash) {
		t.Error("after rotation the stored hash does not match the new secret only")
	}
	if code, errCode := tokenWithSecret(t, env, "acme", clientID, secret); code != http.StatusUnauthorized || errCode != "invalid_client" {
		t.Errorf("token endpoint with the old secret = %d %s, want 401 invalid_client", code, errCode)
	}
	if code, _ := tokenWithSecret(t, env, "acme", clientID, newSecret); code != http.StatusBadRequest {
		t.Errorf("token endpoint with the new secret = %d, want 400", code)
	}

	// Delete: 204, then gone, and its secret no longer authenticates.
	if res := a.c.API(http.MethodDelete, clientPath(id, ""), a.token, nil); res.StatusCode != http.StatusNoContent {
		t.Fatalf("delete = %d %s", res.StatusCode, res.Body)
	}
	for _, call := range []struct{ method, path string }{{http.MethodGet, clientPath(id, "")}, {http.MethodDelete, clientPath(id, "")},
		{http.MethodPost, clientPath(id, "secret")}, {http.MethodPatch, clientPath(id, "")}} {
		if res := a.c.API(call.method, call.path, a.token, map[string]any{"name": "x"}); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s after delete = %d, want 404", call.method, call.path, res.StatusCode)
		}
	}
	if code, errCode := tokenWithSecret(t, env, "acme", clientID, newSecret); code != http.StatusUnauthorized || errCode != "invalid_client" {
		t.Errorf("token endpoint for a deleted client = %d %s, want 401 invalid_client", code, errCode)
	}

	// No secret in the logs, ever.
	for _, s := range []string{secret, newSecret} {
		if strings.Contains(env.Logs(), s) {
			t.Error("a client secret is in the logs")
		}
	}
	events := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE event IN (?, ?, ?, ?)`,
		db.EventOAuthClientCreated, db.EventOAuthClientUpdated, db.EventOAuthSecretRotated, db.EventOAuthClientDeleted)
	if events != 6 { // 3 created, 1 updated, 1 rotated, 1 deleted
		t.Errorf("%d client audit events, want 6", events)
	}
}

func TestAdminAPIClientsRefuseBadRedirects(t *testing.T) {
	a := aal2AdminSetup(t)
	for _, tc := range []struct {
		kind, uri string
		field     string
	}{
		{"web", "https://app.example.com/cb#fragment", "redirect_uris"},
		{"web", "https://*.example.com/cb", "redirect_uris"},
		{"web", "http://app.example.com/cb", "redirect_uris"},
		{"spa", "http://app.example.com/cb", "redirect_uris"},
		{"native", "http://app.example.com/cb", "redirect_uris"},
		{"native", "javascript:alert(document.cookie)", "redirect_uris"},
		{"web", "javascript:alert(1)", "redirect_uris"},
		{"native", "data:text/html,hi", "redirect_uris"},
		{"web", "https://user:pass@app.example.com/cb", "redirect_uris"},
		{"web", "/relative/cb", "redirect_uris"},
		{"web", "https://app.example.com/" + strings.Repeat("x", 2000), "redirect_uris"},
	} {
		body := map[string]any{"name": "App", "type": tc.kind, "redirect_uris": []string{"https://ok.example.com/cb", tc.uri}}
		res := a.c.API(http.MethodPost, clientsPath, a.token, body)
		if res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_"+tc.field {
			t.Errorf("create %s with %.60q = %d %s, want 400 invalid_%s", tc.kind, tc.uri, res.StatusCode, res.Body, tc.field)
		}
	}
	for _, tc := range []struct {
		body any
		code string
	}{
		{map[string]any{"type": "web", "redirect_uris": []string{"https://a.example.com/"}}, "invalid_name"},
		{map[string]any{"name": strings.Repeat("n", 101), "type": "web", "redirect_uris": []string{"https://a.example.com/"}}, "invalid_name"},
		{map[string]any{"name": "App", "type": "service", "redirect_uris": []string{"https://a.example.com/"}}, "invalid_type"},
		{map[string]any{"name": "App", "redirect_uris": []string{"https://a.example.com/"}}, "invalid_type"},
		{map[string]any{"name": "App", "type": "web"}, "invalid_redirect_uris"},
		{map[string]any{"name": "App", "type": "web", "redirect_uris": []string{"https://a.example.com/"}, "scopes": []string{"profile"}}, "invalid_scopes"},
		{map[string]any{"name": "App", "type": "web", "redirect_uris": []string{"https://a.example.com/"}, "scopes": []string{"openid", "admin"}}, "invalid_scopes"},
		{`{"name": "App", "type": "web", "redirect_uris": "https://a.example.com/"}`, "invalid_request"},
		{"not json", "invalid_request"},
	} {
		res := a.c.API(http.MethodPost, clientsPath, a.token, tc.body)
		if res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != tc.code {
			t.Errorf("create %v = %d %s, want 400 %s", tc.body, res.StatusCode, res.Body, tc.code)
		}
	}
	if n := countRows(t, a.env, "oauth_clients"); n != 0 {
		t.Fatalf("%d clients stored after refused registrations", n)
	}
	if n := queryInt(t, a.env, `SELECT COUNT(*) FROM audit_events WHERE event = ?`, db.EventOAuthClientCreated); n != 0 {
		t.Fatalf("%d creations audited after refused registrations", n)
	}
}

func TestAdminAPIClientsRefusals(t *testing.T) {
	a := aal2AdminSetup(t)
	env := a.env
	ctx := context.Background()
	globex, err := env.Store.WorkspaceBySlug(ctx, "globex")
	if err != nil {
		t.Fatal(err)
	}
	theirs, theirSecret, err := env.Server.CreateClient(ctx, globex.ID, 0, app.ClientInput{Name: "Globex CRM", Type: "web",
		RedirectURIs: []string{"https://crm.globex.test/cb"}}, db.Meta{})
	if err != nil {
		t.Fatal(err)
	}

	// Another workspace's id is a 404, and nothing happens to it.
	for _, call := range []struct {
		method string
		body   any
		action string
	}{{http.MethodGet, nil, ""}, {http.MethodPatch, map[string]any{"name": "Mine now"}, ""}, {http.MethodDelete, nil, ""},
		{http.MethodPost, nil, "secret"}} {
		res := a.c.API(call.method, clientPath(theirs.ID, call.action), a.token, call.body)
		if res.StatusCode != http.StatusNotFound || res.JSON()["error"] != "not_found" {
			t.Errorf("acme admin %s globex's client = %d %s, want 404", call.method, res.StatusCode, res.Body)
		}
	}
	if got := storedClient(t, env, globex, theirs.ID); got.Name != "Globex CRM" || !env.Keys.VerifyHash("oauth_client_secret", theirSecret, got.SecretHash) {
		t.Errorf("globex's client after acme's attempts: %+v", got)
	}
	if res := a.c.API(http.MethodGet, clientsPath, a.token, nil); strings.Contains(string(res.Body), theirs.ClientID) {
		t.Error("acme's list shows globex's client")
	}
	// Nor does globex's client authenticate at acme's token endpoint.
	if code, _ := tokenWithSecret(t, env, "acme", theirs.ClientID, theirSecret); code != http.StatusUnauthorized {
		t.Errorf("globex's client at acme's token endpoint = %d, want 401", code)
	}
	for _, id := range []string{"0", "-1", "abc", "99999999999999999999"} {
		if res := a.c.API(http.MethodGet, clientsPath+"/"+id, a.token, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET clients/%s = %d, want 404", id, res.StatusCode)
		}
	}

	// A member: 403 on every call.
	res := a.c.API(http.MethodPost, clientsPath, a.token, webClient("Mine"))
	mine := int64(res.JSON()["id"].(float64))
	member := env.Client()
	memberToken := member.APILogin("acme", "alice@acme.test", pw)
	for _, call := range []struct{ method, path string }{{http.MethodGet, clientsPath}, {http.MethodPost, clientsPath},
		{http.MethodGet, clientPath(mine, "")}, {http.MethodPatch, clientPath(mine, "")}, {http.MethodDelete, clientPath(mine, "")},
		{http.MethodPost, clientPath(mine, "secret")}} {
		res := member.API(call.method, call.path, memberToken, webClient("Member's"))
		if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "forbidden" {
			t.Errorf("member %s %s = %d %s, want 403", call.method, call.path, res.StatusCode, res.Body)
		}
	}

	// A stale session: reads work, every change asks for step-up and
	// changes nothing.
	env.Clock.Advance(11 * time.Minute)
	before := storedClient(t, env, a.acme, mine)
	if res := a.c.API(http.MethodGet, clientPath(mine, ""), a.token, nil); res.StatusCode != http.StatusOK {
		t.Errorf("stale GET = %d", res.StatusCode)
	}
	for _, call := range []struct{ method, path string }{{http.MethodPost, clientsPath}, {http.MethodPatch, clientPath(mine, "")},
		{http.MethodDelete, clientPath(mine, "")}, {http.MethodPost, clientPath(mine, "secret")}} {
		res := a.c.API(call.method, call.path, a.token, webClient("Stale"))
		if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
			t.Errorf("stale %s %s = %d %s, want 403 step_up_required", call.method, call.path, res.StatusCode, res.Body)
		}
	}
	// Another workspace's id is a 404 before the step-up is even asked.
	for _, call := range []struct{ method, path string }{{http.MethodPatch, clientPath(theirs.ID, "")},
		{http.MethodDelete, clientPath(theirs.ID, "")}, {http.MethodPost, clientPath(theirs.ID, "secret")}} {
		if res := a.c.API(call.method, call.path, a.token, webClient("Stale")); res.StatusCode != http.StatusNotFound {
			t.Errorf("stale %s of globex's client = %d %s, want 404", call.method, res.StatusCode, res.Body)
		}
	}
	if n := countRows(t, env, "oauth_clients"); n != 2 {
		t.Errorf("%d clients after refused calls, want 2", n)
	}
	if after := storedClient(t, env, a.acme, mine); after.Name != before.Name || after.SecretHash != before.SecretHash {
		t.Errorf("client changed by refused calls: %+v", after)
	}
}
