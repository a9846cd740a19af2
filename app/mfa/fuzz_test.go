package mfa_test

import (
	"encoding/base32"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pquerna/otp"

	"github.com/gatehouse/gatehouse/app/mfa"
)

var sixDigits = regexp.MustCompile(`^[0-9]{6}$`)

// FuzzTOTPCode feeds typed codes to WellFormedCode and Match. Properties:
// a well-formed code is exactly six ASCII digits, is what was typed less
// spaces, and is a fixed point; Match accepts only the code of the current
// or the previous step (never anything else, whatever the input), and
// accepts both of those however they are spaced.
func FuzzTOTPCode(f *testing.F) {
	rfc := []byte("12345678901234567890")
	for _, s := range []struct {
		typed  string
		unix   int64
		secret []byte
	}{
		{"287082", 59, rfc},
		{"287 082", 59, rfc},
		{" 081804 ", 1111111109, rfc},
		{"050471", 1111111111, rfc},
		{"005924", 1234567890, rfc},
		{"279037", 2000000000, rfc},
		{"", 0, nil},
		{"000000", 1_700_000_000, []byte{0}},
		{"12345", 1, rfc},
		{"1234567", 1, rfc},
		{"12 34 56", 1, rfc},
		{"١٢٣٤٥٦", 1, rfc}, // Arabic-Indic digits
		{"１２３４５６", 1, rfc}, // full-width digits
		{"12345\x00", 1, rfc},
		{"123-456", 1, rfc},
		{"\t123456\n", 1, rfc},
		{"\u00a0123456\u00a0", 1, rfc},
		{"+12345", 1, rfc},
		{"-12345", 1, rfc},
		{"0x1234", 1, rfc},
		{"1e5000", 1, rfc},
		{strings.Repeat("1", 10000), 1, rfc},
		{"' OR 1=1 --", 1, rfc},
		{`["123456"]`, 1, rfc},
		{"\xff\xfe123456", 1, rfc},
	} {
		f.Add(s.typed, s.unix, s.secret)
	}
	f.Fuzz(func(t *testing.T, typed string, unix int64, key []byte) {
		code, ok := mfa.WellFormedCode(typed)
		stripped := strings.ReplaceAll(strings.TrimSpace(typed), " ", "")
		if ok != sixDigits.MatchString(stripped) {
			t.Fatalf("WellFormedCode(%q) ok = %v, but %q is six digits: %v", typed, ok, stripped, !ok)
		}
		if ok {
			if code != stripped {
				t.Fatalf("WellFormedCode(%q) = %q, want %q", typed, code, stripped)
			}
			if again, ok2 := mfa.WellFormedCode(code); !ok2 || again != code {
				t.Fatalf("WellFormedCode(%q) = %q, %v: not a fixed point", code, again, ok2)
			}
		} else if code != "" {
			t.Fatalf("WellFormedCode(%q) refused but returned %q", typed, code)
		}

		if len(key) == 0 {
			key = rfc
		}
		if len(key) > 64 {
			key = key[:64]
		}
		secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
		// Real clocks only: from the epoch to the year ~36812.
		if unix < 0 {
			unix = -unix
		}
		unix %= 1 << 40
		now := time.Unix(unix, 0)
		cur := mfa.Step(now)
		codeOf := func(step int64) string {
			c, err := mfa.CodeAt(secret, step, mfa.Digits)
			if err != nil {
				t.Fatalf("CodeAt(step %d): %v", step, err)
			}
			return c
		}
		curCode, prevCode := codeOf(cur), codeOf(cur-1)

		// Whatever was typed: accepted only as one of the two valid codes,
		// and the step returned is the one whose code it is.
		step := mfa.Match(secret, typed, now)
		switch step {
		case 0:
			if tc := strings.TrimSpace(typed); cur > 1 && (tc == curCode || tc == prevCode) {
				t.Fatalf("Match(%q) refused a valid code", typed)
			}
		case cur:
			if strings.TrimSpace(typed) != curCode {
				t.Fatalf("Match(%q) = current step, whose code is %s", typed, curCode)
			}
		case cur - 1:
			if strings.TrimSpace(typed) != prevCode || prevCode == curCode {
				t.Fatalf("Match(%q) = previous step, whose code is %s (current %s)", typed, prevCode, curCode)
			}
		default:
			t.Fatalf("Match(%q) = step %d, want 0, %d or %d", typed, step, cur, cur-1)
		}

		// The valid codes, spaced the way the fuzzer typed its input,
		// pass the handlers' path: WellFormedCode, then Match.
		if cur < 2 {
			return
		}
		for _, want := range []struct {
			code string
			step int64
		}{{curCode, cur}, {prevCode, cur - 1}} {
			spaced := spaceLike(typed, want.code)
			c, ok := mfa.WellFormedCode(spaced)
			if !ok {
				t.Fatalf("WellFormedCode(%q) refused the valid code %s", spaced, want.code)
			}
			got := mfa.Match(secret, c, now)
			if got != want.step && !(want.step == cur-1 && prevCode == curCode && got == cur) {
				t.Fatalf("Match(%q) = %d, want step %d", c, got, want.step)
			}
		}
		// The next step and the one two back are refused (unless their
		// code happens to equal a valid one: one in a million).
		for _, s := range []int64{cur + 1, cur - 2} {
			if c := codeOf(s); c != curCode && c != prevCode && mfa.Match(secret, c, now) != 0 {
				t.Fatalf("Match accepted the code of step %d at step %d", s, cur)
			}
		}
	})
}

