package app

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

type ceremonyRequest struct {
	Name       string          `json:"name"`
	MFAToken   string          `json:"mfa_token"`
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
}

// methods lists the second factors a member can use, most convenient first.
func (s *Server) methods(c echo.Context, u db.User) ([]string, error) {
	ctx := c.Request().Context()
	var out []string
	keys, err := s.store.WebAuthnCredentials(ctx, u.WorkspaceID, u.ID)
	if err != nil {
		return nil, err
	}
	if len(keys) > 0 {
		out = append(out, "webauthn")
	}
	if _, err := s.store.TOTPCredential(ctx, u.WorkspaceID, u.ID); err == nil {
		out = append(out, "totp")
	} else if !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	if _, err := s.store.SMSPhone(ctx, u.WorkspaceID, u.ID); err == nil {
		out = append(out, db.MethodSMS)
	} else if !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	if n, err := s.store.RecoveryCodesRemaining(ctx, u.WorkspaceID, u.ID); err != nil {
		return nil, err
	} else if n > 0 {
		out = append(out, "recovery_code")
	}
	return out, nil
}

// registerBegin answers both the page and the API: POST .../register/begin.
func (s *Server) handleWebAuthnRegisterBegin(c echo.Context) error {
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	id, options, err := s.beginRegistration(c, authFrom(c), req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ceremony": id, "options": options})
}

// handleWebAuthnRegisterFinish is POST .../register/finish.
func (s *Server) handleWebAuthnRegisterFinish(c echo.Context) error {
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	cred, codes, err := s.finishRegistration(c, authFrom(c), req.Ceremony, req.Credential)
	if err != nil {
		return err
	}
	body := map[string]any{"id": cred.ID, "name": cred.Name, "synced": cred.Synced()}
	if codes != nil {
		body["recovery_codes"] = codes
	}
	if authFrom(c).Bearer {
		// The session is now aal2 under a new token: the old one is dead.
		if body["session_token"], err = s.commitToken(c); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, body)
}

// handleAPIWebAuthnDelete is DELETE /mfa/webauthn/{id}.
func (s *Server) handleAPIWebAuthnDelete(c echo.Context) error {
	a := authFrom(c)
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return errNotFound
	}
	if _, err := s.removeKey(c, a, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handleWebAuthnRemove removes a key from the portal.
func (s *Server) handleWebAuthnRemove(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return errNotFound
	}
	removed, err := s.removeKey(c, authFrom(c), id)
	if err != nil {
		return err
	}
	// The page tells the browser's password manager the key is gone
	// (WebAuthn Signal API), with its credential id.
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa?notice=key_removed&removed="+b64url(removed.CredentialID))
}

// removeKey removes one of the member's keys and returns it. Whether the
// policy still needs it (errFactorRequired, 409) is decided in the
// removal's transaction, so two removals racing for the member's last two
// allowed factors cannot both pass.
func (s *Server) removeKey(c echo.Context, a *Auth, id int64) (db.WebAuthnCredential, error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	creds, err := s.store.WebAuthnCredentials(ctx, t.ID, a.User.ID)
	if err != nil {
		return db.WebAuthnCredential{}, err
	}
	name := ""
	for _, cr := range creds {
		if cr.ID == id {
			name = cr.Name
		}
	}
	if name == "" {
		return db.WebAuthnCredential{}, errNotFound
	}
	data := s.mailData(c, t, a.User)
	data["Name"] = name
	msg, err := mail.Compose(mail.KindWebAuthnRemoved, a.User.Email, data)
	if err != nil {
		return db.WebAuthnCredential{}, err
	}
	epoch, removed, err := s.store.RemoveWebAuthnKey(ctx, t.ID, a.User.ID, id, a.Session.ID, meta(c), msg)
	if err != nil {
		return db.WebAuthnCredential{}, removalError(err)
	}
	if a.Bearer {
		s.sessions.Put(ctx, keyEpoch, epoch)
		return removed, nil
	}
	return removed, s.rotateToken(c, a, epoch)
}

// handleWebAuthnRename renames a key from the portal.
func (s *Server) handleWebAuthnRename(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return errNotFound
	}
	name, ok := validKeyName(c.FormValue("name"))
	if !ok {
		return s.renderMFAView(c, http.StatusUnprocessableEntity, s.page(c, "Two-step verification"), views.MFAView{KeyError: "Give the key a name of at most 64 characters."})
	}
	if err := s.store.RenameWebAuthnCredential(c.Request().Context(), t.ID, a.User.ID, id, name, meta(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa?notice=key_renamed")
}

// handleChallengeWebAuthnBegin starts a key assertion on the challenge page.
func (s *Server) handleChallengeWebAuthnBegin(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	ch, u, err := s.pendingChallenge(c.Request().Context(), t)
	if errors.Is(err, db.ErrChallengeGone) {
		return errInvalidMFAToken
	} else if err != nil {
		return err
	}
	id, options, err := s.beginSecondFactor(c, t, u, ch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ceremony": id, "options": options})
}

// handleChallengeWebAuthnFinish checks it and signs the member in.
func (s *Server) handleChallengeWebAuthnFinish(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ch, u, err := s.pendingChallenge(c.Request().Context(), t)
	if errors.Is(err, db.ErrChallengeGone) {
		return errInvalidMFAToken
	} else if err != nil {
		return err
	}
	if err := s.inOneWrite(c, func() error {
		_, err := s.finishSecondFactor(c, t, u, ch, req.Ceremony, req.Credential)
		return err
	}); err != nil {
		return err
	}
	target, err := s.afterSignIn(c, t, u, s.safeNext(t, c.QueryParam("next")))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"redirect": target})
}

// handlePasskeyBegin starts a passwordless sign-in (the sign-in page, and
// the API's POST /login/webauthn/begin without an mfa_token).
func (s *Server) handlePasskeyBegin(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	id, options, err := s.beginPasswordless(c, t)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ceremony": id, "options": options})
}

// handlePasskeyFinish signs the member in with a passkey (or opens a
// challenge when the workspace wants a second factor on top).
func (s *Server) handlePasskeyFinish(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var a *Auth
	var challenged bool
	if err := s.inOneWrite(c, func() (err error) {
		a, challenged, err = s.finishPasswordless(c, req.Ceremony, req.Credential)
		return err
	}); err != nil {
		return err
	}
	next := c.QueryParam("next")
	if challenged {
		return c.JSON(http.StatusOK, map[string]any{"redirect": t.Base + "/login/mfa?next=" + urlQueryEscape(next)})
	}
	target, err := s.afterSignIn(c, t, a.User, s.safeNext(t, next))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"redirect": target})
}

