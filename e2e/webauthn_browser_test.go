package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	cdpwa "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// Passkeys and security keys through the real pages, with Chromium's
// DevTools virtual authenticator standing in for the member's device (see
// ../shared/TOOLING.md item 2 for its pitfalls: presence simulation must be
// switched on, one internal authenticator per tab, at most 3 resident
// credentials, and the pages must be on localhost or {slug}.localhost, never
// 127.0.0.1).

// authenticator adds a virtual authenticator to the tab and returns its id.
// A platform authenticator (fingerprint or screen lock, transport internal)
// keeps resident keys: passkeys. A security key (usb) keeps none, so it
// works only as a second factor. Both verify the user.
func (b *browser) authenticator(platform bool) cdpwa.AuthenticatorID {
	b.t.Helper()
	return b.addAuthenticator(platform, false)
}

// syncedAuthenticator is a platform authenticator whose passkeys are backup
// eligible and backed up, as a phone's synced passkeys are.
func (b *browser) syncedAuthenticator() cdpwa.AuthenticatorID {
	b.t.Helper()
	return b.addAuthenticator(true, true)
}

func (b *browser) addAuthenticator(platform, synced bool) cdpwa.AuthenticatorID {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, cdpwa.Enable, cdpwa.EnableParams{}); err != nil {
		b.t.Fatalf("WebAuthn.enable: %v", err)
	}
	transport := cdpwa.AuthenticatorTransportUsb
	if platform {
		transport = cdpwa.AuthenticatorTransportInternal
	}
	res, err := chromedp.Call(b.ctx, cdpwa.AddVirtualAuthenticator, cdpwa.AddVirtualAuthenticatorParams{
		Options: &cdpwa.VirtualAuthenticatorOptions{
			Protocol:            cdpwa.AuthenticatorProtocolCtap2,
			Ctap2version:        cdpwa.Ctap2versionCtap21,
			Transport:           transport,
			HasResidentKey:      platform,
			HasUserVerification: true,
			IsUserVerified:      true,
			// The Go zero value would switch presence off and every
			// ceremony would hang (TOOLING.md item 2, pitfall 1).
			AutomaticPresenceSimulation: true,
			DefaultBackupEligibility:    synced,
			DefaultBackupState:          synced,
		}})
	if err != nil {
		b.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// withoutAutofill makes the tab's pages see a browser without passkey
// autofill (isConditionalMediationAvailable resolves false) until the
// returned function is called. The virtual authenticator answers an
// autofill request at once, as if the member had picked the passkey from
// the menu; tests of the explicit button switch autofill off with this.
func (b *browser) withoutAutofill() (restore func()) {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `if (window.PublicKeyCredential) Object.defineProperty(PublicKeyCredential, "isConditionalMediationAvailable", {value: () => Promise.resolve(false)});`,
	})
	if err != nil {
		b.t.Fatalf("Page.addScriptToEvaluateOnNewDocument: %v", err)
	}
	return func() {
		if _, err := chromedp.Call(b.ctx, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: res.Identifier}); err != nil {
			b.t.Fatalf("Page.removeScriptToEvaluateOnNewDocument: %v", err)
		}
	}
}

// credentials lists what the virtual authenticator holds: the browser's
// view, independent of the server.
func (b *browser) credentials(id cdpwa.AuthenticatorID) []*cdpwa.Credential {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, cdpwa.GetCredentials, cdpwa.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		b.t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// waitFor waits until the JavaScript expression is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		b.fail("wait for "+what, err)
	}
}

