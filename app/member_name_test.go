package app_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/db"
)

// TestAdminMemberName: a name given by an import shows beside the email
// on the members list and on the member's page, escaped, and in the admin
// API's member objects; the search finds part of it in any case; a member
// without a name has no name markup and "name": "" in the API.
func TestAdminMemberName(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	const evil = `<script>alert(1)</script> & "Bob"`
	body := "email,role,name\nada@acme.test,member,Ada Lovelace\nevil@acme.test,member," + csvQuote(evil) + "\nnoname@acme.test,member,\n"
	if res := importReq(a.c, importPath, a.token, "text/csv", body); res.StatusCode != http.StatusOK || res.JSON()["imported"] != float64(3) {
		t.Fatalf("import = %d %s", res.StatusCode, res.Body)
	}
	user := func(email string) db.User {
		t.Helper()
		u, err := a.env.Store.UserByEmail(t.Context(), a.acme.ID, email)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	ada, evilU, noname := user("ada@acme.test"), user("evil@acme.test"), user("noname@acme.test")

	// rows is the members list for a search: email → the name shown ("-"
	// for no name markup at all).
	rows := func(q string) map[string]string {
		t.Helper()
		res := a.c.Get("/t/acme/admin/members?q=" + url.QueryEscape(q))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("members?q=%s = %d", q, res.StatusCode)
		}
		if strings.Contains(string(res.Body), "<script>alert(1)") {
			t.Errorf("members?q=%s: the name is not escaped", q)
		}
		out := map[string]string{}
		res.Doc().Find("[data-testid=members] tbody tr").Each(func(_ int, tr *goquery.Selection) {
			email := tr.Find("td:first-child a").Text()
			if email == "" {
				return // "No members match."
			}
			out[email] = "-"
			if n := tr.Find("td:first-child [data-testid=member-name]"); n.Length() > 0 {
				out[email] = n.Find("bdi").Text()
			}
		})
		return out
	}
	all := rows("")
	for email, want := range map[string]string{"ada@acme.test": "Ada Lovelace", "evil@acme.test": evil, "noname@acme.test": "-", "alice@acme.test": "-"} {
		if all[email] != want {
			t.Errorf("members list: %s shows name %q, want %q", email, all[email], want)
		}
	}
	for q, want := range map[string]string{"lovelace": "ada@acme.test", "ADA LOVE": "ada@acme.test", "SCRIPT>": "evil@acme.test", `"bob"`: "evil@acme.test"} {
		if got := rows(q); len(got) != 1 || got[want] == "" {
			t.Errorf("search %q = %v, want only %s", q, got, want)
		}
	}
	if got := rows("nobody-is-called-this"); len(got) != 0 {
		t.Errorf("search for no one = %v", got)
	}

	// The member's page.
	for _, c := range []struct {
		u    db.User
		want string // "-": no name markup
	}{{ada, "Ada Lovelace"}, {evilU, evil}, {noname, "-"}} {
		res := a.c.Get(memberPath(c.u, ""))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("member page %s = %d", c.u.Email, res.StatusCode)
		}
		if strings.Contains(string(res.Body), "<script>alert(1)") {
			t.Errorf("member page %s: the name is not escaped", c.u.Email)
		}
		doc := res.Doc()
		if got := doc.Find("[data-testid=member-email]").Text(); got != c.u.Email {
			t.Errorf("member page %s: email %q", c.u.Email, got)
		}
		got := "-"
		if n := doc.Find("[data-testid=member-name]"); n.Length() > 0 {
			got = n.Find("bdi").Text()
			if !strings.Contains(n.Text(), "Name:") {
				t.Errorf("member page %s: the name has no label: %q", c.u.Email, n.Text())
			}
		}
		if got != c.want {
			t.Errorf("member page %s: name %q, want %q", c.u.Email, got, c.want)
		}
	}

	// The API: the list (with a search by name) and the member.
	apiNames := func(query string) map[string]any {
		t.Helper()
		res := a.c.API(http.MethodGet, "/t/acme/api/v1/admin/members"+query, a.token, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET admin/members%s = %d %s", query, res.StatusCode, res.Body)
		}
		out := map[string]any{}
		for _, m := range res.JSON()["members"].([]any) {
			m := m.(map[string]any)
			out[m["email"].(string)] = m["name"]
		}
		return out
	}
	list := apiNames("")
	for email, want := range map[string]any{"ada@acme.test": "Ada Lovelace", "evil@acme.test": evil, "noname@acme.test": "", "alice@acme.test": ""} {
		if list[email] != want {
			t.Errorf("API list: %s name = %#v, want %#v", email, list[email], want)
		}
	}
	if got := apiNames("?q=LOVELACE"); fmt.Sprint(got) != fmt.Sprint(map[string]any{"ada@acme.test": "Ada Lovelace"}) {
		t.Errorf("API search LOVELACE = %v", got)
	}
	for _, c := range []struct {
		u    db.User
		want any
	}{{ada, "Ada Lovelace"}, {evilU, evil}, {noname, ""}} {
		res := a.c.API(http.MethodGet, fmt.Sprintf("/t/acme/api/v1/admin/members/%d", c.u.ID), a.token, nil)
		if got, ok := res.JSON()["name"]; res.StatusCode != http.StatusOK || !ok || got != c.want {
			t.Errorf("API member %s = %d, name %#v (present %v), want %#v", c.u.Email, res.StatusCode, got, ok, c.want)
		}
	}
}

// csvQuote quotes a CSV field.
func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
