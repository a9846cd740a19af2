package mail_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/app/mail/mailtest"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

const from = "Acme MFA <no-reply@acme.example>"

var ctx = context.Background()

// newSender builds a Sender with production settings over SMTP to srv.
func newSender(t *testing.T, store *db.Store, srv *mailtest.Server, user *url.Userinfo) *mail.Sender {
	t.Helper()
	tr, err := mail.ParseSMTPURL(srv.URL(from, user))
	if err != nil {
		t.Fatalf("ParseSMTPURL: %v", err)
	}
	tr.Timeout = 5 * time.Second
	return mail.NewSender(store, tr, slog.New(slog.DiscardHandler))
}

// enqueue queues an invitation to each address and returns the rows in
// order.
func enqueue(t *testing.T, store *db.Store, to ...string) []db.OutboxMessage {
	t.Helper()
	for _, addr := range to {
		msg, err := mail.Compose(mail.KindInvitation, addr, map[string]any{
			"Workspace": "Acme", "Inviter": "admin@acme.example", "Role": "member",
			"Link": "https://mfa.acme.example/t/acme/invite/" + strings.Repeat("x", 60), "Expires": "Mon 1 Jan 2035 at 10:00 UTC"})
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if err := store.Enqueue(ctx, 0, msg); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	all, err := store.OutboxMessages(ctx, len(to))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]db.OutboxMessage, len(all))
	for i, m := range all {
		out[len(all)-1-i] = m
	}
	return out
}

func row(t *testing.T, store *db.Store, id int64) db.OutboxMessage {
	t.Helper()
	m, err := store.OutboxMessage(ctx, id)
	if err != nil {
		t.Fatalf("OutboxMessage(%d): %v", id, err)
	}
	return m
}

func runOnce(t *testing.T, s *mail.Sender) (sent, failed int) {
	t.Helper()
	sent, failed, err := s.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return sent, failed
}

func messageID(m db.OutboxMessage) string {
	return fmt.Sprintf("gatehouse.%d.%d@acme.example", m.ID, m.CreatedAt.Unix())
}

func TestSendOK(t *testing.T) {
	store, clock := dbtest.New(t)
	srv := mailtest.NewServer(t)
	s := newSender(t, store, srv, nil)
	m := enqueue(t, store, "bob@example.com")[0]
	clock.Advance(time.Minute)

	if sent, failed := runOnce(t, s); sent != 1 || failed != 0 {
		t.Fatalf("RunOnce = %d sent, %d failed, want 1, 0", sent, failed)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "no-reply@acme.example" || len(got.To) != 1 || got.To[0] != "bob@example.com" {
		t.Errorf("envelope = %q -> %q, want no-reply@acme.example -> [bob@example.com]", got.From, got.To)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(got.Header.Get("Subject"))
	for name, want := range map[string]string{"From": from, "To": "bob@example.com", "Subject": "You're invited to Acme"} {
		v, _ := dec.DecodeHeader(got.Header.Get(name))
		if name == "Subject" {
			v = subject
		}
		if !strings.Contains(strings.ReplaceAll(v, `"`, ""), want) {
			t.Errorf("header %s = %q, want %q", name, v, want)
		}
	}
	if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type = %q, want multipart/alternative", ct)
	}
	// A stable id derived from the row lets receivers drop a duplicate
	// that an uncertain failure caused.
	if got.MessageID != messageID(m) {
		t.Errorf("Message-ID = %q, want %q", got.MessageID, messageID(m))
	}
	if v := got.Header.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted = %q, want auto-generated", v)
	}
	if d, err := got.Header.Date(); err != nil || !d.Equal(m.CreatedAt) {
		t.Errorf("Date = %v (%v), want the row's creation %v", d, err, m.CreatedAt)
	}
	if txt := crlf(got.Text); txt != m.Text {
		t.Errorf("text part = %q, want %q", txt, m.Text)
	}
	if html := crlf(got.HTML); html != m.HTML {
		t.Errorf("html part = %q, want %q", html, m.HTML)
	}

	r := row(t, store, m.ID)
	if !r.SentAt.Equal(clock.Now()) || r.Attempts != 1 || r.LastError != "" || !r.FailedAt.IsZero() {
		t.Errorf("row after delivery: sent_at %v attempts %d last_error %q failed_at %v; want sent now, 1, empty, zero",
			r.SentAt, r.Attempts, r.LastError, r.FailedAt)
	}
	clock.Advance(24 * time.Hour)
	if sent, failed := runOnce(t, s); sent+failed != 0 {
		t.Errorf("second RunOnce = %d sent, %d failed, want nothing", sent, failed)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("server received %d messages, want 1", n)
	}
}

