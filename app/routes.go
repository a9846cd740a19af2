package app

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gatehouse/gatehouse/assets"
)

// routes lists every route. Authentication sits on the root (authorize);
// the routes that need no session are declared with pub, and only those.
func (s *Server) routes() {
	e := s.echo
	s.public = map[string]bool{}
	pub := func(method, path string, h echo.HandlerFunc) {
		e.Add(method, path, h)
		s.public[method+" "+path] = true
	}

	e.Pre(s.securityHeaders, s.hostRewrite, s.supportRewrite)
	e.Use(s.requestLog, middleware.Recover(), middleware.BodyLimit("64K"), s.csrf(), s.tenant, s.loadSession, s.authorize)

	// Operations and static files.
	pub(http.MethodGet, "/healthz", s.handleHealthz)
	pub(http.MethodGet, "/readyz", s.handleReadyz)
	pub(http.MethodGet, "/assets/*", echo.WrapHandler(assets.Handler()))
	pub(http.MethodGet, "/", s.handleHome)

	// Sign-in, invitations (public).
	pub(http.MethodGet, "/t/:slug/login", s.handleLoginShow)
	pub(http.MethodPost, "/t/:slug/login", s.handleLoginCheck)
	pub(http.MethodGet, "/t/:slug/login/mfa", s.handleChallengeShow)
	pub(http.MethodPost, "/t/:slug/login/mfa", s.handleChallengeCheck)
	pub(http.MethodPost, "/t/:slug/login/mfa/cancel", s.handleChallengeCancel)
	pub(http.MethodPost, "/t/:slug/login/mfa/webauthn/begin", jsonErrors(s.handleChallengeWebAuthnBegin))
	pub(http.MethodPost, "/t/:slug/login/mfa/webauthn/finish", jsonErrors(s.handleChallengeWebAuthnFinish))
	pub(http.MethodPost, "/t/:slug/login/passkey/begin", jsonErrors(s.handlePasskeyBegin))
	pub(http.MethodPost, "/t/:slug/login/passkey/finish", jsonErrors(s.handlePasskeyFinish))
	pub(http.MethodGet, "/t/:slug/invite/:token", s.handleInviteShow)
	pub(http.MethodPost, "/t/:slug/invite/:token", s.handleInviteAccept)

	// Member pages. Security changes are wrapped in withStepUp.
	e.GET("/t/:slug", s.handleWorkspaceHome)
	e.GET("/t/:slug/", s.handleWorkspaceHome)
	e.POST("/t/:slug/logout", s.handleLogout)
	e.GET("/t/:slug/account", s.handleAccount)
	e.POST("/t/:slug/account/password", s.withStepUp("/account", s.handlePasswordChange))
	e.POST("/t/:slug/account/sessions/:id/end", s.handleSessionEnd)
	e.POST("/t/:slug/account/sessions/end-others", s.handleSessionsEndOthers)
	e.GET("/t/:slug/account/verify", s.handleStepUpShow)
	e.POST("/t/:slug/account/verify", s.handleStepUpCheck)
	e.POST("/t/:slug/account/verify/webauthn/begin", jsonErrors(s.handleStepUpWebAuthnBegin))
	e.POST("/t/:slug/account/verify/webauthn/finish", jsonErrors(s.handleStepUpWebAuthnFinish))
	e.GET("/t/:slug/account/mfa", s.handleMFA)
	e.POST("/t/:slug/account/mfa/totp/setup", s.withStepUp("/account/mfa", s.handleTOTPSetupStart))
	e.GET("/t/:slug/account/mfa/totp", s.handleTOTPSetupShow)
	e.POST("/t/:slug/account/mfa/totp", s.handleTOTPSetupConfirm)
	e.POST("/t/:slug/account/mfa/totp/remove", s.withStepUp("/account/mfa", s.handleTOTPRemove))
	e.POST("/t/:slug/account/mfa/webauthn/register/begin", jsonErrors(s.handleWebAuthnRegisterBegin))
	e.POST("/t/:slug/account/mfa/webauthn/register/finish", jsonErrors(s.handleWebAuthnRegisterFinish))
	e.POST("/t/:slug/account/mfa/webauthn/:id/remove", s.withStepUp("/account/mfa", s.handleWebAuthnRemove))
	e.POST("/t/:slug/account/mfa/webauthn/:id/rename", s.withStepUp("/account/mfa", s.handleWebAuthnRename))
	e.POST("/t/:slug/account/mfa/recovery-codes", s.withStepUp("/account/mfa", s.handleRecoveryCodesRegenerate))
	// Enforcement: the interstitial after sign-in for members who must
	// enroll, and (past the deadline) the emailed link that unlocks enrollment.
	e.GET("/t/:slug/account/enroll", s.handleEnrollShow)
	e.POST("/t/:slug/account/enroll/link", s.handleEnrollLinkSend)
	e.GET("/t/:slug/account/enroll/link/:token", s.handleEnrollLinkShow)
	e.POST("/t/:slug/account/enroll/link/:token", s.handleEnrollLinkConfirm)

	// Admin console (owners and admins; see authorize).
	e.GET("/t/:slug/admin", s.handleAdminDashboard)
	e.GET("/t/:slug/admin/members", s.handleAdminMembers)
	e.GET("/t/:slug/admin/settings/security", s.handleAdminSecurity)
	e.POST("/t/:slug/admin/settings/security", s.withStepUp("/admin/settings/security", s.handleAdminSecuritySave))
	e.GET("/t/:slug/api/v1/admin/policy", s.handleAPIAdminPolicy)
	e.PUT("/t/:slug/api/v1/admin/policy", s.handleAPIAdminPolicyPut)
	e.POST("/t/:slug/admin/invitations", s.handleInvitationCreate)
	e.POST("/t/:slug/admin/invitations/:id/resend", s.withStepUp("/admin", s.handleInvitationResend))
	e.GET("/t/:slug/admin/members/:id", s.handleAdminMember)
	e.POST("/t/:slug/admin/members/:id/reset-mfa", s.memberAction(s.handleAdminMemberResetMFA))
	e.POST("/t/:slug/admin/members/:id/end-sessions", s.memberAction(s.handleAdminMemberEndSessions))
	e.POST("/t/:slug/admin/members/:id/role", s.memberAction(s.handleAdminMemberRole))
	e.POST("/t/:slug/admin/members/:id/extend-deadline", s.memberAction(s.handleAdminMemberExtend))
	e.POST("/t/:slug/api/v1/admin/members/:id/extend-deadline", s.handleAPIAdminExtendDeadline)
	e.GET("/t/:slug/api/v1/admin/members", s.handleAPIAdminMembers)
	e.POST("/t/:slug/api/v1/admin/members/:id/reset-mfa", s.handleAPIAdminResetMFA)
	e.GET("/t/:slug/api/v1/admin/members/:id", s.handleAPIAdminMember)
	e.POST("/t/:slug/api/v1/admin/members/:id/end-sessions", s.handleAPIAdminEndSessions)
	e.POST("/t/:slug/api/v1/admin/members/:id/role", s.handleAPIAdminRole)
	e.POST("/t/:slug/api/v1/admin/invitations", s.handleAPIAdminInvite)
	e.POST("/t/:slug/api/v1/admin/invitations/:id/resend", s.handleAPIAdminInviteResend)
	e.GET("/t/:slug/admin/audit", s.handleAdminAudit)
	e.GET("/t/:slug/admin/audit.csv", s.handleAdminAuditCSV)
	e.GET("/t/:slug/api/v1/admin/audit", s.handleAPIAdminAudit)

	// JSON API v1.
	pub(http.MethodPost, "/t/:slug/api/v1/login", s.handleAPILogin)
	pub(http.MethodPost, "/t/:slug/api/v1/login/mfa", s.handleAPILoginMFA)
	pub(http.MethodPost, "/t/:slug/api/v1/login/webauthn/begin", s.handleAPIWebAuthnLoginBegin)
	pub(http.MethodPost, "/t/:slug/api/v1/login/webauthn/finish", s.handleAPIWebAuthnLoginFinish)
	e.GET("/t/:slug/api/v1/session", s.handleAPISession)
	e.POST("/t/:slug/api/v1/logout", s.handleAPILogout)
	e.POST("/t/:slug/api/v1/step-up", s.handleAPIStepUp)
	e.POST("/t/:slug/api/v1/step-up/webauthn/begin", s.handleStepUpWebAuthnBegin)
	e.POST("/t/:slug/api/v1/step-up/webauthn/finish", s.handleStepUpWebAuthnFinish)
	e.GET("/t/:slug/api/v1/mfa", s.handleAPIMFA)
	e.POST("/t/:slug/api/v1/mfa/totp/setup", s.handleAPITOTPSetup)
	e.POST("/t/:slug/api/v1/mfa/totp/verify-setup", s.handleAPITOTPVerifySetup)
	e.DELETE("/t/:slug/api/v1/mfa/totp", s.handleAPITOTPDelete)
	e.POST("/t/:slug/api/v1/mfa/recovery-codes", s.handleAPIRecoveryCodes)
	e.POST("/t/:slug/api/v1/mfa/webauthn/register/begin", s.handleWebAuthnRegisterBegin)
	e.POST("/t/:slug/api/v1/mfa/webauthn/register/finish", s.handleWebAuthnRegisterFinish)
	e.DELETE("/t/:slug/api/v1/mfa/webauthn/:id", s.handleAPIWebAuthnDelete)

	// Trusted browsers (trusted.go): the member's (step-up), an admin's
	// revoke (memberAction: scoped, step-up) and the API's (step-up inside).
	e.POST("/t/:slug/account/trusted/:id/revoke", s.withStepUp("/account", s.handleTrustedRevoke))
	e.POST("/t/:slug/account/trusted/revoke-all", s.withStepUp("/account", s.handleTrustedRevokeAll))
	e.POST("/t/:slug/admin/members/:id/trusted/:device/revoke", s.memberAction(s.handleAdminMemberTrustedRevoke))
	e.DELETE("/t/:slug/api/v1/trusted-devices/:id", s.handleAPITrustedDelete)

	// Support console (/support is the platform workspace: see support.go;
	// these routes exist only there).
	pub(http.MethodGet, "/t/:slug/enroll/:token", s.handleStaffEnrollShow)
	pub(http.MethodPost, "/t/:slug/enroll/:token", s.handleStaffEnrollStart)
	pub(http.MethodPost, "/t/:slug/enroll/:token/totp", s.handleStaffEnrollTOTP)
	pub(http.MethodPost, "/t/:slug/enroll/:token/webauthn/begin", jsonErrors(s.handleStaffEnrollKeyBegin))
	pub(http.MethodPost, "/t/:slug/enroll/:token/webauthn/finish", jsonErrors(s.handleStaffEnrollKeyFinish))
	pub(http.MethodPost, "/t/:slug/api/v1/enroll/totp/setup", s.handleAPIStaffEnrollSetup)
	pub(http.MethodPost, "/t/:slug/api/v1/enroll/totp/verify", s.handleAPIStaffEnrollVerify)
	e.GET("/t/:slug/members", s.handleSupportMembers)
	e.GET("/t/:slug/api/v1/members", s.handleAPISupportMembers)
	e.GET("/t/:slug/cases", s.handleSupportCases)
	e.GET("/t/:slug/cases/new", s.handleSupportCaseNew)
	e.POST("/t/:slug/cases", s.withStepUp("/cases", s.handleSupportCaseOpen))
	e.GET("/t/:slug/cases/:id", s.handleSupportCase)
	e.POST("/t/:slug/cases/:id/approve", s.handleSupportCaseApprove)
	e.POST("/t/:slug/cases/:id/reject", s.handleSupportCaseReject)
	e.POST("/t/:slug/api/v1/cases", s.handleAPISupportCaseOpen)
	e.GET("/t/:slug/api/v1/cases/:id", s.handleAPISupportCase)
	e.POST("/t/:slug/api/v1/cases/:id/approve", s.handleAPISupportCaseApprove)
	e.POST("/t/:slug/api/v1/cases/:id/reject", s.handleAPISupportCaseReject)
	// Self-service recovery by email (workspaces that allow it).
	pub(http.MethodPost, "/t/:slug/login/mfa/recover", s.handleRecoveryRequest)
	pub(http.MethodGet, "/t/:slug/recover/:token", s.handleRecoverShow)
	pub(http.MethodPost, "/t/:slug/recover/:token", s.handleRecoverStart)
	// The member's link to cancel a scheduled support reset (workspaces).
	pub(http.MethodGet, "/t/:slug/reset/cancel/:token", s.handleResetCancelShow)
	pub(http.MethodPost, "/t/:slug/reset/cancel/:token", s.handleResetCancel)

	// Dev mailbox: registered only in dev mode.
	if s.cfg.Dev {
		pub(http.MethodGet, "/dev/mailbox", s.handleMailbox)
		pub(http.MethodGet, "/dev/mailbox/:id", s.handleMailboxMessage)
	}
}
