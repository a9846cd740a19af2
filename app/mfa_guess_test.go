package app_test

// Second-factor guesses are counted before they are judged (issue 12,
// defect 2; SECURITY rule 11): the codes that confirm an enrollment count
// toward the member's lock like the codes of a challenge or a step-up, and
// a burst of guesses sent at once gets no more answers than the limit
// allows, the rest 429 with Retry-After. Real SQLite, the whole stack, a
// clock the tests move.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mfa"
	"github.com/gatehouse/gatehouse/db"
)

// totpSetupPage starts an authenticator app setup in the browser c and
// returns the secret its setup page shows.
func totpSetupPage(t *testing.T, c *apptest.Client, slug string) string {
	t.Helper()
	if res := c.PostForm("/t/"+slug+"/account/mfa/totp/setup", nil); location(res) != "/t/"+slug+"/account/mfa/totp" {
		t.Fatalf("page setup = %d %q", res.StatusCode, location(res))
	}
	secret := strings.ReplaceAll(c.Get("/t/"+slug+"/account/mfa/totp").Doc().Find("[data-testid=totp-secret]").Text(), " ", "")
	if secret == "" {
		t.Fatal("the setup page shows no secret")
	}
	return secret
}

// racedJSON builds a JSON request with a bearer token, for race.
func racedJSON(c *apptest.Client, path, tok string, body any) (*http.Request, *http.Client) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.URL(path), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req, c.Client
}

