package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

// Support cases (DESIGN "Support console"): a staff member opens a reset
// case for a member who lost every factor, recording how identity was
// verified; a second, different staff member approves (or anyone
// rejects); the reset is scheduled after a delay during which the member,
// emailed at once at their address on file, can cancel it by a link; then
// the jobs execute it. Every action needs a fresh second factor (step-up),
// is rate limited per staff member and is audited in both trails.

const (
	// SupportResetDelay is the default (and least) delay between approval
	// and execution; only a lead can set a longer one.
	SupportResetDelay = 24 * time.Hour
	// SupportResetMaxDelay bounds the delay a lead can set.
	SupportResetMaxDelay = 30 * 24 * time.Hour
	// CaseApprovalWindow is how long a case waits for approval.
	CaseApprovalWindow = 7 * 24 * time.Hour

	supportActionLimit  = 30 // case actions per staff member and window
	supportActionWindow = time.Hour
	caseCancelPurpose   = "case_cancel"
	maxEvidenceLength   = 200
	maxNotesLength      = 2000
	maxReasonLength     = 500
)

var (
	errInvalidVerification = errorf(http.StatusBadRequest, "invalid_verification",
		"Record how identity was verified: a method from the list, an evidence reference, and notes.")
	errCaseOpen      = errorf(http.StatusConflict, "case_open", "This member already has an open reset case.")
	errCaseState     = errorf(http.StatusConflict, "case_closed", "This case can no longer be changed in that way.")
	errCaseExpired   = errorf(http.StatusConflict, "case_expired", "This case was not approved within 7 days and has expired. Open a new one.")
	errSameStaff     = errorf(http.StatusForbidden, "same_staff", "A case must be approved by a different staff member than the one who opened it.")
	errOwnAccount    = errorf(http.StatusForbidden, "own_account", "You cannot open or approve a case for your own account.")
	errInvalidDelay  = errorf(http.StatusBadRequest, "invalid_delay", fmt.Sprintf("The delay is a whole number of hours from %d to %d.", int(SupportResetDelay.Hours()), int(SupportResetMaxDelay.Hours())))
	errLeadOnly      = errorf(http.StatusForbidden, "lead_only", "Only a lead can lengthen a reset's delay.")
	errInvalidReason = errorf(http.StatusBadRequest, "invalid_reason", "Give a reason for rejecting the case.")
)

// caseError maps the store's case errors to the API's.
func caseError(err error) error {
	switch {
	case errors.Is(err, db.ErrCaseOpen):
		return errCaseOpen
	case errors.Is(err, db.ErrCaseState):
		return errCaseState
	case errors.Is(err, db.ErrCaseExpired):
		return errCaseExpired
	case errors.Is(err, db.ErrSameStaff):
		return errSameStaff
	case errors.Is(err, db.ErrOwnAccount):
		return errOwnAccount
	}
	return err
}

// supportThrottle rate limits a staff member's case actions.
func (s *Server) supportThrottle(c echo.Context) error {
	ctx := c.Request().Context()
	key := "support:action:" + strconv.FormatInt(authFrom(c).User.ID, 10)
	_, err := s.store.ThrottleTake(ctx, key, supportActionWindow, supportActionLimit)
	return s.throttled(err)
}

// validVerification checks and trims what the opener recorded.
func validVerification(v db.Verification) (db.Verification, bool) {
	v.Method, v.EvidenceRef, v.Notes = strings.TrimSpace(v.Method), strings.TrimSpace(v.EvidenceRef), strings.TrimSpace(v.Notes)
	_, known := db.VerificationMethods[v.Method]
	ok := known && v.EvidenceRef != "" && v.Notes != "" &&
		len([]rune(v.EvidenceRef)) <= maxEvidenceLength && len([]rune(v.Notes)) <= maxNotesLength
	return v, ok
}

