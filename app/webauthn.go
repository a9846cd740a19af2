package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// PasswordlessBeginLimit bounds the passwordless ceremonies one client IP
// starts in the throttle window (15 minutes). The sign-in page starts one
// per load for autofill, so the bound is sized for an office of thousands
// behind one address; each ceremony is one small row, deleted when it
// expires.
const PasswordlessBeginLimit = 1000

// CeremonyLifetime is how long a WebAuthn ceremony (its challenge) lives.
const CeremonyLifetime = 5 * time.Minute

var (
	errInvalidCredential = errorf(http.StatusUnauthorized, "invalid_credential", "That passkey or security key wasn't accepted. Try again, or use another method.")
	errBadRegistration   = errorf(http.StatusBadRequest, "invalid_credential", "That key couldn't be added. Try again.")
	errCeremonyGone      = errorf(http.StatusBadRequest, "invalid_credential", "This request expired. Try again.")
	errSyncedNoLonger    = errorf(http.StatusUnauthorized, "invalid_credential", "This workspace no longer accepts synced passkeys. Use a security key or another method, and remove the passkey from your account.")
	errSyncedRefused     = errorf(http.StatusBadRequest, "invalid_credential", "This workspace accepts only device-bound security keys, not synced passkeys.")
	// A passkey that stood for the password cannot also be the second
	// factor: that would be one authenticator counted twice.
	errKeyTwice   = errorf(http.StatusBadRequest, "method_not_allowed", "You signed in with a passkey: use a code from your authenticator app or a recovery code for the second step.")
	errNoWebAuthn = errorf(http.StatusServiceUnavailable, "webauthn_unavailable", "Passkeys can't be used at this address.")
	// With "passkeys satisfy MFA" off, the second step after a passkey
	// needs an authenticator app.
	errPasskeyNotEnough = errorf(http.StatusUnauthorized, "second_factor_required", "This workspace asks for a second step after a passkey. Sign in with your password, then use your key.")
)

// relyingParties caches one go-webauthn relying party per workspace.
type relyingParties struct {
	mu sync.Mutex
	m  map[string]*webauthn.WebAuthn
}

// rpHost returns the workspace's RP ID and origin: {slug}.{base domain}
// when a base domain is set, else (and for the support console, which is
// only on the main host) the base URL's host; the origin keeps the
// base URL's scheme and port. Hosts come from configuration, never from the
// request's Host header.
func (s *Server) rpHost(t *tenants.Tenant) (rpID, origin string) {
	u := s.cfg.BaseURL
	if s.cfg.BaseDomain != "" && !t.Support {
		rpID = t.Slug + "." + s.cfg.BaseDomain
		origin = u.Scheme + "://" + rpID
		if p := u.Port(); p != "" {
			origin += ":" + p
		}
		return rpID, origin
	}
	return u.Hostname(), u.Scheme + "://" + u.Host
}

// relyingParty returns the workspace's WebAuthn relying party.
func (s *Server) relyingParty(t *tenants.Tenant) (*webauthn.WebAuthn, error) {
	rpID, origin := s.rpHost(t)
	key := t.Slug + "\x00" + t.Name + "\x00" + rpID
	s.rps.mu.Lock()
	defer s.rps.mu.Unlock()
	if w, ok := s.rps.m[key]; ok {
		return w, nil
	}
	timeout := webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyLifetime, TimeoutUVD: CeremonyLifetime}
	w, err := webauthn.New(&webauthn.Config{
		RPID:                  rpID,
		RPDisplayName:         t.Name,
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		s.log.Error("webauthn relying party", slog.String("rp_id", rpID), slog.Any("err", err))
		return nil, errNoWebAuthn
	}
	if s.rps.m == nil {
		s.rps.m = map[string]*webauthn.WebAuthn{}
	}
	s.rps.m[key] = w
	return w, nil
}

// waUser adapts a member to go-webauthn.
type waUser struct {
	u      db.User
	handle []byte
	creds  []db.WebAuthnCredential
}

func (w *waUser) WebAuthnID() []byte          { return w.handle }
func (w *waUser) WebAuthnName() string        { return w.u.Email }
func (w *waUser) WebAuthnDisplayName() string { return w.u.Email }
func (w *waUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(w.creds))
	for i, c := range w.creds {
		transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
		for j, t := range c.Transports {
			transports[j] = protocol.AuthenticatorTransport(t)
		}
		out[i] = webauthn.Credential{
			ID: c.CredentialID, PublicKey: c.PublicKey, AttestationType: c.AttestationType, AttestationFormat: c.AttestationFormat,
			Transport:     transports,
			Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: c.UserVerified, BackupEligible: c.BackupEligible, BackupState: c.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount},
		}
	}
	return out
}

