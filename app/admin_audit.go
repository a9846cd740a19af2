package app

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

const (
	auditPageSize    = 50  // rows on a page of the audit log
	auditAPIPageSize = 100 // events in one API answer
	auditExportPage  = 500 // rows read per query while streaming CSV
	// auditExportMax bounds one CSV export; narrower filters get the rest.
	auditExportMax = 100_000
	maxEventLength = 64
	maxTimeLength  = 40
	maxCursorLen   = 20
	detailsSummary = 160 // runes of details shown in the table
)

// adminEventNames names the events the member-facing eventNames leaves
// out: events only admins see.
var adminEventNames = map[string]string{
	db.EventSignInThrottled:        "Sign-in paused after wrong passwords",
	db.EventInvitationCreated:      "Invitation sent",
	db.EventChallengeEnded:         "Second step abandoned",
	db.EventWebAuthnRegistered:     "Passkey or security key added",
	db.EventWebAuthnRemoved:        "Passkey or security key removed",
	db.EventWebAuthnRenamed:        "Passkey or security key renamed",
	db.EventWebAuthnCloneWarned:    "Security key's counter went back (possible clone)",
	db.EventMFAResetByAdmin:        "Second factors reset by an admin",
	db.EventSessionEndedByAdmin:    "Sessions ended by an admin",
	db.EventMemberRoleChanged:      "Role changed",
	db.EventInvitationResent:       "Invitation sent again",
	db.EventCaseOpened:             "Support reset case opened",
	db.EventCaseApproved:           "Support reset approved and scheduled",
	db.EventCaseRejected:           "Support reset case rejected",
	db.EventCaseCancelled:          "Support reset cancelled by the member",
	db.EventCaseExpired:            "Support reset case expired unapproved",
	db.EventMFAResetBySupport:      "Second factors reset by support",
	db.EventRecoveryRequested:      "Recovery by email asked for",
	db.EventRecoveryStarted:        "Recovery by email started (waiting period)",
	db.EventRecoveryCancelled:      "Recovery by email cancelled",
	db.EventMFAResetBySelfRecovery: "Second factors reset by recovery by email",
	db.EventTrustedDeviceAdded:     "Browser trusted",
	db.EventTrustedDeviceUsed:      "Signed in on a trusted browser",
	db.EventTrustedDeviceRevoked:   "Trusted browser revoked",
	db.EventTrustedDevicesVoided:   "Trusted browsers voided",
}

// eventKinds names the prefixes the event filter offers.
var eventKinds = map[string]string{
	"sign_in.":    "All sign-in events",
	"session.":    "All session events",
	"password.":   "All password events",
	"member.":     "All member events",
	"invitation.": "All invitation events",
	"mfa.":        "All second-factor events",
	"support.":    "All support events",
	"recovery.":   "All recovery-by-email events",
}

// auditEventName is an event's human name, or its code when it has none.
func auditEventName(event string) string {
	if n, ok := eventNames[event]; ok {
		return n
	}
	if n, ok := adminEventNames[event]; ok {
		return n
	}
	return event
}

// eventOptions lists the event select's choices: kinds, then every known
// event by name. A valid filter for an event we have no name for (an older
// or newer release's) is kept as a choice so the form shows it.
func eventOptions(current string) (kinds, events []views.EventOption) {
	for prefix, label := range eventKinds {
		kinds = append(kinds, views.EventOption{Value: prefix, Label: label})
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].Label < kinds[j].Label })
	known := map[string]bool{}
	for _, m := range []map[string]string{eventNames, adminEventNames} {
		for ev, name := range m {
			known[ev] = true
			events = append(events, views.EventOption{Value: ev, Label: name})
		}
	}
	if _, isKind := eventKinds[current]; current != "" && !isKind && !known[current] {
		events = append(events, views.EventOption{Value: current, Label: current})
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Label < events[j].Label })
	return kinds, events
}

