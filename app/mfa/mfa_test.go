package mfa_test

import (
	"encoding/base32"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/gatehouse/gatehouse/app/mfa"
)

// RFC 6238 Appendix B, SHA-1 column, through CodeAt (pquerna/otp with our
// explicit parameters). The seed is the ASCII "12345678901234567890".
func TestRFC6238AppendixB(t *testing.T) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))
	for _, v := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		step := mfa.Step(time.Unix(v.unix, 0))
		if step != v.unix/30 {
			t.Errorf("Step(%d) = %d, want %d", v.unix, step, v.unix/30)
		}
		got, err := mfa.CodeAt(secret, step, 8)
		if err != nil {
			t.Fatalf("CodeAt(t=%d): %v", v.unix, err)
		}
		if got != v.want {
			t.Errorf("CodeAt(t=%d) = %s, want %s", v.unix, got, v.want)
		}
		// The 6-digit code is the last six digits of the same HOTP value.
		six, _ := mfa.CodeAt(secret, step, 6)
		if six != v.want[2:] {
			t.Errorf("CodeAt(t=%d, 6 digits) = %s, want %s", v.unix, six, v.want[2:])
		}
	}
}

// Match accepts the current step and the one before, and says which; the
// next step and two back are refused.
func TestMatchSkew(t *testing.T) {
	secret := mfa.NewSecret()
	now := time.Unix(1_700_000_015, 0)
	s := mfa.Step(now)
	code := func(step int64) string {
		c, err := mfa.CodeAt(secret, step, mfa.Digits)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got := mfa.Match(secret, code(s), now); got != s {
		t.Errorf("step s: Match = %d, want %d", got, s)
	}
	if got := mfa.Match(secret, code(s-1), now); got != s-1 {
		t.Errorf("step s-1: Match = %d, want %d", got, s-1)
	}
	for _, step := range []int64{s + 1, s - 2, s + 2, s - 3} {
		c := code(step)
		if c == code(s) || c == code(s-1) {
			continue // a coincidence of six digits, not a skew bug
		}
		if got := mfa.Match(secret, c, now); got != 0 {
			t.Errorf("step %+d: Match = %d, want 0 (refused)", step-s, got)
		}
	}
	for _, bad := range []string{"", "000000000", "abcdef", code(s) + "0", "０" + code(s)[1:]} {
		if got := mfa.Match(secret, bad, now); got != 0 {
			t.Errorf("Match(%q) = %d, want 0", bad, got)
		}
	}
}

func TestNewSecretIs160Bits(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := mfa.NewSecret()
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
		if err != nil || len(raw) != 20 {
			t.Fatalf("secret %q: %d bytes, err %v; want 20", s, len(raw), err)
		}
		if seen[s] {
			t.Fatalf("secret repeated: %q", s)
		}
		seen[s] = true
	}
}