func (w *waUser) descriptors() []protocol.CredentialDescriptor {
	var out []protocol.CredentialDescriptor
	for _, c := range w.WebAuthnCredentials() {
		out = append(out, c.Descriptor())
	}
	return out
}

func (w *waUser) byCredentialID(id []byte) (db.WebAuthnCredential, bool) {
	for _, c := range w.creds {
		if string(c.CredentialID) == string(id) {
			return c, true
		}
	}
	return db.WebAuthnCredential{}, false
}

// loadWAUser loads a member with their handle and keys.
func (s *Server) loadWAUser(c echo.Context, u db.User) (*waUser, error) {
	ctx := c.Request().Context()
	h, err := s.store.WebAuthnHandle(ctx, u.WorkspaceID, u.ID)
	if err != nil {
		return nil, err
	}
	creds, err := s.store.WebAuthnCredentials(ctx, u.WorkspaceID, u.ID)
	if err != nil {
		return nil, err
	}
	return &waUser{u: u, handle: h, creds: creds}, nil
}

// saveCeremony stores a ceremony's state under a new random handle; b is
// the session that begins it (registration and step-up), zero otherwise.
func (s *Server) saveCeremony(c echo.Context, t *tenants.Tenant, kind string, userID int64, challengeID, name string, b db.SessionBinding, sd *webauthn.SessionData) (string, error) {
	raw, err := json.Marshal(sd)
	if err != nil {
		return "", err
	}
	id := auth.NewToken()
	err = s.store.CreateCeremony(c.Request().Context(), db.Ceremony{
		ID: id, WorkspaceID: t.ID, UserID: userID, Kind: kind, ChallengeID: challengeID, Name: name,
		SessionData: string(raw), ExpiresAt: s.now().Add(CeremonyLifetime), Binding: b,
	})
	return id, err
}

// useCeremony spends a ceremony: it works once, whatever the outcome. One
// that a session began (b) is only this session's to spend: for another
// it does not exist, and it stays for the one that began it.
func (s *Server) useCeremony(c echo.Context, t *tenants.Tenant, id, kind string, userID int64, b db.SessionBinding) (db.Ceremony, webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if id == "" || len(id) > 64 {
		return db.Ceremony{}, sd, errCeremonyGone
	}
	cer, err := s.store.UseSessionCeremony(c.Request().Context(), t.ID, id, kind, userID, b)
	if errors.Is(err, db.ErrCeremonyGone) {
		return db.Ceremony{}, sd, errCeremonyGone
	} else if err != nil {
		return db.Ceremony{}, sd, err
	}
	if err := json.Unmarshal([]byte(cer.SessionData), &sd); err != nil {
		return db.Ceremony{}, sd, err
	}
	return cer, sd, nil
}

// validKeyName checks a key's name: 1 to 64 printable characters.
func validKeyName(name string) (string, bool) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "Passkey"
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 64 || strings.ContainsAny(name, "\x00\r\n\t") {
		return "", false
	}
	return name, true
}

