package views

import "time"

// AuditView is the admin console's audit log: the filter form, one page of
// events and the links that page through them or export them.
type AuditView struct {
	Filter AuditFilterForm
	Errors FieldErrors
	// Error is a message for the whole form ("Fix the filters below").
	Error string
	// EventGroups and Events fill the event select.
	EventGroups []EventOption
	Events      []EventOption
	Rows        []AuditRow
	// NewestURL is set on every page but the first; OlderURL when there
	// are older events.
	NewestURL string
	OlderURL  string
	CSVURL    string
	// MaxExportText is the export's row limit for people ("100,000").
	MaxExportText string
}

// AuditFilterForm is the filters as typed.
type AuditFilterForm struct {
	Member string
	Event  string
	Since  string
	Until  string
}

// EventOption is one choice of the event select.
type EventOption struct {
	Value string
	Label string
}

// AuditRow is one event in the log.
type AuditRow struct {
	At        time.Time
	Event     string
	Name      string
	Actor     string
	Subject   string
	IP        string
	UserAgent string
	Details   string
}
