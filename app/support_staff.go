package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// Staff enrollment: `gatehouse staff create` prints a link
// /support/enroll/{token} (single use, 24 hours). Behind it a new staff
// member sets up an authenticator app before their first sign-in; no
// session exists until they sign in with it, at aal2. Scripts use the
// token with POST /support/api/v1/enroll/totp/setup and /verify.

// StaffEnrollmentTTL is how long a staff enrollment link works.
const StaffEnrollmentTTL = 24 * time.Hour

const staffEnrollPurpose = "staff_enrollment"

var errInvalidEnrollmentToken = errorf(http.StatusUnauthorized, "invalid_enrollment_token",
	"This enrollment link can't be used: it may have expired or been used already. Ask for a new one.")

// StaffEnrollmentHash is the stored hash of a staff enrollment token.
func StaffEnrollmentHash(kr interface {
	HashToken(purpose, token string) string
}, token string) string {
	return kr.HashToken(staffEnrollPurpose, token)
}

// staffByToken returns the staff member whose enrollment link token is.
func (s *Server) staffByToken(c echo.Context, token string) (db.User, error) {
	if !wellFormedToken(token) {
		return db.User{}, errInvalidEnrollmentToken
	}
	u, err := s.store.StaffEnrollment(c.Request().Context(), s.keys.TokenHashes(staffEnrollPurpose, token))
	if errors.Is(err, db.ErrEnrollmentLink) {
		return db.User{}, errInvalidEnrollmentToken
	}
	return u, err
}

// startStaffTOTP starts (or restarts) the staff member's authenticator app
// setup and returns its secret.
func (s *Server) startStaffTOTP(c echo.Context, u db.User) (string, error) {
	secret := mfa.NewSecret()
	seal := func(id int64) (string, []byte) { return s.keys.Encrypt([]byte(secret), totpAAD(id, u.ID)) }
	_, err := s.store.StartTOTPEnrollment(c.Request().Context(), u.WorkspaceID, u.ID, seal, s.now().Add(EnrollmentLifetime), meta(c))
	if errors.Is(err, db.ErrConflict) {
		return "", errAlreadyEnrolled
	}
	return secret, err
}

// confirmStaffTOTP turns the app on with its first code, spends the link
// and returns the new recovery codes.
func (s *Server) confirmStaffTOTP(c echo.Context, u db.User, token, code string) ([]string, error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cred, err := s.store.PendingTOTPEnrollment(ctx, u.WorkspaceID, u.ID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errorf(http.StatusBadRequest, "invalid_code", "This setup has expired. Start again.")
	} else if err != nil {
		return nil, err
	}
	secret, err := s.keys.Decrypt(cred.KeyID, cred.Secret, totpAAD(cred.ID, u.ID))
	if err != nil {
		return nil, fmt.Errorf("decrypt pending totp %d: %w", cred.ID, err)
	}
	wrong := errorf(http.StatusBadRequest, "invalid_code", "That code didn't work. Check the time on your phone and try the newest code.")
	code, ok := mfa.WellFormedCode(code)
	if !ok {
		return nil, wrong // cannot succeed, so not counted
	}
	// Counted before it is judged, like a member's confirmation code: the
	// link alone never buys more than the lock allows.
	if err := s.countGuess(c, t, u, ""); err != nil {
		return nil, err
	}
	// failed settles a wrong guess: the lock's answer when it locks,
	// else answer.
	failed := func(answer error) error {
		if err := s.guessFailed(c, t, u, "", "totp"); err != errInvalidCode {
			return err
		}
		return answer
	}
	step := mfa.Match(string(secret), code, s.now())
	if step == 0 {
		return nil, failed(wrong)
	}
	first, err := s.store.HasSecondFactor(ctx, u.WorkspaceID, u.ID)
	if err != nil {
		return nil, err
	}
	var codes, hashes []string
	if !first {
		codes = mfa.NewRecoveryCodes()
		for _, rc := range codes {
			hashes = append(hashes, s.keys.HashToken(recoveryPurpose(u), rc))
		}
	}
	msg, err := mail.Compose(mail.KindTOTPEnabled, u.Email, s.mailData(c, t, u))
	if err != nil {
		return nil, err
	}
	err = s.store.EnrollStaffTOTP(ctx, u, s.keys.TokenHashes(staffEnrollPurpose, token), cred.ID, step, hashes, meta(c), msg)
	if errors.Is(err, db.ErrEnrollmentLink) {
		return nil, errInvalidEnrollmentToken
	} else if errors.Is(err, db.ErrNotFound) {
		return nil, failed(errorf(http.StatusBadRequest, "invalid_code", "That code was already used. Wait for the next one."))
	} else if err != nil {
		return nil, err
	}
	// A right code takes its count back.
	if err := s.store.ReleaseMFAGuess(ctx, t.ID, u.ID, ""); err != nil {
		return nil, err
	}
	return codes, nil
}

