package app

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// slugChars are the characters a valid slug is made of.
const slugChars = "abcdefghijklmnopqrstuvwxyz0123456789-"

// TestCookieNameSpaces proves SECURITY rule 14 for cookies by enumeration:
// no fixed cookie name is a per-workspace name for any slug a workspace
// can have (valid slugs, and the platform's), and two per-workspace kinds
// never share a name, in dev and in production naming.
func TestCookieNameSpaces(t *testing.T) {
	t.Parallel()
	reachable := func(slug string) bool { return tenants.ValidSlug(slug) || slug == db.PlatformSlug }
	for _, secure := range []bool{false, true} {
		var fixed []string
		prefixes := map[cookieKind]string{} // a per-workspace name is prefix + slug
		for kind, perWorkspace := range cookieKinds {
			if !regexp.MustCompile(`^[a-z]+$`).MatchString(string(kind)) {
				t.Errorf("cookie kind %q: want lower-case letters only", kind)
			}
			if perWorkspace {
				prefixes[kind] = cookieName(kind, "", secure)
			} else {
				fixed = append(fixed, cookieName(kind, "", secure))
			}
		}
		for _, name := range fixed {
			for kind, prefix := range prefixes {
				if slug, ok := strings.CutPrefix(name, prefix); ok && reachable(slug) {
					t.Errorf("secure=%t: fixed cookie %q is the %s cookie of workspace %q", secure, name, kind, slug)
				}
			}
		}
		for k1, p1 := range prefixes {
			for k2, p2 := range prefixes {
				// p1+slug1 == p2+slug2 needs p2 = p1 + the start of a slug.
				if rest, ok := strings.CutPrefix(p2, p1); k1 != k2 && ok && strings.Trim(rest, slugChars) == "" {
					t.Errorf("secure=%t: the %s and %s cookies can share a name (%q, %q)", secure, k1, k2, p1, p2)
				}
			}
		}
		// The collision issue 12 found, and every reserved or tricky slug,
		// checked directly too.
		names := map[string]string{}
		for _, name := range fixed {
			names[name] = "fixed"
		}
		slugs := append(db.ReservedSlugs(), "s-csrf", "td-acme", "acme")
		slices.Sort(slugs)
		for _, slug := range slices.Compact(slugs) {
			for kind := range prefixes {
				name := cookieName(kind, slug, secure)
				if other, dup := names[name]; dup {
					t.Errorf("secure=%t: %s cookie of %q is %q, already the %s cookie", secure, kind, slug, name, other)
				}
				names[name] = string(kind) + " of " + slug
			}
		}
	}
}

// TestCookieNamesInOnePlace fails when code outside cookies.go spells a
// cookie name: every name comes from cookieName.
func TestCookieNamesInOnePlace(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f == "cookies.go" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); strings.Contains(s, `"gh_`) || strings.Contains(s, `"__Host-`) {
			t.Errorf("%s spells a cookie name: use cookieName", f)
		}
	}
}
