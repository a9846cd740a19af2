package db_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// smsRig is a workspace (acme) that allows SMS to GB and US numbers, on a
// clock set to the middle of a UTC month.
type smsRig struct {
	t     *testing.T
	ctx   context.Context
	store *db.Store
	clock *dbtest.Clock
	ws    db.Workspace
	seq   atomic.Int64
}

var smsMonth = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func newSMSRig(t *testing.T) *smsRig {
	t.Helper()
	store, clock := dbtest.New(t)
	clock.Set(smsMonth)
	r := &smsRig{t: t, ctx: context.Background(), store: store, clock: clock}
	var err error
	if r.ws, err = store.CreateWorkspace(r.ctx, "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	p := db.DefaultPolicy()
	p.Methods = []string{db.MethodTOTP, db.MethodWebAuthn, db.MethodSMS}
	if _, _, err := store.SetPolicy(r.ctx, r.ws.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	r.settings(func(st *db.SMSSettings) {})
	return r
}

// settings changes the workspace's SMS settings from the defaults with
// GB and US allowed.
func (r *smsRig) settings(change func(*db.SMSSettings)) {
	r.t.Helper()
	st := db.SMSSettings{Countries: []string{"GB", "US"}, DailyCap: db.DefaultSMSDailyCap,
		MonthlyBudgetTexts: db.DefaultSMSMonthlyTexts, MonthlyBudgetMicros: db.DefaultSMSMonthlyMicros}
	change(&st)
	if _, err := r.store.SetSMSSettings(r.ctx, r.ws.ID, 0, st, db.Meta{}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *smsRig) policy(change func(*db.Policy)) {
	r.t.Helper()
	p, err := r.store.Policy(r.ctx, r.ws.ID)
	if err != nil {
		r.t.Fatal(err)
	}
	change(&p)
	if _, _, err := r.store.SetPolicy(r.ctx, r.ws.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *smsRig) member(name, role string) db.User {
	r.t.Helper()
	u, err := r.store.CreateUser(r.ctx, r.ws.ID, name+"@acme.test", role, "x", db.Meta{}, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	return u
}

// masked shows a number the way the app does: "+44 •••• ••• 123".
func masked(e164 string) string { return e164[:3] + " •••• ••• " + e164[len(e164)-3:] }

// numberKey is a keyed hash of a number, as the app computes it.
func numberKey(e164 string) string {
	h := sha256.Sum256([]byte("test key:" + e164))
	return hex.EncodeToString(h[:12])
}

func sealText(id int64) (string, []byte) { return "k1", []byte(fmt.Sprintf("sealed-%d", id)) }

// req is a request for a code, with a client IP of the member's own so
// that only the caps a test means to meet are met.
func (r *smsRig) req(u db.User, purpose string, b db.SessionBinding, challengeID string) db.SMSCodeRequest {
	return db.SMSCodeRequest{WorkspaceID: r.ws.ID, UserID: u.ID, Purpose: purpose, ChallengeID: challengeID, Binding: b,
		CodeHash: fmt.Sprintf("hash-%d", r.seq.Add(1)), Seal: sealText, PriceMicros: 40_000, NumberKey: numberKey,
		IPKey: "ip:" + u.Email, Meta: db.Meta{IP: "192.0.2.1", UserAgent: "test"}}
}

func (r *smsRig) send(req db.SMSCodeRequest) db.SMSSendResult {
	r.t.Helper()
	res, err := r.store.RequestSMSCode(r.ctx, req)
	if err != nil {
		r.t.Fatalf("RequestSMSCode(%s for %d): %v", req.Purpose, req.UserID, err)
	}
	return res
}

func (r *smsRig) mustSend(req db.SMSCodeRequest) db.SMSSendResult {
	r.t.Helper()
	res := r.send(req)
	if res.Result != db.ResultSent {
		r.t.Fatalf("RequestSMSCode(%s for %d) = %+v, want sent", req.Purpose, req.UserID, res)
	}
	return res
}

func (r *smsRig) binding(u db.User, session string) db.SessionBinding {
	return db.SessionBinding{SessionID: session, StepUpAt: r.clock.Now()}
}

// enroll verifies a phone for u through the store's own steps.
func (r *smsRig) enroll(u db.User, e164, country string, hashes []string) db.SMSEnrollment {
	r.t.Helper()
	b := r.binding(u, fmt.Sprintf("s-%s-%d", u.Email, r.seq.Add(1)))
	p, err := r.store.StartSMSEnrollment(r.ctx, r.ws.ID, u.ID, b, e164, country, masked(e164), db.Meta{})
	if err != nil {
		r.t.Fatal(err)
	}
	res := r.mustSend(r.req(u, db.SMSPurposeSetup, b, ""))
	enr, err := r.store.ConfirmSMSEnrollment(r.ctx, r.ws.ID, u.ID, p.ID, res.CodeID, b, hashes, db.Meta{}, db.OutboxMessage{})
	if err != nil {
		r.t.Fatal(err)
	}
	return enr
}

// verifiedPhone gives u a verified phone behind the store's back (a
// fixture: enrolling through the store texts, and fixtures must not meet
// the caps they set up).
func (r *smsRig) verifiedPhone(u db.User, e164 string) {
	r.t.Helper()
	now := r.clock.Now().Unix()
	if _, err := r.store.DB().Exec(`INSERT INTO sms_phones (workspace_id, user_id, e164, country, masked, created_at, verified_at)
		VALUES (?, ?, ?, 'GB', ?, ?, ?)`, r.ws.ID, u.ID, e164, masked(e164), now, now); err != nil {
		r.t.Fatal(err)
	}
	if err := r.store.RecountFactorSummaries(r.ctx, r.ws.ID); err != nil {
		r.t.Fatal(err)
	}
}

func (r *smsRig) challenge(u db.User) db.Challenge {
	r.t.Helper()
	now := r.clock.Now()
	ch := db.Challenge{ID: fmt.Sprintf("ch-%d", r.seq.Add(1)), WorkspaceID: r.ws.ID, UserID: u.ID, PasswordAt: now, CreatedAt: now,
		ExpiresAt: now.Add(3 * time.Hour)}
	if err := r.store.CreateChallenge(r.ctx, ch); err != nil {
		r.t.Fatal(err)
	}
	return ch
}

func (r *smsRig) session(u db.User, id string) db.UserSession {
	r.t.Helper()
	now := r.clock.Now()
	us := db.UserSession{ID: id, WorkspaceID: r.ws.ID, UserID: u.ID, TokenHash: "t-" + id, AAL: "aal2", AuthTime: now, LastSeenAt: now,
		ExpiresAt: now.Add(time.Hour)}
	if err := r.store.CreateUserSession(r.ctx, us, nil); err != nil {
		r.t.Fatal(err)
	}
	return us
}

func (r *smsRig) events(event string) []db.AuditEvent {
	r.t.Helper()
	evs, err := r.store.AuditEvents(r.ctx, r.ws.ID, db.AuditFilter{Event: event, Limit: 1000})
	if err != nil {
		r.t.Fatal(err)
	}
	return evs
}

func (r *smsRig) count(q string, args ...any) int64 {
	r.t.Helper()
	return count(r.t, r.store, q, args...)
}

func TestSMSEnrollment(t *testing.T) {
	r := newSMSRig(t)
	ctx, store, ws := r.ctx, r.store, r.ws
	setTrustedDays(t, store, ws, 30)
	alice := r.member("alice", db.RoleMember)
	const gb, us = "+447700900123", "+12025550123"
	b := r.binding(alice, "s-alice")

	if _, err := store.StartSMSEnrollment(ctx, ws.ID, alice.ID, b, "+33612345678", "FR", masked("+33612345678"), db.Meta{}); !errors.Is(err, db.ErrSMSNotAllowed) {
		t.Fatalf("a country the workspace does not allow: %v, want ErrSMSNotAllowed", err)
	}
	if _, err := store.StartSMSEnrollment(ctx, ws.ID, alice.ID, db.SessionBinding{}, gb, "GB", masked(gb), db.Meta{}); err == nil {
		t.Fatal("an enrollment no session started was accepted")
	}
	for _, m := range []string{"", gb, "+44 7700 900123", "447700900•••"} {
		if _, err := store.StartSMSEnrollment(ctx, ws.ID, alice.ID, b, gb, "GB", m, db.Meta{}); err == nil {
			t.Fatalf("masked form %q accepted", m)
		}
	}
	p, err := store.StartSMSEnrollment(ctx, ws.ID, alice.ID, b, gb, "GB", masked(gb), db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Verified() || p.E164 != gb || p.Masked != masked(gb) {
		t.Fatalf("pending phone = %+v", p)
	}
	// Pending is no factor, and belongs to the session (and step-up) that
	// started it.
	if has, _ := store.HasSecondFactor(ctx, ws.ID, alice.ID); has {
		t.Fatal("a pending phone is a second factor")
	}
	if _, err := store.SMSPhone(ctx, ws.ID, alice.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("SMSPhone of a pending phone: %v", err)
	}
	if got, err := store.PendingSMSPhone(ctx, ws.ID, alice.ID, b); err != nil || got.ID != p.ID {
		t.Fatalf("PendingSMSPhone = %+v, %v", got, err)
	}
	other := db.SessionBinding{SessionID: "s-other", StepUpAt: b.StepUpAt}
	restepped := db.SessionBinding{SessionID: b.SessionID, StepUpAt: b.StepUpAt.Add(time.Minute)}
	for _, ob := range []db.SessionBinding{other, restepped} {
		if _, err := store.PendingSMSPhone(ctx, ws.ID, alice.ID, ob); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("PendingSMSPhone from %+v: %v", ob, err)
		}
		if _, err := store.RequestSMSCode(ctx, r.req(alice, db.SMSPurposeSetup, ob, "")); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("a setup code asked from %+v: %v", ob, err)
		}
	}
	res := r.mustSend(r.req(alice, db.SMSPurposeSetup, b, ""))
	if res.PhoneID != p.ID || res.Masked != masked(gb) || !res.ExpiresAt.Equal(r.clock.Now().Add(db.SMSCodeTTL)) {
		t.Fatalf("sent = %+v", res)
	}
	if n := r.count(`SELECT COUNT(*) FROM sms_outbox WHERE id = ? AND verified_number = 0 AND to_e164 = ?`, res.MessageID, gb); n != 1 {
		t.Fatal("the setup text is not queued as a text to a never-verified number")
	}
	code, err := store.LiveSMSCode(ctx, ws.ID, alice.ID, db.SMSPurposeSetup, b.SessionID)
	if err != nil || code.ID != res.CodeID || code.PhoneID != p.ID {
		t.Fatalf("LiveSMSCode = %+v, %v", code, err)
	}
	if _, err := store.LiveSMSCode(ctx, ws.ID, alice.ID, db.SMSPurposeSetup, "s-other"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("another session's setup code: %v", err)
	}
	if _, err := store.ConfirmSMSEnrollment(ctx, ws.ID, alice.ID, p.ID, code.ID, other, nil, db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("confirmed from another session: %v", err)
	}
	if _, err := store.CreateTrustedDevice(ctx, ws.ID, alice.ID, "h:device", "browser", r.clock.Now().Add(time.Hour), db.Meta{}); err != nil {
		t.Fatal(err)
	}
	hashes := []string{"k:r1", "k:r2", "k:r3"}
	enr, err := store.ConfirmSMSEnrollment(ctx, ws.ID, alice.ID, p.ID, code.ID, b, hashes, db.Meta{}, db.OutboxMessage{Kind: "sms_added", To: alice.Email, Subject: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if enr.Replaced || !enr.Phone.Verified() || enr.Phone.ID != p.ID {
		t.Fatalf("ConfirmSMSEnrollment = %+v", enr)
	}
	if has, _ := store.HasSecondFactor(ctx, ws.ID, alice.ID); !has {
		t.Fatal("a verified phone is no second factor")
	}
	if u, _ := store.UserByID(ctx, ws.ID, alice.ID); r.count(`SELECT mfa_factors FROM users WHERE id = ?`, u.ID) != int64(db.FactorSMS) {
		t.Fatal("the factor summary does not hold the phone")
	}
	if n, _ := store.RecoveryCodesRemaining(ctx, ws.ID, alice.ID); n != len(hashes) {
		t.Fatalf("%d recovery codes after the first factor, want %d", n, len(hashes))
	}
	if r.count(`SELECT COUNT(*) FROM trusted_devices WHERE user_id = ? AND revoked_at IS NULL`, alice.ID) != 0 {
		t.Fatal("a trusted browser survived the new factor")
	}
	if r.count(`SELECT COUNT(*) FROM outbox WHERE kind = 'sms_added' AND to_addr = ?`, alice.Email) != 1 {
		t.Fatal("no notice queued")
	}
	if _, err := store.ConfirmSMSEnrollment(ctx, ws.ID, alice.ID, p.ID, code.ID, b, nil, db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("confirmed twice: %v", err)
	}

	// A new number: pending beside the verified one, which it replaces
	// when verified, removing it like any factor.
	keep, gone := r.session(alice, "s-alice-2"), r.session(alice, "s-alice-laptop")
	b2 := r.binding(alice, keep.ID)
	p2, err := store.StartSMSEnrollment(ctx, ws.ID, alice.ID, b2, us, "US", masked(us), db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	added := r.events(db.EventSMSPhoneAdded)
	if len(added) != 2 || added[0].Details["country_mismatch"] != true || added[1].Details["country_mismatch"] != nil {
		t.Fatalf("phone_added events: %+v", added)
	}
	if got, err := store.SMSPhone(ctx, ws.ID, alice.ID); err != nil || got.ID != p.ID {
		t.Fatalf("the verified phone while another is pending: %+v, %v", got, err)
	}
	before, _ := store.UserByID(ctx, ws.ID, alice.ID)
	res2 := r.mustSend(r.req(alice, db.SMSPurposeSetup, b2, ""))
	enr2, err := store.ConfirmSMSEnrollment(ctx, ws.ID, alice.ID, p2.ID, res2.CodeID, b2, nil, db.Meta{}, db.OutboxMessage{})
	if err != nil {
		t.Fatal(err)
	}
	if !enr2.Replaced || enr2.SessionEpoch != before.SessionEpoch+1 || enr2.SessionsEnded != 1 {
		t.Fatalf("replacing the phone = %+v (epoch was %d)", enr2, before.SessionEpoch)
	}
	if got, err := store.SMSPhone(ctx, ws.ID, alice.ID); err != nil || got.ID != p2.ID || got.Country != "US" {
		t.Fatalf("the verified phone after the replacement: %+v, %v", got, err)
	}
	if s, _ := store.UserSession(ctx, ws.ID, keep.ID); !s.Active() {
		t.Error("the session that replaced the phone was ended")
	}
	if s, _ := store.UserSession(ctx, ws.ID, gone.ID); s.Active() {
		t.Error("another session survived the replaced phone")
	}
	if n := r.count(`SELECT COUNT(*) FROM sms_phones WHERE user_id = ?`, alice.ID); n != 1 {
		t.Fatalf("%d phones after the replacement", n)
	}
	if removed := r.events(db.EventSMSPhoneRemoved); len(removed) != 1 || removed[0].Details["phone"] != masked(gb) {
		t.Fatalf("phone_removed events: %+v", removed)
	}
	if n, _ := store.RecoveryCodesRemaining(ctx, ws.ID, alice.ID); n != len(hashes) {
		t.Fatalf("replacing the phone changed the recovery codes: %d", n)
	}
}

// The role rule: with SMS kept from owners and admins, their phones are
// neither texted, nor spent, nor counted, and a member's still are; every
// reader of compliance agrees.
func TestSMSKeptFromAdmins(t *testing.T) {
	r := newSMSRig(t)
	ctx, store, ws := r.ctx, r.store, r.ws
	bob, dave := r.member("bob", db.RoleAdmin), r.member("dave", db.RoleMember)
	r.policy(func(p *db.Policy) { p.Methods = []string{db.MethodTOTP} })
	if _, err := store.StartSMSEnrollment(ctx, ws.ID, bob.ID, r.binding(bob, "s"), "+447700900001", "GB", masked("+447700900001"), db.Meta{}); !errors.Is(err, db.ErrSMSNotAllowed) {
		t.Fatalf("a phone where the policy leaves SMS out: %v, want ErrSMSNotAllowed", err)
	}
	r.policy(func(p *db.Policy) {
		p.Mode, p.Methods = db.PolicyRequired, []string{db.MethodTOTP, db.MethodSMS}
	})
	r.enroll(bob, "+447700900001", "GB", nil)
	r.enroll(dave, "+447700900002", "GB", nil)
	// A code bob asked for before the switch.
	r.session(bob, "s-bob")
	live := r.mustSend(r.req(bob, db.SMSPurposeStepUp, db.SessionBinding{SessionID: "s-bob"}, ""))

	// Bob, an admin covered only by his phone, cannot keep SMS from
	// admins; the system can.
	forbid := db.SMSSettings{Countries: []string{"GB"}, AdminsForbidden: true, DailyCap: 10, MonthlyBudgetTexts: 10, MonthlyBudgetMicros: 1_000_000}
	if _, err := store.SetSMSSettings(ctx, ws.ID, bob.ID, forbid, db.Meta{}); !errors.Is(err, db.ErrEnrollFirst) {
		t.Fatalf("bob keeps SMS from himself: %v, want ErrEnrollFirst", err)
	}
	if _, err := store.SetSMSSettings(ctx, ws.ID, 0, forbid, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	p, err := store.Policy(ctx, ws.ID)
	if err != nil || !p.SMSAdminsForbidden {
		t.Fatalf("the policy does not carry the setting: %+v, %v", p, err)
	}
	// SetPolicy keeps it whatever its input says.
	p.SMSAdminsForbidden = false
	if p, _, err = store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil || !p.SMSAdminsForbidden {
		t.Fatalf("SetPolicy changed the SMS setting: %+v, %v", p, err)
	}
	if ok, _ := store.Compliant(ctx, ws.ID, bob.ID, p); ok {
		t.Error("bob, an admin, is compliant with a phone kept from admins")
	}
	if ok, _ := store.Compliant(ctx, ws.ID, dave.ID, p); !ok {
		t.Error("dave, a member, is not compliant with his phone")
	}
	if res := r.send(r.req(bob, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(bob).ID)); res.Result != db.ResultNotAllowed {
		t.Errorf("a code for bob = %+v, want not allowed", res)
	}
	if _, err := store.StepUp(ctx, ws.ID, bob.ID, db.FactorUse{Method: db.MethodSMS, SMSCodeID: live.CodeID, SessionID: "s-bob"}, db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrSMSNotAllowed) {
		t.Errorf("bob spends a code sent before the switch: %v, want ErrSMSNotAllowed", err)
	}
	if _, err := store.StartSMSEnrollment(ctx, ws.ID, bob.ID, r.binding(bob, "s"), "+447700900003", "GB", masked("+447700900003"), db.Meta{}); !errors.Is(err, db.ErrSMSNotAllowed) {
		t.Errorf("bob adds a phone: %v, want ErrSMSNotAllowed", err)
	}
	r.mustSend(r.req(dave, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(dave).ID))
	// Coverage, the members list and the policy's impact agree.
	c, err := store.Coverage(ctx, ws.ID, p, r.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Members != 2 || c.Enrolled != 1 || c.InGrace != 1 || c.NoMFA != 0 {
		t.Errorf("coverage = %+v, want dave enrolled and bob in grace", c)
	}
	for status, want := range map[string]int{db.StatusEnrolled: 1, db.StatusInGrace: 1, db.StatusPastDeadline: 0, db.StatusNoMFA: 0} {
		if got := countMembersMFA(t, store, ws.ID, status, p, r.clock.Now()); got != want {
			t.Errorf("MembersMFA(%s) = %d, want %d", status, got, want)
		}
	}
	ms, _ := store.MembersMFA(ctx, ws.ID, db.MemberMFAFilter{Policy: p, Now: r.clock.Now(), Limit: 10})
	for _, m := range ms {
		if !m.SMS || m.Compliant(p) != (m.ID == dave.ID) {
			t.Errorf("MembersMFA: %s holds SMS %v, compliant %v", m.Email, m.SMS, m.Compliant(p))
		}
	}
	_, im, err := store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: p, DryRun: true}, db.Meta{})
	if err != nil || im.Covered != 2 || im.NonCompliant != 1 {
		t.Errorf("impact = %+v, %v; want 2 covered, 1 non-compliant", im, err)
	}
	// Bob's phone does not make him compliant, so the policy does not keep
	// it; dave's does.
	if req, err := store.FactorRequired(ctx, ws.ID, bob.ID, db.MethodSMS, 0); err != nil || req {
		t.Errorf("FactorRequired(bob's phone) = %v, %v", req, err)
	}
	if req, err := store.FactorRequired(ctx, ws.ID, dave.ID, db.MethodSMS, 0); err != nil || !req {
		t.Errorf("FactorRequired(dave's phone) = %v, %v", req, err)
	}
}

func TestSMSSettingsAndPolicy(t *testing.T) {
	ctx := context.Background()
	store, _ := dbtest.New(t)
	ws, _ := store.CreateWorkspace(ctx, "acme", "Acme")
	st, err := store.SMSSettings(ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := db.SMSSettings{DailyCap: 500, MonthlyBudgetTexts: 5000, MonthlyBudgetMicros: 50_000_000}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("a new workspace's SMS settings = %+v, want %+v (no country)", st, want)
	}
	if slices := db.DefaultPolicy().Methods; strings.Contains(strings.Join(slices, ","), db.MethodSMS) {
		t.Error("SMS is a default method")
	}
	for _, bad := range []db.SMSSettings{
		{Countries: []string{"GBR"}}, {Countries: []string{"1A"}}, {DailyCap: -1}, {DailyCap: db.MaxSMSDailyCap + 1},
		{MonthlyBudgetTexts: -1}, {MonthlyBudgetMicros: -1}, {MonthlyBudgetMicros: db.MaxSMSMonthlyMicros + 1},
	} {
		if _, err := store.SetSMSSettings(ctx, ws.ID, 0, bad, db.Meta{}); err == nil {
			t.Errorf("SetSMSSettings(%+v) accepted", bad)
		}
	}
	got, err := store.SetSMSSettings(ctx, ws.ID, 0, db.SMSSettings{Countries: []string{"us", " gb", "US"}, DailyCap: 20, MonthlyBudgetTexts: 100, MonthlyBudgetMicros: 5_000_000}, db.Meta{IP: "192.0.2.9"})
	if err != nil || strings.Join(got.Countries, ",") != "GB,US" {
		t.Fatalf("SetSMSSettings = %+v, %v", got, err)
	}
	if st, _ := store.SMSSettings(ctx, ws.ID); strings.Join(st.Countries, ",") != "GB,US" || st.DailyCap != 20 || !st.AllowsCountry("GB") || st.AllowsCountry("FR") {
		t.Errorf("stored settings = %+v", st)
	}
	evs, _ := store.AuditEvents(ctx, ws.ID, db.AuditFilter{Event: db.EventSMSSettingsChanged, Limit: 10})
	if len(evs) != 1 || evs[0].IP != "192.0.2.9" || fmt.Sprint(evs[0].Details["new"].(map[string]any)["countries"]) != "[GB US]" {
		t.Errorf("settings audit = %+v", evs)
	}
	for _, c := range []struct {
		methods []string
		ok      bool
		norm    string
	}{{[]string{"sms"}, false, ""}, {[]string{"sms", "totp"}, true, "totp,sms"}, {[]string{"sms", "webauthn", "sms"}, true, "webauthn,sms"}, {[]string{"voice"}, false, ""}} {
		p := db.DefaultPolicy()
		p.Methods = c.methods
		err := p.Validate()
		if (err == nil) != c.ok || (c.ok && strings.Join(p.Methods, ",") != c.norm) {
			t.Errorf("Validate(%v) = %v, methods %v", c.methods, err, p.Methods)
		}
	}
}

// A resend within 30 s is refused; after it, the new code voids the live
// one and carries its failures, so resending never resets them; a code
// tried five times is dead, and so is its challenge's texting.
func TestSMSCooldownAndResend(t *testing.T) {
	r := newSMSRig(t)
	ctx, store, ws := r.ctx, r.store, r.ws
	alice := r.member("alice", db.RoleMember)
	r.verifiedPhone(alice, "+447700900123")
	ch := r.challenge(alice)
	first := r.mustSend(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, ch.ID))
	r.clock.Advance(10 * time.Second)
	if res := r.send(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, ch.ID)); res.Result != db.ResultCooldown ||
		!res.RetryAt.Equal(r.clock.Now().Add(20*time.Second)) {
		t.Fatalf("a resend after 10 s = %+v, want a cooldown until 20 s from now", res)
	}
	for range 2 {
		if _, err := store.SMSCodeFailed(ctx, ws.ID, alice.ID, first.CodeID); err != nil {
			t.Fatal(err)
		}
	}
	r.clock.Advance(20 * time.Second)
	second := r.mustSend(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, ch.ID))
	live, err := store.LiveSMSCode(ctx, ws.ID, alice.ID, db.SMSPurposeChallenge, ch.ID)
	if err != nil || live.ID != second.CodeID || live.Failures != 2 {
		t.Fatalf("the live code after a resend = %+v, %v; want the new one with the 2 failures carried", live, err)
	}
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: db.MethodSMS, SMSCodeID: first.CodeID}, r.sessionFor(alice), db.OutboxMessage{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("the voided code passed the challenge: %v", err)
	}
	if _, err := store.SMSCodeFailed(ctx, ws.ID, alice.ID, first.CodeID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a voided code counted a failure: %v", err)
	}
	for i := 3; i <= db.SMSCodeMaxFailures; i++ {
		if n, err := store.SMSCodeFailed(ctx, ws.ID, alice.ID, second.CodeID); err != nil || n != i {
			t.Fatalf("failure %d = %d, %v", i, n, err)
		}
	}
	if _, err := store.LiveSMSCode(ctx, ws.ID, alice.ID, db.SMSPurposeChallenge, ch.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a code with five failures is live: %v", err)
	}
	if _, err := store.SMSCodeFailed(ctx, ws.ID, alice.ID, second.CodeID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a sixth failure was counted: %v", err)
	}
	r.clock.Advance(time.Minute)
	queued := r.count(`SELECT COUNT(*) FROM sms_outbox`)
	if _, err := store.RequestSMSCode(ctx, r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, ch.ID)); !errors.Is(err, db.ErrSMSCodesExhausted) {
		t.Fatalf("a resend after five failures: %v, want ErrSMSCodesExhausted", err)
	}
	if r.count(`SELECT COUNT(*) FROM sms_outbox`) != queued {
		t.Fatal("a dead code was texted")
	}
	// Another challenge (the member signed in again) starts afresh.
	if res := r.mustSend(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(alice).ID)); res.CodeID == 0 {
		t.Fatal("no code")
	}
}

func (r *smsRig) sessionFor(u db.User) db.UserSession {
	now := r.clock.Now()
	return db.UserSession{ID: fmt.Sprintf("us-%d", r.seq.Add(1)), WorkspaceID: r.ws.ID, UserID: u.ID, TokenHash: "t", AAL: "aal2",
		AuthTime: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
}

// A code is spent once (twenty racing spends: one gets through), only for
// what it was sent for, and only while it lives.
func TestSMSCodeSpentOnce(t *testing.T) {
	r := newSMSRig(t)
	ctx, store, ws := r.ctx, r.store, r.ws
	alice := r.member("alice", db.RoleMember)
	r.verifiedPhone(alice, "+447700900123")
	stepUp := func(codeID int64, session string) error {
		_, err := store.StepUp(ctx, ws.ID, alice.ID, db.FactorUse{Method: db.MethodSMS, SMSCodeID: codeID, SessionID: session}, db.Meta{}, db.OutboxMessage{})
		return err
	}

	for _, id := range []string{"s1", "s2", "s3"} {
		r.session(alice, id)
	}
	if _, err := store.RequestSMSCode(ctx, r.req(alice, db.SMSPurposeStepUp, db.SessionBinding{SessionID: "s-nobody"}, "")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a step-up code for no session of the member: %v", err)
	}
	res := r.mustSend(r.req(alice, db.SMSPurposeStepUp, db.SessionBinding{SessionID: "s1"}, ""))
	if err := stepUp(res.CodeID, "s2"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("another session's step-up code: %v", err)
	}
	if err := store.SignInWithFactor(ctx, db.FactorUse{Method: db.MethodSMS, SMSCodeID: res.CodeID, SessionID: "s1"}, r.sessionFor(alice)); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a texted code as a whole sign-in: %v", err)
	}
	var ok, gone atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := stepUp(res.CodeID, "s1"); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, db.ErrNotFound):
				gone.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || gone.Load() != 19 {
		t.Fatalf("20 racing spends of one code: %d through, %d refused; want 1 and 19", ok.Load(), gone.Load())
	}
	if used := r.events(db.EventSMSCodeUsed); len(used) != 1 || used[0].Details["phone"] != masked("+447700900123") {
		t.Fatalf("code_used events: %+v", used)
	}
	if p, _ := store.SMSPhone(ctx, ws.ID, alice.ID); !p.LastUsedAt.Equal(r.clock.Now()) {
		t.Errorf("last used %v", p.LastUsedAt)
	}

	// A sign-in code: only its own challenge, not a step-up.
	ch, other := r.challenge(alice), r.challenge(alice)
	sent := r.mustSend(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, ch.ID))
	if err := stepUp(sent.CodeID, "s1"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a sign-in code for a step-up: %v", err)
	}
	if _, err := store.PassChallenge(ctx, other, db.FactorUse{Method: db.MethodSMS, SMSCodeID: sent.CodeID}, r.sessionFor(alice), db.OutboxMessage{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("another challenge's code: %v", err)
	}
	// Expiry, on the clock: alive at 4:59, dead at 5:00.
	r.clock.Advance(db.SMSCodeTTL - time.Second)
	if _, err := store.LiveSMSCode(ctx, ws.ID, alice.ID, db.SMSPurposeChallenge, ch.ID); err != nil {
		t.Fatalf("a code at 4:59: %v", err)
	}
	r.clock.Advance(time.Second)
	if _, err := store.LiveSMSCode(ctx, ws.ID, alice.ID, db.SMSPurposeChallenge, ch.ID); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a code at 5:00: %v", err)
	}
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: db.MethodSMS, SMSCodeID: sent.CodeID}, r.sessionFor(alice), db.OutboxMessage{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("an expired code passed: %v", err)
	}
	// A live one passes its challenge, once.
	r.clock.Advance(time.Minute)
	fresh := r.mustSend(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, ch.ID))
	for i := range db.SMSCodeMaxFailures - 1 {
		if _, err := store.SMSCodeFailed(ctx, ws.ID, alice.ID, fresh.CodeID); err != nil {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: db.MethodSMS, SMSCodeID: fresh.CodeID}, r.sessionFor(alice), db.OutboxMessage{}); err != nil {
		t.Fatalf("a live code with four failures: %v", err)
	}
	if err := store.ConsumeFactor(ctx, ws.ID, alice.ID, db.FactorUse{Method: db.MethodSMS, SMSCodeID: fresh.CodeID, SessionID: "s1"}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a spent code again: %v", err)
	}
	// A fifth failure kills a code before it is spent (a new window of the
	// number's 15 minutes).
	r.clock.Advance(db.SMSNumberWindow)
	dead := r.mustSend(r.req(alice, db.SMSPurposeStepUp, db.SessionBinding{SessionID: "s3"}, ""))
	for range db.SMSCodeMaxFailures {
		if _, err := store.SMSCodeFailed(ctx, ws.ID, alice.ID, dead.CodeID); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.ConsumeFactor(ctx, ws.ID, alice.ID, db.FactorUse{Method: db.MethodSMS, SMSCodeID: dead.CodeID, SessionID: "s3"}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a code with five failures was spent: %v", err)
	}
}

