package app_test

// Every counter counts before the slow work (SECURITY.md rule 11, issue
// 12): a burst of requests sent at once gets no more judged than the limit
// (sent one by one it would get as many), the rest are 429 with
// Retry-After, and the right password is refused while the counter is
// full. Each test sends its burst through the whole stack at once.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
)

// burst sends n requests at once (each goroutine waits for the same start)
// and returns the responses in order.
func burst(n int, send func(i int) *apptest.Response) []*apptest.Response {
	out := make([]*apptest.Response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = send(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts the responses by status and fails the test on a 429
// without Retry-After.
func tally(t *testing.T, what string, rs []*apptest.Response) map[int]int {
	t.Helper()
	n := map[int]int{}
	for _, r := range rs {
		n[r.StatusCode]++
		if r.StatusCode == http.StatusTooManyRequests && r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: a 429 without Retry-After", what)
		}
	}
	return n
}

// wantBurst fails unless the burst got exactly judged answers of status
// judgedAs and the rest 429.
func wantBurst(t *testing.T, what string, rs []*apptest.Response, judgedAs, judged int) {
	t.Helper()
	n := tally(t, what, rs)
	if n[judgedAs] != judged || n[http.StatusTooManyRequests] != len(rs)-judged {
		t.Fatalf("%s: %d at once got %v; want %d judged (%d) and %d refused (429)", what, len(rs), n, judged, judgedAs, len(rs)-judged)
	}
}

func TestCountFirstSignIn(t *testing.T) {
	t.Parallel()
	wrong := url.Values{"email": {"alice@acme.test"}, "password": {"wrong password!"}}
	for _, tc := range []struct {
		name     string
		email    string
		judgedAs int
		send     func(c *apptest.Client, email, password string) *apptest.Response
	}{
		{"Pages", "alice@acme.test", http.StatusUnprocessableEntity, func(c *apptest.Client, email, password string) *apptest.Response {
			return c.PostForm("/t/acme/login", url.Values{"email": {email}, "password": {password}})
		}},
		{"API", "alice@acme.test", http.StatusUnauthorized, func(c *apptest.Client, email, password string) *apptest.Response {
			return c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": email, "password": password})
		}},
		// An unknown email is counted and answered like a known one.
		{"UnknownEmail", "nobody@acme.test", http.StatusUnprocessableEntity, func(c *apptest.Client, email, password string) *apptest.Response {
			return c.PostForm("/t/acme/login", url.Values{"email": {email}, "password": {password}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _, _ := setup(t)
			c := env.Client()
			c.CSRF()
			rs := burst(40, func(int) *apptest.Response { return tc.send(c, tc.email, wrong.Get("password")) })
			wantBurst(t, "wrong passwords", rs, tc.judgedAs, 10)
			if n := countEvents(t, env, db.EventSignInFailed); n != 10 {
				t.Errorf("%d failed sign-ins audited, want 10", n)
			}
			if res := tc.send(env.Client(), tc.email, pw); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
				t.Fatalf("right password after the burst = %d (Retry-After %q), want 429", res.StatusCode, res.Header.Get("Retry-After"))
			}
			if n := queryInt(t, env, `SELECT COUNT(*) FROM user_sessions`); n != 0 {
				t.Fatalf("%d sessions after a burst of wrong passwords", n)
			}
			env.Clock.Advance(15 * time.Minute)
			if tc.email == "alice@acme.test" {
				env.Client().Login("acme", tc.email, pw)
			}
		})
	}
}

// A right password inside a burst gives back only its own place: the
// wrong guesses judged in the window stay at most the limit, and the
// account is throttled after the burst.
func TestCountFirstSignInRightPasswordInBurst(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	rs := burst(40, func(i int) *apptest.Response {
		p := "wrong password!"
		if i == 5 {
			p = pw
		}
		return env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": p})
	})
	n := tally(t, "burst", rs)
	if n[http.StatusUnauthorized] > 10 || n[http.StatusUnauthorized]+n[http.StatusOK]+n[http.StatusTooManyRequests] != 40 {
		t.Fatalf("39 wrong and 1 right at once got %v; want at most 10 judged wrong, the rest 429", n)
	}
	// The right password held one of the 10 places while it was judged
	// and handed it back: when it ran alongside the wrong ones, fewer than
	// 10 wrong were judged, and exactly the places left stay open in the
	// window (the count never exceeds 10 wrong judged).
	left := 10 - n[http.StatusUnauthorized]
	rs = burst(40, func(int) *apptest.Response {
		return env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": "wrong password!"})
	})
	wantBurst(t, "second burst", rs, http.StatusUnauthorized, left)
	if res := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password after 10 wrong = %d, want 429", res.StatusCode)
	}
	if got := countEvents(t, env, db.EventSignInFailed); got != 10 {
		t.Fatalf("%d failed sign-ins audited, want the 10 judged", got)
	}
}

// The per-IP counter (100 in 15 minutes) counts first too: a spray of
// many accounts from one address gets 100 judged.
func TestCountFirstSignInPerIP(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	rs := burst(120, func(i int) *apptest.Response {
		return env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": fmt.Sprintf("user%d@acme.test", i), "password": "wrong password!"})
	})
	wantBurst(t, "spray from one IP", rs, http.StatusUnauthorized, 100)
	if res := env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": pw}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("another account's right password from that IP = %d, want 429", res.StatusCode)
	}
	// Refusals by the IP counter left the accounts' counters alone.
	if n := queryInt(t, env, `SELECT COALESCE(SUM(failures), 0) FROM throttles WHERE key LIKE 'pw:acct:%'`); n != 100 {
		t.Fatalf("accounts' counters hold %d, want the 100 judged", n)
	}
}

// The current password of the password change counts against the account
// like sign-in.
func TestCountFirstPasswordChange(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", pw)
	c.CSRF()
	change := func(current string) *apptest.Response {
		return c.PostForm("/t/acme/account/password", url.Values{"current_password": {current}, "new_password": {"a new passphrase"}, "confirm_password": {"a new passphrase"}})
	}
	rs := burst(40, func(int) *apptest.Response { return change("guess guess") })
	wantBurst(t, "wrong current passwords", rs, http.StatusUnprocessableEntity, 10)
	if res := change(pw); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right current password after the burst = %d, want 429 with Retry-After", res.StatusCode)
	}
	if u, _ := env.Store.UserByID(context.Background(), acme.ID, alice.ID); u.PasswordHash != alice.PasswordHash {
		t.Fatal("the password changed")
	}
	// The same account counter as sign-in.
	if res := env.Client().PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {pw}}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("sign-in after the burst = %d, want 429", res.StatusCode)
	}
	env.Clock.Advance(15 * time.Minute)
	if !signedIn(t, c, "acme") {
		t.Fatal("the burst signed the member out")
	}
	if res := change(pw); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("password change after the window = %d %s", res.StatusCode, res.Body)
	}
}

