package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// The admin JSON API beyond API.md's table: everything the console does to
// one member (read them, end their sessions, change their role) and the
// invitations (send, resend), so a script can do what an admin does. The
// rules are the pages': reads need an admin session, changes need step-up
// and are audited by the store, and a member or invitation of another
// workspace is a 404 before anything else is checked.

var (
	errInvalidRole = errorf(http.StatusBadRequest, "invalid_role", "role is one of member, admin, owner.")
	errOwnerOnly   = errorf(http.StatusForbidden, "owner_only", "Only an owner can make someone an owner or change an owner's role.")
	// errOwnerProtected refuses an admin's change to an owner (db.MayManage).
	errOwnerProtected = errorf(http.StatusForbidden, "owner_only", "Only an owner can change an owner's second factors, sessions, trusted browsers, deadline or role.")
	errLastOwner      = errorf(http.StatusConflict, "last_owner", "This is the workspace's only owner. Make someone else an owner first.")
	errInvalidMail    = errorf(http.StatusBadRequest, "invalid_email", "email must be an address like name@example.com.")
	errIsMember       = errorf(http.StatusConflict, "already_member", "This address is already a member.")
)

type apiSession struct {
	ID         string `json:"id"`
	AAL        string `json:"aal"`
	IP         string `json:"ip"`
	UserAgent  string `json:"user_agent"`
	SignedInAt string `json:"signed_in_at"`
	LastSeenAt string `json:"last_seen_at"`
}

// memberFactors lists a member's second factors as the API shows them.
func (s *Server) memberFactors(ctx context.Context, workspaceID, userID int64) ([]apiFactor, error) {
	factors := []apiFactor{}
	used := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		v := rfc3339(t)
		return &v
	}
	cred, err := s.store.TOTPCredential(ctx, workspaceID, userID)
	if err == nil {
		factors = append(factors, apiFactor{Type: "totp", ID: cred.ID, Name: cred.Name, CreatedAt: rfc3339(cred.ConfirmedAt), LastUsedAt: used(cred.LastUsedAt)})
	} else if !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	keys, err := s.store.WebAuthnCredentials(ctx, workspaceID, userID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		factors = append(factors, apiFactor{Type: "webauthn", ID: k.ID, Name: k.Name, CreatedAt: rfc3339(k.CreatedAt), LastUsedAt: used(k.LastUsedAt), Synced: new(k.Synced())})
	}
	phone, err := s.store.SMSPhone(ctx, workspaceID, userID)
	if err == nil {
		factors = append(factors, apiFactor{Type: db.MethodSMS, ID: phone.ID, Name: phone.Masked, CreatedAt: rfc3339(phone.VerifiedAt), LastUsedAt: used(phone.LastUsedAt)})
	} else if !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	return factors, nil
}

// handleAPIAdminMember is GET /admin/members/{id}: the member page's facts.
func (s *Server) handleAPIAdminMember(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	m := targetMember(c)
	factors, err := s.memberFactors(ctx, t.ID, m.ID)
	if err != nil {
		return err
	}
	left, err := s.store.RecoveryCodesRemaining(ctx, t.ID, m.ID)
	if err != nil {
		return err
	}
	g, err := s.store.MFAGuard(ctx, t.ID, m.ID)
	if err != nil {
		return err
	}
	sessions, err := s.store.ActiveUserSessions(ctx, t.ID, m.ID)
	if err != nil {
		return err
	}
	pol, err := s.store.Policy(ctx, t.ID)
	if err != nil {
		return err
	}
	now := s.now()
	mm := db.MemberMFA{User: m, RecoveryRemaining: left}
	for _, f := range factors {
		mm.TOTP = mm.TOTP || f.Type == "totp"
		if f.Type == "webauthn" {
			mm.Keys++
		}
	}
	out := make([]apiSession, 0, len(sessions))
	for _, us := range sessions {
		out = append(out, apiSession{ID: us.ID, AAL: us.AAL, IP: us.IP, UserAgent: us.UserAgent,
			SignedInAt: rfc3339(us.AuthTime), LastSeenAt: rfc3339(us.LastSeenAt)})
	}
	var deadline, lockedUntil, disabledAt any
	if !m.MFADeadline.IsZero() {
		deadline = rfc3339(m.MFADeadline)
	}
	if g.LockedUntil.After(now) {
		lockedUntil = rfc3339(g.LockedUntil)
	}
	if !g.DisabledAt.IsZero() {
		disabledAt = rfc3339(g.DisabledAt)
	}
	trusted, err := s.apiTrustedDevices(c, t.ID, m.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"id": m.ID, "email": m.Email, "name": m.Name, "role": m.Role, "created_at": rfc3339(m.CreatedAt),
		"status": mm.Status(pol, now), "deadline": deadline, "factors": factors,
		"recovery_codes_remaining": left, "sessions": out, "trusted_devices": trusted,
		"locked_until": lockedUntil, "disabled_at": disabledAt,
	})
}

