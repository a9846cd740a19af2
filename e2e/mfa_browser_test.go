package e2e

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mfa"
)

// totpCode is what the member's authenticator app shows now: the code of
// the app clock's current step (the app's clock is the test's, not the
// wall clock).
func totpCode(t *testing.T, env *apptest.Env, secret string) string {
	t.Helper()
	code, err := mfa.CodeAt(secret, mfa.Step(env.Clock.Now()), mfa.Digits)
	if err != nil {
		t.Fatalf("code for %q: %v", secret, err)
	}
	return code
}

// enrollByAPI turns on the member's authenticator app through the JSON API
// (password "password") and returns its secret; the clock then moves a
// step on, so the confirming code is spent and the next one is new.
func enrollByAPI(t *testing.T, env *apptest.Env, slug, email string) string {
	t.Helper()
	c := env.Client()
	tok := c.APILogin(slug, email, password)
	res := c.API(http.MethodPost, "/t/"+slug+"/api/v1/mfa/totp/setup", tok, nil)
	secret, _ := res.JSON()["secret"].(string)
	if res.StatusCode != http.StatusOK || secret == "" {
		t.Fatalf("setup %s = %d %s", email, res.StatusCode, res.Body)
	}
	res = c.API(http.MethodPost, "/t/"+slug+"/api/v1/mfa/totp/verify-setup", tok, map[string]string{"code": totpCode(t, env, secret)})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("verify-setup %s = %d %s", email, res.StatusCode, res.Body)
	}
	env.Clock.Advance(mfa.Period * time.Second)
	return secret
}

