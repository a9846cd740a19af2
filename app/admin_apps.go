package app

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// The admin console's applications (OAuth clients): list, register, show
// and change one, make a new secret, delete. The rules are CreateClient's
// and its siblings' (oidc_clients.go), shared with the API and the command
// line. A secret is shown on the answer that made it and nowhere else:
// that page is rendered, never redirected to, so the secret never sits in
// a session or a URL.

var appNotices = map[string]string{
	"app_updated": "The application's settings were saved.",
	"app_deleted": "The application was deleted. Its tokens no longer work.",
}

const (
	appSignInsShown = 20
	// appEventsScanned bounds how far back the console looks for an
	// application's sign-ins in the audit log.
	appEventsScanned = 5000
)

// handleAdminApps lists the workspace's applications with their last
// sign-in.
func (s *Server) handleAdminApps(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cs, err := s.store.OAuthClients(ctx, t.ID)
	if err != nil {
		return err
	}
	ids := make([]string, len(cs))
	for i, cl := range cs {
		ids[i] = cl.ClientID
	}
	last, err := s.clientSignIns(ctx, t.ID, ids, 1)
	if err != nil {
		return err
	}
	var v views.AppsView
	for _, cl := range cs {
		row := views.AppRow{ID: cl.ID, Name: cl.Name, Type: cl.Kind, ClientID: cl.ClientID, FirstParty: cl.FirstParty, Created: cl.CreatedAt}
		if evs := last[cl.ClientID]; len(evs) > 0 {
			row.LastSignIn = evs[0].CreatedAt
		}
		v.Apps = append(v.Apps, row)
	}
	p := s.page(c, "Applications")
	p.Notice = appNotices[c.QueryParam("notice")]
	p.Wide = true
	return s.render(c, http.StatusOK, views.AdminAppsPage(p, v))
}

// handleAdminAppNew shows the registration form.
func (s *Server) handleAdminAppNew(c echo.Context) error {
	f := views.AppForm{Type: db.ClientWeb, Scopes: defaultClientScopes}
	return s.render(c, http.StatusOK, views.AdminAppNewPage(s.page(c, "Register an application"), f))
}

// appForm reads the registration or edit form as posted.
func appForm(c echo.Context) views.AppForm {
	form, _ := c.FormParams()
	return views.AppForm{
		Name:                   c.FormValue("name"),
		Type:                   c.FormValue("type"),
		RedirectURIs:           c.FormValue("redirect_uris"),
		PostLogoutRedirectURIs: c.FormValue("post_logout_redirect_uris"),
		Scopes:                 nonNil(form["scopes"]),
		FirstParty:             c.FormValue("first_party") != "",
		Errors:                 views.FieldErrors{},
	}
}

// lines splits a text area into its lines (checkClient drops the blank
// ones and trims the rest).
func lines(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
}

// fieldErrors puts a refused registration's messages beside its fields.
func fieldErrors(err error, f *views.AppForm) bool {
	var ce *ClientError
	if !errors.As(err, &ce) {
		return false
	}
	for _, fe := range ce.Fields {
		f.Errors[fe.Field] = appFieldLabels[fe.Field] + " " + fe.Message + "."
	}
	return true
}

var appFieldLabels = map[string]string{
	"name": "The name", "type": "The type", "redirect_uris": "Redirect URIs:",
	"post_logout_redirect_uris": "Sign-out redirect URIs:", "scopes": "Scopes:",
}

// handleAdminAppCreate registers an application and shows its client ID
// and, for a web application, its secret: once, on this answer.
func (s *Server) handleAdminAppCreate(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	f := appForm(c)
	in := ClientInput{Name: f.Name, Type: f.Type, RedirectURIs: lines(f.RedirectURIs), PostLogoutRedirectURIs: lines(f.PostLogoutRedirectURIs),
		Scopes: f.Scopes, FirstParty: f.FirstParty}
	cl, secret, err := s.CreateClient(ctx, t.ID, authFrom(c).User.ID, in, meta(c))
	if fieldErrors(err, &f) {
		f.Name = truncateRunes(f.Name, 200)
		return s.render(c, http.StatusUnprocessableEntity, views.AdminAppNewPage(s.page(c, "Register an application"), f))
	} else if err != nil {
		return err
	}
	return s.renderAdminApp(c, http.StatusCreated, cl, appView{secret: secret, created: true})
}

// loadApp returns the workspace's application named by :id: another
// workspace's is a 404 like an unknown one.
func (s *Server) loadApp(c echo.Context) (db.OAuthClient, error) {
	id, err := clientIDParam(c)
	if err != nil {
		return db.OAuthClient{}, err
	}
	ctx := c.Request().Context()
	return s.store.OAuthClient(ctx, tenants.FromContext(ctx).ID, id)
}

// handleAdminApp shows one application.
func (s *Server) handleAdminApp(c echo.Context) error {
	cl, err := s.loadApp(c)
	if err != nil {
		return err
	}
	return s.renderAdminApp(c, http.StatusOK, cl, appView{notice: appNotices[c.QueryParam("notice")]})
}

// appView is what one rendering of an application's page adds to the
// stored application.
type appView struct {
	secret  string
	created bool
	notice  string
	errMsg  string
	form    *views.AppForm // the posted edit form, when it was refused
}

