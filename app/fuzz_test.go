package app

// Fuzz targets for the parsers of outside input that are not exported:
// the next= redirect check, token syntax, the JSON body decoders, CSV cells
// and the configuration. The JSON API through the running stack is fuzzed
// in api_fuzz_test.go. See docs/FUZZING.md.

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"path"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// fuzzTenants are the three ways a workspace is reached: by path, on its own
// host (empty base) and the support console.
var fuzzTenants = []*tenants.Tenant{
	{Workspace: db.Workspace{ID: 1, Slug: "acme"}, Base: "/t/acme"},
	{Workspace: db.Workspace{ID: 1, Slug: "acme"}, Base: "", OnHost: true},
	{Workspace: db.Workspace{ID: 2, Slug: "support"}, Base: "/support", Support: true},
}

// FuzzSafeNext feeds next= values to safeNext. Property: it answers either
// the workspace's home or a same-workspace relative path: one leading "/"
// (never "//" or "/\"), no backslash, no control character, no scheme, host
// or user, not the sign-in pages or the API, and a browser resolving it
// against the workspace's origin (dot segments, percent-encoded dots
// included) stays under the workspace's base. What it accepts it accepts
// again unchanged.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{
		"", "/t/acme/account", "/t/acme/account/mfa?x=1#frag", "/t/acme/", "/t/acme", "/account",
		"/t/acme/admin/members?q=a%20b&page=2", "/support/members", "/support/cases/3",
		"//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "/t/acme/\\..\\..\\x",
		"https://evil.example/t/acme/account", "http:/t/acme/account", "javascript:alert(1)", "JaVaScRiPt:alert(1)",
		"data:text/html,<script>", "/t/acme/../other/account", "/t/acme/%2e%2e/other", "/t/acme/%2E%2E/%2E%2E/x",
		"/t/acme/.%2e/x", "/t/acme/%2f%2fevil.example", "/t/acme/%5c%5cevil.example", "/t/acme//evil.example",
		"/t/acme/./account", "/t/acme/login", "/t/acme/login/mfa", "/t/acme/loginx", "/t/acme/api/v1/session",
		"/t/acme-evil/account", "/t/acmeX", "/t/acme/account\r\nSet-Cookie: x=y", "/t/acme/account\t",
		"/t/acme/\x00", "/t/acme/\x7f", "/t/acme/%00", "/t/acme/%0d%0a", "/t/acme/ünïcødé", "/t/acme/%ff",
		"/t/acme/account?next=//evil.example", "/t/acme/account?\\", "@evil.example", "/@evil.example",
		"//user:pass@evil.example", "/t/acme/account;jsessionid=1", strings.Repeat("/t/acme/a", 300),
		" /t/acme/account", "/t/acme/account ", "%2f%2fevil.example", "/%09/evil.example", "/.//evil.example",
	} {
		// Each seed against one of the three tenants, in turn: few seeds
		// keep the baseline short in make test.
		f.Add(s, uint8(len(s)%len(fuzzTenants)))
	}
	s := &Server{}
	f.Fuzz(func(t *testing.T, next string, which uint8) {
		ten := fuzzTenants[int(which)%len(fuzzTenants)]
		home := ten.Base + "/account"
		if ten.Support {
			home = ten.Base + "/members"
		}
		got := s.safeNext(ten, next)
		if got == home {
			return
		}
		if err := sameWorkspacePath(ten.Base, got); err != nil {
			t.Fatalf("safeNext(base %q, %q) = %q: %v", ten.Base, next, got, err)
		}
		if again := s.safeNext(ten, got); again != got {
			t.Fatalf("safeNext(base %q, %q) = %q, but safeNext(%q) = %q", ten.Base, next, got, got, again)
		}
	})
}

