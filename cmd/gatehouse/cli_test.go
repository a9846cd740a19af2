package main

// These tests build the real gatehouse binary once and run it as an operator
// would: a clean environment, a fresh data directory per test, and checks on
// the exit status, the one-line message on stderr and the state left behind.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

// fastHash keeps the many hashes of these tests cheap.
const fastHash = "argon2id:m=64,t=1,p=1"

// slowHash makes one password check take long enough (≳ 0.5 s) for a
// request to be caught in flight by a shutdown.
const slowHash = "argon2id:m=131072,t=4,p=1"

var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "gatehouse-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "gatehouse")
	// Built without -race even under "go test -race": a race-instrumented
	// binary ran about 50 times slower with the pure-Go SQLite driver of
	// before (1.1 s instead of 23 ms a command), which would make these
	// tests the slowest of the suite. The in-process app tests run under
	// the race detector; these check what only the real process shows.
	// "make lint" (go vet) and "make build" leave the non-race packages in
	// the build cache.
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gatehouse:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "built %s in %s\n", bin, time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// home is one installation: a data directory and the environment the
// binary runs with, and nothing else from the test's own environment.
type home struct {
	t    *testing.T
	data string
	env  map[string]string
}

func newHome(t *testing.T) *home {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	h := &home{t: t, data: data, env: map[string]string{
		"GATEHOUSE_DATA":          data,
		"GATEHOUSE_PASSWORD_HASH": fastHash,
	}}
	// Under make test-postgres, each installation has a PostgreSQL
	// database of its own, empty as a new installation's.
	if dbtest.Engine() == "postgres" {
		h.env["GATEHOUSE_DATABASE_URL"] = dbtest.NewEmptyURL(t)
	}
	return h
}

// databaseURL is the installation's database: its PostgreSQL database or
// the SQLite file in its data directory.
func (h *home) databaseURL() string {
	if u := h.env["GATEHOUSE_DATABASE_URL"]; u != "" {
		return u
	}
	return db.SQLitePath(h.data)
}

// with returns a copy of h with more (or, with "", fewer) variables.
func (h *home) with(kv ...string) *home {
	c := &home{t: h.t, data: h.data, env: map[string]string{}}
	for k, v := range h.env {
		c.env[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(c.env, kv[i])
		} else {
			c.env[kv[i]] = kv[i+1]
		}
	}
	return c
}

