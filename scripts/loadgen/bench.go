package main

// loadgen bench: the sign-in steps of `make bench` against one running
// server (scripts/bench.sh starts it). It creates its own members through
// the API, enrolls them, and times each step at each number of clients:
//
//	loadgen bench -base http://127.0.0.1:PORT -slug mfa -pid PID \
//	    -admin owner@mfa.test -admin-password … -hash argon2id:m=64,t=1,p=1 \
//	    -steps "totp recovery passkey" -clients "1 4 16 64" -seconds 5 -rows rows.jsonl
//
// Setup (untimed): the workspace's owner (made with `gatehouse user
// create`) signs in and enrolls an authenticator app, so that it may import
// (a security change); it imports the members as CSV with a PHC argon2id
// hash computed here with the server's own parameters (-hash), so that no
// sign-in re-hashes. For the second steps each member then signs in,
// enrolls an authenticator app (POST /mfa/totp/setup and verify-setup with
// a code computed from the secret; the first factor gives 10 recovery
// codes) and, for the passkey step, registers a software P-256 key (none
// attestation). Each timed step of a second factor needs a pending
// sign-in: POST /login is sent first for every one (untimed, up to 5
// minutes before), and only the second step is timed:
//
//	totp      POST /login/mfa {mfa_token, code}
//	recovery  POST /login/mfa {mfa_token, recovery_code}
//	passkey   POST /login/webauthn/begin {mfa_token}, then /finish (one step)
//	password  POST /login {email, password} (no second factor enrolled)
//
// A TOTP code is accepted once per member and time step (30 s), so a TOTP
// phase uses each member at most once, the least recently used first, and
// starts only in a time step none of them used yet (waiting for the next
// one if need be). A phase lasts -seconds, or less when the prepared steps
// run out first: how many are prepared is estimated from the rate of the
// phase before (1.5 times what it should need), within what the members
// allow. Each member is used by one client at a time (its sign count and
// codes stay in order).

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Steps, in the order of the table.
const (
	stepPassword = "password"
	stepTOTP     = "totp"
	stepRecovery = "recovery"
	stepPasskey  = "passkey"
)

var secondSteps = []string{stepTOTP, stepRecovery, stepPasskey}

// memberPassword is every bench member's password.
const memberPassword = "bench-member-password"

type member struct {
	idx      int
	email    string
	secret   string   // TOTP secret (base32)
	lastStep int64    // the last TOTP time step used (enrollment's, then sign-ins')
	codes    []string // unused recovery codes
	key      *softKey
}

type benchConfig struct {
	base, slug, engine     string
	origin                 string
	pid, dbpid             int
	steps                  []string
	clients                []int
	seconds                time.Duration
	passwordSeconds        time.Duration
	members, keys          int
	initialMembers         int
	hash                   argonParams
	admin, adminPassword   string
	rows                   string
	setupWorkers           int
	timeout                time.Duration
	out                    io.Writer
	minPhase, maxPrepFirst int
}

