package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// Password throttling: failures counted per account (workspace + email, known
// or not, so that the answer never depends on whether the email exists) and
// per client IP, in the database, across app nodes.
const (
	throttleWindow      = 15 * time.Minute
	accountFailureLimit = 10
	ipFailureLimit      = 100
	maxEmailLength      = 254
	maxPasswordBytes    = 1024
)

var (
	errInvalidCredentials = errorf(http.StatusUnauthorized, "invalid_credentials", "That email and password don't match.")
	errMissingCredentials = errorf(http.StatusBadRequest, "invalid_request", "Enter your email and password.")
)

func errRateLimited(until time.Time, now time.Time) *Error {
	wait := max(until.Sub(now), time.Second)
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: wait,
		Message: fmt.Sprintf("Too many attempts. Try again in %d minute(s).", int((wait+time.Minute-time.Second)/time.Minute))}
}

func errBusy() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "busy", RetryAfter: 2 * time.Second,
		Message: "Gatehouse is very busy right now. Try again in a few seconds."}
}

// notices are the fixed messages a redirect can ask a page to show.
var notices = map[string]string{
	"signed_out":          "You are signed out.",
	"app_revoked":         "The application's access is removed. It will ask you again if you sign in there.",
	"staff_enrolled":      "Your second factor is set up. Sign in with it.",
	"password_changed":    "Your password was changed. Every other session was signed out.",
	"session_ended":       "That session was signed out.",
	"others_ended":        "Every other session was signed out.",
	"invitation_sent":     "The invitation is on its way.",
	"welcome":             "Welcome! Your account is ready.",
	"challenge_expired":   "Your sign-in expired. Enter your email and password again.",
	"challenge_failed":    "Too many wrong codes. Enter your email and password again.",
	"totp_enabled":        "Two-step verification is on.",
	"totp_removed":        "The authenticator app was removed.",
	"sms_enabled":         "Your phone is verified: you can sign in with a code by text message.",
	"sms_removed":         "The phone was removed. No more codes are texted to it.",
	"sms_setup_expired":   "That phone setup expired or was replaced. Start again.",
	"verified":            "Thanks, you're verified.",
	"enroll_first":        "That change needs two-step verification: set up a second factor first, then try again.",
	"key_added":           "Your passkey or security key was added.",
	"key_renamed":         "The key was renamed.",
	"key_removed":         "The key was removed. You can no longer sign in with it here.",
	"trusted_revoked":     "The browser is no longer trusted: it asks for the second step again.",
	"trusted_revoked_all": "No browser is trusted any more: each asks for the second step again.",
}

func (s *Server) throttleKey(kind string, parts ...any) string {
	return "pw:" + kind + ":" + s.keys.HashToken("throttle", fmt.Sprint(parts...))
}

// checkPassword verifies an email and password for the workspace. Unknown
// emails cost a hash like wrong passwords, are counted alike and give the
// same answer. The attempt is counted against the account and the client IP
// before the hash (takePassword): a burst gets no more judged than the
// limits, and the right password is refused while they are reached. It
// returns an *Error for throttling (429), a full hashing queue (503) and bad
// credentials (401). The step is counted in the metrics.
func (s *Server) checkPassword(c echo.Context, t *tenants.Tenant, email, password string) (db.User, error) {
	u, err := s.judgePassword(c, t, email, password)
	s.metrics.signInStep("password", err)
	return u, err
}