// parseDelay reads the approval's delay in hours ("" is the default) and
// checks who may set it.
func parseDelay(raw string, lead bool) (time.Duration, error) {
	if raw == "" {
		return SupportResetDelay, nil
	}
	h, err := strconv.Atoi(raw)
	d := time.Duration(h) * time.Hour
	if err != nil || d < SupportResetDelay || d > SupportResetMaxDelay {
		return 0, errInvalidDelay
	}
	if d > SupportResetDelay && !lead {
		return 0, errLeadOnly
	}
	return d, nil
}

func caseIDParam(c echo.Context) (int64, error) {
	id, ok := memberIDParam(c)
	if !ok {
		return 0, errNotFound
	}
	return id, nil
}

// openCase opens a case as the signed-in staff member.
func (s *Server) openCase(c echo.Context, workspace string, memberID int64, v db.Verification) (db.Case, error) {
	v, ok := validVerification(v)
	if !ok {
		return db.Case{}, errInvalidVerification
	}
	if err := s.supportThrottle(c); err != nil {
		return db.Case{}, err
	}
	cs, err := s.store.OpenCase(c.Request().Context(), authFrom(c).User, workspace, memberID, v, s.now().Add(CaseApprovalWindow), meta(c))
	return cs, caseError(err)
}

// approveCase approves a case as the signed-in staff member and queues the
// member's email with the cancel link.
func (s *Server) approveCase(c echo.Context, id int64, delayRaw string) (db.Case, error) {
	a := authFrom(c)
	delay, err := parseDelay(delayRaw, a.User.IsAdmin())
	if err != nil {
		return db.Case{}, err
	}
	if err := s.supportThrottle(c); err != nil {
		return db.Case{}, err
	}
	token := auth.NewToken()
	compose := func(cs db.Case) (db.OutboxMessage, error) {
		return mail.Compose(mail.KindSupportResetScheduled, cs.MemberEmail, map[string]any{
			"Workspace": cs.WorkspaceName, "Email": cs.MemberEmail, "ExecutesAt": mail.When(cs.ExecutesAt),
			"Link": workspaceURL(s.cfg.BaseURL, cs.WorkspaceSlug, "/reset/cancel/"+token)})
	}
	cs, err := s.store.ApproveCase(c.Request().Context(), id, a.User, delay, s.keys.HashToken(caseCancelPurpose, token), compose, meta(c))
	return cs, caseError(err)
}

// rejectCase closes a case awaiting approval.
func (s *Server) rejectCase(c echo.Context, id int64, reason string) (db.Case, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len([]rune(reason)) > maxReasonLength {
		return db.Case{}, errInvalidReason
	}
	if err := s.supportThrottle(c); err != nil {
		return db.Case{}, err
	}
	cs, err := s.store.RejectCase(c.Request().Context(), id, authFrom(c).User, reason, meta(c))
	return cs, caseError(err)
}

// workspaceURL is an absolute link into a workspace, for emails.
func workspaceURL(base *url.URL, slug, path string) string {
	return strings.TrimRight(base.String(), "/") + "/t/" + slug + path
}

// Pages.

func (s *Server) caseView(c echo.Context, cs db.Case) (views.CaseView, error) {
	a := authFrom(c)
	timeline, err := s.store.CaseTimeline(c.Request().Context(), cs.ID)
	if err != nil {
		return views.CaseView{}, err
	}
	v := views.CaseView{
		ID: cs.ID, Status: cs.Status, Workspace: cs.WorkspaceSlug, WorkspaceName: cs.WorkspaceName, MemberEmail: cs.MemberEmail,
		Method: db.VerificationMethods[cs.Verification.Method], EvidenceRef: cs.Verification.EvidenceRef, Notes: cs.Verification.Notes,
		OpenedBy: cs.OpenerEmail, ApprovedBy: cs.ApproverEmail, CreatedAt: cs.CreatedAt, ApproveBy: cs.ApproveBy,
		ExecutesAt: cs.ExecutesAt, Reason: cs.Reason, Lead: a.User.IsAdmin(), DefaultDelay: int(SupportResetDelay.Hours()),
		MaxDelay:   int(SupportResetMaxDelay.Hours()),
		CanApprove: cs.Status == db.CaseAwaitingApproval && cs.OpenedBy != a.User.ID && db.EmailKey(cs.MemberEmail) != db.EmailKey(a.User.Email),
		CanReject:  cs.Status == db.CaseAwaitingApproval,
	}
	for _, e := range timeline {
		v.Timeline = append(v.Timeline, views.CaseEventRow{At: e.At, Actor: e.Actor, Event: e.Event})
	}
	return v, nil
}

