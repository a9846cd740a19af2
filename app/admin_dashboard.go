package app

import (
	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
)

// Placeholders: replaced by the real handlers.
func (s *Server) handleAdminDashboard(c echo.Context) error { return echo.ErrNotImplemented }
func (s *Server) handleAdminMemberExtend(c echo.Context, m db.User) error {
	return echo.ErrNotImplemented
}
func (s *Server) handleAPIAdminExtendDeadline(c echo.Context) error { return echo.ErrNotImplemented }
