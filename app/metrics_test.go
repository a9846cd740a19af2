package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

const metricsToken = "metrics-token-0123456789abcdef-0123456789"

func withMetricsToken(c *app.Config) { c.MetricsToken = metricsToken }

// metricsText fetches /metrics from the main listener with the token.
func metricsText(t *testing.T, env *apptest.Env) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.HTTP.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+metricsToken)
	res := env.Client().Do(req)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", res.StatusCode, res.Body)
	}
	return string(res.Body)
}

// scrape parses the exposition text of /metrics.
type scrape map[string]*dto.MetricFamily

func parseMetrics(t *testing.T, text string) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, text)
	}
	return fams
}

func scrapeMetrics(t *testing.T, env *apptest.Env) scrape {
	return parseMetrics(t, metricsText(t, env))
}

// value is the value of the series of name whose labels include want
// (summed over the others); for a histogram, its count. ok is false when
// no series matched.
func (s scrape) value(name string, want map[string]string) (v float64, ok bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, want := range want {
			if labels[k] != want {
				continue next
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v, ok
}

func (s scrape) get(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := s.value(name, labels)
	if !ok {
		t.Fatalf("no series %s%v in /metrics", name, labels)
	}
	return v
}

type step struct{ method, result string }

func signInSteps(t *testing.T, s scrape) map[step]float64 {
	t.Helper()
	out := map[step]float64{}
	for _, method := range []string{"password", "totp", "recovery_code", "webauthn", "passkey"} {
		results := []string{"ok", "invalid", "locked"}
		if method == "password" {
			results = []string{"ok", "invalid", "throttled"}
		}
		for _, result := range results {
			out[step{method, result}] = s.get(t, "gatehouse_signin_steps_total", map[string]string{"method": method, "result": result})
		}
	}
	return out
}

// checkSteps compares the counters' growth between two scrapes with want
// (every step not named did not move).
func checkSteps(t *testing.T, before, after scrape, want map[step]float64) {
	t.Helper()
	b, a := signInSteps(t, before), signInSteps(t, after)
	for k := range a {
		if got := a[k] - b[k]; got != want[k] {
			t.Errorf("gatehouse_signin_steps_total{method=%q,result=%q} grew by %v, want %v", k.method, k.result, got, want[k])
		}
	}
}

// A sign-in with a wrong then a right password, a wrong then a right code
// on the page, and a recovery code through the API move the counters by
// exactly that; the requests are timed by route pattern.
func TestMetricsSignInSteps(t *testing.T) {
	env, _, _ := setup(t, withMetricsToken)
	secret, codes, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	before := scrapeMetrics(t, env)

	res := env.Client().PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {"wrong password!"}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong password = %d", res.StatusCode)
	}
	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	if res := challengeWith(env, c, "acme", wrongCode(t, env, secret)); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code = %d", res.StatusCode)
	}
	if res := challengeWith(env, c, "acme", nextCode(t, env, secret)); !passed(res, "acme") {
		t.Fatalf("right code = %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "recovery_code": codes[0]}); res.StatusCode != http.StatusOK {
		t.Fatalf("recovery code = %d %s", res.StatusCode, res.Body)
	}
	// An expired mfa_token judged no factor: not counted.
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": "junk", "code": "123456"}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("junk mfa_token = %d", res.StatusCode)
	}

	after := scrapeMetrics(t, env)
	checkSteps(t, before, after, map[step]float64{
		{"password", "ok"}:      2,
		{"password", "invalid"}: 1,
		{"totp", "ok"}:          1,
		{"totp", "invalid"}:     1,
		{"recovery_code", "ok"}: 1,
	})
	if got := after.get(t, "gatehouse_mfa_lockouts_total", nil); got != 0 {
		t.Errorf("gatehouse_mfa_lockouts_total = %v, want 0", got)
	}

	// Requests are timed by their declared pattern, method and status
	// class.
	for _, c := range []struct {
		route, method, status string
		min                   float64
	}{
		{"/t/:slug/login", "POST", "4xx", 1},
		{"/t/:slug/login", "POST", "3xx", 1},
		{"/t/:slug/login/mfa", "POST", "3xx", 1},
		{"/t/:slug/api/v1/login/mfa", "POST", "2xx", 1},
		{"/t/:slug/api/v1/login/mfa", "POST", "4xx", 1},
	} {
		labels := map[string]string{"route": c.route, "method": c.method, "status": c.status}
		if got, _ := after.value("gatehouse_http_request_duration_seconds", labels); got < c.min {
			t.Errorf("gatehouse_http_request_duration_seconds%v count = %v, want at least %v", labels, got, c.min)
		}
	}
}