// judgePassword is checkPassword's work.
func (s *Server) judgePassword(c echo.Context, t *tenants.Tenant, email, password string) (db.User, error) {
	ctx := c.Request().Context()
	email = strings.TrimSpace(email)
	if email == "" || password == "" {
		return db.User{}, errMissingCredentials
	}
	if s.hasher.ShedIfSaturated() {
		// Overload: shed before the throttle and member reads, so that
		// refused sign-ins cost neither database time nor CPU the hashes
		// need. Nothing is counted against the account or the IP.
		return db.User{}, errBusy()
	}
	taken, err := s.takePassword(c, s.throttleKey("acct", t.ID, ":", db.EmailKey(email)), s.throttleKey("ip", c.RealIP()))
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Status == http.StatusTooManyRequests {
			s.logger(c).Warn("sign-in throttled", slog.Int64("workspace_id", t.ID), slog.Bool("throttled", true))
		}
		return db.User{}, err
	}

	var u db.User
	hash := ""
	if len(email) <= maxEmailLength && len(password) <= maxPasswordBytes {
		u, err = s.store.UserByEmail(ctx, t.ID, email)
		if err == nil {
			hash = u.PasswordHash
		} else if !errors.Is(err, db.ErrNotFound) {
			return db.User{}, err
		}
	}
	ok, rehash, err := s.hasher.Verify(ctx, password, hash)
	if errors.Is(err, auth.ErrBusy) {
		// Not judged: the places go back.
		return db.User{}, s.refund(ctx, taken, errBusy())
	} else if err != nil {
		return db.User{}, err
	}
	if !ok {
		// The failure stays counted.
		if err := s.store.Audit(ctx, db.AuditEvent{WorkspaceID: t.ID, SubjectUserID: u.ID, Event: db.EventSignInFailed,
			IP: c.RealIP(), UserAgent: c.Request().UserAgent(), Details: map[string]any{"method": "password"}}); err != nil {
			return db.User{}, err
		}
		s.logger(c).Info("sign-in failed", slog.Int64("workspace_id", t.ID), slog.Int64("user_id", u.ID), slog.String("method", "password"), slog.Bool("auth_failed", true))
		return db.User{}, errInvalidCredentials
	}
	// A right password gives back only its own places; it does not wipe
	// the count. Wiping it would let the wrong guesses counted alongside
	// (a burst still being judged) be followed by limit more in the same
	// window.
	if err := s.refund(ctx, taken, nil); err != nil {
		return db.User{}, err
	}
	if rehash {
		// Stored hashes carry their parameters; raise them on a successful
		// sign-in when the operator raised GATEHOUSE_PASSWORD_HASH.
		if newHash, err := s.hasher.Hash(ctx, password); err == nil {
			if err := s.store.UpgradePasswordHash(ctx, t.ID, u.ID, u.PasswordHash, newHash); err != nil {
				return db.User{}, err
			}
			s.logger(c).Info("password hash upgraded", slog.Int64("user_id", u.ID))
		}
	}
	return u, nil
}

// takePassword counts one password attempt against the account's key and,
// when ipKey is not empty, the client IP's, before the password is judged
// (SECURITY.md rule 11). A refusal by either is a 429 and leaves nothing
// counted; the caller gives the places back with refund when the password
// was right or was not judged.
func (s *Server) takePassword(c echo.Context, acctKey, ipKey string) ([]db.Throttle, error) {
	ctx := c.Request().Context()
	var taken []db.Throttle
	for _, k := range []struct {
		key   string
		limit int
	}{{acctKey, accountFailureLimit}, {ipKey, ipFailureLimit}} {
		if k.key == "" {
			continue
		}
		th, err := s.store.ThrottleTake(ctx, k.key, throttleWindow, k.limit)
		if err != nil {
			return nil, s.refund(ctx, taken, s.throttled(err))
		}
		taken = append(taken, th)
	}
	return taken, nil
}

// refund gives back throttle places and returns err, or the refund's own
// error.
func (s *Server) refund(ctx context.Context, taken []db.Throttle, err error) error {
	for _, th := range taken {
		if rerr := s.store.ThrottleRefund(ctx, th); rerr != nil {
			return rerr
		}
	}
	return err
}

// refusedByThrottle reports whether err is a throttle's refusal, and sets
// Retry-After for the page that shows it.
func (s *Server) refusedByThrottle(c echo.Context, err error) bool {
	var e *Error
	if errors.As(s.throttled(err), &e) && e.Status == http.StatusTooManyRequests {
		setRetryAfter(c, e)
		return true
	}
	return false
}

