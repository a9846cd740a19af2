package app_test

// Self-service recovery by email (issue 6): off by default; after the
// password, a member asks for a link (single use, 30 minutes, three an
// hour); following it starts a waiting period announced with a cancel
// link; the reset runs once after it; cancelling, or signing in with a
// second factor meanwhile, stops it. Links of another workspace and stale
// links say nothing.

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

var recoverLinkRE = regexp.MustCompile(`https?://\S+(/t/[a-z0-9-]+/recover/[A-Za-z0-9_-]{43})`)

func setRecovery(t *testing.T, env *apptest.Env, ws db.Workspace, on bool) {
	t.Helper()
	ctx := context.Background()
	p, err := env.Store.Policy(ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: p,
		Recovery: &db.RecoverySettings{SelfService: on, WaitHours: db.DefaultRecoveryWaitHours}}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
}

// lastMail returns the newest queued email of a kind to alice.
func lastMail(t *testing.T, env *apptest.Env, kind string) db.OutboxMessage {
	t.Helper()
	msgs, err := env.Store.OutboxMessages(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Kind == kind {
			return m
		}
	}
	t.Fatalf("no %s email", kind)
	return db.OutboxMessage{}
}

func recoveryStatus(t *testing.T, env *apptest.Env) string {
	t.Helper()
	var st string
	if err := env.Store.DB().QueryRow(`SELECT status FROM self_recoveries ORDER BY id DESC LIMIT 1`).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// requestRecovery asks for the link after the password and returns its path.
func requestRecovery(t *testing.T, env *apptest.Env) string {
	t.Helper()
	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if c.Get("/t/acme/login/mfa").Doc().Find("form[action='/t/acme/login/mfa/recover'] [data-testid=lost-factors]").Length() != 1 {
		t.Fatal("the challenge page does not offer recovery by email")
	}
	res := c.PostForm("/t/acme/login/mfa/recover", nil)
	if res.StatusCode != http.StatusOK || res.Doc().Find("[data-testid=recovery-sent]").Length() != 1 {
		t.Fatalf("recovery request = %d %s", res.StatusCode, res.Body)
	}
	m := recoverLinkRE.FindStringSubmatch(lastMail(t, env, mail.KindRecoveryLink).Text)
	if m == nil {
		t.Fatal("no recovery link in the email")
	}
	return m[1]
}

func TestSelfRecoveryOffByDefault(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if c.Get("/t/acme/login/mfa").Doc().Find("[data-testid=lost-factors]").Length() != 0 {
		t.Error("the challenge page offers recovery by email in a workspace that does not allow it")
	}
	if res := c.PostForm("/t/acme/login/mfa/recover", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("recovery in a workspace that does not allow it = %d", res.StatusCode)
	}
	if res := env.Client().PostForm("/t/acme/login/mfa/recover", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("recovery without a password = %d", res.StatusCode)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM self_recoveries`); n != 0 || outboxCount(t, env.Store, mail.KindRecoveryLink, "alice@acme.test") != 0 {
		t.Errorf("%d recoveries", n)
	}
}

func TestSelfRecoveryWaitingPeriodAndReset(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	setRecovery(t, env, acme, true)
	setRecovery(t, env, mustWorkspace(t, env, "globex"), true)
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE event = ? AND details LIKE '%"self_service_recovery":true%'`, db.EventPolicyChanged); n != 2 {
		t.Errorf("%d policy changes audited with the new setting", n)
	}

	// An expired link does nothing.
	path := requestRecovery(t, env)
	env.Clock.Advance(31 * time.Minute)
	c := env.Client()
	if res := c.PostForm(path, nil); res.StatusCode != http.StatusBadRequest || recoveryStatus(t, env) != "requested" {
		t.Fatalf("expired link = %d, status %s", res.StatusCode, recoveryStatus(t, env))
	}

	path = requestRecovery(t, env)
	// Following the link changes nothing; another workspace's path is refused.
	if res := c.Get(path); res.StatusCode != http.StatusOK || res.Doc().Find("[data-testid=recovery-start]").Length() != 1 || recoveryStatus(t, env) != "requested" {
		t.Fatalf("GET link = %d, status %s", res.StatusCode, recoveryStatus(t, env))
	}
	token := path[len("/t/acme/recover/"):]
	if res := c.PostForm("/t/globex/recover/"+token, nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("acme's link in globex = %d", res.StatusCode)
	}
	started := env.Clock.Now()
	res := c.PostForm(path, nil)
	if res.StatusCode != http.StatusOK || res.Doc().Find("[data-testid=recovery-started]").Length() != 1 || recoveryStatus(t, env) != "waiting" {
		t.Fatalf("start = %d, status %s", res.StatusCode, recoveryStatus(t, env))
	}
	if res := c.PostForm(path, nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("the link twice = %d", res.StatusCode)
	}
	if m := lastMail(t, env, mail.KindRecoveryStarted); m.To != "alice@acme.test" || !cancelLinkRE.MatchString(m.Text) {
		t.Fatalf("the waiting period's email = %+v", m)
	}
	if n := queryInt(t, env, `SELECT executes_at FROM self_recoveries WHERE status = 'waiting'`); n != started.Add(72*time.Hour).Unix() {
		t.Errorf("executes at %d, want %d", n, started.Add(72*time.Hour).Unix())
	}

	// The waiting period holds.
	j := (&supportEnv{env: env}).jobs()
	env.Clock.Advance(72*time.Hour - time.Minute)
	if n, err := j.RunSelfRecoveries(context.Background()); err != nil || n != 0 || mfaRows(t, env, alice) != 11 {
		t.Fatalf("before the end of the wait: %d (%v), %d factor rows", n, err, mfaRows(t, env, alice))
	}
	env.Clock.Advance(2 * time.Minute)
	if n, err := j.RunSelfRecoveries(context.Background()); err != nil || n != 1 {
		t.Fatalf("after the wait: %d (%v)", n, err)
	}
	if n, _ := j.RunSelfRecoveries(context.Background()); n != 0 {
		t.Errorf("a second run reset %d", n)
	}
	if mfaRows(t, env, alice) != 0 || recoveryStatus(t, env) != "executed" || outboxCount(t, env.Store, mail.KindRecoveryDone, "alice@acme.test") != 1 {
		t.Errorf("after the reset: %d factor rows, status %s", mfaRows(t, env, alice), recoveryStatus(t, env))
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, acme.ID, db.EventMFAResetBySelfRecovery); n != 1 {
		t.Errorf("%d resets audited", n)
	}
	// The member must set up a factor again at the next sign-in, though
	// acme's policy is only optional: pages lead to enrollment (behind an
	// emailed link), the API gives no session.
	ac := env.Client()
	res = ac.Login("acme", "alice@acme.test", pw)
	if loc := res.Header.Get("Location"); loc != "/t/acme/account/enroll?next=%2Ft%2Facme%2Faccount" {
		t.Errorf("sign-in after the reset goes to %q, want the enrollment page", loc)
	}
	if res := ac.Get("/t/acme/account"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/enroll" {
		t.Errorf("the portal after the reset = %d %q, want confinement to enrollment", res.StatusCode, res.Header.Get("Location"))
	}
	if res := ac.Get("/t/acme/account/enroll"); res.Doc().Find("[data-testid=enroll-reset]").Length() != 1 {
		t.Error("the enrollment page does not say the factors were reset")
	}
	res = env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw})
	if res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "mfa_enrollment_required" {
		t.Errorf("API sign-in after the reset = %d %s", res.StatusCode, res.Body)
	}
	// No policy change gives her a grace period back: required, then a
	// longer grace period, then an admin's extension.
	ctx := context.Background()
	for _, grace := range []int{30, 60} {
		p, _ := env.Store.Policy(ctx, acme.ID)
		p.Mode, p.GraceDays = db.PolicyRequired, grace
		if _, _, err := env.Store.SetPolicy(ctx, acme.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	owner := env.User(acme, "owner@acme.test", db.RoleOwner, "owner password 1")
	if _, err := env.Store.ExtendDeadline(ctx, acme.ID, owner.ID, alice.ID, 30, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if res := ac.Get("/t/acme/account"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/enroll" {
		t.Errorf("after policy changes the portal = %d %q, want confinement to enrollment", res.StatusCode, res.Header.Get("Location"))
	}
	if res := ac.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw}); res.StatusCode != http.StatusForbidden {
		t.Errorf("after policy changes the API sign-in = %d", res.StatusCode)
	}
}