// enrollTOTP takes a signed-in member from the portal through the whole
// enrollment: Manage two-step verification, Set up authenticator app, the
// QR page (secret read from the page), the first code, and the recovery
// codes page, which it leaves with "I saved" ticked. It returns the secret
// and the recovery codes. Screenshots are named prefix-….
func (b *browser) enrollTOTP(env *apptest.Env, prefix string) (string, []string) {
	t := b.t
	t.Helper()
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=manage-mfa]`)))
	b.submit(`[data-testid=manage-mfa]`)
	b.do("MFA page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=setup-totp]`)))
	if got := b.path(); got != "/t/acme/account/mfa" {
		t.Errorf("Manage two-step verification opened %s, want /t/acme/account/mfa", got)
	}
	b.checkPage("MFA page before enrollment")
	b.screenshot(prefix + "-mfa-off")

	b.submit(`[data-testid=setup-totp]`)
	b.do("QR page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=totp-qr]`)))
	if got := b.path(); got != "/t/acme/account/mfa/totp" {
		t.Errorf("set up opened %s, want /t/acme/account/mfa/totp", got)
	}
	// The QR code is a data: image; the page's CSP must let it load.
	loaded := run(b, "QR loaded", chromedp.Evaluate[[]int](
		`(() => { const i = document.querySelector("[data-testid=totp-qr]"); return [i.complete ? 1 : 0, i.naturalWidth, i.getBoundingClientRect().width]; })()`))
	if loaded[0] != 1 || loaded[1] == 0 {
		t.Errorf("the QR image did not load (complete, naturalWidth, width = %v)", loaded)
	}
	if loaded[2] < 150 {
		t.Errorf("the QR image is drawn %dpx wide: too small to scan", loaded[2])
	}
	if alt := run(b, "QR alt", chromedp.AttributeValue(chromedp.CSS(`[data-testid=totp-qr]`), "alt")); alt.Value == "" {
		t.Errorf("the QR image has no alt text")
	}
	grouped := b.text(`[data-testid=totp-secret]`)
	if !regexp.MustCompile(`^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$`).MatchString(grouped) {
		t.Errorf("secret on the page = %q, want base32 in groups of four", grouped)
	}
	secret := strings.ReplaceAll(grouped, " ", "")
	if len(secret) != 32 {
		t.Errorf("secret %q has %d characters, want 32 (160 bits)", secret, len(secret))
	}
	b.checkQRMatchesSecret(secret)
	if main := b.text(`main`); !strings.Contains(main, "alice@acme.test") || !strings.Contains(main, "Acme Corp") {
		t.Errorf("QR page does not name the account and the issuer:\n%s", main)
	}
	b.checkPage("QR page")
	b.noHorizontalScroll("QR page")
	b.screenshot(prefix + "-totp-qr")

	// A wrong code first: an error, the same QR, nothing turned on.
	if totpCode(t, env, secret) == "000000" {
		t.Skip("the code of this step happens to be 000000")
	}
	b.do("wrong code", chromedp.SendKeys(chromedp.ID("code"), "000000"))
	b.submit(`[data-testid=confirm-totp]`)
	b.do("error", chromedp.WaitVisible(chromedp.CSS(`.alert.error[role=alert]`)))
	if got := b.text(`[data-testid=totp-secret]`); got != grouped {
		t.Errorf("after a wrong code the secret changed: %q, was %q", got, grouped)
	}
	b.checkPage("QR page with an error")

	if got := run(b, "code value", chromedp.Value(chromedp.ID("code"))); got != "" {
		t.Errorf("after a wrong code the field holds %q, want it empty", got)
	}
	b.do("type code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	b.submit(`[data-testid=confirm-totp]`)
	b.do("recovery codes page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes]`)))
	codes := run(b, "codes", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("[data-testid=recovery-codes] li")].map(li => li.textContent.trim())`))
	if len(codes) != 10 {
		t.Fatalf("the recovery codes page lists %d codes, want 10: %q", len(codes), codes)
	}
	format := regexp.MustCompile(`^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$`)
	for _, c := range codes {
		if !format.MatchString(c) {
			t.Errorf("recovery code %q is not xxxx-xxxx-xxxx-xxxx", c)
		}
	}
	b.checkPage("recovery codes page")
	b.noHorizontalScroll("recovery codes page")
	b.screenshot(prefix + "-recovery-codes")
	b.checkRecoveryCodeActions(codes)

	// Continue needs the box ticked: without it the browser stays.
	b.do("continue without ticking", chromedp.Click(chromedp.CSS(`[data-testid=codes-saved]`)))
	time.Sleep(200 * time.Millisecond)
	if n := run(b, "codes still shown", chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=recovery-codes] li").length`)); n != 10 {
		t.Errorf("Continue without ticking \"I saved\" left the codes page")
	}
	b.do("tick I saved", chromedp.Click(chromedp.ID("saved")))
	b.submit(`[data-testid=codes-saved]`)
	b.do("MFA page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=totp-on]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/account/mfa") {
		t.Errorf("after the codes the page is %s, want /t/acme/account/mfa", got)
	}
	if got := b.text(`[data-testid=recovery-remaining]`); got != "10" {
		t.Errorf("recovery codes left = %q, want 10", got)
	}
	b.checkPage("MFA page")
	b.noHorizontalScroll("MFA page")
	b.screenshot(prefix + "-mfa-on")
	return secret, codes
}

// checkQRMatchesSecret decodes the QR image of the page with zbarimg, when
// it is installed, and checks that it carries the secret the page prints.
func (b *browser) checkQRMatchesSecret(secret string) {
	t := b.t
	t.Helper()
	zbarimg, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Logf("zbarimg not installed: the QR image is not decoded here (TestTOTPWithIndependentClients does)")
		return
	}
	src := run(b, "QR src", chromedp.AttributeValue(chromedp.CSS(`[data-testid=totp-qr]`), "src")).Value
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(src, prefix) {
		t.Fatalf("QR src = %.40q…, want a %s URL", src, prefix)
	}
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, prefix))
	if err != nil {
		t.Fatalf("QR src: %v", err)
	}
	f := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(f, png, 0o600); err != nil {
		t.Fatal(err)
	}
	uri := strings.TrimRight(runTool(t, zbarimg, "--raw", "-q", f), "\r\n")
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("QR says %q: %v", uri, err)
	}
	if got := u.Query().Get("secret"); got != secret {
		t.Errorf("the QR code's secret %q differs from the one printed on the page %q", got, secret)
	}
	if got := u.Query().Get("issuer"); got != "Acme Corp" {
		t.Errorf("the QR code's issuer = %q, want Acme Corp", got)
	}
}