// Staff sign in at /support through the same counted check.
func TestCountFirstStaffSignIn(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	_, token := newStaff(t, env, "sam@support.test", false)
	secret := enrollStaff(t, env, token)
	c := env.Client()
	c.CSRF()
	rs := burst(40, func(int) *apptest.Response {
		return c.PostForm("/support/login", url.Values{"email": {"sam@support.test"}, "password": {"wrong password!"}})
	})
	wantBurst(t, "wrong staff passwords", rs, http.StatusUnprocessableEntity, 10)
	if res := env.Client().PostForm("/support/login", url.Values{"email": {"sam@support.test"}, "password": {staffPW}}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right staff password after the burst = %d, want 429", res.StatusCode)
	}
	if res := env.Client().API(http.MethodPost, "/support/api/v1/login", "", map[string]string{"email": "sam@support.test", "password": staffPW}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right staff password by API after the burst = %d, want 429", res.StatusCode)
	}
	env.Clock.Advance(15 * time.Minute)
	staffPage(t, env, "sam@support.test", secret)
}

// One by one, right passwords give their places back and never fill the
// counter; nor do they wipe the wrong ones counted before them.
func TestCountFirstRightPasswordsOneByOne(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	login := func(p string) int {
		return env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": p}).StatusCode
	}
	for range 3 {
		if got := login("wrong password!"); got != http.StatusUnauthorized {
			t.Fatalf("wrong password = %d, want 401", got)
		}
	}
	for i := range 15 {
		if got := login(pw); got != http.StatusOK {
			t.Fatalf("right password %d = %d, want 200", i+1, got)
		}
	}
	for i := range 7 {
		if got := login("wrong password!"); got != http.StatusUnauthorized {
			t.Fatalf("wrong password %d after the right ones = %d, want 401", i+4, got)
		}
	}
	if got := login("wrong password!"); got != http.StatusTooManyRequests {
		t.Fatalf("11th wrong password in the window = %d, want 429", got)
	}
}