func runBench(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen bench", flag.ContinueOnError)
	var cfg benchConfig
	fs.StringVar(&cfg.base, "base", "", "server base URL, http://127.0.0.1:PORT (loopback only)")
	fs.StringVar(&cfg.slug, "slug", "", "workspace slug")
	fs.StringVar(&cfg.engine, "engine", "sqlite", "engine name for the rows")
	fs.StringVar(&cfg.origin, "origin", "", "WebAuthn origin (default http://localhost:PORT)")
	fs.IntVar(&cfg.pid, "pid", 0, "server process id, for RSS and CPU from /proc (0: not measured)")
	dbport := fs.Int("dbport", 0, "PostgreSQL port: its server's CPU is measured too")
	steps := fs.String("steps", "totp recovery passkey", "steps to time: password totp recovery passkey")
	clients := fs.String("clients", "1 4 16 64", "numbers of concurrent clients")
	fs.DurationVar(&cfg.seconds, "seconds", 5*time.Second, "how long each phase starts new steps")
	fs.DurationVar(&cfg.passwordSeconds, "password-seconds", 10*time.Second, "the same for the password step (a step of 64 clients takes a second or more)")
	fs.IntVar(&cfg.members, "members", 12000, "at most this many members enrolled for the second steps (TOTP: one step per member and 30 s)")
	fs.IntVar(&cfg.initialMembers, "initial-members", 1000, "members enrolled before the first phase; more when a phase needs them")
	fs.IntVar(&cfg.keys, "keys", 1024, "members who also register a passkey (each is reused, one client at a time)")
	hash := fs.String("hash", "", "the server's GATEHOUSE_PASSWORD_HASH (empty: the default, argon2id:m=19456,t=2,p=1)")
	fs.StringVar(&cfg.admin, "admin", "", "owner's email (gatehouse user create --role owner)")
	fs.StringVar(&cfg.adminPassword, "admin-password", "", "owner's password")
	fs.StringVar(&cfg.rows, "rows", "", "append the result rows (JSON lines) to this file")
	fs.IntVar(&cfg.setupWorkers, "setup-workers", 32, "concurrent requests during setup and preparation (untimed)")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "per-request timeout (counted as an error)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.out = stdout
	if err := loopbackOnly(cfg.base); err != nil {
		return err
	}
	if cfg.slug == "" || cfg.admin == "" || cfg.adminPassword == "" {
		return errors.New("-slug, -admin and -admin-password are needed")
	}
	var err error
	if cfg.hash, err = parseArgonParams(*hash); err != nil {
		return err
	}
	if cfg.steps, err = parseSteps(*steps); err != nil {
		return err
	}
	if cfg.clients, err = parseInts(*clients); err != nil {
		return err
	}
	if cfg.origin == "" {
		u, _ := url.Parse(cfg.base)
		cfg.origin = "http://localhost:" + u.Port()
	}
	if *dbport != 0 {
		if cfg.dbpid = findPostmaster(*dbport); cfg.dbpid == 0 {
			fmt.Fprintf(stdout, "note: no PostgreSQL server found on port %d; its CPU is not measured\n", *dbport)
		}
	}
	rows, err := bench(cfg)
	if cfg.rows != "" && len(rows) > 0 {
		if werr := appendRows(cfg.rows, rows); werr != nil {
			return errors.Join(err, werr)
		}
	}
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.Errors > 0 {
			return fmt.Errorf("%s %s at %d clients: %d errors (first: %s)", r.Engine, r.Step, r.Clients, r.Errors, r.FirstError)
		}
	}
	return nil
}

func parseSteps(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Fields(s) {
		switch f {
		case stepPassword, stepTOTP, stepRecovery, stepPasskey:
			out = append(out, f)
		default:
			return nil, fmt.Errorf("unknown step %q (want password, totp, recovery, passkey)", f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no steps")
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive numbers", s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: want positive numbers", s)
	}
	return out, nil
}

// argonParams are argon2id parameters as GATEHOUSE_PASSWORD_HASH gives them.
type argonParams struct {
	m, t uint32
	p    uint8
}

func (p argonParams) String() string { return fmt.Sprintf("argon2id:m=%d,t=%d,p=%d", p.m, p.t, p.p) }

func parseArgonParams(s string) (argonParams, error) {
	if s == "" {
		return argonParams{m: 19456, t: 2, p: 1}, nil
	}
	var p argonParams
	if _, err := fmt.Sscanf(s, "argon2id:m=%d,t=%d,p=%d", &p.m, &p.t, &p.p); err != nil || p.t < 1 || p.p < 1 || p.m < 8*uint32(p.p) {
		return argonParams{}, fmt.Errorf("hash %q: want argon2id:m=…,t=…,p=…", s)
	}
	return p, nil
}

// phcHash is the PHC string of password under p, as Gatehouse stores it.
func phcHash(p argonParams, password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.t, p.m, p.p, 32)
	enc := base64.RawStdEncoding.EncodeToString
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.m, p.t, p.p, enc(salt), enc(key))
}

// hashBound is how many hashes under p per second the CPUs of this
// machine allow: as many hashes at once as there are CPUs, timed by the
// clock, the median of five rounds. One hash alone would overstate it:
// argon2id is bound by memory, and two at once on this VM's two CPUs each
// take longer than one alone (they share the caches and the memory
// bandwidth; the server's password step always runs them side by side).
// Run while the server is idle.
func hashBound(p argonParams) float64 {
	n := runtime.NumCPU()
	var rates []float64
	for range 5 {
		t0 := time.Now()
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				argon2.IDKey([]byte(memberPassword), make([]byte, 16), p.t, p.m, p.p, 32)
			}()
		}
		wg.Wait()
		rates = append(rates, float64(n)/time.Since(t0).Seconds())
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}

