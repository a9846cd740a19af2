package app

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

var (
	errEnrollmentRequired = errorf(http.StatusForbidden, "mfa_enrollment_required",
		"Your workspace requires two-step verification and your deadline has passed: set it up to continue.")
	errMethodNotAllowed = errorf(http.StatusForbidden, "method_not_allowed",
		"Your workspace does not allow this method of two-step verification.")
	errFactorRequired = errorf(http.StatusConflict, "factor_required_by_policy",
		"Your workspace requires two-step verification: add another allowed method before removing this one.")
)

// checkRemoval refuses to remove a factor (method, and keyID for a key)
// when it is the member's last one the policy allows while the requirement
// covers them: errFactorRequired. It is the early answer, before a code is
// spent; the store's removal decides again in its transaction (two
// removals racing cannot both pass), and removalError maps its refusal.
func (s *Server) checkRemoval(c echo.Context, u db.User, method string, keyID int64) error {
	ctx := c.Request().Context()
	required, err := s.store.FactorRequired(ctx, tenants.FromContext(ctx).ID, u.ID, method, keyID)
	if err != nil {
		return err
	}
	if required {
		return errFactorRequired
	}
	return nil
}

// removalError maps the store's refusal to remove a factor the policy
// requires to errFactorRequired.
func removalError(err error) error {
	if errors.Is(err, db.ErrFactorRequired) {
		return errFactorRequired
	}
	return err
}

const (
	// keyEnrollOK marks a session allowed to enroll past the deadline: the
	// emailed link was followed in it, or it began by accepting an
	// invitation.
	keyEnrollOK = "enroll_ok"

	enrollLinkTTL     = 30 * time.Minute
	enrollLinkLimit   = 5 // links per member and window
	enrollLinkWindow  = time.Hour
	enrollLinkPurpose = "enroll_link"
)

// enrollUnlocked reports whether a confined session may enroll: it
// followed the emailed link (or began with an invitation), or it passed a
// second factor the policy no longer allows.
func (s *Server) enrollUnlocked(c echo.Context, a *Auth) bool {
	return a.AAL == AAL2 || s.sessions.GetBool(c.Request().Context(), keyEnrollOK)
}

