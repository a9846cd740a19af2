package db_test

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// The SQL form of each rule says what its Go form says, for every value it
// can meet: every set of factors, held by every role, under every set of
// allowed methods, with SMS kept from owners and admins or not; every role
// under every policy.
func TestRulesSQLMatchesGo(t *testing.T) {
	store, _ := dbtest.New(t)
	eval := func(cond string, args ...any) bool {
		t.Helper()
		var v int
		if err := store.DB().QueryRow(`SELECT CASE WHEN `+cond+` THEN 1 ELSE 0 END FROM (SELECT CAST(? AS BIGINT) AS f, CAST(? AS TEXT) AS role, CAST(? AS TEXT) AS mode) x`, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", cond, err)
		}
		return v == 1
	}
	all := db.FactorTOTP | db.FactorWebAuthn | db.FactorSMS
	if all != 7 {
		t.Fatalf("the factor bits are %d, want 1, 2 and 4", all)
	}
	roles := []string{db.RoleOwner, db.RoleAdmin, db.RoleMember}
	var methodSets [][]string
	for mask := 0; mask < 8; mask++ {
		var ms []string
		for i, m := range []string{db.MethodTOTP, db.MethodWebAuthn, db.MethodSMS} {
			if mask&(1<<i) != 0 {
				ms = append(ms, m)
			}
		}
		methodSets = append(methodSets, ms)
	}
	roleDependent := 0
	for _, methods := range methodSets {
		for _, forbidden := range []bool{false, true} {
			p := db.Policy{Mode: db.PolicyRequired, Methods: methods, SMSAdminsForbidden: forbidden}
			compliant, noncompliant := p.CompliantSQL("x.f", "x.role"), p.NoncompliantSQL("x.f", "x.role")
			if strings.Contains(compliant, "x.role") {
				roleDependent++
			}
			for f := db.Factors(0); f <= all; f++ {
				for _, role := range roles {
					want := p.CompliantWith(role, f)
					if got := eval(compliant, f, role, nil); got != want {
						t.Errorf("methods %v, admins forbidden %v, %s with factors %d: compliantSQL %v, CompliantWith %v", methods, forbidden, role, f, got, want)
					}
					if got := eval(noncompliant, f, role, nil); got == want {
						t.Errorf("methods %v, admins forbidden %v, %s with factors %d: noncompliantSQL %v, CompliantWith %v", methods, forbidden, role, f, got, want)
					}
					m := db.MemberMFA{User: db.User{Role: role}, TOTP: f.Has(db.FactorTOTP), SMS: f.Has(db.FactorSMS)}
					if f.Has(db.FactorWebAuthn) {
						m.Keys = 2
					}
					if m.Compliant(p) != want || m.Factors() != f {
						t.Errorf("methods %v, admins forbidden %v, %s with factors %d: MemberMFA.Compliant %v, CompliantWith %v", methods, forbidden, role, f, m.Compliant(p), want)
					}
				}
			}
		}
	}
	// The role is named only where SMS is allowed and kept from admins.
	if roleDependent != 4 {
		t.Errorf("%d policies have a compliance that depends on the role, want the 4 that allow SMS and keep it from admins", roleDependent)
	}
	// The admins rule itself, spelled out.
	p := db.Policy{Mode: db.PolicyRequired, Methods: []string{db.MethodTOTP, db.MethodSMS}, SMSAdminsForbidden: true}
	if !p.CompliantWith(db.RoleMember, db.FactorSMS) || p.CompliantWith(db.RoleAdmin, db.FactorSMS) || p.CompliantWith(db.RoleOwner, db.FactorSMS) ||
		!p.CompliantWith(db.RoleAdmin, db.FactorSMS|db.FactorTOTP) {
		t.Error("SMS kept from admins: a member's phone counts, an admin's or owner's does not, their app does")
	}
	if (db.Policy{Methods: []string{db.MethodTOTP}}).CompliantWith(db.RoleMember, db.FactorSMS) {
		t.Error("a phone counts under a policy that does not allow SMS")
	}
	for _, c := range []struct {
		totp, webauthn, sms bool
		want                db.Factors
	}{{true, false, false, db.FactorTOTP}, {false, true, false, db.FactorWebAuthn}, {false, false, true, db.FactorSMS},
		{true, true, true, all}, {false, false, false, 0}} {
		if got := db.HeldFactors(c.totp, c.webauthn, c.sms); got != c.want {
			t.Errorf("HeldFactors(%v, %v, %v) = %d, want %d", c.totp, c.webauthn, c.sms, got, c.want)
		}
	}
	if got := strings.Join(all.Methods(), ","); got != "totp,webauthn,sms" {
		t.Errorf("Methods = %s", got)
	}
	for _, mode := range []string{db.PolicyOff, db.PolicyOptional, db.PolicyRequired, db.PolicyRequiredForAdmins} {
		p := db.Policy{Mode: mode}
		for _, role := range roles {
			want := p.AppliesTo(role)
			if got := eval(p.CoversSQL("x.role"), 0, role, nil); got != want {
				t.Errorf("%s, %s: coversSQL %v, AppliesTo %v", mode, role, got, want)
			}
			if got := eval(db.PolicyCoversSQL("x.mode", "x.role"), 0, role, mode); got != want {
				t.Errorf("%s, %s: policyCoversSQL %v, AppliesTo %v", mode, role, got, want)
			}
		}
	}
}
