package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
)

// Transport delivers one message. A *PermanentError means retrying is
// pointless.
type Transport interface {
	Send(ctx context.Context, m db.OutboxMessage) error
}

// PermanentError is a delivery failure that retrying will not fix (the
// server rejected the recipient or the message).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Sender delivers the outbox: it claims due messages atomically (so several
// processes never hold the same one), sends each, and records the outcome.
// A failed attempt is retried with exponential backoff; after MaxAttempts,
// or a permanent failure, the message is marked failed with its last error.
type Sender struct {
	Store       *db.Store
	Transport   Transport
	Log         *slog.Logger
	Lease       time.Duration // how long a claim holds; longer than one send
	Batch       int
	MaxAttempts int
	Interval    time.Duration // how often the jobs' mail loop (app.Jobs.Run) polls
}

// NewSender returns a Sender with production settings.
func NewSender(store *db.Store, t Transport, log *slog.Logger) *Sender {
	return &Sender{Store: store, Transport: t, Log: log, Lease: 2 * time.Minute, Batch: 20, MaxAttempts: 12, Interval: 5 * time.Second}
}

// Backoff is the wait before attempt n+1 after n failed attempts: 30 s,
// doubling, at most one hour, with ±20 % jitter so that retries spread.
func Backoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	jitter := time.Duration(rand.Int64N(int64(d)*2/5)) - d/5
	return d + jitter
}

// RunOnce delivers every message due now and returns how many were sent and
// how many attempts failed.
func (s *Sender) RunOnce(ctx context.Context) (sent, failed int, err error) {
	for {
		claim := auth.NewID()
		msgs, err := s.Store.ClaimOutbox(ctx, claim, s.Lease, s.Batch)
		if err != nil {
			return sent, failed, err
		}
		if len(msgs) == 0 {
			return sent, failed, nil
		}
		n, f, err := s.sendBatch(ctx, claim, msgs)
		sent, failed = sent+n, failed+f
		if err != nil {
			return sent, failed, err
		}
	}
}

// sendBatch sends the messages claimed under claim, one at a time. When it
// stops early (a database error, or ctx ending on shutdown), it hands back
// the claim on the messages it never passed to the transport: they go out
// in the next pass of any sender rather than once the lease has run out
// (which, without the release, holds them back for a whole lease after
// every transient error). A message that was passed to the transport keeps
// its claim, since it may have been delivered.
func (s *Sender) sendBatch(ctx context.Context, claim string, msgs []db.OutboxMessage) (sent, failed int, err error) {
	untried := 0 // msgs[untried:] were never passed to the transport
	defer func() {
		if untried >= len(msgs) {
			return
		}
		ids := make([]int64, 0, len(msgs)-untried)
		for _, m := range msgs[untried:] {
			ids = append(ids, m.ID)
		}
		// Also on shutdown, when ctx has ended already.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Lease/2)
		defer cancel()
		if rerr := s.Store.ReleaseOutboxClaim(rctx, claim, ids); rerr != nil {
			s.Log.Error("outbox release", slog.Int("count", len(ids)), slog.Any("err", rerr))
		}
	}()
	for i, m := range msgs {
		untried = i
		if ctx.Err() != nil {
			return sent, failed, ctx.Err()
		}
		// The batch was claimed under one lease but goes out one message
		// at a time, so a slow server can outlast the lease of the last
		// ones, and another sender may claim them meanwhile. Renewing
		// just before sending (and sending for at most half a lease)
		// means nothing is sent outside its lease.
		if ok, err := s.Store.RenewOutboxClaim(ctx, m.ID, claim, s.Lease); err != nil {
			return sent, failed, err
		} else if !ok {
			s.Log.Info("mail claim taken over", slog.Int64("outbox_id", m.ID))
			continue
		}
		untried = i + 1
		sendCtx, cancel := context.WithTimeout(ctx, s.Lease/2)
		serr := s.Transport.Send(sendCtx, m)
		cancel()
		// The outcome is recorded even when ctx ended during the send
		// (shutdown): a delivery left unrecorded would go out again once
		// the lease runs out.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Lease/2)
		defer cancel()
		if serr == nil {
			sent++
			if err := s.Store.MarkOutboxSent(rctx, m.ID, claim); errors.Is(err, db.ErrNotFound) {
				// Only if this send outlived its lease: another sender
				// may deliver it again, with the same Message-ID.
				s.Log.Warn("mail sent after its claim was lost", slog.Int64("outbox_id", m.ID))
				continue
			} else if err != nil {
				return sent, failed, err
			}
			s.Log.Info("mail sent", slog.Int64("outbox_id", m.ID), slog.String("kind", m.Kind), slog.Int64("workspace_id", m.WorkspaceID))
			continue
		}
		failed++
		next := s.Store.Now().Add(Backoff(m.Attempts + 1))
		var perm *PermanentError
		if errors.As(serr, &perm) || m.Attempts+1 >= s.MaxAttempts {
			next = time.Time{}
		}
		if err := s.Store.MarkOutboxRetry(rctx, m.ID, claim, next, serr.Error()); errors.Is(err, db.ErrNotFound) {
			s.Log.Warn("mail attempt failed after its claim was lost", slog.Int64("outbox_id", m.ID))
			continue
		} else if err != nil {
			return sent, failed, err
		}
		s.Log.Warn("mail delivery failed", slog.Int64("outbox_id", m.ID), slog.String("kind", m.Kind),
			slog.Int("attempt", m.Attempts+1), slog.Bool("gave_up", next.IsZero()), slog.String("err", serr.Error()))
	}
	untried = len(msgs)
	return sent, failed, nil
}

