package app_test

import (
	"net/http"
	"testing"

	"github.com/gatehouse/gatehouse/app/apptest"
)

func TestLoginSmoke(t *testing.T) {
	env := apptest.New(t)
	ws := env.Workspace("acme", "Acme")
	env.User(ws, "alice@acme.test", "member", "correct horse battery")
	c := env.Client()
	res := c.Login("acme", "alice@acme.test", "correct horse battery")
	if got := res.Header.Get("Location"); got != "/t/acme/account" {
		t.Fatalf("login redirect = %q, want /t/acme/account", got)
	}
	res = c.Get("/t/acme/account")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET account = %d", res.StatusCode)
	}
	if got := res.Doc().Find(`[data-testid=account-email]`).Text(); got != "alice@acme.test" {
		t.Fatalf("account email = %q", got)
	}
}