func (c *benchConfig) logf(format string, args ...any) {
	fmt.Fprintf(c.out, "[%s %s] %s\n", time.Now().Format("15:04:05"), c.engine, fmt.Sprintf(format, args...))
}

func (c *benchConfig) has(step string) bool { return slices.Contains(c.steps, step) }

// bench runs the whole thing and returns the rows it measured.
func bench(cfg benchConfig) ([]row, error) {
	if cfg.minPhase == 0 {
		cfg.minPhase = 50
	}
	if cfg.maxPrepFirst == 0 {
		cfg.maxPrepFirst = 256
	}
	var rows []row
	if cfg.pid != 0 {
		detail := "second-step server"
		if cfg.has(stepPassword) {
			detail = "password server"
		}
		r := row{Engine: cfg.engine, Step: "idle", Detail: detail, Source: "http", RSSMB: rssMB(cfg.pid)}
		cfg.logf("server pid %d, idle RSS %.0f MB", cfg.pid, r.RSSMB)
		rows = append(rows, r)
	}
	api := &apiClient{base: strings.TrimRight(cfg.base, "/") + "/t/" + cfg.slug + "/api/v1", origin: cfg.origin,
		http: newHTTPClient(cfg.setupWorkers, cfg.timeout)}
	defer api.http.CloseIdleConnections()

	// The owner: a second factor first, so that the import (a security
	// change) may go through.
	t0 := time.Now()
	tok, err := api.session(cfg.admin, cfg.adminPassword)
	if err != nil {
		return rows, fmt.Errorf("owner sign-in: %w", err)
	}
	if _, _, _, tok, err = api.enrollTOTP(tok); err != nil {
		return rows, fmt.Errorf("owner's authenticator app: %w", err)
	}

	maxClients := slices.Max(cfg.clients)
	n := 0
	pwMembers := 0
	if cfg.has(stepPassword) {
		pwMembers = max(maxClients, 8)
		n = pwMembers
	}
	second := slices.ContainsFunc(cfg.steps, func(s string) bool { return s != stepPassword })
	if second {
		n = max(n, cfg.members)
	}
	members := make([]*member, n)
	var csv bytes.Buffer
	hash := phcHash(cfg.hash, memberPassword)
	chunk := 0
	for i := range members {
		members[i] = &member{idx: i, email: fmt.Sprintf("m%d@bench.test", i)}
		if csv.Len() == 0 {
			csv.WriteString("email,role,password_hash\n")
		}
		fmt.Fprintf(&csv, "%s,member,\"%s\"\n", members[i].email, hash)
		if chunk++; chunk == 5000 || i == len(members)-1 {
			got, err := api.importMembers(tok, csv.Bytes())
			if err != nil {
				return rows, fmt.Errorf("import: %w", err)
			}
			if got != chunk {
				return rows, fmt.Errorf("import: %d members imported of %d (a workspace left from an earlier run?)", got, chunk)
			}
			csv.Reset()
			chunk = 0
		}
	}
	cfg.logf("owner enrolled, %d members imported (%s) in %.1fs", n, cfg.hash, time.Since(t0).Seconds())

	r := &runner{cfg: cfg, api: api, members: members, pwMembers: pwMembers, rates: map[string]rate{}, atClients: map[int]float64{},
		rateAt: map[string]map[int]float64{}}
	if second {
		// Enough to start; the TOTP and recovery phases enroll more when
		// they need them (up to -members).
		if err := r.enroll(min(n, max(cfg.initialMembers, r.keyCount()))); err != nil {
			return rows, err
		}
	}
	var bound float64
	if cfg.has(stepPassword) {
		// One sign-in each, untimed: anything the first one does (a
		// re-hash if the parameters differ after all) is done.
		t0 := time.Now()
		if err := parallel(cfg.setupWorkers, pwMembers, func(i int) error {
			_, err := api.session(members[i].email, memberPassword)
			return err
		}); err != nil {
			return rows, fmt.Errorf("password members' first sign-in: %w", err)
		}
		cfg.logf("%d password members signed in once in %.1fs", pwMembers, time.Since(t0).Seconds())
		bound = hashBound(cfg.hash)
		cfg.logf("%d %s hashes at once, one per CPU, bound password checks at %.0f/s here", runtime.NumCPU(), cfg.hash, bound)
	}

	for _, c := range cfg.clients {
		// TOTP last: the other steps run while the time step of the
		// enrollment, or of the TOTP phase before, passes.
		for _, step := range []string{stepPassword, stepRecovery, stepPasskey, stepTOTP} {
			if !cfg.has(step) {
				continue
			}
			res, err := r.phase(step, c)
			if err != nil {
				return rows, fmt.Errorf("%s at %d clients: %w", step, c, err)
			}
			if step == stepPassword {
				res.Bound = bound
			}
			cfg.logf("%-8s %2d clients: %s", step, c, res.summary())
			rows = append(rows, res)
		}
	}
	return rows, nil
}

