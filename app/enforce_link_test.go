package app_test

// The emailed enrollment link past the deadline: expired, reused, another
// member's, another workspace's and another session's links are refused
// and change nothing; five links an hour per member, then a clear refusal
// and no email.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const linkRefused = "This link can't be used"

// confinedClient signs email in (password only) past the deadline and
// returns the confined browser.
func confinedClient(t *testing.T, env *apptest.Env, slug, email, password string) *apptest.Client {
	t.Helper()
	c := env.Client()
	if res := c.Login(slug, email, password); !strings.HasPrefix(location(res), "/t/"+slug+"/account/enroll") {
		t.Fatalf("%s past deadline: login goes to %q", email, location(res))
	}
	return c
}

// sendLink asks for a link in c's session and returns its path.
func sendLink(t *testing.T, env *apptest.Env, c *apptest.Client, slug, email string) string {
	t.Helper()
	if res := c.PostForm("/t/"+slug+"/account/enroll/link", nil); location(res) != "/t/"+slug+"/account/enroll?sent=1" {
		t.Fatalf("send link = %d %q %s", res.StatusCode, location(res), res.Body)
	}
	return lastEnrollLink(t, env, email)
}

// unlocked reports whether c's session may enroll (the authenticator app's
// setup is not sent back to the interstitial). It starts an enrollment
// when it is.
func unlocked(t *testing.T, c *apptest.Client, slug string) bool {
	t.Helper()
	res := c.PostForm("/t/"+slug+"/account/mfa/totp/setup", nil)
	return location(res) == "/t/"+slug+"/account/mfa/totp"
}

// refused fails unless posting link in c is refused with the page's
// message and leaves the session confined.
func refused(t *testing.T, what string, c *apptest.Client, slug, link string) {
	t.Helper()
	res := c.PostForm(link, nil)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(res.Doc().Text(), linkRefused) {
		t.Fatalf("%s: POST link = %d %q", what, res.StatusCode, location(res))
	}
	if unlocked(t, c, slug) {
		t.Fatalf("%s: the session was unlocked", what)
	}
}

func linksUsed(t *testing.T, env *apptest.Env) int64 {
	return queryInt(t, env, `SELECT COUNT(*) FROM enroll_links WHERE used_at IS NOT NULL`)
}

func TestEnforceLinkRefused(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	globex := mustWorkspace(t, env, "globex")
	env.User(acme, "bob@acme.test", db.RoleMember, "bob password 1")
	requireSystem(t, env, acme)
	requireSystem(t, env, globex)
	env.Clock.Advance(15 * 24 * time.Hour)

	alice := confinedClient(t, env, "acme", "alice@acme.test", pw)
	bob := confinedClient(t, env, "acme", "bob@acme.test", "bob password 1")
	aliceGlobex := confinedClient(t, env, "globex", "alice@acme.test", "globex password 1")

	t.Run("AnotherMember", func(t *testing.T) {
		link := sendLink(t, env, bob, "acme", "bob@acme.test")
		refused(t, "bob's link in alice's session", alice, "acme", link)
		// Bob's link was not spent by the attempt.
		if res := bob.PostForm(link, nil); location(res) != "/t/acme/account/enroll" || !unlocked(t, bob, "acme") {
			t.Fatalf("bob's own link after alice tried it = %d %q", res.StatusCode, location(res))
		}
	})
	t.Run("AnotherWorkspace", func(t *testing.T) {
		// alice in globex asks; the token on acme's path, in acme's session.
		link := sendLink(t, env, aliceGlobex, "globex", "alice@acme.test")
		token := link[strings.LastIndex(link, "/")+1:]
		refused(t, "globex's link at acme", alice, "acme", "/t/acme/account/enroll/link/"+token)
		// And acme's link at globex.
		acmeLink := sendLink(t, env, alice, "acme", "alice@acme.test")
		acmeToken := acmeLink[strings.LastIndex(acmeLink, "/")+1:]
		refused(t, "acme's link at globex", aliceGlobex, "globex", "/t/globex/account/enroll/link/"+acmeToken)
	})
	t.Run("AnotherSession", func(t *testing.T) {
		link := sendLink(t, env, alice, "acme", "alice@acme.test")
		other := confinedClient(t, env, "acme", "alice@acme.test", pw)
		refused(t, "alice's link in her other session", other, "acme", link)
	})
	t.Run("UsedTwice", func(t *testing.T) {
		fresh := confinedClient(t, env, "acme", "alice@acme.test", pw)
		link := sendLink(t, env, fresh, "acme", "alice@acme.test")
		if res := fresh.PostForm(link, nil); location(res) != "/t/acme/account/enroll" {
			t.Fatalf("first use = %d %q", res.StatusCode, location(res))
		}
		used := linksUsed(t, env)
		second := confinedClient(t, env, "acme", "alice@acme.test", pw)
		refused(t, "used link in another session", second, "acme", link)
		res := fresh.PostForm(link, nil)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(res.Doc().Text(), linkRefused) {
			t.Fatalf("second use = %d", res.StatusCode)
		}
		if n := linksUsed(t, env); n != used {
			t.Fatalf("links used %d -> %d", used, n)
		}
	})
	// Last: moving the clock ends the idle sessions above.
	t.Run("Expired", func(t *testing.T) {
		c := confinedClient(t, env, "acme", "alice@acme.test", pw)
		link := sendLink(t, env, c, "acme", "alice@acme.test")
		// Keep the session alive (30 minutes idle) while the link expires.
		env.Clock.Advance(20 * time.Minute)
		c.Get("/t/acme/account/enroll")
		env.Clock.Advance(11 * time.Minute)
		refused(t, "expired", c, "acme", link)
	})
	// Only bob's and fresh's links were ever used.
	if n := linksUsed(t, env); n != 2 {
		t.Fatalf("%d links used, want 2", n)
	}
	if n := countEvents(t, env, db.EventEnrollLinkUsed); n != 2 {
		t.Fatalf("%d link-used events, want 2", n)
	}
}

func TestEnforceLinkThrottle(t *testing.T) {
	t.Parallel()
	env, acme, _ := setup(t)
	requireSystem(t, env, acme)
	env.Clock.Advance(15 * 24 * time.Hour)
	c := confinedClient(t, env, "acme", "alice@acme.test", pw)
	for range 5 {
		sendLink(t, env, c, "acme", "alice@acme.test")
		env.Clock.Advance(time.Minute)
	}
	// Another session of the same member counts too.
	other := confinedClient(t, env, "acme", "alice@acme.test", pw)
	for _, cl := range []*apptest.Client{c, other} {
		res := cl.PostForm("/t/acme/account/enroll/link", nil)
		if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(res.Doc().Text(), "Too many links were sent") {
			t.Fatalf("6th link = %d %q", res.StatusCode, location(res))
		}
	}
	if n := outboxCount(t, env.Store, "mfa_enroll_link", "alice@acme.test"); n != 5 {
		t.Fatalf("%d links sent, want 5", n)
	}
	if n := countEvents(t, env, db.EventEnrollLinkSent); n != 5 {
		t.Fatalf("%d link-sent events, want 5", n)
	}
	// An hour after the first, one more may go.
	env.Clock.Advance(time.Hour - 4*time.Minute)
	sendLink(t, env, confinedClient(t, env, "acme", "alice@acme.test", pw), "acme", "alice@acme.test")
	if n := outboxCount(t, env.Store, "mfa_enroll_link", "alice@acme.test"); n != 6 {
		t.Fatalf("%d links sent after the hour, want 6", n)
	}
}
