package db

import (
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
//   - compliance: Policy.CompliantWith (the factors a member holds), in SQL
//     Policy.compliantSQL and Policy.noncompliantSQL over users.mfa_factors.
//
// users.mfa_factors is the factor summary of migration 0007, exact inside
// the transaction of every change to the factor tables.

// Factors is the set of second-factor methods a member holds, as
// users.mfa_factors stores it. Recovery codes are never a factor.
type Factors int

const (
	FactorTOTP     Factors = 1 // a confirmed authenticator app
	FactorWebAuthn Factors = 2 // a passkey or security key

	allFactors = FactorTOTP | FactorWebAuthn
)

// HeldFactors is the set of a member who holds a confirmed authenticator
// app (totp) and at least one key (webauthn).
func HeldFactors(totp, webauthn bool) Factors {
	var f Factors
	if totp {
		f |= FactorTOTP
	}
	if webauthn {
		f |= FactorWebAuthn
	}
	return f
}

// Has reports whether the set holds every method of g.
func (f Factors) Has(g Factors) bool { return f&g == g }

// Methods names the methods held (MethodTOTP, MethodWebAuthn, in that
// order); never nil.
func (f Factors) Methods() []string {
	out := []string{}
	if f.Has(FactorTOTP) {
		out = append(out, MethodTOTP)
	}
	if f.Has(FactorWebAuthn) {
		out = append(out, MethodWebAuthn)
	}
	return out
}

// CompliantWith reports whether a member holding f holds a second factor
// the policy allows: the compliance rule. Whether the policy covers the
// member at all is AppliesTo's (and their mfa_deadline's) question.
func (p Policy) CompliantWith(f Factors) bool {
	return (f.Has(FactorTOTP) && p.Allows(MethodTOTP)) || (f.Has(FactorWebAuthn) && p.Allows(MethodWebAuthn))
}

// compliantSQL is a SQL condition over factors, an expression of a
// member's users.mfa_factors: CompliantWith. It lists the values that
// CompliantWith accepts, so it is a range of the indexes that start with
// (workspace_id, mfa_factors) and never a lookup in the factor tables.
func (p Policy) compliantSQL(factors string) string {
	return factorsIn(factors, p.CompliantWith)
}

// noncompliantSQL is the negation of compliantSQL, as a list of values too.
func (p Policy) noncompliantSQL(factors string) string {
	return factorsIn(factors, func(f Factors) bool { return !p.CompliantWith(f) })
}

// factorsIn is "(factors IN (…))" for the sets that keep accepts.
func factorsIn(factors string, keep func(Factors) bool) string {
	var in []string
	for f := Factors(0); f <= allFactors; f++ {
		if keep(f) {
			in = append(in, strconv.Itoa(int(f)))
		}
	}
	if len(in) == 0 {
		return `(1 = 0)`
	}
	return `(` + factors + ` IN (` + strings.Join(in, ", ") + `))`
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
