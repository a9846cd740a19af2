package views

import "time"

// MembersView is the admin console's member list.
type MembersView struct {
	Total       int
	Query       string
	Members     []MemberRow
	NextCursor  string
	FirstPage   bool
	Invitations []InvitationRow
	Invite      InviteForm
}

// MemberRow is one member in the list.
type MemberRow struct {
	ID        int64
	Email     string
	Name      string // "" when none
	Role      string
	CreatedAt time.Time
}

// InvitationRow is an open invitation.
type InvitationRow struct {
	ID        int64
	Email     string
	Role      string
	ExpiresAt time.Time
}

// InviteForm is the admin's invitation form.
type InviteForm struct {
	Email  string
	Role   string
	Errors FieldErrors
}
