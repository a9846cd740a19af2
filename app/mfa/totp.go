// Package mfa holds the second factors' logic with no HTTP in it: TOTP codes
// and recovery codes.
package mfa

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"image/png"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/skip2/go-qrcode"
)

// TOTP parameters (RFC 6238): what every authenticator app accepts.
const (
	Period     = 30
	Digits     = 6
	SecretSize = 20 // 160 bits
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a random 160-bit secret, base32 without padding.
func NewSecret() string {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b32.EncodeToString(b)
}

// Step is the RFC 6238 time step of t.
func Step(t time.Time) int64 { return t.Unix() / Period }

// CodeAt returns the code of step for a base32 secret, with the given number
// of digits, through pquerna/otp with every parameter set explicitly.
func CodeAt(secret string, step int64, digits int) (string, error) {
	return totp.GenerateCodeCustom(secret, time.Unix(step*Period, 0).UTC(), totp.ValidateOpts{
		Period: Period, Skew: 0, Digits: otp.Digits(digits), Algorithm: otp.AlgorithmSHA1,
	})
}

// Match checks code against the current step and the one before (30 s of
// drift) and returns the step it matches, or 0. pquerna/otp cannot say which
// step matched, so each candidate is generated and compared in constant
// time; both are always computed, whatever the input.
func Match(secret, code string, now time.Time) int64 {
	code = strings.TrimSpace(code)
	cur := Step(now)
	var matched int64
	for _, step := range []int64{cur, cur - 1} {
		want, err := CodeAt(secret, step, Digits)
		if err != nil {
			return 0
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && matched == 0 {
			matched = step
		}
	}
	return matched
}

// WellFormedCode reports whether s looks like a 6-digit code (spaces
// allowed, as people type them).
func WellFormedCode(s string) (string, bool) {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	if len(s) != Digits {
		return "", false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return "", false
		}
	}
	return s, true
}

// URI is the otpauth:// URI an authenticator app reads from the QR code:
// issuer is the workspace name, the account the member's email. Apps split
// the label "issuer:account" at its first colon, so the label's issuer
// drops any colon of the name (the issuer parameter keeps it whole):
// "Acme: Ops" must not turn the account into " Ops:alice@…".
func URI(issuer, account, secret string) string {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", fmt.Sprint(Digits))
	v.Set("period", fmt.Sprint(Period))
	label := url.PathEscape(strings.ReplaceAll(issuer, ":", "")) + ":" + url.PathEscape(account)
	return "otpauth://totp/" + label + "?" + v.Encode()
}

// QRCode renders uri as a PNG.
func QRCode(uri string) ([]byte, error) {
	q, err := qrcode.New(uri, qrcode.Medium)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, q.Image(256)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// GroupSecret splits a secret in groups of four for typing by hand.
func GroupSecret(secret string) string {
	var b strings.Builder
	for i, r := range secret {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