// keyCount is how many members register a passkey: -keys, at least one
// per client, when the passkey step runs.
func (r *runner) keyCount() int {
	if !r.cfg.has(stepPasskey) {
		return 0
	}
	return min(len(r.members), max(r.cfg.keys, slices.Max(r.cfg.clients)))
}

// enroll enrolls the next n members (untimed): an authenticator app (and
// so its recovery codes) when a TOTP or recovery step is to run, and a
// passkey for the first keyCount members.
func (r *runner) enroll(n int) error {
	cfg := r.cfg
	totp := cfg.has(stepTOTP) || cfg.has(stepRecovery)
	keys := r.keyCount()
	from := r.enrolled
	to := min(len(r.members), from+n)
	if !totp {
		to = min(to, keys)
	}
	if to <= from {
		return nil
	}
	t0 := time.Now()
	meter := startMeter(cfg.pid, cfg.dbpid)
	var apps, keyed atomic.Int64
	err := parallel(cfg.setupWorkers, to-from, func(i int) error {
		m := r.members[from+i]
		tok, err := r.api.session(m.email, memberPassword)
		if err != nil {
			return err
		}
		if totp {
			var codes []string
			if m.secret, m.lastStep, codes, tok, err = r.api.enrollTOTP(tok); err != nil {
				return fmt.Errorf("%s: %w", m.email, err)
			}
			if len(codes) == 0 {
				return fmt.Errorf("%s: no recovery codes with the first factor", m.email)
			}
			m.codes = codes
			apps.Add(1)
		}
		if m.idx < keys {
			var codes []string
			if m.key, codes, _, err = r.api.registerKey(tok); err != nil {
				return fmt.Errorf("%s: %w", m.email, err)
			}
			if !totp {
				m.codes = codes
			}
			keyed.Add(1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("enrollment: %w", err)
	}
	r.enrolled = to
	m := meter.finish()
	cfg.logf("enrolled %d authenticator apps and %d passkeys in %.1fs (server CPU %.1f ms per member); %d members enrolled",
		apps.Load(), keyed.Load(), time.Since(t0).Seconds(), 1000*m.cpuSec/float64(to-from), r.enrolled)
	return nil
}

// parallel runs f(0…n-1) on w goroutines and returns the first error (the
// rest are then skipped).
func parallel(w, n int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(w, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// rate is a step's measured rate at a number of clients.
type rate struct {
	clients int
	perSec  float64
}

// runner runs the phases on one server, keeping what the members have
// left (time steps, codes, sign counts) and the rates seen so far.
type runner struct {
	cfg       benchConfig
	api       *apiClient
	members   []*member
	pwMembers int
	rates     map[string]rate
	atClients map[int]float64 // the fastest step's rate at each number of clients
	rateAt    map[string]map[int]float64
	loginRate float64 // sign-ins per second while preparing
	enrolled  int     // members[:enrolled] are enrolled
}

// job is one timed step: a member, its pending sign-in and, for the
// recovery step, the code to use.
type job struct {
	m     *member
	token string
	code  string
	done  bool
}

// estimate is how many steps a phase of secs at clients should need: the
// same step's rate at the previous number of clients (prev), times how much
// the other steps gained from those clients to these (scale, when they ran
// at both; taken as at least 1), or else times the growth in clients while
// there are fewer clients than CPUs (past that a closed loop gains little:
// 1.2 times); for a step's first phase, hint. Then margin times that, for
// headroom; at least floor.
func estimate(prev rate, scale, hint float64, clients, cpus int, secs, margin float64, floor int) int {
	perSec := hint
	if prev.perSec > 0 {
		grow := float64(clients) / float64(prev.clients)
		f := min(grow, max(1.2, float64(cpus)/float64(prev.clients)))
		if scale > 0 {
			f = min(grow, max(1, scale))
		}
		perSec = prev.perSec * f
	}
	return max(floor, int(math.Ceil(perSec*secs*margin)))
}

// lruTOTP returns the members with an authenticator app, those whose last
// used time step is oldest first: a TOTP phase takes a prefix.
func lruTOTP(ms []*member) []*member {
	var out []*member
	for _, m := range ms {
		if m.secret != "" {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b *member) int {
		if a.lastStep != b.lastStep {
			return cmpInt64(a.lastStep, b.lastStep)
		}
		return a.idx - b.idx
	})
	return out
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// firstFreeStep is the first TOTP time step none of the jobs' members used.
func firstFreeStep(jobs []*job) int64 {
	var last int64
	for _, j := range jobs {
		last = max(last, j.m.lastStep)
	}
	return last + 1
}

// recoveryJobs returns up to want jobs over members with unused codes, one
// code from each member in turn.
func recoveryJobs(ms []*member, want int) []*job {
	var jobs []*job
	for round := 0; len(jobs) < want; round++ {
		added := false
		for _, m := range ms {
			if round < len(m.codes) && len(jobs) < want {
				jobs = append(jobs, &job{m: m, code: m.codes[round]})
				added = true
			}
		}
		if !added {
			break
		}
	}
	return jobs
}

// cyclicJobs returns want jobs cycling over ms (the passkey and password
// steps reuse members).
func cyclicJobs(ms []*member, want int) []*job {
	jobs := make([]*job, want)
	for i := range jobs {
		jobs[i] = &job{m: ms[i%len(ms)]}
	}
	return jobs
}

// queues deals the jobs to c clients: each member's jobs all go to the
// same client, in their order.
func queues(jobs []*job, c int) [][]*job {
	q := make([][]*job, c)
	for _, j := range jobs {
		w := j.m.idx % c
		q[w] = append(q[w], j)
	}
	return q
}

// want is how many steps a phase of step at c clients should prepare. A
// step's first phase has only other rates to go by: the fastest step's at
// these clients (1.3 times) or the rate sign-ins were prepared at. A TOTP
// phase needs a member per step, and enrolling one costs several steps, so
// its headroom is smaller.
func (r *runner) want(step string, c int) int {
	hint := max(r.loginRate, 1.3*r.atClients[c])
	prev := r.rates[step]
	scale := 0.0
	if prev.perSec > 0 {
		for s, byClients := range r.rateAt {
			if s != step && byClients[c] > 0 && byClients[prev.clients] > 0 {
				scale = max(scale, byClients[c]/byClients[prev.clients])
			}
		}
	}
	margin := 1.5
	if step == stepTOTP {
		margin = 1.25
	}
	return estimate(prev, scale, hint, c, runtime.NumCPU(), r.cfg.seconds.Seconds(), margin, max(r.cfg.minPhase, 4*c))
}

// grow enrolls more members when a TOTP or recovery phase lacks short
// steps (at least 500 at a time, at most up to -members).
func (r *runner) grow(step string, short int) error {
	if short <= 0 || r.enrolled >= len(r.members) {
		return nil
	}
	switch step {
	case stepTOTP:
		return r.enroll(max(short, 500))
	case stepRecovery:
		return r.enroll(max((short+9)/10, 500))
	}
	return nil
}

// candidates returns up to want jobs of step, in the order a phase takes
// them (so that a shorter list is a prefix of a longer one), and how many
// there could be at most.
func (r *runner) candidates(step string, want int) ([]*job, int) {
	switch step {
	case stepTOTP:
		ms := lruTOTP(r.members)
		return jobsFor(ms[:min(want, len(ms))]), len(ms)
	case stepRecovery:
		left := 0
		for _, m := range r.members {
			left += len(m.codes)
		}
		return recoveryJobs(r.members, want), left
	case stepPasskey:
		var keyed []*member
		for _, m := range r.members {
			if m.key != nil {
				keyed = append(keyed, m)
			}
		}
		if len(keyed) == 0 {
			return nil, 0
		}
		return cyclicJobs(keyed, want), math.MaxInt
	}
	return nil, 0
}

// phase prepares and runs one step at c clients.
func (r *runner) phase(step string, c int) (row, error) {
	cfg := r.cfg
	secs := cfg.seconds.Seconds()
	if step == stepPassword {
		// The sign-in is the step: nothing to prepare; the members are
		// reused, each by one client.
		return r.timed(step, c, cfg.passwordSeconds, &cycle{members: r.members[:r.pwMembers], c: c, next: make([]int, c)}), nil
	}
	_, avail := r.candidates(step, 0)
	if avail < c {
		return row{}, fmt.Errorf("only %d steps left for %d clients (more members: BENCH_MEMBERS / -members)", avail, c)
	}
	// The run's first phase first measures how fast sign-ins are prepared,
	// on a first slice, to size itself.
	var first []*job
	if r.loginRate == 0 {
		first, _ = r.candidates(step, min(avail, cfg.maxPrepFirst))
		if err := r.prepare(first); err != nil {
			return row{}, err
		}
	}
	want := max(len(first), r.want(step, c))
	if want > avail {
		if err := r.grow(step, want-avail); err != nil {
			return row{}, err
		}
		_, avail = r.candidates(step, 0)
	}
	want = min(want, avail)
	jobs, _ := r.candidates(step, want)
	for i, j := range first {
		if jobs[i].m == j.m && jobs[i].code == j.code {
			jobs[i].token = j.token
		}
	}
	if err := r.prepare(jobs); err != nil {
		return row{}, err
	}
	if step == stepTOTP {
		if wait := time.Until(time.Unix(firstFreeStep(jobs)*totpPeriod, 0)); wait > 0 {
			cfg.logf("waiting %.1fs for a TOTP time step none of these %d members used yet", wait.Seconds(), len(jobs))
			time.Sleep(wait + 20*time.Millisecond)
		}
	}
	qs := queues(jobs, c)
	res := r.timed(step, c, cfg.seconds, &static{q: qs, next: make([]int, c)})
	// Spend what the phase used (the TOTP time steps are noted as used).
	if step == stepRecovery {
		for _, j := range jobs {
			if j.done {
				j.m.codes = slices.DeleteFunc(j.m.codes, func(s string) bool { return s == j.code })
			}
		}
	}
	if res.OKPerSec > 0 {
		r.rates[step] = rate{clients: c, perSec: res.OKPerSec}
		r.atClients[c] = max(r.atClients[c], res.OKPerSec)
		if r.rateAt[step] == nil {
			r.rateAt[step] = map[int]float64{}
		}
		r.rateAt[step][c] = res.OKPerSec
	}
	if res.OK+res.Errors >= len(jobs) && res.Secs < 0.8*secs {
		res.Note = fmt.Sprintf("all %d prepared steps done in %.1fs", len(jobs), res.Secs)
	}
	return res, nil
}

func jobsFor(ms []*member) []*job {
	jobs := make([]*job, len(ms))
	for i, m := range ms {
		jobs[i] = &job{m: m}
	}
	return jobs
}

// prepare signs each job's member in with the password (untimed) for the
// pending sign-in its step completes, and notes the rate.
func (r *runner) prepare(jobs []*job) error {
	var todo []*job
	for _, j := range jobs {
		if j.token == "" {
			todo = append(todo, j)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	t0 := time.Now()
	err := parallel(r.cfg.setupWorkers, len(todo), func(i int) error {
		tok, err := r.api.mfaToken(todo[i].m.email, memberPassword)
		todo[i].token = tok
		return err
	})
	if err != nil {
		return fmt.Errorf("preparing sign-ins: %w", err)
	}
	r.loginRate = float64(len(todo)) / time.Since(t0).Seconds()
	return nil
}

// source hands client w its next job, nil when it has none left.
type source interface{ nextJob(w int) *job }

// static hands out queues made beforehand; each client reads only its own.
type static struct {
	q    [][]*job
	next []int
}

func (s *static) nextJob(w int) *job {
	if s.next[w] >= len(s.q[w]) {
		return nil
	}
	j := s.q[w][s.next[w]]
	s.next[w]++
	return j
}

// cycle hands client w, forever, the members whose index is w modulo c, in
// turn (the password step).
type cycle struct {
	members []*member
	c       int
	next    []int
}

func (s *cycle) nextJob(w int) *job {
	i := w + s.next[w]*s.c
	if i >= len(s.members) {
		s.next[w], i = 0, w
	}
	s.next[w]++
	return &job{m: s.members[i]}
}
