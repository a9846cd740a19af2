package sms

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Prices is what one text costs, in micro-dollars (8300 is $0.0083), by
// ISO 3166-1 alpha-2 country code, upper case. The key "default" is the
// price for a country without one of its own.
type Prices map[string]int64

// defaultKey is the entry of a Prices for the countries not listed.
const defaultKey = "default"

// maxPrice bounds a price (10 dollars a text): more is a typo, likely a
// price in dollars written with too many digits, or in cents.
const maxPrice = 10_000_000

//go:embed prices.json
var defaultPrices []byte

// builtin is prices.json, read once; DefaultPrices hands out copies.
var builtin = func() Prices {
	p, err := parsePrices(bytes.NewReader(defaultPrices))
	if err != nil {
		panic("sms: prices.json: " + err.Error())
	}
	if _, ok := p[defaultKey]; !ok {
		panic("sms: prices.json has no default")
	}
	return p
}()

// DefaultPrices returns the built-in price table: list prices of the
// usual providers for some 25 countries, rounded up, and a default for
// the others that is higher than any of them. Operators with other
// contracts override them with LoadPrices.
func DefaultPrices() Prices {
	p := make(Prices, len(builtin))
	for k, v := range builtin {
		p[k] = v
	}
	return p
}

// LoadPrices reads an operator's price file (GATEHOUSE_SMS_PRICES) and
// returns the default prices with the file's merged over them. The file
// is a JSON object from country code (or "default") to price in
// micro-dollars: {"GB": 35000, "default": 200000}. Codes are ISO 3166-1
// alpha-2 ("GB", not "UK"), in any case; prices are whole numbers from 0
// to 10 000 000. An empty path means the defaults alone. It returns an
// error naming the file and the entry when the file cannot be read or an
// entry is wrong; a key given twice is an error too.
func LoadPrices(path string) (Prices, error) {
	p := DefaultPrices()
	if path == "" {
		return p, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_SMS_PRICES: %w", err)
	}
	defer f.Close()
	over, err := parsePrices(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_SMS_PRICES: %s: %w", path, err)
	}
	for k, v := range over {
		p[k] = v
	}
	return p, nil
}

// For returns the price of one text to a number of country, or the
// default price when country has none (the built-in default if p has no
// "default" either, so a price is never 0 by omission).
func (p Prices) For(country string) int64 {
	if v, ok := p[strings.ToUpper(country)]; ok {
		return v
	}
	if v, ok := p[defaultKey]; ok {
		return v
	}
	return builtin[defaultKey]
}

// parsePrices reads one JSON object of prices, token by token so that
// a key given twice is caught, and each price as written so that one in
// dollars (0.0083) or in quotes is refused rather than rounded.
func parsePrices(r io.Reader) (Prices, error) {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	} else if t != json.Delim('{') {
		return nil, errors.New(`want a JSON object, {"GB": 40000, ...}`)
	}
	regions := phonenumbers.GetSupportedRegions()
	p := Prices{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		key := t.(string) // object keys are strings
		code := strings.ToUpper(key)
		if code == "DEFAULT" {
			code = defaultKey
		} else if !regions[code] {
			hint := ""
			if code == "UK" {
				hint = " (the United Kingdom is GB)"
			}
			return nil, fmt.Errorf("%q is not an ISO 3166-1 alpha-2 country code%s", key, hint)
		}
		if _, dup := p[code]; dup {
			return nil, fmt.Errorf("%q given twice", key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || v < 0 || v > maxPrice {
			return nil, fmt.Errorf("%q: the price must be a whole number of micro-dollars from 0 to %d (8300 is $0.0083)", key, maxPrice)
		}
		p[code] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more after the JSON object")
	}
	return p, nil
}
