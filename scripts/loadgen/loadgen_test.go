package main

import (
	"encoding/base32"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

func TestLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080/t/a/api/v1/login", "http://127.0.0.2:1", "http://[::1]:8080/"} {
		if err := loopbackOnly(ok); err != nil {
			t.Errorf("loopbackOnly(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"http://localhost:8080/", "http://10.0.0.1:8080/", "http://example.com/", "https://127.0.0.1/",
		"http://0.0.0.0:8080/", "http://[::ffff:10.0.0.1]:80/", "127.0.0.1:8080", ""} {
		if err := loopbackOnly(bad); err == nil {
			t.Errorf("loopbackOnly(%q) = nil, want a refusal", bad)
		}
	}
}

func TestBenchRefusesOtherHosts(t *testing.T) {
	err := runBench([]string{"-base", "http://192.0.2.1:8080", "-slug", "x", "-admin", "a@x.test", "-admin-password", "p"}, new(strings.Builder))
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("runBench toward 192.0.2.1 = %v, want the loopback refusal", err)
	}
}

// TestTOTPCode checks the codes against RFC 6238's SHA-1 test vectors
// (their last 6 digits).
func TestTOTPCode(t *testing.T) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))
	for _, tc := range []struct {
		unix int64
		want string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"}} {
		got, err := totpCode(secret, time.Unix(tc.unix, 0))
		if err != nil || got != tc.want {
			t.Errorf("totpCode at %d = %q, %v; want %q", tc.unix, got, err, tc.want)
		}
	}
	if _, err := totpCode("not base32!", time.Now()); err == nil {
		t.Error("a bad secret gave a code")
	}
	// Lower case and padding, as some URIs carry them.
	a, _ := totpCode(strings.ToLower(secret)+"====", time.Unix(59, 0))
	if a != "287082" {
		t.Errorf("lower-case padded secret: %q", a)
	}
}

type waUser struct {
	id    []byte
	creds []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return u.id }