// handleAPIWebAuthnLoginBegin is POST /login/webauthn/begin: with an
// mfa_token, the second step; without, a passwordless sign-in.
func (s *Server) handleAPIWebAuthnLoginBegin(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.MFAToken == "" {
		return s.handlePasskeyBegin(c)
	}
	// The pending sign-in and the keys read, the ceremony saved: one
	// write transaction.
	var id string
	var options *protocol.CredentialAssertion
	if err := s.inOneWrite(c, func() error {
		ch, u, cancel, err := s.loadMFAToken(c, t, req.MFAToken, false)
		if err != nil {
			return err
		}
		defer cancel()
		id, options, err = s.beginSecondFactor(c, t, u, ch)
		return err
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ceremony": id, "options": options})
}

// handleAPIWebAuthnLoginFinish is POST /login/webauthn/finish.
func (s *Server) handleAPIWebAuthnLoginFinish(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var a *Auth
	if req.MFAToken != "" {
		var token string
		// The pending sign-in read, the assertion's check, the challenge
		// passed and the new session saved: one write transaction.
		if err := s.inOneWrite(c, func() error {
			ch, u, cancel, err := s.loadMFAToken(c, t, req.MFAToken, false)
			if err != nil {
				return err
			}
			defer cancel()
			if a, err = s.finishSecondFactor(c, t, u, ch, req.Ceremony, req.Credential); err != nil {
				return err
			}
			token, err = s.commitToken(c)
			return err
		}); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"session_token": token, "aal": a.AAL, "amr": amrJSON(a.AMR)})
	}
	var challenged bool
	var token string
	if err := s.inOneWrite(c, func() (err error) {
		if a, challenged, err = s.finishPasswordless(c, req.Ceremony, req.Credential); err != nil {
			return err
		}
		token, err = s.commitToken(c)
		return err
	}); err != nil {
		return err
	}
	if challenged {
		return c.JSON(http.StatusOK, map[string]any{"mfa_required": true, "mfa_token": token, "methods": s.challengeMethods(c, t)})
	}
	return c.JSON(http.StatusOK, map[string]any{"session_token": token, "aal": a.AAL, "amr": amrJSON(a.AMR)})
}

