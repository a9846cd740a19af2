package app

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// dashboardDays is how far back the enrollment chart goes (or since the
// workspace was created, when that is later).
const dashboardDays = 90

var policyNames = map[string]string{
	db.PolicyOff:               "Off",
	db.PolicyOptional:          "Optional",
	db.PolicyRequired:          "Required for everyone",
	db.PolicyRequiredForAdmins: "Required for owners and admins",
}

// handleAdminDashboard is the admin console's home: coverage now (each
// figure links to the filtered members list), the policy in force and the
// enrollment chart, drawn server-side as SVG.
func (s *Server) handleAdminDashboard(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	pol, err := s.store.Policy(ctx, t.ID)
	if err != nil {
		return err
	}
	now := s.now()
	days := dashboardDays
	if w, err := s.store.WorkspaceBySlug(ctx, t.Slug); err == nil && !w.CreatedAt.IsZero() {
		since := int(now.UTC().Truncate(24*time.Hour).Sub(w.CreatedAt.UTC().Truncate(24*time.Hour))/(24*time.Hour)) + 1
		days = min(days, max(since, 2))
	} else if err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	// One snapshot for the figures and the chart, read fresh on every
	// request: an admin who resets a member sees it on reload.
	cov, hist, err := s.store.Dashboard(ctx, t.ID, pol, days, now)
	if err != nil {
		return err
	}
	v := views.DashboardView{Members: cov.Members, Enrolled: cov.Enrolled, InGrace: cov.InGrace, PastDeadline: cov.PastDeadline,
		LowRecoveryCodes: cov.LowRecoveryCodes, NoMFA: cov.NoMFA, PolicyName: policyNames[pol.Mode],
		Methods: methodNames(pol.Methods), GraceDays: pol.GraceDays, EnforcedSince: pol.EnforcedSince,
		Requires: pol.Requires(), NextDeadline: cov.NextDeadline, Now: now}
	if v.PolicyName == "" {
		v.PolicyName = pol.Mode
	}
	for _, h := range hist {
		v.History = append(v.History, views.HistoryPoint{Day: h.Day, Members: h.Members, Enrolled: h.Enrolled})
	}
	p := s.page(c, "Dashboard")
	p.Wide = true
	return s.render(c, http.StatusOK, views.AdminDashboardPage(p, v))
}

func methodNames(methods []string) string {
	var out []string
	for _, m := range methods {
		switch m {
		case db.MethodTOTP:
			out = append(out, "authenticator app")
		case db.MethodWebAuthn:
			out = append(out, "passkey or security key")
		default:
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// parseExtendDays reads a number of days to extend a deadline by: 1 to
// db.MaxExtendDays, anything else is refused.
func parseExtendDays(raw string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || n < 1 || n > db.MaxExtendDays {
		return 0, false
	}
	return n, true
}

// handleAdminMemberExtend gives a covered member more days to set up a
// second factor (memberAction has scoped the member and checked step-up).
func (s *Server) handleAdminMemberExtend(c echo.Context) error {
	m := targetMember(c)
	t := tenants.FromContext(c.Request().Context())
	days, ok := parseExtendDays(c.FormValue("days"))
	if !ok {
		return s.renderAdminMember(c, http.StatusUnprocessableEntity, s.page(c, m.Email), m,
			"Enter a number of days from 1 to "+strconv.Itoa(db.MaxExtendDays)+".")
	}
	_, err := s.store.ExtendDeadline(c.Request().Context(), t.ID, authFrom(c).User.ID, m.ID, days, meta(c))
	if errors.Is(err, db.ErrNotCovered) {
		return s.renderAdminMember(c, http.StatusConflict, s.page(c, m.Email), m,
			"The two-step verification requirement does not apply to this member, so there is no deadline to extend.")
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/members/"+strconv.FormatInt(m.ID, 10)+"?notice=deadline_extended")
}

type apiExtendRequest struct {
	Days *int `json:"days"`
}

var errInvalidDays = errorf(http.StatusBadRequest, "invalid_days", "days is a whole number from 1 to 90.")

// handleAPIAdminExtendDeadline is POST /admin/members/{id}/extend-deadline
// {"days": N}: 200 {"deadline"}; the member is looked up first (404 across
// workspaces), then the body (400, nothing changes), then step-up (403),
// and 409 not_covered when the requirement does not apply to the member.
func (s *Server) handleAPIAdminExtendDeadline(c echo.Context) error {
	m := targetMember(c)
	var req apiExtendRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Days == nil || *req.Days < 1 || *req.Days > db.MaxExtendDays {
		return errInvalidDays
	}
	t := tenants.FromContext(c.Request().Context())
	d, err := s.store.ExtendDeadline(c.Request().Context(), t.ID, authFrom(c).User.ID, m.ID, *req.Days, meta(c))
	if errors.Is(err, db.ErrNotCovered) {
		return errorf(http.StatusConflict, "not_covered", "The MFA requirement does not apply to this member.")
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"deadline": d.UTC().Format(time.RFC3339)})
}
