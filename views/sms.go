package views

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
