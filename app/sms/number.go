// Package sms is what Gatehouse needs to text a code to a phone: parsing
// and masking phone numbers, the message text, the per-country price
// table behind the workspaces' budgets, and the providers that deliver
// texts (a Twilio-compatible REST adapter; the dev outbox is another
// Provider). It has no HTTP handlers and no database: the callers keep
// the outbox, the caps and the retries.
package sms

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Number is a phone number that can receive texts, normalised.
type Number struct {
	E164    string // "+447700900123"
	Country string // ISO 3166-1 alpha-2 of the number itself, "GB"
	Type    string // "mobile" or "fixed_line_or_mobile" (where the plan cannot tell, as in the US)
}

// Parse refusals, matched with errors.Is. The errors Parse returns wrap
// one of them and never contain the input.
var (
	// ErrInvalidNumber: not a phone number: unparseable, too long, a
	// character that has no place in a phone number, an extension, or
	// digits that are no valid number in its country's numbering plan
	// (wrong length, or a range that is not allocated).
	ErrInvalidNumber = errors.New("invalid phone number")
	// ErrNumberType: a valid number of a kind that we do not text:
	// premium rate, toll free, shared cost, VoIP, personal, pager, UAN,
	// voicemail, or a fixed line that is known not to be mobile.
	ErrNumberType = errors.New("phone number cannot receive texts")
	// ErrCountryNotAllowed: the number's country is not in the
	// workspace's allow-list.
	ErrCountryNotAllowed = errors.New("phone number country not allowed")
)

// maxInput is the longest input Parse reads, in characters: the longest
// E.164 number is 16 characters, and a local format with spaces,
// brackets and dashes stays well below 32.
const maxInput = 32

// Parse reads a phone number a member typed, in international format
// ("+44 7700 900123", "0044 7700 900123") or in the local format of
// defaultCountry ("07700 900123" with "GB"), and normalises it to E.164.
// defaultCountry is an ISO 3166-1 alpha-2 code, in any case; it may be
// empty when the input starts with "+". The number's own country must be
// in allowed (an empty list allows nothing), and its type must be mobile,
// or fixed line or mobile where the numbering plan does not tell them
// apart. It returns an error wrapping ErrInvalidNumber, ErrNumberType or
// ErrCountryNotAllowed.
func Parse(input, defaultCountry string, allowed []string) (Number, error) {
	// Cheap checks before libphonenumber's regular expressions see it.
	if len(input) > utf8.UTFMax*maxInput || utf8.RuneCountInString(input) > maxInput {
		return Number{}, fmt.Errorf("%w: longer than %d characters", ErrInvalidNumber, maxInput)
	}
	if !utf8.ValidString(input) {
		return Number{}, fmt.Errorf("%w: not UTF-8", ErrInvalidNumber)
	}
	// Only what people write in phone numbers. This refuses control
	// characters (a stored number is shown in pages and emails), and
	// letters, which libphonenumber would read as keypad digits
	// ("0800 FLOWERS") or as an extension ("ext. 12"); neither can be
	// texted.
	for _, r := range input {
		if !numberRune(r) {
			return Number{}, fmt.Errorf("%w: unexpected character", ErrInvalidNumber)
		}
	}
	pn, err := phonenumbers.Parse(input, strings.ToUpper(strings.TrimSpace(defaultCountry)))
	if err != nil {
		// libphonenumber's errors are constants, without the input.
		return Number{}, fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	if pn.GetExtension() != "" {
		return Number{}, fmt.Errorf("%w: has an extension", ErrInvalidNumber)
	}
	// A number in a range that is not allocated is refused here: its type
	// is unknown because it is no number at all, most likely a typo.
	if !phonenumbers.IsValidNumber(pn) {
		return Number{}, fmt.Errorf("%w: not a number in its country's plan", ErrInvalidNumber)
	}
	country := phonenumbers.GetRegionCodeForNumber(pn)
	if !containsFold(allowed, country) {
		return Number{}, fmt.Errorf("%w: %s", ErrCountryNotAllowed, country)
	}
	var typ string
	switch t := phonenumbers.GetNumberType(pn); t {
	case phonenumbers.MOBILE:
		typ = "mobile"
	case phonenumbers.FIXED_LINE_OR_MOBILE:
		typ = "fixed_line_or_mobile"
	default:
		return Number{}, fmt.Errorf("%w: %s", ErrNumberType, typeName(t))
	}
	return Number{E164: phonenumbers.Format(pn, phonenumbers.E164), Country: country, Type: typ}, nil
}

// numberRune reports whether r may appear in a phone number as typed:
// digits (any script's; libphonenumber reads them), spaces, dashes and
// "+().,/".
func numberRune(r rune) bool {
	switch {
	case r >= '0' && r <= '9', r == '+', r == '(', r == ')', r == '.', r == '/', r == '＋':
		return true
	case unicode.IsControl(r):
		return false
	}
	return unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Zs, r) || unicode.Is(unicode.Pd, r)
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(strings.TrimSpace(v), s) {
			return true
		}
	}
	return false
}

