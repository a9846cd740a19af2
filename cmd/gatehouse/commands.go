package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/app/mail"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

func (e *env) serve(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("serve", &cfg)
	addr := fs.String("addr", cfg.Addr, "listen address")
	metricsAddr := fs.String("metrics-addr", cfg.MetricsAddr, "a second listen address serving only GET /metrics (off when empty)")
	demo := fs.Bool("demo", false, "create the demo workspace on first start (dev mode only)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	cfg.Addr, cfg.MetricsAddr = *addr, *metricsAddr
	// Check the settings before anything is created, so that a bad one is a
	// one-line error that leaves no database or key behind.
	probe := cfg
	if probe.BaseURL == nil {
		probe.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr} // what serve will default to
	}
	if err := probe.CheckServe(); err != nil {
		return err
	}
	if *demo && !cfg.Dev {
		return errors.New("--demo needs GATEHOUSE_DEV=1")
	}
	if cfg.SMTPURL != "" {
		if _, err := mail.ParseSMTPURL(cfg.SMTPURL); err != nil {
			return err
		}
	}
	log := e.logger(cfg)
	// The OpenID provider library logs through slog's default logger:
	// the same handler as ours (it logs error codes and client ids, never
	// tokens or codes).
	slog.SetDefault(log.With(slog.String("component", "oidc")))
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
	var ml net.Listener
	if cfg.MetricsAddr != "" {
		if ml, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listen for metrics: %w", err)
		}
		defer ml.Close()
	}
	if cfg.BaseURL == nil {
		u, err := app.ParseBaseURL("http://" + l.Addr().String())
		if err != nil {
			return err
		}
		cfg.BaseURL = u
	}
	store, kr, err := e.open(&cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := cfg.CheckServe(); err != nil {
		return err
	}
	if *demo {
		// The start page leads to the demo's sign-in with the accounts
		// printed below (dev mode only: checked above).
		cfg.Demo = &app.Demo{Slug: demoSlug, Accounts: []app.DemoAccount{
			{Role: db.RoleOwner, Email: demoOwner, Password: demoPassword},
			{Role: db.RoleMember, Email: demoMember, Password: demoPassword},
		}}
	}
	srv := app.NewServer(cfg, log, store, kr)

	// The jobs stop when serve returns for any reason, not only on a signal;
	// otherwise an early error would wait for them forever.
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	jobs := app.NewJobs(store, log, cfg)
	jobs.Metrics = srv.Metrics()
	jobs.Keys = kr
	if jobs.Mail == nil {
		log.Warn("GATEHOUSE_SMTP_URL is not set: emails stay queued in the outbox" + devMailboxHint(cfg))
	}
	if jobs.SMSProvider == nil {
		log.Info("GATEHOUSE_SMS_URL is not set: texts stay queued in the SMS outbox" + devMailboxHint(cfg))
	}
	wg.Add(1)
	go func() { defer wg.Done(); jobs.Run(ctx) }()
	// The metrics listener ends serve when it fails, as the main one does.
	metricsErr := make(chan error, 1)
	if ml != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ServeMetrics(ctx, ml); err != nil {
				metricsErr <- fmt.Errorf("metrics listener: %w", err)
				cancel()
			}
		}()
	}

	// Printed before the URL line, which scripts wait for.
	if ml != nil {
		fmt.Fprintf(e.stdout, "Metrics at http://%s/metrics\n", ml.Addr())
		log.Info("serving metrics", slog.String("addr", ml.Addr().String()))
	}
	base := strings.TrimRight(cfg.BaseURL.String(), "/")
	if *demo {
		if err := seedDemo(e, store, srv.Hasher()); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "\nGatehouse is running at %s\n\n  Sign in:   %s/t/%s/login\n  Owner:     %s / %s\n  Member:    %s / %s\n  Mailbox:   %s/dev/mailbox\n\nPress Ctrl-C to stop.\n\n",
			base, base, demoSlug, demoOwner, demoPassword, demoMember, demoPassword, base)
	} else {
		fmt.Fprintf(e.stdout, "Gatehouse is running at %s\n", base)
	}
	log.Info("serving", slog.String("addr", l.Addr().String()), slog.String("base_url", base), slog.Bool("dev", cfg.Dev))
	err = srv.Serve(ctx, l)
	cancel()
	wg.Wait()
	select {
	case merr := <-metricsErr:
		return errors.Join(err, merr)
	default:
		return err
	}
}