// staffLinkPage runs a page handler of the enrollment link with the staff
// member it names; an unusable link gets the page's error, which says
// nothing about any account.
func (s *Server) staffLinkPage(h func(c echo.Context, u db.User, token string) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.Param("token")
		u, err := s.staffByToken(c, token)
		if e, status, ok := formError(c, err); ok {
			p := s.page(c, "Set up your second factor")
			return s.render(c, status, views.StaffEnrollPage(p, views.StaffEnrollView{Error: e.Message}))
		} else if err != nil {
			return err
		}
		return h(c, u, token)
	}
}

// handleStaffEnrollShow is the page behind the link: it changes nothing.
func (s *Server) handleStaffEnrollShow(c echo.Context) error {
	return s.staffLinkPage(func(c echo.Context, u db.User, token string) error {
		p := s.page(c, "Set up your second factor")
		return s.render(c, http.StatusOK, views.StaffEnrollPage(p, views.StaffEnrollView{Email: u.Email, Token: token}))
	})(c)
}

// handleStaffEnrollStart starts the authenticator app setup and shows it.
func (s *Server) handleStaffEnrollStart(c echo.Context) error {
	return s.staffLinkPage(func(c echo.Context, u db.User, token string) error {
		secret, err := s.startStaffTOTP(c, u)
		if errors.Is(err, errAlreadyEnrolled) {
			return c.Redirect(http.StatusSeeOther, tenants.FromContext(c.Request().Context()).Base+"/login")
		} else if err != nil {
			return err
		}
		return s.renderStaffTOTP(c, http.StatusOK, u, token, secret, "")
	})(c)
}

func (s *Server) renderStaffTOTP(c echo.Context, status int, u db.User, token, secret, msg string) error {
	t := tenants.FromContext(c.Request().Context())
	uri := mfa.URI(t.Name, u.Email, secret)
	png, err := mfa.QRCode(uri)
	if err != nil {
		return err
	}
	v := views.TOTPSetupView{
		QRDataURL: "data:image/png;base64," + base64.StdEncoding.EncodeToString(png),
		Secret:    mfa.GroupSecret(secret), Account: u.Email, Issuer: t.Name, Error: msg,
		ExpiresInMins: int(EnrollmentLifetime.Minutes()), Action: t.Base + "/enroll/" + token + "/totp",
	}
	return s.render(c, status, views.TOTPSetupPage(s.page(c, "Set up your authenticator app"), v))
}

// handleStaffEnrollTOTP checks the first code; then the recovery codes, and
// on to sign in.
func (s *Server) handleStaffEnrollTOTP(c echo.Context) error {
	return s.staffLinkPage(s.staffEnrollTOTP)(c)
}

func (s *Server) staffEnrollTOTP(c echo.Context, u db.User, token string) error {
	t := tenants.FromContext(c.Request().Context())
	p := s.page(c, "Set up your second factor")
	codes, err := s.confirmStaffTOTP(c, u, token, c.FormValue("code"))
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusBadRequest {
		cred, perr := s.store.PendingTOTPEnrollment(c.Request().Context(), u.WorkspaceID, u.ID)
		if perr != nil {
			return s.render(c, http.StatusUnprocessableEntity, views.StaffEnrollPage(p, views.StaffEnrollView{Email: u.Email, Token: token, Error: e.Message}))
		}
		secret, derr := s.keys.Decrypt(cred.KeyID, cred.Secret, totpAAD(cred.ID, u.ID))
		if derr != nil {
			return derr
		}
		return s.renderStaffTOTP(c, http.StatusUnprocessableEntity, u, token, string(secret), e.Message)
	} else if err != nil {
		return err
	}
	text := fmt.Sprintf("Recovery codes for %s (%s)\nEach code works once.\n\n%s\n", t.Name, u.Email, strings.Join(codes, "\n"))
	p = s.page(c, "Save your recovery codes")
	p.Notice = "Your authenticator app is set up. Save these codes, then sign in."
	return s.render(c, http.StatusOK, views.StaffEnrolledPage(p, views.RecoveryCodesView{Codes: codes, Text: text, Continue: t.Base + "/login"}))
}

type apiEnrollRequest struct {
	EnrollmentToken string `json:"enrollment_token"`
	Code            string `json:"code"`
}

// handleAPIStaffEnrollSetup is POST /support/api/v1/enroll/totp/setup.
func (s *Server) handleAPIStaffEnrollSetup(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	var req apiEnrollRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.staffByToken(c, req.EnrollmentToken)
	if err != nil {
		return err
	}
	secret, err := s.startStaffTOTP(c, u)
	if err != nil {
		return err
	}
	uri := mfa.URI(t.Name, u.Email, secret)
	png, err := mfa.QRCode(uri)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"secret": secret, "otpauth_uri": uri, "qr_code": "data:image/png;base64," + base64.StdEncoding.EncodeToString(png),
	})
}

