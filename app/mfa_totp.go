package app

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// EnrollmentLifetime is how long a started TOTP enrollment waits for its
// confirming code.
const EnrollmentLifetime = 15 * time.Minute

var errAlreadyEnrolled = errorf(http.StatusConflict, "already_enrolled", "An authenticator app is already set up. Remove it first to set up another.")

// upgradeSession records a second factor just passed in the current
// session: aal2 now, one more AMR entry, and a new token, bearer sessions
// too (the API answers it as session_token; the old one is dead).
func (s *Server) upgradeSession(c echo.Context, a *Auth, method string) error {
	ctx := c.Request().Context()
	now := s.now()
	a.AMR = append(a.AMR, AMR{Method: method, CompletedAt: now})
	amrJSON, _ := json.Marshal(a.AMR)
	a.AAL, a.AAL2At = AAL2, now
	s.sessions.Put(ctx, keyAAL, AAL2)
	s.sessions.Put(ctx, keyAAL2At, now.Unix())
	s.sessions.Put(ctx, keyAMR, string(amrJSON))
	if err := s.store.SetUserSessionAAL(ctx, a.User.WorkspaceID, a.Session.ID, AAL2); err != nil {
		return err
	}
	return s.rotateToken(c, a, -1)
}

// handleMFA shows the member's second factors.
func (s *Server) handleMFA(c echo.Context) error {
	p := s.page(c, "Two-step verification")
	p.Notice = notices[c.QueryParam("notice")]
	if c.QueryParam("notice") == "recovery_used" {
		if left, err := strconv.Atoi(c.QueryParam("left")); err == nil && left >= 0 && left <= mfa.RecoveryCodeCount {
			p.Notice = fmt.Sprintf("You signed in with a recovery code; %d left. If you lost your phone, remove the old authenticator and set up a new one.", left)
		}
	}
	return s.renderMFA(c, http.StatusOK, p, "")
}

func (s *Server) renderMFA(c echo.Context, status int, p views.Page, removeErr string) error {
	return s.renderMFAView(c, status, p, views.MFAView{RemoveError: removeErr})
}

// renderMFAView fills in the member's factors and renders the MFA page.
func (s *Server) renderMFAView(c echo.Context, status int, p views.Page, v views.MFAView) error {
	ctx := c.Request().Context()
	a := authFrom(c)
	v.Account = a.User.Email
	if err := s.fillKeys(c, a, &v); err != nil {
		return err
	}
	if err := s.fillSMS(c, a, &v); err != nil {
		return err
	}
	cred, err := s.store.TOTPCredential(ctx, a.User.WorkspaceID, a.User.ID)
	if err == nil {
		v.TOTPOn, v.TOTPCreated, v.TOTPLastUsed = true, cred.ConfirmedAt, cred.LastUsedAt
	} else if !errors.Is(err, db.ErrNotFound) {
		return err
	}
	if v.RecoveryRemaining, err = s.store.RecoveryCodesRemaining(ctx, a.User.WorkspaceID, a.User.ID); err != nil {
		return err
	}
	if (v.TOTPOn || len(v.Keys) > 0 || v.SMS.Phone != nil) && v.RecoveryRemaining <= 3 {
		v.Warning = fmt.Sprintf("Only %d recovery codes left. Make new ones so you can't get locked out.", v.RecoveryRemaining)
	}
	return s.render(c, status, views.MFAPage(p, v))
}

// fillKeys lists the member's keys on the MFA page, with what the WebAuthn
// Signal API needs: the RP ID, the user handle and the credential ids, and
// the key just removed (from the redirect after a removal).
func (s *Server) fillKeys(c echo.Context, a *Auth, v *views.MFAView) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	keys, err := s.store.WebAuthnCredentials(ctx, a.User.WorkspaceID, a.User.ID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		v.Keys = append(v.Keys, views.KeyRow{ID: k.ID, Name: k.Name, Synced: k.Synced(), Created: k.CreatedAt, LastUsed: k.LastUsedAt})
		v.CredentialIDs = append(v.CredentialIDs, b64url(k.CredentialID))
	}
	if removed := c.QueryParam("removed"); c.QueryParam("notice") == "key_removed" && removed != "" && len(removed) <= 1400 {
		if raw, err := base64.RawURLEncoding.DecodeString(removed); err == nil && len(raw) > 0 {
			v.Removed = b64url(raw)
		}
	}
	// A member who never had a key gets no handle (reading it makes one).
	if len(keys) == 0 && v.Removed == "" {
		return nil
	}
	handle, err := s.store.WebAuthnHandle(ctx, a.User.WorkspaceID, a.User.ID)
	if err != nil {
		return err
	}
	v.UserHandle = b64url(handle)
	v.RPID, _ = s.rpHost(t)
	return nil
}