// eventRE is an event name ("mfa.totp.enrolled") or a prefix ending in ".".
var eventRE = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*\.?$`)

// auditQuery is the parsed filters of a request.
type auditQuery struct {
	form   views.AuditFilterForm
	filter db.AuditFilter // Limit left to the caller
	cursor string
}

// values encodes the filters (not the cursor) for links.
func (q auditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"member": q.form.Member, "event": q.form.Event, "since": q.form.Since, "until": q.form.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// parseAuditQuery reads member, event, since, until and cursor. The errors
// are per field, safe to show; the map is empty when all is well.
func (s *Server) parseAuditQuery(c echo.Context) (auditQuery, views.FieldErrors, error) {
	t := tenants.FromContext(c.Request().Context())
	var q auditQuery
	errs := views.FieldErrors{}
	qp := c.QueryParams()
	q.form.Member = strings.TrimSpace(qp.Get("member"))
	q.form.Event = strings.TrimSpace(qp.Get("event"))
	q.form.Since = strings.TrimSpace(qp.Get("since"))
	q.form.Until = strings.TrimSpace(qp.Get("until"))
	q.cursor = strings.TrimSpace(qp.Get("cursor"))

	switch m := q.form.Member; {
	case m == "":
	case len(m) > maxEmailLength:
		errs["member"] = "An email address has at most 254 characters."
	case isDigits(m):
		// The API may name a member by id (the members API gives ids);
		// the filter is scoped by workspace, so an id from elsewhere
		// matches nothing.
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil || id <= 0 {
			errs["member"] = "No member of this workspace has that id."
		}
		q.filter.MemberID = id
	default:
		u, err := s.store.UserByEmail(c.Request().Context(), t.ID, m)
		if errors.Is(err, db.ErrNotFound) {
			errs["member"] = "No member of this workspace has that email."
		} else if err != nil {
			return q, nil, err
		}
		q.filter.MemberID = u.ID
	}
	if e := q.form.Event; e != "" {
		if len(e) > maxEventLength || !eventRE.MatchString(e) {
			errs["event"] = "Choose an event from the list."
		}
		q.filter.Event = e
	}
	var err error
	if q.filter.Since, err = parseAuditTime(q.form.Since, false); err != nil {
		errs["since"] = "Enter the start date as YYYY-MM-DD."
	}
	if q.filter.Until, err = parseAuditTime(q.form.Until, true); err != nil {
		errs["until"] = "Enter the end date as YYYY-MM-DD."
	}
	if errs["since"] == "" && errs["until"] == "" && !q.filter.Since.IsZero() && !q.filter.Until.IsZero() && !q.filter.Since.Before(q.filter.Until) {
		errs["until"] = "The end date is before the start date."
	}
	if q.cursor != "" {
		id, err := strconv.ParseInt(q.cursor, 10, 64)
		if len(q.cursor) > maxCursorLen || !isDigits(q.cursor) || err != nil || id <= 0 {
			errs["cursor"] = "That page link is not valid; start again from the newest events."
		}
		q.filter.Before = id
	}
	// Keep what is echoed back into the form short.
	q.form.Member = truncateRunes(q.form.Member, maxEmailLength)
	q.form.Event = truncateRunes(q.form.Event, maxEventLength)
	q.form.Since = truncateRunes(q.form.Since, maxTimeLength)
	q.form.Until = truncateRunes(q.form.Until, maxTimeLength)
	return q, errs, nil
}

// parseAuditTime reads a date (YYYY-MM-DD, a whole UTC day) or an RFC 3339
// time. For the end of a range the result is exclusive: the day after the
// date, or the second after the time.
func parseAuditTime(s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if len(s) > maxTimeLength {
		return time.Time{}, errors.New("too long")
	}
	var t time.Time
	var err error
	if len(s) == len(time.DateOnly) {
		if t, err = time.Parse(time.DateOnly, s); err == nil && end {
			t = t.AddDate(0, 0, 1)
		}
	} else if t, err = time.Parse(time.RFC3339, s); err == nil && end {
		t = t.Truncate(time.Second).Add(time.Second)
	}
	if err != nil {
		return time.Time{}, err
	}
	// The year is checked in UTC, as stored: with an offset, 1970-01-01 can
	// be in 1969 and 9999-12-31 in 10000.
	if t = t.UTC(); t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, errors.New("out of range")
	}
	return t, nil
}

// thousands writes n with comma separators: 100000 is "100,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// handleAdminAudit is the audit log page.
func (s *Server) handleAdminAudit(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	p := s.page(c, "Audit log")
	p.Wide = true
	q, errs, err := s.parseAuditQuery(c)
	if err != nil {
		return err
	}
	v := views.AuditView{Filter: q.form, Errors: errs, MaxExportText: thousands(auditExportMax)}
	v.EventGroups, v.Events = eventOptions(q.form.Event)
	if len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.AdminAuditPage(p, auditFormErrors(v)))
	}
	f := q.filter
	f.Limit = auditPageSize + 1
	events, err := s.store.AuditEvents(ctx, t.ID, f)
	if err != nil {
		return err
	}
	base := t.Base + "/admin/audit"
	vals := q.values()
	v.CSVURL = withQuery(t.Base+"/admin/audit.csv", vals)
	if q.cursor != "" {
		v.NewestURL = withQuery(base, vals)
	}
	if len(events) > auditPageSize {
		events = events[:auditPageSize]
		older := q.values()
		older.Set("cursor", strconv.FormatInt(events[len(events)-1].ID, 10))
		v.OlderURL = withQuery(base, older)
	}
	for _, ev := range events {
		v.Rows = append(v.Rows, views.AuditRow{
			At: ev.CreatedAt, Event: ev.Event, Name: auditEventName(ev.Event),
			Actor: personLabel(ev.ActorUserID, ev.ActorEmail), Subject: personLabel(ev.SubjectUserID, ev.SubjectEmail),
			IP: ev.IP, UserAgent: describeUserAgent(ev.UserAgent), Details: summariseDetails(ev.Details),
		})
	}
	return s.render(c, http.StatusOK, views.AdminAuditPage(p, v))
}

// auditFormErrors moves a cursor error, which has no field, to the top.
func auditFormErrors(v views.AuditView) views.AuditView {
	v.Error = "Check the filters below."
	if msg := v.Errors["cursor"]; msg != "" {
		v.Error = msg
	}
	return v
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// personLabel shows a member by email; someone outside the workspace (a
// platform actor) by id only.
func personLabel(id int64, email string) string {
	switch {
	case email != "":
		return email
	case id != 0:
		return fmt.Sprintf("user #%d (outside this workspace)", id)
	}
	return "—"
}

// summariseDetails renders details as "key: value" pairs in key order, cut
// to a readable length.
func summariseDetails(d map[string]any) string {
	if len(d) == 0 {
		return ""
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + ": ")
		switch x := d[k].(type) {
		case string:
			b.WriteString(x)
		default:
			j, _ := json.Marshal(x)
			b.Write(j)
		}
	}
	out := b.String()
	if r := []rune(out); len(r) > detailsSummary {
		out = string(r[:detailsSummary-1]) + "…"
	}
	return out
}

// handleAdminAuditCSV is the page's export: the same filters as CSV. Bad
// filters re-render the page with the errors.
func (s *Server) handleAdminAuditCSV(c echo.Context) error {
	q, errs, err := s.parseAuditQuery(c)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		v := views.AuditView{Filter: q.form, Errors: errs, MaxExportText: thousands(auditExportMax)}
		v.EventGroups, v.Events = eventOptions(q.form.Event)
		p := s.page(c, "Audit log")
		p.Wide = true
		return s.render(c, http.StatusUnprocessableEntity, views.AdminAuditPage(p, auditFormErrors(v)))
	}
	return s.streamAuditCSV(c, q.filter)
}

// handleAPIAdminAudit is GET /admin/audit: a page of events as JSON, or
// every matching event as CSV with Accept: text/csv.
func (s *Server) handleAPIAdminAudit(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	q, errs, err := s.parseAuditQuery(c)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return invalidFilter(errs)
	}
	if acceptsCSV(c.Request()) {
		return s.streamAuditCSV(c, q.filter)
	}
	f := q.filter
	f.Limit = auditAPIPageSize + 1
	events, err := s.store.AuditEvents(ctx, t.ID, f)
	if err != nil {
		return err
	}
	var next *string
	if len(events) > auditAPIPageSize {
		events = events[:auditAPIPageSize]
		cur := strconv.FormatInt(events[len(events)-1].ID, 10)
		next = &cur
	}
	out := make([]apiAuditEvent, 0, len(events))
	for _, ev := range events {
		out = append(out, apiAuditEvent{
			ID: ev.ID, Time: ev.CreatedAt.UTC().Format(time.RFC3339), Event: ev.Event, Description: auditEventName(ev.Event),
			ActorID: nullable(ev.ActorUserID), ActorEmail: nullable(ev.ActorEmail),
			SubjectID: nullable(ev.SubjectUserID), SubjectEmail: nullable(ev.SubjectEmail),
			IP: ev.IP, UserAgent: ev.UserAgent, Details: detailsOrEmpty(ev.Details),
		})
	}
	return c.JSON(http.StatusOK, map[string]any{"events": out, "next_cursor": next})
}

type apiAuditEvent struct {
	ID           int64          `json:"id"`
	Time         string         `json:"time"`
	Event        string         `json:"event"`
	Description  string         `json:"description"`
	ActorID      *int64         `json:"actor_id"`
	ActorEmail   *string        `json:"actor_email"`
	SubjectID    *int64         `json:"subject_id"`
	SubjectEmail *string        `json:"subject_email"`
	IP           string         `json:"ip"`
	UserAgent    string         `json:"user_agent"`
	Details      map[string]any `json:"details"`
}

func nullable[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func detailsOrEmpty(d map[string]any) map[string]any {
	if d == nil {
		return map[string]any{}
	}
	return d
}

// invalidFilter is the API's 400 for bad filters, naming each field.
func invalidFilter(errs views.FieldErrors) error {
	fields := make([]string, 0, len(errs))
	for f := range errs {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = f + ": " + errs[f]
	}
	return errorf(http.StatusBadRequest, "invalid_filter", strings.Join(msgs, " "))
}

// acceptsCSV reports whether the Accept header asks for text/csv.
func acceptsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get(echo.HeaderAccept), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == "text/csv" && params["q"] != "0" && params["q"] != "0.0" {
			return true
		}
	}
	return false
}

var auditCSVHeader = []string{"time", "event", "actor_email", "subject_email", "ip", "user_agent", "details"}

// streamAuditCSV writes every event matching f (newest first, at most
// auditExportMax) as CSV, reading auditExportPage rows at a time so memory
// stays flat whatever the size of the log. Each page is its own short
// query: no read transaction is held open while a slow client downloads.
func (s *Server) streamAuditCSV(c echo.Context, f db.AuditFilter) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	f.Limit = auditExportPage
	// The first page is read before anything is sent, so that a failure
	// there is still an ordinary error page.
	events, err := s.store.AuditEvents(ctx, t.ID, f)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-audit-%s.csv"`, t.Slug, s.now().UTC().Format(time.DateOnly)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Export-Limit", strconv.Itoa(auditExportMax))
	h.Set("Trailer", "X-Export-Truncated")
	c.Response().WriteHeader(http.StatusOK)

	w := csv.NewWriter(c.Response())
	w.Write(auditCSVHeader)
	var details bytes.Buffer
	enc := json.NewEncoder(&details)
	enc.SetEscapeHTML(false)
	written, truncated := 0, false
	for len(events) > 0 {
		for _, ev := range events {
			if written == auditExportMax {
				truncated = true
				break
			}
			details.Reset()
			if err := enc.Encode(detailsOrEmpty(ev.Details)); err != nil {
				details.WriteString("{}")
			}
			w.Write([]string{
				ev.CreatedAt.UTC().Format(time.RFC3339),
				csvSafe(ev.Event), csvSafe(ev.ActorEmail), csvSafe(ev.SubjectEmail), csvSafe(ev.IP), csvSafe(ev.UserAgent),
				csvSafe(strings.TrimRight(details.String(), "\n")),
			})
			written++
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return nil // the client went away
		}
		c.Response().Flush()
		if truncated || len(events) < f.Limit {
			break
		}
		f.Before = events[len(events)-1].ID
		if events, err = s.store.AuditEvents(ctx, t.ID, f); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The status is sent: abort the connection so the client sees a
			// failed download rather than a file that looks complete.
			s.logger(c).Error("audit export failed", slog.Int("rows", written), slog.Any("err", err))
			panic(http.ErrAbortHandler)
		}
	}
	h.Set("X-Export-Truncated", strconv.FormatBool(truncated))
	return nil
}

// csvSafe neutralises a cell that a spreadsheet would run as a formula
// (CSV injection): a leading =, +, -, @, tab or carriage return gets a
// single quote in front. Emails, user agents and details come from users.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
