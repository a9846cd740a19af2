package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
)

// MinMetricsTokenLength is the shortest GATEHOUSE_METRICS_TOKEN accepted:
// the token route is on the public listener and does not throttle.
const MinMetricsTokenLength = 32

// outboxStatsFor is how long one read of the outbox's backlog serves the
// scrapes: however often Prometheus (or several) scrape, the database
// answers at most one small query per period.
const outboxStatsFor = 5 * time.Second

// Metrics are a server's Prometheus metrics, in a registry of their own
// (never the global default: tests run several servers in one process).
// Every label is a closed set (step methods and results, declared route
// patterns, job names, status classes): never an email, an id, a
// workspace's slug or a token.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	signIn   *prometheus.CounterVec
	lockouts *prometheus.CounterVec
	requests *prometheus.HistogramVec
	jobs     *jobClock
	outbox   *outboxStats
	// SMS: codes asked for by result, texts handed to the provider or not.
	smsRequests  *prometheus.CounterVec
	smsDelivered *prometheus.CounterVec
}

// SMS results: the only values of their labels.
var (
	smsRequestResults = []string{string(db.ResultSent), string(db.ResultCooldown), string(db.ResultNumberCapped),
		string(db.ResultMemberLimited), string(db.ResultIPLimited), string(db.ResultWorkspaceCapped),
		string(db.ResultBudgetExceeded), string(db.ResultNotAllowed), "breaker_open"}
	smsDeliveryResults = []string{"sent", "retry", "failed"}
)

// Sign-in step methods and results: the only values of their labels.
var signInSteps = map[string][]string{
	"password":      {"ok", "invalid", "throttled"},
	"totp":          {"ok", "invalid", "locked"},
	"recovery_code": {"ok", "invalid", "locked"},
	"webauthn":      {"ok", "invalid", "locked"},
	"passkey":       {"ok", "invalid", "locked"},
	"sms":           {"ok", "invalid", "locked"},
}

func newMetrics(store *db.Store, hasher *auth.Hasher, log *slog.Logger) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.signIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_signin_steps_total",
		Help: "Sign-in steps judged, by method (password; second steps totp, recovery_code, webauthn; passkey) and result (ok, invalid, throttled for the password, locked for the others).",
	}, []string{"method", "result"})
	for method, results := range signInSteps {
		for _, result := range results {
			m.signIn.WithLabelValues(method, result) // every series exists from the start
		}
	}
	m.lockouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_mfa_lockouts_total",
		Help: "Members whose second factor was locked for a while (kind=locked) or disabled until an admin resets it (kind=disabled) after too many wrong tries.",
	}, []string{"kind"})
	m.lockouts.WithLabelValues("locked")
	m.lockouts.WithLabelValues("disabled")
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_http_request_duration_seconds",
		Help:    "HTTP requests by route pattern (unmatched for paths no route serves), method and status class.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "status"})
	m.jobs = newJobClock()
	m.outbox = &outboxStats{store: store, log: log}
	m.smsRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_sms_codes_requested_total",
		Help: "SMS codes asked for, by result: sent (queued), or the control that refused the text.",
	}, []string{"result"})
	for _, r := range smsRequestResults {
		m.smsRequests.WithLabelValues(r)
	}
	m.smsDelivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_sms_deliveries_total",
		Help: "Attempts to hand a text to the SMS provider, by result (sent, retry, failed: given up on).",
	}, []string{"result"})
	for _, r := range smsDeliveryResults {
		m.smsDelivered.WithLabelValues(r)
	}

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.signIn, m.lockouts, m.requests, m.jobs, m.smsRequests, m.smsDelivered,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_sms_outbox_unsent_messages",
			Help: "Texts in the SMS outbox still to be sent (due or waiting for a retry).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := store.SMSStats(ctx, store.Now())
			if err != nil {
				return math.NaN()
			}
			return float64(st.Unsent)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_password_hashes_running",
			Help: "Password hashes being computed now (at most one per CPU).",
		}, func() float64 { running, _ := hasher.Load(); return float64(running) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_password_hashes_waiting",
			Help: "Password hashes waiting for a worker; when the queue is full, sign-ins are shed with 503.",
		}, func() float64 { _, waiting := hasher.Load(); return float64(waiting) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_db_group_commits_total",
			Help: "SQLite: commits of the writer's group commit (0 on PostgreSQL).",
		}, func() float64 { c, _ := store.GroupCommits(); return float64(c) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_db_write_transactions_total",
			Help: "SQLite: write transactions those commits held; divided by the commits, the mean batch (0 on PostgreSQL).",
		}, func() float64 { _, n := store.GroupCommits(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_password_hash_sheds_total",
			Help: "Password hashes refused because the hashing queue was full or the wait too long (answered 503).",
		}, func() float64 { return float64(hasher.Sheds()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_outbox_unsent_messages",
			Help: "Emails in the outbox still to be delivered (due or waiting for a retry); read at most every 5 seconds.",
		}, func() float64 { return m.outbox.value(func(st db.OutboxStats) float64 { return float64(st.Unsent) }) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_outbox_oldest_unsent_age_seconds",
			Help: "Age of the oldest email still to be delivered (0 when the outbox is empty).",
		}, func() float64 {
			return m.outbox.value(func(st db.OutboxStats) float64 { return outboxAge(st, store.Now()) })
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_outbox_failed_messages",
			Help: "Emails given up on (a permanent rejection, or every retry failed).",
		}, func() float64 { return m.outbox.value(func(st db.OutboxStats) float64 { return float64(st.Failed) }) }),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	return m
}

// smsRequested counts a code asked for by its result.
func (m *Metrics) smsRequested(result string) {
	if m != nil {
		m.smsRequests.WithLabelValues(result).Inc()
	}
}

