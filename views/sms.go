package views

import "time"

// SMSSettingsForm is the SMS part of the security settings page: the
// form's values (current or submitted), this month's usage and the
// country reference table.
type SMSSettingsForm struct {
	Countries       string   // "GB, IE", as typed or as stored
	CountryLabels   []string // the stored countries, named: "United Kingdom (+44)"
	AdminsForbidden bool
	DailyCap        string
	MonthlyTexts    string
	MonthlyBudget   string // US dollars, "50.00"
	Usage           SMSUsage
	Reference       []CountryOption
}

// SMSUsage is the workspace's texts and spend this UTC month against its
// budget.
type SMSUsage struct {
	Month        string // "December 2026"
	Texts        int
	BudgetTexts  int
	Spend        string // "$0.48"
	BudgetSpend  string // "$50.00"
	OverBudget   bool
	NearOfBudget bool // 80 % or more of either budget
}

// CountryOption is one country a number may be in.
type CountryOption struct {
	Code  string // "GB"
	Label string // "United Kingdom (+44)"
	Price string // what one text costs, "$0.04"
}

func joinLabels(ls []string) string {
	out := ""
	for i, l := range ls {
		if i > 0 {
			out += ", "
		}
		out += l
	}
	return out
}

// SMSPhoneRow is the member's verified phone on the MFA page.
type SMSPhoneRow struct {
	Masked   string // "+44 •••• ••• 789"
	Added    time.Time
	LastUsed time.Time
}

// SMSSection is the SMS part of the member's MFA page.
type SMSSection struct {
	// Allowed: the workspace lets the member add a phone.
	Allowed bool
	Phone   *SMSPhoneRow
	Error   string // a refused removal
}

// SMSSetupView asks for the phone number.
type SMSSetupView struct {
	Countries []CountryOption // those the workspace allows
	Country   string
	Number    string
	Replacing string // the masked phone a verified new one replaces
	Errors    FieldErrors
	Error     string
}

// SMSVerifyView asks for the code texted to the new phone.
type SMSVerifyView struct {
	Masked  string
	Error   string
	Resent  bool
	Account string
}
