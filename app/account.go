package app

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// handleAccount shows the member's portal.
func (s *Server) handleAccount(c echo.Context) error {
	p := s.page(c, "Your account")
	p.Notice = notices[c.QueryParam("notice")]
	return s.renderAccount(c, http.StatusOK, p, views.PasswordForm{})
}

func (s *Server) renderAccount(c echo.Context, status int, p views.Page, pf views.PasswordForm) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	sessions, err := s.store.ActiveUserSessions(c.Request().Context(), t.ID, a.User.ID)
	if err != nil {
		return err
	}
	v := views.AccountView{
		Email: a.User.Email, Role: a.User.Role, WorkspaceName: t.Name, MemberSince: a.User.CreatedAt,
		PasswordSet: a.User.PasswordChangedAt, AAL: a.AAL, AuthTime: a.AuthTime, Password: pf,
	}
	if v.MFAOn, err = s.store.HasSecondFactor(c.Request().Context(), t.ID, a.User.ID); err != nil {
		return err
	}
	events, err := s.store.AuditEvents(c.Request().Context(), t.ID, db.AuditFilter{SubjectUserID: a.User.ID, Limit: 15})
	if err != nil {
		return err
	}
	for _, ev := range events {
		v.Activity = append(v.Activity, views.ActivityRow{At: ev.CreatedAt, What: describeEvent(ev), IP: ev.IP, Device: describeUserAgent(ev.UserAgent)})
	}
	consents, err := s.store.MemberConsents(c.Request().Context(), t.ID, a.User.ID)
	if err != nil {
		return err
	}
	for _, k := range consents {
		var what []string
		for _, sc := range k.Scopes {
			if d, ok := scopeNames[sc]; ok {
				what = append(what, d)
			}
		}
		v.Apps = append(v.Apps, views.AppConsentRow{ClientID: k.ClientID, Name: k.Name, Scopes: strings.Join(what, ", "), GrantedAt: k.GrantedAt})
	}
	for _, us := range sessions {
		v.Sessions = append(v.Sessions, views.SessionRow{ID: us.ID, Current: us.ID == a.Session.ID, Device: describeUserAgent(us.UserAgent),
			IP: us.IP, SignedIn: us.AuthTime, LastSeen: us.LastSeenAt})
	}
	trusted, err := s.trustedView(c, t, a.User.ID)
	if err != nil {
		return err
	}
	return s.render(c, status, views.AccountPage(p, v, trusted))
}

// handlePasswordChange changes the password with the current one, signs out
// every other session and renews this one's token.
func (s *Server) handlePasswordChange(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	current, next, confirm := c.FormValue("current_password"), c.FormValue("new_password"), c.FormValue("confirm_password")
	errs := views.FieldErrors{}
	if current == "" {
		errs["current_password"] = "Enter your current password."
	}
	if err := auth.ValidatePassword(next); err != nil {
		errs["new_password"] = err.Error()
	} else if next != confirm {
		errs["confirm_password"] = "The two new passwords don't match."
	}
	invalid := func() error {
		return s.renderAccount(c, http.StatusUnprocessableEntity, s.page(c, "Your account"), views.PasswordForm{Errors: errs})
	}
	if len(errs) > 0 {
		return invalid()
	}
	// The current-password check counts against the account like sign-in,
	// before the hash, so a stolen session cannot guess the password at
	// leisure, nor in a burst.
	taken, err := s.takePassword(c, s.throttleKey("acct", t.ID, ":", db.EmailKey(a.User.Email)), "")
	if err != nil {
		return err
	}
	ok, _, err := s.hasher.Verify(ctx, current, a.User.PasswordHash)
	if errors.Is(err, auth.ErrBusy) {
		return s.refund(ctx, taken, errBusy())
	} else if err != nil {
		return err
	}
	if !ok {
		errs["current_password"] = "That isn't your current password."
		return invalid()
	}
	if err := s.refund(ctx, taken, nil); err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, next)
	if errors.Is(err, auth.ErrBusy) {
		return errBusy()
	} else if err != nil {
		return err
	}
	msg, err := mail.Compose(mail.KindPasswordChanged, a.User.Email, map[string]any{
		"Workspace": t.Name, "Email": a.User.Email, "When": mail.When(s.now()), "IP": c.RealIP()})
	if err != nil {
		return err
	}
	epoch, err := s.store.ChangePassword(ctx, t.ID, a.User.ID, hash, a.Session.ID, meta(c), msg)
	if err != nil {
		return err
	}
	if err := s.rotateToken(c, a, epoch); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account?notice=password_changed")
}

