package app_test

// The admin console's applications through the whole stack: register (the
// secret on that answer only), list, edit, new secret, delete with a
// confirmation, recent sign-ins from the audit log; refusals as for every
// admin page (member 403, another workspace's id 404, a stale session goes
// to verify first).

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

func appPath(id int64, action string) string {
	p := fmt.Sprintf("/t/acme/admin/apps/%d", id)
	if action != "" {
		p += "/" + action
	}
	return p
}

func appForm(name, kind string, redirects ...string) url.Values {
	return url.Values{"name": {name}, "type": {kind}, "redirect_uris": {strings.Join(redirects, "\r\n")},
		"scopes": {"openid", "email"}}
}

func TestAdminAppsRegisterShowsSecretOnce(t *testing.T) {
	a := aal2AdminSetup(t)
	env, c := a.env, a.c

	// The console links to the applications; none yet.
	if doc := c.Get("/t/acme/admin").Doc(); doc.Find(`nav.subnav a[href="/t/acme/admin/apps"]`).Text() != "Applications" {
		t.Error("the admin navigation has no Applications link")
	}
	res := c.Get("/t/acme/admin/apps")
	if res.StatusCode != http.StatusOK || !strings.Contains(string(res.Body), "No applications yet.") {
		t.Fatalf("list = %d", res.StatusCode)
	}
	doc := c.Get("/t/acme/admin/apps/new").Doc()
	for _, sel := range []string{`label[for=name]`, `input#type-web[checked]`, `label[for=redirect_uris]`, `textarea#redirect_uris`,
		`textarea#post_logout_redirect_uris`, `input[name=scopes][value=email][checked]`, `input[name=first_party]`} {
		if doc.Find(sel).Length() != 1 {
			t.Errorf("the registration form has no %s", sel)
		}
	}

	form := appForm("Billing", "web", "https://billing.example.com/callback", "", "http://localhost:3000/callback")
	form.Set("first_party", "on")
	form.Set("post_logout_redirect_uris", "https://billing.example.com/")
	res = c.PostForm("/t/acme/admin/apps", form)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("register = %d %s", res.StatusCode, res.Body)
	}
	doc = res.Doc()
	secret := doc.Find("[data-testid=client-secret]").Text()
	clientID := doc.Find("[data-testid=client-id]").Text()
	if len(secret) != 43 || !strings.HasPrefix(clientID, "gh_") || !strings.Contains(doc.Find("[data-testid=new-secret]").Text(), "it will not be shown again") {
		t.Fatalf("the answer shows secret %q, client id %q", secret, clientID)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the page with the secret has Cache-Control %q", res.Header.Get("Cache-Control"))
	}
	cl, err := env.Store.OAuthClientByClientID(context.Background(), a.acme.ID, clientID)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Name != "Billing" || cl.Kind != "web" || !cl.FirstParty || len(cl.RedirectURIs) != 2 || len(cl.PostLogoutRedirectURIs) != 1 ||
		fmt.Sprint(cl.Scopes) != "[openid email]" {
		t.Errorf("stored %+v", cl)
	}
	if strings.Contains(cl.SecretHash, secret) || !env.Keys.VerifyHash("oauth_client_secret", secret, cl.SecretHash) {
		t.Error("the stored hash does not verify the secret shown (or holds it)")
	}

	// Never shown again: the page and the list have the client id only.
	for _, path := range []string{appPath(cl.ID, ""), "/t/acme/admin/apps"} {
		body := string(c.Get(path).Body)
		if strings.Contains(body, secret) || !strings.Contains(body, clientID) {
			t.Errorf("GET %s shows the secret or misses the client id", path)
		}
	}

	// A public application gets no secret.
	res = c.PostForm("/t/acme/admin/apps", appForm("Dashboard", "spa", "https://dash.example.com/cb"))
	if res.StatusCode != http.StatusCreated || res.Doc().Find("[data-testid=client-secret]").Length() != 0 {
		t.Errorf("register an spa = %d, or it shows a secret", res.StatusCode)
	}

	// A new secret: shown once; the old one stops working.
	res = c.PostForm(appPath(cl.ID, "secret"), nil)
	newSecret := res.Doc().Find("[data-testid=client-secret]").Text()
	if res.StatusCode != http.StatusOK || len(newSecret) != 43 || newSecret == secret {
		t.Fatalf("new secret = %d %q", res.StatusCode, newSecret)
	}
	if code, errCode := tokenWithSecret(t, env, "acme", clientID, secret); code != http.StatusUnauthorized || errCode != "invalid_client" {
		t.Errorf("the old secret at the token endpoint = %d %s, want 401 invalid_client", code, errCode)
	}
	if code, _ := tokenWithSecret(t, env, "acme", clientID, newSecret); code != http.StatusBadRequest {
		t.Errorf("the new secret at the token endpoint = %d, want 400 (past client authentication)", code)
	}
	if strings.Contains(string(c.Get(appPath(cl.ID, "")).Body), newSecret) {
		t.Error("the new secret is shown again")
	}
	for _, s := range []string{secret, newSecret} {
		if strings.Contains(env.Logs(), s) {
			t.Error("a client secret is in the logs")
		}
	}
}

