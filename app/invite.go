package app

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// handleInviteShow shows the form behind an invitation link. It changes
// nothing: mail scanners follow links.
func (s *Server) handleInviteShow(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	token := c.Param("token")
	if !wellFormedToken(token) {
		return s.render(c, http.StatusNotFound, views.InviteInvalidPage(s.page(c, "Invitation")))
	}
	inv, err := s.store.PendingInvitation(ctx, t.ID, s.keys.TokenHashes("invitation", token))
	if errors.Is(err, db.ErrNotFound) {
		return s.render(c, http.StatusNotFound, views.InviteInvalidPage(s.page(c, "Invitation")))
	} else if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.InvitePage(s.page(c, "Join"), views.InviteView{Email: inv.Email, Role: inv.Role, Token: token}))
}

// handleInviteAccept sets the password, spends the invitation and signs the
// new member in.
func (s *Server) handleInviteAccept(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	token := c.Param("token")
	invalid := func() error {
		return s.render(c, http.StatusNotFound, views.InviteInvalidPage(s.page(c, "Invitation")))
	}
	if !wellFormedToken(token) {
		return invalid()
	}
	hash := s.keys.TokenHashes("invitation", token)
	inv, err := s.store.PendingInvitation(ctx, t.ID, hash)
	if errors.Is(err, db.ErrNotFound) {
		return invalid()
	} else if err != nil {
		return err
	}
	pw, confirm := c.FormValue("password"), c.FormValue("confirm_password")
	errs := views.FieldErrors{}
	if err := auth.ValidatePassword(pw); err != nil {
		errs["password"] = err.Error()
	} else if pw != confirm {
		errs["confirm_password"] = "The two passwords don't match."
	}
	if len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.InvitePage(s.page(c, "Join"),
			views.InviteView{Email: inv.Email, Role: inv.Role, Token: token, Errors: errs}))
	}
	pwHash, err := s.hasher.Hash(ctx, pw)
	if errors.Is(err, auth.ErrBusy) {
		return errBusy()
	} else if err != nil {
		return err
	}
	u, err := s.store.AcceptInvitation(ctx, t.ID, hash, pwHash, meta(c))
	if errors.Is(err, db.ErrNotFound) || errors.Is(err, db.ErrConflict) {
		return invalid() // spent meanwhile by a concurrent request
	} else if err != nil {
		return err
	}
	if _, err := s.signIn(c, t, u, AAL1, "password"); err != nil {
		return err
	}
	// Invited while the requirement applies: enrollment is part of joining.
	// The invitation link proved the email, so this session may enroll at
	// once; until then it is confined to enrollment (the deadline is the
	// join time).
	if u, err = s.store.UserByID(ctx, t.ID, u.ID); err != nil {
		return err
	}
	e, err := s.enforcement(ctx, t.ID, u)
	if err != nil {
		return err
	}
	if e.Pending() {
		s.sessions.Put(ctx, keyEnrollOK, true)
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/enroll")
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account?notice=welcome")
}
