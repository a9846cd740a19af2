package app

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/views"
)

// handleHealthz answers 200 while the process is up.
func (s *Server) handleHealthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok\n")
}

// handleReadyz answers 200 when the database answers.
func (s *Server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger(c).Warn("readiness check failed", "err", err)
		return c.String(http.StatusServiceUnavailable, "database unavailable\n")
	}
	return c.String(http.StatusOK, "ready\n")
}

// handleHome is the service's start page. In dev mode with the demo
// workspace (make run) it leads to that workspace's sign-in; otherwise it
// names no workspace, so that a production start page tells a visitor
// nothing about who signs in here.
func (s *Server) handleHome(c echo.Context) error {
	var vm views.Home
	if d := s.cfg.Demo; s.cfg.Dev && d != nil {
		vm.Demo = &views.HomeDemo{LoginURL: s.cfg.BaseURL.JoinPath("t", d.Slug, "login").String()}
		for _, a := range d.Accounts {
			vm.Demo.Accounts = append(vm.Demo.Accounts, views.HomeDemoAccount{Role: a.Role, Email: a.Email, Password: a.Password})
		}
	}
	return s.render(c, http.StatusOK, views.HomePage(s.page(c, ""), vm))
}
