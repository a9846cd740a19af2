package app

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	gmail "github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// adminNotices are the messages the member pages show after an action.
var adminNotices = map[string]string{
	"mfa_reset":           "Two-step verification was reset and the member was emailed.",
	"mfa_reset_kept":      "Two-step verification was reset and the member was emailed. Their sessions were kept.",
	"sessions_ended":      "The member was signed out everywhere.",
	"role_changed":        "The role was changed.",
	"invitation_resent":   "A new invitation is on its way. The earlier link no longer works.",
	"invitation_accepted": "That invitation is no longer open.",
	"deadline_extended":   "The deadline was extended.",
	"trusted_revoked":     "The trusted browser was revoked: it asks for the second step again.",
}

// memberIDParam parses the :id of a member route. Anything but a positive
// decimal id is a 404, never a 500.
func memberIDParam(c echo.Context) (int64, bool) {
	raw := c.Param("id")
	if raw == "" || len(raw) > 19 || strings.TrimLeft(raw, "0123456789") != "" {
		return 0, false
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	return id, err == nil && id > 0
}

// loadMember returns the workspace's member named by :id. An id of another
// workspace is a 404 like an id that doesn't exist: every lookup is scoped.
func (s *Server) loadMember(c echo.Context) (db.User, error) {
	id, ok := memberIDParam(c)
	if !ok {
		return db.User{}, errNotFound
	}
	return s.store.UserByID(c.Request().Context(), tenants.FromContext(c.Request().Context()).ID, id)
}

// handleAdminMember shows one member: factors, recovery codes left,
// sessions, trusted browsers and recent security events, with the admin's
// actions.
func (s *Server) handleAdminMember(c echo.Context) error {
	m := targetMember(c)
	p := s.page(c, m.Email)
	p.Notice = adminNotices[c.QueryParam("notice")]
	return s.renderAdminMember(c, http.StatusOK, p, m, "")
}

func (s *Server) renderAdminMember(c echo.Context, status int, p views.Page, m db.User, errMsg string) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	v := views.AdminMemberView{ID: m.ID, Email: m.Email, Name: m.Name, Role: m.Role, Joined: m.CreatedAt, Self: m.ID == a.User.ID, Error: errMsg}
	if cred, err := s.store.TOTPCredential(ctx, t.ID, m.ID); err == nil {
		v.Factors = append(v.Factors, views.FactorRow{Type: "Authenticator app", Name: cred.Name, Created: cred.ConfirmedAt, LastUsed: cred.LastUsedAt})
	} else if !errors.Is(err, db.ErrNotFound) {
		return err
	}
	if _, err := s.store.PendingTOTPEnrollment(ctx, t.ID, m.ID); err == nil {
		v.PendingTOTP = true
	} else if !errors.Is(err, db.ErrNotFound) {
		return err
	}
	keys, err := s.store.WebAuthnCredentials(ctx, t.ID, m.ID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		kind := "Security key"
		if k.Synced() {
			kind = "Passkey (synced)"
		}
		v.Factors = append(v.Factors, views.FactorRow{Type: kind, Name: k.Name, Created: k.CreatedAt, LastUsed: k.LastUsedAt})
	}
	if v.RecoveryRemaining, err = s.store.RecoveryCodesRemaining(ctx, t.ID, m.ID); err != nil {
		return err
	}
	g, err := s.store.MFAGuard(ctx, t.ID, m.ID)
	if err != nil {
		return err
	}
	switch {
	case !g.DisabledAt.IsZero():
		v.Guard = "Blocked after 100 wrong codes in a row (since " + views.FormatTime(g.DisabledAt) + "). A reset lifts it."
	case g.LockedUntil.After(s.now()):
		v.Guard = "Paused after wrong codes until " + views.FormatTime(g.LockedUntil) + "."
	}
	sessions, err := s.store.ActiveUserSessions(ctx, t.ID, m.ID)
	if err != nil {
		return err
	}
	for _, us := range sessions {
		v.Sessions = append(v.Sessions, views.SessionRow{ID: us.ID, Device: describeUserAgent(us.UserAgent), IP: us.IP, SignedIn: us.AuthTime, LastSeen: us.LastSeenAt})
	}
	events, err := s.store.MemberEvents(ctx, t.ID, m.ID, 20)
	if err != nil {
		return err
	}
	for _, ev := range events {
		v.Activity = append(v.Activity, views.ActivityRow{At: ev.CreatedAt, What: describeAdminEvent(ev), IP: ev.IP, Device: describeUserAgent(ev.UserAgent)})
	}
	v.Roles = assignableRoles(a.User, m)
	v.Manage = db.MayManage(a.User, m)
	pol, err := s.store.Policy(ctx, t.ID)
	if err != nil {
		return err
	}
	mm := db.MemberMFA{User: m, Keys: len(keys), RecoveryRemaining: v.RecoveryRemaining}
	for _, f := range v.Factors {
		mm.TOTP = mm.TOTP || f.Type == "Authenticator app"
	}
	d := views.MemberDeadlineView{Status: mm.Status(pol, s.now()), Deadline: m.MFADeadline, MaxDays: db.MaxExtendDays}
	trusted, err := s.trustedView(c, t, m.ID)
	if err != nil {
		return err
	}
	p.Wide = true
	return s.render(c, status, views.AdminMemberPage(p, v, d, trusted))
}

