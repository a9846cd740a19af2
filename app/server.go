package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/a-h/templ"
	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// Server is the Gatehouse web application.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *db.Store
	keys     *keys.Keyring
	hasher   *auth.Hasher
	sessions *scs.SessionManager
	echo     *echo.Echo
	rps      relyingParties
	// routeTable holds every route's facts by "METHOD /pattern" (routes.go).
	routeTable map[string]*route
	// oidc is the OpenID provider every workspace is (oidc.go).
	oidc     *op.Provider
	keyCache keyCache
	// metrics are this server's Prometheus metrics (metrics.go).
	metrics *Metrics
	// breaker is the SMS circuit breaker's last reading (sms_breaker.go).
	breaker smsBreaker
}

// NewServer wires the application. The store's clock is the server's clock.
func NewServer(cfg Config, log *slog.Logger, store *db.Store, kr *keys.Keyring) *Server {
	s := &Server{cfg: cfg, log: log, store: store, keys: kr, hasher: auth.NewHasher(cfg.PasswordHash)}
	s.metrics = newMetrics(store, s.hasher, log)
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_sms_breaker_open",
		Help: "1 while the SMS circuit breaker stops texts to new numbers (a spike of texts to unverified numbers or of failures), else 0.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if open, err := s.smsBreakerOpen(ctx); err == nil && open {
			return 1
		}
		return 0
	}))
	s.keyCache.sets = map[int64]*keySet{}
	provider, err := s.newProvider()
	if err != nil {
		panic(fmt.Sprintf("openid provider: %v", err)) // a configuration the code itself sets
	}
	s.oidc = provider

	sm := scs.New()
	sm.Store = sessionStore(store)
	sm.HashTokenInStore = true
	// The outer bounds; each workspace's stricter absolute and idle limits
	// are enforced in authenticate from the session register.
	sm.Lifetime = MaxSessionAbsolute
	sm.Cookie.Persist = false
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = cfg.SecureCookies()
	sm.Cookie.Path = "/"
	s.sessions = sm

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	s.echo = e
	s.routes()
	return s
}

// ServeHTTP makes the server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Echo exposes the router, for tests that walk the routes.
func (s *Server) Echo() *echo.Echo { return s.echo }

// Metrics returns the server's metrics, for the jobs to record their
// progress in and for tests.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Hasher exposes the password hasher to the CLI, which creates users.
func (s *Server) Hasher() *auth.Hasher { return s.hasher }

func (s *Server) now() time.Time { return s.store.Now() }

// Serve serves the application on l until ctx ends, then shuts down
// gracefully: in-flight requests get up to 20 seconds to finish.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return s.serve(ctx, l, s, "app")
}

// ServeMetrics serves GET /metrics, and nothing else, on l until ctx ends
// (the metrics listener, GATEHOUSE_METRICS_ADDR). It asks for no token:
// the listener is for a private address only Prometheus reaches.
func (s *Server) ServeMetrics(ctx context.Context, l net.Listener) error {
	return s.serve(ctx, l, s.metricsMux(), "metrics")
}

func (s *Server) serve(ctx context.Context, l net.Listener, h http.Handler, name string) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", slog.String("listener", name))
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// render writes a templ component with status.
func (s *Server) render(c echo.Context, status int, comp templ.Component) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	s.flowFormAction(c)
	c.Response().WriteHeader(status)
	return comp.Render(c.Request().Context(), c.Response())
}

// page builds the layout's view model for the current request.
func (s *Server) page(c echo.Context, title string) views.Page {
	p := views.Page{Title: title, Dev: s.cfg.Dev}
	if tok, ok := c.Get("csrf").(string); ok {
		p.CSRF = tok
	}
	if t := tenants.FromContext(c.Request().Context()); t != nil {
		p.Base, p.WorkspaceName, p.Support = t.Base, t.Name, t.Support
	}
	if a := authFrom(c); a != nil {
		p.User = &views.PageUser{Email: a.User.Email, IsAdmin: a.User.IsAdmin()}
		p.Enroll = s.pageEnroll(c, a)
	}
	return p
}

// logger returns the request's logger.
func (s *Server) logger(c echo.Context) *slog.Logger {
	if l, ok := c.Get("logger").(*slog.Logger); ok {
		return l
	}
	return s.log
}

// meta is the request's origin for the audit trail.
func meta(c echo.Context) db.Meta {
	return db.Meta{IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
}

// IsPublic reports whether a route (method and pattern) needs no session.
func (s *Server) IsPublic(method, path string) bool {
	rt := s.routeTable[method+" "+path]
	return rt != nil && rt.access == accessPublic
}

// sessionStore is scs's store for the engine: session data lives in the
// sessions table of the same database, so every node sees every session.
func sessionStore(store *db.Store) scs.Store {
	if store.Engine() == "postgres" {
		return postgresstore.NewWithCleanupInterval(store.DB(), 10*time.Minute)
	}
	return store.SessionStore(10 * time.Minute)
}