// handleSupportCases lists the open cases and the latest closed ones.
func (s *Server) handleSupportCases(c echo.Context) error {
	ctx := c.Request().Context()
	open, err := s.store.SupportCases(ctx, true, 200)
	if err != nil {
		return err
	}
	closed, err := s.store.SupportCases(ctx, false, 50)
	if err != nil {
		return err
	}
	row := func(cs db.Case) views.CaseRow {
		return views.CaseRow{ID: cs.ID, Status: cs.Status, Workspace: cs.WorkspaceSlug, MemberEmail: cs.MemberEmail,
			OpenedBy: cs.OpenerEmail, CreatedAt: cs.CreatedAt, ExecutesAt: cs.ExecutesAt}
	}
	var v views.CasesView
	for _, cs := range open {
		v.Open = append(v.Open, row(cs))
	}
	for _, cs := range closed {
		v.Closed = append(v.Closed, row(cs))
	}
	p := s.page(c, "Reset cases")
	p.Wide = true
	p.Notice = caseNotices[c.QueryParam("notice")]
	return s.render(c, http.StatusOK, views.CasesPage(p, v))
}

var caseNotices = map[string]string{
	"opened":   "The case is open. Another staff member must approve it.",
	"approved": "The reset is scheduled. The member was emailed a link to cancel it.",
	"rejected": "The case was rejected.",
}

// handleSupportCaseNew is the form to open a case for a member.
func (s *Server) handleSupportCaseNew(c echo.Context) error {
	v := views.CaseFormView{Workspace: c.QueryParam("workspace"), MemberID: c.QueryParam("member"), Methods: caseMethods()}
	return s.renderCaseForm(c, http.StatusOK, v)
}

func caseMethods() []views.Option {
	var out []views.Option
	for _, k := range []string{"video_id_document", "admin_attestation", "signed_request", "callback_on_record"} {
		out = append(out, views.Option{Value: k, Label: db.VerificationMethods[k]})
	}
	return out
}

func (s *Server) renderCaseForm(c echo.Context, status int, v views.CaseFormView) error {
	ctx := c.Request().Context()
	id, _ := strconv.ParseInt(v.MemberID, 10, 64)
	if ws, err := s.store.WorkspaceBySlug(ctx, v.Workspace); err == nil {
		if m, err := s.store.UserByID(ctx, ws.ID, id); err == nil {
			v.MemberEmail, v.WorkspaceName = m.Email, ws.Name
		}
	}
	if v.MemberEmail == "" && v.Error == "" {
		return errNotFound
	}
	return s.render(c, status, views.CaseFormPage(s.page(c, "Open a reset case"), v))
}