// assignableRoles are the roles actor may give m: an admin manages members
// and admins; only an owner makes owners or changes an owner's role.
func assignableRoles(actor, m db.User) []string {
	if actor.Role == db.RoleOwner {
		return []string{db.RoleMember, db.RoleAdmin, db.RoleOwner}
	}
	if m.Role == db.RoleOwner {
		return nil
	}
	return []string{db.RoleMember, db.RoleAdmin}
}

var memberAdminEventNames = map[string]string{
	db.EventMFAResetByAdmin:      "Two-step verification reset by an administrator",
	db.EventSessionEndedByAdmin:  "Signed out everywhere by an administrator",
	db.EventMemberRoleChanged:    "Role changed",
	db.EventTrustedDeviceRevoked: "Trusted browser revoked",
}

func describeAdminEvent(ev db.AuditEvent) string {
	if n, ok := memberAdminEventNames[ev.Event]; ok {
		if ev.Event == db.EventMemberRoleChanged {
			from, _ := ev.Details["from"].(string)
			to, _ := ev.Details["to"].(string)
			return n + " from " + from + " to " + to
		}
		return n
	}
	return describeEvent(ev)
}

// resetMFA resets the member's second factors on the admin's request and
// queues the notice to the member, all in one transaction.
func (s *Server) resetMFA(c echo.Context, m db.User, endSessions bool) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	msg, err := gmail.Compose(gmail.KindMFAResetByAdmin, m.Email, map[string]any{
		"Workspace": t.Name, "Admin": a.User.Email, "Email": m.Email, "When": gmail.When(s.now()),
		"SessionsEnded": endSessions, "Link": s.absoluteURL(t, "/account/mfa")})
	if err != nil {
		return err
	}
	_, err = s.store.ResetMFA(c.Request().Context(), t.ID, a.User.ID, m.ID, endSessions, meta(c), msg)
	return err
}

