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
