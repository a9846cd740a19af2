package app

import (
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/assets"
	"github.com/gatehouse/gatehouse/db"
)

// routes lists every route with its facts (route.go): who may call it,
// whether it needs a fresh second factor, whether a member confined to
// enrollment may use it, whether it answers JSON, where it exists.
// Authentication sits on the root (authorize) and reads those facts; a
// route declared without saying who may call it stops the server.
func (s *Server) routes() {
	e := s.echo
	r := &router{e: e, routes: map[string]*route{}}
	s.routeTable = r.routes

	e.Pre(s.securityHeaders, s.hostRewrite, s.supportRewrite)
	e.Use(s.matchRoute, s.observeRequests, s.requestLog, middleware.Recover(), s.bodyLimit, s.csrf(), s.tenant, s.loadSession, s.authorize)

	// Operations and static files.
	r.get("/healthz", s.handleHealthz, public, global, noCookies)
	r.get("/readyz", s.handleReadyz, public, global, noCookies)
	// Prometheus metrics: only with GATEHOUSE_METRICS_TOKEN, checked in the
	// handler (404 when none is set); the metrics listener serves them
	// without (metrics.go).
	r.get("/metrics", s.handleMetrics, public, global, noCookies)
	r.get("/assets/*", echo.WrapHandler(assets.Handler()), public, global, noCookies)
	r.get("/", s.handleHome, public, global)

	// Sign-in, the challenge, invitations. Public: each handler checks its
	// own pending state or token.
	r.get("/t/:slug/login", s.handleLoginShow, public, alsoSupport)
	r.post("/t/:slug/login", s.handleLoginCheck, public, alsoSupport)
	r.get("/t/:slug/login/mfa", s.handleChallengeShow, public, alsoSupport)
	r.post("/t/:slug/login/mfa", s.handleChallengeCheck, public, alsoSupport)
	r.post("/t/:slug/login/mfa/sms", s.handleChallengeSMSSend, public)
	r.post("/t/:slug/login/mfa/cancel", s.handleChallengeCancel, public, alsoSupport)
	r.post("/t/:slug/login/mfa/webauthn/begin", s.handleChallengeWebAuthnBegin, public, alsoSupport, jsonOut)
	r.post("/t/:slug/login/mfa/webauthn/finish", s.handleChallengeWebAuthnFinish, public, alsoSupport, jsonOut)
	r.post("/t/:slug/login/passkey/begin", s.handlePasskeyBegin, public, alsoSupport, jsonOut)
	r.post("/t/:slug/login/passkey/finish", s.handlePasskeyFinish, public, alsoSupport, jsonOut)
	r.get("/t/:slug/invite/:token", s.handleInviteShow, public)
	r.post("/t/:slug/invite/:token", s.handleInviteAccept, public)
	// Self-service recovery by email (workspaces that allow it) and the
	// member's link to cancel a scheduled support reset.
	r.post("/t/:slug/login/mfa/recover", s.handleRecoveryRequest, public)
	r.get("/t/:slug/recover/:token", s.handleRecoverShow, public)
	r.post("/t/:slug/recover/:token", s.handleRecoverStart, public)
	r.get("/t/:slug/reset/cancel/:token", s.handleResetCancelShow, public)
	r.post("/t/:slug/reset/cancel/:token", s.handleResetCancel, public)

	// Member pages.
	r.get("/t/:slug", s.handleWorkspaceHome, member, alsoSupport)
	r.get("/t/:slug/", s.handleWorkspaceHome, member, alsoSupport)
	r.post("/t/:slug/logout", s.handleLogout, member, alsoSupport, confined)
	r.get("/t/:slug/account", s.handleAccount, member, alsoSupport)
	r.post("/t/:slug/account/password", s.handlePasswordChange, member, alsoSupport, stepUp, back("/account"))
	r.post("/t/:slug/account/sessions/:id/end", s.handleSessionEnd, member, alsoSupport)
	r.post("/t/:slug/account/sessions/end-others", s.handleSessionsEndOthers, member, alsoSupport)
	r.post("/t/:slug/account/apps/:client/revoke", s.handleAppRevoke, member)
	r.get("/t/:slug/account/verify", s.handleStepUpShow, member, alsoSupport)
	r.post("/t/:slug/account/verify", s.handleStepUpCheck, member, alsoSupport)
	r.post("/t/:slug/account/verify/sms", s.handleStepUpSMSSend, member)
	r.post("/t/:slug/account/verify/webauthn/begin", s.handleStepUpWebAuthnBegin, member, alsoSupport, jsonOut)
	r.post("/t/:slug/account/verify/webauthn/finish", s.handleStepUpWebAuthnFinish, member, alsoSupport, jsonOut)
	r.get("/t/:slug/account/mfa", s.handleMFA, member, alsoSupport, unlocked)
	r.post("/t/:slug/account/mfa/totp/setup", s.handleTOTPSetupStart, member, alsoSupport, stepUp, back("/account/mfa"), enrolls(db.MethodTOTP))
	// Showing and confirming a pending enrollment: bound to the session
	// and step-up that started it (no second step-up in between).
	r.get("/t/:slug/account/mfa/totp", s.handleTOTPSetupShow, member, alsoSupport, enrolls(db.MethodTOTP))
	r.post("/t/:slug/account/mfa/totp", s.handleTOTPSetupConfirm, member, alsoSupport, enrolls(db.MethodTOTP))
	r.post("/t/:slug/account/mfa/totp/remove", s.handleTOTPRemove, member, alsoSupport, stepUp, back("/account/mfa"))
	r.post("/t/:slug/account/mfa/webauthn/register/begin", s.handleWebAuthnRegisterBegin, member, alsoSupport, jsonOut, stepUp, enrolls(db.MethodWebAuthn))
	r.post("/t/:slug/account/mfa/webauthn/register/finish", s.handleWebAuthnRegisterFinish, member, alsoSupport, jsonOut, enrolls(db.MethodWebAuthn))
	r.post("/t/:slug/account/mfa/webauthn/:id/remove", s.handleWebAuthnRemove, member, alsoSupport, stepUp, back("/account/mfa"))
	r.post("/t/:slug/account/mfa/webauthn/:id/rename", s.handleWebAuthnRename, member, alsoSupport, stepUp, back("/account/mfa"))
	// The phone for texted codes (sms_pages.go): the number is asked for
	// after the step-up; the code page and its resend are bound to the
	// session and step-up that started the setup, as for TOTP.
	r.get("/t/:slug/account/mfa/sms/setup", s.handleSMSSetupShow, member, stepUp, back("/account/mfa/sms/setup"), enrolls(db.MethodSMS))
	r.post("/t/:slug/account/mfa/sms/setup", s.handleSMSSetupStart, member, stepUp, back("/account/mfa/sms/setup"), enrolls(db.MethodSMS))
	r.get("/t/:slug/account/mfa/sms", s.handleSMSSetupVerifyShow, member, enrolls(db.MethodSMS))
	r.post("/t/:slug/account/mfa/sms", s.handleSMSSetupConfirm, member, enrolls(db.MethodSMS))
	r.post("/t/:slug/account/mfa/sms/resend", s.handleSMSSetupResend, member, enrolls(db.MethodSMS))
	r.post("/t/:slug/account/mfa/sms/remove", s.handleSMSRemove, member, stepUp, back("/account/mfa"))
	r.post("/t/:slug/account/mfa/recovery-codes", s.handleRecoveryCodesRegenerate, member, alsoSupport, stepUp, back("/account/mfa"))
	r.post("/t/:slug/account/trusted/:id/revoke", s.handleTrustedRevoke, member, stepUp, back("/account"))
	r.post("/t/:slug/account/trusted/revoke-all", s.handleTrustedRevokeAll, member, stepUp, back("/account"))
	// Enforcement: the interstitial after sign-in for members who must
	// enroll, and (past the deadline) the emailed link that unlocks
	// enrollment in this session.
	r.get("/t/:slug/account/enroll", s.handleEnrollShow, member, confined)
	r.post("/t/:slug/account/enroll/link", s.handleEnrollLinkSend, member, confined)
	r.get("/t/:slug/account/enroll/link/:token", s.handleEnrollLinkShow, member, confined)
	r.post("/t/:slug/account/enroll/link/:token", s.handleEnrollLinkConfirm, member, confined)

	// Admin console: owners and admins; every change needs a fresh second
	// factor, and a change to a member is scoped to the workspace and
	// guarded for owners (onMember).
	r.get("/t/:slug/admin", s.handleAdminDashboard, admin)
	r.get("/t/:slug/admin/members", s.handleAdminMembers, admin)
	r.get("/t/:slug/admin/settings/security", s.handleAdminSecurity, admin)
	r.post("/t/:slug/admin/settings/security", s.handleAdminSecuritySave, admin, stepUp, back("/admin/settings/security"))
	r.post("/t/:slug/admin/invitations", s.handleInvitationCreate, admin, stepUp, back("/admin/members"))
	r.post("/t/:slug/admin/invitations/:id/resend", s.handleInvitationResend, admin, stepUp, back("/admin/members"))
	r.get("/t/:slug/admin/members/:id", s.handleAdminMember, admin, onMember)
	r.post("/t/:slug/admin/members/:id/reset-mfa", s.handleAdminMemberResetMFA, admin, onMember, stepUp, back("/admin/members/:id"))
	r.post("/t/:slug/admin/members/:id/end-sessions", s.handleAdminMemberEndSessions, admin, onMember, stepUp, back("/admin/members/:id"))
	r.post("/t/:slug/admin/members/:id/role", s.handleAdminMemberRole, admin, onMember, stepUp, back("/admin/members/:id"))
	r.post("/t/:slug/admin/members/:id/extend-deadline", s.handleAdminMemberExtend, admin, onMember, stepUp, back("/admin/members/:id"))
	r.post("/t/:slug/admin/members/:id/trusted/:device/revoke", s.handleAdminMemberTrustedRevoke, admin, onMember, stepUp, back("/admin/members/:id"))
	r.get("/t/:slug/admin/audit", s.handleAdminAudit, admin)
	r.get("/t/:slug/admin/audit.csv", s.handleAdminAuditCSV, admin)
	// Applications (OAuth clients, admin_apps.go): the registration form
	// asks for the step-up before it is filled in, not after.
	r.get("/t/:slug/admin/apps", s.handleAdminApps, admin)
	r.get("/t/:slug/admin/apps/new", s.handleAdminAppNew, admin, stepUp, back("/admin/apps/new"))
	r.post("/t/:slug/admin/apps", s.handleAdminAppCreate, admin, stepUp, back("/admin/apps/new"))
	r.get("/t/:slug/admin/apps/:id", s.handleAdminApp, admin, onClient)
	r.post("/t/:slug/admin/apps/:id", s.handleAdminAppUpdate, admin, onClient, stepUp, back("/admin/apps/:id"))
	r.post("/t/:slug/admin/apps/:id/secret", s.handleAdminAppSecret, admin, onClient, stepUp, back("/admin/apps/:id"))
	r.post("/t/:slug/admin/apps/:id/delete", s.handleAdminAppDelete, admin, onClient, stepUp, back("/admin/apps/:id"))

	// JSON API v1: bearer tokens, never cookies; JSON answers.
	r.post("/t/:slug/api/v1/login", s.handleAPILogin, public, api, alsoSupport)
	r.post("/t/:slug/api/v1/login/mfa", s.handleAPILoginMFA, public, api, alsoSupport)
	r.post("/t/:slug/api/v1/login/sms/send", s.handleAPILoginSMSSend, public, api)
	r.post("/t/:slug/api/v1/login/webauthn/begin", s.handleAPIWebAuthnLoginBegin, public, api, alsoSupport)
	r.post("/t/:slug/api/v1/login/webauthn/finish", s.handleAPIWebAuthnLoginFinish, public, api, alsoSupport)
	r.get("/t/:slug/api/v1/session", s.handleAPISession, member, api, alsoSupport)
	r.post("/t/:slug/api/v1/logout", s.handleAPILogout, member, api, alsoSupport, confined)
	r.post("/t/:slug/api/v1/step-up", s.handleAPIStepUp, member, api, alsoSupport)
	r.post("/t/:slug/api/v1/step-up/sms/send", s.handleAPIStepUpSMSSend, member, api)
	r.post("/t/:slug/api/v1/step-up/webauthn/begin", s.handleStepUpWebAuthnBegin, member, api, alsoSupport)
	r.post("/t/:slug/api/v1/step-up/webauthn/finish", s.handleStepUpWebAuthnFinish, member, api, alsoSupport)
	r.get("/t/:slug/api/v1/mfa", s.handleAPIMFA, member, api)
	r.post("/t/:slug/api/v1/mfa/totp/setup", s.handleAPITOTPSetup, member, api, stepUp, enrolls(db.MethodTOTP))
	r.post("/t/:slug/api/v1/mfa/totp/verify-setup", s.handleAPITOTPVerifySetup, member, api, enrolls(db.MethodTOTP))
	r.delete("/t/:slug/api/v1/mfa/totp", s.handleAPITOTPDelete, member, api, stepUp)
	r.post("/t/:slug/api/v1/mfa/recovery-codes", s.handleAPIRecoveryCodes, member, api, stepUp)
	r.post("/t/:slug/api/v1/mfa/webauthn/register/begin", s.handleWebAuthnRegisterBegin, member, api, stepUp, enrolls(db.MethodWebAuthn))
	r.post("/t/:slug/api/v1/mfa/webauthn/register/finish", s.handleWebAuthnRegisterFinish, member, api, enrolls(db.MethodWebAuthn))
	r.delete("/t/:slug/api/v1/mfa/webauthn/:id", s.handleAPIWebAuthnDelete, member, api, stepUp)
	// SMS (api_sms.go): the setup texts a code, so it needs the step-up
	// like any enrollment; verifying is bound to that session and step-up.
	r.post("/t/:slug/api/v1/mfa/sms/setup", s.handleAPISMSSetup, member, api, stepUp, enrolls(db.MethodSMS))
	r.post("/t/:slug/api/v1/mfa/sms/verify-setup", s.handleAPISMSVerifySetup, member, api, enrolls(db.MethodSMS))
	r.delete("/t/:slug/api/v1/mfa/sms", s.handleAPISMSDelete, member, api, stepUp)
	r.delete("/t/:slug/api/v1/trusted-devices/:id", s.handleAPITrustedDelete, member, api, stepUp)
	r.get("/t/:slug/api/v1/admin/policy", s.handleAPIAdminPolicy, admin, api)
	r.put("/t/:slug/api/v1/admin/policy", s.handleAPIAdminPolicyPut, admin, api, stepUpUnless(dryRun))
	r.get("/t/:slug/api/v1/admin/members", s.handleAPIAdminMembers, admin, api)
	r.get("/t/:slug/api/v1/admin/members/:id", s.handleAPIAdminMember, admin, api, onMember)
	r.post("/t/:slug/api/v1/admin/members/:id/reset-mfa", s.handleAPIAdminResetMFA, admin, api, onMember, stepUp)
	r.post("/t/:slug/api/v1/admin/members/:id/end-sessions", s.handleAPIAdminEndSessions, admin, api, onMember, stepUp)
	r.post("/t/:slug/api/v1/admin/members/:id/role", s.handleAPIAdminRole, admin, api, onMember, stepUp)
	r.post("/t/:slug/api/v1/admin/members/:id/extend-deadline", s.handleAPIAdminExtendDeadline, admin, api, onMember, stepUp)
	r.post("/t/:slug/api/v1/admin/members/import", s.handleAPIAdminMembersImport, admin, api, stepUp, largeBody)
	r.post("/t/:slug/api/v1/admin/invitations", s.handleAPIAdminInvite, admin, api, stepUp)
	r.post("/t/:slug/api/v1/admin/invitations/:id/resend", s.handleAPIAdminInviteResend, admin, api, stepUp)
	r.get("/t/:slug/api/v1/admin/audit", s.handleAPIAdminAudit, admin, api)
	r.get("/t/:slug/api/v1/admin/clients", s.handleAPIAdminClients, admin, api)
	r.post("/t/:slug/api/v1/admin/clients", s.handleAPIAdminClientCreate, admin, api, stepUp)
	r.get("/t/:slug/api/v1/admin/clients/:id", s.handleAPIAdminClient, admin, onClient, api)
	r.patch("/t/:slug/api/v1/admin/clients/:id", s.handleAPIAdminClientUpdate, admin, onClient, api, stepUp)
	r.delete("/t/:slug/api/v1/admin/clients/:id", s.handleAPIAdminClientDelete, admin, onClient, api, stepUp)
	r.post("/t/:slug/api/v1/admin/clients/:id/secret", s.handleAPIAdminClientSecret, admin, onClient, api, stepUp)

	// OpenID Connect provider (oidc.go, oidc_flow.go): op serves the
	// protocol; the authorize endpoint sends the browser to continue,
	// which runs Gatehouse's own pages. The native JSON flow (POST
	// authorize with a JSON body, then authorize/mfa) is the API's.
	r.get("/t/:slug/.well-known/openid-configuration", s.handleDiscovery, public, oauth, noCookies)
	r.get("/t/:slug/oauth/jwks", s.handleOIDC, public, oauth, noCookies)
	r.get("/t/:slug/oauth/authorize", s.handleOIDC, public)
	r.post("/t/:slug/oauth/authorize", s.handleOAuthAuthorizePost, public, api)
	r.get("/t/:slug/oauth/authorize/callback", s.handleOIDC, public)
	r.post("/t/:slug/oauth/authorize/mfa", s.handleOAuthAuthorizeMFA, public, api)
	r.post("/t/:slug/oauth/authorize/sms/send", s.handleOAuthAuthorizeSMSSend, public, api)
	r.get("/t/:slug/oauth/continue", s.handleOAuthContinue, public)
	r.post("/t/:slug/oauth/continue", s.handleOAuthConsent, member)
	r.post("/t/:slug/oauth/token", s.handleOIDC, public, oauth, noCookies)
	r.get("/t/:slug/oauth/userinfo", s.handleOIDC, public, oauth, noCookies)
	r.post("/t/:slug/oauth/userinfo", s.handleOIDC, public, oauth, noCookies)
	r.post("/t/:slug/oauth/introspect", s.handleOIDC, public, oauth, noCookies)
	r.post("/t/:slug/oauth/revoke", s.handleOIDC, public, oauth, noCookies)
	r.get("/t/:slug/oauth/logout", s.handleOIDC, public, oauth)
	r.post("/t/:slug/oauth/logout", s.handleOIDC, public, oauth)

	// Support console (support.go): the platform workspace's own routes.
	// The staff enrollment link is public: it needs its token.
	r.get("/t/:slug/enroll/:token", s.handleStaffEnrollShow, public, supportOnly)
	r.post("/t/:slug/enroll/:token", s.handleStaffEnrollStart, public, supportOnly)
	r.post("/t/:slug/enroll/:token/totp", s.handleStaffEnrollTOTP, public, supportOnly)
	r.post("/t/:slug/enroll/:token/webauthn/begin", s.handleStaffEnrollKeyBegin, public, supportOnly, jsonOut)
	r.post("/t/:slug/enroll/:token/webauthn/finish", s.handleStaffEnrollKeyFinish, public, supportOnly, jsonOut)
	r.post("/t/:slug/api/v1/enroll/totp/setup", s.handleAPIStaffEnrollSetup, public, supportOnly, api)
	r.post("/t/:slug/api/v1/enroll/totp/verify", s.handleAPIStaffEnrollVerify, public, supportOnly, api)
	r.get("/t/:slug/members", s.handleSupportMembers, staff)
	r.get("/t/:slug/cases", s.handleSupportCases, staff)
	r.get("/t/:slug/cases/new", s.handleSupportCaseNew, staff)
	r.post("/t/:slug/cases", s.handleSupportCaseOpen, staff, stepUp, back("/cases"))
	r.get("/t/:slug/cases/:id", s.handleSupportCase, staff)
	r.post("/t/:slug/cases/:id/approve", s.handleSupportCaseApprove, staff, stepUp, back("/cases/:id"))
	r.post("/t/:slug/cases/:id/reject", s.handleSupportCaseReject, staff, stepUp, back("/cases/:id"))
	r.get("/t/:slug/api/v1/members", s.handleAPISupportMembers, staff, api)
	r.post("/t/:slug/api/v1/cases", s.handleAPISupportCaseOpen, staff, api, stepUp)
	r.get("/t/:slug/api/v1/cases/:id", s.handleAPISupportCase, staff, api)
	r.post("/t/:slug/api/v1/cases/:id/approve", s.handleAPISupportCaseApprove, staff, api, stepUp)
	r.post("/t/:slug/api/v1/cases/:id/reject", s.handleAPISupportCaseReject, staff, api, stepUp)

	// Dev mailbox: registered only in dev mode.
	if s.cfg.Dev {
		r.get("/dev/mailbox", s.handleMailbox, public, global)
		r.get("/dev/mailbox/:id", s.handleMailboxMessage, public, global)
	}
}

// dryRun reports whether a PUT /admin/policy is a dry run
// (?dry_run=true): it computes the impact and saves nothing. The handler
// reads the parameter through this function too, so the route's step-up
// and the handler never disagree; an unparseable value is no dry run (and
// the handler refuses it).
func dryRun(c echo.Context) bool {
	b, err := strconv.ParseBool(c.QueryParam("dry_run"))
	return err == nil && b
}
