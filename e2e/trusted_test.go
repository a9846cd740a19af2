package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// "Trust this browser": Alice (a security key and an authenticator app)
// ticks the box on the challenge page and passes with her key; the page's
// script carries the choice to the key ceremony. The portal lists the
// browser, and signing in again on it skips the second step, at aal1. Then
// she revokes it and the challenge is back; the box works with a code too.
func TestBrowserTrustedDevice(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)
	if _, err := env.Store.DB().Exec(`UPDATE workspaces SET trusted_device_days = 14 WHERE id = ?`, ws.ID); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, 1024, 768)
	b.authenticator(false)
	b.signIn(base, "acme", "alice@acme.test", password)
	secret, _ := b.enrollTOTP(env, "td")
	b.navigate(base + "/t/acme/account/mfa")
	b.addKey("YubiKey 5", false, "td")
	b.submit(`[data-testid=sign-out]`)

	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("challenge page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)))
	if got := b.text(`label[for=trust-device]`); got != "Trust this browser for 14 days" {
		t.Errorf("trust label = %q", got)
	}
	finish := func() string {
		return run(b, "key finish URL", chromedp.Evaluate[string](`document.querySelector("[data-testid=use-key]").dataset.finish`))
	}
	if strings.Contains(finish(), "trust_device") {
		t.Errorf("the key's finish URL asks for trust before the box is ticked: %s", finish())
	}
	b.do("tick, untick, tick", chromedp.Click(chromedp.ID("trust-device")), chromedp.Click(chromedp.ID("trust-device")))
	if strings.Contains(finish(), "trust_device") {
		t.Errorf("unticking left trust in the key's finish URL: %s", finish())
	}
	b.do("tick", chromedp.Click(chromedp.ID("trust-device")))
	if !strings.Contains(finish(), "trust_device=1") || !strings.Contains(finish(), "next=") {
		t.Errorf("after ticking, the key's finish URL is %s", finish())
	}
	b.checkPage("challenge page with the trust box")
	b.screenshot("td-challenge")
	b.useKey()

	b.do("trusted browsers", chromedp.WaitVisible(chromedp.CSS(`[data-testid=trusted-devices]`)))
	if n := run(b, "rows", chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=trusted-devices] tr[data-device]").length`)); n != 1 {
		t.Fatalf("the portal lists %d trusted browsers, want 1", n)
	}
	if got := b.text(`[data-testid=trusted-devices] tr[data-device] td`); !strings.Contains(got, "Chrome") {
		t.Errorf("trusted browser label = %q", got)
	}
	b.checkPage("portal with a trusted browser")
	b.screenshot("td-portal")

	// Again on this browser: straight to the portal, at aal1.
	b.submit(`[data-testid=sign-out]`)
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/t/acme/account" {
		t.Errorf("the trusted browser went to %s, want the portal", got)
	}
	if got := b.text(`.facts .badge`); got != "aal1" {
		t.Errorf("the trusted sign-in is %q, want aal1", got)
	}

	// Revoking is a security change: it asks for the second factor first
	// (the trusted session has none), then comes back.
	b.submit(`[data-testid=revoke-device]`)
	b.do("step-up page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/account/verify") {
		t.Fatalf("revoking on the trusted session opened %s, want the step-up page", got)
	}
	b.do("confirm with the key",
		chromedp.Click(chromedp.CSS(`[data-testid=use-key]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=revoke-device]`)),
	)
	b.submit(`[data-testid=revoke-device]`)
	b.do("revoked", chromedp.WaitVisible(chromedp.CSS(`main [role=status]`)))
	if n := run(b, "rows", chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=trusted-devices] tr[data-device]").length`)); n != 0 {
		t.Errorf("after revoking the portal lists %d trusted browsers", n)
	}

	// The challenge is back; this time the box goes with a code.
	b.submit(`[data-testid=sign-out]`)
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("challenge page", chromedp.WaitVisible(chromedp.ID("code")))
	env.Clock.Advance(30 * time.Second)
	b.do("tick and type",
		chromedp.Click(chromedp.ID("trust-device")),
		chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)),
	)
	b.submit(`[data-testid=verify]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=trusted-devices] tr[data-device]`)))
	b.submit(`[data-testid=sign-out]`)
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("portal without the challenge", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/t/acme/account" {
		t.Errorf("after trusting with a code the browser went to %s, want the portal", got)
	}
	b.checkConsole()
}
