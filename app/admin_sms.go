package app

// The SMS part of the security settings page (admin_policy.go): the
// countries numbers may be in, owners and admins kept from SMS, the daily
// cap and the monthly budget, and this month's usage against it. The SMS
// method itself is one of the policy's methods (SetPolicy); the rest is
// db.SetSMSSettings, audited apart.

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/sms"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// smsForm parses the SMS fields of the settings form, with a message per
// invalid field. A form without them (sms_form, a client of the page
// before SMS) keeps cur.
func smsForm(vals url.Values, cur db.SMSSettings, errs views.FieldErrors) db.SMSSettings {
	if !vals.Has("sms_form") {
		return cur
	}
	var st db.SMSSettings
	countries, err := parseCountryList(vals.Get("sms_countries"))
	if err != nil {
		errs["sms_countries"] = "Countries: " + err.Error() + ". Use two-letter codes such as GB or IE, separated by commas."
	}
	st.Countries = countries
	st.AdminsForbidden = vals.Get("sms_admins_forbidden") != ""
	num := func(name string, max int, msg string) int {
		n, err := strconv.Atoi(strings.TrimSpace(vals.Get(name)))
		if err != nil || n < 0 || n > max {
			errs[name] = msg
		}
		return n
	}
	st.DailyCap = num("sms_daily_cap", db.MaxSMSDailyCap, fmt.Sprintf("Enter a whole number of texts from 0 to %d.", db.MaxSMSDailyCap))
	st.MonthlyBudgetTexts = num("sms_monthly_texts", db.MaxSMSMonthlyTexts, fmt.Sprintf("Enter a whole number of texts from 0 to %d.", db.MaxSMSMonthlyTexts))
	micros, ok := parseDollars(vals.Get("sms_monthly_budget"))
	if !ok || micros > db.MaxSMSMonthlyMicros {
		errs["sms_monthly_budget"] = fmt.Sprintf("Enter an amount in US dollars from 0 to %d, e.g. 50.00.", db.MaxSMSMonthlyMicros/1_000_000)
	}
	st.MonthlyBudgetMicros = micros
	return st
}

// parseDollars reads an amount of US dollars ("50", "$49.99", "0.0083")
// as micro-dollars: at most six decimals, no sign, no exponent.
func parseDollars(s string) (int64, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "$")
	s = strings.ReplaceAll(s, ",", "")
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(whole) > 9 || len(frac) > 6 {
		return 0, false
	}
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	var w, f int64
	if whole != "" {
		w, _ = strconv.ParseInt(whole, 10, 64)
	}
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	return w*1_000_000 + f, true
}

// dollars shows micro-dollars as dollars with at least two decimals and
// no more than needed: 480000 is "0.48", 8300 is "0.0083".
func dollars(micros int64) string {
	s := fmt.Sprintf("%d.%06d", micros/1_000_000, micros%1_000_000)
	for strings.HasSuffix(s, "0") && len(s) > strings.Index(s, ".")+3 {
		s = strings.TrimSuffix(s, "0")
	}
	return s
}

// smsView fills the SMS part of the settings page: form holds the values
// to show (stored or submitted); the usage and the stored countries come
// from the store.
func (s *Server) smsView(c echo.Context, v *views.SecuritySettingsView, form db.SMSSettings, typed *string) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	cur, err := s.store.SMSSettings(ctx, t.ID)
	if err != nil {
		return err
	}
	texts, micros, err := s.store.SMSUsage(ctx, t.ID, s.now())
	if err != nil {
		return err
	}
	f := views.SMSSettingsForm{
		Countries: strings.Join(form.Countries, ", "), AdminsForbidden: form.AdminsForbidden,
		DailyCap: strconv.Itoa(form.DailyCap), MonthlyTexts: strconv.Itoa(form.MonthlyBudgetTexts),
		MonthlyBudget: dollars(form.MonthlyBudgetMicros),
		Usage: views.SMSUsage{Month: s.now().UTC().Format("January 2006"), Texts: texts, BudgetTexts: cur.MonthlyBudgetTexts,
			Spend: "$" + dollars(micros), BudgetSpend: "$" + dollars(cur.MonthlyBudgetMicros),
			OverBudget:   texts >= cur.MonthlyBudgetTexts || micros >= cur.MonthlyBudgetMicros,
			NearOfBudget: texts*5 >= cur.MonthlyBudgetTexts*4 || micros*5 >= cur.MonthlyBudgetMicros*4},
	}
	if typed != nil {
		f.Countries = *typed
	}
	for _, code := range countriesByName(cur.Countries) {
		f.CountryLabels = append(f.CountryLabels, countryLabel(code))
	}
	for _, code := range countriesByName(allCountries()) {
		f.Reference = append(f.Reference, views.CountryOption{Code: code, Label: countryLabel(code), Price: "$" + dollars(s.adminPrices().For(code))})
	}
	v.SMSForm = f
	return nil
}

// adminPrices is the price table the budgets count in.
func (s *Server) adminPrices() sms.Prices {
	if s.cfg.SMSPrices != nil {
		return s.cfg.SMSPrices
	}
	return sms.DefaultPrices()
}

// saveSMSSettings stores the SMS fields when they changed, and returns a
// function that puts the old ones back (a policy refused after them).
func (s *Server) saveSMSSettings(c echo.Context, st db.SMSSettings) (undo func() error, err error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	old, err := s.store.SMSSettings(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	if sameSMSSettings(old, st) {
		return func() error { return nil }, nil
	}
	actor := authFrom(c).User.ID
	if _, err := s.store.SetSMSSettings(ctx, t.ID, actor, st, meta(c)); err != nil {
		return nil, err
	}
	return func() error {
		_, err := s.store.SetSMSSettings(ctx, t.ID, actor, old, meta(c))
		if errors.Is(err, db.ErrEnrollFirst) {
			// Putting back what was there cannot leave the admin worse
			// off than before; the store judged it under the new policy.
			err = nil
		}
		return err
	}, nil
}

func sameSMSSettings(a, b db.SMSSettings) bool {
	return strings.Join(a.Countries, ",") == strings.Join(b.Countries, ",") && a.AdminsForbidden == b.AdminsForbidden &&
		a.DailyCap == b.DailyCap && a.MonthlyBudgetTexts == b.MonthlyBudgetTexts && a.MonthlyBudgetMicros == b.MonthlyBudgetMicros
}
