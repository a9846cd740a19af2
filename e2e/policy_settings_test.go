package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// An admin with an authenticator app signs in with a code, opens the
// security settings, previews "required" and sees its impact, saves, and
// sees the notice; the page is checked and photographed at desktop and
// phone widths.
func TestBrowserPolicySettings(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "admin", password) // enrollTOTP expects alice
	env.User(ws, "bob@acme.test", "member", password)
	env.User(ws, "carol@acme.test", "member", password)

	b := newBrowser(t, 1280, 900)
	b.signIn(base, "acme", "alice@acme.test", password)
	secret, _ := b.enrollTOTP(env, "p")
	b.submit(`[data-testid=sign-out]`)
	b.do("signed out", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)))
	b.signIn(base, "acme", "alice@acme.test", password)
	b.challengePage()
	env.Clock.Advance(30 * time.Second)
	b.do("type code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	b.submit(`[data-testid=verify]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))

	b.navigate(base + "/t/acme/admin/settings/security")
	b.do("settings page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=policy-form]`)))
	if got := b.text(`[data-testid=current-policy]`); got != "Optional" {
		t.Errorf("current policy = %q, want Optional", got)
	}
	b.checkPage("security settings")
	b.screenshot("p-settings")

	// Preview "required": the impact, nothing saved yet.
	b.do("choose required", chromedp.Click(chromedp.ID("policy-required")))
	b.submit(`[data-testid=preview]`)
	b.do("preview", chromedp.WaitVisible(chromedp.CSS(`[data-testid=preview-impact]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/admin/settings/security?") || strings.Contains(got, "notice=") {
		t.Errorf("preview page = %s", got)
	}
	deadline := env.Clock.Now().Add(30 * 24 * time.Hour).UTC().Format("2 Jan 2006")
	if got := b.text(`[data-testid=preview-impact]`); !strings.Contains(got, "2 members have no allowed second factor") || !strings.Contains(got, deadline) {
		t.Errorf("impact = %q, want 2 members and %s", got, deadline)
	}
	if got := b.text(`[data-testid=current-policy]`); got != "Optional" {
		t.Errorf("the preview saved: current policy %q", got)
	}
	if ok := run(b, "required kept", chromedp.Evaluate[bool](`document.getElementById("policy-required").checked`)); !ok {
		t.Error("the preview lost the chosen policy")
	}
	b.checkPage("security settings preview")
	b.screenshot("p-settings-preview")

	b.submit(`[data-testid=save]`)
	b.do("notice", chromedp.WaitVisible(chromedp.CSS(`main [role=status]`)))
	if got := b.text(`main [role=status]`); !strings.Contains(got, "saved") {
		t.Errorf("notice = %q", got)
	}
	if got := b.text(`[data-testid=current-policy]`); got != "Required" {
		t.Errorf("after saving the policy is %q, want Required", got)
	}
	b.screenshot("p-settings-saved")

	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.navigate(base + "/t/acme/admin/settings/security")
	b.do("settings page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=policy-form]`)))
	b.noHorizontalScroll("security settings")
	b.screenshot("p-settings-phone")
	b.checkConsole()
}