func typeName(t phonenumbers.PhoneNumberType) string {
	switch t {
	case phonenumbers.FIXED_LINE:
		return "fixed line"
	case phonenumbers.TOLL_FREE:
		return "toll free"
	case phonenumbers.PREMIUM_RATE:
		return "premium rate"
	case phonenumbers.SHARED_COST:
		return "shared cost"
	case phonenumbers.VOIP:
		return "VoIP"
	case phonenumbers.PERSONAL_NUMBER:
		return "personal number"
	case phonenumbers.PAGER:
		return "pager"
	case phonenumbers.UAN:
		return "UAN"
	case phonenumbers.VOICEMAIL:
		return "voicemail"
	}
	return "unknown type"
}

// e164 is the syntax of E.164: a plus, then up to 15 digits, the first
// (of the country calling code) not 0.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// fullMask stands for a number Mask cannot read; it has no digit of it
// and does not tell its length.
const fullMask = "+•• •••• ••••"

// Mask shows an E.164 number the way pages and emails show a member's
// phone: the country calling code, then the national number in the
// groups of its international format, every digit masked with "•"
// except the last 3, which stand as a group of their own:
// "+447700900789" is "+44 •••• ••• 789", "+12015550123" is
// "+1 ••• ••• • 123". At least 4 digits stay masked, so a short national
// number shows fewer than 3. Anything that is not E.164 comes out as a
// fixed mask without any of its digits.
func Mask(number string) string {
	if !e164.MatchString(number) {
		return fullMask
	}
	pn, err := phonenumbers.Parse(number, "")
	if err != nil {
		return fullMask
	}
	cc := "+" + strconv.Itoa(int(pn.GetCountryCode()))
	nsn := phonenumbers.GetNationalSignificantNumber(pn)
	if nsn == "" || cc+nsn != number {
		// libphonenumber read it differently from its digits (a number
		// it cannot place); only ever show digits of the number itself.
		return fullMask
	}
	// The international format of a number that is no longer valid (the
	// plan changed since it was stored) has the national number in one
	// piece, which is fine.
	groups := strings.FieldsFunc(strings.TrimPrefix(phonenumbers.Format(pn, phonenumbers.INTERNATIONAL), cc),
		func(r rune) bool { return r < '0' || r > '9' })
	if strings.Join(groups, "") != nsn {
		groups = []string{nsn}
	}
	shown := min(3, max(0, len(nsn)-4))
	if last := groups[len(groups)-1]; shown > 0 && len(last) > shown {
		groups = append(groups[:len(groups)-1], last[:len(last)-shown], last[len(last)-shown:])
	}
	var b strings.Builder
	b.WriteString(cc)
	i := 0
	for _, g := range groups {
		b.WriteByte(' ')
		for j := range len(g) {
			if i < len(nsn)-shown {
				b.WriteString("•")
			} else {
				b.WriteByte(g[j])
			}
			i++
		}
	}
	return b.String()
}