// checkRecoveryCodeActions checks the copy, download and print controls of
// the recovery codes page, and that Copy really copies.
func (b *browser) checkRecoveryCodeActions(codes []string) {
	t := b.t
	t.Helper()
	dl := run(b, "download link", chromedp.Evaluate[map[string]string](`(() => {
		const a = document.querySelector("a[download]");
		return a ? {href: a.getAttribute("href"), download: a.getAttribute("download"), text: a.textContent.trim()} : {};
	})()`))
	if dl["download"] != "gatehouse-recovery-codes.txt" {
		t.Errorf("download link download=%q, want gatehouse-recovery-codes.txt", dl["download"])
	}
	const prefix = "data:text/plain;charset=utf-8,"
	if !strings.HasPrefix(dl["href"], prefix) {
		t.Errorf("download link href = %.60q…, want a %s URL", dl["href"], prefix)
	} else {
		text, err := url.PathUnescape(strings.TrimPrefix(dl["href"], prefix))
		if err != nil {
			t.Errorf("download link: %v", err)
		}
		for _, c := range codes {
			if !strings.Contains(text, c+"\n") {
				t.Errorf("the downloaded file lacks code %s:\n%s", c, text)
			}
		}
	}
	if n := run(b, "print button", chromedp.Evaluate[int](`document.querySelectorAll("button[data-print]").length`)); n != 1 {
		t.Errorf("%d print buttons, want 1", n)
	}
	if n := run(b, "copy button", chromedp.Evaluate[int](`document.querySelectorAll("button[data-copy]").length`)); n != 1 {
		t.Fatalf("%d copy buttons, want 1", n)
	}
	// Copy: grant the clipboard to the page, click, read it back.
	loc, err := url.Parse(run(b, "location", chromedp.Location()))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name},
			Setting:    cdpbrowser.PermissionSettingGranted,
			Origin:     loc.Scheme + "://" + loc.Host,
			// A tab of its own (b.tab) is its own browser context.
			BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
		}); err != nil {
			t.Logf("grant %s: %v (Copy not exercised)", name, err)
			return
		}
	}
	b.do("click Copy", chromedp.Click(chromedp.CSS(`button[data-copy]`)))
	// app.js says "Copied" once the clipboard write has resolved.
	run(b, "Copy confirms", chromedp.Evaluate[bool](`new Promise(done => {
		const check = () => document.querySelector("button[data-copy]").textContent.includes("Copied") ? done(true) : setTimeout(check, 20);
		check();
	})`, chromedp.EvalAwaitPromise))
	copied := run(b, "read clipboard", chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	for _, c := range codes {
		if !strings.Contains(copied, c) {
			t.Errorf("the clipboard lacks code %s after Copy:\n%s", c, copied)
		}
	}
}

// challengePage waits for the second-factor page after the password.
func (b *browser) challengePage() {
	b.t.Helper()
	b.do("challenge page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=verify]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login/mfa") {
		b.t.Errorf("after the password the page is %s, want /t/acme/login/mfa", got)
	}
}

