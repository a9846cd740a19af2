package app_test

// The SMS pages: the admin's SMS settings (security settings page), the
// member's phone in the portal, the challenge's "Text me a code", and the
// texts in the dev mailbox.

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

// smsSettingsForm is the security settings form with SMS allowed for GB.
func smsSettingsForm() url.Values {
	return url.Values{"policy": {"optional"}, "methods": {"totp", "webauthn", "sms"}, "grace_days": {"30"},
		"reminder_days": {"7, 3, 1"}, "trusted_device_days": {"0"}, "passkeys_satisfy_mfa": {"on"},
		"sms_form": {"1"}, "sms_countries": {"gb, IE"}, "sms_daily_cap": {"200"}, "sms_monthly_texts": {"1000"}, "sms_monthly_budget": {"$25.50"}}
}

func TestSMSSettingsPage(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	ctx := context.Background()

	res := a.c.Get(settingsPath)
	doc := res.Doc()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET settings = %d", res.StatusCode)
	}
	warning := doc.Find("[data-testid=sms-warning]").Text()
	for _, want := range []string{"weaker than an authenticator app or a passkey", "NIST SP 800-63B", "restricted authenticator", "SIM swap", "never be the only method"} {
		if !strings.Contains(warning, want) {
			t.Errorf("SMS warning %q lacks %q", warning, want)
		}
	}
	if _, on := doc.Find("input[name=methods][value=sms]").Attr("checked"); on {
		t.Error("SMS is allowed by default")
	}
	if v, _ := doc.Find("input#sms_countries").Attr("value"); v != "" {
		t.Errorf("default countries = %q", v)
	}
	if doc.Find("label[for=sms_countries]").Length() != 1 || doc.Find("label[for=sms_daily_cap]").Length() != 1 || doc.Find("label[for=sms_monthly_budget]").Length() != 1 {
		t.Error("an SMS field has no label")
	}
	if got := doc.Find("[data-testid=sms-usage-texts]").Text(); got != "0 of 5000" {
		t.Errorf("usage texts = %q", got)
	}
	if got := doc.Find("[data-testid=sms-usage-spend]").Text(); got != "$0.00 of $50.00" {
		t.Errorf("usage spend = %q", got)
	}
	if !strings.Contains(doc.Find("[data-testid=sms-country-codes]").Text(), "United Kingdom (+44)") {
		t.Error("the country codes table lacks the United Kingdom")
	}

	// SMS alone, an unknown country, a budget that is no amount: 400,
	// nothing saved.
	for name, change := range map[string]func(url.Values){
		"SMSOnly":       func(f url.Values) { f["methods"] = []string{"sms"} },
		"BadCountry":    func(f url.Values) { f.Set("sms_countries", "GB, ZZ") },
		"BadBudget":     func(f url.Values) { f.Set("sms_monthly_budget", "50 dollars") },
		"CapTooLarge":   func(f url.Values) { f.Set("sms_daily_cap", "100001") },
		"BudgetTooMuch": func(f url.Values) { f.Set("sms_monthly_budget", "100000.01") },
	} {
		f := smsSettingsForm()
		change(f)
		res := a.c.PostForm(settingsPath, f)
		field := map[string]string{"SMSOnly": "methods", "BadCountry": "sms_countries", "BadBudget": "sms_monthly_budget",
			"CapTooLarge": "sms_daily_cap", "BudgetTooMuch": "sms_monthly_budget"}[name]
		if res.StatusCode != http.StatusBadRequest || res.Doc().Find("#"+field+"-error").Length() != 1 {
			t.Errorf("%s: save = %d, error for %s: %q", name, res.StatusCode, field, res.Doc().Find(".field-error").Text())
		}
		if name == "BadCountry" {
			if v, _ := res.Doc().Find("input#sms_countries").Attr("value"); v != "GB, ZZ" {
				t.Errorf("BadCountry: the typed countries are not kept: %q", v)
			}
		}
	}
	if p := policyOf(t, env, a.acme); p.Allows(db.MethodSMS) {
		t.Fatalf("a refused form allowed SMS: %+v", p)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, a.acme.ID, db.EventSMSSettingsChanged); n != 0 {
		t.Fatalf("refused forms audited %d SMS changes", n)
	}

	// A stale session: the step-up first, nothing saved.
	env.Clock.Advance(11 * time.Minute)
	res = a.c.PostForm(settingsPath, smsSettingsForm())
	if res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "/t/acme/account/verify") {
		t.Fatalf("stale save = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if st, _ := env.Store.SMSSettings(ctx, a.acme.ID); len(st.Countries) != 0 {
		t.Fatalf("a stale session saved %+v", st)
	}
	if res := a.c.PostForm("/t/acme/account/verify", url.Values{"code": {nextCode(t, env, a.secret)}, "next": {settingsPath}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("step-up = %d", res.StatusCode)
	}

	// Saved: the method by SetPolicy, the rest by SetSMSSettings, each
	// audited.
	res = a.c.PostForm(settingsPath, smsSettingsForm())
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save = %d %s", res.StatusCode, res.Body)
	}
	if p := policyOf(t, env, a.acme); !p.Allows(db.MethodSMS) {
		t.Errorf("SMS not allowed after save: %+v", p)
	}
	st, err := env.Store.SMSSettings(ctx, a.acme.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.Countries, ",") != "GB,IE" || st.DailyCap != 200 || st.MonthlyBudgetTexts != 1000 || st.MonthlyBudgetMicros != 25_500_000 || st.AdminsForbidden {
		t.Errorf("saved SMS settings %+v", st)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, a.acme.ID, db.EventSMSSettingsChanged); n != 1 {
		t.Errorf("SMS settings audited %d times", n)
	}
	doc = a.c.Get(settingsPath).Doc()
	if got := doc.Find("[data-testid=sms-status]").Text(); !strings.Contains(got, "Ireland (+353), United Kingdom (+44)") {
		t.Errorf("status = %q", got)
	}
	if v, _ := doc.Find("input#sms_monthly_budget").Attr("value"); v != "25.50" {
		t.Errorf("budget shown as %q", v)
	}
	if got := doc.Find("[data-testid=sms-usage-spend]").Text(); got != "$0.00 of $25.50" {
		t.Errorf("usage spend = %q", got)
	}

	// Saving the same SMS values again audits no SMS change.
	if res := a.c.PostForm(settingsPath, smsSettingsForm()); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second save = %d", res.StatusCode)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM audit_events WHERE workspace_id = ? AND event = ?`, a.acme.ID, db.EventSMSSettingsChanged); n != 1 {
		t.Errorf("an unchanged save audited: %d", n)
	}

	// Owners and admins kept from SMS.
	f := smsSettingsForm()
	f.Set("sms_admins_forbidden", "on")
	if res := a.c.PostForm(settingsPath, f); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("admins forbidden save = %d", res.StatusCode)
	}
	if p := policyOf(t, env, a.acme); !p.SMSAdminsForbidden || p.SMSAllowedFor(db.RoleAdmin) || !p.SMSAllowedFor(db.RoleMember) {
		t.Errorf("admins rule not saved: %+v", p)
	}
}

