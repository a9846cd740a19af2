package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// dashboardFixture is a workspace with every standing the dashboard counts,
// reached through the store's own methods (so their refreshes of the
// factor summary are what is checked), a bulk of generated members, and a second
// workspace whose members must never be counted.
type dashboardFixture struct {
	store  *db.Store
	clock  *dbtest.Clock
	ws     db.Workspace
	other  db.Workspace
	byName map[string]db.User
}

func newDashboardFixture(t *testing.T) dashboardFixture {
	t.Helper()
	ctx := context.Background()
	store, clock := dbtest.New(t)
	f := dashboardFixture{store: store, clock: clock, byName: map[string]db.User{}}
	var err error
	if f.ws, err = store.CreateWorkspace(ctx, "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	if f.other, err = store.CreateWorkspace(ctx, "other", "Other"); err != nil {
		t.Fatal(err)
	}
	codes := func(n int, prefix string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("k:%s%d", prefix, i)
		}
		return out
	}
	member := func(ws db.Workspace, name, role string) db.User {
		u, err := store.CreateUser(ctx, ws.ID, name+"@"+ws.Slug+".test", role, "x", db.Meta{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ws.ID == f.ws.ID {
			f.byName[name] = u
		}
		clock.Advance(26 * time.Hour) // members join and enroll on different days
		return u
	}
	totp := func(ws db.Workspace, u db.User, hashes []string) {
		seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
		cred, err := store.StartTOTPEnrollment(ctx, ws.ID, u.ID, seal, clock.Now().Add(time.Hour), db.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(10 * time.Minute)
		if err := store.ConfirmTOTPEnrollment(ctx, ws.ID, u.ID, cred.ID, 1, hashes, db.Meta{}, db.OutboxMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	key := func(ws db.Workspace, u db.User, name string, hashes []string) db.WebAuthnCredential {
		c, err := store.AddWebAuthnCredential(ctx, db.WebAuthnCredential{WorkspaceID: ws.ID, UserID: u.ID, Name: name,
			CredentialID: []byte(fmt.Sprintf("%d-%s", u.ID, name)), PublicKey: []byte{1}}, hashes, db.Meta{}, db.OutboxMessage{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	useCodes := func(ws db.Workspace, u db.User, n int) {
		cs, err := store.UnusedRecoveryCodes(ctx, ws.ID, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs[:n] {
			if _, err := store.StepUp(ctx, ws.ID, u.ID, db.FactorUse{Method: "recovery_code", RecoveryCode: c.ID}, db.Meta{}, db.OutboxMessage{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The generated bulk (joined over 180 days, 60 % app, 10 % key, codes
	// used, deadlines around now) first, in both workspaces.
	dbtest.Members(t, store, f.ws.ID, 400, clock.Now())
	dbtest.Members(t, store, f.other.ID, 300, clock.Now())

	alice := member(f.ws, "alice", db.RoleOwner) // app, 10 codes
	totp(f.ws, alice, codes(10, "a"))
	bob := member(f.ws, "bob", db.RoleAdmin) // passkey only: disallowed under an app-only policy
	key(f.ws, bob, "yubikey", codes(10, "b"))
	carol := member(f.ws, "carol", db.RoleMember) // recovery codes left, no factor: not enrolled
	totp(f.ws, carol, codes(10, "c"))
	if _, err := store.RemoveTOTP(ctx, f.ws.ID, carol.ID, "", db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	member(f.ws, "dave", db.RoleAdmin)            // nothing: in grace or past deadline once required for admins
	member(f.ws, "erin", db.RoleAdmin)            // nothing, deadline extended below
	frank := member(f.ws, "frank", db.RoleMember) // an app set up but never confirmed
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	if _, err := store.StartTOTPEnrollment(ctx, f.ws.ID, frank.ID, seal, clock.Now().Add(time.Hour), db.Meta{}); err != nil {
		t.Fatal(err)
	}
	grace := member(f.ws, "grace", db.RoleMember) // app, 2 codes left: low
	totp(f.ws, grace, codes(10, "g"))
	useCodes(f.ws, grace, 8)
	heidi := member(f.ws, "heidi", db.RoleMember) // app, exactly 3 codes left: low; 4 for ivan: not
	totp(f.ws, heidi, codes(10, "h"))
	useCodes(f.ws, heidi, 7)
	ivan := member(f.ws, "ivan", db.RoleMember)
	totp(f.ws, ivan, codes(4, "i"))
	judy := member(f.ws, "judy", db.RoleAdmin) // app and two keys, one removed
	totp(f.ws, judy, codes(10, "j"))
	key(f.ws, judy, "phone", nil)
	k := key(f.ws, judy, "laptop", nil)
	if _, _, err := store.RemoveWebAuthnKey(ctx, f.ws.ID, judy.ID, k.ID, "", db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	mallory := member(f.ws, "mallory", db.RoleMember) // enrolled, then reset by an admin
	totp(f.ws, mallory, codes(10, "m"))
	key(f.ws, mallory, "key", nil)
	if _, err := store.ResetMFA(ctx, f.ws.ID, alice.ID, mallory.ID, true, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	olga := member(f.ws, "olga", db.RoleAdmin) // passkey and codes, all used
	key(f.ws, olga, "key", codes(2, "o"))
	useCodes(f.ws, olga, 2)

	// The other workspace: an admin with nothing and enrolled members.
	member(f.other, "zed", db.RoleAdmin)
	totp(f.other, member(f.other, "yann", db.RoleMember), codes(1, "y"))
	key(f.other, member(f.other, "xavi", db.RoleAdmin), "key", codes(1, "x"))

	// Required for admins, app only: the admins without an app get a
	// deadline 30 days out; erin gets 20 more days.
	p := db.DefaultPolicy()
	p.Mode, p.Methods = db.PolicyRequiredForAdmins, []string{db.MethodTOTP}
	if _, _, err := store.SetPolicy(ctx, f.ws.ID, alice.ID, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ExtendDeadline(ctx, f.ws.ID, alice.ID, f.byName["erin"].ID, 20, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.SetPolicy(ctx, f.other.ID, 0, db.PolicyChange{Policy: policy(db.PolicyRequired, 10)}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	return f
}

// memberFacts is what the obvious computation reads for one member, from
// the factor tables themselves (not the summary columns).
type memberFacts struct {
	id, created int64
	deadline    sql.NullInt64
	totp        bool
	keys        int
	codes       int
	first       sql.NullInt64
}

func slowFacts(t *testing.T, store *db.Store, workspaceID int64) []memberFacts {
	t.Helper()
	rows, err := store.DB().Query(`SELECT id, created_at, mfa_deadline FROM users WHERE workspace_id = ? ORDER BY id`, workspaceID)
	if err != nil {
		t.Fatal(err)
	}
	var out []memberFacts
	for rows.Next() {
		var m memberFacts
		if err := rows.Scan(&m.id, &m.created, &m.deadline); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	rows.Close()
	for i := range out {
		m := &out[i]
		err := store.DB().QueryRow(`SELECT
			EXISTS (SELECT 1 FROM totp_credentials WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL),
			(SELECT COUNT(*) FROM webauthn_credentials WHERE workspace_id = ? AND user_id = ?),
			(SELECT COUNT(*) FROM recovery_codes WHERE workspace_id = ? AND user_id = ? AND used_at IS NULL),
			(SELECT MIN(ts) FROM (SELECT confirmed_at ts FROM totp_credentials WHERE workspace_id = ? AND user_id = ? AND confirmed_at IS NOT NULL
				UNION ALL SELECT created_at FROM webauthn_credentials WHERE workspace_id = ? AND user_id = ?) AS factors)`,
			workspaceID, m.id, workspaceID, m.id, workspaceID, m.id, workspaceID, m.id, workspaceID, m.id).Scan(&m.totp, &m.keys, &m.codes, &m.first)
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// slowCoverage is the dashboard's definition, member by member.
func slowCoverage(facts []memberFacts, p db.Policy, now time.Time) db.Coverage {
	var c db.Coverage
	for _, m := range facts {
		c.Members++
		compliant := m.totp && p.Allows(db.MethodTOTP) || m.keys > 0 && p.Allows(db.MethodWebAuthn)
		switch {
		case compliant:
			c.Enrolled++
			if m.codes <= db.LowRecoveryCodesThreshold {
				c.LowRecoveryCodes++
			}
		case m.deadline.Valid && m.deadline.Int64 > now.Unix():
			c.InGrace++
			if d := time.Unix(m.deadline.Int64, 0).UTC(); c.NextDeadline.IsZero() || d.Before(c.NextDeadline) {
				c.NextDeadline = d
			}
		case m.deadline.Valid:
			c.PastDeadline++
		}
		if !m.totp && m.keys == 0 {
			c.NoMFA++
		}
	}
	return c
}

// slowHistory is the chart's definition, member by member.
func slowHistory(facts []memberFacts, days int, now time.Time) []db.EnrollmentDay {
	today := now.UTC().Truncate(24 * time.Hour)
	out := make([]db.EnrollmentDay, days)
	for i := range out {
		day := today.AddDate(0, 0, i-days+1)
		end := day.AddDate(0, 0, 1).Unix()
		out[i].Day = day
		for _, m := range facts {
			if m.created < end {
				out[i].Members++
			}
			if m.first.Valid && m.first.Int64 < end {
				out[i].Enrolled++
			}
		}
	}
	return out
}

// Coverage, EnrollmentHistory and Dashboard give exactly what the obvious
// per-member computation gives, for every policy's methods and at several
// times (members in grace, then past their deadline; days before some
// members joined), and never count the other workspace; the members list
// agrees figure by figure.
func TestCoverageMatchesSlowComputation(t *testing.T) {
	t.Parallel() // its own database file and clock
	f := newDashboardFixture(t)
	ctx := context.Background()
	facts := slowFacts(t, f.store, f.ws.ID)
	if len(facts) != 400+12 {
		t.Fatalf("fixture has %d members", len(facts))
	}
	now := f.clock.Now()
	methods := [][]string{{db.MethodTOTP, db.MethodWebAuthn}, {db.MethodTOTP}, {db.MethodWebAuthn}, {}}
	for _, ms := range methods {
		for _, at := range []time.Time{now, now.Add(-20 * 24 * time.Hour), now.Add(40 * 24 * time.Hour), now.Add(60 * 24 * time.Hour)} {
			p := db.DefaultPolicy()
			p.Mode, p.Methods = db.PolicyRequiredForAdmins, ms
			got, err := f.store.Coverage(ctx, f.ws.ID, p, at)
			if err != nil {
				t.Fatal(err)
			}
			if want := slowCoverage(facts, p, at); !cmp.Equal(got, want) {
				t.Errorf("Coverage(methods %v, at %s) -got +want:\n%s", ms, at.Format(time.DateOnly), cmp.Diff(got, want))
			}
		}
	}
	p, err := f.store.Policy(ctx, f.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.store.Coverage(ctx, f.ws.ID, p, now)
	if err != nil {
		t.Fatal(err)
	}
	// Under "admins, app only" the admins without an app (bob and olga hold
	// a passkey, dave and erin nothing) are in grace for 30 days, erin for
	// 20 more; the generated members are not covered.
	later, err := f.store.Coverage(ctx, f.ws.ID, p, now.Add(40*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c.InGrace != 4 || c.PastDeadline != 0 || later.InGrace != 1 || later.PastDeadline != 3 ||
		later.NextDeadline.Sub(c.NextDeadline) != 20*24*time.Hour {
		t.Errorf("Coverage(policy) now %+v, in 40 days %+v", c, later)
	}
	for status, got := range map[string]int{"": c.Members, db.StatusEnrolled: c.Enrolled, db.StatusInGrace: c.InGrace,
		db.StatusPastDeadline: c.PastDeadline, db.StatusLowRecoveryCodes: c.LowRecoveryCodes, db.StatusNoMFA: c.NoMFA} {
		if want := countMembersMFA(t, f.store, f.ws.ID, status, p, now); got != want {
			t.Errorf("Coverage %q = %d, MembersMFA lists %d", status, got, want)
		}
	}

	for _, days := range []int{1, 2, 30, 90, 400} {
		for _, at := range []time.Time{now, now.Add(-10 * 24 * time.Hour)} {
			got, err := f.store.EnrollmentHistory(ctx, f.ws.ID, days, at)
			if err != nil {
				t.Fatal(err)
			}
			want := slowHistory(facts, days, at)
			if !cmp.Equal(got, want) {
				t.Errorf("EnrollmentHistory(%d days, at %s) -got +want:\n%s", days, at.Format(time.DateOnly), cmp.Diff(got, want))
			}
			// The dashboard's single snapshot derives the days before the
			// window from the coverage totals: the same figures.
			gotC, gotH, err := f.store.Dashboard(ctx, f.ws.ID, p, days, at)
			if err != nil {
				t.Fatal(err)
			}
			if wantC := slowCoverage(facts, p, at); !cmp.Equal(gotC, wantC) || !cmp.Equal(gotH, want) {
				t.Errorf("Dashboard(%d days, at %s) -got +want:\n%s%s", days, at.Format(time.DateOnly), cmp.Diff(gotC, wantC), cmp.Diff(gotH, want))
			}
		}
	}
}

func countMembersMFA(t *testing.T, store *db.Store, workspaceID int64, status string, p db.Policy, now time.Time) int {
	t.Helper()
	n, after := 0, ""
	for {
		ms, err := store.MembersMFA(context.Background(), workspaceID, db.MemberMFAFilter{Status: status, Policy: p, Now: now, After: after, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		n += len(ms)
		if len(ms) < 200 {
			return n
		}
		after = db.EmailKey(ms[len(ms)-1].Email)
	}
}

// The per-member counts behind the dashboard follow every change at once:
// an enrollment, a used code, a reset and a removed key show on the next
// read, with no cache in between.
func TestCoverageFresh(t *testing.T) {
	t.Parallel() // its own database file and clock
	f := newDashboardFixture(t)
	ctx := context.Background()
	store, now := f.store, f.clock.Now()
	p, err := store.Policy(ctx, f.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		got, err := store.Coverage(ctx, f.ws.ID, p, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := slowCoverage(slowFacts(t, store, f.ws.ID), p, now); !cmp.Equal(got, want) {
			t.Fatalf("after %s: Coverage -got +want:\n%s", step, cmp.Diff(got, want))
		}
		var drift int
		if err := store.DB().QueryRow(`SELECT COUNT(*) FROM users u WHERE
			mfa_factors != CASE WHEN EXISTS (SELECT 1 FROM totp_credentials t WHERE t.workspace_id = u.workspace_id AND t.user_id = u.id AND t.confirmed_at IS NOT NULL) THEN 1 ELSE 0 END
				+ CASE WHEN EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.workspace_id = u.workspace_id AND w.user_id = u.id) THEN 2 ELSE 0 END
			OR mfa_codes != (SELECT COUNT(*) FROM recovery_codes r WHERE r.workspace_id = u.workspace_id AND r.user_id = u.id AND r.used_at IS NULL)
			OR mfa_first_at IS DISTINCT FROM (SELECT MIN(ts) FROM (
				SELECT confirmed_at ts FROM totp_credentials t WHERE t.workspace_id = u.workspace_id AND t.user_id = u.id AND t.confirmed_at IS NOT NULL
				UNION ALL SELECT created_at FROM webauthn_credentials w WHERE w.workspace_id = u.workspace_id AND w.user_id = u.id) AS factors)`).Scan(&drift); err != nil {
			t.Fatal(err)
		}
		if drift != 0 {
			t.Fatalf("after %s: %d members' summary columns differ from their factor rows", step, drift)
		}
	}
	before, err := store.Coverage(ctx, f.ws.ID, p, now)
	if err != nil {
		t.Fatal(err)
	}
	check("the fixture")

	dave := f.byName["dave"]
	enrollTOTP(t, store, f.ws.ID, dave.ID, f.clock)
	check("dave enrolls an app")
	after, _ := store.Coverage(ctx, f.ws.ID, p, now)
	if after.Enrolled != before.Enrolled+1 || after.InGrace != before.InGrace-1 {
		t.Errorf("dave's enrollment: coverage %+v, then %+v", before, after)
	}

	if _, err := store.ResetMFA(ctx, f.ws.ID, f.byName["alice"].ID, dave.ID, true, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	check("dave's reset")
	if again, _ := store.Coverage(ctx, f.ws.ID, p, now); again.Enrolled != before.Enrolled {
		t.Errorf("after the reset Enrolled = %d, want %d", again.Enrolled, before.Enrolled)
	}

	if err := store.RegenerateRecoveryCodes(ctx, f.ws.ID, f.byName["grace"].ID, []string{"k:1", "k:2", "k:3", "k:4"}, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	check("grace regenerates her codes")

	if _, err := store.DB().Exec(`DELETE FROM users WHERE workspace_id = ? AND id = ?`, f.ws.ID, f.byName["judy"].ID); err != nil {
		t.Fatal(err)
	}
	check("judy leaves")
}

// An empty workspace has all zeros and a flat history.
func TestCoverageEmptyWorkspace(t *testing.T) {
	store, clock := dbtest.New(t)
	ctx := context.Background()
	ws, err := store.CreateWorkspace(ctx, "empty", "Empty")
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.Coverage(ctx, ws.ID, db.DefaultPolicy(), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c != (db.Coverage{}) {
		t.Errorf("Coverage(empty) = %+v", c)
	}
	h, err := store.EnrollmentHistory(ctx, ws.ID, 3, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[2].Members != 0 || h[2].Enrolled != 0 || !h[2].Day.Equal(clock.Now().UTC().Truncate(24*time.Hour)) {
		t.Errorf("EnrollmentHistory(empty) = %+v", h)
	}
}
