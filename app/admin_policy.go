package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

var securityNotices = map[string]string{
	"policy_saved": "The security settings were saved.",
}

// policySettings are a workspace's policy and passkey rules together: what
// the settings page and the admin API show and change.
type policySettings struct {
	Policy   db.Policy
	Passkey  db.PasskeySettings
	Recovery db.RecoverySettings
}

func (s *Server) loadPolicySettings(c echo.Context) (policySettings, error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	p, err := s.store.Policy(ctx, t.ID)
	if err != nil {
		return policySettings{}, err
	}
	pk, err := s.store.PasskeySettings(ctx, t.ID)
	if err != nil {
		return policySettings{}, err
	}
	r, err := s.store.RecoverySettings(ctx, t.ID)
	if err != nil {
		return policySettings{}, err
	}
	return policySettings{Policy: p, Passkey: pk, Recovery: r}, nil
}

// applyPolicy runs SetPolicy (a dry run or not) with the passkey rules:
// one transaction, one audit event with the old and new values of both.
// Validation errors come back as they are; the caller maps them.
func (s *Server) applyPolicy(c echo.Context, ps policySettings, endSessions, dryRun bool) (db.Policy, db.PolicyImpact, error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	keys, recovery := ps.Passkey, ps.Recovery
	return s.store.SetPolicy(ctx, t.ID, authFrom(c).User.ID,
		db.PolicyChange{Policy: ps.Policy, Passkeys: &keys, Recovery: &recovery, EndNonCompliantSessions: endSessions, DryRun: dryRun}, meta(c))
}

// Settings page.

// policyForm parses the settings form (query on a preview, body on save)
// into settings, with a message per invalid field.
func policyForm(vals url.Values) (policySettings, views.FieldErrors) {
	errs := views.FieldErrors{}
	ps := policySettings{Policy: db.Policy{Mode: vals.Get("policy"), Methods: vals["methods"]}}
	switch ps.Policy.Mode {
	case db.PolicyOff, db.PolicyOptional, db.PolicyRequired, db.PolicyRequiredForAdmins:
	default:
		errs["policy"] = "Choose one of the policies."
	}
	for _, m := range ps.Policy.Methods {
		if m != db.MethodTOTP && m != db.MethodWebAuthn && m != db.MethodSMS {
			errs["methods"] = "Choose from the methods listed."
		}
	}
	if len(ps.Policy.Methods) == 0 {
		errs["methods"] = "Allow at least one method."
	} else if errs["methods"] == "" && !ps.Policy.Allows(db.MethodTOTP) && !ps.Policy.Allows(db.MethodWebAuthn) {
		errs["methods"] = "SMS can't be the only method: allow the authenticator app or passkeys too."
	}
	num := func(name string, max int, msg string) int {
		n, err := strconv.Atoi(strings.TrimSpace(vals.Get(name)))
		if err != nil || n < 0 || n > max {
			errs[name] = msg
		}
		return n
	}
	ps.Policy.GraceDays = num("grace_days", db.MaxGraceDays, "Enter a whole number of days from 0 to 365.")
	ps.Policy.TrustedDeviceDays = num("trusted_device_days", db.MaxTrustedDeviceDays, "Enter a whole number of days from 0 (off) to 30.")
	days, err := db.ParseDays(vals.Get("reminder_days"))
	if err != nil {
		errs["reminder_days"] = "Enter whole numbers of days separated by commas, e.g. 7, 3, 1."
	}
	ps.Policy.ReminderDays = days
	if errs["reminder_days"] == "" {
		check := ps.Policy
		check.Mode, check.Methods, check.GraceDays, check.TrustedDeviceDays = db.PolicyOptional, []string{db.MethodTOTP}, 0, 0
		if err := check.Validate(); err != nil {
			errs["reminder_days"] = "Reminder days: " + err.Error() + "."
		}
	}
	if len(errs) == 0 {
		if err := ps.Policy.Validate(); err != nil {
			errs["policy"] = err.Error() + "."
		}
	}
	ps.Passkey = db.PasskeySettings{SatisfyMFA: vals.Get("passkeys_satisfy_mfa") != "", DeviceBoundOnly: vals.Get("device_bound_keys_only") != ""}
	ps.Recovery = db.RecoverySettings{SelfService: vals.Get("self_service_recovery") != "", WaitHours: db.DefaultRecoveryWaitHours}
	if raw := strings.TrimSpace(vals.Get("recovery_wait_hours")); raw != "" {
		n, err := strconv.Atoi(raw)
		ps.Recovery.WaitHours = n
		if err != nil || ps.Recovery.Validate() != nil {
			errs["recovery_wait_hours"] = fmt.Sprintf("Enter a whole number of hours from %d to %d.", db.MinRecoveryWaitHours, db.MaxRecoveryWaitHours)
		}
	}
	return ps, errs
}

