package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// Self-service recovery by email (a workspace setting, off by default): on
// the challenge page, a member who lost every factor asks for a link by
// email (the password was checked: the challenge is pending); following it
// starts a waiting period announced by email with a cancel link; then the
// jobs reset them. Signing in with a second factor meanwhile cancels it
// (db.cancelRecoveriesTx, in the transaction that spends the factor).

const (
	recoveryLinkTTL      = 30 * time.Minute
	recoveryLinkLimit    = 3 // requests per member and window
	recoveryLinkWindow   = time.Hour
	recoveryLinkPurpose  = "recovery_link"
	recoveryCancelPurpos = "recovery_cancel"
)

// handleRecoveryRequest is POST /login/mfa/recover: the link by email.
func (s *Server) handleRecoveryRequest(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	_, u, err := s.pendingChallenge(ctx, t)
	if errors.Is(err, db.ErrChallengeGone) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/login?notice=challenge_expired")
	} else if err != nil {
		return err
	}
	r, err := s.store.RecoverySettings(ctx, t.ID)
	if err != nil {
		return err
	}
	if !r.SelfService {
		return errNotFound
	}
	token := auth.NewToken()
	expires := s.now().Add(recoveryLinkTTL)
	data := s.mailData(c, t, u)
	data["Link"], data["Expires"], data["WaitHours"] = s.absoluteURL(t, "/recover/"+token), mail.When(expires), r.WaitHours
	msg, err := mail.Compose(mail.KindRecoveryLink, u.Email, data)
	if err != nil {
		return err
	}
	p := s.page(c, "Recover your account")
	err = s.store.RequestSelfRecovery(ctx, t.ID, u.ID, s.keys.HashToken(recoveryLinkPurpose, token), expires, recoveryLinkLimit, recoveryLinkWindow, meta(c), msg)
	switch {
	case s.refusedByThrottle(c, err):
		return s.render(c, http.StatusTooManyRequests, views.RecoverPage(p, views.RecoverView{
			Error: "Too many recovery links were sent. Use the last one you received, or try again in an hour."}))
	case errors.Is(err, db.ErrRecoveryOff):
		return errNotFound
	case err != nil:
		return err
	}
	return s.render(c, http.StatusOK, views.RecoverPage(p, views.RecoverView{Sent: true, WaitHours: r.WaitHours}))
}

// handleRecoverShow is the page behind the emailed link: it changes
// nothing until its button is pressed.
func (s *Server) handleRecoverShow(c echo.Context) error {
	r, err := s.store.RecoverySettings(c.Request().Context(), tenants.FromContext(c.Request().Context()).ID)
	if err != nil {
		return err
	}
	p := s.page(c, "Recover your account")
	return s.render(c, http.StatusOK, views.RecoverPage(p, views.RecoverView{Token: c.Param("token"), WaitHours: r.WaitHours}))
}

// handleRecoverStart spends the link and starts the waiting period.
func (s *Server) handleRecoverStart(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	p := s.page(c, "Recover your account")
	token := c.Param("token")
	cancel := auth.NewToken()
	compose := func(u db.User, executes time.Time) (db.OutboxMessage, error) {
		data := s.mailData(c, t, u)
		data["ExecutesAt"], data["Link"] = mail.When(executes), s.absoluteURL(t, "/reset/cancel/"+cancel)
		return mail.Compose(mail.KindRecoveryStarted, u.Email, data)
	}
	err := db.ErrNotFound
	var start db.RecoveryStart
	if wellFormedToken(token) {
		start, err = s.store.StartSelfRecovery(ctx, t.ID, s.keys.TokenHashes(recoveryLinkPurpose, token), s.keys.HashToken(recoveryCancelPurpos, cancel), compose, meta(c))
	}
	if errors.Is(err, db.ErrNotFound) {
		return s.render(c, http.StatusBadRequest, views.RecoverPage(p, views.RecoverView{
			Error: "This link can't be used: it may have expired or been used already. Ask for a new one from the sign-in page."}))
	} else if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.RecoverPage(p, views.RecoverView{Started: true, Already: start.Already, ExecutesAt: mail.When(start.ExecutesAt)}))
}

// cancelReset cancels a support case or a self-service recovery by the
// member's emailed link; db.ErrNotFound when it is neither.
func (s *Server) cancelReset(ctx context.Context, t *tenants.Tenant, token string, m db.Meta) error {
	if !wellFormedToken(token) {
		return db.ErrNotFound
	}
	_, err := s.store.CancelCase(ctx, t.ID, s.keys.TokenHashes(caseCancelPurpose, token), m)
	if !errors.Is(err, db.ErrNotFound) {
		return err
	}
	return s.store.CancelSelfRecovery(ctx, t.ID, s.keys.TokenHashes(recoveryCancelPurpos, token), m)
}

// RunSelfRecoveries carries out the self-service recoveries whose waiting
// period has passed, emailing each member.
func (j *Jobs) RunSelfRecoveries(ctx context.Context) (int, error) {
	n, err := j.Store.RunSelfRecoveries(ctx, func(u db.User, ws db.Workspace) (db.OutboxMessage, error) {
		if j.BaseURL == nil {
			return db.OutboxMessage{}, errors.New("self recovery: no base URL for the link")
		}
		return mail.Compose(mail.KindRecoveryDone, u.Email, map[string]any{
			"Workspace": ws.Name, "Email": u.Email, "When": mail.When(j.Store.Now()),
			"Link": workspaceURL(j.BaseURL, ws.Slug, "/account/mfa")})
	})
	if n > 0 {
		j.Log.Info("self-service recoveries", slog.Int("executed", n))
	}
	return n, err
}
