package sms_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse/gatehouse/app/sms"
	"github.com/gatehouse/gatehouse/app/sms/smstest"
)

const to = "+447400123456"

// newTwilio returns a Twilio for srv and, when the test ends, checks
// that no error it returned held the token.
func newTwilio(t *testing.T, srv *smstest.Server, rawURL string, client *http.Client) *tokenCheck {
	t.Helper()
	tw, err := sms.NewTwilio(rawURL, client)
	if err != nil {
		t.Fatalf("NewTwilio: %v", err)
	}
	return &tokenCheck{t: t, tw: tw, token: srv.Token}
}

type tokenCheck struct {
	t     *testing.T
	tw    *sms.Twilio
	token string
}

func (c *tokenCheck) Send(ctx context.Context, m sms.Message) (string, error) {
	id, err := c.tw.Send(ctx, m)
	if err != nil && strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), c.token) {
		c.t.Errorf("Send error %q holds the token", err)
	}
	return id, err
}

func TestTwilioSend(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		body := sms.Body("123456", "Acme & Co = ü", "acme.example.com")
		before := time.Now()
		id, err := tw.Send(t.Context(), sms.Message{To: to, Body: body})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := srv.Messages()
		want := []smstest.Message{{SID: id, To: to, From: smstest.From, Body: body}}
		if diff := cmp.Diff(got, want, cmpopts.IgnoreFields(smstest.Message{}, "Time")); diff != "" {
			t.Errorf("server got (-got +want):\n%s", diff)
		}
		if !strings.HasPrefix(id, "SM") || len(id) != 34 {
			t.Errorf("Send returned id %q, want Twilio's SM sid", id)
		}
		if len(got) == 1 && (got[0].Time.Before(before) || got[0].Time.After(time.Now())) {
			t.Errorf("message time %v", got[0].Time)
		}
	})
	t.Run("OKMessagingService", func(t *testing.T) {
		srv := smstest.NewServer(t)
		u, _ := url.Parse(srv.URL())
		u.RawQuery = "messaging_service_sid=MG0123456789abcdef0123456789abcdef"
		tw := newTwilio(t, srv, u.String(), nil)
		if _, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := srv.Messages()
		if len(got) != 1 || got[0].From != "" || got[0].MessagingServiceSID != "MG0123456789abcdef0123456789abcdef" {
			t.Errorf("server got %+v, want the messaging service and no From", got)
		}
	})
	t.Run("ErrInvalidToIsPermanent", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		// E.164 in form, but the provider does not know the number.
		_, err := tw.Send(t.Context(), sms.Message{To: "+123", Body: "hello"})
		wantSendError(t, err, sms.SendError{Permanent: true, Status: 400, Code: 21211, Message: "The 'To' number +123 is not a valid phone number."})
	})
	t.Run("ErrScripted400IsPermanent", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.FailNext(1, smstest.Failure{Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"})
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		wantSendError(t, err, sms.SendError{Permanent: true, Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"})
		if got := srv.Messages(); len(got) != 0 {
			t.Errorf("server kept %+v", got)
		}
	})
	t.Run("ErrProviderMessageRedacted", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.FailNext(1, smstest.Failure{Status: 400, Code: 21211,
			Message: "The 'To' number " + to + " is not a valid phone number.\nBody: 123456 is your code" + strings.Repeat(" x", 200)})
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "123456 is your code"})
		// One line, no numbers, cut to 200 characters.
		redacted := []rune("The 'To' number ••• is not a valid phone number. Body: ••• is your code" + strings.Repeat(" x", 200))
		wantSendError(t, err, sms.SendError{Permanent: true, Status: 400, Code: 21211,
			Message: strings.TrimSpace(string(redacted[:200])) + "…"})
	})
	t.Run("ErrBadTokenIsPermanent", func(t *testing.T) {
		srv := smstest.NewServer(t)
		u, _ := url.Parse(srv.URL())
		u.User = url.UserPassword(srv.SID, "wrong-token-d41d8cd98f00")
		tw := newTwilio(t, srv, u.String(), nil)
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		wantSendError(t, err, sms.SendError{Permanent: true, Status: 401, Code: 20003, Message: "Authentication Error - invalid username"})
		if strings.Contains(err.Error(), "wrong-token") {
			t.Errorf("error %q holds the token", err)
		}
	})
	t.Run("ErrNotSendableIsPermanentWithoutARequest", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		for _, m := range []sms.Message{{To: "", Body: "x"}, {To: "07400123456", Body: "x"}, {To: to + "\n", Body: "x"}, {To: to, Body: ""}} {
			if _, err := tw.Send(t.Context(), m); !sms.Permanent(err) {
				t.Errorf("Send(%+v) = %v, want a permanent error", m, err)
			}
		}
		if n := srv.Requests(); n != 0 {
			t.Errorf("server got %d requests", n)
		}
	})
	t.Run("Err500IsRetryable", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.FailNext(1, smstest.Failure{Status: 500, Code: 20500, Message: "Internal Server Error"})
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		wantSendError(t, err, sms.SendError{Status: 500, Code: 20500, Message: "Internal Server Error"})
		// The adapter does not retry by itself; the next call goes through.
		if n := srv.Requests(); n != 1 {
			t.Errorf("server got %d requests, want 1", n)
		}
		if _, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"}); err != nil {
			t.Errorf("Send after the failure: %v", err)
		}
	})
	t.Run("Err502PlainTextIsRetryable", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.FailNext(1, smstest.Failure{Status: 502, Message: "<html>upstream 5551234567 unavailable</html>"})
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		wantSendError(t, err, sms.SendError{Status: 502, Message: "Bad Gateway"})
	})
	t.Run("Err503RetryAfterSeconds", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.FailNext(1, smstest.Failure{Status: 503, Code: 20503, Message: "Service Unavailable", RetryAfter: "7"})
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		wantSendError(t, err, sms.SendError{Status: 503, Code: 20503, Message: "Service Unavailable", RetryAfter: 7 * time.Second})
	})
	for _, tt := range []struct {
		name, header string
		want         time.Duration
	}{
		{"Err429RetryAfterSeconds", "30", 30 * time.Second},
		{"Err429RetryAfterDate", "", 0}, // set below
		{"Err429RetryAfterPastDate", "Wed, 21 Oct 2015 07:28:00 GMT", 0},
		{"Err429RetryAfterCapped", "86400", time.Hour},
		{"Err429RetryAfterNegative", "-5", 0},
		{"Err429RetryAfterGarbage", "soon", 0},
		{"Err429NoRetryAfter", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := smstest.NewServer(t)
			tw := newTwilio(t, srv, srv.URL(), nil)
			header, want := tt.header, tt.want
			if tt.name == "Err429RetryAfterDate" {
				header, want = time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat), 90*time.Second
			}
			srv.FailNext(1, smstest.Failure{Status: 429, Code: 20429, Message: "Too Many Requests", RetryAfter: header})
			_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
			if sms.Permanent(err) {
				t.Fatalf("Send: %v is permanent", err)
			}
			if got := sms.RetryAfter(err); got < want-time.Second || got > want {
				t.Errorf("RetryAfter with Retry-After %q = %v, want %v", header, got, want)
			}
		})
	}
	t.Run("ErrTimeoutIsRetryable", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), &http.Client{Timeout: 200 * time.Millisecond})
		srv.SetDelay(5 * time.Second)
		start := time.Now()
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Send took %v with a 200 ms timeout", took)
		}
		var netErr net.Error
		if sms.Permanent(err) || !errors.As(err, &netErr) || !netErr.Timeout() {
			t.Fatalf("Send = %v, want a retryable timeout", err)
		}
		// The provider had the text already: a retry may deliver it twice.
		if got := srv.Messages(); len(got) != 1 {
			t.Errorf("server kept %d messages, want 1", len(got))
		}
	})
	t.Run("ErrContextDeadlineIsRetryable", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.SetDelay(5 * time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := tw.Send(ctx, sms.Message{To: to, Body: "hello"})
		if sms.Permanent(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send = %v, want a retryable deadline error", err)
		}
	})
	t.Run("ErrDownIsRetryable", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.SetDown(true)
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		var se *sms.SendError
		if !errors.As(err, &se) || se.Permanent || se.Status != 0 || se.Err == nil {
			t.Fatalf("Send while down = %#v, want a retryable error without status", err)
		}
		srv.SetDown(false)
		if _, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"}); err != nil {
			t.Fatalf("Send once up again: %v", err)
		}
		if got := len(srv.Messages()); got != 1 {
			t.Errorf("server kept %d messages, want 1", got)
		}
	})
	t.Run("ErrConnectionRefusedIsRetryable", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.Close()
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		if err == nil || sms.Permanent(err) || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("Send to a closed server = %v, want a retryable connection refused", err)
		}
	})
	t.Run("ErrRedirectNotFollowed", func(t *testing.T) {
		srv := smstest.NewServer(t)
		var elsewhere sync.Mutex
		var reached []http.Header
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			elsewhere.Lock()
			reached = append(reached, r.Header)
			elsewhere.Unlock()
		}))
		defer other.Close()
		redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}))
		defer redirect.Close()
		u, _ := url.Parse(srv.URL())
		u.Host = strings.TrimPrefix(redirect.URL, "http://")
		tw := newTwilio(t, srv, u.String(), nil)
		_, err := tw.Send(t.Context(), sms.Message{To: to, Body: "hello"})
		wantSendError(t, err, sms.SendError{Permanent: true, Status: 307, Message: "Temporary Redirect"})
		if len(reached) != 0 {
			t.Errorf("the redirect was followed: %v", reached)
		}
	})
	t.Run("OKConcurrent", func(t *testing.T) {
		srv := smstest.NewServer(t)
		tw := newTwilio(t, srv, srv.URL(), nil)
		srv.FailNext(3, smstest.Failure{Status: 503, Code: 20503, Message: "busy"})
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[string]bool{}
		failed := 0
		for i := range 20 {
			wg.Go(func() {
				id, err := tw.Send(t.Context(), sms.Message{To: fmt.Sprintf("+4474001234%02d", i), Body: "hello"})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				ids[id] = true
			})
		}
		wg.Wait()
		if failed != 3 || len(ids) != 17 || len(srv.Messages()) != 17 || srv.Requests() != 20 {
			t.Errorf("20 sends, 3 scripted failures: %d failed, %d ids, %d kept, %d requests", failed, len(ids), len(srv.Messages()), srv.Requests())
		}
	})
}