// settingsView fills the form from the settings and the current state.
func settingsView(cur, form policySettings, endSessions bool) views.SecuritySettingsView {
	v := views.SecuritySettingsView{
		CurrentPolicy: cur.Policy.Mode, EnforcedSince: cur.Policy.EnforcedSince,
		Policy: form.Policy.Mode, TOTP: form.Policy.Allows(db.MethodTOTP), WebAuthn: form.Policy.Allows(db.MethodWebAuthn),
		SMS:       form.Policy.Allows(db.MethodSMS),
		GraceDays: strconv.Itoa(form.Policy.GraceDays), TrustedDeviceDays: strconv.Itoa(form.Policy.TrustedDeviceDays),
		ReminderDays:    joinInts(form.Policy.ReminderDays),
		PasskeysSatisfy: form.Passkey.SatisfyMFA, DeviceBoundOnly: form.Passkey.DeviceBoundOnly, EndSessions: endSessions,
		SelfRecovery: form.Recovery.SelfService, RecoveryWaitHours: strconv.Itoa(form.Recovery.WaitHours),
		Errors: views.FieldErrors{},
	}
	if !cur.Policy.EnforcedSince.IsZero() {
		v.CurrentDeadline = cur.Policy.EnforcedSince.Add(cur.Policy.Grace())
	}
	return v
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

// handleAdminSecurity shows the settings. With ?preview (the Preview
// button submits the form here with formmethod=get) it computes the impact
// of the submitted values with a dry run; nothing is saved.
func (s *Server) handleAdminSecurity(c echo.Context) error {
	cur, err := s.loadPolicySettings(c)
	if err != nil {
		return err
	}
	p := s.page(c, "Security settings")
	p.Notice = securityNotices[c.QueryParam("notice")]
	q := c.QueryParams()
	if q.Has("_csrf") {
		// The Preview button submits the whole form by GET, CSRF field
		// included: drop the token from the address (history, logs).
		q.Del("_csrf")
		t := tenants.FromContext(c.Request().Context())
		return c.Redirect(http.StatusSeeOther, t.Base+"/admin/settings/security?"+q.Encode())
	}
	if !q.Has("policy") {
		v := settingsView(cur, cur, false)
		st, err := s.store.SMSSettings(c.Request().Context(), tenants.FromContext(c.Request().Context()).ID)
		if err != nil {
			return err
		}
		if err := s.smsView(c, &v, st, nil); err != nil {
			return err
		}
		return s.render(c, http.StatusOK, views.AdminSettingsPage(p, v))
	}
	form, errs := policyForm(q)
	curSMS, err := s.store.SMSSettings(c.Request().Context(), tenants.FromContext(c.Request().Context()).ID)
	if err != nil {
		return err
	}
	st := smsForm(q, curSMS, errs)
	endSessions := q.Get("end_sessions") != ""
	v := settingsView(cur, form, endSessions)
	var typed *string
	if q.Has("sms_form") {
		typed = new(q.Get("sms_countries"))
	}
	if err := s.smsView(c, &v, st, typed); err != nil {
		return err
	}
	if len(errs) > 0 {
		v.Errors, v.Error = errs, "Fix the values marked below."
		return s.render(c, http.StatusBadRequest, views.AdminSettingsPage(p, v))
	}
	_, im, err := s.applyPolicy(c, form, endSessions, true)
	if status, ok := s.policyError(err, &v); ok {
		return s.render(c, status, views.AdminSettingsPage(p, v))
	} else if err != nil {
		return err
	}
	v.Preview = &views.PolicyPreview{Requires: form.Policy.Requires(), Covered: im.Covered, NonCompliant: im.NonCompliant,
		Deadline: im.Deadline, PastDeadline: im.PastDeadline, SessionsEnded: im.SessionsEnded}
	return s.render(c, http.StatusOK, views.AdminSettingsPage(p, v))
}

// policyError maps SetPolicy's enroll-first refusal to the page (409).
func (s *Server) policyError(err error, v *views.SecuritySettingsView) (int, bool) {
	if errors.Is(err, db.ErrEnrollFirst) {
		v.EnrollFirst = true
		return http.StatusConflict, true
	}
	return 0, false
}

// handleAdminSecuritySave saves the settings (the route's step-up has checked the
// admin's fresh second factor).
func (s *Server) handleAdminSecuritySave(c echo.Context) error {
	cur, err := s.loadPolicySettings(c)
	if err != nil {
		return err
	}
	vals, err := c.FormParams()
	if err != nil {
		return err
	}
	p := s.page(c, "Security settings")
	form, errs := policyForm(vals)
	curSMS, err := s.store.SMSSettings(c.Request().Context(), tenants.FromContext(c.Request().Context()).ID)
	if err != nil {
		return err
	}
	st := smsForm(vals, curSMS, errs)
	endSessions := vals.Get("end_sessions") != ""
	v := settingsView(cur, form, endSessions)
	var typed *string
	if vals.Has("sms_form") {
		typed = new(vals.Get("sms_countries"))
	}
	if err := s.smsView(c, &v, st, typed); err != nil {
		return err
	}
	if len(errs) > 0 {
		v.Errors, v.Error = errs, "Nothing was saved. Fix the values marked below."
		return s.render(c, http.StatusBadRequest, views.AdminSettingsPage(p, v))
	}
	// The SMS settings first, so that the policy's check of the admin's
	// own compliance sees the new rule for owners and admins; a policy
	// refused after them puts them back.
	undo, err := s.saveSMSSettings(c, st)
	if status, ok := s.policyError(err, &v); ok {
		return s.render(c, status, views.AdminSettingsPage(p, v))
	} else if err != nil {
		return err
	}
	_, _, err = s.applyPolicy(c, form, endSessions, false)
	if status, ok := s.policyError(err, &v); ok {
		if err := undo(); err != nil {
			return err
		}
		return s.render(c, status, views.AdminSettingsPage(p, v))
	} else if err != nil {
		return errors.Join(err, undo())
	}
	t := tenants.FromContext(c.Request().Context())
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/settings/security?notice=policy_saved")
}

// Admin API.

type apiPolicy struct {
	Policy              string     `json:"policy"`
	Methods             []string   `json:"methods"`
	GraceDays           int        `json:"grace_days"`
	ReminderDays        []int      `json:"reminder_days"`
	TrustedDeviceDays   int        `json:"trusted_device_days"`
	EnforcedSince       *string    `json:"enforced_since"`
	PasskeysSatisfyMFA  bool       `json:"passkeys_satisfy_mfa"`
	DeviceBoundKeysOnly bool       `json:"device_bound_keys_only"`
	SelfServiceRecovery bool       `json:"self_service_recovery"`
	RecoveryWaitHours   int        `json:"recovery_wait_hours"`
	SMS                 *apiSMS    `json:"sms,omitempty"`
	Impact              *apiImpact `json:"impact,omitempty"`
}

// apiSMS is the workspace's SMS settings in the admin API: the countries
// texts may go to, the daily cap and the monthly budget in texts and in
// US dollars (a decimal string, "50.00"), and whether owners and admins
// are kept from SMS.
type apiSMS struct {
	Countries       []string     `json:"countries"`
	DailyCap        int          `json:"daily_cap"`
	MonthlyBudget   apiSMSBudget `json:"monthly_budget"`
	AdminsForbidden bool         `json:"admins_forbidden"`
	Usage           *apiSMSUsage `json:"usage,omitempty"`
}

type apiSMSBudget struct {
	Texts int    `json:"texts"`
	USD   string `json:"usd"`
}

// apiSMSUsage is the month's texts so far (read only).
type apiSMSUsage struct {
	TextsMonth int    `json:"texts_month"`
	USDMonth   string `json:"usd_month"`
}

// apiSMSPut is the "sms" field of PUT /admin/policy: missing fields keep
// their values; "usage" is read only, accepted so that a client can PUT
// back what GET returned.
type apiSMSPut struct {
	Countries     *[]string `json:"countries"`
	DailyCap      *int      `json:"daily_cap"`
	MonthlyBudget *struct {
		Texts *int    `json:"texts"`
		USD   *string `json:"usd"`
	} `json:"monthly_budget"`
	AdminsForbidden *bool `json:"admins_forbidden"`
	Usage           any   `json:"usage"`
}

func toAPISMS(st db.SMSSettings) *apiSMS {
	countries := st.Countries
	if countries == nil {
		countries = []string{}
	}
	return &apiSMS{Countries: countries, DailyCap: st.DailyCap, AdminsForbidden: st.AdminsForbidden,
		MonthlyBudget: apiSMSBudget{Texts: st.MonthlyBudgetTexts, USD: microsToUSD(st.MonthlyBudgetMicros)}}
}

// parseUSD reads a dollar amount ("50", "50.5", "50.00") as micro-dollars,
// to the cent.
func parseUSD(v string) (int64, bool) {
	whole, frac, dot := strings.Cut(strings.TrimSpace(v), ".")
	if whole == "" || len(whole) > 9 || (dot && (len(frac) == 0 || len(frac) > 2)) {
		return 0, false
	}
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	dollars, _ := strconv.ParseInt(whole, 10, 64)
	cents := int64(0)
	if dot {
		cents, _ = strconv.ParseInt((frac + "0")[:2], 10, 64)
	}
	return dollars*1_000_000 + cents*10_000, true
}

// applySMSPut changes st by the request's fields and validates it.
func applySMSPut(st db.SMSSettings, req *apiSMSPut) (db.SMSSettings, error) {
	if req.Countries != nil {
		st.Countries = *req.Countries
	}
	if req.DailyCap != nil {
		st.DailyCap = *req.DailyCap
	}
	if b := req.MonthlyBudget; b != nil {
		if b.Texts != nil {
			st.MonthlyBudgetTexts = *b.Texts
		}
		if b.USD != nil {
			micros, ok := parseUSD(*b.USD)
			if !ok {
				return st, invalidPolicy("sms.monthly_budget.usd is an amount in dollars, like \"50.00\".")
			}
			st.MonthlyBudgetMicros = micros
		}
	}
	if req.AdminsForbidden != nil {
		st.AdminsForbidden = *req.AdminsForbidden
	}
	if err := st.Validate(); err != nil {
		return st, invalidPolicy("sms: " + err.Error() + ".")
	}
	return st, nil
}

type apiImpact struct {
	NonCompliant  int     `json:"non_compliant"`
	Deadline      *string `json:"deadline"`
	PastDeadline  int     `json:"past_deadline"`
	SessionsEnded int     `json:"sessions_ended"`
	Covered       int     `json:"covered"`
}

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := rfc3339(t)
	return &s
}