// handleSupportCaseOpen opens a case from the form.
func (s *Server) handleSupportCaseOpen(c echo.Context) error {
	t := tenants.FromContext(c.Request().Context())
	v := views.CaseFormView{Workspace: c.FormValue("workspace"), MemberID: c.FormValue("member"), Methods: caseMethods(),
		Method: c.FormValue("method"), EvidenceRef: c.FormValue("evidence_ref"), Notes: c.FormValue("notes")}
	id, err := strconv.ParseInt(v.MemberID, 10, 64)
	if err != nil || id <= 0 {
		return errNotFound
	}
	cs, err := s.openCase(c, v.Workspace, id, db.Verification{Method: v.Method, EvidenceRef: v.EvidenceRef, Notes: v.Notes})
	if e, status, ok := formError(c, err); ok && e.Status != http.StatusNotFound {
		v.Error = e.Message
		return s.renderCaseForm(c, status, v)
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/cases/"+strconv.FormatInt(cs.ID, 10)+"?notice=opened")
}

// handleSupportCase shows a case, its timeline and what can be done.
func (s *Server) handleSupportCase(c echo.Context) error {
	id, err := caseIDParam(c)
	if err != nil {
		return err
	}
	cs, err := s.store.SupportCase(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.renderCase(c, http.StatusOK, cs, caseNotices[c.QueryParam("notice")], "")
}

func (s *Server) renderCase(c echo.Context, status int, cs db.Case, notice, errMsg string) error {
	v, err := s.caseView(c, cs)
	if err != nil {
		return err
	}
	v.Error = errMsg
	p := s.page(c, fmt.Sprintf("Reset case %d", cs.ID))
	p.Notice = notice
	return s.render(c, status, views.CasePage(p, v))
}

// caseAction runs approve or reject from the case page (the route has
// checked the staff member's fresh second factor).
func (s *Server) caseAction(do func(c echo.Context, id int64) (db.Case, error), notice string) echo.HandlerFunc {
	return func(c echo.Context) error {
		t := tenants.FromContext(c.Request().Context())
		id, err := caseIDParam(c)
		if err != nil {
			return err
		}
		cs, err := s.store.SupportCase(c.Request().Context(), id)
		if err != nil {
			return err
		}
		_, err = do(c, id)
		if e, status, ok := formError(c, err); ok {
			if errors.Is(err, errCaseExpired) {
				cs, _ = s.store.SupportCase(c.Request().Context(), id)
			}
			return s.renderCase(c, status, cs, "", e.Message)
		} else if err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, t.Base+"/cases/"+strconv.FormatInt(id, 10)+"?notice="+notice)
	}
}

func (s *Server) handleSupportCaseApprove(c echo.Context) error {
	return s.caseAction(func(c echo.Context, id int64) (db.Case, error) {
		return s.approveCase(c, id, strings.TrimSpace(c.FormValue("delay_hours")))
	}, "approved")(c)
}

func (s *Server) handleSupportCaseReject(c echo.Context) error {
	return s.caseAction(func(c echo.Context, id int64) (db.Case, error) {
		return s.rejectCase(c, id, c.FormValue("reason"))
	}, "rejected")(c)
}

// The support API.

type apiCaseRequest struct {
	Workspace    string `json:"workspace"`
	MemberID     int64  `json:"member_id"`
	Verification struct {
		Method      string `json:"method"`
		EvidenceRef string `json:"evidence_ref"`
		Notes       string `json:"notes"`
	} `json:"verification"`
}

func (s *Server) handleAPISupportCaseOpen(c echo.Context) error {
	var req apiCaseRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	cs, err := s.openCase(c, req.Workspace, req.MemberID, db.Verification{Method: req.Verification.Method,
		EvidenceRef: req.Verification.EvidenceRef, Notes: req.Verification.Notes})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"id": cs.ID, "status": cs.Status})
}

type apiApproveRequest struct {
	DelayHours *int `json:"delay_hours"`
}

// apiCaseChange reads a case change: the case id (404 for none), the JSON
// body into req (optional when empty); the route has checked the caller's
// step-up.
func (s *Server) apiCaseChange(c echo.Context, req any, bodyOptional bool) (int64, error) {
	id, err := caseIDParam(c)
	if err != nil {
		return 0, err
	}
	if !bodyOptional || c.Request().ContentLength != 0 {
		if err := decodeJSON(c, req); err != nil {
			return 0, err
		}
	}
	if _, err := s.store.SupportCase(c.Request().Context(), id); err != nil {
		return 0, err
	}
	return id, nil
}

