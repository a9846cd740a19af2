package app

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// The support console (DESIGN "Support console") is the platform
// workspace served at /support: supportRewrite maps /support/... onto the
// workspace routes (/t/_support/...), so staff sign in, pass their second
// factor, step up and manage their factors through the members' code, with
// its lockouts, replay protection and audit. Only the routes declared
// alsoSupport, supportOnly or staff (routes.go) exist there; everything else (the admin console,
// invitations, enrollment interstitials) is a 404. The platform's slug is
// not a valid workspace slug, so /t/_support/... is a 404 too, and its
// session cookie and tokens are its own: a member's session is worthless
// here and a staff session worthless in a workspace.

const supportBase = "/support"

var errStaffEnrollFirst = errorf(http.StatusForbidden, "mfa_enrollment_required",
	"Set up your second factor with the enrollment link you were given before signing in.")

// supportRewrite serves /support and /support/... as the platform
// workspace. On a workspace's own host the path was already rewritten to
// that workspace (hostRewrite runs first), so the console is only on the
// main host.
func (s *Server) supportRewrite(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		p := r.URL.Path
		if p != supportBase && !strings.HasPrefix(p, supportBase+"/") {
			return next(c)
		}
		r.URL.Path = "/t/" + db.PlatformSlug + strings.TrimPrefix(p, supportBase)
		r.URL.RawPath = ""
		c.Set("support", true)
		return next(c)
	}
}

// supportTenant resolves the platform workspace for a /support request.
func (s *Server) supportTenant(c echo.Context) (*tenants.Tenant, error) {
	ws, err := s.store.PlatformWorkspace(c.Request().Context())
	if err != nil {
		return nil, err
	}
	return &tenants.Tenant{Workspace: ws, Base: supportBase, Support: true}, nil
}