func devMailboxHint(cfg app.Config) string {
	if cfg.Dev {
		return "; read them in the dev mailbox at /dev/mailbox"
	}
	return ""
}

const (
	demoSlug     = "demo"
	demoOwner    = "owner@demo.test"
	demoMember   = "member@demo.test"
	demoPassword = "gatehouse-demo"
)

// seedDemo creates the demo workspace and two accounts on first start.
func seedDemo(e *env, store *db.Store, h *auth.Hasher) error {
	if _, err := store.WorkspaceBySlug(e.ctx, demoSlug); err == nil {
		return nil
	} else if !errors.Is(err, db.ErrNotFound) {
		return err
	}
	ws, err := store.CreateWorkspace(e.ctx, demoSlug, "Demo Workspace")
	if err != nil {
		return err
	}
	for _, u := range []struct{ email, role string }{{demoOwner, db.RoleOwner}, {demoMember, db.RoleMember}} {
		hash, err := h.Hash(e.ctx, demoPassword)
		if err != nil {
			return err
		}
		if _, err := store.CreateUser(e.ctx, ws.ID, u.email, u.role, hash, db.Meta{IP: "cli"}, 0); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) migrate(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	if err := e.parse(e.flags("migrate", &cfg), args); err != nil {
		return err
	}
	store, _, err := e.open(&cfg, e.logger(cfg))
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintln(e.stdout, "database is up to date")
	return nil
}

func (e *env) workspaceCreate(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("workspace create", &cfg)
	slug := fs.String("slug", "", "workspace slug: 3 to 32 of a-z, 0-9 and -")
	name := fs.String("name", "", "display name")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if !tenants.ValidSlug(*slug) {
		return fmt.Errorf("workspace create: slug %q must be 3 to 32 characters of a-z, 0-9 and -", *slug)
	}
	if db.ReservedSlug(*slug) {
		// Refused before anything is opened or created; the store refuses
		// it too, for every other way in.
		return fmt.Errorf("workspace create: slug %q is reserved for Gatehouse itself; choose another", *slug)
	}
	*name = strings.TrimSpace(*name)
	if *name == "" || len(*name) > 100 {
		return errors.New("workspace create: --name is required (at most 100 characters)")
	}
	store, _, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	ws, err := store.CreateWorkspace(e.ctx, *slug, *name)
	if errors.Is(err, db.ErrConflict) {
		return fmt.Errorf("workspace create: a workspace with slug %q already exists", *slug)
	} else if errors.Is(err, db.ErrReservedSlug) {
		return fmt.Errorf("workspace create: slug %q is reserved for Gatehouse itself; choose another", *slug)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created workspace %s (%s)\n", ws.Slug, ws.Name)
	return nil
}

func (e *env) userCreate(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("user create", &cfg)
	slug := fs.String("workspace", "", "workspace slug")
	email := fs.String("email", "", "email address")
	role := fs.String("role", "", "owner, admin or member")
	stdinPw := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if !db.ValidRole(*role) {
		return fmt.Errorf("user create: role %q must be owner, admin or member", *role)
	}
	*email = strings.TrimSpace(*email)
	if !app.ValidEmail(*email) {
		return fmt.Errorf("user create: %q is not a valid email address", *email)
	}
	if !*stdinPw {
		return errors.New("user create: --password-stdin is required (the password is read from standard input)")
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("user create: read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if err := auth.ValidatePassword(pw); err != nil {
		return fmt.Errorf("user create: password: %s", strings.TrimSuffix(err.Error(), "."))
	}
	store, _, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	ws, err := store.WorkspaceBySlug(e.ctx, *slug)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("user create: no workspace %q", *slug)
	} else if err != nil {
		return err
	}
	hash, err := auth.NewHasher(cfg.PasswordHash).Hash(e.ctx, pw)
	if err != nil {
		return err
	}
	u, err := store.CreateUser(e.ctx, ws.ID, *email, *role, hash, db.Meta{IP: "cli"}, 0)
	if errors.Is(err, db.ErrConflict) {
		return fmt.Errorf("user create: %s is already a member of %s", *email, ws.Slug)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created %s %s in %s (id %d)\n", u.Role, u.Email, ws.Slug, u.ID)
	return nil
}

func (e *env) jobsRunOnce(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	if err := e.parse(e.flags("jobs run-once", &cfg), args); err != nil {
		return err
	}
	if cfg.SMTPURL != "" {
		if _, err := mail.ParseSMTPURL(cfg.SMTPURL); err != nil {
			return err
		}
	}
	log := e.logger(cfg)
	store, kr, err := e.open(&cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	jobs := app.NewJobs(store, log, cfg)
	jobs.Keys = kr
	r, err := jobs.RunOnce(e.ctx)
	if err != nil {
		return err
	}
	// Fields are only ever appended, so that scripts reading this line
	// keep working.
	fmt.Fprintf(e.stdout, "mail sent: %d, mail failed attempts: %d, sessions cleaned: %d, throttles cleaned: %d, reminders queued: %d, "+
		"support resets executed: %d, support cases expired: %d, self-service recoveries executed: %d, texts sent: %d\n",
		r.MailSent, r.MailFailed, r.SessionsCleaned, r.ThrottlesCleaned, r.RemindersQueued,
		r.CasesExecuted, r.CasesExpired, r.RecoveriesExecuted, r.TextsSent)
	return nil
}

func (e *env) backup(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	flags := e.flags("backup", &cfg)
	out := flags.String("out", "", "file to write")
	if err := e.parse(flags, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("backup: --out FILE is required")
	}
	if err := cfg.Finish(); err != nil {
		return err
	}
	// A backup reads the database as it is: it neither creates one (a typo in
	// --data must not yield an empty "backup") nor migrates it (a backup
	// taken before an upgrade must hold the old schema).
	if path, ok := db.SQLiteFile(cfg.DatabaseURL); ok {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("backup: no database at %s", path)
		}
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	// Create the file first, empty, exclusive and 0600: an existing file is
	// never overwritten and the copy is never readable by others, not even
	// for a moment. Store.Backup accepts an empty file.
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup: %s already exists", *out)
	} else if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(abs)
		}
	}()
	store, err := db.Open(e.ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	if err := store.Backup(e.ctx, abs); err != nil {
		return err
	}
	if err := os.Chmod(abs, 0o600); err != nil {
		return err
	}
	done = true
	fmt.Fprintf(e.stdout, "backup written to %s in %s\n", abs, time.Since(start).Round(time.Millisecond))
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// keysRotate makes a new master key current and re-encrypts every secret
// under it (TOTP secrets, token signing keys). With a key file the new key
// is appended to it; with GATEHOUSE_MASTER_KEY the operator appends the new
// key (comma-separated, last is current) and this re-encrypts. Old keys
// stay: recovery codes and links hashed under them must still verify.
// With --signing it rotates the workspaces' token signing keys instead,
// and leaves the master key alone.
func (e *env) keysRotate(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("keys rotate", &cfg)
	signing := fs.Bool("signing", false, "rotate the token signing keys of the workspaces (OpenID Connect), not the master key")
	slug := fs.String("workspace", "", "with --signing: only this workspace (default: every workspace)")
	alg := fs.String("alg", "", "with --signing: RS256 or ES256 (default: the current key's algorithm)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if *signing {
		return e.keysRotateSigning(cfg, *slug, *alg)
	}
	if *slug != "" || *alg != "" {
		return errors.New("keys rotate: --workspace and --alg go with --signing")
	}
	store, kr, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	if kr.Path != "" {
		if err := keys.AddToFile(kr.Path, keys.NewMasterKey()); err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		if kr, err = keys.Load("", cfg.KeyDir()); err != nil {
			return err
		}
	}
	n, err := app.ReencryptSecrets(e.ctx, store, kr)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintf(e.stdout, "current key %s; re-encrypted %d secrets; %d keys kept\n", kr.CurrentID(), n, len(kr.IDs()))
	return nil
}

// workspacePasskeys shows or changes a workspace's passkey rules: whether a
// passkey with user verification satisfies MFA on its own, and whether only
// device-bound keys (not synced passkeys) may be registered. A change is a
// policy change (SetPolicy), audited with the old and new values.
func (e *env) workspacePasskeys(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	flags := e.flags("workspace passkeys", &cfg)
	slug := flags.String("slug", "", "workspace slug")
	satisfy := flags.String("satisfy-mfa", "", "true: a verified passkey is a whole sign-in (aal2); false: a second factor follows")
	bound := flags.String("device-bound-only", "", "true: refuse synced passkeys at registration")
	if err := e.parse(flags, args); err != nil {
		return err
	}
	parseBool := func(name, v string) (*bool, error) {
		switch v {
		case "":
			return nil, nil
		case "true":
			return new(true), nil
		case "false":
			return new(false), nil
		}
		return nil, fmt.Errorf("workspace passkeys: --%s must be true or false", name)
	}
	sat, err := parseBool("satisfy-mfa", *satisfy)
	if err != nil {
		return err
	}
	dev, err := parseBool("device-bound-only", *bound)
	if err != nil {
		return err
	}
	store, _, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	ws, err := store.WorkspaceBySlug(e.ctx, *slug)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("workspace passkeys: no workspace %q", *slug)
	} else if err != nil {
		return err
	}
	p, err := store.PasskeySettings(e.ctx, ws.ID)
	if err != nil {
		return err
	}
	if sat != nil || dev != nil {
		if sat != nil {
			p.SatisfyMFA = *sat
		}
		if dev != nil {
			p.DeviceBoundOnly = *dev
		}
		// A change of the policy like any other (as the system, actor 0):
		// one transaction, audited with the old and new values.
		pol, err := store.Policy(e.ctx, ws.ID)
		if err != nil {
			return err
		}
		if _, _, err := store.SetPolicy(e.ctx, ws.ID, 0, db.PolicyChange{Policy: pol, Passkeys: &p}, db.Meta{IP: "cli"}); err != nil {
			return fmt.Errorf("workspace passkeys: %v", err)
		}
	}
	fmt.Fprintf(e.stdout, "%s: passkeys satisfy MFA: %t; device-bound keys only: %t\n", ws.Slug, p.SatisfyMFA, p.DeviceBoundOnly)
	return nil
}

// workspacePolicy changes a workspace's MFA policy as the system (actor
// 0: no enroll-first rule, audited with no actor). Flags not given keep
// their values; --dry-run prints the impact and saves nothing.
func (e *env) workspacePolicy(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	flags := e.flags("workspace policy", &cfg)
	slug := flags.String("slug", "", "workspace slug")
	mode := flags.String("policy", "", "off, optional, required or required_for_admins")
	grace := flags.Int("grace-days", -1, "days members have to enroll once the requirement applies (0 to 365; default: keep)")
	reminders := flags.String("reminder-days", "", "days before the deadline a reminder goes out, e.g. 7,3,1 (\"none\" for none; default: keep)")
	methods := flags.String("methods", "", "allowed second factors, comma-separated: totp, webauthn, sms (sms only beside another) (default: keep)")
	dryRun := flags.Bool("dry-run", false, "print the impact, save nothing")
	if err := e.parse(flags, args); err != nil {
		return err
	}
	if *mode == "" {
		return errors.New("workspace policy: --policy is required (off, optional, required or required_for_admins)")
	}
	store, _, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	ws, err := store.WorkspaceBySlug(e.ctx, *slug)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("workspace policy: no workspace %q", *slug)
	} else if err != nil {
		return err
	}
	p, err := store.Policy(e.ctx, ws.ID)
	if err != nil {
		return err
	}
	p.Mode = *mode
	if flagSet(flags, "grace-days") {
		p.GraceDays = *grace
	}
	if flagSet(flags, "reminder-days") {
		if *reminders == "none" {
			p.ReminderDays = nil
		} else if p.ReminderDays, err = db.ParseDays(*reminders); err != nil {
			return fmt.Errorf("workspace policy: %v", err)
		}
	}
	if flagSet(flags, "methods") {
		p.Methods = strings.FieldsFunc(*methods, func(r rune) bool { return r == ',' || r == ' ' })
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("workspace policy: %v", err)
	}
	p, im, err := store.SetPolicy(e.ctx, ws.ID, 0, db.PolicyChange{Policy: p, DryRun: *dryRun}, db.Meta{IP: "cli"})
	if err != nil {
		return fmt.Errorf("workspace policy: %v", err)
	}
	deadline := "none"
	if !im.Deadline.IsZero() {
		deadline = im.Deadline.UTC().Format(time.RFC3339)
	}
	prefix := ""
	if *dryRun {
		prefix = "dry run, nothing saved: "
	}
	fmt.Fprintf(e.stdout, "%s%s: policy %s; grace %d days; deadline %s; %d of %d covered members not compliant\n",
		prefix, ws.Slug, p.Mode, p.GraceDays, deadline, im.NonCompliant, im.Covered)
	return nil
}

// flagSet reports whether the flag was given on the command line.
func flagSet(set *flag.FlagSet, name string) bool {
	found := false
	set.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