func (h *home) environ() []string {
	out := []string{"HOME=" + h.data, "TZ=UTC"}
	for k, v := range h.env {
		out = append(out, k+"="+v)
	}
	return out
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the binary to completion with stdin.
func (h *home) run(stdin string, args ...string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = h.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		h.t.Fatalf("gatehouse %s: did not finish in time (stderr: %s)", strings.Join(args, " "), stderr.String())
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("gatehouse %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs a command that must succeed and returns its stdout.
func (h *home) ok(stdin string, args ...string) string {
	h.t.Helper()
	r := h.run(stdin, args...)
	if r.code != 0 {
		h.t.Fatalf("gatehouse %s: exit %d, stderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must fail with exactly one line on stderr that
// contains want, and nothing on stdout.
func (h *home) fails(want, stdin string, args ...string) {
	h.t.Helper()
	r := h.run(stdin, args...)
	if r.code == 0 {
		h.t.Fatalf("gatehouse %s: exit 0, want failure (stdout: %q)", strings.Join(args, " "), r.stdout)
	}
	checkOneLine(h.t, r.stderr, want)
	if r.stdout != "" {
		h.t.Errorf("gatehouse %s: stdout %q, want nothing", strings.Join(args, " "), r.stdout)
	}
}

func checkOneLine(t *testing.T, stderr, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.HasPrefix(stderr, "gatehouse: ") {
		t.Errorf("stderr is not one line starting with \"gatehouse: \": %q", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q does not contain %q", stderr, want)
	}
}

// store opens the installation's database in the test process.
func (h *home) store() *db.Store {
	h.t.Helper()
	s, err := db.Open(context.Background(), h.databaseURL())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { s.Close() })
	return s
}

func (h *home) workspace(slug string) (db.Workspace, bool) {
	h.t.Helper()
	ws, err := h.store().WorkspaceBySlug(context.Background(), slug)
	if errors.Is(err, db.ErrNotFound) {
		return db.Workspace{}, false
	} else if err != nil {
		h.t.Fatal(err)
	}
	return ws, true
}

func (h *home) members(slug string) []db.User {
	h.t.Helper()
	ws, ok := h.workspace(slug)
	if !ok {
		h.t.Fatalf("no workspace %q", slug)
	}
	us, err := h.store().ListMembers(context.Background(), ws.ID, db.MemberFilter{Limit: 200})
	if err != nil {
		h.t.Fatal(err)
	}
	return us
}

func (h *home) exists(name string) bool {
	_, err := os.Stat(filepath.Join(h.data, name))
	return err == nil
}

// checkPassword verifies that the stored hash of u is the hash of pw.
func checkPassword(t *testing.T, u db.User, pw string) {
	t.Helper()
	ok, _, err := auth.NewHasher(auth.Params{Memory: 64, Time: 1, Threads: 1}).Verify(context.Background(), pw, u.PasswordHash)
	if err != nil || !ok {
		t.Errorf("%s: stored hash does not match password %q (err %v)", u.Email, pw, err)
	}
}

func TestNoCommandHelpAndUnknownCommand(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.fails("no command given", "")
	h.fails(`unknown command "frobnicate"`, "", "frobnicate")
	h.fails(`unknown command "workspace delete"`, "", "workspace", "delete", "--slug", "acme")
	h.fails(`unknown command "user"`, "", "user")
	h.fails("flag provided but not defined: -bogus", "", "migrate", "--bogus")
	h.fails(`unexpected argument "extra"`, "", "migrate", "extra")
	if h.exists("") {
		t.Errorf("failed commands created the data directory %s", h.data)
	}

	for _, arg := range []string{"help", "--help", "-h"} {
		r := h.run("", arg)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("gatehouse %s: exit %d, stderr %q", arg, r.code, r.stderr)
		}
		// Every command and every variable of the contract is listed.
		for _, want := range []string{"Usage:", "serve", "migrate", "workspace create", "user create", "jobs run-once", "backup",
			"GATEHOUSE_DATA", "GATEHOUSE_DATABASE_URL", "GATEHOUSE_ADDR", "GATEHOUSE_BASE_URL", "GATEHOUSE_BASE_DOMAIN",
			"GATEHOUSE_MASTER_KEY", "GATEHOUSE_SMTP_URL", "GATEHOUSE_DEV", "GATEHOUSE_PASSWORD_HASH", "GATEHOUSE_TRUSTED_PROXIES",
			"GATEHOUSE_METRICS_ADDR", "GATEHOUSE_METRICS_TOKEN", "GATEHOUSE_JOBS_INTERVAL", "--metrics-addr"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("gatehouse %s: usage lacks %q", arg, want)
			}
		}
	}
	// -h on a command prints its flags and succeeds.
	r := h.run("", "workspace", "create", "-h")
	if r.code != 0 || !strings.Contains(r.stdout, "-slug") || r.stderr != "" {
		t.Errorf("workspace create -h: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestWorkspaceCreate(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	if out := h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme Inc"); out != "created workspace acme (Acme Inc)\n" {
		t.Errorf("stdout %q", out)
	}
	ws, ok := h.workspace("acme")
	if !ok || ws.Name != "Acme Inc" {
		t.Fatalf("workspace acme = %+v, %v", ws, ok)
	}
	// Boundaries: 3 and 32 characters, digits and dashes.
	for _, slug := range []string{"a-1", strings.Repeat("z", 32)} {
		h.ok("", "workspace", "create", "--slug", slug, "--name", "Edge")
		if _, ok := h.workspace(slug); !ok {
			t.Errorf("workspace %q missing", slug)
		}
	}

	bad := map[string]string{
		"too short": "ab",
		"uppercase": "Acme2",
		"33 chars":  strings.Repeat("a", 33),
		"empty":     "",
		"dot":       "ac.me",
		"unicode":   "acmé",
	}
	for name, slug := range bad {
		t.Run(name, func(t *testing.T) {
			h := newHome(t)
			h.fails("must be 3 to 32 characters of a-z, 0-9 and -", "", "workspace", "create", "--slug", slug, "--name", "X")
			// Refused before anything is created.
			if h.exists("gatehouse.db") || h.exists("master.key") {
				t.Errorf("a refused slug left a database or key behind")
			}
		})
	}

	// Duplicate: refused, the first workspace unchanged.
	h.fails(`a workspace with slug "acme" already exists`, "", "workspace", "create", "--slug", "acme", "--name", "Impostor")
	if ws, _ := h.workspace("acme"); ws.Name != "Acme Inc" {
		t.Errorf("duplicate create changed the name to %q", ws.Name)
	}

	// Missing or blank name.
	h.fails("--name is required", "", "workspace", "create", "--slug", "noname")
	h.fails("--name is required", "", "workspace", "create", "--slug", "noname", "--name", "   ")
	h.fails("--name is required", "", "workspace", "create", "--slug", "noname", "--name", strings.Repeat("n", 101))
	if _, ok := h.workspace("noname"); ok {
		t.Errorf("workspace created without a name")
	}
}

// The slugs the service itself uses cannot be taken (SECURITY rule 14):
// one line on stderr, exit 1, nothing created, on a fresh installation
// and on one that already has a database.
func TestWorkspaceCreateReservedSlug(t *testing.T) {
	t.Parallel()
	reserved := []string{"csrf", "support", "api", "assets", "admin", "www", "dev", "healthz", "readyz",
		"login", "static", "mail", "well-known", "oauth", "auth"}
	fresh := newHome(t)
	for _, slug := range reserved {
		r := fresh.run("", "workspace", "create", "--slug", slug, "--name", "Impostor")
		if r.code != 1 || r.stdout != "" {
			t.Errorf("workspace create --slug %s: exit %d, stdout %q, want exit 1 and nothing", slug, r.code, r.stdout)
		}
		checkOneLine(t, r.stderr, fmt.Sprintf("slug %q is reserved", slug))
	}
	if fresh.exists("gatehouse.db") || fresh.exists("master.key") {
		t.Errorf("a reserved slug left a database or key behind")
	}

	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	for _, slug := range reserved {
		h.fails(fmt.Sprintf("slug %q is reserved for Gatehouse itself", slug), "", "workspace", "create", "--slug", slug, "--name", "Impostor")
		if _, ok := h.workspace(slug); ok {
			t.Errorf("workspace %q created", slug)
		}
	}
	// Only whole names are reserved.
	h.ok("", "workspace", "create", "--slug", "csrf-team", "--name", "CSRF team")
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	t.Parallel()
	// --data against GATEHOUSE_DATA: where the SQLite file goes, so on
	// SQLite whatever the run's engine.
	h := newHome(t).with("GATEHOUSE_DATABASE_URL", "")
	other := filepath.Join(t.TempDir(), "other")
	h.ok("", "workspace", "create", "--data", other, "--slug", "acme", "--name", "Acme")
	if h.exists("gatehouse.db") {
		t.Errorf("GATEHOUSE_DATA was used although --data was given")
	}
	if _, err := os.Stat(filepath.Join(other, "gatehouse.db")); err != nil {
		t.Errorf("--data was not used: %v", err)
	}
}

func TestUserCreate(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	create := func(email, role string, extra ...string) []string {
		return append([]string{"user", "create", "--workspace", "acme", "--email", email, "--role", role}, extra...)
	}

	for i, role := range []string{"owner", "admin", "member"} {
		email := role + "@acme.test"
		pw := "correct horse " + role
		out := h.ok(pw+"\n", create(email, role, "--password-stdin")...)
		want := fmt.Sprintf("created %s %s in acme (id %d)\n", role, email, i+1)
		if out != want {
			t.Errorf("stdout %q, want %q", out, want)
		}
	}
	us := h.members("acme")
	if len(us) != 3 {
		t.Fatalf("%d members, want 3", len(us))
	}
	for _, u := range us {
		if want := strings.TrimSuffix(u.Email, "@acme.test"); u.Role != want {
			t.Errorf("%s has role %q, want %q", u.Email, u.Role, want)
		}
		// The password is the first line of stdin, without its newline.
		checkPassword(t, u, "correct horse "+u.Role)
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Errorf("hash %q was not made with GATEHOUSE_PASSWORD_HASH", u.PasswordHash)
		}
	}

	// A password of exactly 8 and of exactly 256 characters is fine; without
	// a final newline too; multi-byte characters count as one.
	h.ok("12345678", create("eight@acme.test", "member", "--password-stdin")...)
	h.ok(strings.Repeat("é", 256)+"\n", create("max@acme.test", "member", "--password-stdin")...)

	before := len(h.members("acme"))
	cases := []struct {
		name, stdin, want string
		args              []string
	}{
		{"unknown role", "long enough\n", `role "superuser" must be owner, admin or member`, create("x@acme.test", "superuser", "--password-stdin")},
		{"no role", "long enough\n", `role "" must be owner, admin or member`, []string{"user", "create", "--workspace", "acme", "--email", "x@acme.test", "--password-stdin"}},
		{"role in capitals", "long enough\n", `role "Owner" must be`, create("x@acme.test", "Owner", "--password-stdin")},
		{"bad email", "long enough\n", `"not-an-email" is not a valid email address`, create("not-an-email", "member", "--password-stdin")},
		{"empty password", "", "password: Enter a password", create("x@acme.test", "member", "--password-stdin")},
		{"empty line", "\n", "password: Enter a password", create("x@acme.test", "member", "--password-stdin")},
		{"7 characters", "1234567\n", "password: Use at least 8 characters", create("x@acme.test", "member", "--password-stdin")},
		{"257 characters", strings.Repeat("p", 257) + "\n", "password: Use at most 256 characters", create("x@acme.test", "member", "--password-stdin")},
		{"invalid UTF-8", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\n", "password: The password contains invalid characters", create("x@acme.test", "member", "--password-stdin")},
		{"no --password-stdin", "long enough\n", "--password-stdin is required", create("x@acme.test", "member")},
		{"unknown workspace", "long enough\n", `no workspace "nowhere"`, []string{"user", "create", "--workspace", "nowhere", "--email", "x@acme.test", "--role", "member", "--password-stdin"}},
		{"duplicate email, other case", "another password\n", "Owner@ACME.test is already a member of acme", create("Owner@ACME.test", "member", "--password-stdin")},
		{"duplicate email, spaces", "another password\n", "is already a member of acme", create(" owner@acme.test ", "member", "--password-stdin")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &home{t: t, data: h.data, env: h.env}
			h.fails(c.want, c.stdin, c.args...)
		})
	}
	// Bad input never changes state: the same members, and the owner keeps
	// role and password.
	after := h.members("acme")
	if len(after) != before {
		t.Errorf("%d members after refused creates, want %d", len(after), before)
	}
	for _, u := range after {
		if u.Email == "owner@acme.test" {
			if u.Role != "owner" {
				t.Errorf("owner's role became %q", u.Role)
			}
			checkPassword(t, u, "correct horse owner")
		}
		if u.Email == "x@acme.test" {
			t.Errorf("a refused create left x@acme.test behind")
		}
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	r := h.run("", "migrate")
	if r.code != 0 || r.stdout != "database is up to date\n" {
		t.Fatalf("first migrate: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Outside dev mode the log is JSON, one object a line.
	applied := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "migration applied" {
			applied++
		}
	}
	if applied == 0 {
		t.Errorf("first migrate logged no applied migration: %q", r.stderr)
	}
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	for i := 0; i < 2; i++ {
		r = h.run("", "migrate")
		if r.code != 0 || r.stdout != "database is up to date\n" || strings.Contains(r.stderr, "migration applied") {
			t.Fatalf("migrate again: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	}
	if _, ok := h.workspace("acme"); !ok {
		t.Errorf("migrate lost the workspace")
	}
}

func TestBackup(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("long enough\n", "user", "create", "--workspace", "acme", "--email", "a@acme.test", "--role", "owner", "--password-stdin")

	out := filepath.Join(t.TempDir(), "copy.db")
	stdout := h.ok("", "backup", "--out", out)
	if !regexp.MustCompile(`^backup written to ` + regexp.QuoteMeta(out) + ` in \S+\n$`).MatchString(stdout) {
		t.Errorf("stdout %q", stdout)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %o, want 600", st.Mode().Perm())
	}
	copyStore := dbtest.Restore(t, out)
	ws, err := copyStore.WorkspaceBySlug(context.Background(), "acme")
	if err != nil || ws.Name != "Acme" {
		t.Errorf("workspace in backup: %+v, %v", ws, err)
	} else if u, err := copyStore.UserByEmail(context.Background(), ws.ID, "a@acme.test"); err != nil || u.Role != "owner" {
		t.Errorf("member in backup: %+v, %v", u, err)
	}

	// An existing file is never overwritten.
	sum := fileSum(t, out)
	h.fails("already exists", "", "backup", "--out", out)
	if fileSum(t, out) != sum {
		t.Errorf("a refused backup changed %s", out)
	}
	other := filepath.Join(t.TempDir(), "other.txt")
	if err := os.WriteFile(other, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.fails("already exists", "", "backup", "--out", other)
	if b, _ := os.ReadFile(other); string(b) != "precious" {
		t.Errorf("backup overwrote an unrelated file: %q", b)
	}

	h.fails("--out FILE is required", "", "backup")

	// A data directory without a database: nothing to back up, nothing made
	// (SQLite's file in the data directory, whatever the run's engine).
	empty := newHome(t).with("GATEHOUSE_DATABASE_URL", "")
	lost := filepath.Join(t.TempDir(), "lost.db")
	empty.fails("no database at", "", "backup", "--out", lost)
	if _, err := os.Stat(lost); err == nil {
		t.Errorf("a failed backup left %s", lost)
	}
	if empty.exists("") {
		t.Errorf("backup created the data directory %s", empty.data)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestJobsRunOnce(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "migrate")
	out := h.ok("", "jobs", "run-once")
	if !regexp.MustCompile(`^mail sent: 0, mail failed attempts: 0, sessions cleaned: \d+, throttles cleaned: \d+, reminders queued: 0, ` +
		`support resets executed: 0, support cases expired: 0, self-service recoveries executed: 0, texts sent: 0\n$`).MatchString(out) {
		t.Errorf("stdout %q", out)
	}
	h.with("GATEHOUSE_SMTP_URL", "http://mail.example.com").fails("GATEHOUSE_SMTP_URL: scheme must be smtp or smtps", "", "jobs", "run-once")

	// A member under a new requirement: the pass queues the announcement
	// (kept in the outbox without SMTP), once.
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("long enough password\n", "user", "create", "--workspace", "acme", "--email", "bob@acme.test", "--role", "member", "--password-stdin")
	h.ok("", "workspace", "policy", "--slug", "acme", "--policy", "required")
	for i, want := range []string{"reminders queued: 1,", "reminders queued: 0,"} {
		if out := h.ok("", "jobs", "run-once"); !strings.Contains(out, want) {
			t.Errorf("jobs run-once #%d: stdout %q, want %q", i+1, out, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.with("GATEHOUSE_PASSWORD_HASH", "bcrypt:10").fails("GATEHOUSE_PASSWORD_HASH", "", "migrate")
	h.with("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/33").fails("GATEHOUSE_TRUSTED_PROXIES", "", "migrate")
	h.with("GATEHOUSE_BASE_URL", "ftp://example.com").fails("GATEHOUSE_BASE_URL", "", "migrate")
	// A provider URL over plain http to another host: refused at start,
	// and the auth token is not repeated in the message.
	r := h.with("GATEHOUSE_SMS_URL", "http://AC123:tok3n-s3cret@sms.example.com?from=%2B15550100").run("", "migrate")
	if r.code == 0 || !strings.Contains(r.stderr, "GATEHOUSE_SMS_URL") || strings.Contains(r.stderr, "tok3n-s3cret") {
		t.Errorf("bad GATEHOUSE_SMS_URL: exit %d, stderr %q", r.code, r.stderr)
	}
	h.with("GATEHOUSE_SMS_PRICES", filepath.Join(t.TempDir(), "missing.json")).fails("GATEHOUSE_SMS_PRICES", "", "migrate")
	// A PostgreSQL server that does not answer: one line naming the step.
	h.with("GATEHOUSE_DATABASE_URL", "postgres://gatehouse@127.0.0.1:1/gatehouse?connect_timeout=5").fails("gatehouse: open database: ", "", "migrate")
	if h.exists("gatehouse.db") {
		t.Errorf("a configuration error left a database behind")
	}
}

// server is a running "gatehouse serve".
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done
	client *http.Client
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var runningAt = regexp.MustCompile(`Gatehouse is running at (\S+)\n`)

// serve starts the server on a free loopback port and waits for the URL it
// prints.
func (h *home) serve(args ...string) *server {
	h.t.Helper()
	return h.start(append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
}

// start runs the binary with args (a serve command line) and waits for the
// URL it prints.
func (h *home) start(args ...string) *server {
	h.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = h.environ()
	s := &server{t: h.t, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{}),
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{}}}
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	h.t.Cleanup(func() {
		s.client.CloseIdleConnections()
		select {
		case <-s.done:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-s.done
			h.t.Errorf("serve did not stop on SIGTERM within 30 s")
		}
	})
	deadline := time.After(90 * time.Second)
	for {
		if m := runningAt.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			return s
		}
		select {
		case <-s.done:
			h.t.Fatalf("serve exited before it was running: %v\nstderr: %s", s.err, s.stderr.String())
		case <-deadline:
			h.t.Fatalf("serve printed no URL within 90 s\nstdout: %s\nstderr: %s", s.stdout.String(), s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and returns the exit code.
func (s *server) stop() int {
	s.t.Helper()
	s.client.CloseIdleConnections()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	return s.wait(30 * time.Second)
}

func (s *server) wait(d time.Duration) int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		s.t.Fatalf("serve did not exit within %s", d)
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	} else if s.err != nil {
		s.t.Fatal(s.err)
	}
	return 0
}

func (s *server) get(path string) (int, string) {
	s.t.Helper()
	resp, err := s.client.Get(s.url + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// login is POST /t/{slug}/api/v1/login.
func (s *server) login(slug, email, password string) (int, map[string]any) {
	s.t.Helper()
	return s.doJSON(http.MethodPost, "/t/"+slug+"/api/v1/login", "", map[string]string{"email": email, "password": password})
}

func (s *server) doJSON(method, path, token string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			s.t.Fatalf("%s %s: status %d, body is not JSON: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, out
}

func TestServeHealthAndDemo(t *testing.T) {
	t.Parallel()
	// GATEHOUSE_ADDR is wrong on purpose: the --addr flag wins.
	h := newHome(t).with("GATEHOUSE_DEV", "1", "GATEHOUSE_ADDR", "256.0.0.1:1")
	s := h.serve("--demo")
	if !strings.HasPrefix(s.url, "http://127.0.0.1:") || strings.HasSuffix(s.url, ":0") {
		t.Errorf("URL %q does not carry the real port", s.url)
	}
	for _, want := range []string{
		"Sign in:   " + s.url + "/t/demo/login",
		"Owner:     owner@demo.test / gatehouse-demo",
		"Member:    member@demo.test / gatehouse-demo",
		"Mailbox:   " + s.url + "/dev/mailbox",
	} {
		if !strings.Contains(s.stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, s.stdout.String())
		}
	}
	if code, body := s.get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := s.get("/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	// The start page leads to the demo's sign-in, as the banner does.
	if code, body := s.get("/"); code != 200 || !strings.Contains(body, `href="`+s.url+`/t/demo/login"`) || !strings.Contains(body, "owner@demo.test") {
		t.Errorf("GET /: %d, no link to the demo sign-in or no demo account", code)
	}

	code, body := s.login("demo", "owner@demo.test", "gatehouse-demo")
	token, _ := body["session_token"].(string)
	if code != 200 || token == "" || body["mfa_required"] != false || body["aal"] != "aal1" {
		t.Fatalf("demo owner login: %d %v", code, body)
	}
	code, body = s.doJSON(http.MethodGet, "/t/demo/api/v1/session", token, nil)
	user, _ := body["user"].(map[string]any)
	if code != 200 || body["workspace"] != "demo" || user["email"] != "owner@demo.test" || user["role"] != "owner" {
		t.Errorf("session: %d %v", code, body)
	}
	if code, body := s.login("demo", "member@demo.test", "wrong password"); code != 401 || body["error"] != "invalid_credentials" {
		t.Errorf("wrong password: %d %v", code, body)
	}
	if code, _ := s.get("/dev/mailbox"); code != 200 {
		t.Errorf("/dev/mailbox in dev mode: %d", code)
	}
	// The key file was made on first start, readable by its owner only.
	st, err := os.Stat(filepath.Join(h.data, "master.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("master.key: %v, mode %v", err, st)
	}
	key, _ := os.ReadFile(filepath.Join(h.data, "master.key"))
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key))); err != nil || len(k) != 32 {
		t.Errorf("master.key is not the base64 of 32 bytes")
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM, stderr: %s", code, s.stderr.String())
	}
	for _, secret := range []string{"gatehouse-demo", token, strings.TrimSpace(string(key))} {
		if strings.Contains(s.stderr.String(), secret) {
			t.Errorf("the log contains a secret (%.8s…)", secret)
		}
	}

	// A second start reuses the key and the demo workspace, and the demo
	// password still works.
	s = h.serve("--demo")
	if key2, _ := os.ReadFile(filepath.Join(h.data, "master.key")); !bytes.Equal(key, key2) {
		t.Errorf("master.key changed on the second start")
	}
	if code, body := s.login("demo", "owner@demo.test", "gatehouse-demo"); code != 200 {
		t.Errorf("demo login after restart: %d %v", code, body)
	}
	if us := h.members("demo"); len(us) != 2 {
		t.Errorf("%d demo members after restart, want 2", len(us))
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

// The same email in two workspaces is two members, each with its own
// password.
func TestSameEmailInTwoWorkspaces(t *testing.T) {
	t.Parallel()
	h := newHome(t).with("GATEHOUSE_DEV", "1")
	for _, ws := range []string{"acme", "beta"} {
		h.ok("", "workspace", "create", "--slug", ws, "--name", ws)
		h.ok("password of "+ws+"\n", "user", "create", "--workspace", ws, "--email", "Pat@Example.com", "--role", "member", "--password-stdin")
	}
	a, b := h.members("acme"), h.members("beta")
	if len(a) != 1 || len(b) != 1 || a[0].ID == b[0].ID || a[0].WorkspaceID == b[0].WorkspaceID {
		t.Fatalf("members: acme %+v, beta %+v", a, b)
	}
	s := h.serve()
	ids := map[string]any{}
	for _, ws := range []string{"acme", "beta"} {
		code, body := s.login(ws, "pat@example.com", "password of "+ws)
		token, _ := body["session_token"].(string)
		if code != 200 || token == "" {
			t.Fatalf("%s: login with its own password: %d %v", ws, code, body)
		}
		code, sess := s.doJSON(http.MethodGet, "/t/"+ws+"/api/v1/session", token, nil)
		user, _ := sess["user"].(map[string]any)
		if code != 200 || sess["workspace"] != ws {
			t.Fatalf("%s: session %d %v", ws, code, sess)
		}
		ids[ws] = user["id"]
		// The token is worthless in the other workspace.
		other := map[string]string{"acme": "beta", "beta": "acme"}[ws]
		if code, _ := s.doJSON(http.MethodGet, "/t/"+other+"/api/v1/session", token, nil); code != 401 {
			t.Errorf("%s token in %s: %d, want 401", ws, other, code)
		}
		// The other workspace's password does not open this one.
		if code, body := s.login(ws, "pat@example.com", "password of "+other); code != 401 {
			t.Errorf("%s: login with %s's password: %d %v", ws, other, code, body)
		}
	}
	if ids["acme"] == ids["beta"] {
		t.Errorf("both sessions are for member %v", ids["acme"])
	}
}

func TestServeRefusesBadSettings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"not dev, no base URL", nil, nil, "GATEHOUSE_BASE_URL must be an https URL unless GATEHOUSE_DEV=1"},
		{"not dev, http base URL", []string{"GATEHOUSE_BASE_URL", "http://gatehouse.example.com"}, nil, "GATEHOUSE_BASE_URL must be an https URL"},
		{"--demo outside dev", []string{"GATEHOUSE_BASE_URL", "https://gatehouse.example.com"}, []string{"--demo"}, "--demo needs GATEHOUSE_DEV=1"},
		{"master key not base64", []string{"GATEHOUSE_DEV", "1", "GATEHOUSE_MASTER_KEY", "not base64!"}, nil, "GATEHOUSE_MASTER_KEY"},
		{"master key too short", []string{"GATEHOUSE_DEV", "1", "GATEHOUSE_MASTER_KEY", base64.StdEncoding.EncodeToString(make([]byte, 16))}, nil, "base64 of 32 bytes"},
		{"bad SMTP URL", []string{"GATEHOUSE_DEV", "1", "GATEHOUSE_SMTP_URL", "smtp://mail.example.com"}, nil, "from= (the sender address) missing"},
		{"bad listen address", []string{"GATEHOUSE_DEV", "1"}, []string{"--addr", "256.0.0.1:80"}, "listen:"},
		{"bad metrics address", []string{"GATEHOUSE_DEV", "1"}, []string{"--metrics-addr", "256.0.0.1:80"}, "listen for metrics:"},
		{"metrics token too short", []string{"GATEHOUSE_DEV", "1", "GATEHOUSE_METRICS_TOKEN", "short"}, nil, "GATEHOUSE_METRICS_TOKEN: use at least 32 characters"},
		{"jobs interval too short", []string{"GATEHOUSE_DEV", "1", "GATEHOUSE_JOBS_INTERVAL", "1ms"}, nil, "GATEHOUSE_JOBS_INTERVAL: \"1ms\": want a duration from 100ms to 1h"},
		{"jobs interval not a duration", []string{"GATEHOUSE_DEV", "1", "GATEHOUSE_JOBS_INTERVAL", "5"}, nil, "GATEHOUSE_JOBS_INTERVAL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHome(t).with(c.env...)
			h.fails(c.want, "", append([]string{"serve"}, c.args...)...)
			if h.exists("gatehouse.db") || h.exists("master.key") {
				t.Errorf("a refused start left a database or key behind")
			}
		})
	}

	t.Run("master key file readable by others", func(t *testing.T) {
		h := newHome(t).with("GATEHOUSE_DEV", "1")
		if err := os.MkdirAll(h.data, 0o700); err != nil {
			t.Fatal(err)
		}
		key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "\n"
		if err := os.WriteFile(filepath.Join(h.data, "master.key"), []byte(key), 0o644); err != nil {
			t.Fatal(err)
		}
		h.fails("is readable by others", "", "serve", "--addr", "127.0.0.1:0")
		if h.exists("gatehouse.db") {
			t.Errorf("a refused start created the database")
		}
	})

	t.Run("https base URL outside dev starts", func(t *testing.T) {
		h := newHome(t).with("GATEHOUSE_BASE_URL", "https://gatehouse.example.com/")
		s := h.serve()
		if s.url != "https://gatehouse.example.com" {
			t.Errorf("URL %q", s.url)
		}
		if code := s.stop(); code != 0 {
			t.Errorf("exit %d", code)
		}
		// Outside dev mode the log is JSON.
		for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
			if !json.Valid([]byte(line)) {
				t.Errorf("log line is not JSON: %q", line)
			}
		}
	})

	t.Run("master key from the environment", func(t *testing.T) {
		h := newHome(t).with("GATEHOUSE_DEV", "1", "GATEHOUSE_MASTER_KEY", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)))
		s := h.serve()
		if code, _ := s.get("/readyz"); code != 200 {
			t.Errorf("/readyz: %d", code)
		}
		if h.exists("master.key") {
			t.Errorf("master.key written although GATEHOUSE_MASTER_KEY is set")
		}
	})
}

// TestGracefulShutdown catches a slow sign-in in flight with SIGTERM: the
// request still completes, new connections are refused, and the process
// exits 0 promptly. It runs alone (not parallel) so that its timing holds.
func TestGracefulShutdown(t *testing.T) {
	h := newHome(t).with("GATEHOUSE_DEV", "1")
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	// The member's stored hash is slow; checking it costs the slow
	// parameters whatever the server's own setting.
	h.with("GATEHOUSE_PASSWORD_HASH", slowHash).ok("slow password\n",
		"user", "create", "--workspace", "acme", "--email", "slow@acme.test", "--role", "member", "--password-stdin")
	s := h.serve()
	addr := strings.TrimPrefix(s.url, "http://")

	// A wrong password costs a full check without upgrading the hash.
	start := time.Now()
	if code, body := s.login("acme", "slow@acme.test", "wrong password"); code != 401 {
		t.Fatalf("wrong password: %d %v", code, body)
	}
	took := time.Since(start)
	t.Logf("one slow password check: %s", took.Round(time.Millisecond))
	if took < 400*time.Millisecond {
		t.Fatalf("a slow check took only %s; the in-flight window is too small", took)
	}

	type reply struct {
		code  int
		token string
		at    time.Time
		err   error
	}
	replies := make(chan reply, 1)
	wrote := make(chan struct{})
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/t/acme/api/v1/login",
			strings.NewReader(`{"email":"slow@acme.test","password":"slow password"}`))
		req.Header.Set("Content-Type", "application/json")
		req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) },
		}))
		resp, err := (&http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{}}).Do(req)
		if err != nil {
			replies <- reply{err: err, at: time.Now()}
			return
		}
		defer resp.Body.Close()
		var body struct {
			Token string `json:"session_token"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		replies <- reply{code: resp.StatusCode, token: body.Token, at: time.Now()}
	}()
	select {
	case <-wrote:
	case <-time.After(30 * time.Second):
		t.Fatal("the login request was never written")
	}
	time.Sleep(100 * time.Millisecond) // the handler is inside the slow check now
	signalled := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// The listener closes at once: new connections are refused while the
	// request is still being served.
	var refusedAt time.Time
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			refusedAt = time.Now()
			break
		}
		c.Close()
	}
	if refusedAt.IsZero() {
		t.Fatal("new connections still accepted 5 s after SIGTERM")
	}

	var r reply
	select {
	case r = <-replies:
	case <-time.After(30 * time.Second):
		t.Fatal("the in-flight login never completed")
	}
	if r.err != nil || r.code != 200 || r.token == "" {
		t.Fatalf("in-flight login: code %d, token %v, err %v", r.code, r.token != "", r.err)
	}
	if !r.at.After(signalled) || !refusedAt.Before(r.at) {
		t.Errorf("the login was not in flight during the shutdown: signalled %s, refused %s, answered %s",
			signalled.Format(time.StampMilli), refusedAt.Format(time.StampMilli), r.at.Format(time.StampMilli))
	}
	t.Logf("answered %s after SIGTERM; refused new connections after %s",
		r.at.Sub(signalled).Round(time.Millisecond), refusedAt.Sub(signalled).Round(time.Millisecond))

	if code := s.wait(10 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, stderr: %s", code, s.stderr.String())
	}
	t.Logf("exited %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("no shutdown in the log: %s", s.stderr.String())
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("connection accepted after exit")
	}

	// The session made during the shutdown was stored: it works after a
	// restart (on another port, so the token is checked against the store).
	s2 := h.serve()
	code, body := s2.doJSON(http.MethodGet, "/t/acme/api/v1/session", r.token, nil)
	if user, _ := body["user"].(map[string]any); code != 200 || user["email"] != "slow@acme.test" {
		t.Errorf("session from the shutdown, after restart: %d %v", code, body)
	}
}

var metricsAt = regexp.MustCompile(`Metrics at (\S+)\n`)

// serve --metrics-addr: a second listener with the metrics and nothing
// else; the main listener has no /metrics without a token.
func TestServeMetricsListener(t *testing.T) {
	t.Parallel()
	h := newHome(t).with("GATEHOUSE_DEV", "1")
	s := h.serve("--metrics-addr", "127.0.0.1:0")
	m := metricsAt.FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("serve --metrics-addr printed no metrics URL: %s", s.stdout.String())
	}
	get := func(u string) (int, string) {
		resp, err := s.client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The jobs started with serve: their lag is there.
	code, body := get(m[1])
	if code != http.StatusOK || !strings.Contains(body, `gatehouse_job_lag_seconds{job="cleanup"}`) || !strings.Contains(body, "gatehouse_signin_steps_total") {
		t.Fatalf("GET %s = %d\n%s", m[1], code, body)
	}
	for _, path := range []string{"/", "/healthz", "/t/acme/login"} {
		if code, _ := get(strings.TrimSuffix(m[1], "/metrics") + path); code != http.StatusNotFound {
			t.Errorf("GET %s on the metrics listener = %d, want 404", path, code)
		}
	}
	if code, _ := s.get("/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the main listener without GATEHOUSE_METRICS_TOKEN = %d, want 404", code)
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM, stderr: %s", code, s.stderr.String())
	}
}