func toAPIPolicy(ps policySettings) apiPolicy {
	days := ps.Policy.ReminderDays
	if days == nil {
		days = []int{}
	}
	return apiPolicy{Policy: ps.Policy.Mode, Methods: ps.Policy.Methods, GraceDays: ps.Policy.GraceDays, ReminderDays: days,
		TrustedDeviceDays: ps.Policy.TrustedDeviceDays, EnforcedSince: optTime(ps.Policy.EnforcedSince),
		PasskeysSatisfyMFA: ps.Passkey.SatisfyMFA, DeviceBoundKeysOnly: ps.Passkey.DeviceBoundOnly,
		SelfServiceRecovery: ps.Recovery.SelfService, RecoveryWaitHours: ps.Recovery.WaitHours}
}

// handleAPIAdminPolicy is GET /admin/policy.
func (s *Server) handleAPIAdminPolicy(c echo.Context) error {
	ps, err := s.loadPolicySettings(c)
	if err != nil {
		return err
	}
	out := toAPIPolicy(ps)
	if out.SMS, err = s.apiSMSSettings(c); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// apiSMSSettings reads the workspace's SMS settings and the month's usage.
func (s *Server) apiSMSSettings(c echo.Context) (*apiSMS, error) {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	st, err := s.store.SMSSettings(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	texts, micros, err := s.store.SMSUsage(ctx, t.ID, s.now())
	if err != nil {
		return nil, err
	}
	out := toAPISMS(st)
	out.Usage = &apiSMSUsage{TextsMonth: texts, USDMonth: microsToUSD(micros)}
	return out, nil
}

type apiPolicyPut struct {
	Policy                  *string    `json:"policy"`
	Methods                 *[]string  `json:"methods"`
	GraceDays               *int       `json:"grace_days"`
	ReminderDays            *[]int     `json:"reminder_days"`
	TrustedDeviceDays       *int       `json:"trusted_device_days"`
	PasskeysSatisfyMFA      *bool      `json:"passkeys_satisfy_mfa"`
	DeviceBoundKeysOnly     *bool      `json:"device_bound_keys_only"`
	SelfServiceRecovery     *bool      `json:"self_service_recovery"`
	RecoveryWaitHours       *int       `json:"recovery_wait_hours"`
	EndNoncompliantSessions *bool      `json:"end_noncompliant_sessions"`
	SMS                     *apiSMSPut `json:"sms"`
	// EnforcedSince is read-only; accepted so that a client can PUT back
	// what GET returned.
	EnforcedSince any `json:"enforced_since"`
}

func invalidPolicy(msg string) *Error {
	return errorf(http.StatusBadRequest, "invalid_policy", msg)
}

// handleAPIAdminPolicyPut is PUT /admin/policy: missing fields keep their
// values. ?dry_run=true computes the impact and saves nothing; a dry run
// skips the step-up check because it changes nothing (it reveals only
// counts an admin can already see), while a real change needs a fresh
// second factor (403 step_up_required): stepUpUnless(dryRun) in routes.
func (s *Server) handleAPIAdminPolicyPut(c echo.Context) error {
	if raw := c.QueryParam("dry_run"); raw != "" {
		if _, err := strconv.ParseBool(raw); err != nil {
			return invalidPolicy("dry_run is true or false.")
		}
	}
	dryRun := dryRun(c) // as the route's step-up read it
	var req apiPolicyPut
	if err := decodePolicyJSON(c, &req); err != nil {
		return err
	}
	ps, err := s.loadPolicySettings(c)
	if err != nil {
		return err
	}
	if req.Policy != nil {
		ps.Policy.Mode = *req.Policy
	}
	if req.Methods != nil {
		ps.Policy.Methods = *req.Methods
	}
	if req.GraceDays != nil {
		ps.Policy.GraceDays = *req.GraceDays
	}
	if req.ReminderDays != nil {
		ps.Policy.ReminderDays = *req.ReminderDays
	}
	if req.TrustedDeviceDays != nil {
		ps.Policy.TrustedDeviceDays = *req.TrustedDeviceDays
	}
	if req.PasskeysSatisfyMFA != nil {
		ps.Passkey.SatisfyMFA = *req.PasskeysSatisfyMFA
	}
	if req.DeviceBoundKeysOnly != nil {
		ps.Passkey.DeviceBoundOnly = *req.DeviceBoundKeysOnly
	}
	if req.SelfServiceRecovery != nil {
		ps.Recovery.SelfService = *req.SelfServiceRecovery
	}
	if req.RecoveryWaitHours != nil {
		ps.Recovery.WaitHours = *req.RecoveryWaitHours
	}
	if err := ps.Policy.Validate(); err != nil {
		return invalidPolicy(err.Error() + ".")
	}
	if err := ps.Recovery.Validate(); err != nil {
		return invalidPolicy(err.Error() + ".")
	}
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	var smsSettings *db.SMSSettings
	if req.SMS != nil {
		st, err := s.store.SMSSettings(ctx, t.ID)
		if err != nil {
			return err
		}
		if st, err = applySMSPut(st, req.SMS); err != nil {
			return err
		}
		smsSettings = &st
	}
	enrollFirst := errorf(http.StatusConflict, "enroll_first", "This policy would apply to you and you have no allowed second factor: enroll one first.")
	endSessions := req.EndNoncompliantSessions != nil && *req.EndNoncompliantSessions
	p, im, err := s.applyPolicy(c, ps, endSessions, dryRun)
	switch {
	case errors.Is(err, db.ErrEnrollFirst):
		return enrollFirst
	case err != nil:
		return err
	}
	// The SMS settings are their own change (SetSMSSettings, audited
	// apart), saved after the policy's.
	if smsSettings != nil && !dryRun {
		if _, err := s.store.SetSMSSettings(ctx, t.ID, authFrom(c).User.ID, *smsSettings, meta(c)); errors.Is(err, db.ErrEnrollFirst) {
			return enrollFirst
		} else if err != nil {
			return err
		}
	}
	ps.Policy = p
	out := toAPIPolicy(ps)
	if smsSettings != nil && dryRun {
		out.SMS = toAPISMS(*smsSettings)
	} else if out.SMS, err = s.apiSMSSettings(c); err != nil {
		return err
	}
	out.Impact = &apiImpact{NonCompliant: im.NonCompliant, Deadline: optTime(im.Deadline), PastDeadline: im.PastDeadline,
		SessionsEnded: im.SessionsEnded, Covered: im.Covered}
	return c.JSON(http.StatusOK, out)
}

// decodePolicyJSON is decodeJSON with unknown fields refused: a typo must
// not silently keep the old value. Any malformed body is invalid_policy.
func decodePolicyJSON(c echo.Context, v any) error {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as application/json.")
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<16))
	if err := decodeObject(dec, v, true); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return invalidPolicy(te.Field + " has the wrong type.")
		}
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			return invalidPolicy(strings.TrimPrefix(err.Error(), "json: ") + ".")
		}
		return invalidPolicy("The body must be a JSON object with the policy's fields.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalidPolicy("The body must be one JSON object.")
	}
	return nil
}
