package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
)

// Applications (OAuth clients) of a workspace: one validation and one way
// to create, change, re-key and delete them, used by the admin console,
// the admin API and the command line alike.

// Limits of a client registration.
const (
	maxClientName     = 100
	maxRedirectURIs   = 10
	maxRedirectURILen = 2000
)

// ClientInput is what an admin gives to register an application.
type ClientInput struct {
	Name string
	// Type is web (confidential: gets a secret), spa or native (public).
	Type         string
	RedirectURIs []string
	// PostLogoutRedirectURIs are optional.
	PostLogoutRedirectURIs []string
	// Scopes the application may ask for; nil means openid, email and
	// profile. openid is required.
	Scopes     []string
	FirstParty bool
}

// ClientPatch changes some of an application's settings: nil fields keep
// their value. The type never changes (a public client would keep a
// secret, a confidential one would lose it): register a new one.
type ClientPatch struct {
	Name                   *string
	RedirectURIs           *[]string
	PostLogoutRedirectURIs *[]string
	Scopes                 *[]string
	FirstParty             *bool
}

// defaultClientScopes are an application's scopes when none are named.
var defaultClientScopes = []string{"openid", "email", "profile"}

// ClientFieldError is one refused field of a registration.
type ClientFieldError struct {
	// Field is the API's name of the field: name, type, redirect_uris,
	// post_logout_redirect_uris, scopes.
	Field   string
	Message string
}

// ClientError lists what is wrong with a registration, in the order of
// the fields. Nothing was stored.
type ClientError struct {
	Fields []ClientFieldError
}

func (e *ClientError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid application: " + strings.Join(parts, "; ")
}

// Message is the error for one field, or "".
func (e *ClientError) Message(field string) string {
	for _, f := range e.Fields {
		if f.Field == field {
			return f.Message
		}
	}
	return ""
}

// ErrPublicClient is returned when a secret is asked of an SPA or native
// application: they have none (PKCE only).
var ErrPublicClient = errors.New("a public application (spa or native) has no secret")

// CreateClient registers an application in the workspace, audited. A web
// application gets a secret: returned here once, stored only as a keyed
// hash. Invalid input is a *ClientError and stores nothing.
func (s *Server) CreateClient(ctx context.Context, workspaceID, actorID int64, in ClientInput, meta db.Meta) (db.OAuthClient, string, error) {
	c, err := checkClient(in)
	if err != nil {
		return db.OAuthClient{}, "", err
	}
	var secret string
	if c.Confidential() {
		secret = auth.NewToken()
		c.SecretHash = s.keys.HashToken(purposeClientSecret, secret)
	}
	for range 3 {
		c.ClientID = db.NewClientID()
		out, err := s.store.CreateOAuthClient(ctx, workspaceID, actorID, c, meta)
		if errors.Is(err, db.ErrConflict) {
			continue // a client_id drawn twice: 128 random bits, but cheap to retry
		}
		if err != nil {
			return db.OAuthClient{}, "", err
		}
		return out, secret, nil
	}
	return db.OAuthClient{}, "", errors.New("create client: no unique client_id")
}

// UpdateClient applies patch to the workspace's application id, audited.
// ErrNotFound: no such application in the workspace (another workspace's
// included); *ClientError: invalid input, nothing changed.
func (s *Server) UpdateClient(ctx context.Context, workspaceID, actorID, id int64, patch ClientPatch, meta db.Meta) (db.OAuthClient, error) {
	cur, err := s.store.OAuthClient(ctx, workspaceID, id)
	if err != nil {
		return db.OAuthClient{}, err
	}
	in := ClientInput{Name: cur.Name, Type: cur.Kind, RedirectURIs: cur.RedirectURIs,
		PostLogoutRedirectURIs: cur.PostLogoutRedirectURIs, Scopes: cur.Scopes, FirstParty: cur.FirstParty}
	if patch.Name != nil {
		in.Name = *patch.Name
	}
	if patch.RedirectURIs != nil {
		in.RedirectURIs = *patch.RedirectURIs
	}
	if patch.PostLogoutRedirectURIs != nil {
		in.PostLogoutRedirectURIs = *patch.PostLogoutRedirectURIs
	}
	if patch.Scopes != nil {
		in.Scopes = nonNil(*patch.Scopes) // an empty list is a choice, not "the default"
	}
	if patch.FirstParty != nil {
		in.FirstParty = *patch.FirstParty
	}
	c, err := checkClient(in)
	if err != nil {
		return db.OAuthClient{}, err
	}
	c.ID = cur.ID
	return s.store.UpdateOAuthClient(ctx, workspaceID, actorID, c, meta)
}

// RotateClientSecret gives the workspace's web application id a new
// secret, returned once; the old one stops working at once. ErrNotFound:
// no such application; ErrPublicClient: an SPA or native app.
func (s *Server) RotateClientSecret(ctx context.Context, workspaceID, actorID, id int64, meta db.Meta) (db.OAuthClient, string, error) {
	cur, err := s.store.OAuthClient(ctx, workspaceID, id)
	if err != nil {
		return db.OAuthClient{}, "", err
	}
	if !cur.Confidential() {
		return db.OAuthClient{}, "", ErrPublicClient
	}
	secret := auth.NewToken()
	c, err := s.store.SetOAuthClientSecret(ctx, workspaceID, actorID, id, s.keys.HashToken(purposeClientSecret, secret), meta)
	if err != nil {
		return db.OAuthClient{}, "", err
	}
	return c, secret, nil
}

