package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/auth"
)

// Benchmarks of whole requests through the Echo stack, middleware, SQLite
// and the session store, over a real loopback connection (apptest). They run
// in `make bench`; scripts/loadtest.sh measures the same paths against the
// real binary.

const benchPassword = "correct horse battery staple"

// reportCPU adds cpu-ms/op: CPU time of the whole process (server and
// client goroutines) per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	if start == 0 {
		return
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// benchEnv starts an application with one workspace and member.
func benchEnv(b *testing.B, opts ...func(*app.Config)) (*apptest.Env, *apptest.Client) {
	b.Helper()
	env := apptest.New(b, opts...)
	ws := env.Workspace("acme", "Acme")
	env.User(ws, "alice@acme.test", "member", benchPassword)
	c := env.Client()
	// Keep one connection per parallel caller instead of redialing.
	c.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(c.CloseIdleConnections)
	return env, c
}

// send does one request and checks its status; it is safe in RunParallel.
func send(b *testing.B, c *http.Client, method, url, token string, body []byte, want int) bool {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		b.Errorf("%s %s: status %d, want %d", method, url, res.StatusCode, want)
		return false
	}
	return true
}

// BenchmarkAPISession is GET /session with a Bearer token: session load,
// member, epoch and register checks, JSON answer.
func BenchmarkAPISession(b *testing.B) {
	_, c := benchEnv(b)
	token := c.APILogin("acme", "alice@acme.test", benchPassword)
	url := c.URL("/t/acme/api/v1/session")
	b.ReportAllocs()
	for b.Loop() {
		if !send(b, c.Client, http.MethodGet, url, token, nil, http.StatusOK) {
			return
		}
	}
}

// BenchmarkAPISessionParallel is the same with 8 callers per core sharing
// one session, as in the load run.
func BenchmarkAPISessionParallel(b *testing.B) {
	_, c := benchEnv(b)
	token := c.APILogin("acme", "alice@acme.test", benchPassword)
	url := c.URL("/t/acme/api/v1/session")
	b.ReportAllocs()
	b.SetParallelism(8)
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !send(b, c.Client, http.MethodGet, url, token, nil, http.StatusOK) {
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	reportCPU(b, cpu0)
}

// BenchmarkAPILoginParallel is POST /login with the default production hash
// and 32 concurrent callers: throttle checks, member lookup, argon2id in the
// bounded pool, session creation. req/s should be close to
// BenchmarkHasherVerify's bound-hashes/s.
func BenchmarkAPILoginParallel(b *testing.B) {
	_, c := benchEnv(b, func(cfg *app.Config) { cfg.PasswordHash = auth.DefaultParams })
	url := c.URL("/t/acme/api/v1/login")
	body, _ := json.Marshal(map[string]string{"email": "alice@acme.test", "password": benchPassword})
	b.ReportAllocs()
	b.SetParallelism(16)
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !send(b, c.Client, http.MethodPost, url, "", body, http.StatusOK) {
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	reportCPU(b, cpu0)
}

// BenchmarkLoginPage renders the sign-in form (templ, security headers,
// CSRF cookie).
func BenchmarkLoginPage(b *testing.B) {
	_, c := benchEnv(b)
	url := c.URL("/t/acme/login")
	b.ReportAllocs()
	for b.Loop() {
		if !send(b, c.Client, http.MethodGet, url, "", nil, http.StatusOK) {
			return
		}
	}
}