func (s *Server) renderAdminApp(c echo.Context, status int, cl db.OAuthClient, av appView) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	v := views.AppView{ID: cl.ID, Name: cl.Name, Type: cl.Kind, ClientID: cl.ClientID, Confidential: cl.Confidential(),
		FirstParty: cl.FirstParty, Created: cl.CreatedAt, SecretRotatedAt: cl.SecretRotatedAt,
		NewSecret: av.secret, JustCreated: av.created, Error: av.errMsg}
	if av.form != nil {
		v.Form = *av.form
	} else {
		v.Form = views.AppForm{Name: cl.Name, Type: cl.Kind, RedirectURIs: strings.Join(cl.RedirectURIs, "\n"),
			PostLogoutRedirectURIs: strings.Join(cl.PostLogoutRedirectURIs, "\n"), Scopes: cl.Scopes, FirstParty: cl.FirstParty}
	}
	signIns, err := s.clientSignIns(ctx, t.ID, []string{cl.ClientID}, appSignInsShown)
	if err != nil {
		return err
	}
	for _, ev := range signIns[cl.ClientID] {
		v.SignIns = append(v.SignIns, views.AppSignInRow{At: ev.CreatedAt, What: describeSignIn(ev), Member: ev.SubjectEmail,
			IP: ev.IP, Device: describeUserAgent(ev.UserAgent)})
	}
	p := s.page(c, cl.Name)
	p.Notice = av.notice
	p.Wide = true
	return s.render(c, status, views.AdminAppPage(p, v))
}

// describeSignIn names an application's sign-in event for the console.
func describeSignIn(ev db.AuditEvent) string {
	if ev.Event == db.EventOAuthAuthorized {
		if flow, _ := ev.Details["flow"].(string); flow == "native" {
			return "Signed in (the app's own form)"
		}
		return "Signed in"
	}
	switch grant, _ := ev.Details["grant"].(string); grant {
	case "refresh_token":
		return "Tokens refreshed"
	case "authorization_code":
		return "Tokens issued"
	default:
		return "Tokens issued (" + grant + ")"
	}
}

// clientSignIns returns, for each of the client IDs, its latest sign-in
// events (authorizations and token issues), newest first, at most
// perClient each. It reads the workspace's audit log newest first, at
// most appEventsScanned OAuth events back.
func (s *Server) clientSignIns(ctx context.Context, workspaceID int64, clientIDs []string, perClient int) (map[string][]db.AuditEvent, error) {
	out := map[string][]db.AuditEvent{}
	if len(clientIDs) == 0 {
		return out, nil
	}
	full := 0
	f := db.AuditFilter{Event: "oauth.", Limit: 500}
	for scanned := 0; scanned < appEventsScanned; {
		evs, err := s.store.AuditEvents(ctx, workspaceID, f)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			if ev.Event != db.EventOAuthAuthorized && ev.Event != db.EventOAuthTokenIssued {
				continue
			}
			id, _ := ev.Details["client_id"].(string)
			if !slices.Contains(clientIDs, id) || len(out[id]) >= perClient {
				continue
			}
			if out[id] = append(out[id], ev); len(out[id]) == perClient {
				if full++; full == len(clientIDs) {
					return out, nil
				}
			}
		}
		if len(evs) < f.Limit {
			break
		}
		scanned += len(evs)
		f.Before = evs[len(evs)-1].ID
	}
	return out, nil
}

// handleAdminAppUpdate saves an application's settings (its type never
// changes).
func (s *Server) handleAdminAppUpdate(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cl, err := s.loadApp(c)
	if err != nil {
		return err
	}
	f := appForm(c)
	f.Type = cl.Kind
	redirects, logouts := lines(f.RedirectURIs), lines(f.PostLogoutRedirectURIs)
	_, err = s.UpdateClient(ctx, t.ID, authFrom(c).User.ID, cl.ID, ClientPatch{Name: &f.Name, RedirectURIs: &redirects,
		PostLogoutRedirectURIs: &logouts, Scopes: &f.Scopes, FirstParty: &f.FirstParty}, meta(c))
	if fieldErrors(err, &f) {
		f.Name = truncateRunes(f.Name, 200)
		return s.renderAdminApp(c, http.StatusUnprocessableEntity, cl, appView{form: &f, errMsg: "Nothing was saved: check the fields marked below."})
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/apps/"+strconv.FormatInt(cl.ID, 10)+"?notice=app_updated")
}

// handleAdminAppSecret makes a web application's new secret and shows it,
// once, on this answer; the old one stops working.
func (s *Server) handleAdminAppSecret(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cl, err := s.loadApp(c)
	if err != nil {
		return err
	}
	rotated, secret, err := s.RotateClientSecret(ctx, t.ID, authFrom(c).User.ID, cl.ID, meta(c))
	if errors.Is(err, ErrPublicClient) {
		return s.renderAdminApp(c, http.StatusConflict, cl, appView{errMsg: "This application has no secret: it is public and uses PKCE."})
	} else if err != nil {
		return err
	}
	return s.renderAdminApp(c, http.StatusOK, rotated, appView{secret: secret, notice: "A new client secret was made. The old one no longer works."})
}

// handleAdminAppDelete deletes an application once the box is ticked: its
// tokens stop working at once.
func (s *Server) handleAdminAppDelete(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cl, err := s.loadApp(c)
	if err != nil {
		return err
	}
	if c.FormValue("confirm") != "yes" {
		return s.renderAdminApp(c, http.StatusUnprocessableEntity, cl, appView{errMsg: "Tick the confirmation box to delete the application."})
	}
	if err := s.DeleteClient(ctx, t.ID, authFrom(c).User.ID, cl.ID, meta(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/apps?notice=app_deleted")
}