// A workspace that turns recovery by email off stops the recoveries under
// way: none of them resets anyone.
func TestSelfRecoveryTurnedOff(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	setRecovery(t, env, acme, true)
	env.Client().PostForm(requestRecovery(t, env), nil)
	if st := recoveryStatus(t, env); st != "waiting" {
		t.Fatalf("status %s", st)
	}
	setRecovery(t, env, acme, false)
	if st := recoveryStatus(t, env); st != "cancelled" {
		t.Errorf("after turning it off the recovery is %s", st)
	}
	env.Clock.Advance(73 * time.Hour)
	if n, _ := (&supportEnv{env: env}).jobs().RunSelfRecoveries(context.Background()); n != 0 || mfaRows(t, env, alice) != 11 {
		t.Errorf("a recovery ran after the workspace turned it off (%d), alice has %d factor rows", n, mfaRows(t, env, alice))
	}
}

func TestSelfRecoveryCancelled(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	setRecovery(t, env, acme, true)
	j := (&supportEnv{env: env}).jobs()

	// By the cancel link.
	c := env.Client()
	c.PostForm(requestRecovery(t, env), nil)
	cancel := cancelLinkRE.FindStringSubmatch(lastMail(t, env, mail.KindRecoveryStarted).Text)[1]
	if res := c.Get(cancel); res.StatusCode != http.StatusOK || recoveryStatus(t, env) != "waiting" {
		t.Fatalf("GET cancel = %d, status %s", res.StatusCode, recoveryStatus(t, env))
	}
	if res := c.PostForm(cancel, nil); res.StatusCode != http.StatusOK || recoveryStatus(t, env) != "cancelled" {
		t.Fatalf("cancel = %d, status %s", res.StatusCode, recoveryStatus(t, env))
	}
	if res := c.PostForm(cancel, nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("cancel twice = %d", res.StatusCode)
	}

	// By signing in with a second factor meanwhile.
	env.Clock.Advance(2 * time.Hour) // past the request limit's window
	c.PostForm(requestRecovery(t, env), nil)
	if st := recoveryStatus(t, env); st != "waiting" {
		t.Fatalf("status %s", st)
	}
	p := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if res := challengeWith(env, p, "acme", nextCode(t, env, secret)); !passed(res, "acme") {
		t.Fatalf("sign-in with the app = %d", res.StatusCode)
	}
	if st := recoveryStatus(t, env); st != "cancelled" {
		t.Errorf("after a sign-in with a factor the recovery is %s", st)
	}
	env.Clock.Advance(73 * time.Hour)
	if n, _ := j.RunSelfRecoveries(context.Background()); n != 0 || mfaRows(t, env, alice) != 11 {
		t.Errorf("a cancelled recovery ran (%d) or alice lost factors (%d rows)", n, mfaRows(t, env, alice))
	}
}

