package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// Session limits no workspace may loosen (NIST SP 800-63B §2.2.3 for aal2).
const (
	MaxSessionAbsolute = 24 * time.Hour
	MaxSessionIdle     = 60 * time.Minute
	// StepUpWindow is how recent a second factor must be for security
	// changes (NIST SP 800-63B-4 §4.1.2.1).
	StepUpWindow = 10 * time.Minute
	// touchEvery is how stale last_seen_at may get before a request writes
	// it; idle timeouts are exact to within this.
	touchEvery = 30 * time.Second
)

// Assurance levels.
const (
	AAL1 = "aal1"
	AAL2 = "aal2"
)

// Session keys in scs.
const (
	keyUserID      = "uid"
	keyWorkspaceID = "wid"
	keySessionID   = "sid"
	keyEpoch       = "epoch"
	keyAAL         = "aal"
	keyAuthTime    = "auth_time"
	keyAMR         = "amr"
	// keyAAL2At is when the session last passed a second factor (sign-in
	// or step-up): security changes need it within StepUpWindow.
	keyAAL2At = "aal2_at"
	// keyPendingChallenge names the open second-factor challenge of a
	// browser that passed the password step. It is not a session: nothing
	// but the challenge pages read it.
	keyPendingChallenge = "pending_challenge"
)

// AMR is one authentication method a session went through (RFC 8176).
type AMR struct {
	Method      string    `json:"method"`
	CompletedAt time.Time `json:"completed_at"`
}

// Auth is the signed-in member of a request.
type Auth struct {
	User      db.User
	Session   db.UserSession
	AAL       string
	AMR       []AMR
	AuthTime  time.Time
	ExpiresAt time.Time
	Bearer    bool
	// AAL2At is when the session last passed a second factor.
	AAL2At time.Time
}

// StepUpFresh reports whether the session passed a second factor within the
// step-up window.
func (a *Auth) StepUpFresh(now time.Time) bool {
	return !a.AAL2At.IsZero() && now.Sub(a.AAL2At) <= StepUpWindow && !a.AAL2At.After(now)
}

// binding is what a pending enrollment or ceremony this session starts
// belongs to: the session, and the second factor it last passed (SECURITY
// rule 12). Another session, or this one after a new step-up, does not
// match.
func (a *Auth) binding() db.SessionBinding {
	if a == nil {
		return db.SessionBinding{}
	}
	return db.SessionBinding{SessionID: a.Session.ID, StepUpAt: a.AAL2At}
}

func authFrom(c echo.Context) *Auth {
	a, _ := c.Get("auth").(*Auth)
	return a
}

// sessionCookieName is per workspace, so that signing in to one workspace
// never replaces the session of another on the same host.
func (s *Server) sessionCookieName(slug string) string { return s.cookieName(cookieSession, slug) }

// scsHash is the hash under which scs stores a token (HashTokenInStore).
func scsHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// wellFormedToken reports whether s looks like an scs token (43 characters
// of base64url), so junk never reaches the store. The alphabet is checked
// byte by byte: the base64 decoder alone skips CR and LF.
func wellFormedToken(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// loadSession loads the workspace session from the cookie, or for the JSON
// API from the Authorization bearer header (never from the cookie), and
// authenticates it. Pages get their cookie written before the headers.
func (s *Server) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t := tenants.FromContext(c.Request().Context())
		if t == nil {
			return next(c)
		}
		bearer := isAPI(c)
		var token string
		if bearer {
			if h := c.Request().Header.Get(echo.HeaderAuthorization); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
				token = strings.TrimSpace(h[7:])
			}
		} else if ck, err := c.Cookie(s.sessionCookieName(t.Slug)); err == nil {
			token = ck.Value
		}
		if !wellFormedToken(token) {
			token = ""
		}
		ctx, err := s.sessions.Load(c.Request().Context(), token)
		if err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(ctx))
		if bearer {
			// The API never sets cookies; a changed session is saved
			// under the same bearer token.
			c.Response().Before(func() {
				ctx := c.Request().Context()
				if committed, _ := c.Get("session_committed").(bool); committed {
					return // the handler saved it last thing (commitToken)
				}
				if s.sessions.Status(ctx) == scs.Modified && s.sessions.Token(ctx) != "" {
					if _, _, err := s.sessions.Commit(ctx); err != nil {
						s.logger(c).Error("commit session", slog.Any("err", err))
						c.Response().Status = http.StatusInternalServerError
					}
				}
			})
		} else {
			c.Response().Before(func() { s.writeSessionCookie(c, t) })
		}
		a, err := s.authenticate(c, t, token, bearer)
		if err != nil {
			return err
		}
		if a != nil {
			c.Set("auth", a)
		}
		return next(c)
	}
}

