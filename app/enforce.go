package app

import "github.com/labstack/echo/v4"

// Placeholders: replaced by the real handlers.
func (s *Server) handleEnrollShow(c echo.Context) error        { return echo.ErrNotImplemented }
func (s *Server) handleEnrollLinkSend(c echo.Context) error    { return echo.ErrNotImplemented }
func (s *Server) handleEnrollLinkShow(c echo.Context) error    { return echo.ErrNotImplemented }
func (s *Server) handleEnrollLinkConfirm(c echo.Context) error { return echo.ErrNotImplemented }
