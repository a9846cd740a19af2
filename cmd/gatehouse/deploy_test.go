package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// flyConfig is the part of fly.toml that must agree with what serve does.
type flyConfig struct {
	KillSignal  string            `toml:"kill_signal"`
	KillTimeout any               `toml:"kill_timeout"` // "30s" or a number of seconds
	Env         map[string]string `toml:"env"`
	Mounts      []struct {
		Source      string `toml:"source"`
		Destination string `toml:"destination"`
	} `toml:"mounts"`
	HTTPService struct {
		InternalPort       int  `toml:"internal_port"`
		ForceHTTPS         bool `toml:"force_https"`
		AutoStopMachines   any  `toml:"auto_stop_machines"` // "off" or false
		MinMachinesRunning int  `toml:"min_machines_running"`
		Checks             []struct {
			Method string `toml:"method"`
			Path   string `toml:"path"`
		} `toml:"checks"`
	} `toml:"http_service"`
	Deploy struct {
		Strategy string `toml:"strategy"`
	} `toml:"deploy"`
}

var servingAt = regexp.MustCompile(`"msg":"serving","addr":"([^"]+)"`)

// The deployment files describe a Gatehouse that starts: fly.toml's [env]
// and the Dockerfile agree on the port, the data directory is on the volume,
// no secret is written in [env], shutdown has more time than serve's 20 s,
// and serve started with exactly that environment (the address moved to a
// free loopback port, the data to a temp dir) answers the health checks
// fly.toml declares.
func TestDeployConfigServes(t *testing.T) {
	t.Parallel()
	var fly flyConfig
	if _, err := toml.DecodeFile("../../fly.toml", &fly); err != nil {
		t.Fatalf("fly.toml: %v", err)
	}
	hs := fly.HTTPService

	host, port, err := net.SplitHostPort(fly.Env["GATEHOUSE_ADDR"])
	if err != nil || host != "0.0.0.0" || port != strconv.Itoa(hs.InternalPort) {
		t.Errorf("fly.toml: GATEHOUSE_ADDR %q, internal_port %d: want 0.0.0.0 on the internal port", fly.Env["GATEHOUSE_ADDR"], hs.InternalPort)
	}
	if len(fly.Mounts) != 1 {
		t.Fatalf("fly.toml: %d mounts, want 1", len(fly.Mounts))
	}
	mount := fly.Mounts[0].Destination
	if data := fly.Env["GATEHOUSE_DATA"]; !strings.HasPrefix(filepath.Clean(data)+"/", filepath.Clean(mount)+"/") {
		t.Errorf("fly.toml: GATEHOUSE_DATA %q is not on the volume mounted at %q", data, mount)
	}
	if !strings.HasPrefix(fly.Env["GATEHOUSE_BASE_URL"], "https://") || !hs.ForceHTTPS {
		t.Errorf("fly.toml: base URL %q, force_https %v: want https", fly.Env["GATEHOUSE_BASE_URL"], hs.ForceHTTPS)
	}
	for _, secret := range []string{"GATEHOUSE_MASTER_KEY", "GATEHOUSE_SMTP_URL", "GATEHOUSE_SMS_URL", "GATEHOUSE_DATABASE_URL"} {
		if _, ok := fly.Env[secret]; ok {
			t.Errorf("fly.toml: %s is in [env]; it belongs in fly secrets", secret)
		}
	}
	if fly.Env["GATEHOUSE_DEV"] != "" {
		t.Errorf("fly.toml: GATEHOUSE_DEV is set")
	}
	var kill time.Duration
	switch v := fly.KillTimeout.(type) {
	case string:
		kill, _ = time.ParseDuration(v)
	case int64:
		kill = time.Duration(v) * time.Second
	}
	if fly.KillSignal != "SIGTERM" || kill < 25*time.Second {
		t.Errorf("fly.toml: kill_signal %q, kill_timeout %v: want SIGTERM and at least 25 s (serve drains for 20 s)", fly.KillSignal, fly.KillTimeout)
	}
	// One SQLite writer: always one Machine, never two at once.
	if hs.MinMachinesRunning != 1 || (hs.AutoStopMachines != "off" && hs.AutoStopMachines != false) {
		t.Errorf("fly.toml: min_machines_running %d, auto_stop_machines %v: want 1 and off", hs.MinMachinesRunning, hs.AutoStopMachines)
	}
	if s := fly.Deploy.Strategy; s != "rolling" && s != "immediate" {
		t.Errorf("fly.toml: deploy strategy %q starts a second Machine beside the volume's", s)
	}
	var checks []string
	for _, c := range hs.Checks {
		checks = append(checks, c.Method+" "+c.Path)
	}
	for _, want := range []string{"GET /healthz", "GET /readyz"} {
		if !slices.Contains(checks, want) {
			t.Errorf("fly.toml: checks %v lack %s", checks, want)
		}
	}

	// The image's defaults are fly.toml's.
	docker := dockerfile(t)
	if !slices.Contains(docker["EXPOSE"], strconv.Itoa(hs.InternalPort)) {
		t.Errorf("Dockerfile: EXPOSE %v, want %d", docker["EXPOSE"], hs.InternalPort)
	}
	for _, kv := range []string{"GATEHOUSE_ADDR=" + fly.Env["GATEHOUSE_ADDR"], "GATEHOUSE_DATA=" + fly.Env["GATEHOUSE_DATA"]} {
		if !slices.Contains(docker["ENV"], kv) {
			t.Errorf("Dockerfile: ENV %v lacks %s", docker["ENV"], kv)
		}
	}
	if !slices.Contains(docker["VOLUME"], `["`+mount+`"]`) {
		t.Errorf("Dockerfile: VOLUME %v, want %s", docker["VOLUME"], mount)
	}
	if !slices.Contains(docker["CMD"], `["serve"]`) {
		t.Errorf("Dockerfile: CMD %v, want serve", docker["CMD"])
	}
	// The SQLite driver (github.com/mattn/go-sqlite3) is cgo: the build needs
	// CGO_ENABLED=1 and the binary glibc, which a static base image lacks.
	if from := docker["FROM"]; len(from) == 0 || strings.Contains(from[0], "/static") {
		t.Errorf("Dockerfile: run stage FROM %v, want an image with glibc (distroless/base)", from)
	}
	if src, _ := os.ReadFile("../../Dockerfile"); !strings.Contains(string(src), "CGO_ENABLED=1") {
		t.Errorf("Dockerfile: the build does not set CGO_ENABLED=1")
	}

	// serve with that environment and no flags, as the image runs it.
	// fly.toml's single Machine keeps SQLite on its volume: this runs on
	// SQLite whatever the run's engine.
	h := newHome(t).with("GATEHOUSE_DATABASE_URL", "")
	kv := []string{}
	for k, v := range fly.Env {
		kv = append(kv, k, v)
	}
	h = h.with(append(kv, "GATEHOUSE_ADDR", "127.0.0.1:0", "GATEHOUSE_DATA", filepath.Join(h.data, "gatehouse"))...)
	s := h.start("serve")
	if s.url != fly.Env["GATEHOUSE_BASE_URL"] {
		t.Errorf("serve is running at %q, want the base URL %q", s.url, fly.Env["GATEHOUSE_BASE_URL"])
	}
	deadline := time.Now().Add(30 * time.Second)
	for servingAt.FindStringSubmatch(s.stderr.String()) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	m := servingAt.FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no serving line in the log:\n%s", s.stderr.String())
	}
	s.url = "http://" + m[1] // what Fly's checks reach: the Machine's own address
	for _, c := range hs.Checks {
		if code, body := s.get(c.Path); code != 200 {
			t.Errorf("GET %s: %d %.60q", c.Path, code, body)
		}
	}
	// Production names no workspace on its start page.
	if code, body := s.get("/"); code != 200 || strings.Contains(body, "/t/demo") {
		t.Errorf("GET /: %d, names the demo workspace: %v", code, strings.Contains(body, "/t/demo"))
	}
	if _, err := os.Stat(filepath.Join(h.data, "gatehouse", "gatehouse.db")); err != nil {
		t.Errorf("no database in GATEHOUSE_DATA: %v", err)
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM, stderr: %s", code, s.stderr.String())
	}
}

// dockerfile reads ../../Dockerfile's instructions of the last stage by name,
// each argument as a field (JSON forms whole).
func dockerfile(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, args, _ := strings.Cut(line, " ")
		name = strings.ToUpper(name)
		if name == "FROM" {
			clear(out)
		}
		if strings.HasPrefix(args, "[") {
			out[name] = append(out[name], args)
		} else {
			out[name] = append(out[name], strings.Fields(args)...)
		}
	}
	return out
}