// smsDelivery counts an attempt to send a text: sent, retry or failed.
func (m *Metrics) smsDelivery(result string) {
	if m != nil {
		m.smsDelivered.WithLabelValues(result).Inc()
	}
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry is the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// signInStep counts a sign-in step by the answer it got: nil is ok; a
// wrong password or factor is invalid; a throttled password is throttled;
// a second factor refused because it is locked or disabled (the wrong try
// that locked it included) is locked. Other answers (an expired challenge,
// a server fault, a full hashing queue) judged nothing and are not counted.
func (m *Metrics) signInStep(method string, err error) {
	var e *Error
	result := ""
	switch {
	case err == nil:
		result = "ok"
	case errors.Is(err, errInvalidCredentials), errors.Is(err, errInvalidCode), errors.Is(err, errInvalidCredential):
		result = "invalid"
	case errors.Is(err, errMFADisabled):
		result = "locked"
	case errors.As(err, &e) && e.Status == http.StatusTooManyRequests:
		result = "locked"
		if method == "password" {
			result = "throttled"
		}
	default:
		return
	}
	m.signIn.WithLabelValues(method, result).Inc()
}

// lockout counts a second factor newly locked or disabled.
func (m *Metrics) lockout(out db.FailureOutcome) {
	switch {
	case out.NewlyDisabled:
		m.lockouts.WithLabelValues("disabled").Inc()
	case out.NewlyLocked:
		m.lockouts.WithLabelValues("locked").Inc()
	}
}

// observeRequests times every request by its declared route pattern, never
// the raw path (paths hold slugs and tokens). It sits outside requestLog,
// which turns errors into responses, so the status is the one sent.
func (s *Server) observeRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		route, method := "unmatched", knownMethod(c.Request().Method)
		if rt := routeOf(c); rt != nil {
			route, method = rt.path, rt.method
		}
		s.metrics.requests.WithLabelValues(route, method, statusClass(c.Response().Status)).Observe(time.Since(start).Seconds())
		return err
	}
}

// knownMethod keeps the method label a closed set: a client can send any
// method name.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// handleMetrics serves the metrics on the main listener, only to a caller
// with the configured token. Without one configured the route does not
// exist (404, like any unknown path).
func (s *Server) handleMetrics(c echo.Context) error {
	if s.cfg.MetricsToken == "" {
		return errNotFound
	}
	if !metricsTokenMatches(c.Request().Header.Get(echo.HeaderAuthorization), s.cfg.MetricsToken) {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="gatehouse metrics"`)
		return errUnauthenticated
	}
	s.metrics.handler.ServeHTTP(c.Response(), c.Request())
	return nil
}

// metricsTokenMatches compares "Bearer TOKEN" with the configured token in
// constant time. Both sides are hashed first so that neither the time nor
// an early exit tells a guesser the token's length.
func metricsTokenMatches(header, token string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// metricsMux serves the metrics, and nothing else, on the metrics
// listener.
func (s *Server) metricsMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler)
	return mux
}

// outboxStats caches the outbox's backlog for outboxStatsFor.
type outboxStats struct {
	store *db.Store
	log   *slog.Logger

	mu     sync.Mutex
	readAt time.Time
	st     db.OutboxStats
	ok     bool
}

// value reads f of the cached backlog, refreshing it when stale; NaN when
// the last read failed. Concurrent scrapes wait for one read.
func (o *outboxStats) value(f func(db.OutboxStats) float64) float64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.readAt.IsZero() || time.Since(o.readAt) >= outboxStatsFor {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := o.store.OutboxStats(ctx)
		cancel()
		o.readAt, o.st, o.ok = time.Now(), st, err == nil
		if err != nil {
			o.log.Warn("metrics: outbox stats", slog.Any("err", err))
		}
	}
	if !o.ok {
		return math.NaN()
	}
	return f(o.st)
}

// outboxAge is how long the oldest unsent message has waited.
func outboxAge(st db.OutboxStats, now time.Time) float64 {
	if st.Unsent == 0 || st.OldestUnsent.IsZero() {
		return 0
	}
	return max(now.Sub(st.OldestUnsent).Seconds(), 0)
}

// jobClock knows when each background job last completed a pass without
// error, and reports the lag since. A job counts from when it started
// running in this process: one that never completes shows a growing lag,
// and a job this process does not run (mail without SMTP) shows none.
type jobClock struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	last map[string]time.Time
}

func newJobClock() *jobClock {
	return &jobClock{
		desc: prometheus.NewDesc("gatehouse_job_lag_seconds",
			"Seconds since each background job (reminders, resets, cleanup, mail) last completed a pass without error, or since it started in this process.",
			[]string{"job"}, nil),
		last: map[string]time.Time{},
	}
}

// started registers a job that runs in this process.
func (j *jobClock) started(job string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.last[job]; !ok {
		j.last[job] = time.Now()
	}
}

// done records a pass of job that completed without error.
func (j *jobClock) done(job string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.last[job] = time.Now()
}

// Describe implements prometheus.Collector.
func (j *jobClock) Describe(ch chan<- *prometheus.Desc) { ch <- j.desc }

// Collect implements prometheus.Collector.
func (j *jobClock) Collect(ch chan<- prometheus.Metric) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now()
	for job, at := range j.last {
		ch <- prometheus.MustNewConstMetric(j.desc, prometheus.GaugeValue, now.Sub(at).Seconds(), job)
	}
}

// jobStarted and jobDone record job progress in m; a nil m records nothing
// (jobs run by the CLI, tests).
func (m *Metrics) jobStarted(job string) {
	if m != nil {
		m.jobs.started(job)
	}
}

func (m *Metrics) jobDone(job string) {
	if m != nil {
		m.jobs.done(job)
	}
}
