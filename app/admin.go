package app

import (
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	gmail "github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
	"github.com/gatehouse/gatehouse/views"
)

const (
	membersPageSize = 50
	invitationTTL   = 7 * 24 * time.Hour
)

// handleAdminMembers lists the workspace's members with their status and
// deadline under the policy: filtered by ?status=, searchable and paged.
func (s *Server) handleAdminMembers(c echo.Context) error {
	p := s.page(c, "Members")
	p.Notice = notices[c.QueryParam("notice")]
	if p.Notice == "" {
		p.Notice = adminNotices[c.QueryParam("notice")]
	}
	return s.renderMembers(c, http.StatusOK, p, views.InviteForm{})
}

func (s *Server) renderMembers(c echo.Context, code int, p views.Page, inv views.InviteForm) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	q := truncateRunes(strings.TrimSpace(c.QueryParam("q")), maxEmailLength)
	after := truncateRunes(c.QueryParam("after"), maxEmailLength)
	status := c.QueryParam("status")
	if status != "" && views.StatusLabel(status) == status {
		status = "" // unknown filter: show everyone rather than fail
	}
	pol, err := s.store.Policy(ctx, t.ID)
	if err != nil {
		return err
	}
	now := s.now()
	members, err := s.store.MembersMFA(ctx, t.ID, db.MemberMFAFilter{Status: status, Policy: pol, Now: now, Query: q, After: after, Limit: membersPageSize + 1})
	if err != nil {
		return err
	}
	total, err := s.store.CountMembers(ctx, t.ID)
	if err != nil {
		return err
	}
	invs, err := s.store.PendingInvitations(ctx, t.ID, 20)
	if err != nil {
		return err
	}
	v := views.MembersListView{MembersView: views.MembersView{Total: total, Query: q, FirstPage: after == "", Invite: inv}, Status: status}
	if len(members) > membersPageSize {
		members = members[:membersPageSize]
		v.NextCursor = db.EmailKey(members[len(members)-1].Email)
	}
	for _, m := range members {
		row := views.MemberRow{ID: m.ID, Email: m.Email, Name: m.Name, Role: m.Role, CreatedAt: m.CreatedAt}
		v.Members = append(v.Members, row)
		v.Rows = append(v.Rows, views.MemberListRow{MemberRow: row, Status: m.Status(pol, now), Deadline: m.MFADeadline})
	}
	for _, i := range invs {
		v.Invitations = append(v.Invitations, views.InvitationRow{ID: i.ID, Email: i.Email, Role: i.Role, ExpiresAt: i.ExpiresAt})
	}
	p.Wide = true
	return s.render(c, code, views.AdminMembersPage(p, v))
}

// ValidEmail checks an address typed into a form: one plain address, no
// display name, at most 254 characters. net/mail lets any non-ASCII rune
// through, so white space, control and format characters (U+0085 and
// U+2028 end a line, U+202E reverses text in an admin's list) are refused
// here.
func ValidEmail(s string) bool {
	if s == "" || len(s) > maxEmailLength || strings.ContainsAny(s, " <>\"\r\n") ||
		strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s[strings.LastIndexByte(s, '@'):], ".")
}

// handleInvitationCreate invites someone by email. The invitation and its
// email are written in one transaction; the link is single use, expires in
// 7 days and only its hash is stored.
func (s *Server) handleInvitationCreate(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	a := authFrom(c)
	form := views.InviteForm{Email: strings.TrimSpace(c.FormValue("email")), Role: c.FormValue("role"), Errors: views.FieldErrors{}}
	if !ValidEmail(form.Email) {
		form.Errors["email"] = "Enter an email address like name@example.com."
	}
	if !db.ValidRole(form.Role) {
		form.Errors["role"] = "Choose member, admin or owner."
	} else if form.Role == db.RoleOwner && a.User.Role != db.RoleOwner {
		form.Errors["role"] = "Only an owner can invite another owner."
	}
	if len(form.Errors) > 0 {
		form.Email = truncateRunes(form.Email, maxEmailLength)
		return s.renderMembers(c, http.StatusUnprocessableEntity, s.page(c, "Members"), form)
	}
	_, err := s.invite(c, form.Email, form.Role)
	if errors.Is(err, db.ErrConflict) {
		form.Errors["email"] = "This address is already a member."
		return s.renderMembers(c, http.StatusUnprocessableEntity, s.page(c, "Members"), form)
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, t.Base+"/admin/members?notice=invitation_sent")
}

// invite creates an invitation to email with role, and queues its email,
// in one transaction; the link is single use, expires in 7 days and only
// its hash is stored. ErrConflict: the address is already a member.
func (s *Server) invite(c echo.Context, email, role string) (db.Invitation, error) {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	token := auth.NewToken()
	expires := s.now().Add(invitationTTL)
	msg, err := gmail.Compose(gmail.KindInvitation, email, map[string]any{
		"Workspace": t.Name, "Inviter": a.User.Email, "Role": role,
		"Link": s.absoluteURL(t, "/invite/"+token), "Expires": gmail.When(expires)})
	if err != nil {
		return db.Invitation{}, err
	}
	return s.store.CreateInvitation(c.Request().Context(), t.ID, a.User.ID, email, role, s.keys.HashToken("invitation", token), expires, meta(c), msg)
}

// reinvite voids an open invitation's link and sends a new one (new token,
// new expiry) to the same address with the same role. ErrNotFound or
// ErrConflict: it was accepted or revoked meanwhile.
func (s *Server) reinvite(c echo.Context, inv db.Invitation) (db.Invitation, error) {
	t := tenants.FromContext(c.Request().Context())
	a := authFrom(c)
	token := auth.NewToken()
	expires := s.now().Add(invitationTTL)
	msg, err := gmail.Compose(gmail.KindInvitation, inv.Email, map[string]any{
		"Workspace": t.Name, "Inviter": a.User.Email, "Role": inv.Role,
		"Link": s.absoluteURL(t, "/invite/"+token), "Expires": gmail.When(expires)})
	if err != nil {
		return db.Invitation{}, err
	}
	return s.store.ResendInvitation(c.Request().Context(), t.ID, a.User.ID, inv.ID, s.keys.HashToken("invitation", token), expires, meta(c), msg)
}

// absoluteURL is a link for emails: always on GATEHOUSE_BASE_URL.
func (s *Server) absoluteURL(t *tenants.Tenant, path string) string {
	return workspaceURL(s.cfg.BaseURL, t.Slug, path)
}