// addKey adds a passkey on the MFA page (which must be open) under name. For
// a first second factor it saves the recovery codes the page then shows,
// and returns them. It leaves the browser on the MFA page.
func (b *browser) addKey(name string, first bool, prefix string) []string {
	t := b.t
	t.Helper()
	b.do("name the key",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=add-passkey]`)),
		chromedp.SendKeys(chromedp.ID("key_name"), name),
		chromedp.Click(chromedp.CSS(`[data-testid=add-passkey]`)),
	)
	if !first {
		b.do("key added", chromedp.WaitVisible(chromedp.CSS(`main > [role=status]`)))
		if got := b.text(`main > [role=status]`); got != "Your passkey or security key was added." {
			t.Errorf("notice after adding a key = %q", got)
		}
		return nil
	}
	// The first second factor: the recovery codes, shown once in the page.
	b.do("recovery codes", chromedp.WaitVisible(chromedp.CSS(`[data-wa-codes] [data-testid=recovery-codes] li`)))
	codes := run(b, "codes", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("[data-testid=recovery-codes] li")].map(li => li.textContent.trim())`))
	if len(codes) != 10 {
		t.Fatalf("after the first key the page lists %d recovery codes, want 10: %q", len(codes), codes)
	}
	if n := run(b, "other content hidden", chromedp.Evaluate[int](
		`[...document.getElementById("main").children].filter(el => !el.hidden && !el.matches("[data-wa-codes], h1")).length`)); n != 0 {
		t.Errorf("%d other blocks stay visible beside the recovery codes", n)
	}
	if got := run(b, "focus", chromedp.Evaluate[string](`document.activeElement.id`)); got != "wa-codes-h" {
		t.Errorf("focus is on #%s, want the codes heading", got)
	}
	b.checkPage("recovery codes after the first key")
	b.noHorizontalScroll("recovery codes after the first key")
	b.screenshot(prefix + "-key-recovery-codes")
	b.checkRecoveryCodeActions(codes)
	b.do("tick I saved", chromedp.Click(chromedp.ID("wa-saved")))
	b.submit(`[data-wa-codes] [data-testid=codes-saved]`)
	b.do("MFA page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=key]`)))
	if got := b.text(`main > [role=status]`); got != "Your passkey or security key was added." {
		t.Errorf("notice after saving the codes = %q", got)
	}
	return codes
}