// sameWorkspacePath checks that p is a redirect target inside the
// workspace at base, as a browser would read it.
func sameWorkspacePath(base, p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return errors.New("not an absolute path")
	case strings.HasPrefix(p, "//"):
		return errors.New("scheme-relative URL")
	case strings.ContainsRune(p, '\\'):
		return errors.New("backslash (browsers read it as /)")
	case strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return errors.New("control character")
	case len(p) > 4096:
		return errors.New("too long")
	}
	u, err := url.Parse(p)
	if err != nil {
		return err
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return errors.New("scheme, host or user")
	}
	// Browsers treat "%2e" like "." in dot segments and lowercase nothing:
	// decode those before resolving.
	raw := u.EscapedPath()
	segs := strings.Split(raw, "/")
	for i, s := range segs {
		s = strings.ReplaceAll(strings.ToLower(s), "%2e", ".")
		if s == "." || s == ".." {
			return errors.New("dot segment")
		}
		segs[i] = s
	}
	origin, _ := url.Parse("https://gatehouse.example")
	r := origin.ResolveReference(&url.URL{Path: u.Path, RawQuery: u.RawQuery})
	if r.Host != origin.Host || r.Scheme != origin.Scheme {
		return errors.New("leaves the origin")
	}
	clean := path.Clean(r.Path)
	if !strings.HasPrefix(clean+"/", base+"/") {
		return errors.New("outside the workspace's base")
	}
	if strings.HasPrefix(clean, base+"/login") || strings.Contains(clean, "/api/") {
		return errors.New("sign-in page or API")
	}
	return nil
}

const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// FuzzWellFormedToken feeds cookie values, bearer tokens and link tokens
// (invitation, recovery, cancel, enrollment, trusted device) to
// wellFormedToken, the gate before any store lookup. Property: what it
// accepts is exactly 43 characters of the base64url alphabet (256 bits,
// what auth.NewToken and scs make), so no other byte reaches the store or
// the logs; every freshly made token is accepted.
func FuzzWellFormedToken(f *testing.F) {
	for _, s := range []string{
		auth.NewToken(), "", "x", strings.Repeat("A", 43), strings.Repeat("A", 42), strings.Repeat("A", 44),
		strings.Repeat("_", 43), strings.Repeat("-", 43), strings.Repeat("+", 43), strings.Repeat("/", 43),
		strings.Repeat("A", 42) + "=", strings.Repeat("A", 41) + "==", "\n" + strings.Repeat("A", 42),
		strings.Repeat("A", 21) + "\r" + strings.Repeat("A", 21), strings.Repeat("A", 42) + "\x00",
		strings.Repeat("A", 40) + "é", strings.Repeat("A", 42) + " ", "Bearer " + strings.Repeat("A", 36),
		strings.Repeat("A", 42) + "B", strings.Repeat("A", 42) + "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if wellFormedToken(tok) {
			if len(tok) != 43 {
				t.Fatalf("wellFormedToken accepted %d bytes: %q", len(tok), tok)
			}
			for i := 0; i < len(tok); i++ {
				if !strings.ContainsRune(base64URL, rune(tok[i])) {
					t.Fatalf("wellFormedToken(%q) accepted byte %q at %d", tok, tok[i], i)
				}
			}
			if b, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(b) != 32 {
				t.Fatalf("wellFormedToken(%q) accepted %d bytes, %v", tok, len(b), err)
			}
		}
		if n := auth.NewToken(); !wellFormedToken(n) {
			t.Fatalf("wellFormedToken refused a new token %q", n)
		}
	})
}

// The request bodies the API decodes, each with the decoder it goes
// through.
var fuzzBodies = []struct {
	name   string
	new    func() any
	policy bool // decodePolicyJSON (unknown fields refused) instead of decodeJSON
}{
	{"login", func() any { return new(apiLoginRequest) }, false},
	{"mfa", func() any { return new(apiMFARequest) }, false},
	{"code", func() any { return new(apiCodeRequest) }, false},
	{"role", func() any { return new(apiRoleRequest) }, false},
	{"invite", func() any { return new(apiInviteRequest) }, false},
	{"extend", func() any { return new(apiExtendRequest) }, false},
	{"reset", func() any { return new(apiResetMFARequest) }, false},
	{"case", func() any { return new(apiCaseRequest) }, false},
	{"approve", func() any { return new(apiApproveRequest) }, false},
	{"reject", func() any { return new(apiRejectRequest) }, false},
	{"enroll", func() any { return new(apiEnrollRequest) }, false},
	{"ceremony", func() any { return new(ceremonyRequest) }, false},
	{"policy", func() any { return new(apiPolicyPut) }, true},
}