// Each cap, one at a time: per number (15 minutes, a day, across members),
// per member, per IP, the workspace's daily cap and its budget in texts
// and in money; the admins are emailed once a month.
func TestSMSCaps(t *testing.T) {
	const number = "+447700900123"
	t.Run("Number", func(t *testing.T) {
		r := newSMSRig(t)
		var members []db.User
		for i := range 4 {
			u := r.member(fmt.Sprintf("m%d", i), db.RoleMember)
			r.verifiedPhone(u, number)
			members = append(members, u)
		}
		start := r.clock.Now()
		for i := range 3 {
			r.mustSend(r.req(members[0], db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(members[0]).ID))
			if i < 2 {
				r.clock.Advance(time.Minute)
			}
		}
		// The same number through another member: capped too.
		res := r.send(r.req(members[1], db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(members[1]).ID))
		if res.Result != db.ResultNumberCapped || !res.RetryAt.Equal(start.Add(db.SMSNumberWindow)) {
			t.Fatalf("a 4th text in 15 minutes = %+v, want number capped until %v", res, start.Add(db.SMSNumberWindow))
		}
		if th := r.events(db.EventSMSThrottled); len(th) != 1 || th[0].Details["limit"] != "number_15m" {
			t.Fatalf("throttled events: %+v", th)
		}
		// Ten a day: three windows of three, then one.
		for w, u := range members[1:] {
			r.clock.Set(start.Add(time.Duration(w+1) * db.SMSNumberWindow))
			for range 3 {
				if len(r.events(db.EventSMSCodeSent)) == db.SMSNumberDayLimit {
					break
				}
				r.mustSend(r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(u).ID))
			}
		}
		if res := r.send(r.req(members[3], db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(members[3]).ID)); res.Result != db.ResultNumberCapped ||
			!res.RetryAt.Equal(start.Add(24*time.Hour)) {
			t.Fatalf("an 11th text in a day = %+v, want number capped until a day after the first", res)
		}
		r.clock.Set(start.Add(24 * time.Hour))
		r.mustSend(r.req(members[3], db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(members[3]).ID))
	})

	t.Run("Member", func(t *testing.T) {
		r := newSMSRig(t)
		alice := r.member("alice", db.RoleMember)
		start := r.clock.Now()
		b := r.binding(alice, "s-alice")
		for i := range db.SMSMemberHourLimit + 1 {
			e164 := fmt.Sprintf("+4477009001%02d", i)
			if _, err := r.store.StartSMSEnrollment(r.ctx, r.ws.ID, alice.ID, b, e164, "GB", masked(e164), db.Meta{}); err != nil {
				t.Fatal(err)
			}
			res := r.send(r.req(alice, db.SMSPurposeSetup, b, ""))
			if i < db.SMSMemberHourLimit && res.Result != db.ResultSent {
				t.Fatalf("text %d = %+v", i+1, res)
			}
			if i == db.SMSMemberHourLimit {
				if res.Result != db.ResultMemberLimited || !res.RetryAt.Equal(start.Add(time.Hour)) {
					t.Fatalf("a 6th text to the member in an hour = %+v", res)
				}
				// The number's counters, taken before the member's refused,
				// were given back.
				if n := r.count(`SELECT COALESCE(SUM(failures), 0) FROM throttles WHERE key IN (?, ?)`,
					"sms_number_15m:"+numberKey(e164), "sms_number_day:"+numberKey(e164)); n != 0 {
					t.Fatalf("the refused text kept %d places of its number's counters", n)
				}
			}
			r.clock.Advance(time.Minute)
		}
	})

	t.Run("IP", func(t *testing.T) {
		r := newSMSRig(t)
		start := r.clock.Now()
		for i := range db.SMSIPHourLimit + 1 {
			u := r.member(fmt.Sprintf("m%d", i), db.RoleMember)
			r.verifiedPhone(u, fmt.Sprintf("+4477009001%02d", i))
			req := r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(u).ID)
			req.IPKey = "ip:shared"
			res := r.send(req)
			if i < db.SMSIPHourLimit && res.Result != db.ResultSent {
				t.Fatalf("text %d = %+v", i+1, res)
			}
			if i == db.SMSIPHourLimit {
				if res.Result != db.ResultIPLimited || !res.RetryAt.Equal(start.Add(time.Hour)) {
					t.Fatalf("a 21st text from one IP in an hour = %+v", res)
				}
				if n := r.count(`SELECT COALESCE(SUM(failures), 0) FROM throttles WHERE key = ?`, fmt.Sprintf("sms_member:%d:%d", r.ws.ID, u.ID)); n != 0 {
					t.Fatalf("the refused text kept its place in the member's counter (%d)", n)
				}
			}
		}
	})

	t.Run("DailyCap", func(t *testing.T) {
		r := newSMSRig(t)
		r.settings(func(st *db.SMSSettings) { st.DailyCap = 3 })
		r.member("olga", db.RoleOwner)
		r.member("adam", db.RoleAdmin)
		alerts := 0
		req := func(u db.User) db.SMSCodeRequest {
			q := r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(u).ID)
			q.CapAlert = func(a db.SMSCapAlert) (db.OutboxMessage, error) {
				alerts++
				return db.OutboxMessage{Kind: "sms_cap", To: a.Admin.Email, Subject: a.Cap + " " + a.Month}, nil
			}
			return q
		}
		var ms []db.User
		for i := range 6 {
			u := r.member(fmt.Sprintf("m%d", i), db.RoleMember)
			r.verifiedPhone(u, fmt.Sprintf("+4477009001%02d", i))
			ms = append(ms, u)
		}
		for _, u := range ms[:3] {
			r.mustSend(req(u))
		}
		for range 2 {
			if res := r.send(req(ms[3])); res.Result != db.ResultWorkspaceCapped || !res.RetryAt.IsZero() {
				t.Fatalf("a 4th text today = %+v, want workspace capped", res)
			}
		}
		if n := r.count(`SELECT COUNT(*) FROM outbox WHERE kind = 'sms_cap'`); n != 2 || alerts != 2 {
			t.Fatalf("%d cap emails queued (%d composed), want one to the owner and one to the admin", n, alerts)
		}
		hits := r.events(db.EventSMSCapHit)
		if len(hits) != 2 || hits[1].Details["admins_alerted"] != true || hits[0].Details["admins_alerted"] != false ||
			hits[1].Details["cap"] != db.SMSCapDaily || hits[1].Details["month"] != "2026-03" {
			t.Fatalf("cap_hit events: %+v", hits)
		}
		// The next UTC day has its own cap; hit again this month, no email.
		r.clock.Set(time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC))
		for _, u := range ms[3:6] {
			r.mustSend(req(u))
		}
		if res := r.send(req(ms[0])); res.Result != db.ResultWorkspaceCapped {
			t.Fatalf("a 4th text on the next day = %+v", res)
		}
		if alerts != 2 {
			t.Fatalf("the admins were emailed again in the same month (%d)", alerts)
		}
		// A raised cap re-arms the alert.
		r.settings(func(st *db.SMSSettings) { st.DailyCap = 4 })
		r.mustSend(req(ms[0]))
		if res := r.send(req(ms[1])); res.Result != db.ResultWorkspaceCapped || alerts != 4 {
			t.Fatalf("after a new cap: %+v, %d emails", res, alerts)
		}
		// A new month emails again.
		r.clock.Set(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
		for _, u := range ms[2:6] {
			r.mustSend(req(u))
		}
		if res := r.send(req(ms[0])); res.Result != db.ResultWorkspaceCapped || alerts != 6 {
			t.Fatalf("in April: %+v, %d emails", res, alerts)
		}
	})

	t.Run("BudgetTexts", func(t *testing.T) {
		r := newSMSRig(t)
		r.settings(func(st *db.SMSSettings) { st.MonthlyBudgetTexts = 4 })
		var ms []db.User
		for i := range 5 {
			u := r.member(fmt.Sprintf("m%d", i), db.RoleMember)
			r.verifiedPhone(u, fmt.Sprintf("+4477009001%02d", i))
			ms = append(ms, u)
		}
		for _, u := range ms[:4] {
			r.mustSend(r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(u).ID))
			r.clock.Advance(25 * time.Hour) // other days: the daily cap is not what refuses
		}
		if res := r.send(r.req(ms[4], db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(ms[4]).ID)); res.Result != db.ResultBudgetExceeded {
			t.Fatalf("a 5th text in the month = %+v, want budget exceeded", res)
		}
		if hits := r.events(db.EventSMSCapHit); len(hits) != 1 || hits[0].Details["cap"] != db.SMSCapBudgetTexts {
			t.Fatalf("cap_hit events: %+v", hits)
		}
		r.clock.Set(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
		r.mustSend(r.req(ms[4], db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(ms[4]).ID))
		if texts, micros, err := r.store.SMSUsage(r.ctx, r.ws.ID, smsMonth); err != nil || texts != 4 || micros != 4*40_000 {
			t.Fatalf("SMSUsage(March) = %d, %d, %v", texts, micros, err)
		}
	})

	t.Run("BudgetMoney", func(t *testing.T) {
		r := newSMSRig(t)
		r.settings(func(st *db.SMSSettings) { st.MonthlyBudgetMicros = 100_000 })
		var ms []db.User
		for i := range 4 {
			u := r.member(fmt.Sprintf("m%d", i), db.RoleMember)
			r.verifiedPhone(u, fmt.Sprintf("+4477009001%02d", i))
			ms = append(ms, u)
		}
		for _, u := range ms[:2] {
			r.mustSend(r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(u).ID)) // 40,000 each
		}
		if res := r.send(r.req(ms[2], db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(ms[2]).ID)); res.Result != db.ResultBudgetExceeded {
			t.Fatalf("a text past the money budget = %+v", res)
		}
		if hits := r.events(db.EventSMSCapHit); len(hits) != 1 || hits[0].Details["cap"] != db.SMSCapBudgetMicros {
			t.Fatalf("cap_hit events: %+v", hits)
		}
		cheap := r.req(ms[3], db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(ms[3]).ID)
		cheap.PriceMicros = 20_000
		r.mustSend(cheap) // exactly the budget
		if texts, micros, err := r.store.SMSUsage(r.ctx, r.ws.ID, r.clock.Now()); err != nil || texts != 3 || micros != 100_000 {
			t.Fatalf("SMSUsage = %d, %d, %v", texts, micros, err)
		}
	})
}