// handleAPIStaffEnrollVerify is POST /support/api/v1/enroll/totp/verify.
func (s *Server) handleAPIStaffEnrollVerify(c echo.Context) error {
	var req apiEnrollRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.staffByToken(c, req.EnrollmentToken)
	if err != nil {
		return err
	}
	codes, err := s.confirmStaffTOTP(c, u, req.EnrollmentToken, req.Code)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"enabled": true, "recovery_codes": codes})
}

// Member search.

var errSearchEmail = errorf(http.StatusBadRequest, "invalid_email", "Enter the member's email address.")

const (
	supportSearchLimit  = 60 // searches per staff member and window
	supportSearchWindow = 10 * time.Minute
)

// searchMembers finds members by email across workspaces, rate limited per
// staff member and audited.
func (s *Server) searchMembers(c echo.Context, email string) ([]db.FoundMember, error) {
	ctx := c.Request().Context()
	a := authFrom(c)
	email = strings.TrimSpace(email)
	if !ValidEmail(email) {
		return nil, errSearchEmail
	}
	key := "support:search:" + fmt.Sprint(a.User.ID)
	if _, err := s.store.ThrottleTake(ctx, key, supportSearchWindow, supportSearchLimit); err != nil {
		return nil, s.throttled(err)
	}
	return s.store.SearchMembers(ctx, a.User.ID, email, meta(c))
}

// handleSupportMembers is the support console's member search page.
func (s *Server) handleSupportMembers(c echo.Context) error {
	p := s.page(c, "Find a member")
	v := views.SupportMembersView{Email: truncateRunes(strings.TrimSpace(c.QueryParam("email")), maxEmailLength)}
	if !c.QueryParams().Has("email") {
		return s.render(c, http.StatusOK, views.SupportMembersPage(p, v))
	}
	v.Searched = true
	found, err := s.searchMembers(c, v.Email)
	if e, status, ok := formError(c, err); ok {
		v.Error = e.Message
		return s.render(c, status, views.SupportMembersPage(p, v))
	} else if err != nil {
		return err
	}
	for _, m := range found {
		factors := "none"
		if len(m.Factors) > 0 {
			factors = methodNames(m.Factors)
		}
		v.Members = append(v.Members, views.SupportMemberRow{Workspace: m.WorkspaceSlug, WorkspaceName: m.WorkspaceName, ID: m.ID,
			Email: m.Email, Role: m.Role, Factors: factors, RecoveryLeft: m.RecoveryCodesRemaining})
	}
	return s.render(c, http.StatusOK, views.SupportMembersPage(p, v))
}

// handleAPISupportMembers is GET /support/api/v1/members?email=.
func (s *Server) handleAPISupportMembers(c echo.Context) error {
	found, err := s.searchMembers(c, c.QueryParam("email"))
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(found))
	for _, m := range found {
		out = append(out, map[string]any{"workspace": m.WorkspaceSlug, "id": m.ID, "email": m.Email, "role": m.Role,
			"factors": m.Factors, "recovery_codes_remaining": m.RecoveryCodesRemaining})
	}
	return c.JSON(http.StatusOK, map[string]any{"members": out})
}

// handleStaffEnrollKeyBegin starts registering a passkey or security key
// with the enrollment link (JSON, for the page's script).
func (s *Server) handleStaffEnrollKeyBegin(c echo.Context) error {
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.staffByToken(c, c.Param("token"))
	if err != nil {
		return err
	}
	id, options, err := s.beginRegistration(c, &Auth{User: u}, req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ceremony": id, "options": options})
}

// handleStaffEnrollKeyFinish stores the key and spends the link; the page
// shows the recovery codes and sends the staff member to sign in.
func (s *Server) handleStaffEnrollKeyFinish(c echo.Context) error {
	var req ceremonyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	token := c.Param("token")
	u, err := s.staffByToken(c, token)
	if err != nil {
		return err
	}
	hashes := s.keys.TokenHashes(staffEnrollPurpose, token)
	cred, codes, err := s.registerKey(c, u, db.SessionBinding{}, req.Ceremony, req.Credential,
		func(ctx context.Context, k db.WebAuthnCredential, rh []string, m db.Meta, msg db.OutboxMessage) (db.WebAuthnCredential, error) {
			return s.store.EnrollStaffKey(ctx, u, hashes, k, rh, m, msg)
		})
	if errors.Is(err, db.ErrEnrollmentLink) {
		return errInvalidEnrollmentToken
	} else if err != nil {
		return err
	}
	body := map[string]any{"id": cred.ID, "name": cred.Name, "synced": cred.Synced()}
	if codes != nil {
		body["recovery_codes"] = codes
	}
	return c.JSON(http.StatusOK, body)
}
