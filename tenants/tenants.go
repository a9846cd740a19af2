// Package tenants resolves the workspace a request is for: from the
// /t/{slug}/ path on any host, or from the {slug}.{base domain} host.
package tenants

import (
	"context"
	"net"
	"regexp"
	"strings"

	"github.com/gatehouse/gatehouse/db"
)

var slugRE = regexp.MustCompile(`^[a-z0-9-]{3,32}$`)

// ValidSlug reports whether s is a well-formed workspace slug.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// Tenant is the workspace of the current request and how it was reached.
type Tenant struct {
	db.Workspace
	// Base is the path prefix of the workspace's pages: "/t/{slug}", or ""
	// when the request came to the workspace's own host.
	Base string
	// OnHost is true when the workspace was resolved from the host name.
	OnHost bool
	// Support is true for the platform workspace of the support console,
	// reached at /support (Base "/support").
	Support bool
}

type ctxKey struct{}

// NewContext returns ctx carrying t.
func NewContext(ctx context.Context, t *Tenant) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the request's tenant, or nil outside a workspace.
func FromContext(ctx context.Context) *Tenant {
	t, _ := ctx.Value(ctxKey{}).(*Tenant)
	return t
}

// HostSlug returns the workspace slug named by host under baseDomain
// ("acme.example.com" under "example.com" is "acme"), or "" if host is not
// a workspace host. The port is ignored.
func HostSlug(host, baseDomain string) string {
	if baseDomain == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	sub, ok := strings.CutSuffix(host, "."+baseDomain)
	if !ok || !ValidSlug(sub) {
		return ""
	}
	return sub
}