// Ten wrong codes lock the second factor: the tenth answer and the right
// code while locked count as locked, and the lock is counted once.
func TestMetricsLockout(t *testing.T) {
	env, _, _ := setup(t, withMetricsToken)
	secret, _, _ := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	before := scrapeMetrics(t, env)

	passwords := 0
	for range 2 {
		c := pendingPage(t, env, "acme", "alice@acme.test", pw)
		passwords++
		for range 4 {
			env.Clock.Advance(20 * time.Second)
			if res := challengeWith(env, c, "acme", wrongCode(t, env, secret)); res.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("wrong code = %d", res.StatusCode)
			}
		}
	}
	tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
	passwords++
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": wrongCode(t, env, secret)}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("9th wrong = %d", res.StatusCode)
	}
	c := pendingPage(t, env, "acme", "alice@acme.test", pw)
	passwords++
	if res := challengeWith(env, c, "acme", wrongCode(t, env, secret)); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("10th wrong code = %d, want 429", res.StatusCode)
	}
	tok = mfaToken(t, env, "acme", "alice@acme.test", pw)
	passwords++
	if res := loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nextCode(t, env, secret)}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right code while locked = %d", res.StatusCode)
	}

	after := scrapeMetrics(t, env)
	checkSteps(t, before, after, map[step]float64{
		{"password", "ok"}:  float64(passwords),
		{"totp", "invalid"}: 9,
		{"totp", "locked"}:  2,
	})
	if got := after.get(t, "gatehouse_mfa_lockouts_total", map[string]string{"kind": "locked"}) -
		before.get(t, "gatehouse_mfa_lockouts_total", map[string]string{"kind": "locked"}); got != 1 {
		t.Errorf("gatehouse_mfa_lockouts_total{kind=locked} grew by %v, want 1", got)
	}
}

// Password throttling counts as throttled.
func TestMetricsPasswordThrottled(t *testing.T) {
	env, _, _ := setup(t, withMetricsToken)
	before := scrapeMetrics(t, env)
	throttled := 0
	for range 11 {
		res := env.Client().PostForm("/t/acme/login", url.Values{"email": {"alice@acme.test"}, "password": {"wrong password!"}})
		if res.StatusCode == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled != 1 {
		t.Fatalf("%d of 11 wrong passwords throttled, want 1", throttled)
	}
	checkSteps(t, before, scrapeMetrics(t, env), map[step]float64{
		{"password", "invalid"}:   10,
		{"password", "throttled"}: 1,
	})
}

// After sign-ins in several workspaces, invitation links with tokens,
// unknown paths and odd methods, no email, slug or token appears anywhere
// in /metrics, and every route label is a declared pattern.
func TestMetricsNoSecretsInLabels(t *testing.T) {
	env, _, _ := setup(t, withMetricsToken)
	initech := env.Workspace("initech", "Initech")
	env.User(initech, "peter@initech.test", db.RoleMember, pw)
	secret, codes, session := enrollAPI(t, env, "acme", "alice@acme.test", pw)
	globex := env.Client().APILogin("globex", "alice@acme.test", "globex password 1")
	initechToken := env.Client().APILogin("initech", "peter@initech.test", pw)
	tok := mfaToken(t, env, "acme", "alice@acme.test", pw)
	loginMFA(env, "acme", map[string]string{"mfa_token": tok, "code": nextCode(t, env, secret)})
	env.Client().Get("/t/initech/invite/invitation-token-that-must-not-leak")
	env.Client().Get("/t/acme/recover/recovery-token-that-must-not-leak")
	env.Client().Get("/no-such-page-secret-path")
	env.Client().Get("/t/umbrella/login")
	env.Client().PostForm("/t/initech/login", url.Values{"email": {"peter@initech.test"}, "password": {"wrong password!"}})
	req, _ := http.NewRequest("PROPFIND", env.HTTP.URL+"/t/acme/account", nil)
	env.Client().Do(req)
	for _, p := range []string{"/t/acme/api/v1/session", "/t/globex/api/v1/session", "/t/initech/api/v1/session"} {
		env.Client().API(http.MethodGet, p, session, nil)
	}

	text := metricsText(t, env)
	for _, s := range []string{"alice@acme.test", "peter@initech.test", "acme", "globex", "initech", "umbrella",
		secret, codes[1], session, globex, initechToken, tok, metricsToken,
		"invitation-token-that-must-not-leak", "recovery-token-that-must-not-leak", "no-such-page-secret-path", "PROPFIND"} {
		if strings.Contains(text, s) {
			t.Errorf("/metrics contains %q", s)
		}
	}

	declared := map[string]bool{"unmatched": true}
	for _, r := range env.Server.Echo().Routes() {
		declared[r.Path] = true
	}
	fams := parseMetrics(t, text)
	for name, f := range fams {
		if !strings.HasPrefix(name, "gatehouse_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && !declared[l.GetValue()] {
					t.Errorf("%s has route label %q, not a declared pattern", name, l.GetValue())
				}
			}
		}
	}
	if got, _ := fams.value("gatehouse_http_request_duration_seconds", map[string]string{"route": "unmatched", "method": "GET", "status": "4xx"}); got < 1 {
		t.Errorf("unknown paths are not timed as route=unmatched")
	}
	if got, _ := fams.value("gatehouse_http_request_duration_seconds", map[string]string{"method": "other"}); got < 1 {
		t.Errorf("an unknown method is not timed as method=other")
	}
}

