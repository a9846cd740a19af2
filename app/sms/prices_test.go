package sms_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app/sms"
)

func TestDefaultPrices(t *testing.T) {
	p := sms.DefaultPrices()
	if len(p) < 21 {
		t.Errorf("DefaultPrices has %d entries, want 20 countries and a default", len(p))
	}
	for _, tt := range []struct {
		country string
		want    int64
	}{{"US", 8300}, {"us", 8300}, {"GB", 40000}, {"CA", 8300}, {"DE", 90000}, {"FR", 80000}, {"IN", 85000}} {
		if got := p.For(tt.country); got != tt.want {
			t.Errorf("DefaultPrices().For(%q) = %d, want %d", tt.country, got, tt.want)
		}
	}
	def := p.For("ZZ")
	for c, v := range p {
		if v <= 0 || v > def {
			t.Errorf("DefaultPrices()[%q] = %d, want more than 0 and at most the default %d", c, v, def)
		}
	}
	for _, c := range []string{"KP", "", "default", "DEFAULT", "nonsense"} {
		if got := p.For(c); got != def {
			t.Errorf("DefaultPrices().For(%q) = %d, want the default %d", c, got, def)
		}
	}
	// A copy each time: a caller's change does not reach the next.
	p["GB"] = 1
	if got := sms.DefaultPrices().For("GB"); got != 40000 {
		t.Errorf("DefaultPrices().For(GB) after changing an earlier copy = %d", got)
	}
	// A table without a default never makes a text free.
	if got := (sms.Prices{"GB": 1}).For("FR"); got != def {
		t.Errorf("Prices without default: For(FR) = %d, want %d", got, def)
	}
}

func TestLoadPrices(t *testing.T) {
	t.Run("OKNoPath", func(t *testing.T) {
		p, err := sms.LoadPrices("")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(p), len(sms.DefaultPrices()); got != want {
			t.Errorf("LoadPrices(\"\") has %d entries, want %d", got, want)
		}
	})
	t.Run("OKMergedOverDefaults", func(t *testing.T) {
		p, err := sms.LoadPrices(writeFile(t, `{"GB": 35000, "fr": 0, "KP": 9000000, "default": 200000}`))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			country string
			want    int64
		}{{"GB", 35000}, {"FR", 0}, {"KP", 9000000}, {"US", 8300}, {"DE", 90000}, {"ZW", 200000}} {
			if got := p.For(tt.country); got != tt.want {
				t.Errorf("For(%q) = %d, want %d", tt.country, got, tt.want)
			}
		}
		if _, ok := p["fr"]; ok {
			t.Error(`key "fr" kept in lower case`)
		}
	})
	t.Run("OKEmptyObject", func(t *testing.T) {
		p, err := sms.LoadPrices(writeFile(t, " {}\n"))
		if err != nil || p.For("GB") != 40000 {
			t.Errorf("LoadPrices({}) = %v, %v", p, err)
		}
	})
	for _, tt := range []struct{ name, file, want string }{
		{"ErrUK", `{"UK": 40000}`, `"UK" is not an ISO 3166-1 alpha-2 country code (the United Kingdom is GB)`},
		{"ErrUnknownCode", `{"XX": 40000}`, `"XX" is not`},
		{"ErrThreeLetters", `{"GBR": 40000}`, `"GBR" is not`},
		{"ErrCallingCode", `{"44": 40000}`, `"44" is not`},
		{"ErrDollars", `{"GB": 0.04}`, `"GB": the price must be a whole number`},
		{"ErrExponent", `{"GB": 4e4}`, `"GB": the price`},
		{"ErrNegative", `{"GB": -1}`, `"GB": the price`},
		{"ErrTooBig", `{"GB": 10000001}`, `"GB": the price`},
		{"ErrOverflow", `{"GB": 99999999999999999999}`, `"GB": the price`},
		{"ErrString", `{"GB": "40000"}`, `"GB": the price`},
		{"ErrNull", `{"GB": null}`, `"GB": the price`},
		{"ErrObject", `{"GB": {"price": 1}}`, `"GB": the price`},
		{"ErrDuplicate", `{"GB": 1, "US": 2, "GB": 3}`, `"GB" given twice`},
		{"ErrDuplicateCase", `{"GB": 1, "gb": 3}`, `"gb" given twice`},
		{"ErrArray", `[["GB", 40000]]`, `want a JSON object`},
		{"ErrNumber", `40000`, `want a JSON object`},
		{"ErrEmpty", ``, `not JSON`},
		{"ErrTruncated", `{"GB": 40000`, `not JSON`},
		{"ErrTrailingComma", `{"GB": 40000,}`, `not JSON`},
		{"ErrTwoObjects", `{"GB": 1} {"US": 2}`, `more after the JSON object`},
		{"ErrNotJSON", "GB=40000\n", `not JSON`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			p, err := sms.LoadPrices(path)
			if err == nil {
				t.Fatalf("LoadPrices(%s) = %v, want an error", tt.file, p)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "GATEHOUSE_SMS_PRICES: "+path+": ") {
				t.Errorf("LoadPrices(%s) error %q, want the path and %q", tt.file, err, tt.want)
			}
		})
	}
	t.Run("ErrNoFile", func(t *testing.T) {
		_, err := sms.LoadPrices(filepath.Join(t.TempDir(), "missing.json"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadPrices(missing) error %v, want not exist", err)
		}
	})
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