// Fifty requests at once meet each control: it lets through exactly as
// many as it allows, on either engine.
func TestSMSCapsHoldUnderConcurrency(t *testing.T) {
	const n = 50
	type setup struct {
		members   int  // members, each with a phone (distinct numbers unless sameNumber)
		sameNum   bool // one number for all
		sameIP    bool
		oneCh     bool // every request for one challenge
		uniqueKey bool // a new number key per request (the member cap alone)
		settings  func(*db.SMSSettings)
		price     int64
		want      int
		refused   db.SMSResult
	}
	for name, c := range map[string]setup{
		"Cooldown":    {members: 1, oneCh: true, want: 1, refused: db.ResultCooldown},
		"Number":      {members: n, sameNum: true, want: db.SMSNumberWindowLimit, refused: db.ResultNumberCapped},
		"Member":      {members: 1, uniqueKey: true, want: db.SMSMemberHourLimit, refused: db.ResultMemberLimited},
		"IP":          {members: n, sameIP: true, want: db.SMSIPHourLimit, refused: db.ResultIPLimited},
		"DailyCap":    {members: n, settings: func(st *db.SMSSettings) { st.DailyCap = 7 }, want: 7, refused: db.ResultWorkspaceCapped},
		"BudgetTexts": {members: n, settings: func(st *db.SMSSettings) { st.MonthlyBudgetTexts = 6 }, want: 6, refused: db.ResultBudgetExceeded},
		"BudgetMoney": {members: n, settings: func(st *db.SMSSettings) { st.MonthlyBudgetMicros = 100_000 }, price: 30_000, want: 3, refused: db.ResultBudgetExceeded},
	} {
		t.Run(name, func(t *testing.T) {
			r := newSMSRig(t)
			if c.settings != nil {
				r.settings(c.settings)
			}
			r.member("olga", db.RoleOwner)
			var reqs []db.SMSCodeRequest
			var ms []db.User
			for i := range c.members {
				u := r.member(fmt.Sprintf("m%d", i), db.RoleMember)
				e164 := fmt.Sprintf("+4477009%05d", i)
				if c.sameNum {
					e164 = "+447700900123"
				}
				r.verifiedPhone(u, e164)
				ms = append(ms, u)
			}
			var keys atomic.Int64
			var alerts atomic.Int32
			ch := r.challenge(ms[0])
			for i := range n {
				u := ms[i%len(ms)]
				chID := ch.ID
				if !c.oneCh {
					chID = r.challenge(u).ID
				}
				q := r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, chID)
				if c.sameIP {
					q.IPKey = "ip:shared"
				}
				if c.uniqueKey {
					q.NumberKey = func(string) string { return fmt.Sprintf("key-%d", keys.Add(1)) }
				}
				if c.price != 0 {
					q.PriceMicros = c.price
				}
				q.CapAlert = func(a db.SMSCapAlert) (db.OutboxMessage, error) {
					alerts.Add(1)
					return db.OutboxMessage{Kind: "sms_cap", To: a.Admin.Email, Subject: a.Cap}, nil
				}
				reqs = append(reqs, q)
			}
			results := make([]db.SMSResult, n)
			var wg sync.WaitGroup
			for i, q := range reqs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := r.store.RequestSMSCode(r.ctx, q)
					if err != nil {
						t.Errorf("request %d: %v", i, err)
						return
					}
					results[i] = res.Result
				}()
			}
			wg.Wait()
			got := map[db.SMSResult]int{}
			for _, res := range results {
				got[res]++
			}
			if got[db.ResultSent] != c.want || got[c.refused] != n-c.want {
				t.Fatalf("%d requests at once: %v; want %d sent and %d %s", n, got, c.want, n-c.want, c.refused)
			}
			if q, k := r.count(`SELECT COUNT(*) FROM sms_outbox`), r.count(`SELECT COUNT(*) FROM sms_codes`); q != int64(c.want) || k != int64(c.want) {
				t.Fatalf("%d texts and %d codes stored for %d sent", q, k, c.want)
			}
			if c.refused == db.ResultWorkspaceCapped || c.refused == db.ResultBudgetExceeded {
				if a, m := alerts.Load(), r.count(`SELECT COUNT(*) FROM outbox WHERE kind = 'sms_cap'`); a != 1 || m != 1 {
					t.Fatalf("the owner was emailed %d times (%d composed), want once", m, a)
				}
			}
		})
	}
}

