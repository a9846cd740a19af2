package app_test

// The SMS pages: the admin's SMS settings (security settings page), the
// member's phone in the portal, the challenge's "Text me a code", and the
// texts in the dev mailbox.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
)

// smsSettingsForm is the security settings form with SMS allowed for GB.
func smsSettingsForm() url.Values {
	return url.Values{"policy": {"optional"}, "methods": {"totp", "webauthn", "sms"}, "grace_days": {"30"},
		"reminder_days": {"7, 3, 1"}, "trusted_device_days": {"0"}, "passkeys_satisfy_mfa": {"on"},
		"sms_countries": {"gb, IE"}, "sms_daily_cap": {"200"}, "sms_monthly_texts": {"1000"}, "sms_monthly_budget": {"$25.50"}}
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