// startTOTPEnrollment makes a new pending enrollment (replacing an
// unfinished one) and returns its secret. It belongs to this session and
// its last step-up: no other session sees or confirms it (SECURITY rule 12).
func (s *Server) startTOTPEnrollment(c echo.Context, a *Auth) (string, error) {
	secret := mfa.NewSecret()
	seal := func(id int64) (string, []byte) { return s.keys.Encrypt([]byte(secret), totpAAD(id, a.User.ID)) }
	_, err := s.store.StartSessionTOTPEnrollment(c.Request().Context(), a.User.WorkspaceID, a.User.ID, a.binding(), seal, s.now().Add(EnrollmentLifetime), meta(c))
	if errors.Is(err, db.ErrConflict) {
		return "", errAlreadyEnrolled
	}
	return secret, err
}

// pendingSecret decrypts the unfinished enrollment this session started
// (since its last step-up); ErrNotFound for anyone else's, as if there
// were none.
func (s *Server) pendingSecret(c echo.Context, a *Auth) (db.TOTPCredential, string, error) {
	cred, err := s.store.PendingSessionTOTPEnrollment(c.Request().Context(), a.User.WorkspaceID, a.User.ID, a.binding())
	if err != nil {
		return db.TOTPCredential{}, "", err
	}
	secret, err := s.keys.Decrypt(cred.KeyID, cred.Secret, totpAAD(cred.ID, a.User.ID))
	if err != nil {
		return db.TOTPCredential{}, "", fmt.Errorf("decrypt pending totp %d: %w", cred.ID, err)
	}
	return cred, string(secret), nil
}

// handleTOTPSetupStart starts an enrollment and shows it.
func (s *Server) handleTOTPSetupStart(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	if _, err := s.startTOTPEnrollment(c, a); errors.Is(err, errAlreadyEnrolled) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa")
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa/totp")
}

// handleTOTPSetupShow shows the QR code of the unfinished enrollment. Once
// confirmed, the secret is never shown again.
func (s *Server) handleTOTPSetupShow(c echo.Context) error {
	return s.renderTOTPSetup(c, http.StatusOK, "")
}

func (s *Server) renderTOTPSetup(c echo.Context, status int, msg string) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	cred, secret, err := s.pendingSecret(c, a)
	if errors.Is(err, db.ErrNotFound) {
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa")
	} else if err != nil {
		return err
	}
	uri := mfa.URI(t.Name, a.User.Email, secret)
	png, err := mfa.QRCode(uri)
	if err != nil {
		return err
	}
	v := views.TOTPSetupView{
		QRDataURL: "data:image/png;base64," + base64.StdEncoding.EncodeToString(png),
		Secret:    mfa.GroupSecret(secret), Account: a.User.Email, Issuer: t.Name, Error: msg,
		ExpiresInMins: max(1, int(cred.ExpiresAt.Sub(s.now()).Minutes())),
	}
	return s.render(c, status, views.TOTPSetupPage(s.page(c, "Set up your authenticator app"), v))
}

var errSetupGone = errorf(http.StatusBadRequest, "invalid_code", "This setup has expired. Start again.")

