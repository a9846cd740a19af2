package db

import (
	"slices"
	"strconv"
	"strings"
)

// The enforcement rules every read and write shares, each written once in
// Go with its SQL form generated from it, so that a page, a count, a scan
// and a transaction cannot disagree:
//
//   - coverage: Policy.AppliesTo (a member's role under a policy), in SQL
//     Policy.coversSQL (the policy known in Go) and policyCoversSQL (the
//     policy read from workspaces.mfa_policy);
//   - compliance: Policy.CompliantWith (the factors a member holds, and
//     their role, which decides whether SMS counts), in SQL
//     Policy.compliantSQL and Policy.noncompliantSQL over users.mfa_factors
//     and users.role.
//
// users.mfa_factors is the factor summary of migration 0007, exact inside
// the transaction of every change to the factor tables.

// Factors is the set of second-factor methods a member holds, as
// users.mfa_factors stores it. Recovery codes are never a factor.
type Factors int

const (
	FactorTOTP     Factors = 1 // a confirmed authenticator app
	FactorWebAuthn Factors = 2 // a passkey or security key
	FactorSMS      Factors = 4 // a verified phone

	allFactors = FactorTOTP | FactorWebAuthn | FactorSMS
)

// HeldFactors is the set of a member who holds a confirmed authenticator
// app (totp), at least one key (webauthn) and a verified phone (sms).
func HeldFactors(totp, webauthn, sms bool) Factors {
	var f Factors
	if totp {
		f |= FactorTOTP
	}
	if webauthn {
		f |= FactorWebAuthn
	}
	if sms {
		f |= FactorSMS
	}
	return f
}

// Has reports whether the set holds every method of g.
func (f Factors) Has(g Factors) bool { return f&g == g }

// Methods names the methods held (MethodTOTP, MethodWebAuthn, MethodSMS,
// in that order); never nil.
func (f Factors) Methods() []string {
	out := []string{}
	if f.Has(FactorTOTP) {
		out = append(out, MethodTOTP)
	}
	if f.Has(FactorWebAuthn) {
		out = append(out, MethodWebAuthn)
	}
	if f.Has(FactorSMS) {
		out = append(out, MethodSMS)
	}
	return out
}

// SMSAllowedFor reports whether a member with that role may use SMS: the
// policy allows it, and it does not keep owners and admins from it
// (SMSAdminsForbidden) when the role is one of those. A phone the policy
// does not allow the member is neither texted nor counted.
func (p Policy) SMSAllowedFor(role string) bool {
	return p.Allows(MethodSMS) && !(p.SMSAdminsForbidden && (role == RoleOwner || role == RoleAdmin))
}

// CompliantWith reports whether a member with that role holding f holds a
// second factor the policy allows them: the compliance rule. Whether the
// policy covers the member at all is AppliesTo's (and their mfa_deadline's)
// question.
func (p Policy) CompliantWith(role string, f Factors) bool {
	return (f.Has(FactorTOTP) && p.Allows(MethodTOTP)) || (f.Has(FactorWebAuthn) && p.Allows(MethodWebAuthn)) ||
		(f.Has(FactorSMS) && p.SMSAllowedFor(role))
}

// compliantSQL is a SQL condition over factors and role, expressions of a
// member's users.mfa_factors and users.role: CompliantWith. It lists the
// values that CompliantWith accepts, so it is a range of the indexes that
// start with (workspace_id, mfa_factors) and never a lookup in the factor
// tables; the role is named only where the answer depends on it (SMS kept
// from owners and admins).
func (p Policy) compliantSQL(factors, role string) string {
	return factorsIn(factors, role, p.CompliantWith)
}

// noncompliantSQL is the negation of compliantSQL, as lists of values too.
func (p Policy) noncompliantSQL(factors, role string) string {
	return factorsIn(factors, role, func(r string, f Factors) bool { return !p.CompliantWith(r, f) })
}

// roleFactors is a set of roles and the factor sets keep accepts for each
// of them.
type roleFactors struct {
	roles []string
	sets  []Factors
}

// factorGroups groups the roles by the factor sets keep accepts: one group
// when the role makes no difference.
func factorGroups(keep func(string, Factors) bool) []roleFactors {
	var groups []roleFactors
	for _, r := range roles {
		var sets []Factors
		for f := Factors(0); f <= allFactors; f++ {
			if keep(r, f) {
				sets = append(sets, f)
			}
		}
		found := false
		for i := range groups {
			if slices.Equal(groups[i].sets, sets) {
				groups[i].roles = append(groups[i].roles, r)
				found = true
				break
			}
		}
		if !found {
			groups = append(groups, roleFactors{roles: []string{r}, sets: sets})
		}
	}
	return groups
}

// factorsIn is "(factors IN (…))" for the sets that keep accepts whatever
// the role, or "((role IN (…) AND factors IN (…)) OR …)" where the role
// makes a difference.
func factorsIn(factors, role string, keep func(string, Factors) bool) string {
	groups := factorGroups(keep)
	in := func(sets []Factors) string {
		vals := make([]string, len(sets))
		for i, f := range sets {
			vals[i] = strconv.Itoa(int(f))
		}
		return factors + ` IN (` + strings.Join(vals, ", ") + `)`
	}
	if len(groups) == 1 {
		if len(groups[0].sets) == 0 {
			return `(1 = 0)`
		}
		return `(` + in(groups[0].sets) + `)`
	}
	var parts []string
	for _, g := range groups {
		if len(g.sets) > 0 {
			parts = append(parts, `(`+roleIn(role, g.roles)+` AND `+in(g.sets)+`)`)
		}
	}
	if len(parts) == 0 {
		return `(1 = 0)`
	}
	return `(` + strings.Join(parts, ` OR `) + `)`
}

// roleIn is "role IN ('owner', …)".
func roleIn(role string, rs []string) string {
	quoted := make([]string, len(rs))
	for i, r := range rs {
		quoted[i] = `'` + r + `'`
	}
	return role + ` IN (` + strings.Join(quoted, ", ") + `)`
}

// roles and policyModes are every value of users.role and
// workspaces.mfa_policy (their CHECK constraints).
var (
	roles       = []string{RoleOwner, RoleAdmin, RoleMember}
	policyModes = []string{PolicyOff, PolicyOptional, PolicyRequired, PolicyRequiredForAdmins}
)

// coversSQL is a SQL condition over role, an expression of a member's
// role: AppliesTo.
func (p Policy) coversSQL(role string) string {
	var in []string
	for _, r := range roles {
		if p.AppliesTo(r) {
			in = append(in, `'`+r+`'`)
		}
	}
	if len(in) == 0 {
		return `(1 = 0)`
	}
	return `(` + role + ` IN (` + strings.Join(in, ", ") + `))`
}

// policyCoversSQL is coversSQL for a policy read in the statement: a SQL
// condition over mode (an expression of workspaces.mfa_policy) and role.
func policyCoversSQL(mode, role string) string {
	var parts []string
	for _, m := range policyModes {
		if c := (Policy{Mode: m}).coversSQL(role); c != `(1 = 0)` {
			parts = append(parts, `(`+mode+` = '`+m+`' AND `+c+`)`)
		}
	}
	if len(parts) == 0 {
		return `(1 = 0)`
	}
	return `(` + strings.Join(parts, ` OR `) + `)`
}
