package mail_test

import (
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app/mail"
)

// FuzzParseSMTPURL feeds GATEHOUSE_SMTP_URL values to ParseSMTPURL.
// Properties of what it accepts: an smtp or smtps URL with a host and a
// port in 1–65535, a TLS mode among the four (implicit exactly for smtps),
// a From that net/mail parses, and nothing that could break an SMTP
// command or header (no CR, LF or NUL anywhere); and the settings survive
// a round trip: written back as a URL, they parse to the same values.
func FuzzParseSMTPURL(f *testing.F) {
	for _, s := range []string{
		"smtp://relay.example.com?from=no-reply@example.com",
		"smtps://u:p@smtp.example.com?from=Gatehouse%20%3Cno-reply@example.com%3E",
		"smtp://apikey:p%40ss%3Aword@smtp.example.com:2525?from=a@example.com",
		"smtp://relay:25?from=a@example.com&tls=opportunistic",
		"smtp://127.0.0.1:1025?from=a@example.com&tls=none",
		"smtp://[::1]:25?from=a@example.com&tls=starttls",
		"smtp://[fe80::1%25eth0]:25?from=a@example.com",
		"smtp://relay.example.com:0?from=a@example.com",
		"smtp://relay.example.com:65536?from=a@example.com",
		"smtp://relay.example.com:99999999999999999999?from=a@example.com",
		"smtp://relay.example.com:-1?from=a@example.com",
		"smtp://relay.example.com?from=a@example.com%0D%0ABcc:%20evil@example.com",
		"smtp://relay.example.com?from=%22a%0Ab%22@example.com",
		"smtp://u%0D%0A:p%0D%0A@relay.example.com?from=a@example.com",
		"smtp://relay.example.com?from=a@example.com&from=b@example.com",
		"smtp://relay.example.com?from=a@example.com&tls=none&tls=starttls",
		"smtps://relay.example.com?from=a@example.com&tls=none",
		"SMTP://relay.example.com?from=a@example.com",
		"smtp:relay.example.com?from=a@example.com",
		"smtp:///?from=a@example.com",
		"smtp://@:?from=",
		"smtp://relay.example.com#from=a@example.com",
		"smtp://ユーザー:パス@例え.テスト?from=差出人@例え.テスト",
		"smtp://relay.example.com?from=%F0%9F%98%80@example.com",
		"http://relay.example.com?from=a@example.com",
		"",
		"\x00",
		"smtp://relay.example.com\t?from=a@example.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := mail.ParseSMTPURL(raw)
		if err != nil {
			if s != nil {
				t.Fatalf("ParseSMTPURL(%q) returned settings with error %v", raw, err)
			}
			return
		}
		if s.Host == "" {
			t.Fatalf("ParseSMTPURL(%q): empty host", raw)
		}
		if s.Port < 1 || s.Port > 65535 {
			t.Fatalf("ParseSMTPURL(%q): port %d", raw, s.Port)
		}
		switch s.TLS {
		case "implicit", "starttls", "opportunistic", "none":
		default:
			t.Fatalf("ParseSMTPURL(%q): TLS %q", raw, s.TLS)
		}
		if smtps := strings.HasPrefix(strings.ToLower(raw), "smtps:"); smtps != (s.TLS == "implicit") {
			t.Fatalf("ParseSMTPURL(%q): TLS %q", raw, s.TLS)
		}
		if s.Timeout <= 0 {
			t.Fatalf("ParseSMTPURL(%q): timeout %v", raw, s.Timeout)
		}
		if _, err := netmail.ParseAddress(s.From); err != nil {
			t.Fatalf("ParseSMTPURL(%q): from %q: %v", raw, s.From, err)
		}
		for name, v := range map[string]string{"host": s.Host, "from": s.From, "username": s.Username, "password": s.Password} {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("ParseSMTPURL(%q): %s %q holds CR, LF or NUL", raw, name, v)
			}
		}

		// Round trip through a URL built from the settings.
		u := url.URL{Scheme: "smtp", Host: joinHostPort(s.Host, s.Port)}
		q := url.Values{"from": {s.From}}
		if s.TLS == "implicit" {
			u.Scheme = "smtps"
		} else {
			q.Set("tls", s.TLS)
		}
		u.RawQuery = q.Encode()
		if s.Username != "" || s.Password != "" {
			u.User = url.UserPassword(s.Username, s.Password)
		}
		again, err := mail.ParseSMTPURL(u.String())
		if err != nil {
			t.Fatalf("ParseSMTPURL(%q) = %+v, written back as %q: %v", raw, *s, u.String(), err)
		}
		if *again != *s {
			t.Fatalf("ParseSMTPURL(%q) = %+v, but its URL %q parses to %+v", raw, *s, u.String(), *again)
		}
	})
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}