// beginRegistration starts adding a key for the signed-in member.
func (s *Server) beginRegistration(c echo.Context, a *Auth, name string) (string, *protocol.CredentialCreation, error) {
	t := tenants.FromContext(c.Request().Context())
	name, ok := validKeyName(name)
	if !ok {
		return "", nil, errorf(http.StatusBadRequest, "invalid_name", "Give the key a name of at most 64 characters.")
	}
	w, err := s.relyingParty(t)
	if err != nil {
		return "", nil, err
	}
	user, err := s.loadWAUser(c, a.User)
	if err != nil {
		return "", nil, err
	}
	creation, sd, err := w.BeginRegistration(user,
		webauthn.WithExclusions(user.descriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementPreferred),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
	if err != nil {
		return "", nil, err
	}
	id, err := s.saveCeremony(c, t, db.CeremonyRegister, a.User.ID, "", name, a.binding(), sd)
	return id, creation, err
}

// finishRegistration verifies the new key and stores it. For the member's
// first second factor it returns new recovery codes.
func (s *Server) finishRegistration(c echo.Context, a *Auth, ceremony string, credential json.RawMessage) (db.WebAuthnCredential, []string, error) {
	stored, codes, err := s.registerKey(c, a.User, a.binding(), ceremony, credential, s.store.AddWebAuthnCredential)
	if err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	// Binding the key proved it is in the member's hands: aal2 from now on,
	// under a new token (API too: the handler returns it).
	if err := s.upgradeSession(c, a, "webauthn"); err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	return stored, codes, nil
}

// saveKey stores a verified key with its recovery codes, audit and notice
// in one transaction (db.Store.AddWebAuthnCredential, or the staff
// enrollment's variant that also spends the link).
type saveKey func(ctx context.Context, c db.WebAuthnCredential, recoveryHashes []string, meta db.Meta, msg db.OutboxMessage) (db.WebAuthnCredential, error)

// registerKey verifies a new key of member u (the registration ceremony
// they began in the session of b) and stores it with save, with new
// recovery codes for a first second factor. It touches no session: staff
// enrollment has none (b is zero).
func (s *Server) registerKey(c echo.Context, u db.User, b db.SessionBinding, ceremony string, credential json.RawMessage, save saveKey) (db.WebAuthnCredential, []string, error) {
	a := &Auth{User: u}
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cer, sd, err := s.useCeremony(c, t, ceremony, db.CeremonyRegister, a.User.ID, b)
	if err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	w, err := s.relyingParty(t)
	if err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	user, err := s.loadWAUser(c, a.User)
	if err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credential)
	if err != nil {
		return db.WebAuthnCredential{}, nil, errBadRegistration
	}
	cred, err := w.CreateCredential(user, sd, parsed)
	if err != nil {
		s.logger(c).Info("webauthn registration refused", slog.Int64("user_id", a.User.ID), slog.String("reason", err.Error()))
		return db.WebAuthnCredential{}, nil, errBadRegistration
	}
	settings, err := s.store.PasskeySettings(ctx, t.ID)
	if err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	if settings.DeviceBoundOnly && cred.Flags.BackupEligible {
		return db.WebAuthnCredential{}, nil, errSyncedRefused
	}
	first, err := s.store.HasSecondFactor(ctx, t.ID, a.User.ID)
	if err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	var codes, hashes []string
	if !first {
		codes = mfa.NewRecoveryCodes()
		for _, rc := range codes {
			hashes = append(hashes, s.keys.HashToken(recoveryPurpose(a.User), rc))
		}
	}
	transports := make([]string, len(cred.Transport))
	for i, tr := range cred.Transport {
		transports[i] = string(tr)
	}
	data := s.mailData(c, t, a.User)
	data["Name"] = cer.Name
	msg, err := mail.Compose(mail.KindWebAuthnAdded, a.User.Email, data)
	if err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	stored, err := save(ctx, db.WebAuthnCredential{
		WorkspaceID: t.ID, UserID: a.User.ID, Name: cer.Name, CredentialID: cred.ID, PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID, Transports: transports,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState, UserVerified: cred.Flags.UserVerified,
		AttestationFormat: cred.AttestationFormat, AttestationType: cred.AttestationType,
	}, hashes, meta(c), msg)
	if errors.Is(err, db.ErrConflict) {
		return db.WebAuthnCredential{}, nil, errorf(http.StatusConflict, "already_registered", "This key is already registered.")
	} else if err != nil {
		return db.WebAuthnCredential{}, nil, err
	}
	return stored, codes, nil
}

// beginSecondFactor starts a key assertion for the member of a challenge.
func (s *Server) beginSecondFactor(c echo.Context, t *tenants.Tenant, u db.User, ch db.Challenge) (string, *protocol.CredentialAssertion, error) {
	if ch.FirstMethod == "passkey" {
		return "", nil, errKeyTwice
	}
	w, err := s.relyingParty(t)
	if err != nil {
		return "", nil, err
	}
	user, err := s.loadWAUser(c, u)
	if err != nil {
		return "", nil, err
	}
	if len(user.creds) == 0 {
		return "", nil, errorf(http.StatusBadRequest, "no_credentials", "No passkey or security key is registered for this account.")
	}
	assertion, sd, err := w.BeginLogin(user, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return "", nil, err
	}
	id, err := s.saveCeremony(c, t, db.CeremonySecondFactor, u.ID, ch.ID, "", db.SessionBinding{}, sd)
	return id, assertion, err
}

