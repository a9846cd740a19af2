package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
)

// staffCreate adds a platform staff member and prints their enrollment
// link, the only way to their first sign-in (API.md: one line).
func (e *env) staffCreate(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("staff create", &cfg)
	email := fs.String("email", "", "email address")
	lead := fs.Bool("lead", false, "a lead (may lengthen a reset's delay)")
	stdinPw := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	*email = strings.TrimSpace(*email)
	if !app.ValidEmail(*email) {
		return fmt.Errorf("staff create: %q is not a valid email address", *email)
	}
	if !*stdinPw {
		return errors.New("staff create: --password-stdin is required (the password is read from standard input)")
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("staff create: read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if err := auth.ValidatePassword(pw); err != nil {
		return fmt.Errorf("staff create: password: %s", strings.TrimSuffix(err.Error(), "."))
	}
	store, kr, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	hash, err := auth.NewHasher(cfg.PasswordHash).Hash(e.ctx, pw)
	if err != nil {
		return err
	}
	role := db.StaffRole
	if *lead {
		role = db.LeadRole
	}
	token := auth.NewToken()
	_, err = store.CreateStaff(e.ctx, *email, role, hash, app.StaffEnrollmentHash(kr, token), store.Now().Add(app.StaffEnrollmentTTL))
	if errors.Is(err, db.ErrConflict) {
		return fmt.Errorf("staff create: %s is already staff; 'gatehouse staff enroll-link' makes a new link", *email)
	} else if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, staffLink(cfg, token))
	return nil
}

// staffEnrollLink prints a new enrollment link for a staff member (the
// earlier unused ones stop working): for a link that expired, or to add a
// factor after losing every one. Audited in the platform's trail.
func (e *env) staffEnrollLink(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("staff enroll-link", &cfg)
	email := fs.String("email", "", "the staff member's email address")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	store, kr, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	token := auth.NewToken()
	_, err = store.NewStaffEnrollment(e.ctx, strings.TrimSpace(*email), app.StaffEnrollmentHash(kr, token), store.Now().Add(app.StaffEnrollmentTTL))
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("staff enroll-link: no staff member %q", *email)
	} else if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, staffLink(cfg, token))
	return nil
}

func staffLink(cfg app.Config, token string) string {
	return strings.TrimRight(cfg.BaseURL.String(), "/") + "/support/enroll/" + token
}