// Several senders claiming at once take every text exactly once; a claim
// holds until its lease ends; a text whose code expired is not sent.
func TestSMSOutboxClaim(t *testing.T) {
	r := newSMSRig(t)
	ctx, store := r.ctx, r.store
	const texts = 30
	for i := range texts {
		u := r.member(fmt.Sprintf("m%d", i), db.RoleMember)
		r.verifiedPhone(u, fmt.Sprintf("+4477009%05d", i))
		r.mustSend(r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(u).ID))
	}
	var mu sync.Mutex
	claimed := map[int64]int{}
	var wg sync.WaitGroup
	for c := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := fmt.Sprintf("sender-%d", c)
			for {
				msgs, err := store.ClaimSMSOutbox(ctx, token, time.Minute, 4)
				if err != nil {
					t.Error(err)
					return
				}
				if len(msgs) == 0 {
					return
				}
				for _, m := range msgs {
					if string(m.Body) != fmt.Sprintf("sealed-%d", m.ID) || m.KeyID != "k1" || !m.VerifiedNumber || m.PriceMicros != 40_000 {
						t.Errorf("claimed text %+v", m)
					}
					if err := store.MarkSMSSent(ctx, m.ID, token, "SM"+fmt.Sprint(m.ID)); err != nil {
						t.Error(err)
					}
					mu.Lock()
					claimed[m.ID]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(claimed) != texts {
		t.Fatalf("%d texts claimed, want %d", len(claimed), texts)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("text %d claimed %d times", id, n)
		}
	}

	// One text: a lease, a takeover, a retry, a failure.
	u := r.member("late", db.RoleMember)
	r.verifiedPhone(u, "+447700900999")
	sent := r.mustSend(r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(u).ID))
	a, _ := store.ClaimSMSOutbox(ctx, "a", time.Minute, 10)
	if len(a) != 1 || a[0].ID != sent.MessageID || a[0].To != "+447700900999" {
		t.Fatalf("claim = %+v", a)
	}
	if b, _ := store.ClaimSMSOutbox(ctx, "b", time.Minute, 10); len(b) != 0 {
		t.Fatalf("a held text claimed again: %+v", b)
	}
	if err := store.MarkSMSSent(ctx, sent.MessageID, "b", "x"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("sent by a sender without the claim: %v", err)
	}
	r.clock.Advance(time.Minute + time.Second)
	if b, _ := store.ClaimSMSOutbox(ctx, "b", time.Minute, 10); len(b) != 1 {
		t.Fatalf("the lease ran out and nobody took the text: %+v", b)
	}
	if ok, _ := store.RenewSMSClaim(ctx, sent.MessageID, "a", time.Minute); ok {
		t.Fatal("the first sender renewed a claim it lost")
	}
	if ok, _ := store.RenewSMSClaim(ctx, sent.MessageID, "b", time.Minute); !ok {
		t.Fatal("the holder could not renew")
	}
	if err := store.MarkSMSRetry(ctx, sent.MessageID, "b", r.clock.Now().Add(30*time.Second), "503"); err != nil {
		t.Fatal(err)
	}
	if c, _ := store.ClaimSMSOutbox(ctx, "c", time.Minute, 10); len(c) != 0 {
		t.Fatal("a text was claimed before its retry")
	}
	r.clock.Advance(30 * time.Second)
	c, _ := store.ClaimSMSOutbox(ctx, "c", time.Minute, 10)
	if len(c) != 1 || c[0].Attempts != 1 || c[0].LastError != "503" {
		t.Fatalf("the retry = %+v", c)
	}
	if err := store.MarkSMSFailed(ctx, sent.MessageID, "c", "invalid number"); err != nil {
		t.Fatal(err)
	}
	// A text whose code expired while it waited is given up, unsent.
	old := r.mustSend(r.req(u, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(u).ID))
	r.clock.Advance(db.SMSCodeTTL)
	if got, _ := store.ClaimSMSOutbox(ctx, "d", time.Minute, 10); len(got) != 0 {
		t.Fatalf("an expired code's text was claimed: %+v", got)
	}
	if r.count(`SELECT COUNT(*) FROM sms_outbox WHERE id = ? AND failed_at IS NOT NULL AND last_error = 'expired'`, old.MessageID) != 1 {
		t.Fatal("the expired text is not given up")
	}
	st, err := store.SMSStats(ctx, smsMonth)
	if err != nil {
		t.Fatal(err)
	}
	if st != (db.SMSStats{Queued: texts + 2, ToUnverified: 0, Sent: texts, Failed: 2, Unsent: 0}) {
		t.Errorf("SMSStats = %+v", st)
	}
}