// confirmTOTP checks the first code against the unfinished enrollment this
// session started and turns it on; for a first second factor it returns the
// new recovery codes. The code is a guess like any other: counted against
// the member's second-factor lock before it is compared, refused unjudged
// while locked (SECURITY rule 11).
func (s *Server) confirmTOTP(c echo.Context, a *Auth, code string) ([]string, error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cred, secret, err := s.pendingSecret(c, a)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errSetupGone
	} else if err != nil {
		return nil, err
	}
	wrong := func(err error) error {
		if err == errInvalidCode {
			return errorf(http.StatusBadRequest, "invalid_code", "That code didn't work. Check the time on your phone and try the newest code.")
		}
		return err
	}
	code, ok := mfa.WellFormedCode(code)
	if !ok {
		// Cannot succeed, so not counted.
		return nil, wrong(errInvalidCode)
	}
	if err := s.countGuess(c, t, a.User, ""); err != nil {
		return nil, err
	}
	step := mfa.Match(secret, code, s.now())
	if step == 0 {
		return nil, wrong(s.guessFailed(c, t, a.User, "", "totp"))
	}
	first, err := s.store.HasSecondFactor(ctx, t.ID, a.User.ID)
	if err != nil {
		return nil, err
	}
	var codes, hashes []string
	if !first {
		codes = mfa.NewRecoveryCodes()
		for _, rc := range codes {
			hashes = append(hashes, s.keys.HashToken(recoveryPurpose(a.User), rc))
		}
	}
	msg, err := mail.Compose(mail.KindTOTPEnabled, a.User.Email, s.mailData(c, t, a.User))
	if err != nil {
		return nil, err
	}
	err = s.store.ConfirmCountedTOTPEnrollment(ctx, t.ID, a.User.ID, cred.ID, step, a.binding(), hashes, meta(c), msg)
	switch {
	case errors.Is(err, db.ErrNotFound):
		// The step was used (a replay, or a concurrent confirmation with the
		// same code) or the setup was replaced meanwhile: a wrong guess.
		if err := s.guessFailed(c, t, a.User, "", "totp"); err != errInvalidCode {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "invalid_code", "That code was already used. Wait for the next one.")
	case errors.Is(err, db.ErrMFALocked):
		return nil, s.lockedError(c, t, a.User)
	case err != nil:
		return nil, err
	}
	// Confirming proves the factor: the session is aal2 from now on, under
	// a new token (API too: the handler returns it).
	if err := s.upgradeSession(c, a, "totp"); err != nil {
		return nil, err
	}
	return codes, nil
}

// handleTOTPSetupConfirm turns the authenticator app on with its first code.
func (s *Server) handleTOTPSetupConfirm(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	codes, err := s.confirmTOTP(c, authFrom(c), c.FormValue("code"))
	if e, status, ok := formError(c, err); ok {
		// A wrong code, or too many (429 with Retry-After): the setup page
		// again, unless there is none for this session.
		return s.renderTOTPSetup(c, status, e.Message)
	} else if err != nil {
		return err
	}
	if codes == nil {
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa?notice=totp_enabled")
	}
	return s.renderRecoveryCodes(c, codes, "Two-step verification is on")
}

func (s *Server) renderRecoveryCodes(c echo.Context, codes []string, title string) error {
	t := tenants.FromContext(c.Request().Context())
	text := fmt.Sprintf("Recovery codes for %s (%s)\nEach code works once.\n\n%s\n", t.Name, authFrom(c).User.Email, strings.Join(codes, "\n"))
	p := s.page(c, "Save your recovery codes")
	p.Notice = title
	return s.render(c, http.StatusOK, views.RecoveryCodesPage(p, views.RecoveryCodesView{Codes: codes, Text: text, Continue: t.Base + "/account/mfa"}))
}

// removeTOTP removes the authenticator app after checking a current code
// from it (consumed, so it cannot be replayed).
func (s *Server) removeTOTP(c echo.Context, a *Auth, code string) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	if _, err := s.store.TOTPCredential(ctx, t.ID, a.User.ID); errors.Is(err, db.ErrNotFound) {
		return errNotFound
	} else if err != nil {
		return err
	}
	if err := s.checkRemoval(c, a.User, db.MethodTOTP, 0); err != nil {
		return err
	}
	use, err := s.checkFactor(c, t, a.User, "", factorInput{Code: code})
	if err != nil {
		return err
	}
	if err := s.store.ConsumeFactor(ctx, t.ID, a.User.ID, use); errors.Is(err, db.ErrNotFound) {
		return s.spendRefused(c, t, a.User, "", use)
	} else if errors.Is(err, db.ErrMFALocked) {
		return s.lockedError(c, t, a.User)
	} else if err != nil {
		return err
	}
	msg, err := mail.Compose(mail.KindTOTPRemoved, a.User.Email, s.mailData(c, t, a.User))
	if err != nil {
		return err
	}
	epoch, err := s.store.RemoveTOTP(ctx, t.ID, a.User.ID, a.Session.ID, meta(c), msg)
	if err != nil {
		return removalError(err)
	}
	if a.Bearer {
		s.sessions.Put(ctx, keyEpoch, epoch)
		return nil
	}
	return s.rotateToken(c, a, epoch)
}

