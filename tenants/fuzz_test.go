package tenants_test

import (
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/tenants"
)

var slugForm = regexp.MustCompile(`^[a-z0-9-]{3,32}$`)

// FuzzHostSlug feeds Host headers and base domains to HostSlug, the
// mapping from {slug}.{base domain} to a workspace. Properties: the answer
// is "" or a valid slug; a slug is only found in a host that is, up to case,
// a trailing dot and the port, exactly slug + "." + base domain (never a
// deeper subdomain, another domain that merely ends the same way, or the
// base domain itself); with no base domain nothing maps; and every valid
// slug comes back from its own host, whatever case, port or trailing dot
// the client sends.
func FuzzHostSlug(f *testing.F) {
	for _, s := range [][2]string{
		{"acme.gatehouse.example", "gatehouse.example"},
		{"ACME.Gatehouse.Example.:8443", "gatehouse.example"},
		{"acme.gatehouse.example:443", "gatehouse.example"},
		{"gatehouse.example", "gatehouse.example"},
		{"evil.acme.gatehouse.example", "gatehouse.example"},
		{"acme.evilgatehouse.example", "gatehouse.example"},
		{"acme-gatehouse.example", "gatehouse.example"},
		{"ab.gatehouse.example", "gatehouse.example"},
		{strings.Repeat("a", 33) + ".gatehouse.example", "gatehouse.example"},
		{"a_b.gatehouse.example", "gatehouse.example"},
		{"xn--80ak6aa92e.gatehouse.example", "gatehouse.example"},
		{"ａｃｍｅ.gatehouse.example", "gatehouse.example"},
		{"acme.gatehouse.example", ""},
		{"acme.localhost:8080", "localhost"},
		{"[::1]:8080", "gatehouse.example"},
		{"acme.gatehouse.example\r\n", "gatehouse.example"},
		{"acme.gatehouse.example..", "gatehouse.example"},
		{"acme.gatehouse.example:", "gatehouse.example"},
		{"acme.gatehouse.example:8080:9090", "gatehouse.example"},
		{"csrf.gatehouse.example", "gatehouse.example"},
		{"acme.GATEHOUSE.example", "GATEHOUSE.example"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, baseDomain string) {
		got := tenants.HostSlug(host, baseDomain)
		if got != "" {
			if !tenants.ValidSlug(got) || !slugForm.MatchString(got) {
				t.Fatalf("HostSlug(%q, %q) = %q: not a valid slug", host, baseDomain, got)
			}
			if baseDomain == "" {
				t.Fatalf("HostSlug(%q, \"\") = %q", host, got)
			}
			h := host
			if hh, _, err := net.SplitHostPort(host); err == nil {
				h = hh
			}
			h = strings.TrimSuffix(strings.ToLower(h), ".")
			if h != got+"."+baseDomain {
				t.Fatalf("HostSlug(%q, %q) = %q, but the host is %q", host, baseDomain, got, h)
			}
		}

		// Every valid slug maps back from its host, as clients send it.
		slug := strings.ToLower(host)
		if !tenants.ValidSlug(slug) {
			return
		}
		domain := "gatehouse.example"
		for _, h := range []string{slug + "." + domain, strings.ToUpper(slug) + "." + domain + ".", slug + "." + domain + ":8443"} {
			if got := tenants.HostSlug(h, domain); got != slug {
				t.Fatalf("HostSlug(%q, %q) = %q, want %q", h, domain, got, slug)
			}
		}
		if got := tenants.HostSlug("x."+slug+"."+domain, domain); got != "" {
			t.Fatalf("HostSlug(x.%s.%s) = %q: a deeper subdomain maps", slug, domain, got)
		}
	})
}
