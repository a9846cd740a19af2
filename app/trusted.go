package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// Trusted devices ("trust this browser for N days", DESIGN "Sign-in" 4):
// after a passed challenge the browser gets a random 256-bit token in its
// own cookie, of which only a keyed hash is stored, bound to the member and
// the workspace. At the next sign-in, after the right password, it skips
// the challenge, but the session is honestly aal1 (AMR password,
// trusted_device): step-up still asks for a factor. Never on the API
// (bearer tokens, no cookies) and never on the support console (no staff
// session below aal2).

// trustedField is the challenge form's checkbox (and the key ceremony's
// query parameter, which the challenge page's script sets).
const trustedField = "trust_device"

// trustedPurpose is the keyed-hash purpose of a workspace's device tokens:
// a token is worthless in another workspace even before the scoped lookup.
func trustedPurpose(workspaceID int64) string { return fmt.Sprintf("trusted_device:%d", workspaceID) }

// trustedCookieName is per workspace, like the session cookie.
func (s *Server) trustedCookieName(slug string) string { return s.cookieName(cookieTrusted, slug) }

// trustedDays is how long the workspace lets a browser be trusted, 0 when
// it does not (always 0 on the support console).
func (s *Server) trustedDays(c echo.Context, t *tenants.Tenant) (int, error) {
	if t.Support {
		return 0, nil
	}
	p, err := s.store.Policy(c.Request().Context(), t.ID)
	if err != nil {
		return 0, err
	}
	return min(p.TrustedDeviceDays, db.MaxTrustedDeviceDays), nil
}

// trustRequested reports whether the member ticked "trust this browser"
// for the challenge this request passes (form field, or the key
// ceremony's query parameter). Never on the API.
func trustRequested(c echo.Context) bool {
	return !isAPI(c) && c.FormValue(trustedField) == "1"
}

// trustDevice trusts the browser of this request for u, who just passed a
// second factor: a new token in the workspace's device cookie (Max-Age the
// workspace's days), its keyed hash stored with the expiry. Nothing when
// the workspace does not allow it.
func (s *Server) trustDevice(c echo.Context, t *tenants.Tenant, u db.User) error {
	days, err := s.trustedDays(c, t)
	if err != nil || days <= 0 {
		return err
	}
	token := auth.NewToken()
	lifetime := time.Duration(days) * 24 * time.Hour
	expires := s.now().Add(lifetime)
	d, err := s.store.CreateTrustedDevice(c.Request().Context(), t.ID, u.ID, s.keys.HashToken(trustedPurpose(t.ID), token),
		describeUserAgent(c.Request().UserAgent()), expires, meta(c))
	if err != nil {
		return err
	}
	http.SetCookie(c.Response(), &http.Cookie{Name: s.trustedCookieName(t.Slug), Value: token, Path: "/",
		MaxAge: int(lifetime / time.Second), Expires: expires, HttpOnly: true, Secure: s.cfg.SecureCookies(), SameSite: http.SameSiteLaxMode})
	s.logger(c).Info("browser trusted", slog.Int64("workspace_id", t.ID), slog.Int64("user_id", u.ID), slog.Int64("device_id", d.ID))
	return nil
}

