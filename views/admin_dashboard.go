package views

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MembersListView is the members list with the policy's view: the status
// filter and, for each member, their status and deadline.
type MembersListView struct {
	MembersView
	Status string // the filter in force, "" for all
	Rows   []MemberListRow
}

// MemberListRow is a member in the list with their standing.
type MemberListRow struct {
	MemberRow
	Status   string // db status code
	Deadline time.Time
}

// MemberStatuses are the list's filters in display order: code and label.
var MemberStatuses = [][2]string{
	{"enrolled", "Enrolled"},
	{"in_grace", "In grace"},
	{"past_deadline", "Past deadline"},
	{"low_recovery_codes", "Low on recovery codes"},
	{"no_mfa", "No MFA"},
}

// StatusLabel is the human label of a member status code.
func StatusLabel(code string) string {
	for _, s := range MemberStatuses {
		if s[0] == code {
			return s[1]
		}
	}
	return code
}

// MemberDeadlineView is the policy part of the admin's member page.
type MemberDeadlineView struct {
	Status   string
	Deadline time.Time // zero when the requirement does not cover the member
	MaxDays  int
}

// DashboardView is the admin console's home.
type DashboardView struct {
	Members          int
	Enrolled         int
	InGrace          int
	PastDeadline     int
	LowRecoveryCodes int
	NoMFA            int
	PolicyName       string // "Optional", "Required for everyone", ...
	Methods          string
	GraceDays        int
	EnforcedSince    time.Time
	Requires         bool      // the policy requires a second factor of someone
	NextDeadline     time.Time // the earliest deadline of a member in grace, zero if none
	Now              time.Time
	History          []HistoryPoint
}

// NextDeadlineNote completes the "Next deadline" row: how far off the next
// deadline is, or, when there is none, why.
func (v DashboardView) NextDeadlineNote() string {
	switch {
	case !v.NextDeadline.IsZero():
		left := v.NextDeadline.Sub(v.Now)
		when := "in less than a day"
		if d := int(left / (24 * time.Hour)); d >= 1 {
			when = "in " + plural(d, "day", "days")
		}
		return when + ", for the first of " + plural(v.InGrace, "member", "members") + " in grace"
	case !v.Requires:
		return "None: the policy does not require a second factor."
	case v.PastDeadline > 0:
		return "None ahead: " + plural(v.PastDeadline, "member is", "members are") + " already past their deadline."
	default:
		return "None: everyone the requirement covers has a second factor."
	}
}

// HistoryPoint is one day of the enrollment chart.
type HistoryPoint struct {
	Day      time.Time
	Members  int
	Enrolled int
}

// Percent is n of total as a whole percentage ("0%" for an empty workspace).
func Percent(n, total int) string {
	if total == 0 {
		return "0%"
	}
	return strconv.Itoa(n*100/total) + "%"
}

// Chart geometry of the enrollment chart (SVG user units).
const (
	chartW, chartH       = 640, 220
	chartLeft, chartBase = 44, 190
	chartTop, chartRight = 12, 628
)

// compact writes a count short enough for an axis label: 950, 12k, 1.2M.
func compact(n int) string {
	switch {
	case n < 1000:
		return strconv.Itoa(n)
	case n < 10_000:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/1000, 'f', 1, 64), ".0") + "k"
	case n < 1_000_000:
		return strconv.Itoa(n/1000) + "k"
	default:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/1_000_000, 'f', 1, 64), ".0") + "M"
	}
}

// chartMax is the y-axis top: the largest member count, at least 1.
func (v DashboardView) chartMax() int {
	m := 1
	for _, h := range v.History {
		m = max(m, h.Members)
	}
	return m
}

func (v DashboardView) chartX(i int) float64 {
	if len(v.History) < 2 {
		return chartLeft
	}
	return chartLeft + float64(i)*float64(chartRight-chartLeft)/float64(len(v.History)-1)
}

func (v DashboardView) chartY(n int) float64 {
	return chartBase - float64(n)*float64(chartBase-chartTop)/float64(v.chartMax())
}

// chartPoints is the polyline of one series: members or enrolled.
func (v DashboardView) chartPoints(enrolled bool) string {
	var b strings.Builder
	for i, h := range v.History {
		n := h.Members
		if enrolled {
			n = h.Enrolled
		}
		fmt.Fprintf(&b, "%.1f,%.1f ", v.chartX(i), v.chartY(n))
	}
	return strings.TrimSpace(b.String())
}

// chartArea closes the enrolled series down to the axis for a fill.
func (v DashboardView) chartArea() string {
	if len(v.History) == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f,%d %s %.1f,%d", v.chartX(0), chartBase, v.chartPoints(true), v.chartX(len(v.History)-1), chartBase)
}

// ChartSummary says in words what the chart shows.
func (v DashboardView) ChartSummary() string {
	if len(v.History) == 0 {
		return "No history yet."
	}
	first, last := v.History[0], v.History[len(v.History)-1]
	return fmt.Sprintf("From %s to %s, members with a second factor went from %d of %d to %d of %d.",
		first.Day.Format("2 Jan 2006"), last.Day.Format("2 Jan 2006"), first.Enrolled, first.Members, last.Enrolled, last.Members)
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