// keyNames lists the keys the MFA page shows.
func (b *browser) keyNames() []string {
	b.t.Helper()
	return run(b, "keys", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("[data-testid=key-name]")].map(el => el.textContent.trim())`))
}

// usersKeys is the server's view of a member's keys.
func usersKeys(t *testing.T, env *apptest.Env, slug, email string) []db.WebAuthnCredential {
	t.Helper()
	ctx := context.Background()
	ws, err := env.Store.WorkspaceBySlug(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	u, err := env.Store.UserByEmail(ctx, ws.ID, email)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := env.Store.WebAuthnCredentials(ctx, ws.ID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// (a) + (d) A member adds a passkey through the portal, signs out, signs in
// with "Sign in with a passkey" and no password, then removes the key.
func TestBrowserPasskeyPasswordless(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)

	b := newBrowser(t, 1024, 768)
	authID := b.authenticator(true)
	restoreAutofill := b.withoutAutofill()
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	b.navigate(base + "/t/acme/account/mfa")
	b.checkPage("MFA page without keys")
	b.addKey("iPhone", true, "pk")

	if got := b.keyNames(); len(got) != 1 || got[0] != "iPhone" {
		t.Errorf("MFA page lists keys %q, want [iPhone]", got)
	}
	if got := b.text(`[data-testid=key-kind]`); got != "Device-bound key" {
		t.Errorf("kind = %q, want Device-bound key (the virtual authenticator is not backup eligible)", got)
	}
	if got := b.text(`[data-testid=recovery-remaining]`); got != "10" {
		t.Errorf("recovery codes left = %q, want 10", got)
	}
	creds := b.credentials(authID)
	if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %+v, want one resident credential for localhost", creds)
	}
	keys := usersKeys(t, env, "acme", "alice@acme.test")
	if len(keys) != 1 || string(keys[0].CredentialID) != string(creds[0].CredentialID) || keys[0].Name != "iPhone" {
		t.Fatalf("server keys = %+v, want the authenticator's credential named iPhone", keys)
	}
	b.checkPage("MFA page with a key")
	b.noHorizontalScroll("MFA page with a key")
	b.screenshot("pk-mfa-keys")

	b.submit(`[data-testid=sign-out]`)
	b.do("signed out", chromedp.WaitVisible(chromedp.CSS(`[data-testid=passkey-sign-in]`)))
	if got := run(b, "autocomplete", chromedp.AttributeValue(chromedp.ID("email"), "autocomplete")); got.Value != "username webauthn" {
		t.Errorf("email autocomplete = %q, want \"username webauthn\" (passkey autofill)", got.Value)
	}
	b.checkPage("sign-in page")
	b.screenshot("pk-sign-in")
	b.do("sign in with a passkey", chromedp.Click(chromedp.CSS(`[data-testid=passkey-sign-in]`)))
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/t/acme/account" {
		t.Errorf("after the passkey the page is %s, want /t/acme/account", got)
	}
	if got := b.text(`[data-testid=account-email]`); got != "alice@acme.test" {
		t.Errorf("portal email = %q", got)
	}
	if got := usersKeys(t, env, "acme", "alice@acme.test"); len(got) != 1 || got[0].LastUsedAt.IsZero() || got[0].SignCount == 0 {
		t.Errorf("after the sign-in the key is %+v, want last used and a sign count", got)
	}

	// Passkey autofill (conditional mediation): the sign-in page asks on
	// load; the virtual authenticator answers as a member picking the
	// passkey in the email field's menu would. No click, no password.
	b.submit(`[data-testid=sign-out]`)
	restoreAutofill()
	b.navigate(base + "/t/acme/login")
	b.do("portal through autofill", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/t/acme/account" {
		t.Errorf("after passkey autofill the page is %s, want /t/acme/account", got)
	}

	// Rename it.
	b.navigate(base + "/t/acme/account/mfa")
	b.do("rename",
		chromedp.Click(chromedp.CSS(`[data-testid=key] summary`)),
		chromedp.Clear(chromedp.CSS(`[data-testid=key] input[name=name]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=key] input[name=name]`), "Alice's iPhone"),
	)
	b.submit(`[data-testid=key] form[action$="/rename"] button`)
	if got := b.keyNames(); len(got) != 1 || got[0] != "Alice's iPhone" {
		t.Errorf("after renaming the page lists %q", got)
	}

	// (d) Remove it, eleven minutes later: the change needs a fresh second
	// factor first, which the key gives on the step-up page. Then a
	// confirmation, gone on the server, and the browser is told
	// (signalUnknownCredential / signalAllAcceptedCredentials).
	env.Clock.Advance(11 * time.Minute)
	b.navigate(base + "/t/acme/account/mfa")
	b.do("open rename or remove", chromedp.Click(chromedp.CSS(`[data-testid=key] summary`)))
	b.submit(`[data-testid=remove-key]`)
	b.do("step-up page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/account/verify") {
		t.Errorf("removing after 11 minutes opened %s, want the step-up page", got)
	}
	if n := run(b, "code field", chromedp.Evaluate[int](`document.querySelectorAll("#code").length`)); n != 0 {
		t.Errorf("the step-up page asks a key-only member for an app code")
	}
	b.checkPage("step-up page with a key")
	b.screenshot("pk-step-up")
	b.do("confirm with the key",
		chromedp.Click(chromedp.CSS(`[data-testid=use-key]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=remove-key]`)),
	)
	if got := b.path(); got != "/t/acme/account/mfa" {
		t.Errorf("after the step-up the page is %s, want /t/acme/account/mfa", got)
	}
	if got := usersKeys(t, env, "acme", "alice@acme.test"); len(got) != 1 {
		t.Fatalf("the step-up removed the key already: %+v", got)
	}
	b.do("open rename or remove", chromedp.Click(chromedp.CSS(`[data-testid=key] summary`)))
	b.submit(`[data-testid=remove-key]`)
	b.do("notice", chromedp.WaitVisible(chromedp.CSS(`main > [role=status]`)))
	if got := b.text(`main > [role=status]`); got != "The key was removed. You can no longer sign in with it here." {
		t.Errorf("notice after removing = %q", got)
	}
	if got := b.keyNames(); len(got) != 0 {
		t.Errorf("after removal the page lists %q", got)
	}
	if got := usersKeys(t, env, "acme", "alice@acme.test"); len(got) != 0 {
		t.Errorf("after removal the server still has %+v", got)
	}
	removed := run(b, "data-removed", chromedp.AttributeValue(chromedp.CSS(`[data-wa-signal]`), "data-removed"))
	if !removed.Exists || removed.Value == "" {
		t.Errorf("the page does not name the removed credential for the Signal API")
	}
	if run(b, "signal API", chromedp.Evaluate[bool](`typeof PublicKeyCredential.signalUnknownCredential === "function"`)) {
		deadline := time.Now().Add(5 * time.Second)
		for len(b.credentials(authID)) != 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := b.credentials(authID); len(got) != 0 {
			t.Errorf("after the Signal API the authenticator still holds %d credentials", len(got))
		}
	} else {
		t.Logf("this Chromium has no WebAuthn Signal API")
	}
	b.checkPage("MFA page after removal")
	b.screenshot("pk-mfa-removed")
	b.checkConsole()
}

// useKey clicks "Use your passkey or security key" on the challenge page
// and waits for the portal.
func (b *browser) useKey() {
	b.t.Helper()
	b.do("use the key",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=use-key]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)),
	)
	if got := b.path(); got != "/t/acme/account" {
		b.t.Errorf("after the key the page is %s, want /t/acme/account", got)
	}
}

// (b) A security key as the second factor: Alice adds one beside her
// authenticator app, Bob has only the key. Both sign in with password +
// key; the challenge page offers the key first, and Bob sees no code field.
func TestBrowserSecurityKeySecondFactor(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)
	env.User(ws, "bob@acme.test", "member", password)

	alice := newBrowser(t, 1024, 768)
	alice.authenticator(false)
	alice.signIn(base, "acme", "alice@acme.test", password)
	alice.enrollTOTP(env, "sk")
	alice.addKey("YubiKey 5", false, "sk")
	if got := alice.keyNames(); len(got) != 1 || got[0] != "YubiKey 5" {
		t.Errorf("MFA page lists keys %q, want [YubiKey 5]", got)
	}
	if got := alice.text(`[data-testid=recovery-remaining]`); got != "10" {
		t.Errorf("recovery codes left = %q, want the 10 of the app (none made for a second factor)", got)
	}
	// The same key again: the browser refuses, the page says why.
	alice.do("add it again",
		chromedp.SendKeys(chromedp.ID("key_name"), "Same key"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-webauthn=register] [data-wa-error]`)),
	)
	if got := alice.text(`[data-webauthn=register] [data-wa-error]`); got != "This key is already registered." {
		t.Errorf("adding the same key twice says %q", got)
	}
	if got := run(alice, "error role", chromedp.AttributeValue(chromedp.CSS(`[data-webauthn=register] [data-wa-error]`), "role")); got.Value != "alert" {
		t.Errorf("the error region has role %q, want alert", got.Value)
	}
	alice.checkPage("MFA page with a refused key")
	alice.screenshot("sk-mfa-already-registered")
	if got := usersKeys(t, env, "acme", "alice@acme.test"); len(got) != 1 {
		t.Errorf("server has %d keys for Alice, want 1", len(got))
	}

	alice.submit(`[data-testid=sign-out]`)
	alice.signIn(base, "acme", "alice@acme.test", password)
	alice.do("challenge page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)))
	order := run(alice, "method order", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("[data-testid=use-key], #code, [data-testid=use-recovery]")].map(el => el.dataset.testid || el.id)`))
	if strings.Join(order, ",") != "use-key,code,use-recovery" {
		t.Errorf("challenge page offers %q, want the key, then the code, then a recovery code", order)
	}
	if got := run(alice, "focus", chromedp.Evaluate[string](`document.activeElement.dataset.testid || document.activeElement.id`)); got != "use-key" {
		t.Errorf("the challenge page focuses %q, want the key button", got)
	}
	alice.checkPage("challenge page with a key")
	alice.screenshot("sk-challenge")
	alice.useKey()
	if got := usersKeys(t, env, "acme", "alice@acme.test"); len(got) != 1 || got[0].LastUsedAt.IsZero() {
		t.Errorf("after the second factor Alice's key is %+v, want it last used", got)
	}

	// Adding a key later needs a fresh second factor: the page goes to the
	// step-up page, which offers the key first, and comes back.
	env.Clock.Advance(11 * time.Minute)
	alice.navigate(base + "/t/acme/account/mfa")
	alice.do("add after 11 minutes",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=add-passkey]`)),
		chromedp.SendKeys(chromedp.ID("key_name"), "Spare key"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)),
	)
	if got := alice.path(); got != "/t/acme/account/verify?next=%2Ft%2Facme%2Faccount%2Fmfa" {
		t.Errorf("adding a key without a fresh factor opened %s, want the step-up page", got)
	}
	if n := run(alice, "code field", chromedp.Evaluate[int](`document.querySelectorAll("#code").length`)); n != 1 {
		t.Errorf("the step-up page does not offer Alice's authenticator app")
	}
	alice.do("confirm with the key",
		chromedp.Click(chromedp.CSS(`[data-testid=use-key]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=add-passkey]`)),
	)
	if got := alice.path(); got != "/t/acme/account/mfa" {
		t.Errorf("after the step-up the page is %s, want /t/acme/account/mfa", got)
	}

	// Bob: the key is his first and only second factor.
	bob := alice.tab()
	bob.authenticator(false)
	bob.signIn(base, "acme", "bob@acme.test", password)
	bob.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	bob.navigate(base + "/t/acme/account/mfa")
	bob.addKey("Bob's key", true, "sk-bob")
	bob.submit(`[data-testid=sign-out]`)
	bob.signIn(base, "acme", "bob@acme.test", password)
	bob.do("challenge page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)))
	if n := run(bob, "code field", chromedp.Evaluate[int](`document.querySelectorAll("#code").length`)); n != 0 {
		t.Errorf("Bob has no authenticator app but the challenge page asks for its code")
	}
	bob.checkPage("challenge page, key only")
	bob.screenshot("sk-challenge-key-only")
	bob.useKey()
	alice.checkConsole()
	bob.checkConsole()
}