// spaceLike puts ASCII spaces into code where typed has them (up to its
// length), and surrounds it with typed's leading and trailing white space.
func spaceLike(typed, code string) string {
	var b strings.Builder
	b.WriteString(typed[:len(typed)-len(strings.TrimLeft(typed, " \t\r\n"))])
	i := 0
	for _, r := range strings.TrimSpace(typed) {
		if i == len(code) {
			break
		}
		if r == ' ' {
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(code[i])
		i++
	}
	b.WriteString(code[i:])
	b.WriteString(typed[len(strings.TrimRight(typed, " \t\r\n")):])
	return b.String()
}

var recoveryForm = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$`)

// FuzzRecoveryCode feeds typed recovery codes to NormalizeRecoveryCode.
// Properties: what it accepts comes out in the canonical form (four groups
// of four characters of Crockford's alphabet, lowercase, dashes) and is a
// fixed point; the canonical form is what was typed with case, dashes and
// spaces dropped and i/l/o read as 1/1/0; every generated code comes back
// unchanged however a person retypes it (upper case, no dashes, spaces,
// look-alikes).
func FuzzRecoveryCode(f *testing.F) {
	for _, s := range []string{
		"abcd-efgh-jkmn-pqrs",
		"ABCD-EFGH-JKMN-PQRS",
		"abcdefghjkmnpqrs",
		"abcd efgh jkmn pqrs",
		" abcd-efgh-jkmn-pqrs ",
		"oooo-iiii-llll-0000",
		"OIL0-OIL0-OIL0-OIL0",
		"uuuu-uuuu-uuuu-uuuu",
		"abcd-efgh-jkmn-pqr",
		"abcd-efgh-jkmn-pqrst",
		"abcd--efgh--jkmn--pqrs",
		"abcd_efgh_jkmn_pqrs",
		"",
		"-",
		strings.Repeat("-", 64),
		strings.Repeat("a", 65),
		strings.Repeat("a", 10240),
		"ａｂｃｄ-efgh-jkmn-pqrs",           // full-width
		"abcd-efgh-jkmn-pqrſ",           // long s: ToLower keeps it, not ASCII
		"İbcd-efgh-jkmn-pqrs",           // dotted capital I lowercases to two runes
		"K\u212a\u212aK-efgh-jkmn-pqrs", // Kelvin sign lowercases to k
		"abcd-efgh-jkmn-pqrs\x00",
		"abcd\u00a0efgh\u00a0jkmn\u00a0pqrs",
		"\xff\xfe\xfd",
		`["abcd-efgh-jkmn-pqrs"]`,
		"'; DROP TABLE recovery_codes; --",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typed string) {
		code, ok := mfa.NormalizeRecoveryCode(typed)
		if !ok {
			if code != "" {
				t.Fatalf("NormalizeRecoveryCode(%q) refused but returned %q", typed, code)
			}
		} else {
			if !recoveryForm.MatchString(code) {
				t.Fatalf("NormalizeRecoveryCode(%q) = %q: not the canonical form", typed, code)
			}
			if again, ok := mfa.NormalizeRecoveryCode(code); !ok || again != code {
				t.Fatalf("NormalizeRecoveryCode(%q) = %q, %v: not a fixed point", code, again, ok)
			}
			if len(typed) > 64 {
				t.Fatalf("NormalizeRecoveryCode accepted %d bytes", len(typed))
			}
			want := strings.NewReplacer("-", "", " ", "", "i", "1", "l", "1", "o", "0").Replace(strings.ToLower(typed))
			if got := strings.ReplaceAll(code, "-", ""); got != want {
				t.Fatalf("NormalizeRecoveryCode(%q) = %q, want %q", typed, code, want)
			}
		}

		// A real code, retyped with the fuzzer's letters deciding upper case,
		// dashes and spaces, normalises back to itself.
		real := "0123-4567-89ab-cdef"
		if len(typed) >= 16 {
			// Map the input onto the alphabet to get a varied real code.
			const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
			var b []byte
			for i := 0; i < 16; i++ {
				b = append(b, alphabet[typed[i]%32])
			}
			real = string(b[0:4]) + "-" + string(b[4:8]) + "-" + string(b[8:12]) + "-" + string(b[12:16])
		}
		var retyped strings.Builder
		for i, r := range strings.ReplaceAll(real, "-", "") {
			var mode byte
			if i < len(typed) {
				mode = typed[i]
			}
			switch {
			case mode&1 == 1:
				retyped.WriteString(strings.ToUpper(string(r)))
			case r == '1' && mode&2 == 2:
				retyped.WriteString("l")
			case r == '1' && mode&4 == 4:
				retyped.WriteString("I")
			case r == '0' && mode&2 == 2:
				retyped.WriteString("O")
			default:
				retyped.WriteRune(r)
			}
			if mode&8 == 8 {
				retyped.WriteByte(' ')
			} else if mode&16 == 16 {
				retyped.WriteByte('-')
			}
		}
		if got, ok := mfa.NormalizeRecoveryCode(retyped.String()); !ok || got != real {
			t.Fatalf("NormalizeRecoveryCode(%q) = %q, %v; want %q", retyped.String(), got, ok, real)
		}
	})
}

// FuzzOTPAuthURI builds the otpauth:// URI for any workspace name and email
// and reads it back as authenticator apps do, with pquerna/otp's
// NewKeyFromURL. Property: the same secret, issuer, account, period,
// digits and algorithm come back, whatever the name and email contain
// (unicode, colons, ?, &, #, %, spaces, control characters).
func FuzzOTPAuthURI(f *testing.F) {
	for _, s := range [][2]string{
		{"Acme", "alice@acme.test"},
		{"Acme Corp", "bob+mfa@acme.test"},
		{"Acme: Ops", "alice@acme.test"},
		{"a:b:c", "x:y@acme.test"},
		{"Q&A ? #1 100%", "a&b=c?d#e%f@acme.test"},
		{"Ünïcødé ワークスペース", "ユーザー@例え.テスト"},
		{"  leading and trailing  ", " alice@acme.test "},
		{"", ""},
		{"%2F%3A%25", "%40"},
		{"a/b\\c", "../..@acme.test"},
		{"tab\tnew\nline\x00nul", "cr\r@lf\n"},
		{"\xff\xfe", "\xc0\x80"},
		{"+plus+", "space here@acme.test"},
		{"secret=AAAA&issuer=Evil", "x@acme.test&secret=BBBB"},
		{"🔐 Vault", "😀@emoji.test"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, issuer, account string) {
		secret := mfa.NewSecret()
		uri := mfa.URI(issuer, account, secret)
		k, err := otp.NewKeyFromURL(uri)
		if err != nil {
			t.Fatalf("NewKeyFromURL(URI(%q, %q)): %v", issuer, account, err)
		}
		if k.Type() != "totp" {
			t.Errorf("type = %q", k.Type())
		}
		if k.Secret() != secret {
			t.Errorf("URI(%q, %q): secret = %q, want %q", issuer, account, k.Secret(), secret)
		}
		if k.Issuer() != issuer {
			t.Errorf("URI(%q, %q): issuer = %q", issuer, account, k.Issuer())
		}
		if k.AccountName() != account {
			t.Errorf("URI(%q, %q): account = %q", issuer, account, k.AccountName())
		}
		if k.Period() != mfa.Period || k.Digits() != mfa.Digits || k.Algorithm() != otp.AlgorithmSHA1 {
			t.Errorf("URI(%q, %q): period %d, digits %d, algorithm %v", issuer, account, k.Period(), k.Digits(), k.Algorithm())
		}
		// The URI itself is printable ASCII (it goes into a QR code and a
		// link): nothing raw that a scanner or an app could split on.
		for i := 0; i < len(uri); i++ {
			if c := uri[i]; c <= ' ' || c >= 0x7f || c == '#' {
				t.Fatalf("URI(%q, %q) = %q: raw byte %q at %d", issuer, account, uri, c, i)
			}
		}
		if !utf8.ValidString(uri) {
			t.Fatalf("URI not UTF-8: %q", uri)
		}
	})
}