func TestAdminAppsRefuseBadInput(t *testing.T) {
	a := aal2AdminSetup(t)
	env, c := a.env, a.c
	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
	}{
		{"ErrFragment", appForm("App", "web", "https://app.example.com/cb#x"), "redirect_uris"},
		{"ErrWildcard", appForm("App", "web", "https://*.example.com/cb"), "redirect_uris"},
		{"ErrHTTP", appForm("App", "spa", "http://app.example.com/cb"), "redirect_uris"},
		{"ErrJavaScript", appForm("App", "native", "javascript:alert(1)"), "redirect_uris"},
		{"ErrNoRedirect", appForm("App", "web", "", " "), "redirect_uris"},
		{"ErrName", appForm("", "web", "https://app.example.com/cb"), "name"},
		{"ErrType", appForm("App", "daemon", "https://app.example.com/cb"), "type"},
		{"ErrLogout", func() url.Values {
			f := appForm("App", "web", "https://app.example.com/cb")
			f.Set("post_logout_redirect_uris", "http://app.example.com/")
			return f
		}(), "post_logout_redirect_uris"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.PostForm("/t/acme/admin/apps", tc.form)
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("register = %d, want 422", res.StatusCode)
			}
			doc := res.Doc()
			if doc.Find("#"+tc.field+"-error").Text() == "" || doc.Find("[aria-invalid=true]").Length() == 0 && tc.field != "type" {
				t.Errorf("no error beside %s", tc.field)
			}
			if got := doc.Find("input#name").AttrOr("value", ""); got != tc.form.Get("name") {
				t.Errorf("the form lost the name: %q", got)
			}
		})
	}
	if n := countRows(t, env, "oauth_clients"); n != 0 {
		t.Fatalf("%d clients stored after refused registrations", n)
	}
}