// handleTOTPRemove removes the authenticator app (step-up and a current
// code required).
func (s *Server) handleTOTPRemove(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	err := s.removeTOTP(c, a, c.FormValue("remove_code"))
	if e, status, ok := formError(c, err); ok && e != errNotFound {
		return s.renderMFA(c, status, s.page(c, "Two-step verification"), e.Message)
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa?notice=totp_removed")
}

// regenerateRecoveryCodes replaces every code; the old ones die.
func (s *Server) regenerateRecoveryCodes(c echo.Context, a *Auth) ([]string, error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	codes := mfa.NewRecoveryCodes()
	hashes := make([]string, len(codes))
	for i, rc := range codes {
		hashes[i] = s.keys.HashToken(recoveryPurpose(a.User), rc)
	}
	msg, err := mail.Compose(mail.KindRecoveryRegen, a.User.Email, s.mailData(c, t, a.User))
	if err != nil {
		return nil, err
	}
	if err := s.store.RegenerateRecoveryCodes(ctx, t.ID, a.User.ID, hashes, meta(c), msg); errors.Is(err, db.ErrNotFound) {
		return nil, errorf(http.StatusConflict, "mfa_not_enabled", "Recovery codes exist only while two-step verification is on.")
	} else if err != nil {
		return nil, err
	}
	return codes, nil
}

// handleRecoveryCodesRegenerate makes new recovery codes (step-up).
func (s *Server) handleRecoveryCodesRegenerate(c echo.Context) error {
	a := authFrom(c)
	codes, err := s.regenerateRecoveryCodes(c, a)
	if err != nil {
		return err
	}
	return s.renderRecoveryCodes(c, codes, "New recovery codes made; the old ones no longer work")
}

// stepUp re-verifies the signed-in member with a second factor.
func (s *Server) stepUp(c echo.Context, a *Auth, in factorInput) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	use, err := s.checkFactor(c, t, a.User, "", in)
	if err != nil {
		return err
	}
	var msg db.OutboxMessage
	if use.Method == "recovery_code" {
		if msg, err = s.recoveryUsedMail(c, t, a.User); err != nil {
			return err
		}
	}
	if _, err := s.store.StepUp(ctx, t.ID, a.User.ID, use, meta(c), msg); errors.Is(err, db.ErrNotFound) {
		return s.spendRefused(c, t, a.User, "", use)
	} else if errors.Is(err, db.ErrMFALocked) {
		return s.lockedError(c, t, a.User)
	} else if err != nil {
		return err
	}
	return s.upgradeSession(c, a, use.Method)
}

// handleStepUpShow asks for a second factor before a security change.
func (s *Server) handleStepUpShow(c echo.Context) error {
	a := authFrom(c)
	if has, err := s.store.HasSecondFactor(c.Request().Context(), a.User.WorkspaceID, a.User.ID); err != nil {
		return err
	} else if !has {
		// Nothing to confirm with: set one up first (admins need one).
		t := tenants.FromContext(c.Request().Context())
		return c.Redirect(http.StatusSeeOther, t.Base+"/account/mfa?notice=enroll_first")
	}
	v := views.StepUpView{Next: c.QueryParam("next"), Recovery: c.QueryParam("method") == "recovery", SMS: c.QueryParam("method") == "sms"}
	if err := s.stepUpMethods(c, &v); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.StepUpPage(s.page(c, "Confirm it's you"), v))
}

// handleStepUpCheck checks it and goes back to where the member was.
func (s *Server) handleStepUpCheck(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	in := factorInput{Code: c.FormValue("code"), RecoveryCode: c.FormValue("recovery_code"), SMSCode: c.FormValue("sms_code")}
	v := views.StepUpView{Next: c.FormValue("next"), Recovery: c.Request().PostForm.Has("recovery_code"), SMS: c.Request().PostForm.Has("sms_code")}
	err := s.stepUp(c, authFrom(c), in)
	if e, status, ok := formError(c, err); ok {
		v.Error = factorMessage(e, in)
		if err := s.stepUpMethods(c, &v); err != nil {
			return err
		}
		return s.render(c, status, views.StepUpPage(s.page(c, "Confirm it's you"), v))
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, s.safeNext(t, v.Next))
}

// stepUpMethods says which second factors the step-up page offers.
func (s *Server) stepUpMethods(c echo.Context, v *views.StepUpView) error {
	methods, err := s.methods(c, authFrom(c).User)
	if err != nil {
		return err
	}
	for _, m := range methods {
		switch m {
		case "webauthn":
			v.HasKey = true
		case "totp":
			v.HasTOTP = true
		case "recovery_code":
			v.HasRecovery = true
		}
	}
	phone, usable, err := s.usablePhone(c, authFrom(c).User)
	if err != nil {
		return err
	}
	v.HasSMS, v.SMSPhone, v.SMSResendIn = usable, phone.Masked, s.smsResendIn(c)
	return nil
}