// startAppOnHosts runs Gatehouse with the base domain localhost: each
// workspace lives on {slug}.localhost:PORT, which Chromium resolves to
// loopback by itself, and is its own relying party.
func startAppOnHosts(t *testing.T) (*apptest.Env, string) {
	t.Helper()
	var port string
	env := apptest.New(t, func(c *app.Config) {
		_, p, err := net.SplitHostPort(c.Addr)
		if err != nil {
			t.Fatalf("app address %q: %v", c.Addr, err)
		}
		port = p
		u, err := app.ParseBaseURL("http://localhost:" + port)
		if err != nil {
			t.Fatal(err)
		}
		c.BaseURL, c.BaseDomain = u, "localhost"
	})
	return env, port
}

// (c) A passkey of acme.localhost is not offered on globex.localhost, even
// for a member with the same email there; acme still signs in with it.
func TestBrowserPasskeyStaysInItsWorkspace(t *testing.T) {
	env, port := startAppOnHosts(t)
	acme := "http://acme.localhost:" + port
	globex := "http://globex.localhost:" + port
	env.User(env.Workspace("acme", "Acme Corp"), "alice@example.test", "member", password)
	env.User(env.Workspace("globex", "Globex"), "alice@example.test", "member", password)

	b := newBrowser(t, 1024, 768)
	authID := b.authenticator(true)
	restore := b.withoutAutofill()
	b.navigate(acme + "/login")
	b.do("sign in on acme's host",
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "alice@example.test"),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	b.submit(`[data-testid=sign-in]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	b.navigate(acme + "/account/mfa")
	b.addKey("Laptop", true, "ws")
	creds := b.credentials(authID)
	if len(creds) != 1 || creds[0].RpID != "acme.localhost" {
		t.Fatalf("the authenticator holds %+v, want one credential for acme.localhost", creds)
	}
	if got := run(b, "rp id on the page", chromedp.AttributeValue(chromedp.CSS(`[data-wa-signal]`), "data-rp-id")); got.Value != "acme.localhost" {
		t.Errorf("the MFA page's RP ID = %q, want acme.localhost", got.Value)
	}

	// On globex, the passkey is not offered: the browser finds no
	// credential for globex.localhost and answers NotAllowedError.
	b.navigate(globex + "/login")
	b.do("passkey on globex",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=passkey-sign-in]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=passkey-sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-wa-error]`)),
	)
	if got := b.text(`[data-wa-error]`); got != "Cancelled or timed out. Try again, or use another method." {
		t.Errorf("globex says %q, want the NotAllowedError message", got)
	}
	if got := b.path(); !strings.HasPrefix(got, "/login") {
		t.Errorf("globex page after the refused passkey = %s, want the sign-in page", got)
	}
	if got := run(b, "button usable", chromedp.Evaluate[bool](`!document.querySelector("[data-testid=passkey-sign-in]").disabled`)); !got {
		t.Errorf("the passkey button stays disabled after a refusal")
	}
	b.checkPage("globex sign-in with a refused passkey")
	b.screenshot("ws-globex-refused")
	if got := b.credentials(authID); len(got) != 1 || got[0].RpID != "acme.localhost" {
		t.Errorf("after globex the authenticator holds %+v", got)
	}
	if got := usersKeys(t, env, "globex", "alice@example.test"); len(got) != 0 {
		t.Errorf("globex's Alice has keys %+v", got)
	}
	// Autofill on globex offers nothing either: the page stays.
	restore()
	b.navigate(globex + "/login")
	time.Sleep(500 * time.Millisecond)
	if got := b.path(); !strings.HasPrefix(got, "/login") {
		t.Errorf("globex autofill led to %s", got)
	}

	// Acme still signs in with it.
	b.navigate(acme + "/login")
	b.do("autofill on acme", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/account" {
		t.Errorf("acme after the passkey = %s, want /account", got)
	}
	b.checkConsole()
}