func crlf(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// A server that fails several times and then recovers: the message is
// retried after each backoff, never before, and delivered once.
func TestTemporaryFailureRetried(t *testing.T) {
	store, clock := dbtest.New(t)
	srv := mailtest.NewServer(t)
	s := newSender(t, store, srv, nil)
	m := enqueue(t, store, "bob@example.com")[0]
	srv.FailNext(3)

	wantWait := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute}
	for attempt := 1; attempt <= 3; attempt++ {
		if sent, failed := runOnce(t, s); sent != 0 || failed != 1 {
			t.Fatalf("attempt %d: RunOnce = %d sent, %d failed, want 0, 1", attempt, sent, failed)
		}
		r := row(t, store, m.ID)
		wait := r.NextAttemptAt.Sub(clock.Now())
		if r.Attempts != attempt || !r.FailedAt.IsZero() || !strings.Contains(r.LastError, "451") {
			t.Fatalf("attempt %d: row attempts %d failed_at %v last_error %q", attempt, r.Attempts, r.FailedAt, r.LastError)
		}
		if lo, hi := wantWait[attempt-1]*8/10-time.Second, wantWait[attempt-1]*12/10; wait < lo || wait > hi {
			t.Fatalf("attempt %d: next attempt in %v, want %v ±20%%", attempt, wait, wantWait[attempt-1])
		}
		// Not before next_attempt_at.
		clock.Set(r.NextAttemptAt.Add(-time.Second))
		if sent, failed := runOnce(t, s); sent+failed != 0 {
			t.Fatalf("attempt %d: RunOnce a second early = %d sent, %d failed, want nothing", attempt, sent, failed)
		}
		if n := srv.Attempts(); n != attempt {
			t.Fatalf("attempt %d: server saw %d transmissions", attempt, n)
		}
		clock.Set(r.NextAttemptAt)
	}
	if sent, failed := runOnce(t, s); sent != 1 || failed != 0 {
		t.Fatalf("after recovery: RunOnce = %d sent, %d failed, want 1, 0", sent, failed)
	}
	r := row(t, store, m.ID)
	if r.SentAt.IsZero() || r.Attempts != 4 || r.LastError != "" {
		t.Errorf("row: sent_at %v attempts %d last_error %q, want sent after 4 attempts", r.SentAt, r.Attempts, r.LastError)
	}
	clock.Advance(2 * time.Hour)
	runOnce(t, s)
	if ids := srv.MessageIDs(); len(ids) != 1 || ids[messageID(m)] != 1 {
		t.Errorf("delivered Message-IDs = %v, want %s once", ids, messageID(m))
	}
}

// A permanent refusal fails the message at once; the rest of the batch goes
// out.
func TestPermanentRejection(t *testing.T) {
	store, clock := dbtest.New(t)
	srv := mailtest.NewServer(t)
	srv.RejectRecipient("nobody@example.com", 550)
	s := newSender(t, store, srv, nil)
	msgs := enqueue(t, store, "nobody@example.com", "bob@example.com")

	if sent, failed := runOnce(t, s); sent != 1 || failed != 1 {
		t.Fatalf("RunOnce = %d sent, %d failed, want 1, 1", sent, failed)
	}
	r := row(t, store, msgs[0].ID)
	if !r.FailedAt.Equal(clock.Now()) || r.Attempts != 1 || !strings.Contains(r.LastError, "550") || !r.SentAt.IsZero() {
		t.Errorf("rejected row: failed_at %v attempts %d last_error %q sent_at %v; want failed now after 1 attempt with the 550",
			r.FailedAt, r.Attempts, r.LastError, r.SentAt)
	}
	clock.Advance(48 * time.Hour)
	if sent, failed := runOnce(t, s); sent+failed != 0 {
		t.Errorf("RunOnce later = %d sent, %d failed; a failed message is never retried", sent, failed)
	}
	if got := srv.MessageIDs(); len(got) != 1 || got[messageID(msgs[1])] != 1 {
		t.Errorf("delivered = %v, want only %s", got, messageID(msgs[1]))
	}
}