// Recovery links by email: three an hour per member.
func TestCountFirstRecoveryLink(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	enrollAPI(t, env, "acme", "alice@acme.test", pw)
	setRecovery(t, env, acme, true)
	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	c.CSRF()
	rs := burst(40, func(int) *apptest.Response { return c.PostForm("/t/acme/login/mfa/recover", nil) })
	wantBurst(t, "recovery link requests", rs, http.StatusOK, 3)
	if n := outboxCount(t, env.Store, mail.KindRecoveryLink, "alice@acme.test"); n != 3 {
		t.Fatalf("%d links sent, want 3", n)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM self_recoveries`); n != 3 {
		t.Fatalf("%d recoveries stored, want 3", n)
	}
	env.Clock.Advance(time.Hour)
	requestRecovery(t, env)
}

// Enrollment links past the deadline: five an hour per member.
func TestCountFirstEnrollLink(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	requireSystem(t, env, acme)
	env.Clock.Advance(15 * 24 * time.Hour)
	c := confinedClient(t, env, "acme", "alice@acme.test", pw)
	c.CSRF()
	rs := burst(40, func(int) *apptest.Response { return c.PostForm("/t/acme/account/enroll/link", nil) })
	wantBurst(t, "enrollment link requests", rs, http.StatusSeeOther, 5)
	if n := outboxCount(t, env.Store, "mfa_enroll_link", "alice@acme.test"); n != 5 {
		t.Fatalf("%d links sent, want 5", n)
	}
	if n := countEvents(t, env, db.EventEnrollLinkSent); n != 5 {
		t.Fatalf("%d link-sent events, want 5", n)
	}
	env.Clock.Advance(time.Hour)
	sendLink(t, env, confinedClient(t, env, "acme", "alice@acme.test", pw), "acme", "alice@acme.test")
}

// Support's member search: 60 in ten minutes per staff member.
func TestCountFirstSupportSearch(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	_, token := newStaff(t, env, "sam@support.test", false)
	tok := staffToken(t, env, "sam@support.test", enrollStaff(t, env, token))
	c := env.Client()
	rs := burst(80, func(int) *apptest.Response {
		return c.API(http.MethodGet, "/support/api/v1/members?email=alice%40acme.test", tok, nil)
	})
	wantBurst(t, "searches", rs, http.StatusOK, 60)
	if n := countEvents(t, env, db.EventSupportMemberSearch); n != 60 {
		t.Fatalf("%d searches audited, want 60", n)
	}
}

// Support's case actions: 30 in ten minutes per staff member, counted
// before the case is read or changed.
func TestCountFirstSupportCaseActions(t *testing.T) {
	t.Parallel()
	s := supportSetup(t)
	_, body := s.open(t, s.token(t, s.sam), s.alice.ID)
	tina := s.token(t, s.tina)
	c := s.env.Client()
	rs := burst(40, func(int) *apptest.Response {
		return c.API(http.MethodPost, fmt.Sprintf("/support/api/v1/cases/%v/reject", body["id"]), tina, map[string]string{"reason": "The caller could not show an ID."})
	})
	n := tally(t, "rejections", rs)
	if n[http.StatusOK] != 1 || n[http.StatusConflict] != 29 || n[http.StatusTooManyRequests] != 10 {
		t.Fatalf("40 rejections of one case at once got %v; want 30 judged (one 200, 29 × 409) and 10 × 429", n)
	}
	if n := queryInt(t, s.env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, s.acme.ID, db.EventCaseRejected); n != 1 {
		t.Fatalf("%d rejections in acme's trail, want 1", n)
	}
}
