// Command pgtemp runs a command against a throwaway PostgreSQL cluster:
// initdb into a temporary directory, postgres on a free loopback port,
// GATEHOUSE_TEST_DATABASE_URL set for the command, everything stopped and
// removed after. make test-postgres runs the test suite under it.
//
//	go run ./cmd/pgtemp [-keep] -- go test ./...
//
// When GATEHOUSE_TEST_DATABASE_URL is already set, pgtemp starts nothing and
// runs the command against that server. The server binaries come from
// Debian's postgresql package (/usr/lib/postgresql/N/bin, highest N), or
// PG_BINDIR. As root, the cluster runs as the postgres user, since
// PostgreSQL refuses to run as root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const urlEnv = "GATEHOUSE_TEST_DATABASE_URL"

func main() {
	keep := flag.Bool("keep", false, "keep the cluster's directory after the command (for its log)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: pgtemp [-keep] -- command [args...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if os.Getenv(urlEnv) != "" {
		os.Exit(run(flag.Args(), nil))
	}
	c, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtemp:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "pgtemp: PostgreSQL %s on %s (data in %s)\n", c.version, c.url, c.dir)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; c.stop(*keep); os.Exit(130) }()
	code := run(flag.Args(), []string{urlEnv + "=" + c.url})
	c.stop(*keep)
	os.Exit(code)
}

func run(args, env []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "pgtemp:", err)
		return 1
	}
	return 0
}

type cluster struct {
	dir, bin, url, version string
	asPostgres             bool
}

// start makes and starts the cluster.
func start() (*cluster, error) {
	bin, version, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-pg-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, bin: bin, version: version, asPostgres: os.Geteuid() == 0}
	if c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.cmd("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A free port: the kernel's pick, released just before postgres binds
	// it; a clash (rare) fails the start, and another port is tried.
	for try := 0; ; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300", port, dir)
		out, err := c.cmd("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "30", "-o", opts, "start").CombinedOutput()
		if err == nil {
			c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return c, nil
		}
		if try == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			c.stop(true)
			return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *cluster) stop(keep bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := c.cmd("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Run()
	if keep {
		fmt.Fprintf(os.Stderr, "pgtemp: kept %s\n", c.dir)
		return
	}
	os.RemoveAll(c.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// binDir finds the server binaries: PG_BINDIR, or the newest
// /usr/lib/postgresql/N/bin.
func binDir() (dir, version string, err error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, "(PG_BINDIR)", nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", "", errors.New("no PostgreSQL server found in /usr/lib/postgresql (apt-get install postgresql) and PG_BINDIR is unset")
	}
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(strings.Split(found[i], "/")[4])
		vj, _ := strconv.Atoi(strings.Split(found[j], "/")[4])
		return vi < vj
	})
	d := filepath.Dir(found[len(found)-1])
	return d, strings.Split(d, "/")[4], nil
}