// A message the server refuses for good at the end of DATA is failed at
// once too.
func TestPermanentDataRejection(t *testing.T) {
	store, clock := dbtest.New(t)
	srv := mailtest.NewServer(t)
	srv.FailNextWith(1, 554)
	s := newSender(t, store, srv, nil)
	m := enqueue(t, store, "bob@example.com")[0]
	if sent, failed := runOnce(t, s); sent != 0 || failed != 1 {
		t.Fatalf("RunOnce = %d sent, %d failed, want 0, 1", sent, failed)
	}
	if r := row(t, store, m.ID); r.FailedAt.IsZero() || !strings.Contains(r.LastError, "554") {
		t.Errorf("row: failed_at %v last_error %q; want failed with the 554", r.FailedAt, r.LastError)
	}
	clock.Advance(48 * time.Hour)
	if sent, failed := runOnce(t, s); sent+failed != 0 || srv.Attempts() != 1 {
		t.Errorf("RunOnce later = %d sent, %d failed, %d transmissions; want no retry", sent, failed, srv.Attempts())
	}
}

// Failures that may clear up are retried, not given up on: a temporary
// refusal of the recipient, and a connection lost before the server
// answered RCPT (no SMTP code at all).
func TestTemporaryRecipientFailureRetried(t *testing.T) {
	for name, setup := range map[string]func(*mailtest.Server){
		"450":            func(srv *mailtest.Server) { srv.RejectRecipient("bob@example.com", 450) },
		"ConnectionLost": func(srv *mailtest.Server) { srv.DropAtRcpt(1) },
	} {
		t.Run(name, func(t *testing.T) {
			store, clock := dbtest.New(t)
			srv := mailtest.NewServer(t)
			setup(srv)
			s := newSender(t, store, srv, nil)
			m := enqueue(t, store, "bob@example.com")[0]
			if sent, failed := runOnce(t, s); sent != 0 || failed != 1 {
				t.Fatalf("RunOnce = %d sent, %d failed, want 0, 1", sent, failed)
			}
			r := row(t, store, m.ID)
			if !r.FailedAt.IsZero() || r.Attempts != 1 || r.LastError == "" {
				t.Fatalf("row: failed_at %v attempts %d last_error %q; want a retry scheduled", r.FailedAt, r.Attempts, r.LastError)
			}
			srv.RejectRecipient("bob@example.com", 0)
			clock.Set(r.NextAttemptAt)
			if sent, failed := runOnce(t, s); sent != 1 || failed != 0 {
				t.Fatalf("retry: RunOnce = %d sent, %d failed, want 1, 0", sent, failed)
			}
		})
	}
}

func TestMaxAttempts(t *testing.T) {
	store, clock := dbtest.New(t)
	srv := mailtest.NewServer(t)
	srv.FailNext(1000)
	s := newSender(t, store, srv, nil)
	s.MaxAttempts = 4
	m := enqueue(t, store, "bob@example.com")[0]
	for i := 1; i <= 4; i++ {
		if sent, failed := runOnce(t, s); sent != 0 || failed != 1 {
			t.Fatalf("attempt %d: RunOnce = %d sent, %d failed, want 0, 1", i, sent, failed)
		}
		r := row(t, store, m.ID)
		if gaveUp := !r.FailedAt.IsZero(); gaveUp != (i == 4) {
			t.Fatalf("attempt %d: failed_at = %v", i, r.FailedAt)
		}
		clock.Set(r.NextAttemptAt.Add(time.Hour))
	}
	r := row(t, store, m.ID)
	if r.Attempts != 4 || !strings.Contains(r.LastError, "451") || !r.SentAt.IsZero() {
		t.Errorf("row: attempts %d last_error %q sent_at %v; want 4 attempts, the 451 kept, unsent", r.Attempts, r.LastError, r.SentAt)
	}
	clock.Advance(48 * time.Hour)
	if sent, failed := runOnce(t, s); sent+failed != 0 {
		t.Errorf("RunOnce after giving up = %d sent, %d failed, want nothing", sent, failed)
	}
	if n := srv.Attempts(); n != 4 {
		t.Errorf("server saw %d transmissions, want 4", n)
	}
}

