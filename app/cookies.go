package app

import "fmt"

// Cookie names (SECURITY rule 14: name spaces that input cannot reach).
// Every cookie Gatehouse sets is named by cookieName, in one of two name
// spaces:
//
//	fixed:          gh_{kind}          the same in every workspace (csrf)
//	per workspace:  gh_{kind}_{slug}   session, trusted device
//
// A kind is lower-case letters only and a slug is [a-z0-9-]{3,32}: neither
// holds "_". So in a per-workspace name the kind is everything between
// "gh_" and the next "_", and a fixed name (no second "_") can never be
// one: no slug reaches the CSRF cookie or another kind's cookie. The
// platform workspace's slug ("_support") is not a valid slug either, so
// its names are out of every customer's reach. Outside dev mode every name
// takes the __Host- prefix (Secure, no Domain, Path=/). cookies_test.go
// checks all of it by enumeration.
//
// Changing a name logs everyone out once (see docs/OPERATIONS.md).

// cookieKind is one kind of cookie Gatehouse sets.
type cookieKind string

const (
	// cookieCSRF is Echo's CSRF token (fixed name).
	cookieCSRF cookieKind = "csrf"
	// cookieSession is the workspace's session token.
	cookieSession cookieKind = "s"
	// cookieTrusted is the workspace's trusted-device token.
	cookieTrusted cookieKind = "td"
	// cookieOAuth binds the browser's pending authorizations (OpenID
	// Connect) to it.
	cookieOAuth cookieKind = "oa"
)

// cookieKinds lists every kind and whether its name is per workspace.
var cookieKinds = map[cookieKind]bool{
	cookieCSRF:    false,
	cookieSession: true,
	cookieTrusted: true,
	cookieOAuth:   true,
}

// cookieName returns the name of the cookie of kind for the workspace
// slug (ignored, and to be "", for a fixed kind); secure adds the __Host-
// prefix. It panics on a kind not in cookieKinds: a programming error.
func cookieName(kind cookieKind, slug string, secure bool) string {
	perWorkspace, ok := cookieKinds[kind]
	if !ok {
		panic(fmt.Sprintf("cookie name: unknown kind %q", kind))
	}
	name := "gh_" + string(kind)
	if perWorkspace {
		name += "_" + slug
	}
	if secure {
		name = "__Host-" + name
	}
	return name
}

// cookieName is the name of the cookie of kind in the workspace slug, as
// this server sets it.
func (s *Server) cookieName(kind cookieKind, slug string) string {
	return cookieName(kind, slug, s.cfg.SecureCookies())
}