// handleAPIAdminEndSessions is POST /admin/members/{id}/end-sessions.
func (s *Server) handleAPIAdminEndSessions(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	m := targetMember(c)
	n, _, err := s.store.EndMemberSessions(ctx, t.ID, authFrom(c).User.ID, m.ID, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"sessions_ended": n})
}

type apiRoleRequest struct {
	Role string `json:"role"`
}

// handleAPIAdminRole is POST /admin/members/{id}/role with {"role"}.
func (s *Server) handleAPIAdminRole(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	m := targetMember(c)
	var req apiRoleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if !db.ValidRole(req.Role) {
		return errInvalidRole
	}
	u, err := s.store.ChangeRole(ctx, t.ID, authFrom(c).User.ID, m.ID, req.Role, meta(c))
	switch {
	case errors.Is(err, db.ErrNotAllowed):
		return errOwnerOnly
	case errors.Is(err, db.ErrLastOwner):
		return errLastOwner
	case err != nil:
		return err
	}
	var deadline any
	if !u.MFADeadline.IsZero() {
		deadline = rfc3339(u.MFADeadline)
	}
	return c.JSON(http.StatusOK, map[string]any{"id": u.ID, "email": u.Email, "role": u.Role, "deadline": deadline})
}

type apiInviteRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func apiInvitation(inv db.Invitation) map[string]any {
	return map[string]any{"id": inv.ID, "email": inv.Email, "role": inv.Role, "expires_at": rfc3339(inv.ExpiresAt)}
}

// handleAPIAdminInvite is POST /admin/invitations with {"email","role"}:
// 201 with the invitation (never its link, which only the invitee's email
// carries).
func (s *Server) handleAPIAdminInvite(c echo.Context) error {
	var req apiInviteRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	req.Email = strings.TrimSpace(req.Email)
	if !ValidEmail(req.Email) {
		return errInvalidMail
	}
	if !db.ValidRole(req.Role) {
		return errInvalidRole
	}
	if req.Role == db.RoleOwner && authFrom(c).User.Role != db.RoleOwner {
		return errOwnerOnly
	}
	inv, err := s.invite(c, req.Email, req.Role)
	if errors.Is(err, db.ErrConflict) {
		return errIsMember
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, apiInvitation(inv))
}

// handleAPIAdminInviteResend is POST /admin/invitations/{id}/resend: a new
// link (the old one dies) with a new expiry. An accepted, revoked or
// unknown invitation is a 404.
func (s *Server) handleAPIAdminInviteResend(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	id, ok := memberIDParam(c)
	if !ok {
		return errNotFound
	}
	inv, err := s.store.OpenInvitation(ctx, t.ID, id)
	if err != nil {
		return err
	}
	if inv.Role == db.RoleOwner && authFrom(c).User.Role != db.RoleOwner {
		return errOwnerOnly
	}
	inv, err = s.reinvite(c, inv)
	if errors.Is(err, db.ErrConflict) {
		return errNotFound
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiInvitation(inv))
}
