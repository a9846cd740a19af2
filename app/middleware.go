package app

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/tenants"
)

// contentSecurityPolicy allows nothing inline and nothing from elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders runs before routing, so every response, 404s included,
// carries them.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	hsts := s.cfg.BaseURL != nil && s.cfg.BaseURL.Scheme == "https"
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.Set("Cache-Control", "no-store")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		return next(c)
	}
}

// hostRewrite maps {slug}.{base domain}/path to /t/{slug}/path, so that one
// set of routes serves both ways of reaching a workspace.
func (s *Server) hostRewrite(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		slug := tenants.HostSlug(c.Request().Host, s.cfg.BaseDomain)
		if slug == "" {
			return next(c)
		}
		c.Set("host_slug", slug)
		r := c.Request()
		p := r.URL.Path
		for _, prefix := range []string{"/t/", "/assets/", "/healthz", "/readyz", "/dev/"} {
			if strings.HasPrefix(p, prefix) {
				return next(c)
			}
		}
		r.URL.Path = "/t/" + slug + p
		r.URL.RawPath = ""
		c.Set("on_host", true)
		return next(c)
	}
}

// requestLog adds a request id and logs every request once. It logs the
// route pattern, never the raw path: paths can hold invitation tokens.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		b := make([]byte, 8)
		rand.Read(b)
		id := hex.EncodeToString(b)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		l := s.log.With(slog.String("request_id", id))
		c.Set("logger", l)
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request().Method),
			slog.String("route", c.Path()),
			slog.Int("status", c.Response().Status),
			slog.Duration("duration", time.Since(start)),
			slog.String("ip", c.RealIP()),
		}
		if t := tenants.FromContext(c.Request().Context()); t != nil {
			attrs = append(attrs, slog.Int64("workspace_id", t.ID))
		}
		if a := authFrom(c); a != nil {
			attrs = append(attrs, slog.Int64("user_id", a.User.ID))
		}
		l.LogAttrs(c.Request().Context(), slog.LevelInfo, "request", attrs...)
		return nil
	}
}

// csrf protects every form: Echo's middleware, reading the token from the
// _csrf field the templates render (and trusting Sec-Fetch-Site from
// browsers that send it). The JSON API is exempt: it authenticates with a
// bearer header only, never with cookies, and accepts only JSON bodies.
func (s *Server) csrf() echo.MiddlewareFunc {
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		// The API has no forms (bearer tokens, JSON bodies); health
		// checks and static files set no cookie.
		Skipper: func(c echo.Context) bool {
			rt := routeOf(c)
			return isAPI(c) || rt != nil && (rt.noCookies || rt.protocol)
		},
		TokenLookup:    "form:_csrf,header:X-CSRF-Token",
		CookieName:     s.cookieName(cookieCSRF, ""),
		CookiePath:     "/",
		CookieSecure:   s.cfg.SecureCookies(),
		CookieHTTPOnly: true,
		CookieSameSite: http.SameSiteLaxMode,
		ErrorHandler: func(err error, c echo.Context) error {
			s.logger(c).Warn("csrf check failed", slog.String("route", c.Path()), slog.Bool("csrf_failed", true))
			return errorf(http.StatusForbidden, "csrf_failed", "This form has expired or was sent from another site. Go back, reload the page and try again.")
		},
	})
}

// tenant resolves the workspace of routes under /t/:slug (and /support,
// the platform workspace). An unknown workspace is a 404 page, and so is a
// route that does not exist where it was asked for (the route's where). On
// a workspace's own host, other workspaces' paths are 404 too.
func (s *Server) tenant(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rt := routeOf(c)
		if rt == nil || rt.where == inGlobal {
			if hs, _ := c.Get("host_slug").(string); hs != "" && strings.HasPrefix(c.Request().URL.Path, "/t/") {
				return errNotFound
			}
			return next(c) // outside workspaces, or Echo's 404 or 405
		}
		if support, _ := c.Get("support").(bool); support {
			if rt.where != inSupport && rt.where != inBoth {
				return errNotFound
			}
			t, err := s.supportTenant(c)
			if err != nil {
				return err
			}
			c.SetRequest(c.Request().WithContext(tenants.NewContext(c.Request().Context(), t)))
			return next(c)
		}
		slug := c.Param("slug")
		if !tenants.ValidSlug(slug) {
			return errNotFound
		}
		if hs, _ := c.Get("host_slug").(string); hs != "" && hs != slug {
			return errNotFound
		}
		ws, err := s.store.WorkspaceBySlug(c.Request().Context(), slug)
		if err != nil {
			return err // ErrNotFound is a 404
		}
		if rt.where != inWorkspaces && rt.where != inBoth {
			return errNotFound
		}
		t := &tenants.Tenant{Workspace: ws, Base: "/t/" + slug}
		if onHost, _ := c.Get("on_host").(bool); onHost {
			t.Base, t.OnHost = "", true
		}
		c.SetRequest(c.Request().WithContext(tenants.NewContext(c.Request().Context(), t)))
		return next(c)
	}
}

// redirectToLogin sends an anonymous visitor to the sign-in page, to come
// back afterwards (GET only: a form post is not replayed).
func (s *Server) redirectToLogin(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	target := t.Base + "/login"
	if c.Request().Method == http.MethodGet {
		target += "?next=" + urlQueryEscape(c.Request().URL.RequestURI())
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// ipExtractor believes X-Forwarded-For only from the configured proxies;
// otherwise the client is the socket's peer.
func ipExtractor(proxies []*net.IPNet) echo.IPExtractor {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range proxies {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