// handleSessionEnd ends one of the member's other sessions.
func (s *Server) handleSessionEnd(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	id := c.Param("id")
	if id == a.Session.ID {
		return s.handleLogout(c)
	}
	if err := s.store.EndUserSession(ctx, t.ID, a.User.ID, id, "ended_by_member", meta(c)); err != nil {
		return err // another member's or an unknown id is a 404
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account?notice=session_ended")
}

// handleSessionsEndOthers signs the member out everywhere else.
func (s *Server) handleSessionsEndOthers(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	_, epoch, err := s.store.EndOtherUserSessions(ctx, t.ID, a.User.ID, a.Session.ID, meta(c))
	if err != nil {
		return err
	}
	if err := s.rotateToken(c, a, epoch); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account?notice=others_ended")
}

// describeUserAgent turns a User-Agent into "Firefox on Windows".
func describeUserAgent(ua string) string {
	browser := ""
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	osName := ""
	for _, o := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Android", "Android"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			osName = o.name
			break
		}
	}
	switch {
	case browser != "" && osName != "":
		return browser + " on " + osName
	case browser != "":
		return browser
	case ua == "":
		return "Unknown device"
	default:
		return truncateRunes(ua, 40)
	}
}

// eventNames are the member-facing names of audit events.
var eventNames = map[string]string{
	db.EventSignInSucceeded:         "Signed in",
	db.EventOAuthAuthorized:         "Signed in to an application",
	db.EventOAuthConsentGranted:     "Allowed an application",
	db.EventOAuthConsentRevoked:     "Removed an application's access",
	db.EventOAuthTokenRevoked:       "An application's access ended",
	db.EventOAuthRefreshReused:      "An application's stolen token was refused",
	db.EventSignInFailed:            "Wrong password",
	db.EventSignedOut:               "Signed out",
	db.EventSessionEnded:            "Session ended",
	db.EventSessionsEndedOthers:     "Signed out everywhere else",
	db.EventPasswordChanged:         "Password changed",
	db.EventMemberCreated:           "Account created",
	db.EventInvitationAccepted:      "Invitation accepted",
	db.EventTOTPEnrollStarted:       "Authenticator app setup started",
	db.EventTOTPEnrolled:            "Authenticator app added",
	db.EventTOTPRemoved:             "Authenticator app removed",
	db.EventChallengePassed:         "Second step passed",
	db.EventChallengeFailed:         "Wrong second-step code",
	db.EventMFALocked:               "Second step paused after wrong codes",
	db.EventMFADisabled:             "Second step blocked after wrong codes",
	db.EventRecoveryCodeUsed:        "Recovery code used",
	db.EventRecoveryCodesCreated:    "Recovery codes created",
	db.EventRecoveryCodesRegenerate: "New recovery codes made",
	db.EventStepUp:                  "Identity confirmed",
	db.EventTrustedDeviceAdded:      "Browser trusted",
	db.EventTrustedDeviceUsed:       "Signed in on a trusted browser",
	db.EventTrustedDeviceRevoked:    "Trusted browser revoked",
	db.EventTrustedDevicesVoided:    "Trusted browsers revoked",
}

func describeEvent(ev db.AuditEvent) string {
	if n, ok := eventNames[ev.Event]; ok {
		return n
	}
	return ev.Event
}

// scopeNames are the scopes as the portal names them.
var scopeNames = map[string]string{"openid": "who you are", "email": "your email", "profile": "your profile", "offline_access": "access while you are away"}

// handleAppRevoke takes back the member's consent to an application and
// its tokens. Taking access away needs no step-up (like ending a session).
func (s *Server) handleAppRevoke(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	err := s.store.RevokeConsent(c.Request().Context(), t.ID, a.User.ID, c.Param("client"), meta(c))
	if err != nil {
		return err // ErrNotFound: 404
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account?notice=app_revoked")
}
