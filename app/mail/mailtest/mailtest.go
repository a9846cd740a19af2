// Package mailtest runs a real SMTP server (emersion/go-smtp) on 127.0.0.1
// for tests: it keeps what it receives, decoded, and can be told to fail the
// way real servers do (temporary 451, permanent 550 on RCPT, a dropped
// connection, AUTH PLAIN required).
package mailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	From      string   // envelope MAIL FROM
	To        []string // envelope RCPT TO
	Raw       []byte
	Header    mail.Header
	MessageID string // without the angle brackets
	Text      string // the decoded text/plain part
	HTML      string // the decoded text/html part
}

// Server is a running test SMTP server.
type Server struct {
	Host string
	Port int

	srv *smtp.Server

	mu         sync.Mutex
	msgs       []Message
	attempts   int // DATA commands that delivered a whole message
	failNext   int
	failCode   int
	dropAfter  int
	dropRcpt   int
	reject     map[string]int
	user, pass string
	onMessage  func(Message)
}

// Option configures a Server before it starts.
type Option func(*Server)

// WithAuth makes the server offer AUTH PLAIN (without TLS) and refuse mail
// from a client that has not authenticated as user with pass.
func WithAuth(user, pass string) Option {
	return func(s *Server) { s.user, s.pass = user, pass }
}

// NewServer starts a server on 127.0.0.1:0, stopped when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{reject: map[string]int{}}
	for _, o := range opts {
		o(s)
	}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 1 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	addr := l.Addr().(*net.TCPAddr)
	s.Host, s.Port = addr.IP.String(), addr.Port
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// URL is a GATEHOUSE_SMTP_URL for this server, without TLS, sending as from.
// Credentials, if any, go in userinfo.
func (s *Server) URL(from string, userinfo *url.Userinfo) string {
	u := url.URL{Scheme: "smtp", Host: fmt.Sprintf("%s:%d", s.Host, s.Port), User: userinfo,
		RawQuery: url.Values{"from": {from}, "tls": {"none"}}.Encode()}
	return u.String()
}

// FailNext makes the next n transactions fail with 451 once the message
// has been transmitted (end of DATA), as a server does when it is
// overloaded or its disk is full.
func (s *Server) FailNext(n int) { s.FailNextWith(n, 451) }

// FailNextWith makes the next n transactions fail with code at the end of
// DATA (554: content rejected, 552: too big).
func (s *Server) FailNextWith(n, code int) {
	s.mu.Lock()
	s.failNext, s.failCode = n, code
	s.mu.Unlock()
}

// RejectRecipient makes RCPT TO for addr fail with code (550: no such
// user, 450: mailbox busy).
func (s *Server) RejectRecipient(addr string, code int) {
	s.mu.Lock()
	s.reject[strings.ToLower(addr)] = code
	s.mu.Unlock()
}

// DropAfterData makes the server close the connection right after it
// accepted each of the next n messages (after the 250 reply), so the
// client's RSET or QUIT fails although the message was delivered.
func (s *Server) DropAfterData(n int) {
	s.mu.Lock()
	s.dropAfter = n
	s.mu.Unlock()
}

// DropAtRcpt makes the server close the connection on the next n RCPT TO
// commands without answering, as when the network fails.
func (s *Server) DropAtRcpt(n int) {
	s.mu.Lock()
	s.dropRcpt = n
	s.mu.Unlock()
}

// OnMessage sets a function called with each accepted message before the
// server answers 250; the client waits until it returns.
func (s *Server) OnMessage(f func(Message)) {
	s.mu.Lock()
	s.onMessage = f
	s.mu.Unlock()
}

// Messages returns every accepted message, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Attempts is how many messages were transmitted in full, whether accepted
// or refused at the end of DATA.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// MessageIDs counts accepted messages by Message-ID.
func (s *Server) MessageIDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := map[string]int{}
	for _, m := range s.msgs {
		ids[m.MessageID]++
	}
	return ids
}

type session struct {
	s      *Server
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
	drop   bool
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

func (ss *session) AuthMechanisms() []string {
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.s.user == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.s.user || password != ss.s.pass {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.user != "" && !ss.authed {
		return errAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	code := ss.s.reject[strings.ToLower(to)]
	drop := ss.s.dropRcpt > 0
	if drop {
		ss.s.dropRcpt--
	}
	ss.s.mu.Unlock()
	if drop {
		// Close the socket under go-smtp: the client reads EOF instead of a
		// reply.
		ss.conn.Conn().Close()
		return nil
	}
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 1, 1}, Message: "Recipient rejected"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	// Data must consume the reader before it returns.
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	s.attempts++
	if s.failNext > 0 {
		s.failNext--
		code := s.failCode
		s.mu.Unlock()
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 3, 0}, Message: "Transaction failed"}
	}
	s.mu.Unlock()
	m, err := Parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: err.Error()}
	}
	m.From, m.To = ss.from, append([]string(nil), ss.to...)
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	if s.dropAfter > 0 {
		s.dropAfter--
		ss.drop = true
	}
	hook := s.onMessage
	s.mu.Unlock()
	if hook != nil {
		hook(m)
	}
	return nil
}

// Reset runs after each transaction, once the reply to DATA is written.
func (ss *session) Reset() {
	ss.from, ss.to = "", nil
	if ss.drop {
		ss.drop = false
		// The 250 is on the wire; closing the socket (not the smtp.Conn,
		// whose lock is held here) makes the client's next command fail.
		ss.conn.Conn().Close()
	}
}

func (ss *session) Logout() error { return nil }

// Parse reads a message as a mail client would: headers, then the
// text/plain and text/html parts of a multipart body, decoded from
// quoted-printable or base64.
func Parse(raw []byte) (Message, error) {
	pm, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, fmt.Errorf("parse message: %w", err)
	}
	m := Message{Raw: raw, Header: pm.Header, MessageID: strings.Trim(pm.Header.Get("Message-Id"), "<>")}
	if err := m.readPart(pm.Header.Get("Content-Type"), pm.Header.Get("Content-Transfer-Encoding"), pm.Body); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (m *Message) readPart(contentType, encoding string, body io.Reader) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("parse message: content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart() // raw: decode the transfer encoding ourselves
			if errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return fmt.Errorf("parse message: %w", err)
			}
			if err := m.readPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body) // ignores line breaks
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("parse message: %s body: %w", mt, err)
	}
	switch mt {
	case "text/plain":
		m.Text = string(b)
	case "text/html":
		m.HTML = string(b)
	}
	return nil
}