// Resets and removals take the phones, their codes and their unsent
// texts; the policy keeps a member's last allowed factor.
func TestSMSPhonesRemoved(t *testing.T) {
	r := newSMSRig(t)
	ctx, store, ws := r.ctx, r.store, r.ws
	olga, alice := r.member("olga", db.RoleOwner), r.member("alice", db.RoleMember)
	r.enroll(alice, "+447700900123", "GB", []string{"k:a1", "k:a2"})
	// A pending number in another session, a live code, an unsent text.
	b := r.binding(alice, "s-new")
	if _, err := store.StartSMSEnrollment(ctx, ws.ID, alice.ID, b, "+447700900456", "GB", masked("+447700900456"), db.Meta{}); err != nil {
		t.Fatal(err)
	}
	pending := r.mustSend(r.req(alice, db.SMSPurposeSetup, b, ""))
	res, err := store.ResetMFA(ctx, ws.ID, olga.ID, alice.ID, true, db.Meta{}, db.OutboxMessage{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Phones != 2 || r.count(`SELECT COUNT(*) FROM sms_phones WHERE user_id = ?`, alice.ID) != 0 ||
		r.count(`SELECT COUNT(*) FROM sms_codes WHERE user_id = ?`, alice.ID) != 0 {
		t.Fatalf("after the reset: %+v", res)
	}
	if r.count(`SELECT COUNT(*) FROM sms_outbox WHERE id = ? AND failed_at IS NOT NULL`, pending.MessageID) != 1 {
		t.Fatal("a text to a reset member's phone is still to be sent")
	}
	if r.count(`SELECT COUNT(*) FROM sms_outbox WHERE user_id = ?`, alice.ID) != 2 {
		t.Fatal("the reset took the texts out of the workspace's usage")
	}
	if has, _ := store.HasSecondFactor(ctx, ws.ID, alice.ID); has || r.count(`SELECT mfa_factors FROM users WHERE id = ?`, alice.ID) != 0 {
		t.Fatal("the reset member still has a factor")
	}
	if evs := r.events(db.EventMFAResetByAdmin); len(evs) != 1 || evs[0].Details["phones"] != float64(2) {
		t.Fatalf("reset audit: %+v", evs)
	}

	// Required, SMS allowed: the last allowed factor stays.
	r.policy(func(p *db.Policy) { p.Mode, p.Methods = db.PolicyRequired, []string{db.MethodTOTP, db.MethodSMS} })
	r.enroll(alice, "+447700900123", "GB", []string{"k:b1"})
	if _, err := store.RemoveSMSPhone(ctx, ws.ID, alice.ID, "", db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrFactorRequired) {
		t.Fatalf("removing the last allowed factor: %v, want ErrFactorRequired", err)
	}
	enrollTOTP(t, store, ws.ID, alice.ID, r.clock)
	before, _ := store.UserByID(ctx, ws.ID, alice.ID)
	epoch, err := store.RemoveSMSPhone(ctx, ws.ID, alice.ID, "", db.Meta{}, db.OutboxMessage{Kind: "sms_removed", To: alice.Email, Subject: "s"})
	if err != nil || epoch != before.SessionEpoch+1 {
		t.Fatalf("RemoveSMSPhone = %d, %v", epoch, err)
	}
	if n, _ := store.RecoveryCodesRemaining(ctx, ws.ID, alice.ID); n != 1 {
		t.Fatalf("removing one of two factors took the recovery codes (%d left)", n)
	}
	if evs := r.events(db.EventSMSPhoneRemoved); len(evs) != 1 || evs[0].Details["phone"] != masked("+447700900123") {
		t.Fatalf("phone_removed: %+v", evs)
	}
	if _, err := store.RemoveSMSPhone(ctx, ws.ID, alice.ID, "", db.Meta{}, db.OutboxMessage{}); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("removing no phone: %v", err)
	}
	// Optional: a phone-only member's last factor goes with the codes.
	r.policy(func(p *db.Policy) { p.Mode = db.PolicyOptional })
	bob := r.member("bob", db.RoleMember)
	r.enroll(bob, "+447700900789", "GB", []string{"k:c1"})
	if _, err := store.RemoveSMSPhone(ctx, ws.ID, bob.ID, "", db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.RecoveryCodesRemaining(ctx, ws.ID, bob.ID); n != 0 {
		t.Fatalf("recovery codes outlived the last factor: %d", n)
	}
	// Pending phones and codes a day old are swept; verified phones stay.
	dave := r.member("dave", db.RoleMember)
	r.enroll(dave, "+447700900654", "GB", nil)
	carol := r.member("carol", db.RoleMember)
	cb := r.binding(carol, "s-carol")
	if _, err := store.StartSMSEnrollment(ctx, ws.ID, carol.ID, cb, "+447700900321", "GB", masked("+447700900321"), db.Meta{}); err != nil {
		t.Fatal(err)
	}
	r.mustSend(r.req(carol, db.SMSPurposeSetup, cb, ""))
	r.clock.Advance(25 * time.Hour)
	if _, err := store.DeleteExpiredMFA(ctx); err != nil {
		t.Fatal(err)
	}
	if r.count(`SELECT COUNT(*) FROM sms_phones WHERE user_id = ?`, carol.ID) != 0 || r.count(`SELECT COUNT(*) FROM sms_codes WHERE user_id = ?`, carol.ID) != 0 {
		t.Fatal("a day-old pending phone or code was kept")
	}
	if r.count(`SELECT COUNT(*) FROM sms_phones WHERE user_id = ? AND verified_at IS NOT NULL`, dave.ID) != 1 ||
		r.count(`SELECT COUNT(*) FROM sms_outbox`) == 0 {
		t.Fatal("the sweep took more than pending phones and dead codes")
	}
}

// The audit trail names phones by their masked form only: no event holds
// the whole number, whatever happened.
func TestSMSAuditMasksNumbers(t *testing.T) {
	r := newSMSRig(t)
	ctx, store, ws := r.ctx, r.store, r.ws
	r.settings(func(st *db.SMSSettings) { st.DailyCap = 4 })
	olga, alice := r.member("olga", db.RoleOwner), r.member("alice", db.RoleMember)
	const gb, us = "+447700900123", "+12025550199"
	r.enroll(alice, gb, "GB", []string{"k:1"})
	ch := r.challenge(alice)
	sent := r.mustSend(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, ch.ID))
	if _, err := store.PassChallenge(ctx, ch, db.FactorUse{Method: db.MethodSMS, SMSCodeID: sent.CodeID}, r.sessionFor(alice), db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	r.session(alice, "s")
	r.mustSend(r.req(alice, db.SMSPurposeStepUp, db.SessionBinding{SessionID: "s"}, ""))
	// Throttled (the number's 15 minutes), then capped (the day).
	if res := r.send(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(alice).ID)); res.Result != db.ResultNumberCapped {
		t.Fatalf("%+v", res)
	}
	r.enroll(alice, us, "US", nil)
	if res := r.send(r.req(alice, db.SMSPurposeChallenge, db.SessionBinding{}, r.challenge(alice).ID)); res.Result != db.ResultWorkspaceCapped {
		t.Fatalf("%+v", res)
	}
	r.clock.Advance(time.Minute)
	if _, err := store.RemoveSMSPhone(ctx, ws.ID, alice.ID, "", db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ResetMFA(ctx, ws.ID, olga.ID, alice.ID, true, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	evs, err := store.AuditEvents(ctx, ws.ID, db.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.Event] = true
		raw := fmt.Sprint(ev.Details)
		for _, number := range []string{gb, us} {
			if strings.Contains(raw, number[1:]) || strings.Contains(raw, number[3:]) || strings.Contains(raw, number[len(number)-7:]) {
				t.Errorf("%s holds the number %s: %s", ev.Event, number, raw)
			}
		}
		if strings.HasPrefix(ev.Event, "mfa.sms.") && ev.Event != db.EventSMSSettingsChanged {
			if p, _ := ev.Details["phone"].(string); p != masked(gb) && p != masked(us) {
				t.Errorf("%s names the phone %q", ev.Event, p)
			}
		}
	}
	for _, e := range []string{db.EventSMSPhoneAdded, db.EventSMSPhoneVerified, db.EventSMSPhoneRemoved, db.EventSMSCodeSent,
		db.EventSMSCodeUsed, db.EventSMSThrottled, db.EventSMSCapHit} {
		if !seen[e] {
			t.Errorf("no %s event to check", e)
		}
	}
	if sent := r.events(db.EventSMSCodeSent); sent[0].Details["price_micros"] != float64(40_000) || sent[0].Details["country"] == nil {
		t.Errorf("code_sent details: %+v", sent[0].Details)
	}
}

// Migration 0017 makes the same columns on both engines (each run checks
// its engine against one list), nullable where the store writes NULL.
func TestSMSSchema(t *testing.T) {
	store, _ := dbtest.New(t)
	q := `SELECT name, CASE WHEN "notnull" = 1 OR pk > 0 THEN 1 ELSE 0 END FROM pragma_table_info(?) ORDER BY name`
	if store.Engine() == "postgres" {
		q = `SELECT column_name, CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = ? ORDER BY column_name`
	}
	want := map[string]string{
		"sms_phones": "country! created_at! e164! id! last_used_at masked! session_id! step_up_at! user_id! verified_at workspace_id!",
		"sms_codes": "challenge_id! code_hash! created_at! expires_at! failures! id! phone_id! purpose! session_id! used_at user_id! " +
			"voided_at workspace_id!",
		"sms_outbox": "attempts! body_sealed! claim_token claimed_until country! created_at! expires_at! failed_at id! key_id! last_error " +
			"next_attempt_at! phone_id price_micros! provider_id sent_at to_e164! user_id verified_number! workspace_id!",
	}
	for table, cols := range want {
		rows, err := store.DB().Query(q, table)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var name string
			var notnull int
			if err := rows.Scan(&name, &notnull); err != nil {
				t.Fatal(err)
			}
			if notnull == 1 {
				name += "!"
			}
			got = append(got, name)
		}
		rows.Close()
		if strings.Join(got, " ") != cols {
			t.Errorf("%s on %s:\n got %s\nwant %s", table, store.Engine(), strings.Join(got, " "), cols)
		}
	}
	var n int
	if err := store.DB().QueryRow(`SELECT COUNT(*) FROM workspaces WHERE sms_countries = '' AND sms_admins_forbidden = 0 AND sms_daily_cap = 0
		AND sms_monthly_budget_texts = 0 AND sms_monthly_budget_micros = 0 AND sms_budget_alerted_month = ''`).Scan(&n); err != nil {
		t.Fatalf("the workspace's SMS columns: %v", err)
	}
}
