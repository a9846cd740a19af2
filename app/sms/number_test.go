package sms_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/app/sms"
)

// The numbers are libphonenumber's examples of each type. Ofcom's drama
// range 07700 900xxx is not allocated, so libphonenumber calls it
// invalid: a British mobile here is 07400 123456.
func TestParse(t *testing.T) {
	all := []string{"GB", "US", "CA", "DE", "FR", "IN", "IM", "JP"}
	tests := []struct {
		name    string
		input   string
		country string
		allowed []string
		want    sms.Number
		err     error
	}{
		{"GBLocal", "07400 123456", "GB", all, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"GBInternational", "+44 7400 123456", "", all, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"GBInternationalIgnoresDefault", "+44 7400 123456", "US", all, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"GBNationalPrefixInBrackets", "+44 (0)7400 123456", "", all, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"GBInternationalPrefix", "0044 7400-123-456", "GB", all, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"GBNoSpaces", "+447400123456", "", all, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"GBLowerCaseCountry", "07400 123456", "gb", []string{"gb"}, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"GBFullWidthDigits", "０７４００ １２３４５６", "GB", all, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"GBNoBreakSpace", "07400\u00a0123456", "GB", all, sms.Number{"+447400123456", "GB", "mobile"}, nil},
		{"USLocal", "(201) 555-0123", "US", all, sms.Number{"+12015550123", "US", "fixed_line_or_mobile"}, nil},
		{"USDots", "201.555.0123", "US", all, sms.Number{"+12015550123", "US", "fixed_line_or_mobile"}, nil},
		{"USInternational", "+1 201-555-0123", "", all, sms.Number{"+12015550123", "US", "fixed_line_or_mobile"}, nil},
		{"CAByAreaCode", "+1 506 234 5678", "US", all, sms.Number{"+15062345678", "CA", "fixed_line_or_mobile"}, nil},
		{"DELocal", "01512 3456789", "DE", all, sms.Number{"+4915123456789", "DE", "mobile"}, nil},
		{"DEInternational", "+49 151 23456789", "", all, sms.Number{"+4915123456789", "DE", "mobile"}, nil},
		{"FRLocal", "06 12 34 56 78", "FR", all, sms.Number{"+33612345678", "FR", "mobile"}, nil},
		{"FRSlashes", "06/12/34/56/78", "FR", all, sms.Number{"+33612345678", "FR", "mobile"}, nil},
		{"INLocal", "081234 56789", "IN", all, sms.Number{"+918123456789", "IN", "mobile"}, nil},
		{"INInternational", "+91 81234 56789", "", all, sms.Number{"+918123456789", "IN", "mobile"}, nil},
		{"JPLocal", "090-1234-5678", "JP", all, sms.Number{"+819012345678", "JP", "mobile"}, nil},

		{"ErrGBPremium", "0901 234 5678", "GB", all, sms.Number{}, sms.ErrNumberType},
		{"ErrGBPremium09", "+44 909 879 0000", "", all, sms.Number{}, sms.ErrNumberType},
		{"ErrGBTollFree", "0800 123 4567", "GB", all, sms.Number{}, sms.ErrNumberType},
		{"ErrGBFixedLine", "0121 234 5678", "GB", all, sms.Number{}, sms.ErrNumberType},
		{"ErrGBVoIP", "056 1234 5678", "GB", all, sms.Number{}, sms.ErrNumberType},
		{"ErrGBPersonal", "070 1234 5678", "GB", all, sms.Number{}, sms.ErrNumberType},
		{"ErrUSPremium", "+1 900 234 5678", "", all, sms.Number{}, sms.ErrNumberType},
		{"ErrUSTollFree", "1-800-234-5678", "US", all, sms.Number{}, sms.ErrNumberType},
		{"ErrDEPremium", "0900 1 234567", "DE", all, sms.Number{}, sms.ErrNumberType},
		{"ErrDEFixedLine", "030 123456", "DE", all, sms.Number{}, sms.ErrNumberType},
		{"ErrFRSharedCost", "0 884 01 23 45", "FR", all, sms.Number{}, sms.ErrNumberType},
		{"ErrINTollFree", "1800 12 3456", "IN", all, sms.Number{}, sms.ErrNumberType},

		{"ErrGBUnallocated", "07700 900123", "GB", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrUSUnallocated", "+1 555 0100", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrTooShort", "+44 7400 1234", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrUnknownCallingCode", "+999 123456789", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrLocalWithoutCountry", "07400 123456", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrLocalWithBadCountry", "07400 123456", "XX", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrEmpty", "", "GB", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrPlusOnly", "+", "GB", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrLetters", "0800 FLOWERS", "GB", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrExtension", "+44 7400 123456 ext. 12", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrHash", "+44 7400 123456#", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrNewline", "+44 7400\n123456", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrTab", "+44\t7400123456", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrNUL", "+447400123456\x00", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrDEL", "+447400123456\x7f", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrRightToLeftOverride", "+44\u202e7400123456", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrInvalidUTF8", "+44 7400 \xff123456", "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrTooLong", "+44 7400 123456" + strings.Repeat(" ", 18), "", all, sms.Number{}, sms.ErrInvalidNumber},
		{"ErrHuge", strings.Repeat("1", 10000), "GB", all, sms.Number{}, sms.ErrInvalidNumber},

		{"ErrCountryNotAllowed", "+33 6 12 34 56 78", "", []string{"GB", "US"}, sms.Number{}, sms.ErrCountryNotAllowed},
		{"ErrEmptyAllowList", "+44 7400 123456", "", nil, sms.Number{}, sms.ErrCountryNotAllowed},
		{"ErrIsleOfManIsNotGB", "+44 7624 123456", "", []string{"GB"}, sms.Number{}, sms.ErrCountryNotAllowed},
		{"ErrDefaultCountryIsNotTheNumbers", "+44 7400 123456", "FR", []string{"FR"}, sms.Number{}, sms.ErrCountryNotAllowed},
		{"ErrInternationalFreephone", "+800 1234 5678", "", all, sms.Number{}, sms.ErrCountryNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sms.Parse(tt.input, tt.country, tt.allowed)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("Parse(%.40q, %q): error %v, want %v", tt.input, tt.country, err, tt.err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Parse(%q, %q) (-got +want):\n%s", tt.input, tt.country, diff)
			}
			// The error may end in logs: no digits of the input.
			if err != nil && digitRun.MatchString(err.Error()) {
				t.Errorf("Parse: error %q has digits", err)
			}
		})
	}
}

