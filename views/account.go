package views

import "time"

// AccountView is the member's portal.
type AccountView struct {
	Email         string
	Role          string
	WorkspaceName string
	MemberSince   time.Time
	PasswordSet   time.Time
	AAL           string
	AuthTime      time.Time
	Sessions      []SessionRow
	Password      PasswordForm
	MFAOn         bool
	Activity      []ActivityRow
	// Apps are the third-party applications the member allowed.
	Apps []AppConsentRow
}

// AppConsentRow is an application the member allowed.
type AppConsentRow struct {
	ClientID  string
	Name      string
	Scopes    string
	GrantedAt time.Time
}

// ActivityRow is one entry of "recent security activity".
type ActivityRow struct {
	At     time.Time
	What   string
	IP     string
	Device string
}

// SessionRow is one signed-in session in the portal list.
type SessionRow struct {
	ID       string
	Current  bool
	Device   string
	IP       string
	SignedIn time.Time
	LastSeen time.Time
}

// PasswordForm is the change-password form.
type PasswordForm struct {
	Errors FieldErrors
	Error  string
}