// On the main listener /metrics needs the configured token; without one
// configured it does not exist.
func TestMetricsTokenRoute(t *testing.T) {
	get := func(env *apptest.Env, path, auth string) *apptest.Response {
		req, _ := http.NewRequest(http.MethodGet, env.HTTP.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return env.Client().Do(req)
	}

	t.Run("NoTokenConfigured", func(t *testing.T) {
		env := apptest.New(t)
		for _, auth := range []string{"", "Bearer ", "Bearer " + metricsToken} {
			if res := get(env, "/metrics", auth); res.StatusCode != http.StatusNotFound {
				t.Errorf("GET /metrics (Authorization %q) = %d, want 404", auth, res.StatusCode)
			}
		}
	})

	env := apptest.New(t, withMetricsToken)
	env.Workspace("acme", "Acme")
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + metricsToken + "x",
		"Bearer " + metricsToken[:len(metricsToken)-1], "Basic " + metricsToken, metricsToken} {
		res := get(env, "/metrics", auth)
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics (Authorization %q) = %d, want 401", auth, res.StatusCode)
		}
		if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET /metrics (Authorization %q): WWW-Authenticate %q", auth, res.Header.Get("WWW-Authenticate"))
		}
		if bytes.Contains(res.Body, []byte("gatehouse_")) {
			t.Errorf("GET /metrics (Authorization %q) showed metrics", auth)
		}
	}
	for _, auth := range []string{"Bearer " + metricsToken, "bearer " + metricsToken} {
		res := get(env, "/metrics", auth)
		if res.StatusCode != http.StatusOK || !bytes.Contains(res.Body, []byte("gatehouse_signin_steps_total")) {
			t.Errorf("GET /metrics (Authorization %q) = %d, want 200 with the metrics", auth, res.StatusCode)
		}
		if res.Header.Get("Set-Cookie") != "" {
			t.Errorf("GET /metrics set a cookie: %q", res.Header.Get("Set-Cookie"))
		}
	}
	// Only at the root, never inside a workspace.
	if res := get(env, "/t/acme/metrics", "Bearer "+metricsToken); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /t/acme/metrics = %d, want 404", res.StatusCode)
	}
}

// The metrics listener serves GET /metrics without a token, and nothing
// else: not the application's pages, health checks or API.
func TestMetricsListener(t *testing.T) {
	env := apptest.New(t)
	env.Workspace("acme", "Acme")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.Server.ServeMetrics(ctx, l) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMetrics: %v", err)
		}
	}()
	base := "http://" + l.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, base+path, nil)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	status, body := do(http.MethodGet, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics on the metrics listener = %d", status)
	}
	s := parseMetrics(t, body)
	for _, name := range []string{"gatehouse_signin_steps_total", "gatehouse_mfa_lockouts_total", "gatehouse_password_hashes_running",
		"gatehouse_password_hashes_waiting", "gatehouse_password_hash_sheds_total", "gatehouse_outbox_unsent_messages",
		"gatehouse_outbox_oldest_unsent_age_seconds", "gatehouse_outbox_failed_messages", "go_goroutines"} {
		if s[name] == nil {
			t.Errorf("metrics listener: no %s", name)
		}
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/"}, {http.MethodGet, "/healthz"}, {http.MethodGet, "/readyz"}, {http.MethodGet, "/t/acme/login"},
		{http.MethodPost, "/t/acme/api/v1/login"}, {http.MethodGet, "/assets/css/app.css"}, {http.MethodGet, "/metrics/x"},
		{http.MethodGet, "/dev/mailbox"},
	} {
		if status, _ := do(c.method, c.path); status != http.StatusNotFound {
			t.Errorf("%s %s on the metrics listener = %d, want 404", c.method, c.path, status)
		}
	}
	if status, _ := do(http.MethodPost, "/metrics"); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics on the metrics listener = %d, want 405", status)
	}
}

