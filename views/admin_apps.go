package views

import "time"

// AppTypes are the kinds of application an admin can register, with what
// each means, in the order the form offers them.
var AppTypes = [][3]string{
	{"web", "Web application", "Runs on a server that keeps a client secret (confidential)."},
	{"spa", "Single-page application", "Runs in the browser: no secret, PKCE only (public)."},
	{"native", "Native or mobile app", "Runs on a device: no secret, PKCE only (public); may use a private-use scheme like com.example.app:/callback."},
}

// AppScopes are the scopes an application may be allowed, with what each
// gives it. openid is always allowed.
var AppScopes = [][2]string{
	{"openid", "Sign the member in (always)"},
	{"email", "Their email address"},
	{"profile", "Their profile (name)"},
	{"offline_access", "Refresh tokens: stay signed in to the application"},
}

// AppTypeLabel is the short name of an application type.
func AppTypeLabel(kind string) string {
	for _, t := range AppTypes {
		if t[0] == kind {
			return t[1]
		}
	}
	return kind
}

// AppsView is the admin console's list of applications.
type AppsView struct {
	Apps []AppRow
}

// AppRow is one application in the list.
type AppRow struct {
	ID         int64
	Name       string
	Type       string
	ClientID   string
	FirstParty bool
	Created    time.Time
	LastSignIn time.Time
}

// AppForm is the registration and edit form of an application, with the
// values typed and the errors per field (name, type, redirect_uris,
// post_logout_redirect_uris, scopes).
type AppForm struct {
	Name                   string
	Type                   string
	RedirectURIs           string // one per line
	PostLogoutRedirectURIs string // one per line
	Scopes                 []string
	FirstParty             bool
	Errors                 FieldErrors
}

// HasScope reports whether the form has the scope ticked.
func (f AppForm) HasScope(s string) bool {
	for _, v := range f.Scopes {
		if v == s {
			return true
		}
	}
	return false
}

// AppView is one application's page: its facts, the edit form, the
// secret when one was just made (shown once), and recent sign-ins.
type AppView struct {
	ID              int64
	Name            string
	Type            string
	ClientID        string
	Confidential    bool
	FirstParty      bool
	Created         time.Time
	SecretRotatedAt time.Time
	Form            AppForm
	// NewSecret is set only on the answer that made it: the page that
	// shows it is the only time anyone sees it.
	NewSecret string
	// JustCreated is set on the answer that registered the application.
	JustCreated bool
	Error       string
	SignIns     []AppSignInRow
}

// AppSignInRow is one recent sign-in through an application.
type AppSignInRow struct {
	At     time.Time
	What   string
	Member string
	IP     string
	Device string
}