// writeSessionCookie commits a changed session and sets or clears the
// cookie. It runs just before the response headers go out.
func (s *Server) writeSessionCookie(c echo.Context, t *tenants.Tenant) {
	ctx := c.Request().Context()
	ck := &http.Cookie{Name: s.sessionCookieName(t.Slug), Path: "/", HttpOnly: true, Secure: s.cfg.SecureCookies(), SameSite: http.SameSiteLaxMode}
	switch s.sessions.Status(ctx) {
	case scs.Modified:
		token, _, err := s.sessions.Commit(ctx)
		if err != nil {
			s.logger(c).Error("commit session", slog.Any("err", err))
			c.Response().Status = http.StatusInternalServerError
			return
		}
		ck.Value = token
	case scs.Destroyed:
		ck.MaxAge = -1
		ck.Expires = time.Unix(1, 0)
	default:
		return
	}
	c.Response().Header().Add("Vary", "Cookie")
	http.SetCookie(c.Response(), ck)
}

// authenticate checks the loaded session against the database: the member
// exists in this workspace, the session epoch is current, the session is
// registered and not ended, the token is the session's current token (a
// token written back by a slow request after a rotation is refused), and the
// workspace's absolute and idle limits hold. Any failure leaves the request
// anonymous; a dead session is destroyed.
func (s *Server) authenticate(c echo.Context, t *tenants.Tenant, token string, bearer bool) (*Auth, error) {
	ctx := c.Request().Context()
	sm := s.sessions
	uid := sm.GetInt64(ctx, keyUserID)
	if uid == 0 {
		return nil, nil
	}
	if sm.GetInt64(ctx, keyWorkspaceID) != t.ID {
		// Another workspace's session: worthless here, but not ours to end.
		return nil, nil
	}
	dead := func(reason string) (*Auth, error) {
		s.logger(c).Info("session refused", slog.String("reason", reason), slog.Int64("user_id", uid))
		if err := sm.Destroy(ctx); err != nil {
			return nil, err
		}
		return nil, nil
	}
	u, err := s.store.UserByID(ctx, t.ID, uid)
	if errors.Is(err, db.ErrNotFound) {
		return dead("no such member")
	} else if err != nil {
		return nil, err
	}
	if sm.GetInt64(ctx, keyEpoch) != u.SessionEpoch {
		return dead("stale epoch")
	}
	us, err := s.store.UserSession(ctx, t.ID, sm.GetString(ctx, keySessionID))
	if errors.Is(err, db.ErrNotFound) {
		return dead("unregistered")
	} else if err != nil {
		return nil, err
	}
	if !us.Active() || us.UserID != u.ID {
		return dead("ended")
	}
	if us.TokenHash != scsHash(token) {
		return dead("stale token")
	}
	now := s.now()
	authTime := time.Unix(sm.GetInt64(ctx, keyAuthTime), 0).UTC()
	absolute := min(t.SessionAbsolute, MaxSessionAbsolute)
	idle := min(t.SessionIdle, MaxSessionIdle)
	if !now.Before(authTime.Add(absolute)) {
		s.store.EndUserSession(ctx, t.ID, u.ID, us.ID, "expired", meta(c))
		return dead("absolute timeout")
	}
	if !now.Before(us.LastSeenAt.Add(idle)) {
		s.store.EndUserSession(ctx, t.ID, u.ID, us.ID, "idle_timeout", meta(c))
		return dead("idle timeout")
	}
	if now.Sub(us.LastSeenAt) >= touchEvery {
		if err := s.store.TouchUserSession(ctx, t.ID, us.ID, now, c.RealIP()); err != nil {
			return nil, err
		}
		us.LastSeenAt = now
	}
	expires := authTime.Add(absolute)
	if idleEnd := us.LastSeenAt.Add(idle); idleEnd.Before(expires) {
		expires = idleEnd
	}
	a := &Auth{User: u, Session: us, AAL: sm.GetString(ctx, keyAAL), AuthTime: authTime, Bearer: bearer, ExpiresAt: expires}
	json.Unmarshal([]byte(sm.GetString(ctx, keyAMR)), &a.AMR)
	if at := sm.GetInt64(ctx, keyAAL2At); at > 0 {
		a.AAL2At = time.Unix(at, 0).UTC()
	}
	return a, nil
}

// freshSession ends whatever session the request had (signing in again in
// the same browser replaces it) and gives it a new, empty token: no
// fixation, and tokens differ at every stage.
func (s *Server) freshSession(c echo.Context, t *tenants.Tenant) error {
	ctx := c.Request().Context()
	if old := authFrom(c); old != nil {
		if err := s.store.EndUserSession(ctx, t.ID, old.User.ID, old.Session.ID, "replaced", meta(c)); err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
		c.Set("auth", nil)
	}
	if id := s.sessions.GetString(ctx, keyPendingChallenge); id != "" {
		if err := s.store.EndChallenge(ctx, t.ID, id, "replaced"); err != nil {
			return err
		}
	}
	if err := s.sessions.Clear(ctx); err != nil {
		return err
	}
	return s.sessions.RenewToken(ctx)
}

