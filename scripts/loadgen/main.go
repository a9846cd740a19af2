// Command loadgen is the small closed-loop HTTP load generator behind
// scripts/loadtest.sh and scripts/bench.sh (`make bench`). It exists so
// that the benchmarks need nothing beyond Go; it refuses any target that
// is not a loopback address.
//
// Without a mode, a fixed number of workers send requests back to back for
// a fixed time and it reports requests per second, a status histogram and
// latency percentiles:
//
//	loadgen -url http://127.0.0.1:8080/t/acme/api/v1/login -c 64 -d 15s \
//	    -body '{"email":"a@acme.test","password":"…"}' -body '…'
//
// Each worker sends the bodies in turn, starting at its own index, so
// several accounts share the load. With -login, it first signs in once with
// the first body and sends every request with that session token as a
// Bearer credential.
//
// Modes:
//
//	loadgen bench …      the sign-in steps of make bench against one server (bench.go)
//	loadgen gobench …    rows from `go test -bench` output on stdin
//	loadgen table FILE…  the table of the rows
//	loadgen import …     a JSON Lines member import file with argon2id hashes
//	loadgen freeport     prints a free TCP port on 127.0.0.1
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ", ") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	args := os.Args[1:]
	var err error
	mode := ""
	if len(args) > 0 {
		mode = args[0]
	}
	switch mode {
	case "bench":
		err = runBench(args[1:], os.Stdout)
	case "gobench":
		err = runGoBench(args[1:], os.Stdin, os.Stdout)
	case "table":
		err = runTable(args[1:], os.Stdout)
	case "import":
		err = runImportFile(args[1:], os.Stdout)
	case "freeport":
		var port int
		if port, err = freePort(); err == nil {
			fmt.Println(port)
		}
	default:
		err = run(args, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// freePort is a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type result struct {
	status     int // 0: transport error
	retryAfter bool
	timeout    bool
	latency    time.Duration
	err        string
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	target := fs.String("url", "", "request URL (loopback only)")
	method := fs.String("method", http.MethodPost, "request method")
	conc := fs.Int("c", 64, "concurrent workers")
	dur := fs.Duration("d", 15*time.Second, "how long to start new requests; in-flight ones then finish")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout (counted as an error)")
	honorRetry := fs.Bool("honor-retry-after", false, "a worker that gets 429/503 with Retry-After waits that long before its next request")
	login := fs.String("login", "", "sign in once at this URL with the first -body and send the session token as Bearer")
	name := fs.String("name", "load", "name of this run in the summary row")
	rowFile := fs.String("row", "", "append one tab-separated summary row to this file")
	sources := fs.Int("source-ips", 1, "spread the workers over this many loopback source addresses, 127.0.0.1 and up (as many clients; each address has its own throttle)")
	pin := fs.Bool("pin", false, "worker w always sends body w modulo their number, instead of rotating")
	var bodies multi
	fs.Var(&bodies, "body", "JSON request body (repeatable; workers rotate through them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(*target); err != nil {
		return err
	}
	if *login != "" {
		if err := loopbackOnly(*login); err != nil {
			return err
		}
	}
	if *conc < 1 || *dur <= 0 {
		return errors.New("-c and -d must be positive")
	}
	if *sources < 1 || *sources > 250 {
		return errors.New("-source-ips: 1 to 250")
	}

	clients := make([]*http.Client, *sources)
	for i := range clients {
		d := &net.Dialer{Timeout: 5 * time.Second}
		if *sources > 1 {
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			MaxIdleConns:        *conc,
			MaxIdleConnsPerHost: *conc,
			IdleConnTimeout:     30 * time.Second,
		}
		clients[i] = &http.Client{Transport: tr, Timeout: *timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		defer tr.CloseIdleConnections()
	}
	client := clients[0]

	token := ""
	if *login != "" {
		if len(bodies) == 0 {
			return errors.New("-login needs a -body to sign in with")
		}
		var err error
		if token, err = signIn(client, *login, bodies[0]); err != nil {
			return err
		}
		bodies = nil // the measured requests carry the token, not the body
	}

	deadline := time.Now().Add(*dur)
	results := make([][]result, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rs []result
			client := clients[w%len(clients)]
			for i := w; time.Now().Before(deadline); i++ {
				var body string
				if len(bodies) > 0 {
					body = bodies[i%len(bodies)]
					if *pin {
						body = bodies[w%len(bodies)]
					}
				}
				r := do(client, *method, *target, body, token)
				rs = append(rs, r)
				if *honorRetry && r.retryAfter {
					if wait := r.wait(); wait > 0 && time.Now().Add(wait).Before(deadline) {
						time.Sleep(wait)
					} else if wait > 0 {
						break
					}
				}
			}
			results[w] = rs
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	s := summarize(slices.Concat(results...), elapsed)
	s.name, s.conc = *name, *conc
	s.print(stdout)
	if *rowFile != "" {
		f, err := os.OpenFile(*rowFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := fmt.Fprintln(f, s.row()); err != nil {
			return err
		}
	}
	return nil
}

// wait is how long Retry-After asked for; it is stored in the error field
// to keep result small.
func (r result) wait() time.Duration {
	n, err := strconv.Atoi(r.err)
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("%q: want an http:// URL", raw)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: load goes to a loopback address (127.0.0.1) only", raw)
	}
	return nil
}

func signIn(client *http.Client, loginURL, body string) (string, error) {
	res, err := client.Post(loginURL, "application/json", strings.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	defer res.Body.Close()
	var out struct {
		Token string `json:"session_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK || out.Token == "" {
		return "", fmt.Errorf("sign in: status %d, no session_token", res.StatusCode)
	}
	return out.Token, nil
}

func do(client *http.Client, method, target, body, token string) result {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(context.Background(), method, target, rd)
	if err != nil {
		return result{err: err.Error()}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	t0 := time.Now()
	res, err := client.Do(req)
	if err != nil {
		var ne net.Error
		return result{latency: time.Since(t0), err: err.Error(), timeout: errors.As(err, &ne) && ne.Timeout()}
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	r := result{status: res.StatusCode, latency: time.Since(t0)}
	if err != nil {
		var ne net.Error
		return result{latency: r.latency, err: err.Error(), timeout: errors.As(err, &ne) && ne.Timeout()}
	}
	if ra := res.Header.Get("Retry-After"); ra != "" {
		r.retryAfter = true
		r.err = ra
	}
	return r
}

type summary struct {
	name          string
	conc          int
	elapsed       time.Duration
	total         int
	statuses      map[int]int
	retryAfter    map[int]int // responses with a Retry-After header, by status
	errors        int
	timeouts      int
	firstErr      string
	okLat, allLat []time.Duration
}

func summarize(rs []result, elapsed time.Duration) summary {
	s := summary{elapsed: elapsed, total: len(rs), statuses: map[int]int{}, retryAfter: map[int]int{}}
	for _, r := range rs {
		if r.status == 0 {
			s.errors++
			if r.timeout {
				s.timeouts++
			}
			if s.firstErr == "" {
				s.firstErr = r.err
			}
			continue
		}
		s.statuses[r.status]++
		if r.retryAfter {
			s.retryAfter[r.status]++
		}
		s.allLat = append(s.allLat, r.latency)
		if r.status < 300 {
			s.okLat = append(s.okLat, r.latency)
		}
	}
	slices.Sort(s.okLat)
	slices.Sort(s.allLat)
	return s
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (s summary) ok() int {
	n := 0
	for st, c := range s.statuses {
		if st < 300 {
			n += c
		}
	}
	return n
}

func (s summary) other() int {
	n := 0
	for st, c := range s.statuses {
		if st >= 300 && st != http.StatusServiceUnavailable && st != http.StatusTooManyRequests {
			n += c
		}
	}
	return n
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }

func (s summary) print(w io.Writer) {
	secs := s.elapsed.Seconds()
	fmt.Fprintf(w, "%s: %d workers, %d requests in %.1fs: %.1f req/s, %.1f successful/s\n",
		s.name, s.conc, s.total, secs, float64(s.total)/secs, float64(s.ok())/secs)
	codes := make([]int, 0, len(s.statuses))
	for st := range s.statuses {
		codes = append(codes, st)
	}
	sort.Ints(codes)
	for _, st := range codes {
		extra := ""
		if n := s.retryAfter[st]; n > 0 {
			extra = fmt.Sprintf(" (%d with Retry-After)", n)
		}
		fmt.Fprintf(w, "  status %d: %d%s\n", st, s.statuses[st], extra)
	}
	if s.errors > 0 {
		fmt.Fprintf(w, "  transport errors: %d (timeouts %d), first: %s\n", s.errors, s.timeouts, s.firstErr)
	}
	fmt.Fprintf(w, "  latency 2xx (ms): p50 %s  p95 %s  p99 %s  max %s\n",
		ms(pct(s.okLat, 50)), ms(pct(s.okLat, 95)), ms(pct(s.okLat, 99)), ms(pct(s.okLat, 100)))
	if len(s.allLat) != len(s.okLat) {
		fmt.Fprintf(w, "  latency all (ms): p50 %s  p95 %s  p99 %s  max %s\n",
			ms(pct(s.allLat, 50)), ms(pct(s.allLat, 95)), ms(pct(s.allLat, 99)), ms(pct(s.allLat, 100)))
	}
}

// row is: name conc secs total req/s ok ok/s 503 503-with-Retry-After 429
// other-status transport-errors timeouts p50 p95 p99 max (2xx, ms).
func (s summary) row() string {
	secs := s.elapsed.Seconds()
	f := []string{
		s.name, strconv.Itoa(s.conc), fmt.Sprintf("%.1f", secs), strconv.Itoa(s.total),
		fmt.Sprintf("%.1f", float64(s.total)/secs), strconv.Itoa(s.ok()), fmt.Sprintf("%.1f", float64(s.ok())/secs),
		strconv.Itoa(s.statuses[http.StatusServiceUnavailable]), strconv.Itoa(s.retryAfter[http.StatusServiceUnavailable]),
		strconv.Itoa(s.statuses[http.StatusTooManyRequests]), strconv.Itoa(s.other()),
		strconv.Itoa(s.errors), strconv.Itoa(s.timeouts),
		ms(pct(s.okLat, 50)), ms(pct(s.okLat, 95)), ms(pct(s.okLat, 99)), ms(pct(s.okLat, 100)),
	}
	return strings.Join(f, "\t")
}