// (e) A member turns on two-step verification through the portal pages,
// signs out, and signs in again through the challenge page: once with a
// code from the app, once with a recovery code.
func TestBrowserTOTPEnrollAndSignIn(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)

	b := newBrowser(t, 1024, 768)
	b.signIn(base, "acme", "alice@acme.test", password)
	secret, codes := b.enrollTOTP(env, "e")

	b.submit(`[data-testid=sign-out]`)
	b.do("signed out", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)))

	// Password, then the challenge page.
	b.signIn(base, "acme", "alice@acme.test", password)
	b.challengePage()
	if got := run(b, "focus", chromedp.Evaluate[string](`document.activeElement.id`)); got != "code" {
		t.Errorf("the challenge page focuses #%s, want #code", got)
	}
	b.checkPage("challenge page")
	b.screenshot("e-challenge")
	// The portal stays closed while the challenge is open.
	b.navigate(base + "/t/acme/account")
	if got := b.path(); strings.HasPrefix(got, "/t/acme/account") {
		t.Fatalf("the portal opened before the second factor: %s", got)
	}
	b.navigate(base + "/t/acme/login/mfa")
	b.challengePage()

	// The code that turned enrollment on is spent; the next one works.
	env.Clock.Advance(30 * time.Second)
	b.do("type code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	b.submit(`[data-testid=verify]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/t/acme/account" {
		t.Errorf("after the challenge the page is %s, want /t/acme/account", got)
	}
	if got := b.text(`[data-testid=account-email]`); got != "alice@acme.test" {
		t.Errorf("portal email = %q", got)
	}

	// Sign out; sign in with a recovery code, typed in capitals without
	// dashes, as people do.
	b.submit(`[data-testid=sign-out]`)
	b.do("signed out", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)))
	b.signIn(base, "acme", "alice@acme.test", password)
	b.challengePage()
	b.submit(`[data-testid=use-recovery]`)
	b.do("recovery code field", chromedp.WaitVisible(chromedp.ID("recovery_code")))
	b.checkPage("challenge page, recovery code")
	b.screenshot("e-challenge-recovery")
	b.do("type recovery code", chromedp.SendKeys(chromedp.ID("recovery_code"), strings.ToUpper(strings.ReplaceAll(codes[0], "-", ""))))
	b.submit(`[data-testid=verify]`)
	b.do("notice", chromedp.WaitVisible(chromedp.CSS(`main [role=status]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/account/mfa") {
		t.Errorf("after a recovery code the page is %s, want /t/acme/account/mfa", got)
	}
	if got := b.text(`main [role=status]`); !strings.Contains(got, "9 left") {
		t.Errorf("notice after a recovery code = %q, want the 9 codes left in it", got)
	}
	if got := b.text(`[data-testid=recovery-remaining]`); got != "9" {
		t.Errorf("recovery codes left = %q, want 9", got)
	}
	b.checkPage("MFA page after a recovery code")
	b.screenshot("e-mfa-recovery-used")

	// The used code is spent.
	b.submit(`[data-testid=sign-out]`)
	b.do("signed out", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)))
	b.signIn(base, "acme", "alice@acme.test", password)
	b.challengePage()
	b.submit(`[data-testid=use-recovery]`)
	b.do("type used recovery code", chromedp.SendKeys(chromedp.ID("recovery_code"), codes[0]))
	b.submit(`[data-testid=verify]`)
	b.do("error", chromedp.WaitVisible(chromedp.CSS(`.alert.error[role=alert]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login/mfa") {
		t.Errorf("a spent recovery code led to %s", got)
	}
	if got := b.text(`.alert.error`); !strings.Contains(got, "recovery code") {
		t.Errorf("error for a spent recovery code = %q, want it to speak of the recovery code", got)
	}
	if got := run(b, "still recovery", chromedp.Evaluate[bool](`!!document.getElementById("recovery_code")`)); !got {
		t.Errorf("after a wrong recovery code the page no longer asks for a recovery code")
	}
	b.checkPage("challenge page with an error")
	b.screenshot("e-challenge-error")
	b.checkConsole()
}

// Phone width: the enrollment pages and the challenge fit a 390px screen.
func TestBrowserTOTPPhone(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "alice@acme.test", "member", password)

	b := newBrowser(t, 390, 844)
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.signIn(base, "acme", "alice@acme.test", password)
	secret, _ := b.enrollTOTP(env, "phone")
	b.submit(`[data-testid=sign-out]`)
	b.do("signed out", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)))
	b.signIn(base, "acme", "alice@acme.test", password)
	b.challengePage()
	b.noHorizontalScroll("challenge page")
	b.checkPage("challenge page")
	b.screenshot("phone-challenge")
	env.Clock.Advance(30 * time.Second)
	b.do("type code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	b.submit(`[data-testid=verify]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	b.checkConsole()
}