func (s *Server) handleAPISupportCaseApprove(c echo.Context) error {
	var req apiApproveRequest
	id, err := s.apiCaseChange(c, &req, true)
	if err != nil {
		return err
	}
	raw := ""
	if req.DelayHours != nil {
		raw = strconv.Itoa(*req.DelayHours)
	}
	cs, err := s.approveCase(c, id, raw)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"status": cs.Status, "executes_at": rfc3339(cs.ExecutesAt)})
}

type apiRejectRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) handleAPISupportCaseReject(c echo.Context) error {
	var req apiRejectRequest
	id, err := s.apiCaseChange(c, &req, false)
	if err != nil {
		return err
	}
	cs, err := s.rejectCase(c, id, req.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"status": cs.Status})
}

func (s *Server) handleAPISupportCase(c echo.Context) error {
	id, err := caseIDParam(c)
	if err != nil {
		return err
	}
	cs, err := s.store.SupportCase(c.Request().Context(), id)
	if err != nil {
		return err
	}
	timeline, err := s.store.CaseTimeline(c.Request().Context(), id)
	if err != nil {
		return err
	}
	events := make([]map[string]any, 0, len(timeline))
	for _, e := range timeline {
		events = append(events, map[string]any{"at": rfc3339(e.At), "actor": e.Actor, "event": e.Event})
	}
	out := map[string]any{"id": cs.ID, "status": cs.Status, "workspace": cs.WorkspaceSlug, "member_id": cs.UserID,
		"verification": map[string]any{"method": cs.Verification.Method, "evidence_ref": cs.Verification.EvidenceRef, "notes": cs.Verification.Notes},
		"timeline":     events, "executes_at": nil}
	if !cs.ExecutesAt.IsZero() {
		out["executes_at"] = rfc3339(cs.ExecutesAt)
	}
	return c.JSON(http.StatusOK, out)
}

// The member's cancel link: /t/{slug}/reset/cancel/{token}, a page that
// changes nothing until its button is pressed. A wrong, used or stale link
// gets the same answer as any other.

func (s *Server) handleResetCancelShow(c echo.Context) error {
	p := s.page(c, "Cancel the reset")
	return s.render(c, http.StatusOK, views.ResetCancelPage(p, views.ResetCancelView{Token: c.Param("token")}))
}

func (s *Server) handleResetCancel(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	p := s.page(c, "Cancel the reset")
	token := c.Param("token")
	err := s.cancelReset(ctx, t, token, meta(c))
	if errors.Is(err, db.ErrNotFound) {
		return s.render(c, http.StatusBadRequest, views.ResetCancelPage(p, views.ResetCancelView{
			Error: "This link can't be used: the reset may have been cancelled or carried out already, or the link is not complete."}))
	} else if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.ResetCancelPage(p, views.ResetCancelView{Done: true}))
}

// RunSupportCases expires the cases nobody approved in time and carries out
// the scheduled resets whose delay has passed, emailing each member.
func (j *Jobs) RunSupportCases(ctx context.Context) (executed, expired int, err error) {
	executed, expired, err = j.Store.RunSupportCases(ctx, func(cs db.Case) (db.OutboxMessage, error) {
		if j.BaseURL == nil {
			return db.OutboxMessage{}, errors.New("support case: no base URL for the link")
		}
		return mail.Compose(mail.KindSupportResetDone, cs.MemberEmail, map[string]any{
			"Workspace": cs.WorkspaceName, "Email": cs.MemberEmail, "When": mail.When(j.Store.Now()),
			"Link": workspaceURL(j.BaseURL, cs.WorkspaceSlug, "/account/mfa")})
	})
	if executed > 0 || expired > 0 {
		j.Log.Info("support cases", slog.Int("executed", executed), slog.Int("expired", expired))
	}
	return executed, expired, err
}
