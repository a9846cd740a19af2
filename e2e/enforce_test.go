package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/app/apptest"
)

// requireFor puts the workspace under "required" with the member's
// deadline at deadline (a fixture: the admin console is tested elsewhere).
func requireFor(t *testing.T, env *apptest.Env, email string, deadline time.Time) {
	t.Helper()
	now := env.Clock.Now().Unix()
	if _, err := env.Store.DB().Exec(`UPDATE workspaces SET mfa_policy = 'required', enforced_since = ?`, now); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.DB().Exec(`UPDATE users SET mfa_since = ?, mfa_deadline = ? WHERE email = ?`, now, deadline.Unix(), email); err != nil {
		t.Fatal(err)
	}
}

var enrollLinkRE = regexp.MustCompile(`https?://\S+/account/enroll/link/[A-Za-z0-9_-]{43}`)

func TestBrowserEnforceGrace(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)
	requireFor(t, env, "alice@acme.test", env.Clock.Now().Add(10*24*time.Hour))

	b := newBrowser(t, 1024, 768)
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("interstitial", chromedp.WaitVisible(chromedp.CSS(`[data-testid=enroll-later]`)))
	if got := b.text(`main`); !strings.Contains(got, "10 days left") {
		t.Errorf("interstitial does not give the days left:\n%s", got)
	}
	b.checkPage("enroll interstitial")
	b.screenshot("enforce-interstitial")
	b.submit(`[data-testid=enroll-later]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.text(`[data-testid=enroll-banner]`); !strings.Contains(got, "10 days left") {
		t.Errorf("banner = %q", got)
	}
	b.checkPage("portal with the banner")
	b.screenshot("enforce-banner")
}

func TestBrowserEnforcePastDeadline(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)
	requireFor(t, env, "alice@acme.test", env.Clock.Now().Add(-time.Hour))

	b := newBrowser(t, 1024, 768)
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("confined", chromedp.WaitVisible(chromedp.CSS(`[data-testid=enroll-email-link]`)))
	b.navigate(base + "/t/acme/account")
	b.do("still confined", chromedp.WaitVisible(chromedp.CSS(`[data-testid=enroll-email-link]`)))
	if got := b.path(); got != "/t/acme/account/enroll" {
		t.Errorf("/account shows %s, want /t/acme/account/enroll", got)
	}
	b.checkPage("confined page")
	b.screenshot("enforce-confined")

	b.submit(`[data-testid=enroll-email-link]`)
	b.do("sent", chromedp.WaitVisible(chromedp.CSS(`main [role=status]`)))
	msgs, err := env.Store.OutboxMessages(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	link := ""
	for _, m := range msgs {
		if m.Kind == "mfa_enroll_link" {
			link = enrollLinkRE.FindString(m.Text)
		}
	}
	if link == "" {
		t.Fatal("no enrollment link in the outbox")
	}
	b.navigate(link)
	b.do("link page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=enroll-link-continue]`)))
	b.submit(`[data-testid=enroll-link-continue]`)
	b.do("unlocked", chromedp.WaitVisible(chromedp.CSS(`[data-testid=enroll-totp]`)))
	b.submit(`[data-testid=enroll-totp]`)
	b.do("QR page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=totp-secret]`)))
	secret := strings.ReplaceAll(b.text(`[data-testid=totp-secret]`), " ", "")
	b.do("type code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	b.submit(`[data-testid=confirm-totp]`)
	b.do("recovery codes", chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes]`)))
	b.do("tick I saved", chromedp.Click(chromedp.ID("saved")))
	b.submit(`[data-testid=codes-saved]`)
	b.navigate(base + "/t/acme/account")
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/t/acme/account" {
		t.Errorf("after enrolling the portal is %s", got)
	}
	b.checkConsole()
}
