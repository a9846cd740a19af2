package db_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// The SQL form of each rule says what its Go form says, for every value it
// can meet: every set of factors under every set of allowed methods, every
// role under every policy.
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
	for _, methods := range [][]string{nil, {db.MethodTOTP}, {db.MethodWebAuthn}, {db.MethodTOTP, db.MethodWebAuthn}} {
		p := db.Policy{Mode: db.PolicyRequired, Methods: methods}
		for f := db.Factors(0); f <= db.FactorTOTP|db.FactorWebAuthn; f++ {
			want := p.CompliantWith(f)
			if got := eval(p.CompliantSQL("x.f"), f, nil, nil); got != want {
				t.Errorf("methods %v, factors %d: compliantSQL %v, CompliantWith %v", methods, f, got, want)
			}
			if got := eval(p.NoncompliantSQL("x.f"), f, nil, nil); got == want {
				t.Errorf("methods %v, factors %d: noncompliantSQL %v, CompliantWith %v", methods, f, got, want)
			}
			m := db.MemberMFA{TOTP: f.Has(db.FactorTOTP)}
			if f.Has(db.FactorWebAuthn) {
				m.Keys = 2
			}
			if m.Compliant(p) != want || m.Factors() != f {
				t.Errorf("methods %v, factors %d: MemberMFA.Compliant %v, CompliantWith %v", methods, f, m.Compliant(p), want)
			}
		}
	}
	if db.HeldFactors(true, false) != db.FactorTOTP || db.HeldFactors(false, true) != db.FactorWebAuthn || db.HeldFactors(false, false) != 0 {
		t.Error("HeldFactors")
	}
	for _, mode := range []string{db.PolicyOff, db.PolicyOptional, db.PolicyRequired, db.PolicyRequiredForAdmins} {
		p := db.Policy{Mode: mode}
		for _, role := range []string{db.RoleOwner, db.RoleAdmin, db.RoleMember} {
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