func TestSelfRecoveryRequestLimit(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	setRecovery(t, env, acme, true)
	for range 3 {
		requestRecovery(t, env)
	}
	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if res := c.PostForm("/t/acme/login/mfa/recover", nil); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a 4th request in the hour = %d", res.StatusCode)
	}
	if n := outboxCount(t, env.Store, mail.KindRecoveryLink, "alice@acme.test"); n != 3 {
		t.Errorf("%d links sent, want 3", n)
	}
}

func TestSelfRecoverySettingsAPI(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	res := a.c.API(http.MethodPut, "/t/acme/api/v1/admin/policy", a.token, map[string]any{"self_service_recovery": true, "recovery_wait_hours": 10})
	if res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_policy" {
		t.Errorf("10 hours = %d %s", res.StatusCode, res.Body)
	}
	res = a.c.API(http.MethodPut, "/t/acme/api/v1/admin/policy", a.token, map[string]any{"self_service_recovery": true, "recovery_wait_hours": 48})
	if res.StatusCode != http.StatusOK || res.JSON()["self_service_recovery"] != true || res.JSON()["recovery_wait_hours"] != float64(48) {
		t.Fatalf("turn on = %d %s", res.StatusCode, res.Body)
	}
	if r, _ := a.env.Store.RecoverySettings(context.Background(), a.acme.ID); !r.SelfService || r.WaitHours != 48 {
		t.Errorf("saved %+v", r)
	}
	if res := a.c.Get("/t/acme/admin/settings/security"); res.Doc().Find("input[name=self_service_recovery][checked]").Length() != 1 {
		t.Error("the settings page does not show it on")
	}
}
