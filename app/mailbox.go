package app

import (
	"net/http"
	"regexp"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/views"
)

// The dev mailbox shows every queued email, so that a newcomer can follow an
// invitation link without a mail server. Its routes exist only in dev mode.

func mailView(m db.OutboxMessage) views.Mail {
	return views.Mail{ID: m.ID, To: m.To, Subject: m.Subject, Text: m.Text, CreatedAt: m.CreatedAt,
		SentAt: m.SentAt, FailedAt: m.FailedAt, Attempts: m.Attempts, LastError: m.LastError}
}

func (s *Server) handleMailbox(c echo.Context) error {
	msgs, err := s.store.OutboxMessages(c.Request().Context(), 200)
	if err != nil {
		return err
	}
	out := make([]views.Mail, len(msgs))
	for i, m := range msgs {
		out[i] = mailView(m)
	}
	texts, err := s.devTexts(c)
	if err != nil {
		return err
	}
	p := s.page(c, "Dev mailbox")
	p.Wide = true
	return s.render(c, http.StatusOK, views.MailboxPage(p, out, texts))
}

// devTexts opens the newest texts of the SMS outbox: their bodies are
// sealed under the master key, and only the dev mailbox (dev mode) shows
// them; a body that cannot be opened (a retired key) says so.
func (s *Server) devTexts(c echo.Context) ([]views.Mail, error) {
	if !s.cfg.Dev {
		return nil, errNotFound
	}
	msgs, err := s.store.SMSMessages(c.Request().Context(), 200)
	if err != nil {
		return nil, err
	}
	out := make([]views.Mail, len(msgs))
	for i, m := range msgs {
		body, err := s.openSMS(m)
		if err != nil {
			body = "(cannot be opened: " + err.Error() + ")"
		}
		out[i] = views.Mail{ID: m.ID, To: m.To, Text: body, CreatedAt: m.CreatedAt, SentAt: m.SentAt, FailedAt: m.FailedAt,
			Attempts: m.Attempts, LastError: m.LastError}
	}
	return out, nil
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

func (s *Server) handleMailboxMessage(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return errNotFound
	}
	m, err := s.store.OutboxMessage(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.MailboxMessagePage(s.page(c, m.Subject), mailView(m), linkRE.FindAllString(m.Text, -1)))
}
