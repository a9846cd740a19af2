package views

import "time"

// AdminMemberView is the admin console's page about one member.
type AdminMemberView struct {
	ID                int64
	Email             string
	Name              string // "" when none
	Role              string
	Joined            time.Time
	Self              bool
	Factors           []FactorRow
	PendingTOTP       bool
	RecoveryRemaining int
	Guard             string // a lock or block of second-factor sign-in, if any
	Sessions          []SessionRow
	Activity          []ActivityRow
	Roles             []string // the roles the signed-in admin may give this member
	// Manage: the signed-in admin may change this member's factors,
	// sessions, trusted browsers and deadline (an admin may not an owner's).
	Manage bool
	Error  string
}

// FactorRow is one second factor in the admin's member view.
type FactorRow struct {
	Type     string // "Authenticator app", "Passkey", "Security key"
	Name     string
	Created  time.Time
	LastUsed time.Time
}