func wantSendError(t *testing.T, err error, want sms.SendError) {
	t.Helper()
	var got *sms.SendError
	if !errors.As(err, &got) {
		t.Fatalf("error %v (%T), want a *SendError", err, err)
	}
	if diff := cmp.Diff(*got, want); diff != "" {
		t.Errorf("SendError (-got +want):\n%s", diff)
	}
	if sms.Permanent(err) != want.Permanent || sms.RetryAfter(err) != want.RetryAfter {
		t.Errorf("Permanent, RetryAfter = %v, %v; want %v, %v", sms.Permanent(err), sms.RetryAfter(err), want.Permanent, want.RetryAfter)
	}
}

func TestNewTwilio(t *testing.T) {
	const token = "s3cr3t-T0KEN"
	for _, tt := range []struct{ name, url, want string }{
		{"OK", "https://AC123:" + token + "@api.twilio.com?from=%2B15550100",
			"Twilio-compatible API at https://api.twilio.com, account AC123, from +15550100"},
		{"OKSlash", "https://AC123:" + token + "@api.twilio.com/?from=%2B15550100",
			"Twilio-compatible API at https://api.twilio.com, account AC123, from +15550100"},
		{"OKMessagingService", "https://AC123:" + token + "@api.twilio.com?messaging_service_sid=MG456",
			"Twilio-compatible API at https://api.twilio.com, account AC123, messaging service MG456"},
		{"OKPathPrefixAndPort", "https://AC123:" + token + "@proxy.example:8443/twilio/?from=%2B15550100",
			"Twilio-compatible API at https://proxy.example:8443/twilio, account AC123, from +15550100"},
		{"OKHTTPLoopback", "http://AC123:" + token + "@127.0.0.1:8080?from=%2B15550100",
			"Twilio-compatible API at http://127.0.0.1:8080, account AC123, from +15550100"},
		{"OKHTTPLoopback8", "http://AC123:" + token + "@127.8.9.10?from=%2B15550100",
			"Twilio-compatible API at http://127.8.9.10, account AC123, from +15550100"},
		{"OKHTTPLoopbackIPv6", "http://AC123:" + token + "@[::1]:8080?from=%2B15550100",
			"Twilio-compatible API at http://[::1]:8080, account AC123, from +15550100"},
		{"OKHTTPLocalhost", "http://AC123:" + token + "@localhost:8080?from=%2B15550100",
			"Twilio-compatible API at http://localhost:8080, account AC123, from +15550100"},
		{"OKEncodedToken", "https://AC123:" + url.QueryEscape(token+"/:@?#%") + "@api.twilio.com?from=%2B15550100",
			"Twilio-compatible API at https://api.twilio.com, account AC123, from +15550100"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tw, err := sms.NewTwilio(tt.url, nil)
			if err != nil {
				t.Fatalf("NewTwilio(%q): %v", tt.url, err)
			}
			for _, s := range []string{tw.String(), fmt.Sprint(tw), fmt.Sprintf("%v %+v %#v %s", tw, tw, tw, tw)} {
				if strings.Contains(s, "T0KEN") || strings.Contains(s, "s3cr3t") {
					t.Errorf("%q holds the token", s)
				}
			}
			if got := tw.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
	for _, tt := range []struct{ name, url, want string }{
		{"ErrEmpty", "", "scheme must be https"},
		{"ErrNoScheme", "api.twilio.com?from=%2B15550100", "scheme must be https"},
		{"ErrFTP", "ftp://AC123:" + token + "@api.twilio.com?from=%2B15550100", "scheme must be https"},
		{"ErrHTTPRemote", "http://AC123:" + token + "@api.twilio.com?from=%2B15550100", "http:// only to a loopback address"},
		{"ErrHTTPPrivate", "http://AC123:" + token + "@10.0.0.1?from=%2B15550100", "http:// only to a loopback address"},
		{"ErrHTTPLoopbackLookalike", "http://AC123:" + token + "@127.0.0.1.nip.io?from=%2B15550100", "http:// only to a loopback address"},
		{"ErrHTTPSubLocalhost", "http://AC123:" + token + "@evil.localhost?from=%2B15550100", "http:// only to a loopback address"},
		{"ErrOpaque", "https:AC123:" + token + "@api.twilio.com", "not a URL"},
		{"ErrNoHost", "https://AC123:" + token + "@/?from=%2B15550100", "host missing"},
		{"ErrNoCredentials", "https://api.twilio.com?from=%2B15550100", "account SID and auth token missing"},
		{"ErrNoToken", "https://AC123@api.twilio.com?from=%2B15550100", "auth token missing"},
		{"ErrEmptyToken", "https://AC123:@api.twilio.com?from=%2B15550100", "auth token missing"},
		{"ErrNoSID", "https://:" + token + "@api.twilio.com?from=%2B15550100", "account SID missing"},
		{"ErrSIDPath", "https://AC%2F..%2Fx:" + token + "@api.twilio.com?from=%2B15550100", "account SID may only have"},
		{"ErrTokenControl", "https://AC123:" + token + "%0A@api.twilio.com?from=%2B15550100", "control character in the auth token"},
		{"ErrTokenSlash", "https://AC123:" + token + "/x@api.twilio.com?from=%2B15550100", "not a URL"},
		{"ErrTokenHash", "https://AC123:s3cr3t#T0KEN@api.twilio.com?from=%2B15550100", "not a URL"},
		{"ErrTokenBadEscape", "https://AC123:" + token + "%zz@api.twilio.com?from=%2B15550100", "not a URL"},
		{"ErrFragment", "https://AC123:" + token + "@api.twilio.com?from=%2B15550100#x", "#fragment"},
		{"ErrNoSender", "https://AC123:" + token + "@api.twilio.com", "exactly one of from"},
		{"ErrEmptyFrom", "https://AC123:" + token + "@api.twilio.com?from=", "exactly one of from"},
		{"ErrBothSenders", "https://AC123:" + token + "@api.twilio.com?from=%2B15550100&messaging_service_sid=MG456", "exactly one of from"},
		{"ErrFromPlusUnencoded", "https://AC123:" + token + "@api.twilio.com?from=+15550100", "write it %2B"},
		{"ErrFromNoPlus", "https://AC123:" + token + "@api.twilio.com?from=15550100", `from="15550100" is not an E.164 number`},
		{"ErrFromAlpha", "https://AC123:" + token + "@api.twilio.com?from=Gatehouse", "not an E.164 number"},
		{"ErrFromTwice", "https://AC123:" + token + "@api.twilio.com?from=%2B15550100&from=%2B15550101", "from given 2 times"},
		{"ErrUnknownParameter", "https://AC123:" + token + "@api.twilio.com?form=%2B15550100", `unknown parameter "form"`},
		{"ErrBadServiceSID", "https://AC123:" + token + "@api.twilio.com?messaging_service_sid=MG%2F..", "messaging_service_sid may only have"},
		{"ErrBadQuery", "https://AC123:" + token + "@api.twilio.com?from=%zz", "bad query string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tw, err := sms.NewTwilio(tt.url, nil)
			if err == nil {
				t.Fatalf("NewTwilio(%q) = %v, want an error", tt.url, tw)
			}
			if !strings.HasPrefix(err.Error(), "GATEHOUSE_SMS_URL: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewTwilio(%q) error %q, want %q", tt.url, err, tt.want)
			}
			if strings.Contains(err.Error(), "T0KEN") || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("NewTwilio error %q holds the token", err)
			}
		})
	}
}