// The outbox gauges read the backlog (cached for a few seconds), and the
// jobs' lag appears once they ran.
func TestMetricsOutboxAndJobs(t *testing.T) {
	env := apptest.New(t, withMetricsToken)
	ctx := context.Background()
	for _, to := range []string{"a@example.com", "b@example.com"} {
		if err := env.Store.Enqueue(ctx, 0, db.OutboxMessage{Kind: "test", To: to, Subject: "s", Text: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	env.Clock.Advance(10 * time.Minute)
	s := scrapeMetrics(t, env)
	if got := s.get(t, "gatehouse_outbox_unsent_messages", nil); got != 2 {
		t.Errorf("gatehouse_outbox_unsent_messages = %v, want 2", got)
	}
	if got := s.get(t, "gatehouse_outbox_oldest_unsent_age_seconds", nil); got < 600 || got > 601 {
		t.Errorf("gatehouse_outbox_oldest_unsent_age_seconds = %v, want 600", got)
	}
	if _, ok := s.value("gatehouse_job_lag_seconds", nil); ok {
		t.Errorf("job lag reported before any job ran")
	}

	// A new message within the cache period is not read again, but the
	// oldest message's age follows the clock.
	if err := env.Store.Enqueue(ctx, 0, db.OutboxMessage{Kind: "test", To: "c@example.com", Subject: "s", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(time.Minute)
	jobs := app.NewJobs(env.Store, slog.New(slog.DiscardHandler), env.Config)
	jobs.Metrics = env.Server.Metrics()
	if _, err := jobs.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	s = scrapeMetrics(t, env)
	if got := s.get(t, "gatehouse_outbox_unsent_messages", nil); got != 2 {
		t.Errorf("gatehouse_outbox_unsent_messages within the cache period = %v, want 2 (cached)", got)
	}
	if got := s.get(t, "gatehouse_outbox_oldest_unsent_age_seconds", nil); got < 660 || got > 661 {
		t.Errorf("gatehouse_outbox_oldest_unsent_age_seconds = %v, want 660", got)
	}
	for _, job := range []string{"reminders", "resets", "cleanup"} {
		if got := s.get(t, "gatehouse_job_lag_seconds", map[string]string{"job": job}); got < 0 || got > 60 {
			t.Errorf("gatehouse_job_lag_seconds{job=%q} = %v, want a few seconds at most", job, got)
		}
	}
	if _, ok := s.value("gatehouse_job_lag_seconds", map[string]string{"job": "mail"}); ok {
		t.Errorf("mail job lag reported without SMTP")
	}
}

// Keys count as webauthn (the second step) and passkey (passwordless).
func TestMetricsWebAuthnSteps(t *testing.T) {
	env, _, _ := waSetup(t, withMetricsToken)
	k, _ := register(t, env, "acme", env.Client().APILogin("acme", "alice@acme.test", pw), "Key", virtualwebauthn.AuthenticatorOptions{})
	before := scrapeMetrics(t, env)

	keyLogin(t, env, "acme", "alice@acme.test", pw, k)
	mt := mfaToken(t, env, "acme", "alice@acme.test", pw)
	cer, _ := loginBegin(t, env, "acme", mt)
	wantErr(t, "junk second-step assertion", loginFinish(env, "acme", cer, `{"id":"junk"}`, mt), "invalid_credential", http.StatusUnauthorized)

	cer, opts := loginBegin(t, env, "acme", "")
	if res := loginFinish(env, "acme", cer, k.sign(opts), ""); res.StatusCode != http.StatusOK {
		t.Fatalf("passwordless = %d %s", res.StatusCode, res.Body)
	}
	cer, _ = loginBegin(t, env, "acme", "")
	wantErr(t, "junk passwordless assertion", loginFinish(env, "acme", cer, `{"id":"junk"}`, ""), "invalid_credential", http.StatusUnauthorized)

	checkSteps(t, before, scrapeMetrics(t, env), map[step]float64{
		{"password", "ok"}:      2,
		{"webauthn", "ok"}:      1,
		{"webauthn", "invalid"}: 1,
		{"passkey", "ok"}:       1,
		{"passkey", "invalid"}:  1,
	})
}

// The group commit's counters: on SQLite every write transaction is
// counted in a commit (a commit holds one or more); on PostgreSQL, where
// there is no group commit, both stay 0.
func TestMetricsGroupCommit(t *testing.T) {
	env := apptest.New(t, withMetricsToken)
	for _, to := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if err := env.Store.Enqueue(context.Background(), 0, db.OutboxMessage{Kind: "test", To: to, Subject: "s", Text: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	s := scrapeMetrics(t, env)
	commits, txs := s.get(t, "gatehouse_db_group_commits_total", nil), s.get(t, "gatehouse_db_write_transactions_total", nil)
	if env.Store.Engine() != "sqlite" {
		if commits != 0 || txs != 0 {
			t.Fatalf("on %s: commits %v, transactions %v; want 0", env.Store.Engine(), commits, txs)
		}
		return
	}
	if commits < 1 || txs < 3 || txs < commits {
		t.Fatalf("commits %v, transactions %v after three writes", commits, txs)
	}
}