// formRequest builds a page form post with the client's CSRF token, for race.
func formRequest(c *apptest.Client, path string, form url.Values) (*http.Request, *http.Client) {
	form.Set("_csrf", c.CSRF())
	req, _ := http.NewRequest(http.MethodPost, c.URL(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, c.Client
}

// judged counts the answers that are not 429 (or, for a challenge, not
// the refusal of an ended one): each of them looked at a code.
func judged(statuses []int, refused ...int) (n int) {
	for _, st := range statuses {
		if st != http.StatusTooManyRequests && !containsInt(refused, st) {
			n++
		}
	}
	return n
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// Ten wrong codes confirming an enrollment lock the member like ten at
// sign-in: the 10th and 11th answer 429 with Retry-After, the right code is
// refused on the API and on the page and enables nothing, one lock email;
// after 15 minutes (the clock moved, no sleep) the right code works.
func TestEnrollConfirmWrongCodesLock(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	alignClock(env)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	secret := totpSetupAPI(t, c, "acme", tok)
	verify := func(code string) *apptest.Response {
		return c.API(http.MethodPost, api("acme", "/mfa/totp/verify-setup"), tok, map[string]string{"code": code})
	}
	for i := 1; i <= 9; i++ {
		if res := verify(wrongCode(t, env, secret)); res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_code" {
			t.Fatalf("wrong confirmation code %d = %d %s, want 400 invalid_code", i, res.StatusCode, res.Body)
		}
	}
	if g := mfaGuard(t, env, alice); g.WindowFailures != 9 || g.Consecutive != 9 {
		t.Fatalf("guard after 9 wrong confirmation codes = %+v", g)
	}
	lockedAt := env.Clock.Now()
	for i := 10; i <= 11; i++ {
		res := verify(wrongCode(t, env, secret))
		if res.StatusCode != http.StatusTooManyRequests || res.JSON()["error"] != "rate_limited" {
			t.Fatalf("wrong confirmation code %d = %d %s, want 429", i, res.StatusCode, res.Body)
		}
		if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 890 || ra > 900 {
			t.Fatalf("wrong confirmation code %d: Retry-After = %q, want about 900", i, res.Header.Get("Retry-After"))
		}
	}
	env.Clock.Advance(time.Minute)
	if res := verify(nowCode(t, env, secret)); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right confirmation code while locked = %d %s, want 429", res.StatusCode, res.Body)
	}
	// The page's confirmation is refused too (a new setup in a browser).
	b := env.Client()
	b.Login("acme", "alice@acme.test", pw)
	pageSecret := totpSetupPage(t, b, "acme")
	res := b.PostForm("/t/acme/account/mfa/totp", url.Values{"code": {nowCode(t, env, pageSecret)}})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right confirmation code on the page while locked = %d, want 429", res.StatusCode)
	}
	if hasTOTP(t, env, alice) || aal2Sessions(t, env, alice) != 0 {
		t.Fatal("a confirmation while locked enabled the app or raised a session")
	}
	if n := outboxCount(t, env.Store, mail.KindMFALocked, "alice@acme.test"); n != 1 {
		t.Fatalf("%d lock emails, want 1", n)
	}
	if n := auditCount(t, env, alice, db.EventChallengeFailed); n != 10 {
		t.Fatalf("%d failures recorded, want 10 (the 11th was not judged)", n)
	}

	// After the lock: the setup expired meanwhile (15 minutes too), so the
	// browser starts again, and the right code turns the app on.
	env.Clock.Set(lockedAt.Add(db.GuardLockFor + time.Second))
	pageSecret = totpSetupPage(t, b, "acme")
	res = b.PostForm("/t/acme/account/mfa/totp", url.Values{"code": {nowCode(t, env, pageSecret)}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("right confirmation code after the lock = %d\n%s", res.StatusCode, res.Body)
	}
	if !hasTOTP(t, env, alice) || pageSession(t, b, "acme").JSON()["aal"] != "aal2" {
		t.Fatal("the right code after the lock did not turn the app on")
	}
	if g := mfaGuard(t, env, alice); g.WindowFailures != 0 {
		t.Fatalf("the right code stayed counted: %+v", g)
	}
}

// 40 wrong confirmation codes sent at once: at most 10 are judged, the
// rest answered 429 with Retry-After, and nothing is enabled.
func TestEnrollConfirmBurst(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	alignClock(env)
	c := env.Client()
	tok := c.APILogin("acme", "alice@acme.test", pw)
	secret := totpSetupAPI(t, c, "acme", tok)
	code := wrongCode(t, env, secret)
	const n = 40
	statuses := race(n, func(int) (*http.Request, *http.Client) {
		return racedJSON(c, api("acme", "/mfa/totp/verify-setup"), tok, map[string]string{"code": code})
	})
	for _, st := range statuses {
		if st != http.StatusBadRequest && st != http.StatusTooManyRequests {
			t.Fatalf("statuses %v: want only 400 and 429", statuses)
		}
	}
	if got := judged(statuses); got > db.GuardWindowFailures {
		t.Fatalf("%d of %d wrong confirmation codes sent at once were judged (%v), want at most %d", got, n, statuses, db.GuardWindowFailures)
	}
	if got := auditCount(t, env, alice, db.EventChallengeFailed); got > db.GuardWindowFailures {
		t.Fatalf("%d failures recorded, want at most %d", got, db.GuardWindowFailures)
	}
	if hasTOTP(t, env, alice) {
		t.Fatal("a wrong code enabled the app")
	}
	if g := mfaGuard(t, env, alice); !g.LockedUntil.After(env.Clock.Now()) {
		t.Fatalf("not locked after the burst: %+v", g)
	}
}

// 40 wrong codes at once at sign-in: at one challenge at most 5 are judged
// (the rest find it ended); across 40 challenges at most 10 (the rest 429).
// Half of the second burst are recovery codes: one counter for both.
func TestChallengeGuessBurst(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	c := env.Client()
	const n = 40

	tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
	code := wrongCode(t, env, secret)
	statuses := race(n, func(int) (*http.Request, *http.Client) {
		return racedJSON(c, api("acme", "/login/mfa"), "", map[string]string{"mfa_token": tok, "code": code})
	})
	if got := judged(statuses, http.StatusUnauthorized); got != 0 {
		t.Fatalf("statuses %v: want only 401 and 429", statuses)
	}
	if got := auditCount(t, env, alice, db.EventChallengeFailed); got > db.ChallengeMaxFailures {
		t.Fatalf("%d wrong codes judged at one challenge (%v), want at most %d", got, statuses, db.ChallengeMaxFailures)
	}

	env.Clock.Advance(db.GuardWindow + time.Minute) // a new window
	before := auditCount(t, env, alice, db.EventChallengeFailed)
	toks := make([]string, n)
	for i := range toks {
		toks[i] = mfaToken(t, env, "acme", "alice@acme.test", pw)
	}
	wrongRecovery := mfa.NewRecoveryCodes()[0]
	code = wrongCode(t, env, secret)
	statuses = race(n, func(i int) (*http.Request, *http.Client) {
		body := map[string]string{"mfa_token": toks[i], "code": code}
		if i%2 == 1 {
			body = map[string]string{"mfa_token": toks[i], "recovery_code": wrongRecovery}
		}
		return racedJSON(c, api("acme", "/login/mfa"), "", body)
	})
	for _, st := range statuses {
		if st != http.StatusUnauthorized && st != http.StatusTooManyRequests {
			t.Fatalf("statuses %v: want only 401 and 429", statuses)
		}
	}
	if got := judged(statuses); got > db.GuardWindowFailures {
		t.Fatalf("%d of %d wrong codes at once across challenges were judged (%v), want at most %d", got, n, statuses, db.GuardWindowFailures)
	}
	if got := auditCount(t, env, alice, db.EventChallengeFailed) - before; got > db.GuardWindowFailures {
		t.Fatalf("%d failures recorded, want at most %d", got, db.GuardWindowFailures)
	}
}

// 40 wrong step-up codes at once, half on the API and half on the page,
// from two sessions: at most 10 judged, the rest 429; no session is
// refreshed.
func TestStepUpGuessBurst(t *testing.T) {
	t.Parallel()
	env, _, alice := setup(t)
	secret, _, tok := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	b := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if res := challengeWith(env, b, "acme", nextCode(t, env, secret)); !passed(res, "acme") {
		t.Fatalf("page sign-in = %d", res.StatusCode)
	}
	before := auditCount(t, env, alice, db.EventChallengeFailed)
	steps := auditCount(t, env, alice, db.EventStepUp)
	code := wrongCode(t, env, secret)
	const n = 40
	statuses := race(n, func(i int) (*http.Request, *http.Client) {
		if i%2 == 0 {
			return racedJSON(b, api("acme", "/step-up"), tok, map[string]string{"code": code})
		}
		return formRequest(b, "/t/acme/account/verify", url.Values{"code": {code}})
	})
	for _, st := range statuses {
		if st != http.StatusUnauthorized && st != http.StatusUnprocessableEntity && st != http.StatusTooManyRequests {
			t.Fatalf("statuses %v: want only 401, 422 and 429", statuses)
		}
	}
	if got := judged(statuses); got > db.GuardWindowFailures {
		t.Fatalf("%d of %d wrong step-up codes at once were judged (%v), want at most %d", got, n, statuses, db.GuardWindowFailures)
	}
	if got := auditCount(t, env, alice, db.EventChallengeFailed) - before; got > db.GuardWindowFailures {
		t.Fatalf("%d failures recorded, want at most %d", got, db.GuardWindowFailures)
	}
	if auditCount(t, env, alice, db.EventStepUp) != steps {
		t.Fatal("a wrong code passed step-up")
	}
}

// A staff member's enrollment link confirms its authenticator app with a
// code that is counted before it is judged, like a member's: 40 wrong
// codes at once get at most 10 answers, the rest 429, and then the right
// code waits for the lock too. After the lock the right code enrolls, and
// takes its own count back.
func TestStaffEnrollConfirmBurst(t *testing.T) {
	t.Parallel()
	env, _, _ := setup(t)
	alignClock(env)
	staff, link := newStaff(t, env, "staff@platform.test", false)
	c := env.Client()
	res := c.API(http.MethodPost, "/support/api/v1/enroll/totp/setup", "", map[string]string{"enrollment_token": link})
	secret, _ := res.JSON()["secret"].(string)
	if res.StatusCode != http.StatusOK || secret == "" {
		t.Fatalf("staff enroll setup = %d %s", res.StatusCode, res.Body)
	}
	wrong := wrongCode(t, env, secret)
	const n = 40
	statuses := race(n, func(int) (*http.Request, *http.Client) {
		return racedJSON(c, "/support/api/v1/enroll/totp/verify", "", map[string]string{"enrollment_token": link, "code": wrong})
	})
	for _, st := range statuses {
		if st != http.StatusBadRequest && st != http.StatusTooManyRequests {
			t.Fatalf("statuses %v: want only 400 and 429", statuses)
		}
	}
	if got := judged(statuses); got > db.GuardWindowFailures {
		t.Fatalf("%d of %d wrong staff confirmation codes sent at once were judged (%v), want at most %d", got, n, statuses, db.GuardWindowFailures)
	}
	verify := func() *apptest.Response {
		return c.API(http.MethodPost, "/support/api/v1/enroll/totp/verify", "", map[string]string{"enrollment_token": link, "code": nowCode(t, env, secret)})
	}
	if res := verify(); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right code while locked = %d %s (Retry-After %q), want 429", res.StatusCode, res.Body, res.Header.Get("Retry-After"))
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM totp_credentials WHERE user_id = ? AND confirmed_at IS NOT NULL`, staff.ID); n != 0 {
		t.Fatalf("%d confirmed apps while locked", n)
	}
	env.Clock.Advance(db.GuardLockFor + time.Minute) // the setup expired meanwhile: a new one
	res = c.API(http.MethodPost, "/support/api/v1/enroll/totp/setup", "", map[string]string{"enrollment_token": link})
	if secret, _ = res.JSON()["secret"].(string); res.StatusCode != http.StatusOK || secret == "" {
		t.Fatalf("staff enroll setup after the lock = %d %s", res.StatusCode, res.Body)
	}
	if res := verify(); res.StatusCode != http.StatusOK {
		t.Fatalf("right code after the lock = %d %s", res.StatusCode, res.Body)
	}
	if g := mfaGuard(t, env, staff); g.WindowFailures > db.GuardWindowFailures {
		t.Fatalf("guard after the right code: %+v", g)
	}
}
