package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// memberSummary is what users holds about a member's factors, or what the
// factor rows say it should be.
type memberSummary struct {
	Factors  db.Factors
	Codes    int64
	FirstAt  sql.NullInt64
	Reenroll int64
}

// storedSummaries reads the summary columns of every member.
func storedSummaries(t *testing.T, store *db.Store) map[int64]memberSummary {
	t.Helper()
	rows, err := store.DB().Query(`SELECT id, mfa_factors, mfa_codes, mfa_first_at, mfa_reenroll FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]memberSummary{}
	for rows.Next() {
		var id int64
		var s memberSummary
		if err := rows.Scan(&id, &s.Factors, &s.Codes, &s.FirstAt, &s.Reenroll); err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// plainSummaries computes every member's summary from the factor tables,
// the plain way: counts and earliest dates per table, combined in Go.
func plainSummaries(t *testing.T, store *db.Store) map[int64]memberSummary {
	t.Helper()
	rows, err := store.DB().Query(`SELECT u.id,
		(SELECT COUNT(*) FROM totp_credentials t WHERE t.workspace_id = u.workspace_id AND t.user_id = u.id AND t.confirmed_at IS NOT NULL),
		(SELECT COUNT(*) FROM webauthn_credentials w WHERE w.workspace_id = u.workspace_id AND w.user_id = u.id),
		(SELECT COUNT(*) FROM recovery_codes r WHERE r.workspace_id = u.workspace_id AND r.user_id = u.id AND r.used_at IS NULL),
		(SELECT MIN(t.confirmed_at) FROM totp_credentials t WHERE t.workspace_id = u.workspace_id AND t.user_id = u.id),
		(SELECT MIN(w.created_at) FROM webauthn_credentials w WHERE w.workspace_id = u.workspace_id AND w.user_id = u.id),
		(SELECT COUNT(*) FROM sms_phones p WHERE p.workspace_id = u.workspace_id AND p.user_id = u.id AND p.verified_at IS NOT NULL),
		(SELECT MIN(p.verified_at) FROM sms_phones p WHERE p.workspace_id = u.workspace_id AND p.user_id = u.id)
		FROM users u`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]memberSummary{}
	for rows.Next() {
		var id, apps, keys, codes, phones int64
		var appAt, keyAt, phoneAt sql.NullInt64
		if err := rows.Scan(&id, &apps, &keys, &codes, &appAt, &keyAt, &phones, &phoneAt); err != nil {
			t.Fatal(err)
		}
		s := memberSummary{Factors: db.HeldFactors(apps > 0, keys > 0, phones > 0), Codes: codes, FirstAt: appAt}
		for _, at := range []sql.NullInt64{keyAt, phoneAt} {
			if at.Valid && (!s.FirstAt.Valid || at.Int64 < s.FirstAt.Int64) {
				s.FirstAt = at
			}
		}
		out[id] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// deadlineOf reads a member's mfa_since and mfa_deadline.
func deadlineOf(t *testing.T, store *db.Store, id int64) (since, deadline sql.NullInt64) {
	t.Helper()
	if err := store.DB().QueryRow(`SELECT mfa_since, mfa_deadline FROM users WHERE id = ?`, id).Scan(&since, &deadline); err != nil {
		t.Fatal(err)
	}
	return since, deadline
}

// Every store method that changes a member's factors, codes or their
// dates leaves the member's summary columns equal to the plain computation
// from the factor tables (for everyone, so no other member's summary moves
// with it), and a member flagged for re-enrollment who holds a factor
// again is no longer flagged, losing the reset's deadline unless the
// policy covers them.
func TestFactorSummaryFollowsEveryChange(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	meta, none := db.Meta{}, db.OutboxMessage{}
	mustWS := func(slug string) db.Workspace {
		w, err := store.CreateWorkspace(ctx, slug, slug)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	acme, globex := mustWS("acme"), mustWS("globex")
	member := func(ws db.Workspace, name, role string) db.User {
		u, err := store.CreateUser(ctx, ws.ID, name+"@"+ws.Slug+".test", role, "x", meta, 0)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	alice, bob, carol := member(acme, "alice", db.RoleOwner), member(acme, "bob", db.RoleAdmin), member(acme, "carol", db.RoleMember)
	dave, erin, frank := member(acme, "dave", db.RoleMember), member(acme, "erin", db.RoleAdmin), member(acme, "frank", db.RoleMember)
	hank := member(acme, "hank", db.RoleMember)
	gina := member(globex, "gina", db.RoleMember)
	p := db.Policy{Mode: db.PolicyRequiredForAdmins, Methods: []string{db.MethodTOTP, db.MethodWebAuthn, db.MethodSMS}, GraceDays: 14, ReminderDays: []int{7}}
	if _, _, err := store.SetPolicy(ctx, acme.ID, 0, db.PolicyChange{Policy: p,
		Recovery: &db.RecoverySettings{SelfService: true, WaitHours: db.MinRecoveryWaitHours}}, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SetSMSSettings(ctx, acme.ID, 0, db.SMSSettings{Countries: []string{"GB"}, DailyCap: 100, MonthlyBudgetTexts: 100, MonthlyBudgetMicros: 1_000_000}, meta); err != nil {
		t.Fatal(err)
	}

	steps := 0
	check := func(step string) {
		t.Helper()
		steps++
		got, want := storedSummaries(t, store), plainSummaries(t, store)
		if len(got) != len(want) {
			t.Fatalf("after %s: %d members, %d computed", step, len(got), len(want))
		}
		for id, w := range want {
			g := got[id]
			if g.Factors != w.Factors || g.Codes != w.Codes || g.FirstAt != w.FirstAt {
				t.Fatalf("after %s: member %d's summary is factors %d, codes %d, first %v; the factor rows say %d, %d, %v",
					step, id, g.Factors, g.Codes, g.FirstAt, w.Factors, w.Codes, w.FirstAt)
			}
			if g.Reenroll == 1 && w.Factors != 0 {
				t.Fatalf("after %s: member %d holds factors %d and is still flagged for re-enrollment", step, id, w.Factors)
			}
		}
		clock.Advance(time.Minute) // each step's dates differ
	}
	seal := func(int64) (string, []byte) { return "k", []byte("ciphertext") }
	codes := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("k:%s%d", prefix, i)
		}
		return out
	}
	enrollApp := func(u db.User, hashes []string) {
		t.Helper()
		c, err := store.StartTOTPEnrollment(ctx, u.WorkspaceID, u.ID, seal, clock.Now().Add(time.Hour), meta)
		if err != nil {
			t.Fatal(err)
		}
		check(u.Email + " starts an app")
		if err := store.ConfirmTOTPEnrollment(ctx, u.WorkspaceID, u.ID, c.ID, 1, hashes, meta, none); err != nil {
			t.Fatal(err)
		}
		check(u.Email + " confirms the app")
	}
	addKey := func(u db.User, name string, hashes []string) db.WebAuthnCredential {
		t.Helper()
		k, err := store.AddWebAuthnCredential(ctx, db.WebAuthnCredential{WorkspaceID: u.WorkspaceID, UserID: u.ID, Name: name,
			CredentialID: []byte(u.Email + name), PublicKey: []byte{1}}, hashes, meta, none)
		if err != nil {
			t.Fatal(err)
		}
		check(u.Email + " adds " + name)
		return k
	}
	textCode := func(u db.User, purpose string, b db.SessionBinding) db.SMSSendResult {
		t.Helper()
		res, err := store.RequestSMSCode(ctx, db.SMSCodeRequest{WorkspaceID: u.WorkspaceID, UserID: u.ID, Purpose: purpose, Binding: b,
			CodeHash: "h", Seal: sealText, PriceMicros: 1000, NumberKey: numberKey, IPKey: "ip:" + u.Email})
		if err != nil || res.Result != db.ResultSent {
			t.Fatalf("RequestSMSCode(%s, %s) = %+v, %v", u.Email, purpose, res, err)
		}
		return res
	}
	phones := 0
	addPhone := func(u db.User, hashes []string) {
		t.Helper()
		phones++
		e164 := fmt.Sprintf("+4477009001%02d", phones)
		b := db.SessionBinding{SessionID: fmt.Sprintf("s-phone-%d", phones), StepUpAt: clock.Now()}
		p, err := store.StartSMSEnrollment(ctx, u.WorkspaceID, u.ID, b, e164, "GB", masked(e164), meta)
		if err != nil {
			t.Fatal(err)
		}
		check(u.Email + " starts a phone")
		res := textCode(u, db.SMSPurposeSetup, b)
		if _, err := store.ConfirmSMSEnrollment(ctx, u.WorkspaceID, u.ID, p.ID, res.CodeID, b, hashes, meta, none); err != nil {
			t.Fatal(err)
		}
		check(u.Email + " verifies the phone")
	}
	useCode := func(u db.User) {
		t.Helper()
		cs, err := store.UnusedRecoveryCodes(ctx, u.WorkspaceID, u.ID)
		if err != nil || len(cs) == 0 {
			t.Fatalf("unused codes of %s: %d, %v", u.Email, len(cs), err)
		}
		if _, err := store.StepUp(ctx, u.WorkspaceID, u.ID, db.FactorUse{Method: "recovery_code", RecoveryCode: cs[0].ID}, meta, none); err != nil {
			t.Fatal(err)
		}
		check(u.Email + " uses a recovery code")
	}
	check("the members joined")

	// alice: an app with codes, codes used, a key, new codes, the app removed.
	enrollApp(alice, codes("a", 10))
	useCode(alice)
	useCode(alice)
	addKey(alice, "yubikey", nil)
	if err := store.RegenerateRecoveryCodes(ctx, acme.ID, alice.ID, codes("A", 4), meta, none); err != nil {
		t.Fatal(err)
	}
	check("alice regenerates her codes")
	if _, err := store.RemoveTOTP(ctx, acme.ID, alice.ID, "", meta, none); err != nil {
		t.Fatal(err)
	}
	check("alice removes her app")

	// carol: two keys, the first with codes; both removed (the codes go
	// with the last).
	k1 := addKey(carol, "phone", codes("c", 10))
	k2 := addKey(carol, "laptop", nil)
	for _, k := range []db.WebAuthnCredential{k1, k2} {
		if _, _, err := store.RemoveWebAuthnKey(ctx, acme.ID, carol.ID, k.ID, "", meta, none); err != nil {
			t.Fatal(err)
		}
		check("carol removes " + k.Name)
	}

	// hank: a phone with codes, a step-up with a texted code, a new number
	// that replaces it, then the phone removed (the codes go with it).
	addPhone(hank, codes("h", 10))
	if err := store.CreateUserSession(ctx, db.UserSession{ID: "s-hank", WorkspaceID: acme.ID, UserID: hank.ID, TokenHash: "t", AAL: "aal2",
		AuthTime: clock.Now(), LastSeenAt: clock.Now(), ExpiresAt: clock.Now().Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	sent := textCode(hank, db.SMSPurposeStepUp, db.SessionBinding{SessionID: "s-hank"})
	if _, err := store.StepUp(ctx, acme.ID, hank.ID, db.FactorUse{Method: db.MethodSMS, SMSCodeID: sent.CodeID, SessionID: "s-hank"}, meta, none); err != nil {
		t.Fatal(err)
	}
	check("hank steps up with a texted code")
	addPhone(hank, nil)
	if _, err := store.RemoveSMSPhone(ctx, acme.ID, hank.ID, "", meta, none); err != nil {
		t.Fatal(err)
	}
	check("hank removes his phone")

	// bob: an app bound to his session, confirmed after a counted guess;
	// a phone; then an admin's reset.
	b := db.SessionBinding{SessionID: "s-bob", StepUpAt: clock.Now()}
	c, err := store.StartSessionTOTPEnrollment(ctx, acme.ID, bob.ID, b, seal, clock.Now().Add(time.Hour), meta)
	if err != nil {
		t.Fatal(err)
	}
	check("bob starts an app in his session")
	if err := store.ConfirmCountedTOTPEnrollment(ctx, acme.ID, bob.ID, c.ID, 1, b, codes("b", 10), meta, none); err != nil {
		t.Fatal(err)
	}
	check("bob confirms it")
	addPhone(bob, nil)
	if _, err := store.ResetMFA(ctx, acme.ID, alice.ID, bob.ID, true, meta, none); err != nil {
		t.Fatal(err)
	}
	check("alice resets bob")

	// Staff enroll through their links: an app for sam, a key for tom.
	sam, err := store.CreateStaff(ctx, "sam@gatehouse.test", db.StaffRole, "x", "h:sam", clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tom, err := store.CreateStaff(ctx, "tom@gatehouse.test", db.StaffRole, "x", "h:tom", clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	check("sam and tom join the staff")
	sc, err := store.StartTOTPEnrollment(ctx, sam.WorkspaceID, sam.ID, seal, clock.Now().Add(time.Hour), meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnrollStaffTOTP(ctx, sam, []string{"h:sam"}, sc.ID, 1, codes("s", 10), meta, none); err != nil {
		t.Fatal(err)
	}
	check("sam enrolls an app with his link")
	if _, err := store.EnrollStaffKey(ctx, tom, []string{"h:tom"}, db.WebAuthnCredential{WorkspaceID: tom.WorkspaceID, UserID: tom.ID,
		Name: "key", CredentialID: []byte("tom"), PublicKey: []byte{1}}, codes("t", 10), meta, none); err != nil {
		t.Fatal(err)
	}
	check("tom enrolls a key with his link")

	// dave, a member the policy does not cover: reset by support, he must
	// re-enroll; once he holds a key again the flag and the reset's
	// deadline are gone.
	enrollApp(dave, codes("d", 10))
	cs, err := store.OpenCase(ctx, sam, acme.Slug, dave.ID, db.Verification{Method: "video_id_document", EvidenceRef: "ref"}, clock.Now().Add(time.Hour), meta)
	if err != nil {
		t.Fatal(err)
	}
	mail := func(db.Case) (db.OutboxMessage, error) { return none, nil }
	if _, err := store.ApproveCase(ctx, cs.ID, tom, 0, "h:cancel-dave", mail, meta); err != nil {
		t.Fatal(err)
	}
	if n, _, err := store.RunSupportCases(ctx, mail); err != nil || n != 1 {
		t.Fatalf("RunSupportCases = %d, %v", n, err)
	}
	check("support resets dave")
	if v, _ := store.MustReenroll(ctx, acme.ID, dave.ID); !v {
		t.Fatal("dave is not flagged for re-enrollment after support's reset")
	}
	if _, deadline := deadlineOf(t, store, dave.ID); !deadline.Valid || deadline.Int64 > clock.Now().Unix() {
		t.Fatalf("dave's deadline after the reset = %v, want one that has passed", deadline)
	}
	addKey(dave, "new key", codes("D", 10))
	if v, _ := store.MustReenroll(ctx, acme.ID, dave.ID); v {
		t.Error("dave holds a key again and is still flagged")
	}
	if since, deadline := deadlineOf(t, store, dave.ID); since.Valid || deadline.Valid {
		t.Errorf("dave, not covered, kept the reset's deadline: since %v, deadline %v", since, deadline)
	}

	// erin, an admin the policy covers: recovery by email; once she holds
	// an app again the flag goes and the deadline stays.
	enrollApp(erin, codes("e", 10))
	addPhone(erin, nil)
	if err := store.RequestSelfRecovery(ctx, acme.ID, erin.ID, "h:link-erin", clock.Now().Add(time.Hour), 5, time.Hour, meta, none); err != nil {
		t.Fatal(err)
	}
	if _, err := store.StartSelfRecovery(ctx, acme.ID, []string{"h:link-erin"}, "h:cancel-erin",
		func(db.User, time.Time) (db.OutboxMessage, error) { return none, nil }, meta); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Duration(db.MinRecoveryWaitHours)*time.Hour + time.Minute)
	if n, err := store.RunSelfRecoveries(ctx, func(db.User, db.Workspace) (db.OutboxMessage, error) { return none, nil }); err != nil || n != 1 {
		t.Fatalf("RunSelfRecoveries = %d, %v", n, err)
	}
	check("erin's recovery by email resets her")
	_, resetDeadline := deadlineOf(t, store, erin.ID)
	if v, _ := store.MustReenroll(ctx, acme.ID, erin.ID); !v || !resetDeadline.Valid || resetDeadline.Int64 > clock.Now().Unix() {
		t.Fatalf("after her recovery erin is flagged %v with deadline %v, want flagged with one that has passed", v, resetDeadline)
	}
	enrollApp(erin, codes("E", 10))
	if v, _ := store.MustReenroll(ctx, acme.ID, erin.ID); v {
		t.Error("erin holds an app again and is still flagged")
	}
	if _, deadline := deadlineOf(t, store, erin.ID); deadline != resetDeadline {
		t.Errorf("erin, covered, has deadline %v after re-enrolling, want the reset's %v", deadline, resetDeadline)
	}

	// frank's enrollment expires and the sweep removes it.
	if _, err := store.StartTOTPEnrollment(ctx, acme.ID, frank.ID, seal, clock.Now().Add(time.Minute), meta); err != nil {
		t.Fatal(err)
	}
	check("frank starts an app")
	clock.Advance(2 * time.Hour)
	if _, err := store.DeleteExpiredMFA(ctx); err != nil {
		t.Fatal(err)
	}
	check("frank's enrollment expires")
	fb := db.SessionBinding{SessionID: "s-frank", StepUpAt: clock.Now()}
	if _, err := store.StartSMSEnrollment(ctx, acme.ID, frank.ID, fb, "+447700900999", "GB", masked("+447700900999"), meta); err != nil {
		t.Fatal(err)
	}
	textCode(frank, db.SMSPurposeSetup, fb)
	check("frank starts a phone")
	clock.Advance(25 * time.Hour)
	if _, err := store.DeleteExpiredMFA(ctx); err != nil {
		t.Fatal(err)
	}
	check("frank's pending phone is swept")

	// gina, in another workspace, and a member who leaves.
	enrollApp(gina, codes("g", 10))
	useCode(gina)
	if _, err := store.DB().Exec(`DELETE FROM users WHERE workspace_id = ? AND id = ?`, acme.ID, carol.ID); err != nil {
		t.Fatal(err)
	}
	check("carol leaves")

	// Nothing changed behind the store's back, so a recount of the whole
	// workspace changes nothing either.
	before := storedSummaries(t, store)
	if err := store.RecountFactorSummaries(ctx, acme.ID); err != nil {
		t.Fatal(err)
	}
	if after := storedSummaries(t, store); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("RecountFactorSummaries changed summaries the store kept:\n%v\n%v", before, after)
	}
	if steps < 45 {
		t.Errorf("only %d steps checked", steps)
	}
}

// RecountFactorSummaries sets right what was written behind the store's
// back, for the workspace's members only, re-enrollment rule included.
func TestRecountFactorSummaries(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	acme, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	globex, _ := store.CreateWorkspace(ctx, "globex", "Globex")
	now := clock.Now().Unix()
	dbtest.Members(t, store, acme.ID, 50, clock.Now())
	alice, _ := store.CreateUser(ctx, acme.ID, "alice@acme.test", db.RoleMember, "x", db.Meta{}, 0)
	gina, _ := store.CreateUser(ctx, globex.ID, "gina@globex.test", db.RoleMember, "x", db.Meta{}, 0)
	for _, u := range []db.User{alice, gina} {
		if _, err := store.DB().Exec(`UPDATE users SET mfa_reenroll = 1, mfa_since = ?, mfa_deadline = ? WHERE id = ?`, now, now, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := store.DB().Exec(`INSERT INTO webauthn_credentials (workspace_id, user_id, name, credential_id, public_key, created_at)
			VALUES (?, ?, 'key', ?, ?, ?)`, u.WorkspaceID, u.ID, []byte(u.Email), []byte{1}, now-60); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.RecountFactorSummaries(ctx, acme.ID); err != nil {
		t.Fatal(err)
	}
	got, want := storedSummaries(t, store), plainSummaries(t, store)
	for id, w := range want {
		g := got[id]
		stale := g.Factors != w.Factors || g.Codes != w.Codes || g.FirstAt != w.FirstAt
		if stale != (id == gina.ID) {
			t.Errorf("member %d (alice %d, gina %d): summary %+v, plain %+v", id, alice.ID, gina.ID, g, w)
		}
	}
	if got[alice.ID].Reenroll != 0 || got[gina.ID].Reenroll != 1 {
		t.Errorf("re-enrollment flags: alice %d (recounted), gina %d (not)", got[alice.ID].Reenroll, got[gina.ID].Reenroll)
	}
	if since, deadline := deadlineOf(t, store, alice.ID); since.Valid || deadline.Valid {
		t.Errorf("alice, not covered, kept the reset's deadline: %v, %v", since, deadline)
	}
}

// Migration 0016 drops the summary and re-enrollment triggers (and only
// those: the audit trail's stay); its Down brings them back.
func TestSQLiteMigrationRulesInGo(t *testing.T) {
	ctx := context.Background()
	store, _ := dbtest.NewSQLite(t)
	triggers := func() []string {
		t.Helper()
		rows, err := store.DB().Query(`SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
		}
		return names
	}
	if got := fmt.Sprint(triggers()); got != "[audit_events_no_delete audit_events_no_update]" {
		t.Errorf("triggers after every migration: %s", got)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, store.DB(), os.DirFS("migrations/sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	if n := len(triggers()); n != 12 {
		t.Errorf("%d triggers after 0016's Down, want the 10 of 0007 and 0013 and the 2 of the audit trail: %v", n, triggers())
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(triggers()); got != "[audit_events_no_delete audit_events_no_update]" {
		t.Errorf("triggers after 0016 again: %s", got)
	}
}