var digitRun = regexp.MustCompile(`[0-9]{4}`)

func TestParseOneErrorOnly(t *testing.T) {
	// Each refusal is exactly one of the sentinels.
	for _, in := range []string{"0901 234 5678", "+33 6 12 34 56 78", "nope"} {
		_, err := sms.Parse(in, "GB", []string{"GB"})
		n := 0
		for _, s := range []error{sms.ErrInvalidNumber, sms.ErrNumberType, sms.ErrCountryNotAllowed} {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("Parse(%q): %v matches %d sentinels, want 1", in, err, n)
		}
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+447400123789", "+44 •••• ••• 789"},
		{"+447700900789", "+44 •••• ••• 789"}, // unallocated now, masked alike
		{"+12015550123", "+1 ••• ••• • 123"},
		{"+4915123456789", "+49 •••• •••• 789"},
		{"+4930123456", "+49 •• ••• 456"},
		{"+33612345678", "+33 • •• •• •6 78"},
		{"+918123456789", "+91 ••••• •• 789"},
		{"+819012345678", "+81 •• •••• • 678"},
		{"+390612345678", "+39 •• •••• • 678"}, // Italian leading zero kept
		{"+6838884012", "+683 ••• • 012"},
		{"+6837012", "+683 ••••"},       // 4 digits: none shown
		{"+44123", "+44 •••"},           // not a valid number, still E.164
		{"+999123456789", fullMask},     // no such calling code
		{"447400123789", fullMask},      // not E.164: digits never shown
		{"+44 7400 123789", fullMask},   // not E.164
		{"07400123789", fullMask},       // not E.164
		{"+4474001237891234", fullMask}, // too long
		{"", fullMask},
		{"+", fullMask},
		{"+0123456789", fullMask},
		{"+44740012378\n9", fullMask},
	}
	for _, tt := range tests {
		if got := sms.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

const fullMask = "+•• •••• ••••"

// A masked number shows its calling code and its last 3 digits, and one
// dot for every other digit.
func TestMaskShowsOnlyTheLastThree(t *testing.T) {
	for _, tt := range []struct{ e164, cc string }{
		{"+447400123456", "44"}, {"+12015550123", "1"}, {"+4915123456789", "49"}, {"+33612345678", "33"},
		{"+918123456789", "91"}, {"+5511961234567", "55"}, {"+61412345678", "61"}, {"+6591234567", "65"},
	} {
		m := sms.Mask(tt.e164)
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, m)
		if want := tt.cc + tt.e164[len(tt.e164)-3:]; digits != want {
			t.Errorf("Mask(%q) = %q shows %q, want %q", tt.e164, m, digits, want)
		}
		if got, want := strings.Count(m, "•"), len(tt.e164)-1-len(tt.cc)-3; got != want {
			t.Errorf("Mask(%q) = %q has %d dots, want %d", tt.e164, m, got, want)
		}
	}
}