// enableSMS allows SMS in ws for numbers in GB, as an admin would.
func enableSMS(t *testing.T, env *apptest.Env, ws db.Workspace) {
	t.Helper()
	ctx := context.Background()
	p := policyOf(t, env, ws)
	p.Methods = append(p.Methods, db.MethodSMS)
	if _, _, err := env.Store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.SetSMSSettings(ctx, ws.ID, 0, db.SMSSettings{Countries: []string{"GB"}, DailyCap: db.DefaultSMSDailyCap,
		MonthlyBudgetTexts: db.DefaultSMSMonthlyTexts, MonthlyBudgetMicros: db.DefaultSMSMonthlyMicros}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
}

var smsPageCodeRE = regexp.MustCompile(`\b([0-9]{6})\b`)

// mailboxText returns the newest text of the dev mailbox to number, and
// the code in it.
func mailboxText(t *testing.T, env *apptest.Env, number string) (body, code string) {
	t.Helper()
	doc := env.Client().Get("/dev/mailbox").Doc()
	doc.Find("[data-testid=sms-message]").EachWithBreak(func(_ int, row *goquery.Selection) bool {
		if strings.TrimSpace(row.Find("[data-testid=sms-to]").Text()) == number {
			body = row.Find("[data-testid=sms-body]").Text()
			return false
		}
		return true
	})
	m := smsPageCodeRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no text with a code to %s in the dev mailbox: %q", number, doc.Find("[data-testid=sms-outbox]").Text())
	}
	return body, m[1]
}

func otherCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func mailsTo(t *testing.T, env *apptest.Env, to, kind string) int64 {
	return queryInt(t, env, `SELECT COUNT(*) FROM outbox WHERE to_addr = ? AND kind = ?`, to, kind)
}