// SMTP delivers over SMTP with go-mail.
type SMTP struct {
	Host     string
	Port     int
	Username string
	Password string
	From     string
	TLS      string // "implicit", "starttls" (mandatory), "opportunistic", "none"
	Timeout  time.Duration
}

// ParseSMTPURL reads GATEHOUSE_SMTP_URL:
//
//	smtp://user:pass@host:587?from=Gatehouse%20<no-reply@example.com>   STARTTLS required
//	smtps://user:pass@host:465?from=…                                   TLS from the first byte
//	smtp://host:25?from=…&tls=opportunistic|none                        for a local relay or tests
func ParseSMTPURL(raw string) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_SMTP_URL: %w", err)
	}
	s := &SMTP{Host: u.Hostname(), From: u.Query().Get("from"), Timeout: 30 * time.Second}
	switch u.Scheme {
	case "smtp":
		s.TLS, s.Port = "starttls", 587
	case "smtps":
		s.TLS, s.Port = "implicit", 465
	default:
		return nil, errors.New("GATEHOUSE_SMTP_URL: scheme must be smtp or smtps")
	}
	if t := u.Query().Get("tls"); t != "" {
		if u.Scheme == "smtps" || (t != "opportunistic" && t != "none" && t != "starttls") {
			return nil, errors.New("GATEHOUSE_SMTP_URL: tls= must be starttls, opportunistic or none, with smtp://")
		}
		s.TLS = t
	}
	if p := u.Port(); p != "" {
		if s.Port, err = strconv.Atoi(p); err != nil || s.Port < 1 || s.Port > 65535 {
			return nil, errors.New("GATEHOUSE_SMTP_URL: bad port")
		}
	}
	if s.Host == "" {
		return nil, errors.New("GATEHOUSE_SMTP_URL: host missing")
	}
	// url.Parse reads smtp://::1 as host ":" and port 1.
	if strings.Contains(s.Host, ":") && !strings.HasPrefix(u.Host, "[") {
		return nil, errors.New("GATEHOUSE_SMTP_URL: an IPv6 host goes in brackets, smtp://[::1]:25")
	}
	if s.From == "" {
		return nil, errors.New("GATEHOUSE_SMTP_URL: from= (the sender address) missing")
	}
	// Checked here, at start-up, rather than failing every message later.
	if _, err := netmail.ParseAddress(s.From); err != nil {
		return nil, fmt.Errorf("GATEHOUSE_SMTP_URL: from=%q is not an email address: %w", s.From, err)
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
		// A control character is a typo, and a NUL would split SASL PLAIN's
		// "authzid\x00user\x00password" differently than meant.
		if strings.ContainsFunc(s.Username+s.Password, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return nil, errors.New("GATEHOUSE_SMTP_URL: control character in the user name or password")
		}
	}
	return s, nil
}

// Send delivers m. The Message-ID is derived from the outbox row, so a
// message retried after an uncertain failure carries the same id and
// receiving systems can drop the duplicate.
func (s *SMTP) Send(ctx context.Context, m db.OutboxMessage) error {
	opts := []gomail.Option{gomail.WithPort(s.Port), gomail.WithTimeout(s.Timeout)}
	switch s.TLS {
	case "implicit":
		opts = append(opts, gomail.WithSSL())
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "opportunistic":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.Username != "" {
		auth := gomail.SMTPAuthPlain
		if s.TLS == "none" {
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(s.Username), gomail.WithPassword(s.Password))
	}
	c, err := gomail.NewClient(s.Host, opts...)
	if err != nil {
		return err
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.From); err != nil {
		return &PermanentError{fmt.Errorf("from address: %w", err)}
	}
	if err := msg.To(m.To); err != nil {
		return &PermanentError{fmt.Errorf("recipient address: %w", err)}
	}
	msg.Subject(m.Subject)
	domain := "gatehouse.invalid"
	if at := strings.LastIndexByte(s.From, '@'); at >= 0 {
		domain = strings.TrimRight(s.From[at+1:], "> ")
	}
	msg.SetMessageIDWithValue(fmt.Sprintf("gatehouse.%d.%d@%s", m.ID, m.CreatedAt.Unix(), domain))
	msg.SetDateWithValue(m.CreatedAt)
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		if msg.IsDelivered() {
			// The server answered 250 to DATA, so it has the message; only
			// RSET or QUIT afterwards failed. Retrying would deliver twice.
			return nil
		}
		// Only a 5xx reply is permanent. go-mail's IsTemp is false for a
		// failure with no SMTP reply at all (a connection lost during RCPT),
		// which must be retried, so look at the reply code instead.
		var se *gomail.SendError
		if errors.As(err, &se) && (se.Reason == gomail.ErrSMTPRcptTo || se.Reason == gomail.ErrSMTPDataClose) &&
			se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
			return &PermanentError{err}
		}
		return err
	}
	return nil
}