// challengeMethods lists the methods of the member of the session's open
// challenge.
func (s *Server) challengeMethods(c echo.Context, t *tenants.Tenant) []string {
	ch, u, err := s.pendingChallenge(c.Request().Context(), t)
	if err != nil {
		return nil
	}
	return s.methodsFor(c, u, ch)
}

// methodsFor lists the methods that can pass a challenge: after a passkey,
// keys are not offered again.
func (s *Server) methodsFor(c echo.Context, u db.User, ch db.Challenge) []string {
	all, _ := s.methods(c, u)
	if ch.FirstMethod != "passkey" {
		return all
	}
	var out []string
	for _, m := range all {
		if m != "webauthn" {
			out = append(out, m)
		}
	}
	return out
}

// handleStepUpWebAuthnBegin starts a key assertion to re-verify a
// signed-in member (step-up with a passkey or security key).
func (s *Server) handleStepUpWebAuthnBegin(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	w, err := s.relyingParty(t)
	if err != nil {
		return err
	}
	user, err := s.loadWAUser(c, a.User)
	if err != nil {
		return err
	}
	if len(user.creds) == 0 {
		return errorf(http.StatusBadRequest, "no_credentials", "No passkey or security key is registered for this account.")
	}
	assertion, sd, err := w.BeginLogin(user, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return err
	}
	id, err := s.saveCeremony(c, t, db.CeremonyStepUp, a.User.ID, "", "", a.binding(), sd)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ceremony": id, "options": assertion})
}

// handleStepUpWebAuthnFinish checks the assertion and marks the session
// freshly verified. On the API the rotated session token is returned.
func (s *Server) handleStepUpWebAuthnFinish(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	_, sd, err := s.useCeremony(c, t, req.Ceremony, db.CeremonyStepUp, a.User.ID, a.binding())
	if err != nil {
		return err
	}
	user, err := s.loadWAUser(c, a.User)
	if err != nil {
		return err
	}
	use, err := s.checkAssertion(c, t, user, sd, "", req.Credential, false)
	if err != nil {
		return err
	}
	if _, err := s.store.StepUp(ctx, t.ID, a.User.ID, use, meta(c), db.OutboxMessage{}); errors.Is(err, db.ErrNotFound) {
		return s.assertionRaced(c, t, a.User)
	} else if errors.Is(err, db.ErrMFALocked) {
		return s.lockedError(c, t, a.User)
	} else if err != nil {
		return err
	}
	if err := s.upgradeSession(c, a, "webauthn"); err != nil {
		return err
	}
	if a.Bearer {
		token, err := s.commitToken(c)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"session_token": token, "aal": a.AAL, "amr": amrJSON(a.AMR)})
	}
	return c.JSON(http.StatusOK, map[string]any{"redirect": s.safeNext(t, c.QueryParam("next"))})
}
