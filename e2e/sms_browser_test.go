package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The member's phone: 07400 123456 dialled in the UK, a mobile number the
// phone-number library accepts (07700 900xxx, Ofcom's drama range, it
// does not).
const (
	smsNational = "07400 123456"
	smsE164     = "+447400123456"
	smsMasked   = "+44 •••• ••• 456"
)

// smsLeaks are the forms of the whole number that must never be in a page.
var smsLeaks = []string{"7400123456", "7400 123456", "07400", "+447400"}

var smsCodeRE = regexp.MustCompile(`\b([0-9]{6})\b`)

// smsText reads the dev mailbox in its own tab (the text messages
// section, dev mode) and returns how many texts went to number and the
// code in the newest of them.
func (b *browser) smsText(base, number string) (int, string) {
	b.t.Helper()
	b.navigate(base + "/dev/mailbox")
	b.do("texts", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sms-outbox]`)))
	bodies := run(b, "texts to "+number, chromedp.Evaluate[[]string](`[...document.querySelectorAll("[data-testid=sms-message]")]
		.filter(r => r.querySelector("[data-testid=sms-to]").textContent.trim() === `+"`"+number+"`"+`)
		.map(r => r.querySelector("[data-testid=sms-body]").textContent)`))
	if len(bodies) == 0 {
		b.t.Fatalf("no text to %s in the dev mailbox: %q", number, b.text(`[data-testid=sms-outbox]`))
	}
	m := smsCodeRE.FindStringSubmatch(bodies[0])
	if m == nil {
		b.t.Fatalf("the newest text to %s has no 6-digit code: %q", number, bodies[0])
	}
	return len(bodies), m[1]
}

// noWholeNumber fails if the page's HTML holds the whole phone number.
func (b *browser) noWholeNumber(page string) {
	b.t.Helper()
	html := run(b, "page HTML", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if !strings.Contains(html, "<main") {
		b.t.Fatalf("%s: no page HTML to check (%d bytes)", page, len(html))
	}
	for _, leak := range smsLeaks {
		if strings.Contains(html, leak) {
			b.t.Errorf("%s (%s): the HTML holds the whole number (%q)", page, b.path(), leak)
		}
	}
}

// codeFieldOK checks the attributes a texted code's field needs.
func (b *browser) codeFieldOK(id string) {
	b.t.Helper()
	attrs := run(b, "attributes of #"+id, chromedp.Evaluate[map[string]string](`(() => {
		const i = document.getElementById("`+id+`");
		return i ? {autocomplete: i.getAttribute("autocomplete"), inputmode: i.getAttribute("inputmode"), name: i.name, labels: String(i.labels.length)} : {};
	})()`))
	for attr, want := range map[string]string{"autocomplete": "one-time-code", "inputmode": "numeric", "name": id, "labels": "1"} {
		if attrs[attr] != want {
			b.t.Errorf("#%s %s = %q, want %q", id, attr, attrs[attr], want)
		}
	}
}

func otherCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// SMS end to end in Chromium: the owner allows texts for the UK on the
// security settings page (with the step-up it asks for), a member adds a
// phone with a code read from the dev mailbox, and signs in again with a
// texted code, after a wrong one and a resend past the cooldown.
func TestBrowserSMS(t *testing.T) {
	env, base := startApp(t)
	ws := env.Workspace("acme", "Acme Corp")
	env.User(ws, "owner@acme.test", "owner", password)
	env.User(ws, "alice@acme.test", "member", password)
	secret := enrollByAPI(t, env, "acme", "owner@acme.test")

	// 1. The owner turns SMS on for GB.
	admin := newBrowser(t, 1280, 900)
	admin.signIn(base, "acme", "owner@acme.test", password)
	admin.challengePage()
	admin.do("code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	admin.submit(`[data-testid=verify]`)
	admin.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))

	const settings = "/t/acme/admin/settings/security"
	admin.navigate(base + settings)
	admin.do("settings page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=policy-form]`)))
	if got := admin.text(`[data-testid=sms-status]`); !strings.HasPrefix(got, "SMS is off") {
		t.Errorf("SMS status before = %q, want off", got)
	}
	if on := run(admin, "sms ticked?", chromedp.Evaluate[bool](`document.querySelector("[data-testid=method-sms]").checked`)); on {
		t.Error("SMS is ticked by default")
	}
	fill := func() {
		admin.do("tick SMS and type GB",
			chromedp.Click(chromedp.CSS(`[data-testid=method-sms]`)),
			chromedp.Clear(chromedp.ID("sms_countries")),
			chromedp.SendKeys(chromedp.ID("sms_countries"), "GB"),
		)
	}
	// A quarter of an hour after the sign-in the save asks for a fresh
	// code first, and saves nothing.
	env.Clock.Advance(15 * time.Minute)
	fill()
	admin.submit(`[data-testid=save]`)
	admin.do("step-up page", chromedp.WaitVisible(chromedp.ID("code")))
	if got := admin.path(); !strings.HasPrefix(got, "/t/acme/account/verify") {
		t.Fatalf("saving with a stale second factor went to %s, want the verify page", got)
	}
	admin.checkPage("step-up page")
	admin.do("fresh code", chromedp.SendKeys(chromedp.ID("code"), totpCode(t, env, secret)))
	admin.submit(`[data-testid=verify]`)
	admin.do("settings page again", chromedp.WaitVisible(chromedp.CSS(`[data-testid=policy-form]`)))
	if got := admin.path(); got != settings {
		t.Errorf("after the step-up the page is %s, want %s", got, settings)
	}
	if got := admin.text(`[data-testid=sms-status]`); !strings.HasPrefix(got, "SMS is off") {
		t.Fatalf("the refused save changed SMS: %q", got)
	}
	fill()
	admin.submit(`[data-testid=save]`)
	admin.do("notice", chromedp.WaitVisible(chromedp.CSS(`main [role=status]`)))
	if got := admin.text(`main [role=status]`); !strings.Contains(got, "saved") {
		t.Errorf("notice after saving = %q", got)
	}
	if got := admin.text(`[data-testid=sms-status]`); got != "SMS is on for numbers in: United Kingdom (+44)." {
		t.Errorf("SMS status after saving = %q", got)
	}
	if on := run(admin, "sms ticked?", chromedp.Evaluate[bool](`document.querySelector("[data-testid=method-sms]").checked`)); !on {
		t.Error("after saving SMS is not ticked")
	}
	if got := run(admin, "countries", chromedp.Value(chromedp.ID("sms_countries"))); got != "GB" {
		t.Errorf("countries after saving = %q, want GB", got)
	}
	admin.checkPage("security settings with SMS")
	admin.screenshot("sms-admin-settings")
	admin.checkConsole()

	// 2. Alice adds her phone.
	b := newBrowser(t, 1024, 768)
	mailbox := b.tab() // the dev mailbox, in a profile of its own
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=manage-mfa]`)))
	b.submit(`[data-testid=manage-mfa]`)
	b.do("MFA page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=setup-sms]`)))
	b.submit(`[data-testid=setup-sms]`)
	b.do("number page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sms-setup]`)))
	if got := b.path(); got != "/t/acme/account/mfa/sms/setup" {
		t.Errorf("Add a phone opened %s", got)
	}
	if got := run(b, "countries offered", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#country option")].map(o => o.value)`)); len(got) != 1 || got[0] != "GB" {
		t.Errorf("countries offered = %q, want GB only", got)
	}
	b.checkPage("phone number page")
	b.do("GB and the number",
		chromedp.SetValue(chromedp.ID("country"), "GB"),
		chromedp.SendKeys(chromedp.ID("phone"), smsNational),
	)
	b.submit(`[data-testid=send-setup-code]`)
	b.do("code page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=confirm-sms]`)))
	if got := b.path(); got != "/t/acme/account/mfa/sms" {
		t.Errorf("after the number the page is %s, want /t/acme/account/mfa/sms", got)
	}
	if got := b.text(`[data-testid=sms-sent]`); !strings.Contains(got, smsMasked) {
		t.Errorf("code page says %q, want the masked number %s", got, smsMasked)
	}
	b.codeFieldOK("code")
	b.noWholeNumber("setup code page")
	b.checkPage("setup code page")
	texts, code := mailbox.smsText(base, smsE164)
	if texts != 1 {
		t.Errorf("%d texts to %s after the setup, want 1", texts, smsE164)
	}

	// A wrong code first: the error, nothing turned on.
	b.do("wrong code", chromedp.SendKeys(chromedp.ID("code"), otherCode(code)))
	b.submit(`[data-testid=confirm-sms]`)
	b.do("error", chromedp.WaitVisible(chromedp.CSS(`.alert.error[role=alert]`)))
	if got := b.text(`.alert.error`); !strings.Contains(got, "That code didn't work") {
		t.Errorf("error for a wrong setup code = %q", got)
	}
	b.do("right code", chromedp.SendKeys(chromedp.ID("code"), code))
	b.submit(`[data-testid=confirm-sms]`)
	b.do("recovery codes page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes]`)))
	if n := run(b, "codes", chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=recovery-codes] li").length`)); n != 10 {
		t.Errorf("the recovery codes page lists %d codes, want 10", n)
	}
	b.checkPage("recovery codes after the phone")
	b.do("tick I saved", chromedp.Click(chromedp.ID("saved")))
	b.submit(`[data-testid=codes-saved]`)
	b.do("MFA page with the phone", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sms-phone]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/account/mfa") {
		t.Errorf("after the codes the page is %s", got)
	}
	if got := b.text(`[data-testid=sms-phone]`); got != smsMasked {
		t.Errorf("MFA page phone = %q, want %q", got, smsMasked)
	}
	if got := b.text(`[data-testid=sms-on]`); got != "On" {
		t.Errorf("SMS badge = %q", got)
	}
	b.noWholeNumber("MFA page")
	b.checkPage("MFA page with a phone")
	b.screenshot("sms-phone-added")

	// 3. Signing in again with a texted code.
	b.submit(`[data-testid=sign-out]`)
	b.do("signed out", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)))
	b.signIn(base, "acme", "alice@acme.test", password)
	b.do("challenge page", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sms-send]`)))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login/mfa") {
		t.Errorf("after the password the page is %s, want /t/acme/login/mfa", got)
	}
	if got := b.text(`main`); !strings.Contains(got, "We'll text a code to "+smsMasked) {
		t.Errorf("the challenge page does not name the masked phone:\n%s", got)
	}
	b.noWholeNumber("challenge page")
	b.checkPage("challenge page")
	b.submit(`[data-testid=sms-send]`)
	b.do("code field", chromedp.WaitVisible(chromedp.ID("sms_code")))
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login/mfa?method=sms") {
		t.Errorf("Text me a code led to %s", got)
	}
	b.codeFieldOK("sms_code")
	if got := b.text(`#sms_code-hint`); !strings.Contains(got, "If "+smsMasked+" can receive texts, a code is on its way") {
		t.Errorf("code hint = %q", got)
	}
	if got := b.text(`[data-testid=sms-resend-wait]`); !strings.Contains(got, "in 30 seconds") {
		t.Errorf("resend wait = %q, want 30 seconds", got)
	}
	n, first := mailbox.smsText(base, smsE164)
	if n != texts+1 {
		t.Fatalf("%d texts to %s after Text me a code, want %d", n, smsE164, texts+1)
	}
	texts = n
	b.noWholeNumber("challenge code page")
	b.checkPage("challenge code page")

	// Past the cooldown on the server's clock: the page offers a new code.
	env.Clock.Advance(31 * time.Second)
	b.navigate(base + "/t/acme/login/mfa?method=sms")
	b.do("resend button", chromedp.WaitVisible(chromedp.CSS(`[data-testid=sms-resend]`)))
	b.submit(`[data-testid=sms-resend]`)
	b.do("code field", chromedp.WaitVisible(chromedp.ID("sms_code")))
	n, code = mailbox.smsText(base, smsE164)
	if n != texts+1 {
		t.Fatalf("%d texts to %s after Send a new code, want %d", n, smsE164, texts+1)
	}
	if code == first {
		t.Logf("the new code happens to equal the first (%s)", code)
	}

	// A wrong code: the message, still asking for the texted code.
	b.do("wrong code", chromedp.SendKeys(chromedp.ID("sms_code"), otherCode(code)))
	b.submit(`[data-testid=verify]`)
	b.do("error", chromedp.WaitVisible(chromedp.CSS(`.alert.error[role=alert]`)))
	if got := b.text(`.alert.error`); !strings.Contains(got, "That code didn't work. Check the text message") {
		t.Errorf("error for a wrong sign-in code = %q", got)
	}
	if got := b.path(); !strings.HasPrefix(got, "/t/acme/login/mfa") {
		t.Errorf("a wrong code led to %s", got)
	}
	if !run(b, "still the SMS field", chromedp.Evaluate[bool](`!!document.getElementById("sms_code")`)) {
		t.Fatalf("after a wrong code the page no longer asks for the texted code:\n%s", b.text(`main`))
	}
	if got := run(b, "code value", chromedp.Value(chromedp.ID("sms_code"))); got != "" {
		t.Errorf("after a wrong code the field holds %q, want it empty", got)
	}
	b.checkPage("challenge page with a wrong code")
	b.do("right code", chromedp.SendKeys(chromedp.ID("sms_code"), code))
	b.screenshot("sms-challenge")
	b.submit(`[data-testid=verify]`)
	b.do("portal", chromedp.WaitVisible(chromedp.CSS(`[data-testid=account-email]`)))
	if got := b.path(); got != "/t/acme/account" {
		t.Errorf("after the texted code the page is %s, want /t/acme/account", got)
	}
	if got := b.text(`[data-testid=account-email]`); got != "alice@acme.test" {
		t.Errorf("portal email = %q", got)
	}
	if got := b.text(`.facts .badge`); got != "aal2" {
		t.Errorf("the sign-in with a texted code is %q, want aal2", got)
	}
	b.noWholeNumber("portal")
	b.screenshot("sms-signed-in")
	b.checkConsole()
	mailbox.checkConsole()
}