// DeleteClient removes the workspace's application id: its tokens stop
// working at once. ErrNotFound: no such application.
func (s *Server) DeleteClient(ctx context.Context, workspaceID, actorID, id int64, meta db.Meta) error {
	return s.store.DeleteOAuthClient(ctx, workspaceID, actorID, id, meta)
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// checkClient validates a registration and returns it as the store keeps
// it: the name trimmed, blank URIs dropped, duplicates removed, scopes in
// their canonical order.
func checkClient(in ClientInput) (db.OAuthClient, error) {
	var e ClientError
	fail := func(field, format string, args ...any) {
		if e.Message(field) == "" { // the first problem of a field is enough
			e.Fields = append(e.Fields, ClientFieldError{Field: field, Message: fmt.Sprintf(format, args...)})
		}
	}
	c := db.OAuthClient{Name: strings.TrimSpace(in.Name), Kind: in.Type, FirstParty: in.FirstParty}

	switch n := utf8.RuneCountInString(c.Name); {
	case n == 0:
		fail("name", "is required")
	case n > maxClientName:
		fail("name", "is at most %d characters", maxClientName)
	case !utf8.ValidString(c.Name) || strings.ContainsFunc(c.Name, func(r rune) bool {
		// Control and format characters (line breaks, U+202E reversing
		// text) would disguise the name in the console and consent page.
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
	}):
		fail("name", "contains control or invisible characters")
	}
	switch in.Type {
	case db.ClientWeb, db.ClientSPA, db.ClientNative:
	default:
		fail("type", "is one of web, spa, native")
	}

	uris := func(field string, raw []string, min int) []string {
		var out []string
		for _, u := range raw {
			u = strings.TrimSpace(u)
			if u == "" || slices.Contains(out, u) {
				continue
			}
			if msg := checkRedirectURI(in.Type, u); msg != "" {
				fail(field, "%s", msg)
			}
			out = append(out, u)
		}
		switch {
		case len(out) < min:
			fail(field, "needs at least one URI")
		case len(out) > maxRedirectURIs:
			fail(field, "has at most %d URIs", maxRedirectURIs)
		}
		return out
	}
	c.RedirectURIs = uris("redirect_uris", in.RedirectURIs, 1)
	c.PostLogoutRedirectURIs = nonNil(uris("post_logout_redirect_uris", in.PostLogoutRedirectURIs, 0))

	scopes := in.Scopes
	if scopes == nil {
		scopes = defaultClientScopes
	}
	for _, sc := range scopes {
		if !slices.Contains(oidcScopes, strings.TrimSpace(sc)) {
			fail("scopes", "%q is not one of %s", truncateRunes(sc, 40), strings.Join(oidcScopes, ", "))
		}
	}
	for _, sc := range oidcScopes { // canonical order, no duplicates
		if slices.ContainsFunc(scopes, func(v string) bool { return strings.TrimSpace(v) == sc }) {
			c.Scopes = append(c.Scopes, sc)
		}
	}
	if !slices.Contains(c.Scopes, "openid") {
		fail("scopes", "must include openid")
	}
	if len(e.Fields) > 0 {
		return db.OAuthClient{}, &e
	}
	return c, nil
}

// checkRedirectURI says what is wrong with a redirect URI of an
// application of type kind, or "". Redirect URIs are later matched
// exactly, character for character (RFC 9700 §4.1.3), so what is stored
// must be a complete absolute URI: no fragment (RFC 6749 §3.1.2), no
// wildcard, no user info. https everywhere; http only to the loopback
// interface (a developer's machine, RFC 8252 §7.3); a native app may
// also use a private-use scheme named after a domain it owns, like
// com.example.app:/callback (RFC 8252 §7.1), which also keeps out
// javascript:, data: and the like.
func checkRedirectURI(kind, raw string) string {
	shown := truncateRunes(raw, 60)
	switch {
	case len(raw) > maxRedirectURILen:
		return fmt.Sprintf("%q… is longer than %d characters", truncateRunes(raw, 40), maxRedirectURILen)
	case !utf8.ValidString(raw) || strings.ContainsFunc(raw, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
	}):
		return fmt.Sprintf("%q contains spaces or control characters", shown)
	case strings.Contains(raw, "*"):
		return fmt.Sprintf("%q contains a wildcard (*): URIs are matched exactly", shown)
	case strings.Contains(raw, "#"):
		return fmt.Sprintf("%q has a fragment (#…), which a redirect URI may not have", shown)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Sprintf("%q is not an absolute URI (like https://app.example.com/callback)", shown)
	}
	if u.User != nil {
		return fmt.Sprintf("%q contains a user name or password (…@)", shown)
	}
	switch u.Scheme {
	case "https":
		if u.Opaque != "" || u.Hostname() == "" {
			return fmt.Sprintf("%q has no host", shown)
		}
		return ""
	case "http":
		if u.Opaque != "" || u.Hostname() == "" {
			return fmt.Sprintf("%q has no host", shown)
		}
		if !loopbackHost(u.Hostname()) {
			return fmt.Sprintf("%q must use https (http only on 127.0.0.1, [::1] or localhost)", shown)
		}
		return ""
	}
	if kind != db.ClientNative {
		return fmt.Sprintf("%q must use https (http only on 127.0.0.1, [::1] or localhost)", shown)
	}
	// A private-use scheme: reverse domain notation has a dot, which no
	// dangerous browser scheme (javascript, data, vbscript, file, blob)
	// has.
	if !strings.Contains(u.Scheme, ".") {
		return fmt.Sprintf("%q: a native app uses https, http on loopback, or a private-use scheme like com.example.app:/callback", shown)
	}
	if u.Opaque == "" && u.Path == "" && u.Host == "" {
		return fmt.Sprintf("%q has nothing after the scheme", shown)
	}
	return ""
}

// loopbackHost reports whether host (without brackets or port) is the
// loopback interface by name or address.
func loopbackHost(host string) bool {
	return host == "127.0.0.1" || host == "::1" || strings.EqualFold(host, "localhost")
}