// checkAssertion verifies an assertion against the member's keys and
// returns how to consume it. A failed assertion counts as a wrong second
// factor; a sign count that went backwards is refused and audited.
func (s *Server) checkAssertion(c echo.Context, t *tenants.Tenant, user *waUser, sd webauthn.SessionData, challengeID string, credential json.RawMessage, requireUV bool) (db.FactorUse, error) {
	ctx := c.Request().Context()
	if err := s.guardOpen(c, t, user.u.ID); err != nil {
		return db.FactorUse{}, err
	}
	fail := func(reason string) (db.FactorUse, error) {
		s.logger(c).Info("webauthn assertion refused", slog.Int64("user_id", user.u.ID), slog.String("reason", reason))
		if err := s.factorFailed(c, t, user.u, challengeID, "webauthn"); err != errInvalidCode {
			return db.FactorUse{}, err
		}
		return db.FactorUse{}, errInvalidCredential
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		return fail("unparsable assertion")
	}
	stored, ok := user.byCredentialID(parsed.RawID)
	if !ok {
		return fail("credential not registered to this member in this workspace")
	}
	settings, err := s.store.PasskeySettings(ctx, t.ID)
	if err != nil {
		return db.FactorUse{}, err
	}
	if settings.DeviceBoundOnly && stored.BackupEligible {
		// Registered before the workspace turned "device-bound keys only"
		// on: no longer accepted, but not an attack either (not counted).
		return db.FactorUse{}, errSyncedNoLonger
	}
	w, err := s.relyingParty(t)
	if err != nil {
		return db.FactorUse{}, err
	}
	var cred *webauthn.Credential
	if len(sd.UserID) == 0 {
		// A discoverable (passwordless) ceremony: the member was found from
		// the assertion's user handle, which must be theirs.
		cred, err = w.ValidateDiscoverableLogin(func(_, userHandle []byte) (webauthn.User, error) {
			if string(userHandle) != string(user.handle) {
				return nil, errors.New("user handle is not this member's")
			}
			return user, nil
		}, sd, parsed)
	} else {
		cred, err = w.ValidateLogin(user, sd, parsed)
	}
	if err != nil {
		return fail(err.Error())
	}
	if cred.Authenticator.CloneWarning {
		// The counter went backwards (or stood still when non-zero): a
		// possible cloned authenticator.
		if err := s.store.AuditSignCountRegression(ctx, t.ID, user.u.ID, stored.ID, stored.SignCount, parsed.Response.AuthenticatorData.Counter, meta(c)); err != nil {
			return db.FactorUse{}, err
		}
		return fail("sign count went backwards")
	}
	// User verification is decided from this assertion's flags, not from
	// what was stored at registration.
	if requireUV && !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		return fail("user not verified")
	}
	return db.FactorUse{Method: "webauthn", WebAuthnID: stored.ID, SignCount: cred.Authenticator.SignCount, OldSignCount: stored.SignCount,
		BackupState: parsed.Response.AuthenticatorData.Flags.HasBackupState()}, nil
}

// finishSecondFactor checks a key assertion for a challenge and signs the
// member in.
func (s *Server) finishSecondFactor(c echo.Context, t *tenants.Tenant, u db.User, ch db.Challenge, ceremony string, credential json.RawMessage) (*Auth, error) {
	cer, sd, err := s.useCeremony(c, t, ceremony, db.CeremonySecondFactor, u.ID, db.SessionBinding{})
	if err != nil {
		return nil, err
	}
	if cer.ChallengeID != ch.ID {
		return nil, errCeremonyGone
	}
	if ch.FirstMethod == "passkey" {
		return nil, errKeyTwice
	}
	user, err := s.loadWAUser(c, u)
	if err != nil {
		return nil, err
	}
	use, err := s.checkAssertion(c, t, user, sd, ch.ID, credential, false)
	var a *Auth
	if err == nil {
		a, _, err = s.passChallenge(c, t, u, ch, use)
		if errors.Is(err, errInvalidCode) {
			err = errInvalidCredential
		}
	}
	// Counted once the key was judged; a stale ceremony judged nothing.
	s.metrics.signInStep("webauthn", err)
	return a, err
}

// beginPasswordless starts a discoverable-credential sign-in.
func (s *Server) beginPasswordless(c echo.Context, t *tenants.Tenant) (string, *protocol.CredentialAssertion, error) {
	// Anyone can start one (the sign-in page does on every load, for
	// autofill), and each is a row: bounded per client IP.
	key := "pk:ip:" + s.keys.HashToken("throttle", c.RealIP())
	if _, err := s.store.ThrottleTake(c.Request().Context(), key, throttleWindow, PasswordlessBeginLimit); err != nil {
		return "", nil, s.throttled(err)
	}
	w, err := s.relyingParty(t)
	if err != nil {
		return "", nil, err
	}
	assertion, sd, err := w.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return "", nil, err
	}
	id, err := s.saveCeremony(c, t, db.CeremonyPasswordless, 0, "", "", db.SessionBinding{}, sd)
	return id, assertion, err
}