// throttled maps a throttle's refusal (db.TooManyError) to a 429 with
// Retry-After; other errors pass through.
func (s *Server) throttled(err error) error {
	var tm *db.TooManyError
	if errors.As(err, &tm) {
		return errRateLimited(tm.Until, s.now())
	}
	return err
}

// handleLoginShow shows the sign-in form.
func (s *Server) handleLoginShow(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	// reauth: an application asked for a fresh sign-in (prompt=login,
	// max_age); the form shows although a session exists, and signing in
	// replaces it.
	if authFrom(c) != nil && c.QueryParam("reauth") != "1" {
		return c.Redirect(http.StatusSeeOther, s.safeNext(t, c.QueryParam("next")))
	}
	p := s.page(c, "Sign in")
	p.Notice = notices[c.QueryParam("notice")]
	return s.render(c, http.StatusOK, views.LoginPage(p, views.LoginForm{Next: c.QueryParam("next"), App: truncateRunes(c.QueryParam("app"), 100)}))
}

// handleLoginCheck checks the password and signs the member in.
func (s *Server) handleLoginCheck(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	email, next := c.FormValue("email"), c.FormValue("next")
	u, err := s.checkPassword(c, t, email, c.FormValue("password"))
	if e, status, ok := formError(c, err); ok {
		f := views.LoginForm{Email: truncateRunes(email, maxEmailLength), Next: next, Error: e.Message, App: truncateRunes(c.FormValue("app"), 100)}
		return s.render(c, status, views.LoginPage(s.page(c, "Sign in"), f))
	} else if err != nil {
		return err
	}
	challenged, err := s.afterPassword(c, t, u)
	if err != nil {
		return err
	}
	if challenged {
		return c.Redirect(http.StatusSeeOther, t.Base+"/login/mfa?next="+urlQueryEscape(next))
	}
	// A member who must still enroll sees the interstitial first ("remind
	// me later" continues to next); past the deadline it is all they get.
	target, err := s.afterSignIn(c, t, u, s.safeNext(t, next))
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// afterPassword continues a sign-in whose password was right: a member with
// a second factor gets a challenge (challenged is true) unless the browser
// is one they trust (pages only), which signs them in at aal1 (AMR
// password, trusted_device); anyone else gets an aal1 session.
func (s *Server) afterPassword(c echo.Context, t *tenants.Tenant, u db.User) (challenged bool, err error) {
	mfaOn, err := s.store.HasSecondFactor(c.Request().Context(), t.ID, u.ID)
	if err != nil {
		return false, err
	}
	if mfaOn {
		if ok, err := s.signInTrusted(c, t, u); err != nil || ok {
			return false, err
		}
		_, err = s.startChallenge(c, t, u)
		return true, err
	}
	if t.Support {
		return false, errStaffEnrollFirst // no staff session below aal2
	}
	_, err = s.signIn(c, t, u, AAL1, "password")
	return false, err
}

// handleLogout ends the session.
func (s *Server) handleLogout(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	if err := s.signOut(c, authFrom(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/login?notice=signed_out")
}

// handleWorkspaceHome sends signed-in members to their portal.
func (s *Server) handleWorkspaceHome(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	return c.Redirect(http.StatusSeeOther, s.safeNext(t, ""))
}

// safeNext returns next if it is a path inside the workspace, else the
// portal: never another site (no open redirect).
func (s *Server) safeNext(t *tenants.Tenant, next string) string {
	home := t.Base + "/account"
	if t.Support {
		home = t.Base + "/members"
	}
	if next == "" || len(next) > 2048 || strings.ContainsAny(next, "\\\r\n\t") {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(next, "//") {
		return home
	}
	if clean := path.Clean(u.Path); clean != strings.TrimSuffix(u.Path, "/") || strings.Contains(u.RawPath, "%2") {
		return home
	}
	if !strings.HasPrefix(u.Path, t.Base+"/") || strings.HasPrefix(u.Path, t.Base+"/login") || strings.Contains(u.Path, "/api/") {
		return home
	}
	// Escaping can triple the length: the bound holds for what is sent.
	if out := u.RequestURI(); len(out) <= 2048 {
		return out
	}
	return home
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}