// (e) Phone width: the pages with passkeys fit a 390px screen.
func TestBrowserPasskeyPhone(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)

	b := newBrowser(t, 390, 844)
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.authenticator(false)
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	b.navigate(base + "/t/acme/account/mfa")
	b.addKey("YubiKey 5 NFC with a rather long name", true, "phone")
	b.do("open rename or remove", chromedp.Click(chromedp.CSS(`[data-testid=key] summary`)))
	b.noHorizontalScroll("MFA page with keys")
	b.screenshot("phone-mfa-keys")
	b.submit(`[data-testid=sign-out]`)
	b.do("sign-in page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=passkey-sign-in]`)))
	b.noHorizontalScroll("sign-in page")
	b.screenshot("phone-sign-in-passkey")
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("challenge page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-key]`)))
	b.noHorizontalScroll("challenge page with a key")
	b.screenshot("phone-challenge-key")
	b.useKey()
	b.checkConsole()
}

// The workspace's passkey rules on the pages: "device-bound keys only"
// refuses a synced passkey with a clear message; with "passkeys satisfy
// MFA" off, a passkey stands for the password and the challenge page asks
// for the app code, without offering the key again.
func TestBrowserPasskeyRules(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)
	ctx := context.Background()
	if err := env.Store.SetPasskeySettings(ctx, ws.ID, db.PasskeySettings{SatisfyMFA: false, DeviceBoundOnly: true}); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, 1024, 768)
	b.syncedAuthenticator()
	restore := b.withoutAutofill()
	b.signIn(base, "acme", "alice@acme.test", password)
	secret, _ := b.enrollTOTP(env, "rules")
	b.do("add a synced passkey",
		chromedp.SendKeys(chromedp.ID("key_name"), "Phone"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-webauthn=register] [data-wa-error]`)),
	)
	if got := b.text(`[data-webauthn=register] [data-wa-error]`); !strings.Contains(got, "only device-bound") {
		t.Errorf("a synced passkey in a device-bound-only workspace says %q", got)
	}
	b.screenshot("rules-synced-refused")
	if got := usersKeys(t, env, "acme", "alice@acme.test"); len(got) != 0 {
		t.Fatalf("the synced passkey was stored: %+v", got)
	}

	if err := env.Store.SetPasskeySettings(ctx, ws.ID, db.PasskeySettings{SatisfyMFA: false, DeviceBoundOnly: false}); err != nil {
		t.Fatal(err)
	}
	b.navigate(base + "/t/acme/account/mfa")
	b.addKey("Phone", false, "rules")
	if got := b.text(`[data-testid=key-kind]`); got != "Synced passkey" {
		t.Errorf("kind = %q, want Synced passkey", got)
	}

	b.submit(`[data-testid=sign-out]`)
	b.do("sign in with a passkey",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=passkey-sign-in]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=passkey-sign-in]`)),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login/mfa") {
		t.Errorf("after the passkey the page is %s, want the challenge page", got)
	}
	if n := run(b, "key button", chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=use-key]").length`)); n != 0 {
		t.Errorf("after a passkey sign-in the challenge page offers the key again")
	}
	b.checkPage("challenge page after a passkey")
	env.Clock.Advance(30 * time.Second)
	b.do("type code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	b.submit(`[data-testid=verify]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	restore()
	b.checkConsole()
}