// finishPasswordless checks a discoverable assertion. With user
// verification and the workspace's "passkeys satisfy MFA" on, the member is
// signed in at aal2 (AMR passkey); otherwise the passkey stands for the
// password and a second-factor challenge follows (challenged is true).
func (s *Server) finishPasswordless(c echo.Context, ceremony string, credential json.RawMessage) (a *Auth, challenged bool, err error) {
	// Counted whatever the outcome; signInStep leaves out the answers that
	// judged no key (an expired ceremony, the workspace's policy).
	defer func() { s.metrics.signInStep("passkey", err) }()
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	_, sd, err := s.useCeremony(c, t, ceremony, db.CeremonyPasswordless, 0, db.SessionBinding{})
	if err != nil {
		return nil, false, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil || len(parsed.Response.UserHandle) == 0 {
		return nil, false, errInvalidCredential
	}
	u, err := s.store.UserByWebAuthnHandle(ctx, t.ID, parsed.Response.UserHandle)
	if errors.Is(err, db.ErrNotFound) {
		return nil, false, errInvalidCredential
	} else if err != nil {
		return nil, false, err
	}
	user, err := s.loadWAUser(c, u)
	if err != nil {
		return nil, false, err
	}
	// Passwordless always needs user verification: a key alone is one
	// factor, never aal2.
	use, err := s.checkAssertion(c, t, user, sd, "", credential, true)
	if err != nil {
		return nil, false, err
	}
	use.Method = "passkey"
	settings, err := s.store.PasskeySettings(ctx, t.ID)
	if err != nil {
		return nil, false, err
	}
	if !settings.SatisfyMFA {
		// The passkey stands for the password; the second step needs an
		// authenticator app. Recovery codes are for emergencies, not for
		// every sign-in: a member with only keys signs in with the
		// password and uses a key as the second step.
		if _, err := s.store.TOTPCredential(ctx, t.ID, u.ID); errors.Is(err, db.ErrNotFound) {
			return nil, false, errPasskeyNotEnough
		} else if err != nil {
			return nil, false, err
		}
		return s.passkeyThenChallenge(c, t, u, use)
	}
	if err := s.freshSession(c, t); err != nil {
		return nil, false, err
	}
	us := s.newUserSession(c, t, u, AAL2)
	us.TokenHash = scsHash(s.sessions.Token(ctx))
	if err := s.store.SignInWithFactor(ctx, use, us); errors.Is(err, db.ErrNotFound) {
		return nil, false, s.assertionRaced(c, t, u)
	} else if errors.Is(err, db.ErrMFALocked) {
		return nil, false, s.lockedError(c, t, u)
	} else if err != nil {
		return nil, false, err
	}
	return s.bindSession(c, u, us, []AMR{{Method: "passkey", CompletedAt: us.AuthTime}}), false, nil
}

// passkeyThenChallenge records the passkey as the first factor and opens a
// second-factor challenge (the workspace does not let passkeys satisfy MFA
// alone).
func (s *Server) passkeyThenChallenge(c echo.Context, t *tenants.Tenant, u db.User, use db.FactorUse) (*Auth, bool, error) {
	ctx := c.Request().Context()
	if err := s.store.ConsumeFactor(ctx, t.ID, u.ID, use); errors.Is(err, db.ErrNotFound) {
		return nil, false, s.assertionRaced(c, t, u)
	} else if errors.Is(err, db.ErrMFALocked) {
		return nil, false, s.lockedError(c, t, u)
	} else if err != nil {
		return nil, false, err
	}
	if err := s.freshSession(c, t); err != nil {
		return nil, false, err
	}
	now := s.now()
	ch := db.Challenge{ID: auth.NewID(), WorkspaceID: t.ID, UserID: u.ID, PasswordAt: now, FirstMethod: "passkey", CreatedAt: now, ExpiresAt: now.Add(ChallengeLifetime)}
	if err := s.store.CreateChallenge(ctx, ch); err != nil {
		return nil, false, err
	}
	s.sessions.Put(ctx, keyPendingChallenge, ch.ID)
	return nil, true, nil
}

// assertionRaced answers an assertion whose sign count was consumed by a
// concurrent one: a wrong factor.
func (s *Server) assertionRaced(c echo.Context, t *tenants.Tenant, u db.User) error {
	if err := s.factorFailed(c, t, u, "", "webauthn"); err != errInvalidCode {
		return err
	}
	return errInvalidCredential
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
