package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Twilio sends texts through a Twilio-compatible Messages API. It is
// safe for concurrent use.
type Twilio struct {
	base     string // scheme://host/prefix, for String
	endpoint string // base + /2010-04-01/Accounts/{SID}/Messages.json, without credentials
	sid      string
	token    string // never in an error or String
	from     string // the sender number, or
	service  string // the messaging service SID
	client   *http.Client
}

var (
	// sidChars is what an account or messaging service SID may hold:
	// Twilio's are "AC"/"MG" and hex, other providers' may be UUIDs. The
	// SID goes into the request path.
	sidChars = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// urlErr stands for every reason url.Parse gives: its error holds
	// the URL, and its cause may hold part of the token ("invalid port
	// \":tok\"" when the token has a slash).
	urlErr = errors.New("GATEHOUSE_SMS_URL: not a URL (a / : @ ? # or % in the token must be percent-encoded)")
)

// NewTwilio reads GATEHOUSE_SMS_URL, the base URL of a Twilio-compatible
// Messages API with the account SID and auth token as user and password,
// and a sender number or a messaging service:
//
//	https://SID:TOKEN@api.twilio.com?from=%2B15550100       (the + as %2B)
//	https://SID:TOKEN@api.twilio.com?messaging_service_sid=MG…
//	http://SID:TOKEN@127.0.0.1:8080?from=…                  (http:// only to loopback)
//
// Texts are POSTed to {base}/2010-04-01/Accounts/{SID}/Messages.json.
// client is used as given, except that redirects are not followed (a
// POST that is redirected is a misconfiguration); nil means a client
// with a 10 s timeout. It returns an error when the URL is not of that
// form; the error never holds the token.
func NewTwilio(rawURL string, client *http.Client) (*Twilio, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, urlErr
	}
	switch u.Scheme {
	case "https":
	case "http":
		// The token would cross the network in the clear.
		if !loopback(u.Hostname()) {
			return nil, errors.New("GATEHOUSE_SMS_URL: http:// only to a loopback address (127.0.0.1, [::1], localhost); use https://")
		}
	default:
		return nil, errors.New("GATEHOUSE_SMS_URL: scheme must be https (https://SID:TOKEN@api.twilio.com?from=%2B15550100)")
	}
	if u.Opaque != "" {
		return nil, urlErr
	}
	if u.Hostname() == "" {
		return nil, errors.New("GATEHOUSE_SMS_URL: host missing")
	}
	if u.Fragment != "" {
		return nil, errors.New("GATEHOUSE_SMS_URL: a #fragment has no place here (a # in the token is written %23)")
	}
	if u.User == nil {
		return nil, errors.New("GATEHOUSE_SMS_URL: account SID and auth token missing (https://SID:TOKEN@host…)")
	}
	t := &Twilio{sid: u.User.Username()}
	t.token, _ = u.User.Password()
	switch {
	case t.sid == "":
		return nil, errors.New("GATEHOUSE_SMS_URL: account SID missing")
	case !sidChars.MatchString(t.sid):
		return nil, errors.New("GATEHOUSE_SMS_URL: the account SID may only have letters, digits, - and _")
	case t.token == "":
		return nil, errors.New("GATEHOUSE_SMS_URL: auth token missing (https://SID:TOKEN@host…)")
	case strings.ContainsFunc(t.token, unicode.IsControl):
		return nil, errors.New("GATEHOUSE_SMS_URL: control character in the auth token")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("GATEHOUSE_SMS_URL: bad query string")
	}
	for k, v := range q {
		if k != "from" && k != "messaging_service_sid" {
			return nil, fmt.Errorf("GATEHOUSE_SMS_URL: unknown parameter %q (from or messaging_service_sid)", k)
		}
		if len(v) != 1 {
			return nil, fmt.Errorf("GATEHOUSE_SMS_URL: %s given %d times", k, len(v))
		}
	}
	t.from, t.service = q.Get("from"), q.Get("messaging_service_sid")
	switch {
	case (t.from == "") == (t.service == ""):
		return nil, errors.New("GATEHOUSE_SMS_URL: give exactly one of from=%2B15550100 and messaging_service_sid=MG…")
	case t.from != "" && strings.HasPrefix(t.from, " "):
		return nil, errors.New("GATEHOUSE_SMS_URL: from: a + in a URL reads as a space: write it %2B (from=%2B15550100)")
	case t.from != "" && !e164.MatchString(t.from):
		return nil, fmt.Errorf("GATEHOUSE_SMS_URL: from=%q is not an E.164 number (from=%%2B15550100)", t.from)
	case t.service != "" && !sidChars.MatchString(t.service):
		return nil, errors.New("GATEHOUSE_SMS_URL: messaging_service_sid may only have letters, digits, - and _")
	}
	t.base = u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/")
	t.endpoint = t.base + "/2010-04-01/Accounts/" + t.sid + "/Messages.json"
	if client == nil {
		t.client = &http.Client{Timeout: 10 * time.Second}
	} else {
		c := *client
		t.client = &c
	}
	t.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return t, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes t without its token.