// FuzzDecodeJSON feeds bodies and content types to decodeJSON and
// decodePolicyJSON with every request struct of the API. Properties: no
// panic; a refusal is a clean *Error, 415 unsupported_media_type exactly
// when the content type is not application/json, else 400 (invalid_request,
// or invalid_policy for the policy); what is accepted is one JSON object and
// nothing after it, and decodes to the same value encoding/json gives; the
// policy decoder accepts no unknown field and nothing over 64 KiB.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"email":"alice@acme.test","password":"correct horse"}`, `{"code":"123456"}`, `{"recovery_code":"abcd-efgh-jkmn-pqrs"}`,
		`{"mfa_token":"x","code":"123 456"}`, `{"role":"owner"}`, `{"email":"a@b.c","role":"admin"}`, `{"days":30}`,
		`{"days":1e400}`, `{"days":-1}`, `{"days":9223372036854775808}`, `{"days":"30"}`, `{"end_sessions":false}`,
		`{"workspace":"acme","member_id":3,"verification":{"method":"video","evidence_ref":"T-1","notes":"ok"}}`,
		`{"delay_hours":null}`, `{"reason":"no"}`, `{"enrollment_token":"t","code":"1"}`,
		`{"name":"key","ceremony":"c","credential":{"id":"x","response":{}}}`, `{"credential":[1,2,3]}`,
		`{"policy":"required","methods":["totp","webauthn"],"grace_days":7,"reminder_days":[7,1]}`,
		`{"enforced_since":"2026-01-01T00:00:00Z","trusted_device_days":30}`, `{"polcy":"required"}`,
		``, ` `, `null`, `true`, `0`, `"str"`, `[]`, `[{"code":"1"}]`, `{}`, `{}{}`, `{} {}`, `{} x`, `{}]`, `{"code":"1"`,
		`{"code":"1",}`, `{"code":"\ud800"}`, `{"code":"\u0000"}`, "{\"code\":\"\xff\"}", `{"CODE":"1","code":"2"}`,
		`{"code":1}`, `{"code":{"$ne":null}}`, `{"__proto__":{"admin":true}}`, "\ufeff{}", "{}\n", "\t{ }\r\n",
		`{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, `{"code":"` + strings.Repeat("9", 70000) + `"}`,
	} {
		ct := "application/json"
		if len(s)%2 == 1 {
			ct = "application/json; charset=utf-8"
		}
		f.Add([]byte(s), ct, uint8(len(s)%len(fuzzBodies)))
	}
	for i := range fuzzBodies {
		f.Add([]byte(`{"code":"123456"}`), "application/json", uint8(i))
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "APPLICATION/JSON", "application/json;", "application/json; =", "application/jsonx", "multipart/form-data; boundary=x"} {
		f.Add([]byte(`{}`), ct, uint8(2))
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte, ct string, which uint8) {
		b := fuzzBodies[int(which)%len(fuzzBodies)]
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set(echo.HeaderContentType, ct)
		c := e.NewContext(req, httptest.NewRecorder())
		v := b.new()
		var err error
		if b.policy {
			err = decodePolicyJSON(c, v)
		} else {
			err = decodeJSON(c, v)
		}
		mt, _, mtErr := mime.ParseMediaType(ct)
		jsonType := mtErr == nil && mt == echo.MIMEApplicationJSON
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%s(%q, %q): %T %v, want *Error", b.name, ct, body, err, err)
			}
			switch {
			case e.Status == http.StatusUnsupportedMediaType && e.Code == "unsupported_media_type":
			case e.Status == http.StatusBadRequest && (e.Code == "invalid_request" || (b.policy && e.Code == "invalid_policy")):
				if !jsonType {
					t.Fatalf("%s(%q): 400 for a body that is not JSON by its type", b.name, ct)
				}
			default:
				t.Fatalf("%s(%q, %q): %d %s, want 400 or 415", b.name, ct, body, e.Status, e.Code)
			}
			if e.Message == "" || strings.Contains(e.Message, "\n") {
				t.Fatalf("%s: message %q", b.name, e.Message)
			}
			return
		}
		if !jsonType {
			t.Fatalf("%s accepted content type %q", b.name, ct)
		}
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		if !json.Valid(body) || len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("%s accepted %q: not one JSON object", b.name, body)
		}
		want := b.new()
		if err := json.Unmarshal(body, want); err != nil {
			t.Fatalf("%s accepted %q, which encoding/json refuses: %v", b.name, body, err)
		}
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("%s(%q) = %+v, encoding/json says %+v", b.name, body, v, want)
		}
		if b.policy {
			if len(body) > 1<<16 {
				t.Fatalf("policy accepted %d bytes", len(body))
			}
			strict := json.NewDecoder(bytes.NewReader(body))
			strict.DisallowUnknownFields()
			if err := strict.Decode(b.new()); err != nil {
				t.Fatalf("policy accepted %q: %v", body, err)
			}
		}
	})
}

// FuzzCSVSafe writes audit values (emails, user agents, details: chosen by
// members and attackers) as CSV cells the way the export does. Properties:
// read back with encoding/csv, the row has the same cells; no cell starts
// with a character that makes a spreadsheet evaluate it (= + - @ tab CR);
// a neutralised cell is the value behind one quote, nothing lost.
func FuzzCSVSafe(f *testing.F) {
	for _, s := range [][3]string{
		{"alice@acme.test", "Mozilla/5.0 (X11; Linux x86_64)", `{"method":"totp"}`},
		{"=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3"},
		{"@SUM(1+1)*cmd|' /C calc'!A0", "\t=1", "\r=1"},
		{"a,b", `say "hi"`, "line\nbreak"},
		{"", "'", "''=1"},
		{"\r\n=1", "\n=1", " =1"},
		{"ünïcødé", "\xff\xfe", "\x00=1"},
		{"＝1+1", "﹢1", "\u200b=1"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		in := []string{a, b, c}
		row := []string{"2026-01-01T00:00:00Z"}
		for _, s := range in {
			row = append(row, csvSafe(s))
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if err := w.Write(row); err != nil {
			t.Fatalf("write %q: %v", row, err)
		}
		w.Flush()
		got, err := csv.NewReader(&buf).Read()
		if err != nil {
			t.Fatalf("read back %q: %v", buf.String(), err)
		}
		if len(got) != len(row) {
			t.Fatalf("%q written as %q reads as %d cells: %q", in, buf.String(), len(got), got)
		}
		for i, s := range in {
			cell := got[i+1]
			// encoding/csv reads a quoted CRLF as LF: the only change allowed.
			if cell != strings.ReplaceAll(row[i+1], "\r\n", "\n") {
				t.Fatalf("cell %d of %q reads back as %q, wrote %q", i, in, cell, row[i+1])
			}
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Fatalf("csvSafe(%q) = %q: a spreadsheet evaluates it", s, cell)
			}
			if row[i+1] != s && row[i+1] != "'"+s {
				t.Fatalf("csvSafe(%q) = %q: more than one quote in front", s, row[i+1])
			}
		}
	})
}

// FuzzValidEmail feeds addresses typed into the invitation form, the API
// and the CLI to ValidEmail. Property: what it accepts is one plain
// address of at most 254 bytes, valid UTF-8, with exactly one @, a dot in
// the domain, no white space, control or format character (nothing that
// splits a mail header or a log line, or reverses text on screen), which net/mail parses back to itself.
func FuzzValidEmail(f *testing.F) {
	for _, s := range []string{
		"alice@acme.test", "bob+mfa@acme.test", "a.b-c_d@sub.acme.test", "ユーザー@例え.テスト", "alice@localhost",
		"Alice <alice@acme.test>", "alice@acme.test, bob@acme.test", `"a b"@acme.test`, `"a@b"@acme.test`, "a@b@acme.test",
		"alice@acme.test\r\nBcc: evil@example.com", "alice@acme.test\n", " alice@acme.test", "alice@[127.0.0.1]",
		"alice@acme..test", ".alice@acme.test", "alice.@acme.test", "alice@-acme.test", "alice@acme.test.", "@acme.test",
		"alice@", "alice", "", strings.Repeat("a", 250) + "@a.bc", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".test",
		"a\u0085b@acme.test", "a\u2028b@acme.test", "a\u202eb@acme.test", "a\x00b@acme.test", "a\x7fb@acme.test",
		"\xff@acme.test", "alice@acme.test;bob@acme.test", "(comment)alice@acme.test", "alice@acme.test(comment)",
		"=cmd@acme.test", "alice%40acme.test@evil.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidEmail(s) {
			return
		}
		switch {
		case len(s) > maxEmailLength:
			t.Fatalf("ValidEmail accepted %d bytes", len(s))
		case !utf8.ValidString(s):
			t.Fatalf("ValidEmail(%q): invalid UTF-8", s)
		case strings.Count(s, "@") != 1:
			t.Fatalf("ValidEmail(%q): %d @", s, strings.Count(s, "@"))
		case !strings.Contains(s[strings.IndexByte(s, '@'):], "."):
			t.Fatalf("ValidEmail(%q): no dot in the domain", s)
		case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
			t.Fatalf("ValidEmail(%q): white space, control or format character", s)
		case strings.ContainsAny(s, "<>\",;()"):
			t.Fatalf("ValidEmail(%q): display name, list or comment syntax", s)
		}
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s || a.Name != "" {
			t.Fatalf("ValidEmail(%q), but net/mail reads %+v, %v", s, a, err)
		}
	})
}

// FuzzLoadConfig feeds the environment variables that are parsed (base URL,
// base domain, trusted proxies, password-hash parameters) to LoadConfig.
// Properties: no panic; an accepted base URL is http(s) with a host, no
// query, fragment or trailing slash; accepted proxies and hash parameters
// round-trip through their String forms; hash parameters are usable
// (t, p ≥ 1, m ≥ 8p).
func FuzzLoadConfig(f *testing.F) {
	for _, s := range [][4]string{
		{"https://gatehouse.example", "gatehouse.example", "10.0.0.1, 192.168.0.0/16", "argon2id:m=19456,t=2,p=1"},
		{"http://localhost:8080/", "", "::1 fd00::/8", ""},
		{"https://gatehouse.example/base/", "EXAMPLE.COM ", "10.0.0.1,,", "argon2id:m=8,t=1,p=1"},
		{"https://gatehouse.example?x=1", "", "10.0.0.1/33", "argon2id:m=1,t=1,p=1"},
		{"https://gatehouse.example#f", "", "10.0.0.256", "argon2id:m=8,t=0,p=1"},
		{"ftp://gatehouse.example", "", "not-an-ip", "argon2id:m=8,t=1,p=256"},
		{"https://", "", "1.2.3.4/0", "argon2id:t=1,p=1,m=8"},
		{"//gatehouse.example", "", "::ffff:1.2.3.4", "argon2id:m=8,t=1,p=1,m=9"},
		{"https://user:pass@gatehouse.example", "", "1.2.3.4/24", "argon2id:m=-1,t=1,p=1"},
		{"https://[::1]:8443", "", "fe80::1%eth0", "argon2id:m=4294967295,t=4294967295,p=255"},
		{"javascript:alert(1)", "", "0.0.0.0/0,::/0", "argon2i:m=8,t=1,p=1"},
		{"https://gatehouse.example\r\n", "", "1.2.3.4\n", "argon2id:m=8,t=1,p=1 "},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, baseURL, baseDomain, proxies, hash string) {
		env := map[string]string{
			"GATEHOUSE_BASE_URL": baseURL, "GATEHOUSE_BASE_DOMAIN": baseDomain,
			"GATEHOUSE_TRUSTED_PROXIES": proxies, "GATEHOUSE_PASSWORD_HASH": hash,
		}
		c, err := LoadConfig(func(k string) string { return env[k] })
		if err != nil {
			return
		}
		if baseURL != "" {
			u := c.BaseURL
			if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
				strings.HasSuffix(u.Path, "/") {
				t.Fatalf("GATEHOUSE_BASE_URL %q accepted as %#v", baseURL, u)
			}
			if again, err := ParseBaseURL(u.String()); err != nil || again.String() != u.String() {
				t.Fatalf("GATEHOUSE_BASE_URL %q = %q, which parses to %v, %v", baseURL, u, again, err)
			}
		}
		if c.BaseDomain != strings.ToLower(c.BaseDomain) || c.BaseDomain != strings.TrimSpace(c.BaseDomain) {
			t.Fatalf("GATEHOUSE_BASE_DOMAIN %q kept as %q", baseDomain, c.BaseDomain)
		}
		var nets []string
		for _, n := range c.TrustedProxies {
			if n == nil || n.IP == nil || n.Mask == nil {
				t.Fatalf("GATEHOUSE_TRUSTED_PROXIES %q: incomplete network %v", proxies, n)
			}
			nets = append(nets, n.String())
		}
		again, err := ParseCIDRs(strings.Join(nets, ","))
		if err != nil || len(again) != len(nets) {
			t.Fatalf("GATEHOUSE_TRUSTED_PROXIES %q = %q, which parses to %v, %v", proxies, nets, again, err)
		}
		for i := range again {
			if again[i].String() != nets[i] {
				t.Fatalf("GATEHOUSE_TRUSTED_PROXIES %q: %s reads back as %s", proxies, nets[i], again[i])
			}
		}
		p := c.PasswordHash
		if p.Time < 1 || p.Threads < 1 || p.Memory < 8*uint32(p.Threads) {
			t.Fatalf("GATEHOUSE_PASSWORD_HASH %q accepted as %+v", hash, p)
		}
		if back, err := auth.ParseParams(p.String()); err != nil || back != p {
			t.Fatalf("GATEHOUSE_PASSWORD_HASH %q = %+v, whose String %q reads as %+v, %v", hash, p, p.String(), back, err)
		}
	})
}

// Regression tests for what the fuzz targets above found.

// wellFormedToken let CR and LF through (the base64 decoder skips them), so
// a 43-byte value with a line break reached the store lookups.
func TestWellFormedTokenRefusesLineBreaks(t *testing.T) {
	t.Parallel()
	for _, tok := range []string{"\n" + strings.Repeat("A", 42), strings.Repeat("A", 21) + "\r" + strings.Repeat("A", 21),
		strings.Repeat("A", 41) + "\r\n"} {
		if wellFormedToken(tok) {
			t.Errorf("wellFormedToken(%q) = true", tok)
		}
	}
	if tok := auth.NewToken(); !wellFormedToken(tok) {
		t.Errorf("wellFormedToken(%q) = false", tok)
	}
}

// decodeJSON and decodePolicyJSON read a null body as an empty object.
func TestDecodeJSONRefusesNonObjects(t *testing.T) {
	t.Parallel()
	e := echo.New()
	for _, body := range []string{"null", " null ", "[]", `"x"`, "1", "true"} {
		for _, policy := range []bool{false, true} {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
			c := e.NewContext(req, httptest.NewRecorder())
			var err error
			if policy {
				err = decodePolicyJSON(c, new(apiPolicyPut))
			} else {
				err = decodeJSON(c, new(apiCodeRequest))
			}
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
				t.Errorf("decode (policy %v) %q = %v, want 400", policy, body, err)
			}
		}
	}
}

// safeNext accepted a next of at most 2048 bytes whose escaped form, the
// redirect it answered, was three times longer, and then refused that
// answer itself (found by FuzzSafeNext in the long run; the input is also
// in testdata/fuzz/FuzzSafeNext).
func TestSafeNextBoundsTheEscapedTarget(t *testing.T) {
	t.Parallel()
	ten := fuzzTenants[0]
	next := ten.Base + "/" + strings.Repeat("\xfa", 2000)
	if got := (&Server{}).safeNext(ten, next); len(got) > 2048 {
		t.Errorf("safeNext(%d bytes) = %d bytes", len(next), len(got))
	}
	if got := (&Server{}).safeNext(ten, ten.Base+"/account/mfa?x=%C3%BC"); got != ten.Base+"/account/mfa?x=%C3%BC" {
		t.Errorf("safeNext refused a plain target: %q", got)
	}
}

// FuzzParseAuditTime feeds the audit log's since= and until= filters (page
// and API) to parseAuditTime. Properties: an accepted time is UTC with a
// four-digit year (1970–9999, so that stored timestamps compare as text);
// a date reads as the whole UTC day and formats back to itself; the end of
// a range is after its start by at most a day (a date) or a second (a time).
func FuzzParseAuditTime(f *testing.F) {
	for _, s := range []string{
		"2026-01-31", "2026-02-30", "1970-01-01", "1969-12-31", "9999-12-31", "0000-01-01", "2026-1-1",
		"2026-01-31T12:34:56Z", "2026-01-31T12:34:56.999999999+14:00", "1970-01-01T00:30:00+01:00",
		"9999-12-31T23:59:59Z", "9999-12-31T23:30:00-01:00", "2026-01-31T12:34:56", "2026-01-31 12:34:56Z",
		"", " ", "today", "-2026-01-31", "+2026-01-31", "2026-01-31\x00", strings.Repeat("9", 41),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, errStart := parseAuditTime(s, false)
		end, errEnd := parseAuditTime(s, true)
		for _, v := range []struct {
			t   time.Time
			err error
		}{{start, errStart}, {end, errEnd}} {
			if v.err != nil || s == "" {
				if !v.t.IsZero() {
					t.Fatalf("parseAuditTime(%q) = %v with %v", s, v.t, v.err)
				}
				continue
			}
			if v.t.Location() != time.UTC || v.t.Year() < 1970 || v.t.Year() > 9999 {
				t.Fatalf("parseAuditTime(%q) = %v: not UTC in 1970–9999", s, v.t)
			}
		}
		if errStart != nil || errEnd != nil || s == "" {
			return
		}
		d := end.Sub(start)
		if len(s) == len(time.DateOnly) {
			if start.Format(time.DateOnly) != s || d != 24*time.Hour {
				t.Fatalf("parseAuditTime(%q) = %v .. %v", s, start, end)
			}
		} else if d <= 0 || d > time.Second {
			t.Fatalf("parseAuditTime(%q) = %v .. %v", s, start, end)
		}
	})
}

// parseAuditTime checked the year before converting to UTC, so an offset
// moved an accepted time to 1969 or 10000 (found by FuzzParseAuditTime).
func TestParseAuditTimeYearInUTC(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"1970-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"} {
		if got, err := parseAuditTime(s, false); err == nil {
			t.Errorf("parseAuditTime(%q) = %v, want refused", s, got)
		}
	}
	if got, err := parseAuditTime("1970-01-01T01:30:00+01:00", false); err != nil || !got.Equal(time.Unix(1800, 0)) {
		t.Errorf("parseAuditTime = %v, %v", got, err)
	}
}
