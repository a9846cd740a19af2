// Package app is the Gatehouse web application: HTTP wiring, middleware,
// routes and one file per feature.
package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/sms"
	"github.com/gatehouse/gatehouse/db"
)

// Config is everything Gatehouse reads from flags and the environment.
type Config struct {
	Addr           string
	DataDir        string
	DatabaseURL    string
	BaseURL        *url.URL
	BaseDomain     string
	MasterKey      string // base64; empty means the key file in DataDir
	SMTPURL        string
	Dev            bool
	PasswordHash   auth.Params
	TrustedProxies []*net.IPNet
	// MetricsAddr, when set, is a second listener that serves GET /metrics
	// and nothing else (GATEHOUSE_METRICS_ADDR, --metrics-addr): bind it to
	// loopback or a private network.
	MetricsAddr string
	// MetricsToken, when set, serves GET /metrics on the main listener too,
	// to a caller that sends it as a bearer token (GATEHOUSE_METRICS_TOKEN).
	// Unset, /metrics there is a 404.
	MetricsToken string
	// JobsInterval, when set, is how often the background jobs of serve
	// look for work: outbox delivery and the scans for due reminders and
	// resets (GATEHOUSE_JOBS_INTERVAL; unset: every 5 s and every minute).
	// For tests and demos that cannot wait a minute.
	JobsInterval time.Duration
	// SMSURL is the Twilio-compatible Messages API texts go to
	// (GATEHOUSE_SMS_URL, checked by sms.NewTwilio). Unset, texts stay
	// queued, and in dev mode they appear in the dev mailbox.
	SMSURL string
	// SMSPrices is what a text costs by country, in micro-dollars: the
	// built-in table, with GATEHOUSE_SMS_PRICES (a JSON file of
	// {"GB": 40000, …, "default": 150000}) over it. Workspaces' monthly
	// budgets in money count in these prices.
	SMSPrices sms.Prices
	// Demo is the demo workspace `serve --demo` created (dev mode only):
	// the start page leads to its sign-in with the accounts serve printed.
	Demo *Demo
}

// Demo is a demo workspace and its accounts, for the dev start page.
type Demo struct {
	Slug     string
	Accounts []DemoAccount
}

// DemoAccount is one demo sign-in.
type DemoAccount struct {
	Role, Email, Password string
}

// MinJobsInterval is the shortest GATEHOUSE_JOBS_INTERVAL: every pass is a
// few queries per process, and a shorter one would be load for nothing.
const MinJobsInterval = 100 * time.Millisecond

// LoadConfig reads GATEHOUSE_* variables through getenv, applies defaults and
// validates. Flags are applied by the caller afterwards.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		Addr:         getenv("GATEHOUSE_ADDR"),
		DataDir:      getenv("GATEHOUSE_DATA"),
		DatabaseURL:  getenv("GATEHOUSE_DATABASE_URL"),
		BaseDomain:   strings.ToLower(strings.TrimSpace(getenv("GATEHOUSE_BASE_DOMAIN"))),
		MasterKey:    getenv("GATEHOUSE_MASTER_KEY"),
		SMTPURL:      getenv("GATEHOUSE_SMTP_URL"),
		Dev:          getenv("GATEHOUSE_DEV") == "1" || getenv("GATEHOUSE_DEV") == "true",
		MetricsAddr:  strings.TrimSpace(getenv("GATEHOUSE_METRICS_ADDR")),
		MetricsToken: getenv("GATEHOUSE_METRICS_TOKEN"),
		SMSURL:       strings.TrimSpace(getenv("GATEHOUSE_SMS_URL")),
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	var err error
	if c.PasswordHash, err = auth.ParseParams(getenv("GATEHOUSE_PASSWORD_HASH")); err != nil {
		return Config{}, fmt.Errorf("GATEHOUSE_PASSWORD_HASH: %w", err)
	}
	if c.TrustedProxies, err = ParseCIDRs(getenv("GATEHOUSE_TRUSTED_PROXIES")); err != nil {
		return Config{}, fmt.Errorf("GATEHOUSE_TRUSTED_PROXIES: %w", err)
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < MinMetricsTokenLength {
		// The token route is on the public listener: a short token could
		// be guessed.
		return Config{}, fmt.Errorf("GATEHOUSE_METRICS_TOKEN: use at least %d characters (e.g. openssl rand -hex 32)", MinMetricsTokenLength)
	}
	if raw := strings.TrimSpace(getenv("GATEHOUSE_JOBS_INTERVAL")); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < MinJobsInterval || d > time.Hour {
			return Config{}, fmt.Errorf("GATEHOUSE_JOBS_INTERVAL: %q: want a duration from %s to 1h, e.g. 500ms or 10s", raw, MinJobsInterval)
		}
		c.JobsInterval = d
	}
	if c.SMSURL != "" {
		// Checked now, so that a bad URL stops the start instead of every
		// text; the error never quotes the token.
		if _, err := sms.NewTwilio(c.SMSURL, nil); err != nil {
			return Config{}, fmt.Errorf("GATEHOUSE_SMS_URL: %w", err)
		}
	}
	if c.SMSPrices, err = sms.LoadPrices(strings.TrimSpace(getenv("GATEHOUSE_SMS_PRICES"))); err != nil {
		return Config{}, fmt.Errorf("GATEHOUSE_SMS_PRICES: %w", err)
	}
	if raw := getenv("GATEHOUSE_BASE_URL"); raw != "" {
		if c.BaseURL, err = ParseBaseURL(raw); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// Finish fills what depends on other settings (after flags): the database
// URL defaults to a SQLite file in the data directory, the base URL to
// http://{addr}.
func (c *Config) Finish() error {
	if c.DatabaseURL == "" {
		c.DatabaseURL = db.SQLitePath(c.DataDir)
	}
	if c.BaseURL == nil {
		u, err := ParseBaseURL("http://" + c.Addr)
		if err != nil {
			return err
		}
		c.BaseURL = u
	}
	return nil
}

// CheckServe checks what only the server needs: secure cookies are not sent
// back over plain http, so outside dev mode the base URL must be https (TLS
// may end at a proxy in front).
func (c *Config) CheckServe() error {
	if !c.Dev && c.BaseURL.Scheme != "https" {
		return errors.New("GATEHOUSE_BASE_URL must be an https URL unless GATEHOUSE_DEV=1")
	}
	return nil
}

// ParseBaseURL checks the public URL Gatehouse is reached at.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("GATEHOUSE_BASE_URL %q: want http(s)://host[:port][/path]", raw)
	}
	return u, nil
}

// ParseCIDRs reads a comma or space separated list of CIDRs or addresses.
func ParseCIDRs(s string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if !strings.Contains(f, "/") {
			ip := net.ParseIP(f)
			if ip == nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", f)
			}
			bits := 128
			if ip.To4() != nil {
				bits = 32
			}
			f = fmt.Sprintf("%s/%d", f, bits)
		}
		_, n, err := net.ParseCIDR(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// SecureCookies reports whether cookies carry Secure and the __Host- prefix:
// always, except in dev mode over plain http.
func (c Config) SecureCookies() bool {
	return !(c.Dev && c.BaseURL != nil && c.BaseURL.Scheme == "http")
}

// KeyDir is where the key file lives.
func (c Config) KeyDir() string { return filepath.Clean(c.DataDir) }
