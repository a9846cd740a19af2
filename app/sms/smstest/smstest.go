// Package smstest runs an in-process HTTP server that speaks Twilio's
// Messages API (POST /2010-04-01/Accounts/{SID}/Messages.json, basic
// auth with the account SID and auth token, a form body, JSON answers)
// for tests. It keeps the texts it accepts and can be told to fail the
// way providers do: error answers with Twilio's JSON error body, 429
// with Retry-After, slow answers, dropped connections. It is safe for
// concurrent use.
package smstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"
)

// From is the sender number of URL.
const From = "+15550100"

// Message is one text the server accepted.
type Message struct {
	SID                 string // the "SM…" sid the server answered
	To                  string
	From                string // empty when sent through a messaging service
	MessagingServiceSID string // empty when sent from a number
	Body                string
	Time                time.Time // when the server accepted it
}

// Failure is an error answer the server gives instead of handling a
// request.
type Failure struct {
	Status     int    // HTTP status: 400, 429, 500, 503...
	Code       int    // Twilio error code (21211); 0: a text/plain body instead of Twilio's JSON
	Message    string // the error message
	RetryAfter string // the Retry-After header ("30", an HTTP date); "" for none
}

// Server is a running fake Twilio.
type Server struct {
	SID   string // account SID ("AC" and 32 hex digits), the basic auth user
	Token string // auth token, the basic auth password

	srv *httptest.Server

	mu       sync.Mutex
	msgs     []Message
	requests int
	failures []Failure
	delay    time.Duration
	down     bool
}

// NewServer starts a server on 127.0.0.1 with a random account SID and
// token, closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{SID: "AC" + randomHex(16), Token: randomHex(16)}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is a GATEHOUSE_SMS_URL for this server, sending from From:
// http://SID:TOKEN@127.0.0.1:port?from=%2B15550100.
func (s *Server) URL() string {
	u := url.URL{Scheme: "http", User: url.UserPassword(s.SID, s.Token), Host: s.srv.Listener.Addr().String(),
		RawQuery: url.Values{"from": {From}}.Encode()}
	return u.String()
}

// Close stops the server: from then on connections are refused.
func (s *Server) Close() { s.srv.Close() }

// FailNext makes the next n authenticated requests get f instead of
// being handled. Calls queue up: FailNext(1, a) then FailNext(2, b)
// answers a, b, b.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// SetDelay makes every answer wait d (0: none) after the request was
// handled: a text is accepted, and kept, even when the client gives up
// waiting for the answer, as with a real provider.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetDown makes the server close every connection on receiving a
// request, without an answer, until SetDown(false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Messages returns the texts accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Requests is how many requests the server received, whatever it
// answered.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// ServeHTTP answers one request: not at all while the server is down,
// else after the delay.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	down, delay := s.down, s.delay
	s.mu.Unlock()
	if down {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
			return
		}
		panic(http.ErrAbortHandler) // closes the connection too
	}
	status, header, body := s.handle(r)
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done(): // the client gave up
			return
		}
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	w.Write(body)
}

// handle answers one request as Twilio would, or with the next scripted
// failure; it records the texts it accepts.
func (s *Server) handle(r *http.Request) (int, http.Header, []byte) {
	if r.URL.Path != "/2010-04-01/Accounts/"+s.SID+"/Messages.json" {
		return twilioError(Failure{Status: http.StatusNotFound, Code: 20404, Message: "The requested resource " + r.URL.Path + " was not found"})
	}
	if r.Method != http.MethodPost {
		return twilioError(Failure{Status: http.StatusMethodNotAllowed, Code: 20004, Message: "Method not allowed"})
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != s.SID || pass != s.Token {
		return twilioError(Failure{Status: http.StatusUnauthorized, Code: 20003, Message: "Authentication Error - invalid username"})
	}
	s.mu.Lock()
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		s.mu.Unlock()
		return twilioError(f)
	}
	s.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		return twilioError(Failure{Status: http.StatusBadRequest, Code: 20001, Message: "Could not parse the request body"})
	}
	m := Message{To: r.PostForm.Get("To"), From: r.PostForm.Get("From"),
		MessagingServiceSID: r.PostForm.Get("MessagingServiceSid"), Body: r.PostForm.Get("Body")}
	switch {
	case m.To == "":
		return twilioError(Failure{Status: http.StatusBadRequest, Code: 21604, Message: "A 'To' phone number is required."})
	case !e164.MatchString(m.To):
		return twilioError(Failure{Status: http.StatusBadRequest, Code: 21211, Message: "The 'To' number " + m.To + " is not a valid phone number."})
	case m.From == "" && m.MessagingServiceSID == "":
		return twilioError(Failure{Status: http.StatusBadRequest, Code: 21603, Message: "A 'From' or 'MessagingServiceSid' parameter is required to send a message"})
	case m.Body == "":
		return twilioError(Failure{Status: http.StatusBadRequest, Code: 21602, Message: "Message body is required."})
	}
	m.SID, m.Time = "SM"+randomHex(16), time.Now()
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	status := "queued"
	if m.From == "" {
		status = "accepted"
	}
	body, _ := json.Marshal(map[string]any{
		"sid": m.SID, "account_sid": s.SID, "to": m.To, "from": nullable(m.From),
		"messaging_service_sid": nullable(m.MessagingServiceSID), "body": m.Body, "status": status,
		"direction": "outbound-api", "api_version": "2010-04-01", "num_segments": "1",
		"date_created": m.Time.UTC().Format(time.RFC1123Z),
		"uri":          "/2010-04-01/Accounts/" + s.SID + "/Messages/" + m.SID + ".json",
	})
	return http.StatusCreated, http.Header{"Content-Type": {"application/json"}}, body
}

// twilioError is Twilio's error answer: {"code", "message", "more_info",
// "status"}, or a plain text body when f has no code.
func twilioError(f Failure) (int, http.Header, []byte) {
	h := http.Header{}
	if f.RetryAfter != "" {
		h.Set("Retry-After", f.RetryAfter)
	}
	if f.Code == 0 {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		msg := f.Message
		if msg == "" {
			msg = http.StatusText(f.Status)
		}
		return f.Status, h, []byte(msg + "\n")
	}
	h.Set("Content-Type", "application/json")
	body, _ := json.Marshal(map[string]any{"code": f.Code, "message": f.Message, "status": f.Status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", f.Code)})
	return f.Status, h, body
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
