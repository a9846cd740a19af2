package mfa

import (
	"crypto/rand"
	"strings"
)

// Recovery codes: 10 per member, each 80 bits shown as xxxx-xxxx-xxxx-xxxx
// in Crockford's base32 alphabet (lowercase digits and letters without i, l,
// o and u, so nothing looks alike).
const (
	RecoveryCodeCount = 10
	recoveryAlphabet  = "0123456789abcdefghjkmnpqrstvwxyz"
	recoveryLen       = 16
)

// NewRecoveryCodes returns RecoveryCodeCount fresh codes, formatted.
func NewRecoveryCodes() []string {
	out := make([]string, RecoveryCodeCount)
	seen := map[string]bool{}
	for i := range out {
		for {
			c := newRecoveryCode()
			if !seen[c] {
				seen[c] = true
				out[i] = c
				break
			}
		}
	}
	return out
}

func newRecoveryCode() string {
	b := make([]byte, 10) // 80 bits
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	// 80 bits = 16 groups of 5 bits.
	var acc uint64
	var bits uint
	var s strings.Builder
	for _, x := range b {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			s.WriteByte(recoveryAlphabet[(acc>>bits)&31])
			if s.Len() == 4 || s.Len() == 9 || s.Len() == 14 {
				s.WriteByte('-')
			}
		}
	}
	return s.String()
}

// NormalizeRecoveryCode turns what a person typed into the canonical form
// (lowercase, dashes) that is hashed: any case, with or without dashes and
// spaces, and the look-alikes i, l (one) and o (zero) read as Crockford
// does. It reports false for anything that cannot be a code.
func NormalizeRecoveryCode(in string) (string, bool) {
	if len(in) > 64 {
		return "", false
	}
	var raw strings.Builder
	for _, r := range strings.ToLower(in) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'i' || r == 'l':
			r = '1'
		case r == 'o':
			r = '0'
		}
		if r > 127 || !strings.ContainsRune(recoveryAlphabet, r) {
			return "", false
		}
		raw.WriteRune(r)
	}
	s := raw.String()
	if len(s) != recoveryLen {
		return "", false
	}
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16], true
}
