package sms_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app/sms"
)

// FuzzParse: what Parse accepts is E.164 of an allowed country and a
// texting type, and parses again to itself; Mask, given the same input,
// shows no digit but the calling code and at most the last 3.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"07400 123456", "+44 (0)7400 123456", "(201) 555-0123", "+1 506 234 5678",
		"01512 3456789", "06/12/34/56/78", "０７４００ １２３４５６", "0901 234 5678", "+800 1234 5678",
		"+447400123456", "+6837012", "+390612345678", "0800 FLOWERS", "+44\u202e7400", "\xff", ""} {
		f.Add(s, "GB")
	}
	allowed := []string{"GB", "US", "CA", "DE", "FR", "IN", "IT", "JP", "NU"}
	e164 := regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	f.Fuzz(func(t *testing.T, input, country string) {
		n, err := sms.Parse(input, country, allowed)
		if err == nil {
			if !e164.MatchString(n.E164) || !slices.Contains(allowed, n.Country) ||
				(n.Type != "mobile" && n.Type != "fixed_line_or_mobile") {
				t.Fatalf("Parse(%q, %q) = %+v", input, country, n)
			}
			if again, err := sms.Parse(n.E164, "", allowed); err != nil || again != n {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", n.E164, again, err, n)
			}
			checkMask(t, n.E164)
		}
		checkMask(t, input)
	})
}

func checkMask(t *testing.T, s string) {
	m := sms.Mask(s)
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, m)
	if digits == "" {
		return
	}
	fields := strings.Fields(m)
	cc := strings.TrimPrefix(fields[0], "+")
	shown := strings.TrimPrefix(digits, cc)
	if !strings.HasPrefix(s, "+"+cc) || len(shown) > 3 || !strings.HasSuffix(s, shown) || (shown != "" && len(s)-len(cc)-1-len(shown) < 4) {
		t.Fatalf("Mask(%q) = %q", s, m)
	}
}
