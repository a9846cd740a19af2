package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/db"
)

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// clientCreate registers an application in a workspace as the system
// (actor 0, audited from "cli") through the same rules as the console and
// the API. It prints the client_id and, for a web application, the secret:
// the only time it is shown.
func (e *env) clientCreate(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("client create", &cfg)
	slug := fs.String("workspace", "", "workspace slug")
	name := fs.String("name", "", "the application's name, shown to members (at most 100 characters)")
	kind := fs.String("type", "", "web (confidential, gets a secret), spa or native (public, PKCE only)")
	firstParty := fs.Bool("first-party", false, "your own application: no consent screen; a native app may use the JSON sign-in flow")
	var redirects, logouts, scopes repeated
	fs.Var(&redirects, "redirect-uri", "a redirect URI, matched exactly (repeat for more, at most 10)")
	fs.Var(&logouts, "post-logout-redirect-uri", "a URI to return to after signing out (repeat for more)")
	fs.Var(&scopes, "scope", "a scope the application may ask for: openid, email, profile, offline_access (repeat; default openid email profile)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	in := app.ClientInput{Name: *name, Type: *kind, RedirectURIs: redirects, PostLogoutRedirectURIs: logouts, FirstParty: *firstParty}
	if len(scopes) > 0 {
		in.Scopes = scopes
	}
	store, kr, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	ws, err := store.WorkspaceBySlug(e.ctx, *slug)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("client create: no workspace %q", *slug)
	} else if err != nil {
		return err
	}
	srv := app.NewServer(cfg, quiet(), store, kr)
	c, secret, err := srv.CreateClient(e.ctx, ws.ID, 0, in, db.Meta{IP: "cli"})
	var ce *app.ClientError
	if errors.As(err, &ce) {
		parts := make([]string, len(ce.Fields))
		for i, f := range ce.Fields {
			parts[i] = "--" + cliFlag[f.Field] + " " + f.Message
		}
		return fmt.Errorf("client create: %s", strings.Join(parts, "; "))
	} else if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "client_id: %s\n", c.ClientID)
	if secret != "" {
		fmt.Fprintf(e.stdout, "client_secret: %s\n", secret)
		fmt.Fprintln(e.stderr, "Copy the client secret now: it is not shown again (only its hash is kept).")
	}
	return nil
}

// cliFlag names the flag of each field a registration may refuse.
var cliFlag = map[string]string{
	"name": "name", "type": "type", "redirect_uris": "redirect-uri",
	"post_logout_redirect_uris": "post-logout-redirect-uri", "scopes": "scope",
}

// keysRotateSigning gives one workspace, or every workspace, a new token
// signing key; the old keys stop signing now and stay published until the
// tokens they signed have expired.
func (e *env) keysRotateSigning(cfg app.Config, slug, alg string) error {
	if alg != "" && alg != "RS256" && alg != "ES256" {
		return fmt.Errorf("keys rotate: --alg %q must be RS256 or ES256", alg)
	}
	store, kr, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	var wss []db.Workspace
	if slug != "" {
		ws, err := store.WorkspaceBySlug(e.ctx, slug)
		if errors.Is(err, db.ErrNotFound) {
			return fmt.Errorf("keys rotate: no workspace %q", slug)
		} else if err != nil {
			return err
		}
		wss = []db.Workspace{ws}
	} else if wss, err = store.Workspaces(e.ctx); err != nil {
		return err
	}
	srv := app.NewServer(cfg, quiet(), store, kr)
	for _, ws := range wss {
		kid, err := srv.RotateSigningKey(e.ctx, ws.ID, alg)
		if err != nil {
			return fmt.Errorf("keys rotate: workspace %s: %w", ws.Slug, err)
		}
		fmt.Fprintf(e.stdout, "%s: new signing key %s\n", ws.Slug, kid)
	}
	fmt.Fprintf(e.stdout, "rotated the signing keys of %d workspaces\n", len(wss))
	return nil
}