func (u *waUser) WebAuthnName() string                       { return "m@bench.test" }
func (u *waUser) WebAuthnDisplayName() string                { return "m@bench.test" }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// TestSoftKeyAgainstGoWebAuthn registers software keys and signs in with
// them through go-webauthn, the library the server verifies with, as
// Gatehouse configures it (RP ID localhost, the origin of the base URL).
func TestSoftKeyAgainstGoWebAuthn(t *testing.T) {
	const origin = "http://localhost:8080"
	w, err := webauthn.New(&webauthn.Config{
		RPID: "localhost", RPDisplayName: "Bench", RPOrigins: []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: protocol.VerificationPreferred,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Many keys: a coordinate with a leading zero byte (1 key in 128) must
	// still be sent as 32 bytes.
	for i := range 300 {
		u := &waUser{id: []byte(fmt.Sprintf("user-handle-%03d", i))}
		creation, sd, err := w.BeginRegistration(u, webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
		if err != nil {
			t.Fatal(err)
		}
		opts, _ := json.Marshal(creation)
		key, err := newSoftKey()
		if err != nil {
			t.Fatal(err)
		}
		att, err := key.attest(opts, origin)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := protocol.ParseCredentialCreationResponseBytes(att)
		if err != nil {
			t.Fatalf("key %d: parse attestation: %v\n%s", i, err, att)
		}
		cred, err := w.CreateCredential(u, *sd, parsed)
		if err != nil {
			t.Fatalf("key %d: CreateCredential: %v", i, err)
		}
		if string(key.handle) != string(u.id) {
			t.Fatalf("key %d: user handle %q, want %q", i, key.handle, u.id)
		}
		if i >= 3 {
			continue
		}
		u.creds = []webauthn.Credential{*cred}
		for n := uint32(1); n <= 3; n++ {
			assertion, sd, err := w.BeginLogin(u)
			if err != nil {
				t.Fatal(err)
			}
			opts, _ := json.Marshal(assertion)
			as, err := key.assert(opts, origin)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := protocol.ParseCredentialRequestResponseBytes(as)
			if err != nil {
				t.Fatalf("parse assertion: %v\n%s", err, as)
			}
			got, err := w.ValidateLogin(u, *sd, parsed)
			if err != nil {
				t.Fatalf("ValidateLogin %d: %v", n, err)
			}
			if got.Authenticator.SignCount != n || got.Authenticator.CloneWarning {
				t.Fatalf("assertion %d: sign count %d, clone warning %v", n, got.Authenticator.SignCount, got.Authenticator.CloneWarning)
			}
			if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
				t.Error("assertion without user verification")
			}
			u.creds[0].Authenticator.SignCount = got.Authenticator.SignCount
		}
		// Another origin is refused: the key signs what it is told.
		assertion, sd, _ := w.BeginLogin(u)
		opts, _ = json.Marshal(assertion)
		as, _ := key.assert(opts, "http://evil.test:8080")
		evil, _ := protocol.ParseCredentialRequestResponseBytes(as)
		if _, err := w.ValidateLogin(u, *sd, evil); err == nil {
			t.Fatal("an assertion for another origin was accepted")
		}
	}
}

func TestSoftKeyRefusesOtherKeysOptions(t *testing.T) {
	key, _ := newSoftKey()
	opts := `{"publicKey":{"challenge":"AAAA","rpId":"localhost","allowCredentials":[{"type":"public-key","id":"b3RoZXI"}]}}`
	if _, err := key.assert([]byte(opts), "http://localhost:1"); err == nil {
		t.Fatal("signed for options that allow only another key")
	}
	if _, err := key.attest([]byte(`{"publicKey":{"challenge":"AAAA","rp":{"id":"localhost"},"user":{"id":"AA"},"pubKeyCredParams":[{"type":"public-key","alg":-257}]}}`), "http://localhost:1"); err == nil {
		t.Fatal("registered although ES256 was not offered")
	}
}

func TestCBOR(t *testing.T) {
	for _, tc := range []struct {
		got, want []byte
	}{
		{cborInt(nil, 0), []byte{0x00}},
		{cborInt(nil, 23), []byte{0x17}},
		{cborInt(nil, 24), []byte{0x18, 0x18}},
		{cborInt(nil, -1), []byte{0x20}},
		{cborInt(nil, -7), []byte{0x26}},
		{cborInt(nil, 1000), []byte{0x19, 0x03, 0xe8}},
		{cborText(nil, "fmt"), []byte{0x63, 'f', 'm', 't'}},
		{cborBytes(nil, make([]byte, 300))[:3], []byte{0x59, 0x01, 0x2c}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("got % x, want % x", tc.got, tc.want)
		}
	}
}

func TestEstimate(t *testing.T) {
	for _, tc := range []struct {
		name          string
		prev          rate
		scale, hint   float64
		clients, cpus int
		margin        float64
		want          int
	}{
		{"first phase: the hint", rate{}, 0, 400, 1, 2, 1.5, 3000},
		{"1 to 4 on 2 CPUs: twice", rate{1, 400}, 0, 0, 4, 2, 1.5, 6000},
		{"4 to 16: 1.2 times", rate{4, 1000}, 0, 0, 16, 2, 1.5, 9000},
		{"1 to 4 on 8 CPUs: 4 times", rate{1, 100}, 0, 0, 4, 8, 1.5, 3000},
		{"the other steps gained 1.5 times", rate{1, 400}, 1.5, 0, 4, 2, 1.5, 4500},
		{"the other steps lost: taken as 1", rate{1, 400}, 0.7, 0, 4, 2, 1.25, 2500},
		{"never more than the growth in clients", rate{16, 400}, 9, 0, 64, 2, 1, 8000},
		{"the floor", rate{1, 1}, 0, 0, 4, 2, 1.5, 256},
	} {
		if got := estimate(tc.prev, tc.scale, tc.hint, tc.clients, tc.cpus, 5, tc.margin, 256); got != tc.want {
			t.Errorf("%s: estimate = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestTOTPMembersLeastRecentlyUsedFirst(t *testing.T) {
	ms := []*member{
		{idx: 0, secret: "A", lastStep: 12},
		{idx: 1, secret: "A", lastStep: 10},
		{idx: 2}, // no authenticator app
		{idx: 3, secret: "A", lastStep: 10},
		{idx: 4, secret: "A", lastStep: 11},
	}
	got := lruTOTP(ms)
	var idx []int
	for _, m := range got {
		idx = append(idx, m.idx)
	}
	if !slices.Equal(idx, []int{1, 3, 4, 0}) {
		t.Fatalf("order %v, want [1 3 4 0]", idx)
	}
	if s := firstFreeStep(jobsFor(got[:2])); s != 11 {
		t.Errorf("first free step of two = %d, want 11", s)
	}
	if s := firstFreeStep(jobsFor(got)); s != 13 {
		t.Errorf("first free step of all = %d, want 13", s)
	}
}

func TestRecoveryJobs(t *testing.T) {
	ms := []*member{{idx: 0, codes: []string{"a1", "a2", "a3"}}, {idx: 1, codes: []string{"b1"}}, {idx: 2, codes: []string{"c1", "c2"}}}
	all := recoveryJobs(ms, 100)
	var codes []string
	for _, j := range all {
		codes = append(codes, j.code)
	}
	if want := []string{"a1", "b1", "c1", "a2", "c2", "a3"}; !slices.Equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	// A shorter list is a prefix of a longer one (prepared sign-ins are
	// kept when a phase grows).
	for n := range len(all) {
		short := recoveryJobs(ms, n)
		for i := range short {
			if short[i].m != all[i].m || short[i].code != all[i].code {
				t.Fatalf("recoveryJobs(%d)[%d] differs", n, i)
			}
		}
	}
}

// TestQueues checks that each member's jobs go to one client, in order:
// its sign count and codes must not race.
func TestQueues(t *testing.T) {
	ms := make([]*member, 10)
	for i := range ms {
		ms[i] = &member{idx: i}
	}
	jobs := cyclicJobs(ms, 95)
	for _, c := range []int{1, 3, 4, 16} {
		qs := queues(jobs, c)
		owner := map[int]int{}
		total := 0
		for w, q := range qs {
			total += len(q)
			for _, j := range q {
				if o, ok := owner[j.m.idx]; ok && o != w {
					t.Fatalf("c=%d: member %d in queues %d and %d", c, j.m.idx, o, w)
				}
				owner[j.m.idx] = w
			}
		}
		if total != len(jobs) {
			t.Fatalf("c=%d: %d jobs dealt of %d", c, total, len(jobs))
		}
	}
	// The password step's endless cycle, likewise.
	for _, c := range []int{1, 4, 10} {
		src := &cycle{members: ms, c: c, next: make([]int, c)}
		for w := range c {
			for range 25 {
				if j := src.nextJob(w); j.m.idx%c != w {
					t.Fatalf("c=%d: client %d got member %d", c, w, j.m.idx)
				}
			}
		}
	}
}

func TestStaticSource(t *testing.T) {
	a, b := &job{}, &job{}
	s := &static{q: [][]*job{{a, b}, {}}, next: make([]int, 2)}
	if s.nextJob(0) != a || s.nextJob(0) != b || s.nextJob(0) != nil || s.nextJob(1) != nil {
		t.Fatal("static source out of order")
	}
}

func TestSummarizePhase(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	results := []workerResult{
		{lats: []time.Duration{ms(1), ms(2), ms(3)}, statuses: map[int]int{200: 3}},
		{lats: []time.Duration{ms(4)}, errors: 2, firstErr: "status 401 invalid_code", statuses: map[int]int{200: 1, 401: 1, 0: 1}},
	}
	r := summarizePhase("sqlite", stepTOTP, 2, 2*time.Second, results, measured{peakRSSMB: 50, cpuSec: 0.02, dbSec: 0.004})
	if r.OK != 4 || r.Errors != 2 || r.OKPerSec != 2 || r.MeanMS != 2.5 || r.P50MS != 2 || r.P99MS != 4 {
		t.Fatalf("summary %+v", r)
	}
	if r.CPUMS != 5 || r.DBCPUMS != 1 || r.RSSMB != 50 || r.FirstError == "" {
		t.Fatalf("summary %+v", r)
	}
	if r.Statuses["transport"] != 1 || r.Statuses["401"] != 1 || r.Statuses["200"] != 4 {
		t.Fatalf("statuses %v", r.Statuses)
	}
}

func TestCheckAnswer(t *testing.T) {
	for _, tc := range []struct {
		body string
		aal2 bool
		ok   bool
	}{
		{`{"session_token":"x","aal":"aal2","amr":[]}`, true, true},
		{`{"session_token":"x","aal":"aal1"}`, true, false},
		{`{"mfa_required":true,"mfa_token":"x"}`, false, false},
		{`{"mfa_required":false,"session_token":"x","aal":"aal1"}`, false, true},
		{`not json`, false, false},
	} {
		if err := checkAnswer([]byte(tc.body), tc.aal2); (err == nil) != tc.ok {
			t.Errorf("checkAnswer(%s, %v) = %v", tc.body, tc.aal2, err)
		}
	}
}

func TestParseStat(t *testing.T) {
	st, err := parseStat("1234 (my (odd) prog) S 77 1234 1234 0 -1 4194560 500 0 0 0 150 25 3 4 20 0 8 0 100 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 77 || st.utime != 150 || st.stime != 25 || st.cutime != 3 || st.cstime != 4 {
		t.Fatalf("parsed %+v", st)
	}
	if _, err := parseStat("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
}

const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/gatehouse/gatehouse/app
cpu: AMD EPYC
BenchmarkAdminPages100k
    dashboard_bench_test.go:29: fixture of 100,000 members: 14.2s
BenchmarkAdminPages100k/Dashboard
BenchmarkAdminPages100k/Dashboard-2         	       5	  31234567 ns/op	        25.50 cpu-ms/op	  512345 B/op	    2865 allocs/op
BenchmarkAdminPages100k/Members-2           	       5	   9000000 ns/op	         9.800 cpu-ms/op	  100000 B/op	    1000 allocs/op
BenchmarkScanReminders100k/AllDue-2         	       1	5800000000 ns/op	      6667 queued/op	    869961 ns/queued
BenchmarkSomethingElse-2 	 100	 1000 ns/op
PASS
ok  	github.com/gatehouse/gatehouse/app	40.1s
`

func TestParseGoBench(t *testing.T) {
	rows, err := parseGoBench(strings.NewReader(goBenchOutput), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	d := rows[0]
	if d.Step != "admin: dashboard page" || d.Engine != "postgres" || d.OK != 5 || d.MeanMS != 31.234567 || d.CPUMS != 25.5 || d.Source != "go test" {
		t.Fatalf("dashboard row %+v", d)
	}
	if rows[2].Step != "reminder scan: 6,667 emails due" || rows[2].MeanMS != 5800 || rows[2].CPUMS != 0 {
		t.Fatalf("scan row %+v", rows[2])
	}
	if rows[3].Step != "SomethingElse" {
		t.Fatalf("unknown benchmark named %q", rows[3].Step)
	}
}

func TestTable(t *testing.T) {
	rows := []row{
		{Engine: "sqlite", Step: stepTOTP, Clients: 64, Source: "http", Secs: 5, OK: 30000, OKPerSec: 6000, P50MS: 5, P99MS: 15, RSSMB: 60, CPUMS: 0.3},
		{Engine: "sqlite", Step: stepTOTP, Clients: 1, Source: "http", Secs: 5, OK: 2000, OKPerSec: 400, P99MS: 3},
		{Engine: "sqlite", Step: "idle", Detail: "server for password", RSSMB: 70},
		{Engine: "postgres", Step: stepPasskey, Clients: 64, Source: "http", OKPerSec: 2000, Errors: 3, FirstError: "status 500", DBCPUMS: 0.5},
		{Engine: "sqlite", Step: stepPassword, Clients: 64, Source: "http", OKPerSec: 45, Bound: 50, RSSMB: 150},
		{Engine: "sqlite", Step: "admin: dashboard page", Source: "go test", Clients: 1, OK: 5, MeanMS: 31, OKPerSec: 32},
		{Engine: "sqlite", Step: stepRecovery, Clients: 64, Source: "http", OKPerSec: 100, Note: "all 100 prepared steps done in 1.0s"},
	}
	var b strings.Builder
	if n := printTable(&b, rows); n != 1 {
		t.Errorf("%d rows with errors, want 1", n)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	for _, want := range []string{
		"≥5000/s, p99 ≤20 ms: met", "RSS ≤64 MB: MISSED", "≥3000/s: MISSED", "≥90% of bound 50/s (90%), 0 errors, RSS ≤200 MB: met",
		"≤50 ms: met", "≥2000/s: MISSED", "idle (server for password)", "status 500", "all 100 prepared steps",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Ordered: sqlite idle, password, totp 1, totp 64, recovery, admin; then postgres.
	order := []string{"idle", "password", "| totp ", "| totp ", "recovery", "admin", "postgres"}
	for i, want := range order {
		if !strings.Contains(lines[2+i], want) {
			t.Errorf("line %d = %q, want %q in it", 2+i, lines[2+i], want)
		}
	}
	if !strings.Contains(lines[3+1], "|       1 |") {
		t.Errorf("totp at 1 client should come first: %q", lines[4])
	}
}

// TestWant checks that a TOTP phase's size follows what the other steps
// gained from the same clients, with the smaller TOTP headroom.
func TestWant(t *testing.T) {
	r := &runner{cfg: benchConfig{seconds: 5 * time.Second, minPhase: 50},
		rates:     map[string]rate{stepTOTP: {1, 400}, stepRecovery: {4, 450}},
		atClients: map[int]float64{1: 400, 4: 450},
		rateAt: map[string]map[int]float64{
			stepTOTP:     {1: 400},
			stepRecovery: {1: 300, 4: 450},
			stepPasskey:  {1: 200, 4: 220},
		}}
	if got := r.want(stepTOTP, 4); got != 3750 {
		t.Errorf("want(totp, 4) = %d, want 400 × 1.5 × 5 s × 1.25 = 3750", got)
	}
	// A step's first phase (passkey has no rate of its own in r.rates):
	// the fastest step at these clients, 1.3 times, else the floor (4 per
	// client).
	if got := r.want(stepPasskey, 16); got != 64 {
		t.Errorf("want(passkey, 16) with nothing at 16 = %d, want the floor 64", got)
	}
	r.atClients[16] = 100
	if got := r.want(stepPasskey, 16); got != 975 {
		t.Errorf("want(passkey, 16) = %d, want 100 × 1.3 × 5 s × 1.5 = 975", got)
	}
}