// codeField checks the attributes a one-time code field needs.
func codeField(t *testing.T, doc *goquery.Document, id string) {
	t.Helper()
	in := doc.Find("input#" + id)
	if in.Length() != 1 {
		t.Fatalf("no input #%s", id)
	}
	for attr, want := range map[string]string{"autocomplete": "one-time-code", "inputmode": "numeric", "name": id} {
		if got, _ := in.Attr(attr); got != want {
			t.Errorf("#%s %s = %q, want %q", id, attr, got, want)
		}
	}
	if doc.Find("label[for="+id+"]").Length() != 1 {
		t.Errorf("#%s has no label", id)
	}
	if in.Closest("form").Find("input[name=_csrf]").Length() != 1 {
		t.Errorf("the form of #%s has no CSRF field", id)
	}
}

// addPhone adds and verifies number (national, GB) for the signed-in
// client and returns the page after the code.
func addPhone(t *testing.T, env *apptest.Env, c *apptest.Client, national, e164 string) *apptest.Response {
	t.Helper()
	res := c.PostForm("/t/acme/account/mfa/sms/setup", url.Values{"country": {"GB"}, "phone": {national}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/mfa/sms" {
		t.Fatalf("setup %s = %d %q %s", national, res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	_, code := mailboxText(t, env, e164)
	return c.PostForm("/t/acme/account/mfa/sms", url.Values{"code": {code}})
}

func TestSMSPortalAndChallenge(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	enableSMS(t, env, acme)
	ctx := context.Background()
	c := env.Client()
	c.Login("acme", alice.Email, pw)

	// The MFA page offers a phone.
	doc := c.Get("/t/acme/account/mfa").Doc()
	if doc.Find("[data-testid=setup-sms]").Length() != 1 {
		t.Fatal("no Add a phone on the MFA page")
	}

	// The number page: the allowed countries, labelled fields.
	res := c.Get("/t/acme/account/mfa/sms/setup")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("setup page = %d", res.StatusCode)
	}
	doc = res.Doc()
	if got := doc.Find("select#country option").Length(); got != 1 {
		t.Errorf("%d countries offered, want GB only", got)
	}
	if v, _ := doc.Find("select#country option[selected]").Attr("value"); v != "GB" {
		t.Errorf("default country = %q", v)
	}
	if doc.Find("label[for=country]").Length() != 1 || doc.Find("label[for=phone]").Length() != 1 {
		t.Error("the setup fields lack labels")
	}
	if ac, _ := doc.Find("input#phone").Attr("autocomplete"); ac != "tel-national" {
		t.Errorf("phone autocomplete = %q", ac)
	}
	if doc.Find("form[data-testid=sms-setup] input[name=_csrf]").Length() != 1 {
		t.Error("the setup form has no CSRF field")
	}

	// Not a number, a number of a country not allowed: 422, nothing sent.
	for _, bad := range []string{"12", "+33 6 12 34 56 78", "0800 123 4567"} {
		res := c.PostForm("/t/acme/account/mfa/sms/setup", url.Values{"country": {"GB"}, "phone": {bad}})
		if res.StatusCode != http.StatusUnprocessableEntity || res.Doc().Find("#phone-error").Length() != 1 {
			t.Errorf("setup %q = %d", bad, res.StatusCode)
		}
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM sms_outbox`); n != 0 {
		t.Fatalf("refused numbers queued %d texts", n)
	}

	// A local number: pending, texted; the code page shows it masked.
	res = c.PostForm("/t/acme/account/mfa/sms/setup", url.Values{"country": {"GB"}, "phone": {"07400 123456"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/mfa/sms" {
		t.Fatalf("setup = %d %q %s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	doc = c.Get("/t/acme/account/mfa/sms").Doc()
	if got := doc.Find("[data-testid=sms-sent]").Text(); !strings.Contains(got, "+44 •••• ••• 456") || strings.Contains(got, "7400123456") {
		t.Errorf("code page = %q", got)
	}
	codeField(t, doc, "code")
	body, code := mailboxText(t, env, "+447400123456")
	if !strings.Contains(body, "Acme") {
		t.Errorf("text %q does not name the workspace", body)
	}

	// A wrong code, then the right one: recovery codes (a first factor).
	res = c.PostForm("/t/acme/account/mfa/sms", url.Values{"code": {otherCode(code)}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.Doc().Find(".alert.error").Text(), "That code didn't work") {
		t.Errorf("wrong code = %d %q", res.StatusCode, res.Doc().Find(".alert.error").Text())
	}
	res = c.PostForm("/t/acme/account/mfa/sms", url.Values{"code": {code}})
	if res.StatusCode != http.StatusOK || res.Doc().Find("[data-testid=recovery-codes] li").Length() != 10 {
		t.Fatalf("right code = %d, %d recovery codes", res.StatusCode, res.Doc().Find("[data-testid=recovery-codes] li").Length())
	}
	if mailsTo(t, env, alice.Email, "sms_added") != 1 {
		t.Error("no email about the added phone")
	}
	doc = c.Get("/t/acme/account/mfa").Doc()
	if got := doc.Find("[data-testid=sms-phone]").Text(); got != "+44 •••• ••• 456" {
		t.Errorf("MFA page phone = %q", got)
	}
	if strings.Contains(doc.Text(), "7400123456") || strings.Contains(doc.Text(), "07400") {
		t.Error("the MFA page shows the whole number")
	}

	// Signing in: Text me a code, then the code.
	c2 := pendingPage(t, env, "acme", alice.Email, pw)
	doc = c2.Get("/t/acme/login/mfa").Doc()
	send := doc.Find("[data-testid=sms-send]")
	if send.Length() != 1 || send.Closest("form").Find("input[name=_csrf]").Length() != 1 {
		t.Fatalf("challenge page: no Text me a code form with CSRF: %s", doc.Text())
	}
	if method, _ := send.Closest("form").Attr("method"); method != "post" {
		t.Errorf("Text me a code is a %q form", method)
	}
	res = c2.PostForm("/t/acme/login/mfa/sms", url.Values{"next": {""}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login/mfa?method=sms") {
		t.Fatalf("send = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	doc = c2.Get(res.Header.Get("Location")).Doc()
	codeField(t, doc, "sms_code")
	if hint := doc.Find("#sms_code-hint").Text(); !strings.Contains(hint, "If +44 •••• ••• 456 can receive texts, a code is on its way") {
		t.Errorf("code hint = %q", hint)
	}
	if wait := doc.Find("[data-testid=sms-resend-wait]").Text(); !strings.Contains(wait, "in 30 seconds") {
		t.Errorf("resend wait = %q", wait)
	}
	_, code = mailboxText(t, env, "+447400123456")

	// A resend before 30 s answers the same, and sends nothing.
	before := queryInt(t, env, `SELECT COUNT(*) FROM sms_outbox`)
	res = c2.PostForm("/t/acme/login/mfa/sms", url.Values{"next": {""}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login/mfa?method=sms") {
		t.Errorf("early resend = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if after := queryInt(t, env, `SELECT COUNT(*) FROM sms_outbox`); after != before {
		t.Errorf("an early resend queued a text")
	}
	env.Clock.Advance(31 * time.Second)
	if c2.Get("/t/acme/login/mfa?method=sms").Doc().Find("[data-testid=sms-resend]").Length() != 1 {
		t.Error("no resend after 30 s")
	}

	res = c2.PostForm("/t/acme/login/mfa", url.Values{"method": {"sms"}, "sms_code": {otherCode(code)}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.Doc().Find(".alert.error").Text(), "That code didn't work. Check the text message") {
		t.Errorf("wrong sign-in code = %d %q", res.StatusCode, res.Doc().Find(".alert.error").Text())
	}
	res = c2.PostForm("/t/acme/login/mfa", url.Values{"method": {"sms"}, "sms_code": {code}})
	if !passed(res, "acme") {
		t.Fatalf("right sign-in code = %d %q %s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}

	// Replacing: the step-up is fresh; the old phone stays until the new
	// one is verified; no new recovery codes.
	doc = c2.Get("/t/acme/account/mfa/sms/setup").Doc()
	if !strings.Contains(doc.Text(), "This replaces +44 •••• ••• 456") {
		t.Errorf("replace page: %q", doc.Find("h1").Parent().Text())
	}
	res = c2.PostForm("/t/acme/account/mfa/sms/setup", url.Values{"country": {"GB"}, "phone": {"+44 7400 654321"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("replace = %d %s", res.StatusCode, res.Body)
	}
	if p, err := env.Store.SMSPhone(ctx, acme.ID, alice.ID); err != nil || p.E164 != "+447400123456" {
		t.Errorf("the old phone during replacement: %+v %v", p, err)
	}
	_, code = mailboxText(t, env, "+447400654321")
	res = c2.PostForm("/t/acme/account/mfa/sms", url.Values{"code": {code}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/mfa?notice=sms_enabled" {
		t.Fatalf("replace confirm = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if got := c2.Get("/t/acme/account/mfa").Doc().Find("[data-testid=sms-phone]").Text(); got != "+44 •••• ••• 321" {
		t.Errorf("after replacing: %q", got)
	}

	// Removing needs a fresh step-up: by text message here.
	env.Clock.Advance(11 * time.Minute)
	res = c2.PostForm("/t/acme/account/mfa/sms/remove", url.Values{})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/account/verify") {
		t.Fatalf("stale remove = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	doc = c2.Get(res.Header.Get("Location")).Doc()
	if doc.Find("[data-testid=sms-send]").Length() != 1 {
		t.Fatalf("the step-up page offers no text: %s", doc.Find("main").Text())
	}
	res = c2.PostForm("/t/acme/account/verify/sms", url.Values{"next": {"/t/acme/account/mfa"}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/account/verify?method=sms") {
		t.Fatalf("step-up send = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	codeField(t, c2.Get(res.Header.Get("Location")).Doc(), "sms_code")
	_, code = mailboxText(t, env, "+447400654321")
	res = c2.PostForm("/t/acme/account/verify", url.Values{"sms_code": {code}, "next": {"/t/acme/account/mfa"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/mfa" {
		t.Fatalf("step-up by text = %d %q %s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	res = c2.PostForm("/t/acme/account/mfa/sms/remove", url.Values{})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/acme/account/mfa?notice=sms_removed" {
		t.Fatalf("remove = %d %q %s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	if _, err := env.Store.SMSPhone(ctx, acme.ID, alice.ID); err == nil {
		t.Error("the phone is still there")
	}
	if mailsTo(t, env, alice.Email, "sms_removed") != 1 {
		t.Error("no email about the removed phone")
	}
	if got := c2.Get("/t/acme/account/mfa").Doc().Find("[data-testid=setup-sms]").Length(); got != 1 {
		t.Error("no Add a phone after removing it")
	}
}

func TestSMSPagesRefusedWhenNotAllowed(t *testing.T) {
	t.Parallel()
	env, acme, alice := setup(t)
	ctx := context.Background()
	c := env.Client()
	c.Login("acme", alice.Email, pw)

	// SMS off (the default): nothing offered, the pages refuse.
	if c.Get("/t/acme/account/mfa").Doc().Find("[data-testid=sms]").Length() != 0 {
		t.Error("the MFA page offers SMS while the workspace does not allow it")
	}
	if res := c.Get("/t/acme/account/mfa/sms/setup"); res.StatusCode < 400 {
		t.Errorf("setup page while SMS is off = %d", res.StatusCode)
	}
	if res := c.PostForm("/t/acme/account/mfa/sms/setup", url.Values{"country": {"GB"}, "phone": {"07400 123456"}}); res.StatusCode < 400 {
		t.Errorf("setup while SMS is off = %d", res.StatusCode)
	}

	// Allowed as a method but no country chosen yet: still refused.
	p := policyOf(t, env, acme)
	p.Methods = append(p.Methods, db.MethodSMS)
	if _, _, err := env.Store.SetPolicy(ctx, acme.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	if c.Get("/t/acme/account/mfa").Doc().Find("[data-testid=setup-sms]").Length() != 0 {
		t.Error("Add a phone offered with no country allowed")
	}
	if res := c.Get("/t/acme/account/mfa/sms/setup"); res.StatusCode != http.StatusForbidden {
		t.Errorf("setup page with no country = %d", res.StatusCode)
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM sms_outbox`); n != 0 {
		t.Fatalf("%d texts queued while SMS was not allowed", n)
	}

	// A member with a phone whose workspace then turns SMS off: no text
	// offered at sign-in, and asking for one anyway answers the same and
	// sends nothing.
	enableSMS(t, env, acme)
	if res := addPhone(t, env, c, "07400 123456", "+447400123456"); res.StatusCode != http.StatusOK {
		t.Fatalf("add phone = %d", res.StatusCode)
	}
	if _, err := env.Store.SetSMSSettings(ctx, acme.ID, 0, db.SMSSettings{DailyCap: 1, MonthlyBudgetTexts: 1, MonthlyBudgetMicros: 1}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	texts := queryInt(t, env, `SELECT COUNT(*) FROM sms_outbox`)
	c2 := pendingPage(t, env, "acme", alice.Email, pw)
	doc := c2.Get("/t/acme/login/mfa").Doc()
	if doc.Find("[data-testid=sms-send]").Length() != 0 {
		t.Error("Text me a code offered for a country no longer allowed")
	}
	if doc.Find("input#recovery_code").Length() != 1 {
		t.Error("the member with only a phone SMS no longer covers gets no recovery code field")
	}
	res := c2.PostForm("/t/acme/login/mfa/sms", url.Values{})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/login/mfa?method=sms") {
		t.Errorf("send while refused = %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if n := queryInt(t, env, `SELECT COUNT(*) FROM sms_outbox`); n != texts {
		t.Errorf("a refused send queued a text")
	}
	if c2.Get("/t/acme/login/mfa?method=sms").Doc().Find("input#sms_code").Length() != 0 {
		t.Error("a code field for a phone SMS does not cover")
	}
}