func TestWellFormedCode(t *testing.T) {
	for in, want := range map[string]string{"123456": "123456", " 123 456 ": "123456", "000000": "000000"} {
		if got, ok := mfa.WellFormedCode(in); !ok || got != want {
			t.Errorf("WellFormedCode(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "12345", "1234567", "12345a", "١٢٣٤٥٦", "１２３４５６", "' OR 1=1", strings.Repeat("1", 10000), "12\x0034"} {
		if got, ok := mfa.WellFormedCode(in); ok {
			t.Errorf("WellFormedCode(%q) = %q, true; want refused", in, got)
		}
	}
}

var recoveryFormat = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$`)

// 10 unique codes of 16 characters from a 32-letter alphabet (80 bits),
// lowercase Crockford without i, l, o, u.
func TestRecoveryCodes(t *testing.T) {
	all := map[string]bool{}
	counts := map[rune]int{}
	for range 200 {
		codes := mfa.NewRecoveryCodes()
		if len(codes) != 10 {
			t.Fatalf("%d codes, want 10", len(codes))
		}
		batch := map[string]bool{}
		for _, c := range codes {
			if !recoveryFormat.MatchString(c) {
				t.Fatalf("code %q is not xxxx-xxxx-xxxx-xxxx in the Crockford lowercase alphabet", c)
			}
			if batch[c] {
				t.Fatalf("duplicate code in one set: %q", c)
			}
			batch[c] = true
			if all[c] {
				t.Fatalf("code %q repeated across sets: not 80 random bits", c)
			}
			all[c] = true
			for _, r := range strings.ReplaceAll(c, "-", "") {
				counts[r]++
			}
		}
	}
	// Every one of the 32 letters is used (16 chars × 5 bits = 80 bits).
	if len(counts) != 32 {
		t.Fatalf("alphabet in use has %d letters, want 32: %v", len(counts), counts)
	}
	for _, r := range "iluo" {
		if counts[r] > 0 {
			t.Errorf("look-alike %q used", r)
		}
	}
	// 32,000 letters over 32 symbols: ~1000 each; a biased encoder would
	// show far outside this band.
	for r, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("letter %q appears %d times in 32000, want about 1000", r, n)
		}
	}
}

func TestNormalizeRecoveryCode(t *testing.T) {
	code := "ab12-cd34-ef56-gh78"
	for _, in := range []string{code, "AB12-CD34-EF56-GH78", "ab12cd34ef56gh78", "AB12CD34EF56GH78", " ab12 cd34 ef56 gh78 ", "Ab12-cD34ef56-Gh78"} {
		if got, ok := mfa.NormalizeRecoveryCode(in); !ok || got != code {
			t.Errorf("NormalizeRecoveryCode(%q) = %q, %v; want %q", in, got, ok, code)
		}
	}
	// Crockford look-alikes read as digits.
	if got, ok := mfa.NormalizeRecoveryCode("OIL0-0000-0000-0000"); !ok || got != "0110-0000-0000-0000" {
		t.Errorf("look-alikes: %q %v", got, ok)
	}
	for _, in := range []string{"", "ab12-cd34-ef56-gh7", "ab12-cd34-ef56-gh789", "ab12-cd34-ef56-gh7u", "ab12-cd34-ef56-gh7é",
		"ａｂ12-cd34-ef56-gh78", "' OR '1'='1'; --", strings.Repeat("a", 10000), strings.Repeat("-", 64) + "ab12cd34ef56gh78"} {
		if got, ok := mfa.NormalizeRecoveryCode(in); ok {
			t.Errorf("NormalizeRecoveryCode(%q) = %q, true; want refused", in, got)
		}
	}
}

func TestURIAndGroup(t *testing.T) {
	u := mfa.URI("Acme Corp", "alice@acme.test", "JBSWY3DPEHPK3PXP")
	for _, want := range []string{"otpauth://totp/Acme%20Corp:alice@acme.test?", "secret=JBSWY3DPEHPK3PXP", "algorithm=SHA1", "digits=6", "period=30", "issuer=Acme+Corp"} {
		if !strings.Contains(u, want) {
			t.Errorf("URI %q lacks %q", u, want)
		}
	}
	if g := mfa.GroupSecret("JBSWY3DPEHPK3PXP"); g != "JBSW Y3DP EHPK 3PXP" {
		t.Errorf("GroupSecret = %q", g)
	}
}

// A workspace name with a colon stays the issuer and does not leak into the
// account name apps read from the label (found by FuzzOTPAuthURI: "Acme:
// Ops" gave the account " Ops:alice@acme.test").
func TestURIIssuerWithColon(t *testing.T) {
	u := mfa.URI("Acme: Ops", "alice@acme.test", "JBSWY3DPEHPK3PXP")
	k, err := otp.NewKeyFromURL(u)
	if err != nil {
		t.Fatalf("NewKeyFromURL(%q): %v", u, err)
	}
	if k.Issuer() != "Acme: Ops" || k.AccountName() != "alice@acme.test" {
		t.Errorf("URI %q reads as issuer %q, account %q", u, k.Issuer(), k.AccountName())
	}
}
