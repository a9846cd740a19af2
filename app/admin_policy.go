package app

import "github.com/labstack/echo/v4"

// Placeholders: replaced by the real handlers.
func (s *Server) handleAdminSecurity(c echo.Context) error     { return echo.ErrNotImplemented }
func (s *Server) handleAdminSecuritySave(c echo.Context) error { return echo.ErrNotImplemented }
func (s *Server) handleAPIAdminPolicy(c echo.Context) error    { return echo.ErrNotImplemented }
func (s *Server) handleAPIAdminPolicyPut(c echo.Context) error { return echo.ErrNotImplemented }
