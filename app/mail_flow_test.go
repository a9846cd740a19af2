package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mail/mailtest"
	"github.com/gatehouse/gatehouse/db"
)

// deliver runs a sender over SMTP to srv once and returns what it sent.
func deliver(t *testing.T, env *apptest.Env, srv *mailtest.Server) int {
	t.Helper()
	tr, err := mail.ParseSMTPURL(fmt.Sprintf("smtp://%s:%d?from=%s&tls=none", srv.Host, srv.Port, url.QueryEscape("Gatehouse <no-reply@gatehouse.test>")))
	if err != nil {
		t.Fatalf("ParseSMTPURL: %v", err)
	}
	sent, failed, err := mail.NewSender(env.Store, tr, slog.New(slog.DiscardHandler)).RunOnce(context.Background())
	if err != nil || failed != 0 {
		t.Fatalf("sender: %d sent, %d failed, %v", sent, failed, err)
	}
	return sent
}

// outboxCount counts the queued messages of kind to addr.
func outboxCount(t *testing.T, store *db.Store, kind, to string) int {
	t.Helper()
	msgs, err := store.OutboxMessages(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Kind == kind && m.To == to {
			n++
		}
	}
	return n
}

var inviteLink = regexp.MustCompile(`https?://\S+/t/acme/invite/\S+`)

// An invitation goes from the admin console through the outbox and SMTP to
// the invitee, whose link works once.
func TestInvitationMailFlow(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	ws := env.Workspace("acme", "Acme")
	env.User(ws, "admin@acme.test", "admin", "correct horse battery")
	srv := mailtest.NewServer(t)

	admin := aal2Page(t, env, "acme", "admin@acme.test", "correct horse battery")
	if _, err := env.Store.DB().Exec(`DELETE FROM outbox`); err != nil {
		t.Fatal(err) // the enrollment's notice is not this test's
	}
	res := admin.PostForm("/t/acme/admin/invitations", url.Values{"email": {"bob@example.com"}, "role": {"member"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST invitations = %d, want 303\n%s", res.StatusCode, res.Body)
	}
	// Inviting a member is refused and its email rolled back with it.
	res = admin.PostForm("/t/acme/admin/invitations", url.Values{"email": {"admin@acme.test"}, "role": {"member"}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("inviting a member = %d, want 422", res.StatusCode)
	}
	if n := outboxCount(t, env.Store, mail.KindInvitation, "admin@acme.test"); n != 0 {
		t.Fatalf("refused invitation queued %d messages", n)
	}
	if n := deliver(t, env, srv); n != 1 {
		t.Fatalf("sender sent %d messages, want 1", n)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "bob@example.com" {
		t.Fatalf("server received %+v, want one message to bob@example.com", msgs)
	}
	m := msgs[0]
	if !strings.Contains(m.Header.Get("Subject"), "invited to Acme") {
		t.Errorf("Subject = %q", m.Header.Get("Subject"))
	}
	// The link is taken from the decoded text part: quoted-printable may
	// have wrapped it in the raw message.
	link := inviteLink.FindString(m.Text)
	if link == "" {
		t.Fatalf("no invitation link in the text part:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, `href="`+link+`"`) {
		t.Errorf("HTML part lacks the link %s:\n%s", link, m.HTML)
	}
	u, err := url.Parse(link)
	if err != nil || u.Host != strings.TrimPrefix(env.HTTP.URL, "http://") {
		t.Fatalf("link %q is not on the base URL %s (%v)", link, env.HTTP.URL, err)
	}

	// Opening the link (as a mail scanner would) changes nothing.
	bob := env.Client()
	for range 2 {
		res = bob.Get(u.Path)
		if res.StatusCode != http.StatusOK || res.Doc().Find(`input[name=password]`).Length() != 1 {
			t.Fatalf("GET invitation = %d, want the form\n%s", res.StatusCode, res.Body)
		}
	}
	if invs, err := env.Store.PendingInvitations(context.Background(), ws.ID, 10); err != nil || len(invs) != 1 {
		t.Fatalf("pending invitations after GET = %v, %v; want still one", invs, err)
	}

	res = bob.PostForm(u.Path, url.Values{"password": {"a long new password"}, "confirm_password": {"a long new password"}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/t/acme/account") {
		t.Fatalf("accept invitation = %d to %q, want 303 to /t/acme/account\n%s", res.StatusCode, res.Header.Get("Location"), res.Body)
	}
	res = bob.Get("/t/acme/account")
	if got := res.Doc().Find(`[data-testid=account-email]`).Text(); res.StatusCode != http.StatusOK || got != "bob@example.com" {
		t.Fatalf("new member's account page = %d showing %q, want 200 for bob@example.com", res.StatusCode, got)
	}

	// The link is spent, for anyone.
	for _, c := range []*apptest.Client{bob, env.Client()} {
		res = c.Get(u.Path)
		if res.StatusCode != http.StatusNotFound || !strings.Contains(string(res.Body), "can't be used") {
			t.Errorf("GET spent invitation = %d, want 404 \"can't be used\"", res.StatusCode)
		}
		res = c.PostForm(u.Path, url.Values{"password": {"another password!"}, "confirm_password": {"another password!"}})
		if res.StatusCode != http.StatusNotFound || !strings.Contains(string(res.Body), "can't be used") {
			t.Errorf("POST spent invitation = %d, want 404 \"can't be used\"", res.StatusCode)
		}
	}
	if n := deliver(t, env, srv); n != 0 {
		t.Errorf("accepting queued %d more messages", n)
	}
}

// A password change queues exactly one notice, in its transaction: a change
// that fails queues none.
func TestPasswordChangedMail(t *testing.T) {
	t.Parallel()
	env := apptest.New(t)
	ws := env.Workspace("acme", "Acme")
	env.User(ws, "alice@acme.test", "member", "correct horse battery")
	srv := mailtest.NewServer(t)
	c := env.Client()
	c.Login("acme", "alice@acme.test", "correct horse battery")

	res := c.PostForm("/t/acme/account/password", url.Values{"current_password": {"wrong password here"},
		"new_password": {"a brand new password"}, "confirm_password": {"a brand new password"}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("change with a wrong current password = %d, want 422", res.StatusCode)
	}
	if n := outboxCount(t, env.Store, mail.KindPasswordChanged, "alice@acme.test"); n != 0 {
		t.Fatalf("refused change queued %d messages, want 0", n)
	}

	res = c.PostForm("/t/acme/account/password", url.Values{"current_password": {"correct horse battery"},
		"new_password": {"a brand new password"}, "confirm_password": {"a brand new password"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("change = %d, want 303\n%s", res.StatusCode, res.Body)
	}
	if n := outboxCount(t, env.Store, mail.KindPasswordChanged, "alice@acme.test"); n != 1 {
		t.Fatalf("change queued %d messages, want 1", n)
	}
	if n := deliver(t, env, srv); n != 1 {
		t.Fatalf("sender sent %d, want 1", n)
	}
	m := srv.Messages()[0]
	if m.To[0] != "alice@acme.test" || !strings.Contains(m.Header.Get("Subject"), "password was changed") ||
		!strings.Contains(m.Text, "alice@acme.test") {
		t.Errorf("notice to %v, subject %q, text:\n%s", m.To, m.Header.Get("Subject"), m.Text)
	}
}