// handleAdminMemberResetMFA is the reset form: it needs the confirmation
// box, and ends the member's sessions unless "also sign them out" was
// unticked.
func (s *Server) handleAdminMemberResetMFA(c echo.Context) error {
	m := targetMember(c)
	t := tenants.FromContext(c.Request().Context())
	if c.FormValue("confirm") != "yes" {
		return s.renderAdminMember(c, http.StatusUnprocessableEntity, s.page(c, m.Email), m,
			"Tick the confirmation box to reset two-step verification.")
	}
	endSessions := c.FormValue("end_sessions") != ""
	if err := s.resetMFA(c, m, endSessions); err != nil {
		return err
	}
	notice := "mfa_reset"
	if !endSessions {
		notice = "mfa_reset_kept"
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/members/"+strconv.FormatInt(m.ID, 10)+"?notice="+notice)
}

// handleAdminMemberEndSessions signs the member out everywhere. An admin
// who does this to themself is signed out too.
func (s *Server) handleAdminMemberEndSessions(c echo.Context) error {
	m := targetMember(c)
	t := tenants.FromContext(c.Request().Context())
	if _, _, err := s.store.EndMemberSessions(c.Request().Context(), t.ID, authFrom(c).User.ID, m.ID, meta(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/members/"+strconv.FormatInt(m.ID, 10)+"?notice=sessions_ended")
}

// handleAdminMemberRole changes the member's role. The store enforces the
// rules (only owners make or demote owners; the last owner stays).
func (s *Server) handleAdminMemberRole(c echo.Context) error {
	m := targetMember(c)
	t := tenants.FromContext(c.Request().Context())
	role := c.FormValue("role")
	if !db.ValidRole(role) {
		return s.renderAdminMember(c, http.StatusUnprocessableEntity, s.page(c, m.Email), m, "Choose member, admin or owner.")
	}
	_, err := s.store.ChangeRole(c.Request().Context(), t.ID, authFrom(c).User.ID, m.ID, role, meta(c))
	switch {
	case errors.Is(err, db.ErrNotAllowed):
		return s.renderAdminMember(c, http.StatusForbidden, s.page(c, m.Email), m, "Only an owner can make someone an owner or change an owner's role.")
	case errors.Is(err, db.ErrLastOwner):
		return s.renderAdminMember(c, http.StatusConflict, s.page(c, m.Email), m, "This is the workspace's only owner. Make someone else an owner first.")
	case err != nil:
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/members/"+strconv.FormatInt(m.ID, 10)+"?notice=role_changed")
}

// handleInvitationResend voids an open invitation's link and sends a new
// one (new token, new expiry) to the same address with the same role.
func (s *Server) handleInvitationResend(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	id, ok := memberIDParam(c)
	if !ok {
		return errNotFound
	}
	inv, err := s.store.OpenInvitation(ctx, t.ID, id)
	if err != nil {
		return err
	}
	if inv.Role == db.RoleOwner && a.User.Role != db.RoleOwner {
		return errorf(http.StatusForbidden, "forbidden", "Only an owner can invite another owner.")
	}
	_, err = s.reinvite(c, inv)
	if errors.Is(err, db.ErrNotFound) || errors.Is(err, db.ErrConflict) {
		// Accepted or revoked meanwhile.
		return c.Redirect(http.StatusSeeOther, t.Base+"/admin/members?notice=invitation_accepted")
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/members?notice=invitation_resent")
}

// Admin JSON API.

const apiMembersPageSize = 50

type apiMember struct {
	ID                     int64    `json:"id"`
	Email                  string   `json:"email"`
	Name                   string   `json:"name"` // "" when none
	Role                   string   `json:"role"`
	Factors                []string `json:"factors"`
	RecoveryCodesRemaining int      `json:"recovery_codes_remaining"`
	Deadline               *string  `json:"deadline"`
	Status                 string   `json:"status"`
}

var errInvalidStatus = errorf(http.StatusBadRequest, "invalid_status", "status is one of enrolled, in_grace, past_deadline, low_recovery_codes, no_mfa.")
var errInvalidCursor = errorf(http.StatusBadRequest, "invalid_cursor", "cursor is not one this API gave out.")

// handleAPIAdminMembers is GET /admin/members: a page of members ordered by
// email, with their factors, deadline and policy-aware status (see
// db.MemberMFA.Status); status filters as db.MemberMFAFilter describes.
func (s *Server) handleAPIAdminMembers(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	status := c.QueryParam("status")
	switch status {
	case "", db.StatusEnrolled, db.StatusNoMFA, db.StatusLowRecoveryCodes, db.StatusInGrace, db.StatusPastDeadline:
	default:
		return errInvalidStatus
	}
	after := ""
	if cur := c.QueryParam("cursor"); cur != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cur)
		if err != nil || len(cur) > 400 || len(raw) == 0 {
			return errInvalidCursor
		}
		after = string(raw)
	}
	q := truncateRunes(strings.TrimSpace(c.QueryParam("q")), maxEmailLength)
	pol, err := s.store.Policy(ctx, t.ID)
	if err != nil {
		return err
	}
	now := s.now()
	members, err := s.store.MembersMFA(ctx, t.ID, db.MemberMFAFilter{Status: status, Policy: pol, Now: now, Query: q, After: after, Limit: apiMembersPageSize + 1})
	if err != nil {
		return err
	}
	var next any
	if len(members) > apiMembersPageSize {
		members = members[:apiMembersPageSize]
		next = base64.RawURLEncoding.EncodeToString([]byte(db.EmailKey(members[len(members)-1].Email)))
	}
	out := make([]apiMember, 0, len(members))
	for _, m := range members {
		factors := []string{}
		if m.TOTP {
			factors = append(factors, "totp")
		}
		if m.Keys > 0 {
			factors = append(factors, "webauthn")
		}
		var deadline *string
		if !m.MFADeadline.IsZero() {
			d := m.MFADeadline.UTC().Format(time.RFC3339)
			deadline = &d
		}
		out = append(out, apiMember{ID: m.ID, Email: m.Email, Name: m.Name, Role: m.Role, Factors: factors,
			RecoveryCodesRemaining: m.RecoveryRemaining, Deadline: deadline, Status: m.Status(pol, now)})
	}
	return c.JSON(http.StatusOK, map[string]any{"members": out, "next_cursor": next})
}

type apiResetMFARequest struct {
	EndSessions *bool `json:"end_sessions"`
}

// handleAPIAdminResetMFA is POST /admin/members/{id}/reset-mfa. The member
// is looked up first (404 across workspaces), then the caller's step-up is
// checked (403 step_up_required). end_sessions defaults to true.
func (s *Server) handleAPIAdminResetMFA(c echo.Context) error {
	m := targetMember(c)
	var req apiResetMFARequest
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	endSessions := req.EndSessions == nil || *req.EndSessions
	if err := s.resetMFA(c, m, endSessions); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
