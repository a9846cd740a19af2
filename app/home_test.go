package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
)

// demo is what serve --demo hands the server.
func demo(c *app.Config) {
	c.Demo = &app.Demo{Slug: "demo", Accounts: []app.DemoAccount{
		{Role: "owner", Email: "owner@demo.test", Password: "gatehouse-demo"},
		{Role: "member", Email: "member@demo.test", Password: "gatehouse-demo"},
	}}
}

// A newcomer's first click: in dev mode with the demo workspace the start
// page leads to its sign-in, with the accounts make run printed; anywhere
// else it names no workspace and shows no account.
func TestHome(t *testing.T) {
	t.Parallel()

	t.Run("DevDemo", func(t *testing.T) {
		t.Parallel()
		env := apptest.New(t, demo)
		env.Workspace("demo", "Demo Workspace")
		c := env.Client()
		res := c.Get("/")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /: %d", res.StatusCode)
		}
		doc := res.Doc()
		href, _ := doc.Find(`a[data-testid="demo-sign-in"]`).Attr("href")
		if want := env.Config.BaseURL.String() + "/t/demo/login"; href != want {
			t.Fatalf("sign-in link: got %q, want %q", href, want)
		}
		accounts := doc.Find(`[data-testid="demo-accounts"] tbody tr`)
		if got := accounts.Length(); got != 2 {
			t.Errorf("demo accounts: got %d rows, want 2", got)
		}
		if got := accounts.First().Text(); !strings.Contains(got, "owner@demo.test") || !strings.Contains(got, "gatehouse-demo") {
			t.Errorf("first demo account: got %q", got)
		}
		// The link leads to the workspace's sign-in form.
		res = c.Get(strings.TrimPrefix(href, env.Config.BaseURL.String()))
		if res.StatusCode != http.StatusOK || res.Doc().Find(`form input[name="password"]`).Length() != 1 {
			t.Errorf("GET %s: %d, no sign-in form", href, res.StatusCode)
		}
	})

	for _, tc := range []struct {
		name string
		opts []func(*app.Config)
	}{
		// Production: a Demo in the config is ignored outside dev mode.
		{"Production", []func(*app.Config){demo, func(c *app.Config) { c.Dev = false }}},
		// Dev mode without --demo: no demo workspace to lead to.
		{"DevWithoutDemo", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := apptest.New(t, tc.opts...)
			env.Workspace("demo", "Demo Workspace")
			env.Workspace("acme", "Acme Corp")
			res := env.Client().Get("/")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET /: %d", res.StatusCode)
			}
			body := string(res.Body)
			for _, leak := range []string{"/t/demo", "/t/acme", "Demo Workspace", "Acme", "demo.test", "gatehouse-demo"} {
				if strings.Contains(body, leak) {
					t.Errorf("GET / shows %q", leak)
				}
			}
			if got := res.Doc().Find("main").Text(); !strings.Contains(got, "ask your workspace administrator") {
				t.Errorf("GET /: no neutral text in %q", got)
			}
		})
	}
}
