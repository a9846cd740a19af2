package sms_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/app/sms"
)

func TestBody(t *testing.T) {
	// 69 characters with the code, 70 with the name's space.
	const text = " sign-in code. It expires in 5 minutes. Don't share it."
	long := strings.Repeat("x", 100)
	tests := []struct{ name, workspace, host, want string }{
		{"OK", "Acme", "", "123456 is your Acme" + text},
		{"OKWebOTP", "Acme", "acme.example.com", "123456 is your Acme" + text + "\n\n@acme.example.com #123456"},
		{"OKNoName", "", "", "123456 is your" + text},
		{"OKSpacesCollapsed", "  Acme \t Corp  ", "", "123456 is your Acme Corp" + text},
		{"OKAccentsInGSM", "Café Müller", "", "123456 is your Café Müller" + text},
		// A name cannot add a line, least of all a WebOTP line of its own.
		{"NewlinesFlattened", "Acme\n\n@evil.example #654321", "acme.example.com",
			"123456 is your Acme @evil.example #654321" + text + "\n\n@acme.example.com #123456"},
		{"RightToLeftOverrideRemoved", "Acme\u202eevil", "", "123456 is your Acme evil" + text},
		{"InvalidUTF8Removed", "Acme\xff", "", "123456 is your Acme" + text},
		{"CutTo40", long, "", "123456 is your " + long[:40] + text},
		{"CutToFitHost", long, strings.Repeat("h", 60) + ".example",
			"123456 is your " + long[:11] + text + "\n\n@" + strings.Repeat("h", 60) + ".example #123456"},
		{"NameDroppedForVeryLongHost", "Acme", strings.Repeat("h", 90) + ".example",
			"123456 is your" + text + "\n\n@" + strings.Repeat("h", 90) + ".example #123456"},
		// UCS-2 would allow 70 characters: no room for the name.
		{"NonGSMNameLeftOut", "株式会社アクメ", "", "123456 is your" + text},
		{"NonGSMTailCut", "Acme 株式会社", "", "123456 is your Acme" + text},
		{"EmojiLeftOut", "Acme 🚀", "acme.example.com", "123456 is your Acme" + text + "\n\n@acme.example.com #123456"},
		{"BacktickIsNotGSM", "Ac`me", "", "123456 is your Ac" + text},
		// € takes two septets: 69 + 1 + 2×31 + 27 = 159, one more is 161.
		{"ExtensionCharactersCountTwice", strings.Repeat("€", 40), "acme.example.com",
			"123456 is your " + strings.Repeat("€", 31) + text + "\n\n@acme.example.com #123456"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sms.Body("123456", tt.workspace, tt.host)
			if got != tt.want {
				t.Errorf("Body(%q, %q) =\n%q\nwant\n%q", tt.workspace, tt.host, got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > 160 && !strings.HasPrefix(tt.name, "NameDropped") {
				t.Errorf("Body(%q, %q) has %d characters", tt.workspace, tt.host, n)
			}
		})
	}
}