func (t *Twilio) String() string {
	sender := "from " + t.from
	if t.from == "" {
		sender = "messaging service " + t.service
	}
	return fmt.Sprintf("Twilio-compatible API at %s, account %s, %s", t.base, t.sid, sender)
}

// GoString is String, so that %#v does not print the token either.
func (t *Twilio) GoString() string { return t.String() }

// Send texts m and returns Twilio's sid for the message. It returns a
// *SendError: permanent when m is not sendable (To not E.164, empty
// Body) or the provider refused it with a 4xx or a redirect;
// retryable, with the provider's Retry-After if any, on 408, 429 and
// 5xx answers, and on network errors and timeouts (where the provider
// may have the text already: a retry can deliver it twice).
func (t *Twilio) Send(ctx context.Context, m Message) (string, error) {
	if !e164.MatchString(m.To) {
		return "", &SendError{Permanent: true, Message: "the recipient is not an E.164 number"}
	}
	if m.Body == "" {
		return "", &SendError{Permanent: true, Message: "empty message body"}
	}
	form := url.Values{"To": {m.To}, "Body": {m.Body}}
	if t.from != "" {
		form.Set("From", t.from)
	} else {
		form.Set("MessagingServiceSid", t.service)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &SendError{Permanent: true, Message: "request: " + err.Error(), Err: err}
	}
	req.SetBasicAuth(t.sid, t.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		// The request URL has no credentials, so neither has err.
		return "", &SendError{Message: err.Error(), Err: err}
	}
	defer resp.Body.Close()
	// A short body, read whole so that the connection is reused.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Accepted, whatever the body says: an error here would send
		// the text again.
		var ok struct {
			SID string `json:"sid"`
		}
		_ = json.Unmarshal(body, &ok)
		return ok.SID, nil
	}
	se := &SendError{Status: resp.StatusCode}
	var twilioErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &twilioErr) == nil {
		se.Code, se.Message = twilioErr.Code, providerMessage(twilioErr.Message)
	}
	if se.Message == "" {
		se.Message = http.StatusText(resp.StatusCode)
	}
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests, c == http.StatusRequestTimeout, c >= 500:
		se.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	default:
		se.Permanent = true
	}
	return "", se
}

// longDigits are runs of digits long enough to be a phone number or a
// code: Twilio's messages quote the recipient ("The 'To' number
// +447400123456 is not..."), and another provider might quote the body.
var longDigits = regexp.MustCompile(`\+?[0-9]{5,}`)

// providerMessage makes a provider's error message fit for logs and the
// outbox: one line, at most 200 characters, no phone numbers or codes.
func providerMessage(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }), " ")
	s = longDigits.ReplaceAllString(s, "•••")
	if r := []rune(s); len(r) > 200 {
		s = strings.TrimSpace(string(r[:200])) + "…"
	}
	return s
}

// retryAfter reads a Retry-After header, seconds or an HTTP date, as a
// wait of at most an hour; 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	const limit = time.Hour
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return time.Duration(min(max(n, 0), int(limit/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(at.Sub(now), 0), limit).Round(time.Second)
	}
	return 0
}
