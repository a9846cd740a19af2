package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/auth"
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
	demo := fs.Bool("demo", false, "create the demo workspace on first start (dev mode only)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Addr = *addr
	log := e.logger(cfg)
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
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
	srv := app.NewServer(cfg, log, store, kr)

	var wg sync.WaitGroup
	jobs := app.NewJobs(store, log, cfg)
	if jobs.Mail == nil {
		log.Warn("GATEHOUSE_SMTP_URL is not set: emails stay queued in the outbox" + devMailboxHint(cfg))
	}
	wg.Add(1)
	go func() { defer wg.Done(); jobs.Run(e.ctx) }()
	defer wg.Wait()

	base := strings.TrimRight(cfg.BaseURL.String(), "/")
	if *demo {
		if !cfg.Dev {
			return errors.New("--demo needs GATEHOUSE_DEV=1")
		}
		if err := seedDemo(e, store, srv.Hasher()); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "\nGatehouse is running at %s\n\n  Sign in:   %s/t/demo/login\n  Owner:     %s / %s\n  Member:    %s / %s\n  Mailbox:   %s/dev/mailbox\n\nPress Ctrl-C to stop.\n\n",
			base, base, demoOwner, demoPassword, demoMember, demoPassword, base)
	} else {
		fmt.Fprintf(e.stdout, "Gatehouse is running at %s\n", base)
	}
	log.Info("serving", slog.String("addr", l.Addr().String()), slog.String("base_url", base), slog.Bool("dev", cfg.Dev))
	return srv.Serve(e.ctx, l)
}

func devMailboxHint(cfg app.Config) string {
	if cfg.Dev {
		return "; read them in the dev mailbox at /dev/mailbox"
	}
	return ""
}

const (
	demoOwner    = "owner@demo.test"
	demoMember   = "member@demo.test"
	demoPassword = "gatehouse-demo"
)

// seedDemo creates the demo workspace and two accounts on first start.
func seedDemo(e *env, store *db.Store, h *auth.Hasher) error {
	if _, err := store.WorkspaceBySlug(e.ctx, "demo"); err == nil {
		return nil
	} else if !errors.Is(err, db.ErrNotFound) {
		return err
	}
	ws, err := store.CreateWorkspace(e.ctx, "demo", "Demo Workspace")
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
	if err := parse(e.flags("migrate", &cfg), args); err != nil {
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
	if err := parse(fs, args); err != nil {
		return err
	}
	if !tenants.ValidSlug(*slug) {
		return fmt.Errorf("workspace create: slug %q must be 3 to 32 characters of a-z, 0-9 and -", *slug)
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
	if err := parse(fs, args); err != nil {
		return err
	}
	if !db.ValidRole(*role) {
		return fmt.Errorf("user create: role %q must be owner, admin or member", *role)
	}
	if !app.ValidEmail(strings.TrimSpace(*email)) {
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
	u, err := store.CreateUser(e.ctx, ws.ID, strings.TrimSpace(*email), *role, hash, db.Meta{IP: "cli"}, 0)
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
	if err := parse(e.flags("jobs run-once", &cfg), args); err != nil {
		return err
	}
	log := e.logger(cfg)
	store, _, err := e.open(&cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	jobs := app.NewJobs(store, log, cfg)
	r, err := jobs.RunOnce(e.ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "mail sent: %d, mail failed attempts: %d, sessions cleaned: %d, throttles cleaned: %d\n",
		r.MailSent, r.MailFailed, r.SessionsCleaned, r.ThrottlesCleaned)
	return nil
}

func (e *env) backup(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("backup", &cfg)
	out := fs.String("out", "", "file to write")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("backup: --out FILE is required")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("backup: %s already exists", *out)
	}
	store, _, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	abs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := store.Backup(e.ctx, abs); err != nil {
		return err
	}
	if err := os.Chmod(abs, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup written to %s in %s\n", abs, time.Since(start).Round(time.Millisecond))
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