// The server accepted the message, then the connection broke before RSET
// or QUIT: that is a delivery, not a failure to retry.
func TestDeliveredThenConnectionLost(t *testing.T) {
	store, clock := dbtest.New(t)
	srv := mailtest.NewServer(t)
	srv.DropAfterData(1)
	s := newSender(t, store, srv, nil)
	m := enqueue(t, store, "bob@example.com")[0]
	if sent, failed := runOnce(t, s); sent != 1 || failed != 0 {
		t.Errorf("RunOnce = %d sent, %d failed, want 1, 0", sent, failed)
	}
	clock.Advance(2 * time.Hour)
	runOnce(t, s)
	if ids := srv.MessageIDs(); ids[messageID(m)] != 1 {
		t.Errorf("delivered %d times, want once", ids[messageID(m)])
	}
	if r := row(t, store, m.ID); r.SentAt.IsZero() {
		t.Errorf("row not marked sent: %+v", r)
	}
}

// Two senders with their own connection pools on one database file, like
// two processes, deliver every message exactly once.
func TestConcurrentSenders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	store1, clock := dbtest.Open(t, path)
	store2, _ := dbtest.Open(t, path)
	store2.Now = clock.Now
	srv := mailtest.NewServer(t)
	const n = 200
	to := make([]string, n)
	for i := range to {
		to[i] = fmt.Sprintf("user%d@example.com", i)
	}
	msgs := enqueue(t, store1, to...)

	var wg sync.WaitGroup
	start := make(chan struct{})
	sent := make([]int, 2)
	for i, store := range []*db.Store{store1, store2} {
		s := newSender(t, store, srv, nil)
		s.Batch = 5
		wg.Go(func() {
			<-start
			for {
				n, failed, err := s.RunOnce(ctx)
				if err != nil || failed != 0 {
					t.Errorf("sender %d: RunOnce: %d failed, %v", i, failed, err)
					return
				}
				if n == 0 {
					return
				}
				sent[i] += n
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("sender 1 sent %d, sender 2 sent %d", sent[0], sent[1])
	if sent[0]+sent[1] != n {
		t.Errorf("senders report %d + %d sent, want %d", sent[0], sent[1], n)
	}
	ids := srv.MessageIDs()
	for _, m := range msgs {
		if ids[messageID(m)] != 1 {
			t.Errorf("message %d delivered %d times", m.ID, ids[messageID(m)])
		}
		if r := row(t, store1, m.ID); r.SentAt.IsZero() || r.Attempts != 1 {
			t.Errorf("row %d: sent_at %v attempts %d", m.ID, r.SentAt, r.Attempts)
		}
	}
	if len(ids) != n {
		t.Errorf("server got %d distinct messages, want %d", len(ids), n)
	}
}

// A sender that claimed a message and died holds it only until its lease
// runs out; then another sender delivers it, and the dead one's late
// report changes nothing.
func TestExpiredClaimPickedUp(t *testing.T) {
	store, clock := dbtest.New(t)
	srv := mailtest.NewServer(t)
	s := newSender(t, store, srv, nil)
	m := enqueue(t, store, "bob@example.com")[0]

	claimed, err := store.ClaimOutbox(ctx, "dead-sender", s.Lease, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != m.ID {
		t.Fatalf("ClaimOutbox = %v, %v; want message %d", claimed, err, m.ID)
	}
	if sent, failed := runOnce(t, s); sent+failed != 0 {
		t.Fatalf("RunOnce while claimed = %d sent, %d failed, want nothing", sent, failed)
	}
	clock.Advance(s.Lease - time.Second)
	if sent, failed := runOnce(t, s); sent+failed != 0 {
		t.Fatalf("RunOnce just before the lease ends = %d sent, %d failed, want nothing", sent, failed)
	}
	clock.Advance(2 * time.Second)
	if sent, failed := runOnce(t, s); sent != 1 || failed != 0 {
		t.Fatalf("RunOnce after the lease = %d sent, %d failed, want 1, 0", sent, failed)
	}
	// The dead sender wakes up: its claim is gone.
	if err := store.MarkOutboxRetry(ctx, m.ID, "dead-sender", clock.Now().Add(time.Minute), "timeout"); err == nil {
		t.Errorf("MarkOutboxRetry with a stale claim succeeded")
	}
	if r := row(t, store, m.ID); r.SentAt.IsZero() || r.Attempts != 1 || r.LastError != "" {
		t.Errorf("row: sent_at %v attempts %d last_error %q", r.SentAt, r.Attempts, r.LastError)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("server received %d messages, want 1", n)
	}
}

// A batch shares one lease but goes out one message at a time. When the
// server is slow (each send takes half the lease), the last messages'
// lease runs out and another sender claims them; the first sender must
// not send them again.
func TestSlowBatchNeverSendsTwice(t *testing.T) {
	store, clock := dbtest.New(t)
	srv := mailtest.NewServer(t)
	a := newSender(t, store, srv, nil)
	a.Batch = 3
	b := newSender(t, store, srv, nil)
	msgs := enqueue(t, store, "one@example.com", "two@example.com", "three@example.com")

	var bSent int
	srv.OnMessage(func(m mailtest.Message) {
		switch m.To[0] {
		case "one@example.com":
			clock.Advance(a.Lease / 2)
		case "two@example.com":
			// Sender a's claim on the third message has run out now.
			clock.Advance(a.Lease/2 + time.Second)
			n, _, err := b.RunOnce(ctx)
			if err != nil {
				t.Errorf("sender b: %v", err)
			}
			bSent += n
		}
	})
	aSent, _ := runOnce(t, a)
	if aSent != 2 || bSent != 1 {
		t.Errorf("sender a sent %d, sender b sent %d; want 2 and 1", aSent, bSent)
	}
	ids := srv.MessageIDs()
	for _, m := range msgs {
		if ids[messageID(m)] != 1 {
			t.Errorf("%s delivered %d times, want once", m.To, ids[messageID(m)])
		}
	}
}

func TestSMTPAuth(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		store, _ := dbtest.New(t)
		srv := mailtest.NewServer(t, mailtest.WithAuth("mailer", "s3cret pass"))
		s := newSender(t, store, srv, url.UserPassword("mailer", "s3cret pass"))
		enqueue(t, store, "bob@example.com")
		if sent, failed := runOnce(t, s); sent != 1 || failed != 0 {
			t.Fatalf("RunOnce = %d sent, %d failed, want 1, 0", sent, failed)
		}
	})
	for name, user := range map[string]*url.Userinfo{
		"ErrWrongPassword": url.UserPassword("mailer", "wrong"),
		"ErrNoCredentials": nil,
	} {
		// A credentials problem is fixed by an operator, not by the
		// message: retry it rather than lose it.
		t.Run(name, func(t *testing.T) {
			store, clock := dbtest.New(t)
			srv := mailtest.NewServer(t, mailtest.WithAuth("mailer", "s3cret pass"))
			s := newSender(t, store, srv, user)
			m := enqueue(t, store, "bob@example.com")[0]
			if sent, failed := runOnce(t, s); sent != 0 || failed != 1 {
				t.Fatalf("RunOnce = %d sent, %d failed, want 0, 1", sent, failed)
			}
			r := row(t, store, m.ID)
			if !r.FailedAt.IsZero() || r.Attempts != 1 || r.LastError == "" || !r.NextAttemptAt.After(clock.Now()) {
				t.Errorf("row: failed_at %v attempts %d last_error %q next %v; want a retry scheduled",
					r.FailedAt, r.Attempts, r.LastError, r.NextAttemptAt)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server accepted %d messages", n)
			}
		})
	}
}

func TestParseSMTPURL(t *testing.T) {
	tests := []struct {
		name, url string
		want      mail.SMTP // Timeout is not compared
		err       string
	}{
		{"STARTTLS", "smtp://relay.example.com?from=no-reply@example.com",
			mail.SMTP{Host: "relay.example.com", Port: 587, From: "no-reply@example.com", TLS: "starttls"}, ""},
		{"Implicit", "smtps://u:p@smtp.example.com?from=Gatehouse%20%3Cno-reply@example.com%3E",
			mail.SMTP{Host: "smtp.example.com", Port: 465, Username: "u", Password: "p", From: "Gatehouse <no-reply@example.com>", TLS: "implicit"}, ""},
		{"Credentials", "smtp://apikey:p%40ss%3Aword@smtp.example.com:2525?from=a@example.com",
			mail.SMTP{Host: "smtp.example.com", Port: 2525, Username: "apikey", Password: "p@ss:word", From: "a@example.com", TLS: "starttls"}, ""},
		{"Opportunistic", "smtp://relay:25?from=a@example.com&tls=opportunistic",
			mail.SMTP{Host: "relay", Port: 25, From: "a@example.com", TLS: "opportunistic"}, ""},
		{"None", "smtp://127.0.0.1:1025?from=a@example.com&tls=none",
			mail.SMTP{Host: "127.0.0.1", Port: 1025, From: "a@example.com", TLS: "none"}, ""},
		{"ErrMissingFrom", "smtp://relay.example.com:25", mail.SMTP{}, "from="},
		{"ErrBadFrom", "smtp://relay.example.com:25?from=not%20an%20address", mail.SMTP{}, "from="},
		{"ErrScheme", "http://relay.example.com?from=a@example.com", mail.SMTP{}, "scheme"},
		{"ErrTLSValue", "smtp://relay.example.com?from=a@example.com&tls=maybe", mail.SMTP{}, "tls="},
		{"ErrTLSWithSMTPS", "smtps://relay.example.com?from=a@example.com&tls=none", mail.SMTP{}, "tls="},
		{"ErrNoHost", "smtp://?from=a@example.com", mail.SMTP{}, "host"},
		{"ErrPort", "smtp://relay.example.com:smtp?from=a@example.com", mail.SMTP{}, "port"},
		// Found by FuzzParseSMTPURL: ports outside 1–65535 and control
		// characters in the credentials were accepted at start-up.
		{"ErrPortZero", "smtp://relay.example.com:0?from=a@example.com", mail.SMTP{}, "port"},
		{"ErrPortTooLarge", "smtp://relay.example.com:65536?from=a@example.com", mail.SMTP{}, "port"},
		{"ErrControlInUser", "smtp://u%0D%0A:p@relay.example.com?from=a@example.com", mail.SMTP{}, "control character"},
		{"ErrNULInPassword", "smtp://u:p%00admin@relay.example.com?from=a@example.com", mail.SMTP{}, "control character"},
		// Found by FuzzParseSMTPURL in the long run: read as host ":" port 1.
		{"ErrIPv6WithoutBrackets", "smtp://::1?from=a@example.com", mail.SMTP{}, "brackets"},
		{"IPv6", "smtp://[::1]:25?from=a@example.com&tls=none",
			mail.SMTP{Host: "::1", Port: 25, From: "a@example.com", TLS: "none"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mail.ParseSMTPURL(tt.url)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSMTPURL(%q) = %+v, %v; want an error about %q", tt.url, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSMTPURL(%q): %v", tt.url, err)
			}
			got.Timeout = 0
			if *got != tt.want {
				t.Errorf("ParseSMTPURL(%q) = %+v, want %+v", tt.url, *got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{
		{1, 30 * time.Second}, {2, time.Minute}, {3, 2 * time.Minute}, {5, 8 * time.Minute},
		{7, 32 * time.Minute}, {8, time.Hour}, {12, time.Hour}, {1000, time.Hour},
	} {
		seen := map[time.Duration]bool{}
		for range 500 {
			got := mail.Backoff(tt.n)
			seen[got] = true
			if lo, hi := tt.want*8/10, tt.want*12/10; got < lo || got > hi {
				t.Fatalf("Backoff(%d) = %v, want within %v..%v", tt.n, got, lo, hi)
			}
		}
		// Jitter spreads retries of messages that failed together.
		if len(seen) < 100 {
			t.Errorf("Backoff(%d): only %d distinct values in 500 draws", tt.n, len(seen))
		}
	}
}

// A pass cut short (here by shutdown, after the first message of a batch
// of three) hands back the claim on the messages it never tried: at the
// same instant, another sender takes them, rather than a lease later.
func TestCutShortBatchReleased(t *testing.T) {
	store, _ := dbtest.New(t)
	srv := mailtest.NewServer(t)
	a := newSender(t, store, srv, nil)
	b := newSender(t, store, srv, nil)
	msgs := enqueue(t, store, "one@example.com", "two@example.com", "three@example.com")

	actx, stop := context.WithCancel(ctx)
	a.Transport = stopAfterSend{a.Transport, stop}
	sent, _, err := a.RunOnce(actx)
	if sent != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("RunOnce stopped after the first send = %d sent, %v; want 1, context canceled", sent, err)
	}
	if sent, failed := runOnce(t, b); sent != 2 || failed != 0 {
		t.Fatalf("other sender at the same instant = %d sent, %d failed; want 2, 0", sent, failed)
	}
	ids := srv.MessageIDs()
	for _, m := range msgs {
		if ids[messageID(m)] != 1 {
			t.Errorf("%s delivered %d times, want once", m.To, ids[messageID(m)])
		}
		if r := row(t, store, m.ID); r.SentAt.IsZero() {
			t.Errorf("%s not marked sent", m.To)
		}
	}
}

// stopAfterSend ends the sender's context once a send has returned, as a
// shutdown arriving during the send would.
type stopAfterSend struct {
	mail.Transport
	stop func()
}

func (s stopAfterSend) Send(ctx context.Context, m db.OutboxMessage) error {
	err := s.Transport.Send(ctx, m)
	s.stop()
	return err
}
