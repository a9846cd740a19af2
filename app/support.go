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
// its lockouts, replay protection and audit. Only the routes listed in
// supportRoutes exist there; everything else (the admin console,
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

// supportRoutes are the routes that exist in the support console.
var supportRoutes = map[string]bool{}

// supportOnly are the routes that exist only in the support console.
var supportOnly = map[string]bool{}

func init() {
	for _, r := range []string{
		"GET /t/:slug", "GET /t/:slug/",
		"GET /t/:slug/login", "POST /t/:slug/login",
		"GET /t/:slug/login/mfa", "POST /t/:slug/login/mfa", "POST /t/:slug/login/mfa/cancel",
		"POST /t/:slug/login/mfa/webauthn/begin", "POST /t/:slug/login/mfa/webauthn/finish",
		"POST /t/:slug/login/passkey/begin", "POST /t/:slug/login/passkey/finish",
		"POST /t/:slug/logout",
		"GET /t/:slug/account", "POST /t/:slug/account/password",
		"POST /t/:slug/account/sessions/:id/end", "POST /t/:slug/account/sessions/end-others",
		"GET /t/:slug/account/verify", "POST /t/:slug/account/verify",
		"POST /t/:slug/account/verify/webauthn/begin", "POST /t/:slug/account/verify/webauthn/finish",
		"GET /t/:slug/account/mfa",
		"POST /t/:slug/account/mfa/totp/setup", "GET /t/:slug/account/mfa/totp", "POST /t/:slug/account/mfa/totp",
		"POST /t/:slug/account/mfa/totp/remove",
		"POST /t/:slug/account/mfa/webauthn/register/begin", "POST /t/:slug/account/mfa/webauthn/register/finish",
		"POST /t/:slug/account/mfa/webauthn/:id/remove", "POST /t/:slug/account/mfa/webauthn/:id/rename",
		"POST /t/:slug/account/mfa/recovery-codes",
		"POST /t/:slug/api/v1/login", "POST /t/:slug/api/v1/login/mfa",
		"POST /t/:slug/api/v1/login/webauthn/begin", "POST /t/:slug/api/v1/login/webauthn/finish",
		"GET /t/:slug/api/v1/session", "POST /t/:slug/api/v1/logout",
		"POST /t/:slug/api/v1/step-up", "POST /t/:slug/api/v1/step-up/webauthn/begin", "POST /t/:slug/api/v1/step-up/webauthn/finish",
	} {
		supportRoutes[r] = true
	}
	for _, r := range []string{
		"GET /t/:slug/enroll/:token", "POST /t/:slug/enroll/:token", "POST /t/:slug/enroll/:token/totp",
		"POST /t/:slug/enroll/:token/webauthn/begin", "POST /t/:slug/enroll/:token/webauthn/finish",
		"POST /t/:slug/api/v1/enroll/totp/setup", "POST /t/:slug/api/v1/enroll/totp/verify",
		"GET /t/:slug/members", "GET /t/:slug/api/v1/members",
		"GET /t/:slug/cases", "GET /t/:slug/cases/new", "POST /t/:slug/cases", "GET /t/:slug/cases/:id",
		"POST /t/:slug/cases/:id/approve", "POST /t/:slug/cases/:id/reject",
		"POST /t/:slug/api/v1/cases", "GET /t/:slug/api/v1/cases/:id",
		"POST /t/:slug/api/v1/cases/:id/approve", "POST /t/:slug/api/v1/cases/:id/reject",
	} {
		supportRoutes[r] = true
		supportOnly[r] = true
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

// routeAllowed reports whether the route exists for the tenant: the support
// console has its own short list; workspaces have everything but it.
func routeAllowed(t *tenants.Tenant, route string) bool {
	if t.Support {
		return supportRoutes[route]
	}
	return !supportOnly[route]
}

// SupportRoute reports whether the route (method and pattern) exists in
// the support console, and whether it exists only there.
func SupportRoute(method, path string) (exists, only bool) {
	r := method + " " + path
	return supportRoutes[r], supportOnly[r]
}