// signInTrusted signs u in at aal1 (AMR password, trusted_device) when the
// browser presents a usable device token of u in this workspace, and
// reports whether it did. Any other token (another member's or
// workspace's, expired, revoked, voided, malformed, or trusted devices
// off) is ignored without a word: the challenge follows as usual. While
// the member's second factor is locked it returns the lock's *Error.
func (s *Server) signInTrusted(c echo.Context, t *tenants.Tenant, u db.User) (bool, error) {
	if isAPI(c) || t.Support {
		return false, nil
	}
	ck, err := c.Cookie(s.trustedCookieName(t.Slug))
	if err != nil || !wellFormedToken(ck.Value) {
		return false, nil
	}
	// A member the policy still asks to enroll (their factors are not the
	// allowed ones) passes the challenge instead: the aal2 it gives lets
	// them enroll past the deadline, an aal1 session would not.
	if e, err := s.enforcement(c.Request().Context(), t.ID, u); err != nil || e.Pending() {
		return false, err
	}
	// Locked means locked, for a trusted browser too (issue 12). Paused
	// after wrong codes: refused with the challenge's answer (429 with
	// Retry-After). Blocked after 100 wrong codes until a reset or
	// recovery: the challenge follows, which says so and offers recovery
	// by email. UseTrustedDevice reads the lock again in its transaction.
	switch err := s.guardOpen(c, t, u.ID); {
	case errors.Is(err, errMFADisabled):
		return false, nil
	case err != nil:
		s.logger(c).Info("trusted browser refused: second factor locked", slog.Int64("workspace_id", t.ID), slog.Int64("user_id", u.ID),
			slog.String("method", "trusted_device"), slog.Bool("mfa_locked", true))
		return false, err
	}
	d, err := s.store.UseTrustedDevice(c.Request().Context(), t.ID, u.ID, s.keys.TokenHashes(trustedPurpose(t.ID), ck.Value), meta(c))
	if errors.Is(err, db.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if _, err := s.signIn(c, t, u, AAL1, "password", "trusted_device"); err != nil {
		return false, err
	}
	s.logger(c).Info("signed in on a trusted browser", slog.Int64("workspace_id", t.ID), slog.Int64("user_id", u.ID),
		slog.Int64("device_id", d.ID), slog.String("method", "trusted_device"))
	return true, nil
}

// clearTrustedCookie removes this browser's device cookie.
func (s *Server) clearTrustedCookie(c echo.Context, t *tenants.Tenant) {
	http.SetCookie(c.Response(), &http.Cookie{Name: s.trustedCookieName(t.Slug), Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, Secure: s.cfg.SecureCookies(), SameSite: http.SameSiteLaxMode})
}

// trustedView is the "Trusted browsers" list of a member, for the portal
// and the admin's member page.
func (s *Server) trustedView(c echo.Context, t *tenants.Tenant, memberID int64) (views.TrustedDevicesView, error) {
	var v views.TrustedDevicesView
	var err error
	if v.Days, err = s.trustedDays(c, t); err != nil {
		return v, err
	}
	list, err := s.store.TrustedDevices(c.Request().Context(), t.ID, memberID)
	if err != nil {
		return v, err
	}
	for _, d := range list {
		v.Devices = append(v.Devices, views.TrustedDeviceRow{ID: d.ID, Label: d.Label, Added: d.CreatedAt, LastUsed: d.LastUsedAt, Expires: d.ExpiresAt})
	}
	return v, nil
}

// apiTrustedDevice is a trusted device in the JSON API.
type apiTrustedDevice struct {
	ID         int64   `json:"id"`
	Label      string  `json:"label"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
	ExpiresAt  string  `json:"expires_at"`
}

func (s *Server) apiTrustedDevices(c echo.Context, workspaceID, memberID int64) ([]apiTrustedDevice, error) {
	list, err := s.store.TrustedDevices(c.Request().Context(), workspaceID, memberID)
	if err != nil {
		return nil, err
	}
	out := make([]apiTrustedDevice, 0, len(list))
	for _, d := range list {
		j := apiTrustedDevice{ID: d.ID, Label: d.Label, CreatedAt: rfc3339(d.CreatedAt), ExpiresAt: rfc3339(d.ExpiresAt)}
		if !d.LastUsedAt.IsZero() {
			used := rfc3339(d.LastUsedAt)
			j.LastUsedAt = &used
		}
		out = append(out, j)
	}
	return out, nil
}

// deviceIDParam parses a device id route parameter; anything but a
// positive decimal id is a 404.
func deviceIDParam(c echo.Context, name string) (int64, error) {
	raw := c.Param(name)
	if raw == "" || len(raw) > 19 {
		return 0, errNotFound
	}
	for _, r := range raw {
		if r < '0' || r > '9' {
			return 0, errNotFound
		}
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, errNotFound
	}
	return id, nil
}

// handleTrustedRevoke is the portal's Revoke of one trusted browser
// (step-up declared in routes).
func (s *Server) handleTrustedRevoke(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	id, err := deviceIDParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.store.RevokeTrustedDevice(c.Request().Context(), t.ID, a.User.ID, a.User.ID, id, db.TrustedRevokedByMember, meta(c)); err != nil {
		return err // another member's, another workspace's or an unknown id: 404
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account?notice=trusted_revoked")
}

// handleTrustedRevokeAll revokes every trusted browser of the member and
// forgets this browser's token.
func (s *Server) handleTrustedRevokeAll(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	if _, err := s.store.RevokeTrustedDevices(c.Request().Context(), t.ID, a.User.ID, a.User.ID, db.TrustedRevokedByMember, meta(c)); err != nil {
		return err
	}
	s.clearTrustedCookie(c, t)
	return c.Redirect(http.StatusSeeOther, t.Base+"/account?notice=trusted_revoked_all")
}

// handleAdminMemberTrustedRevoke is an admin's Revoke of one of a member's
// trusted browsers (routes: onMember, step-up).
func (s *Server) handleAdminMemberTrustedRevoke(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	m := targetMember(c)
	id, err := deviceIDParam(c, "device")
	if err != nil {
		return err
	}
	if _, err := s.store.RevokeTrustedDevice(c.Request().Context(), t.ID, authFrom(c).User.ID, m.ID, id, db.TrustedRevokedByAdmin, meta(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/members/"+strconv.FormatInt(m.ID, 10)+"?notice=trusted_revoked")
}

// handleAPITrustedDelete is DELETE /trusted-devices/{id}: the member
// revokes one of their trusted browsers (step-up).
func (s *Server) handleAPITrustedDelete(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	id, err := deviceIDParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.store.RevokeTrustedDevice(c.Request().Context(), t.ID, a.User.ID, a.User.ID, id, db.TrustedRevokedByMember, meta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
