// Package views holds the templ components and the view models they take.
// Templates never call services: handlers fill the view models.
package views

import (
	"fmt"
	"net/url"
	"time"

	"github.com/gatehouse/gatehouse/assets"
)

// Page is what the layout needs on every page.
type Page struct {
	Title         string
	CSRF          string
	Base          string // "/t/{slug}" or "" on a workspace's own host
	WorkspaceName string
	User          *PageUser // nil when signed out
	Dev           bool
	Notice        string
	Wide          bool
	Scripts       []string // extra assets loaded with <script defer>, e.g. "js/webauthn.js"
	// Enroll, when set, is the banner of a member who must still enroll a
	// second factor and is within the grace period.
	Enroll *PageEnroll
	// Support is set on the support console's pages (Base "/support").
	Support bool
}

// home is the page the brand links to: the portal, or the support
// console's member search.
func (p Page) home() string {
	if p.Support {
		return "/members"
	}
	return "/account"
}

// PageEnroll is the grace-period banner's data.
type PageEnroll struct {
	Deadline string
	DaysLeft int
}

// withScript returns the page with one more script to load.
func (p Page) withScript(name string) Page {
	p.Scripts = append(append([]string(nil), p.Scripts...), name)
	return p
}

// PageUser is the signed-in member shown in the header.
type PageUser struct {
	Email   string
	IsAdmin bool
}

// DocumentTitle is the text of the <title> element.
func (p Page) DocumentTitle() string {
	t := "Gatehouse"
	if p.WorkspaceName != "" {
		t = p.WorkspaceName + " · " + t
	}
	if p.Title != "" {
		t = p.Title + " · " + t
	}
	return t
}

// URL joins the workspace base and a path.
func (p Page) URL(path string) string { return p.Base + path }

func asset(name string) string { return assets.Path(name) }

// FieldErrors maps a form field name to its message.
type FieldErrors map[string]string

func ariaInvalid(errs FieldErrors, name string) string {
	if errs[name] != "" {
		return "true"
	}
	return "false"
}

// describedBy names the hint and error elements that describe a field.
func describedBy(id, hint string, errs FieldErrors) string {
	switch {
	case errs[id] != "" && hint != "":
		return id + "-hint " + id + "-error"
	case errs[id] != "":
		return id + "-error"
	case hint != "":
		return id + "-hint"
	}
	return ""
}

// FormatTime renders a time for people, in UTC.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

func itoa(n int) string { return fmt.Sprint(n) }

func itoa64(n int64) string { return fmt.Sprint(n) }

// plural is "1 member", "2 members".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return itoa(n) + " " + many
}

func queryEscape(s string) string { return url.QueryEscape(s) }

// Mail is one message in the dev mailbox.
type Mail struct {
	ID        int64
	To        string
	Subject   string
	Text      string
	CreatedAt time.Time
	SentAt    time.Time
	FailedAt  time.Time
	Attempts  int
	LastError string
}

func mailStatus(m Mail) string {
	switch {
	case !m.SentAt.IsZero():
		return "sent " + FormatTime(m.SentAt)
	case !m.FailedAt.IsZero():
		return "failed: " + m.LastError
	case m.Attempts > 0:
		return fmt.Sprintf("retrying (%d attempts): %s", m.Attempts, m.LastError)
	default:
		return "queued"
	}
}

func pathEscape(s string) string { return url.PathEscape(s) }