// bindSession puts a registered session into the (fresh) scs session.
func (s *Server) bindSession(c echo.Context, u db.User, us db.UserSession, amr []AMR) *Auth {
	ctx := c.Request().Context()
	sm := s.sessions
	amrJSON, _ := json.Marshal(amr)
	sm.Put(ctx, keyUserID, u.ID)
	sm.Put(ctx, keyWorkspaceID, us.WorkspaceID)
	sm.Put(ctx, keySessionID, us.ID)
	sm.Put(ctx, keyEpoch, u.SessionEpoch)
	sm.Put(ctx, keyAAL, us.AAL)
	sm.Put(ctx, keyAuthTime, us.AuthTime.Unix())
	sm.Put(ctx, keyAMR, string(amrJSON))
	a := &Auth{User: u, Session: us, AAL: us.AAL, AMR: amr, AuthTime: us.AuthTime, ExpiresAt: us.ExpiresAt}
	if us.AAL == AAL2 {
		sm.Put(ctx, keyAAL2At, us.AuthTime.Unix())
		a.AAL2At = us.AuthTime
	}
	c.Set("auth", a)
	return a
}

// newUserSession is the register entry of a session starting now.
func (s *Server) newUserSession(c echo.Context, t *tenants.Tenant, u db.User, aal string) db.UserSession {
	now := s.now()
	return db.UserSession{
		ID: auth.NewID(), WorkspaceID: t.ID, UserID: u.ID, AAL: aal,
		AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(min(t.SessionAbsolute, MaxSessionAbsolute)),
		IP: c.RealIP(), UserAgent: c.Request().UserAgent(),
	}
}

// signIn starts an aal1 session for u after a password.
func (s *Server) signIn(c echo.Context, t *tenants.Tenant, u db.User, aal string, methods ...string) (*Auth, error) {
	if err := s.freshSession(c, t); err != nil {
		return nil, err
	}
	ctx := c.Request().Context()
	us := s.newUserSession(c, t, u, aal)
	us.TokenHash = scsHash(s.sessions.Token(ctx))
	if err := s.store.CreateUserSession(ctx, us, map[string]any{"methods": methods, "aal": aal}); err != nil {
		return nil, err
	}
	amr := make([]AMR, len(methods))
	for i, m := range methods {
		amr[i] = AMR{Method: m, CompletedAt: us.AuthTime}
	}
	return s.bindSession(c, u, us, amr), nil
}

// rotateToken gives the current session a new token and makes the old one
// worthless; epoch, when not negative, replaces the session's epoch (after a
// change that bumped it).
func (s *Server) rotateToken(c echo.Context, a *Auth, epoch int64) error {
	ctx := c.Request().Context()
	old := s.sessions.Token(ctx)
	if err := s.sessions.RenewToken(ctx); err != nil {
		return err
	}
	if epoch >= 0 {
		s.sessions.Put(ctx, keyEpoch, epoch)
	}
	return s.store.RotateUserSessionToken(ctx, a.User.WorkspaceID, a.Session.ID, scsHash(old), scsHash(s.sessions.Token(ctx)))
}

// signOut ends the current session.
func (s *Server) signOut(c echo.Context, a *Auth) error {
	ctx := c.Request().Context()
	if err := s.store.EndUserSession(ctx, a.User.WorkspaceID, a.User.ID, a.Session.ID, "signed_out", meta(c)); err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	c.Set("auth", nil)
	return s.sessions.Destroy(ctx)
}

// inOneWrite runs fn with the request's store calls in one write
// transaction (db.Store.Within): on SQLite one step of the group commit,
// its reads on the writer's connection. What fn's calls kept commits when
// fn returns, whatever it returns (a counted wrong guess stays counted).
// Everything fn does with the store must go through the request's
// context.
func (s *Server) inOneWrite(c echo.Context, fn func() error) error {
	return s.store.Within(c.Request().Context(), func(ctx context.Context) error {
		// After Within returns, its context is an ordinary one again
		// (db.Store.ambient), so the request keeps it.
		c.SetRequest(c.Request().WithContext(ctx))
		return fn()
	})
}

// commitToken saves the session now and returns its token (for the API,
// which hands the token over in the body). Handlers call it last: the
// session is not saved again before the response.
func (s *Server) commitToken(c echo.Context) (string, error) {
	token, _, err := s.sessions.Commit(c.Request().Context())
	if err == nil {
		c.Set("session_committed", true)
	}
	return token, err
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func urlPathEscape(s string) string { return url.PathEscape(s) }
