package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/db"
)

const usage = `Gatehouse: a second factor in front of every sign-in.

Usage:
  gatehouse serve     [--addr 127.0.0.1:8080] [--data ./data] [--demo] [--metrics-addr 127.0.0.1:9090]
  gatehouse migrate   [--data ./data]
  gatehouse workspace create --slug SLUG --name NAME
  gatehouse workspace passkeys --slug SLUG [--satisfy-mfa true|false] [--device-bound-only true|false]
  gatehouse workspace policy --slug SLUG --policy off|optional|required|required_for_admins [--grace-days N]
                             [--reminder-days 7,3,1] [--methods totp,webauthn[,sms]] [--dry-run]
  gatehouse user create --workspace SLUG --email EMAIL --role owner|admin|member --password-stdin
  gatehouse user import --workspace SLUG FILE    add members from CSV or JSON Lines (FILE - = stdin): email, role,
                             optional password_hash (PHC argon2id) and name; the whole file is checked first
                             (a bad row: its line number, nothing written); existing members are counted and
                             left unchanged; members without password_hash cannot sign in with a password
                             until invited or reset; a progress bar on a terminal, a summary at the end
  gatehouse staff create --email EMAIL [--lead] --password-stdin   prints the enrollment link
  gatehouse staff enroll-link --email EMAIL                          a new enrollment link
  gatehouse jobs run-once               one pass of MFA reminders, due resets, outbox delivery and cleanup
  gatehouse keys rotate                 new master key; re-encrypt every secret under it
  gatehouse keys rotate --signing [--workspace SLUG] [--alg RS256|ES256]
                                        new token signing key for one workspace or all of them
  gatehouse client create --workspace SLUG --name NAME --type web|spa|native --redirect-uri URI [--redirect-uri URI…]
                          [--post-logout-redirect-uri URI…] [--scope S…] [--first-party]
                                        register an application (OpenID Connect); prints client_id and,
                                        for web, client_secret (shown once)
  gatehouse backup --out FILE           consistent online copy: SQLite file, or pg_dump (custom format) on PostgreSQL

Environment:
  GATEHOUSE_DATA             data directory (default ./data)
  GATEHOUSE_DATABASE_URL     default: SQLite file gatehouse.db in the data directory;
                             postgres://user:pass@host:5432/db?sslmode=require for PostgreSQL
  GATEHOUSE_ADDR             listen address (default 127.0.0.1:8080)
  GATEHOUSE_BASE_URL         public URL, https unless dev (default http://ADDR)
  GATEHOUSE_BASE_DOMAIN      serve workspaces at {slug}.{base domain} too
  GATEHOUSE_MASTER_KEY       base64 of 32 bytes; default: master.key in the data directory (created 0600)
  GATEHOUSE_SMTP_URL         smtp://user:pass@host:587?from=…  (smtps:// for implicit TLS)
  GATEHOUSE_DEV              1 = dev mode: dev mailbox, cookies without Secure over http
  GATEHOUSE_PASSWORD_HASH    argon2id:m=19456,t=2,p=1 (the default)
  GATEHOUSE_TRUSTED_PROXIES  CIDRs whose X-Forwarded-For is believed
  GATEHOUSE_METRICS_ADDR     a second listener serving only GET /metrics (Prometheus), e.g. 127.0.0.1:9090;
                             off by default; no token there, so keep it on loopback or a private network
  GATEHOUSE_METRICS_TOKEN    serve GET /metrics on the main listener too, to "Authorization: Bearer TOKEN"
                             (at least 32 characters, e.g. openssl rand -hex 32); unset: 404 there
  GATEHOUSE_JOBS_INTERVAL    how often serve's background jobs look for work: outbox delivery and the
                             reminder and reset scans (a duration, 100ms to 1h, e.g. 500ms); unset: mail
                             every 5s, reminders and resets every minute. For tests and demos
  GATEHOUSE_SMS_URL          Twilio-compatible Messages API: https://SID:TOKEN@api.twilio.com?from=%2B15550100
                             (or ?messaging_service_sid=MG…); unset: texts stay queued (dev: dev mailbox)
  GATEHOUSE_SMS_PRICES       JSON file of prices per text in micro-dollars by country, over the built-in
                             table: {"GB": 40000, "default": 150000}
Flags win over the environment.
`

// env is what a command needs from the process.
type env struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run dispatches a command line. Every failure comes back as one error,
// printed by main as one line.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		return errors.New("no command given; run 'gatehouse help'")
	}
	err := e.dispatch(args)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

// errHelpShown ends a command whose flags asked for help (-h), after the
// flags were printed.
var errHelpShown = errors.New("help shown")

func (e *env) dispatch(args []string) error {
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		sub = rest[0]
	}
	switch {
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(e.stdout, usage)
		return nil
	case cmd == "serve":
		return e.serve(rest)
	case cmd == "migrate":
		return e.migrate(rest)
	case cmd == "workspace" && sub == "create":
		return e.workspaceCreate(rest[1:])
	case cmd == "workspace" && sub == "passkeys":
		return e.workspacePasskeys(rest[1:])
	case cmd == "workspace" && sub == "policy":
		return e.workspacePolicy(rest[1:])
	case cmd == "user" && sub == "create":
		return e.userCreate(rest[1:])
	case cmd == "user" && sub == "import":
		return e.userImport(rest[1:])
	case cmd == "staff" && sub == "create":
		return e.staffCreate(rest[1:])
	case cmd == "staff" && sub == "enroll-link":
		return e.staffEnrollLink(rest[1:])
	case cmd == "jobs" && sub == "run-once":
		return e.jobsRunOnce(rest[1:])
	case cmd == "keys" && sub == "rotate":
		return e.keysRotate(rest[1:])
	case cmd == "client" && sub == "create":
		return e.clientCreate(rest[1:])
	case cmd == "backup":
		return e.backup(rest)
	}
	return fmt.Errorf("unknown command %q; run 'gatehouse help'", strings.TrimSpace(cmd+" "+sub))
}

// flags returns a FlagSet whose errors come back as errors, with the common
// --data flag.
func (e *env) flags(name string, cfg *app.Config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory")
	return fs
}

func (e *env) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(e.stdout, "Usage of gatehouse %s:\n", fs.Name())
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		return errHelpShown
	} else if err != nil {
		return fmt.Errorf("%s: %w", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

func (e *env) config() (app.Config, error) {
	return app.LoadConfig(e.getenv)
}

func (e *env) logger(cfg app.Config) *slog.Logger {
	if cfg.Dev {
		return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// open loads the master key, then opens and migrates the store. The key
// comes first so that a malformed GATEHOUSE_MASTER_KEY fails before the
// database is created or migrated.
func (e *env) open(cfg *app.Config, log *slog.Logger) (*db.Store, *keys.Keyring, error) {
	if err := cfg.Finish(); err != nil {
		return nil, nil, err
	}
	kr, err := keys.Load(cfg.MasterKey, cfg.KeyDir())
	if err != nil {
		return nil, nil, err
	}
	store, err := db.Open(e.ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	if err := store.Migrate(e.ctx, log); err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, kr, nil
}