// enforce applies the workspace's policy to a signed-in request, by the
// route's facts: methods the policy does not allow cannot be enrolled
// (enrolls), and a covered member past the deadline without an allowed
// factor is confined to the routes declared confined, and to those that
// enroll (and the MFA page: unlocked) once the emailed link unlocked
// enrollment.
func (s *Server) enforce(c echo.Context, rt *route, a *Auth) error {
	if a.User.MFADeadline.IsZero() && rt.enrolls == "" {
		return nil // not covered: nothing to read
	}
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	e, err := s.enforcement(ctx, t.ID, a.User)
	if err != nil {
		return err
	}
	if rt.enrolls != "" && e.Policy.Requires() && e.Policy.AppliesTo(a.User.Role) && !e.Policy.Allows(rt.enrolls) {
		return errMethodNotAllowed
	}
	if !e.PastDeadline() || rt.confined {
		return nil
	}
	if rt.unlocked && s.enrollUnlocked(c, a) {
		return nil
	}
	if rt.api || rt.json {
		return errEnrollmentRequired
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/enroll")
}

// afterSignIn is where a member who just signed in goes: target, unless
// they must still enroll an allowed factor (none, or only factors the
// policy does not allow, e.g. the authenticator app under a passkeys-only
// policy), in which case the interstitial comes first (in grace it
// continues to target; past the deadline it is all they get).
func (s *Server) afterSignIn(c echo.Context, t *tenants.Tenant, u db.User, target string) (string, error) {
	if u.MFADeadline.IsZero() {
		return target, nil // not covered
	}
	e, err := s.enforcement(c.Request().Context(), t.ID, u)
	if err != nil {
		return "", err
	}
	if e.Pending() {
		return t.Base + "/account/enroll?next=" + urlQueryEscape(target), nil
	}
	return target, nil
}

// pageEnroll is the grace-period banner of the page, nil when none.
func (s *Server) pageEnroll(c echo.Context, a *Auth) *views.PageEnroll {
	if a.User.MFADeadline.IsZero() {
		return nil
	}
	e, err := s.enforcement(c.Request().Context(), a.User.WorkspaceID, a.User)
	if err != nil {
		s.logger(c).Warn("enforcement for the banner", "err", err)
		return nil
	}
	if !e.InGrace() {
		return nil
	}
	return &views.PageEnroll{Deadline: mail.When(e.Deadline), DaysLeft: e.DaysLeft()}
}

// enrollView fills the interstitial's view.
func (s *Server) enrollView(c echo.Context, a *Auth) (views.EnrollView, Enforcement, error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	e, err := s.enforcement(ctx, t.ID, a.User)
	if err != nil {
		return views.EnrollView{}, e, err
	}
	v := views.EnrollView{
		Deadline: mail.When(e.Deadline), DaysLeft: e.DaysLeft(), PastDeadline: e.PastDeadline(),
		Unlocked: s.enrollUnlocked(c, a), Next: s.safeNext(t, c.QueryParam("next")),
		AllowTOTP: e.Policy.Allows(db.MethodTOTP), AllowWebAuthn: e.Policy.Allows(db.MethodWebAuthn), Reenroll: e.Reenroll,
	}
	return v, e, nil
}

// handleEnrollShow is the interstitial: in grace, "set it up now or
// later"; past the deadline, the emailed link, then the methods.
func (s *Server) handleEnrollShow(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	v, e, err := s.enrollView(c, a)
	if err != nil {
		return err
	}
	if !e.Pending() {
		return c.Redirect(http.StatusSeeOther, s.safeNext(t, c.QueryParam("next")))
	}
	v.Sent = c.QueryParam("sent") == "1"
	p := s.page(c, "Set up two-step verification")
	p.Enroll = nil
	return s.render(c, http.StatusOK, views.EnrollPage(p, v))
}

// handleEnrollLinkSend emails a confined member the link that unlocks
// enrollment in this session.
func (s *Server) handleEnrollLinkSend(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	v, e, err := s.enrollView(c, a)
	if err != nil {
		return err
	}
	if !e.PastDeadline() || v.Unlocked {
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/enroll")
	}
	token := auth.NewToken()
	expires := s.now().Add(enrollLinkTTL)
	data := s.mailData(c, t, a.User)
	data["Link"], data["Expires"] = s.absoluteURL(t, "/account/enroll/link/"+token), mail.When(expires)
	msg, err := mail.Compose(mail.KindMFAEnrollLink, a.User.Email, data)
	if err != nil {
		return err
	}
	err = s.store.CreateEnrollLink(ctx, t.ID, a.User.ID, a.Session.ID, s.keys.HashToken(enrollLinkPurpose, token),
		expires, enrollLinkLimit, enrollLinkWindow, meta(c), msg)
	if s.refusedByThrottle(c, err) {
		v.Error = "Too many links were sent. Try again in an hour, or use the last link you received."
		p := s.page(c, "Set up two-step verification")
		return s.render(c, http.StatusTooManyRequests, views.EnrollPage(p, v))
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/enroll?sent=1")
}

// handleEnrollLinkShow shows the Continue button; it changes nothing.
func (s *Server) handleEnrollLinkShow(c echo.Context) error {
	p := s.page(c, "Set up two-step verification")
	return s.render(c, http.StatusOK, views.EnrollLinkPage(p, views.EnrollLinkView{Token: c.Param("token")}))
}

// handleEnrollLinkConfirm consumes the link: it must be this member's, of
// this workspace and session, unused and unexpired. Then the session may
// enroll.
func (s *Server) handleEnrollLinkConfirm(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	token := c.Param("token")
	err := db.ErrNotFound
	if wellFormedToken(token) {
		err = s.store.UseEnrollLink(ctx, t.ID, a.User.ID, a.Session.ID, s.keys.TokenHashes(enrollLinkPurpose, token), meta(c))
	}
	if errors.Is(err, db.ErrNotFound) {
		p := s.page(c, "Set up two-step verification")
		v := views.EnrollLinkView{Error: "This link can't be used: it may have expired, been used already, or been sent to another session. Ask for a new one from this browser."}
		return s.render(c, http.StatusBadRequest, views.EnrollLinkPage(p, v))
	} else if err != nil {
		return err
	}
	s.sessions.Put(ctx, keyEnrollOK, true)
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/enroll")
}
