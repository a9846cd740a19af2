package app

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/db"
)

func TestCheckRedirectURI(t *testing.T) {
	long := "https://app.example.com/" + strings.Repeat("a", maxRedirectURILen)
	for _, tc := range []struct {
		kind, uri string
		ok        bool
	}{
		{db.ClientWeb, "https://app.example.com/callback", true},
		{db.ClientWeb, "https://app.example.com:8443/cb?x=1", true},
		{db.ClientSPA, "https://spa.example.com/", true},
		{db.ClientNative, "https://app.example.com/native", true}, // claimed https URI (RFC 8252 §7.2)
		{db.ClientWeb, "http://127.0.0.1:8080/cb", true},
		{db.ClientSPA, "http://[::1]:3000/cb", true},
		{db.ClientNative, "http://localhost/cb", true},
		{db.ClientNative, "http://127.0.0.1:51004/oauth", true},
		{db.ClientNative, "com.example.app:/callback", true},
		{db.ClientNative, "com.example.app://callback", true},

		{db.ClientWeb, "http://app.example.com/cb", false},    // http off loopback
		{db.ClientNative, "http://app.example.com/cb", false}, // never for native either
		{db.ClientNative, "http://127.0.0.2/cb", false},
		{db.ClientWeb, "http://localhost.evil.com/cb", false},
		{db.ClientWeb, "https://app.example.com/cb#frag", false},
		{db.ClientWeb, "https://app.example.com/cb#", false},
		{db.ClientWeb, "https://*.example.com/cb", false},
		{db.ClientWeb, "https://app.example.com/*", false},
		{db.ClientWeb, "https://user:pw@app.example.com/cb", false},
		{db.ClientWeb, "https://evil.com@app.example.com/cb", false},
		{db.ClientWeb, "/callback", false},
		{db.ClientWeb, "app.example.com/callback", false},
		{db.ClientWeb, "https:/callback", false},
		{db.ClientWeb, "https:app.example.com", false},
		{db.ClientWeb, "https://app.example.com/a b", false},
		{db.ClientWeb, "https://app.example.com/\u202ecb", false},
		{db.ClientWeb, long, false},
		{db.ClientWeb, "com.example.app:/callback", false}, // private-use: native only
		{db.ClientSPA, "com.example.app:/callback", false},
		{db.ClientNative, "javascript:alert(1)", false},
		{db.ClientNative, "JavaScript://%0aalert(1)", false},
		{db.ClientNative, "data:text/html,<script>alert(1)</script>", false},
		{db.ClientNative, "file:///etc/passwd", false},
		{db.ClientNative, "vbscript:msgbox(1)", false},
		{db.ClientNative, "myapp:/callback", false}, // not reverse domain notation
		{db.ClientWeb, "javascript:alert(1)", false},
		{db.ClientNative, "com.example.app:", false},
	} {
		msg := checkRedirectURI(tc.kind, tc.uri)
		if (msg == "") != tc.ok {
			t.Errorf("checkRedirectURI(%s, %q) = %q, want ok %t", tc.kind, truncateRunes(tc.uri, 60), msg, tc.ok)
		}
	}
}

func TestCheckClient(t *testing.T) {
	good := func() ClientInput {
		return ClientInput{Name: " Billing ", Type: db.ClientWeb, RedirectURIs: []string{"https://billing.example.com/cb", "", " https://billing.example.com/cb "}}
	}
	t.Run("OK", func(t *testing.T) {
		c, err := checkClient(good())
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != "Billing" || !slices.Equal(c.RedirectURIs, []string{"https://billing.example.com/cb"}) ||
			!slices.Equal(c.Scopes, []string{"openid", "email", "profile"}) || c.PostLogoutRedirectURIs == nil {
			t.Errorf("checkClient = %+v", c)
		}
		in := good()
		in.Scopes = []string{"offline_access", "openid", "openid"}
		if c, err = checkClient(in); err != nil || !slices.Equal(c.Scopes, []string{"openid", "offline_access"}) {
			t.Errorf("scopes = %v, %v; want canonical order without duplicates", c.Scopes, err)
		}
	})
	for _, tc := range []struct {
		name  string
		edit  func(*ClientInput)
		field string
	}{
		{"ErrNameEmpty", func(in *ClientInput) { in.Name = "   " }, "name"},
		{"ErrNameLong", func(in *ClientInput) { in.Name = strings.Repeat("é", 101) }, "name"},
		{"ErrNameControl", func(in *ClientInput) { in.Name = "Bill\u202eing" }, "name"},
		{"ErrType", func(in *ClientInput) { in.Type = "service" }, "type"},
		{"ErrNoRedirect", func(in *ClientInput) { in.RedirectURIs = []string{" ", ""} }, "redirect_uris"},
		{"ErrTooManyRedirects", func(in *ClientInput) {
			in.RedirectURIs = nil
			for i := range 11 {
				in.RedirectURIs = append(in.RedirectURIs, "https://app.example.com/cb"+strings.Repeat("x", i))
			}
		}, "redirect_uris"},
		{"ErrRedirectFragment", func(in *ClientInput) { in.RedirectURIs = append(in.RedirectURIs, "https://a.example.com/#x") }, "redirect_uris"},
		{"ErrLogoutHTTP", func(in *ClientInput) { in.PostLogoutRedirectURIs = []string{"http://a.example.com/"} }, "post_logout_redirect_uris"},
		{"ErrScopeUnknown", func(in *ClientInput) { in.Scopes = []string{"openid", "admin"} }, "scopes"},
		{"ErrScopeNoOpenID", func(in *ClientInput) { in.Scopes = []string{"email"} }, "scopes"},
		{"ErrScopeEmpty", func(in *ClientInput) { in.Scopes = []string{} }, "scopes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := good()
			tc.edit(&in)
			_, err := checkClient(in)
			var ce *ClientError
			if !errors.As(err, &ce) || ce.Message(tc.field) == "" {
				t.Fatalf("checkClient = %v, want an error on %s", err, tc.field)
			}
			if len(ce.Fields) != 1 {
				t.Errorf("errors on %v, want only %s", ce.Fields, tc.field)
			}
		})
	}
}