func TestAdminAppEditAndDelete(t *testing.T) {
	a := aal2AdminSetup(t)
	env, c := a.env, a.c
	ctx := context.Background()
	cl, _, err := env.Server.CreateClient(ctx, a.acme.ID, a.admin.ID, app.ClientInput{Name: "Billing", Type: "web",
		RedirectURIs: []string{"https://billing.example.com/cb"}}, db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	doc := c.Get(appPath(cl.ID, "")).Doc()
	if doc.Find("textarea#redirect_uris").Text() != "https://billing.example.com/cb" || doc.Find(`input[name=scopes][value=profile][checked]`).Length() != 1 {
		t.Error("the edit form does not hold the application's settings")
	}

	form := url.Values{"name": {"Billing v2"}, "redirect_uris": {"https://billing.example.com/cb\nhttps://billing.example.com/cb2"},
		"scopes": {"openid", "offline_access"}, "first_party": {"on"}, "type": {"spa"}}
	res := c.PostForm(appPath(cl.ID, ""), form)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != appPath(cl.ID, "")+"?notice=app_updated" {
		t.Fatalf("save = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	got := storedClient(t, env, a.acme, cl.ID)
	if got.Name != "Billing v2" || len(got.RedirectURIs) != 2 || fmt.Sprint(got.Scopes) != "[openid offline_access]" || !got.FirstParty || got.Kind != "web" {
		t.Errorf("after save: %+v (the type must not change)", got)
	}
	// Bad input: 422 with the values typed; nothing saved.
	form.Set("redirect_uris", "https://billing.example.com/cb#frag")
	form.Set("name", "Evil")
	res = c.PostForm(appPath(cl.ID, ""), form)
	if res.StatusCode != http.StatusUnprocessableEntity || res.Doc().Find("#redirect_uris-error").Text() == "" ||
		res.Doc().Find("textarea#redirect_uris").Text() != "https://billing.example.com/cb#frag" {
		t.Errorf("bad save = %d", res.StatusCode)
	}
	if storedClient(t, env, a.acme, cl.ID).Name != "Billing v2" {
		t.Error("a refused save changed the application")
	}

	// A public application has no secret to rotate.
	spa, _, _ := env.Server.CreateClient(ctx, a.acme.ID, a.admin.ID, app.ClientInput{Name: "SPA", Type: "spa",
		RedirectURIs: []string{"https://spa.example.com/cb"}}, db.Meta{})
	if res := c.PostForm(appPath(spa.ID, "secret"), nil); res.StatusCode != http.StatusConflict || storedClient(t, env, a.acme, spa.ID).SecretHash != "" {
		t.Errorf("rotate an spa = %d", res.StatusCode)
	}
	if c.Get(appPath(spa.ID, "")).Doc().Find("[data-testid=rotate-form]").Length() != 0 {
		t.Error("an spa's page offers a new secret")
	}

	// Delete: only with the box ticked; it says tokens stop working.
	if !strings.Contains(c.Get(appPath(cl.ID, "")).Doc().Find("[data-testid=delete-form]").Text(), "stops working") {
		t.Error("the delete form does not say the tokens stop working")
	}
	if res := c.PostForm(appPath(cl.ID, "delete"), nil); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("delete without the box = %d, want 422", res.StatusCode)
	}
	storedClient(t, env, a.acme, cl.ID)
	res = c.PostForm(appPath(cl.ID, "delete"), url.Values{"confirm": {"yes"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/admin/apps?notice=app_deleted" {
		t.Fatalf("delete = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := env.Store.OAuthClient(ctx, a.acme.ID, cl.ID); err == nil {
		t.Error("the application is still there")
	}
	if res := c.Get(appPath(cl.ID, "")); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET a deleted application = %d, want 404", res.StatusCode)
	}
}

func TestAdminAppRecentSignIns(t *testing.T) {
	a := aal2AdminSetup(t)
	env, c := a.env, a.c
	ctx := context.Background()
	mk := func(name string) db.OAuthClient {
		cl, _, err := env.Server.CreateClient(ctx, a.acme.ID, a.admin.ID, app.ClientInput{Name: name, Type: "spa",
			RedirectURIs: []string{"https://" + strings.ToLower(name) + ".example.com/cb"}}, db.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	ours, other := mk("Ours"), mk("Other")
	audit := func(event, clientID string, details map[string]any) {
		details["client_id"] = clientID
		if err := env.Store.Audit(ctx, db.AuditEvent{WorkspaceID: a.acme.ID, ActorUserID: a.alice.ID, SubjectUserID: a.alice.ID, Event: event,
			IP: "203.0.113.9", Details: details}); err != nil {
			t.Fatal(err)
		}
	}
	for range 25 {
		audit(db.EventOAuthAuthorized, ours.ClientID, map[string]any{"flow": "browser"})
		audit(db.EventOAuthTokenIssued, ours.ClientID, map[string]any{"grant": "authorization_code"})
	}
	audit(db.EventOAuthAuthorized, other.ClientID, map[string]any{"flow": "browser"})
	audit(db.EventOAuthConsentGranted, ours.ClientID, map[string]any{}) // not a sign-in

	rows := c.Get(appPath(ours.ID, "")).Doc().Find("[data-testid=sign-ins] tbody tr")
	if rows.Length() != 20 || !strings.Contains(rows.First().Text(), "alice@acme.test") || !strings.Contains(rows.First().Text(), "Tokens issued") {
		t.Errorf("ours shows %d sign-ins, first %q; want the latest 20", rows.Length(), rows.First().Text())
	}
	rows = c.Get(appPath(other.ID, "")).Doc().Find("[data-testid=sign-ins] tbody tr")
	if rows.Length() != 1 || !strings.Contains(rows.Text(), "Signed in") {
		t.Errorf("other shows %d sign-ins: %q", rows.Length(), rows.Text())
	}
	// The list: a last sign-in for both, "Never" for a new one.
	mk("Fresh")
	list := c.Get("/t/acme/admin/apps").Doc().Find("[data-testid=apps] tbody tr")
	if list.Length() != 3 || strings.Contains(list.Eq(0).Text(), "Never") || strings.Contains(list.Eq(1).Text(), "Never") ||
		!strings.Contains(list.Eq(2).Text(), "Never") {
		t.Errorf("list rows: %q", list.Text())
	}
}

func TestAdminAppsRefusals(t *testing.T) {
	a := aal2AdminSetup(t)
	env, c := a.env, a.c
	ctx := context.Background()
	globex, _ := env.Store.WorkspaceBySlug(ctx, "globex")
	theirs, theirSecret, err := env.Server.CreateClient(ctx, globex.ID, 0, app.ClientInput{Name: "Globex CRM", Type: "web",
		RedirectURIs: []string{"https://crm.globex.test/cb"}}, db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	// Another workspace's application: 404 on every page and action.
	if res := c.Get(appPath(theirs.ID, "")); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET globex's app = %d, want 404", res.StatusCode)
	}
	for _, action := range []string{"", "secret", "delete"} {
		res := c.PostForm(appPath(theirs.ID, action), url.Values{"confirm": {"yes"}, "name": {"Mine"}, "redirect_uris": {"https://evil.example/cb"}, "scopes": {"openid"}})
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("POST globex's app %q = %d, want 404", action, res.StatusCode)
		}
	}
	if got := storedClient(t, env, globex, theirs.ID); got.Name != "Globex CRM" || !env.Keys.VerifyHash("oauth_client_secret", theirSecret, got.SecretHash) {
		t.Errorf("globex's app changed: %+v", got)
	}
	if strings.Contains(string(c.Get("/t/acme/admin/apps").Body), theirs.ClientID) {
		t.Error("acme's list shows globex's app")
	}

	// A member: 403.
	ours, _, _ := env.Server.CreateClient(ctx, a.acme.ID, a.admin.ID, app.ClientInput{Name: "Billing", Type: "web",
		RedirectURIs: []string{"https://billing.example.com/cb"}}, db.Meta{})
	member := env.Client()
	member.Login("acme", "alice@acme.test", pw)
	for _, path := range []string{"/t/acme/admin/apps", "/t/acme/admin/apps/new", appPath(ours.ID, "")} {
		if res := member.Get(path); res.StatusCode != http.StatusForbidden {
			t.Errorf("member GET %s = %d, want 403", path, res.StatusCode)
		}
	}
	for _, path := range []string{"/t/acme/admin/apps", appPath(ours.ID, ""), appPath(ours.ID, "secret"), appPath(ours.ID, "delete")} {
		if res := member.PostForm(path, appForm("Member's", "web", "https://m.example.com/cb")); res.StatusCode != http.StatusForbidden {
			t.Errorf("member POST %s = %d, want 403", path, res.StatusCode)
		}
	}

	// A stale session: the form and every change go to verify first, and
	// come back to the form or the application's page.
	env.Clock.Advance(11 * time.Minute)
	before := storedClient(t, env, a.acme, ours.ID)
	for _, call := range []struct{ method, path, back string }{
		{http.MethodGet, "/t/acme/admin/apps/new", "/t/acme/admin/apps/new"},
		{http.MethodPost, "/t/acme/admin/apps", "/t/acme/admin/apps/new"},
		{http.MethodPost, appPath(ours.ID, ""), appPath(ours.ID, "")},
		{http.MethodPost, appPath(ours.ID, "secret"), appPath(ours.ID, "")},
		{http.MethodPost, appPath(ours.ID, "delete"), appPath(ours.ID, "")},
	} {
		var res *apptest.Response
		if call.method == http.MethodGet {
			res = c.Get(call.path)
		} else {
			f := appForm("Stale", "web", "https://stale.example.com/cb")
			f.Set("confirm", "yes")
			res = c.PostForm(call.path, f)
		}
		want := "/t/acme/account/verify?next=" + url.QueryEscape(call.back)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
			t.Errorf("stale %s %s = %d %q, want 303 to %s", call.method, call.path, res.StatusCode, res.Header.Get("Location"), want)
		}
	}
	if n := countRows(t, env, "oauth_clients"); n != 2 {
		t.Errorf("%d clients after refused changes, want 2", n)
	}
	if after := storedClient(t, env, a.acme, ours.ID); after.Name != before.Name || after.SecretHash != before.SecretHash {
		t.Error("a stale session changed the application")
	}
	// Reading needs no step-up.
	if res := c.Get(appPath(ours.ID, "")); res.StatusCode != http.StatusOK {
		t.Errorf("stale GET app = %d", res.StatusCode)
	}
}
