package mfa_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/app/mfa"
)

// Benchmarks of the crypto in a second-factor check, without HTTP or
// SQLite; app.BenchmarkChallenge* measures the whole request.

// BenchmarkMatch is mfa.Match with a right code: two HMAC-SHA1 candidates
// (current and previous step) through pquerna/otp, compared in constant
// time. Match always computes both, so a wrong code costs the same.
func BenchmarkMatch(b *testing.B) {
	secret := mfa.NewSecret()
	now := time.Unix(1_700_000_015, 0)
	code, err := mfa.CodeAt(secret, mfa.Step(now), mfa.Digits)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if mfa.Match(secret, code, now) == 0 {
			b.Fatal("code refused")
		}
	}
}

// BenchmarkVerifyRecoveryCode is what checkFactor does with a recovery code
// against a full set: normalize the input, then keys.VerifyHash (HMAC-SHA-256)
// against each of the 10 stored hashes, all of them whatever matches.
func BenchmarkVerifyRecoveryCode(b *testing.B) {
	kr := keys.New(bytes.Repeat([]byte{7}, 32))
	purpose := fmt.Sprintf("recovery:%d:%d", 1, 42) // as app.recoveryPurpose
	codes := mfa.NewRecoveryCodes()
	stored := make([]string, len(codes))
	for i, c := range codes {
		stored[i] = kr.HashToken(purpose, c)
	}
	input := "  " + codes[len(codes)-1] + " " // typed by a person, with spaces
	b.ReportAllocs()
	for b.Loop() {
		code, ok := mfa.NormalizeRecoveryCode(input)
		if !ok {
			b.Fatal("code not normalized")
		}
		matched := -1
		for i, h := range stored {
			if kr.VerifyHash(purpose, code, h) && matched < 0 {
				matched = i
			}
		}
		if matched != len(codes)-1 {
			b.Fatalf("matched %d", matched)
		}
	}
}
