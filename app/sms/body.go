package sms

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Body is the text that carries a sign-in code:
//
//	123456 is your Acme sign-in code. It expires in 5 minutes. Don't share it.
//
//	@acme.example.com #123456
//
// The last line, only when host is given, binds the code to the
// workspace's origin (host without scheme or port) for WebOTP and the
// phones' autofill, which offer it on that site only. The text stays in
// one SMS segment (160 GSM-7 characters): the workspace name is cleaned
// of control characters, cut to 40 characters, and shortened further, or
// left out, when it is too long or has characters GSM-7 lacks (which
// would make the whole text UCS-2, with 70 characters a segment). Only a
// host longer than some 80 characters makes a longer text.
func Body(code, workspaceName, host string) string {
	name := strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		// Control and format characters (newlines, right-to-left
		// overrides) would let a workspace name change how the text reads.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, workspaceName)), " ")
	if r := []rune(name); len(r) > 40 {
		name = strings.TrimSpace(string(r[:40]))
	}
	tail := ""
	if host != "" {
		tail = "\n\n@" + host + " #" + code
	}
	text := func(name string) string {
		if name != "" {
			name += " "
		}
		return code + " is your " + name + "sign-in code. It expires in 5 minutes. Don't share it." + tail
	}
	for name != "" && !oneSegment(text(name)) {
		r := []rune(name)
		name = strings.TrimSpace(string(r[:len(r)-1]))
	}
	return text(name)
}

// gsm7 and gsm7Ext are the GSM 03.38 default alphabet and the characters
// of its extension table, which take two septets.
const (
	gsm7    = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Ext = "\f^{}\\[~]|€"
)

// oneSegment reports whether s fits in one SMS: 160 septets in GSM-7, or
// 70 UTF-16 code units when s needs UCS-2.
func oneSegment(s string) bool {
	n := 0
	for _, r := range s {
		switch {
		case strings.ContainsRune(gsm7, r):
			n++
		case strings.ContainsRune(gsm7Ext, r):
			n += 2
		default:
			return len(utf16.Encode([]rune(s))) <= 70
		}
	}
	return n <= 160
}
