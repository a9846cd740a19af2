package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/mfa"
)

// Benchmarks of the second sign-in step through the JSON API: POST
// /t/{slug}/api/v1/login/mfa {mfa_token, code | recovery_code} over a real
// loopback connection, through Echo, the scs session load, checkFactor (guard
// read, credential read, AES-GCM decrypt and mfa.Match, or every unused
// recovery code's keyed hash) and the PassChallenge write transaction on a
// real SQLite file. A challenge, a TOTP step and a recovery code are each
// single use, so every iteration gets its own: the mfa_tokens (POST /login),
// clock moves and new recovery codes are made with the timer stopped, a
// batch at a time, for a few members in turn.

// mfaBenchMembers is how many members take turns: one TOTP step each per
// batch, so the fake clock moves 30 s every mfaBenchMembers iterations.
const mfaBenchMembers = 16

type mfaBenchMember struct {
	email    string
	secret   string
	recovery []string
	token    string // latest aal2 session token (for regenerating codes)
	mfaToken string
	input    map[string]string
	res      []byte
}

// mfaBenchEnv starts the app with mfaBenchMembers members who each enrolled
// an authenticator app through the API (and so hold 10 recovery codes).
func mfaBenchEnv(b *testing.B) (*apptest.Env, *apptest.Client, []*mfaBenchMember) {
	b.Helper()
	env := apptest.New(b)
	ws := env.Workspace("acme", "Acme")
	c := env.Client()
	members := make([]*mfaBenchMember, mfaBenchMembers)
	for i := range members {
		m := &mfaBenchMember{email: fmt.Sprintf("member%d@acme.test", i)}
		env.User(ws, m.email, "member", benchPassword)
		m.token = c.APILogin("acme", m.email, benchPassword)
		res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", m.token, nil)
		if res.StatusCode != http.StatusOK {
			b.Fatalf("setup = %d %s", res.StatusCode, res.Body)
		}
		m.secret, _ = res.JSON()["secret"].(string)
		code, err := mfa.CodeAt(m.secret, mfa.Step(env.Clock.Now()), mfa.Digits)
		if err != nil {
			b.Fatal(err)
		}
		res = c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", m.token, map[string]string{"code": code})
		var body struct {
			RecoveryCodes []string `json:"recovery_codes"`
			Token         string   `json:"session_token"` // aal2 now, under a new token
		}
		if res.StatusCode != http.StatusOK || json.Unmarshal(res.Body, &body) != nil || len(body.RecoveryCodes) != 10 {
			b.Fatalf("verify-setup = %d %s", res.StatusCode, res.Body)
		}
		m.recovery, m.token = body.RecoveryCodes, body.Token
		members[i] = m
	}
	// The code that confirmed enrollment consumed the current step.
	env.Clock.Advance(mfa.Period * time.Second)
	return env, c, members
}

// startChallenge signs in with the password and keeps the mfa_token.
func (m *mfaBenchMember) startChallenge(b *testing.B, c *apptest.Client) {
	res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": m.email, "password": benchPassword})
	m.mfaToken, _ = res.JSON()["mfa_token"].(string)
	if res.StatusCode != http.StatusOK || m.mfaToken == "" {
		b.Fatalf("login %s = %d %s", m.email, res.StatusCode, res.Body)
	}
}

// postMFA is the measured request; it reads the whole answer.
func postMFA(b *testing.B, client *http.Client, url string, body []byte) []byte {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.Fatalf("POST login/mfa = %d %s", res.StatusCode, out)
	}
	return out
}

// timedCPU adds up the process's CPU time while the benchmark timer runs
// (server and client goroutines, GC), leaving out the untimed setup.
type timedCPU struct{ total, start time.Duration }

func (t *timedCPU) startTimer(b *testing.B) { b.StartTimer(); t.start = cpuTime() }
func (t *timedCPU) stopTimer(b *testing.B)  { t.total += cpuTime() - t.start; b.StopTimer() }
func (t *timedCPU) report(b *testing.B) {
	if t.start != 0 && b.N > 0 {
		b.ReportMetric(float64(t.total)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

// runChallenges runs b.N second steps, mfaBenchMembers per batch; prepare
// readies one member's next challenge (untimed), check reads its answer.
func runChallenges(b *testing.B, members []*mfaBenchMember, url string, prepare func(*mfaBenchMember), check func(*mfaBenchMember)) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections)
	var cpu timedCPU
	var batch []*mfaBenchMember
	b.ReportAllocs()
	b.ResetTimer()
	cpu.startTimer(b)
	for i := 0; i < b.N; i++ {
		k := i % len(members)
		if k == 0 {
			cpu.stopTimer(b)
			for _, m := range batch {
				check(m)
			}
			batch = members[:min(len(members), b.N-i)]
			for _, m := range batch {
				prepare(m)
			}
			cpu.startTimer(b)
		}
		m := members[k]
		body, _ := json.Marshal(m.input)
		m.res = postMFA(b, client, url, body)
	}
	cpu.stopTimer(b)
	for _, m := range batch {
		check(m)
	}
	cpu.report(b)
}

// BenchmarkChallengeTOTP is the second step with a right code from the
// authenticator app: 200 with an aal2 session token.
func BenchmarkChallengeTOTP(b *testing.B) {
	env, c, members := mfaBenchEnv(b)
	url := c.URL("/t/acme/api/v1/login/mfa")
	prepared := 0
	runChallenges(b, members, url, func(m *mfaBenchMember) {
		if prepared%len(members) == 0 {
			env.Clock.Advance(mfa.Period * time.Second) // a new step for everyone
		}
		prepared++
		m.startChallenge(b, c)
		code, err := mfa.CodeAt(m.secret, mfa.Step(env.Clock.Now()), mfa.Digits)
		if err != nil {
			b.Fatal(err)
		}
		m.input = map[string]string{"mfa_token": m.mfaToken, "code": code}
	}, func(m *mfaBenchMember) {
		var r struct {
			AAL   string `json:"aal"`
			Token string `json:"session_token"`
		}
		if json.Unmarshal(m.res, &r) != nil || r.AAL != "aal2" || r.Token == "" {
			b.Fatalf("login/mfa answered %s", m.res)
		}
	})
}

// BenchmarkChallengeRecoveryCode is the second step with a recovery code
// (dashes left out, upper case, as people type them) while the member holds
// a full set of 10 unused codes: every one is compared. Each member gets a
// new set (POST /mfa/recovery-codes with the aal2 session of its last sign-in)
// before each batch after the first.
func BenchmarkChallengeRecoveryCode(b *testing.B) {
	_, c, members := mfaBenchEnv(b)
	url := c.URL("/t/acme/api/v1/login/mfa")
	runChallenges(b, members, url, func(m *mfaBenchMember) {
		if m.recovery == nil {
			res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/recovery-codes", m.token, nil)
			var r struct {
				Codes []string `json:"recovery_codes"`
			}
			if res.StatusCode != http.StatusOK || json.Unmarshal(res.Body, &r) != nil || len(r.Codes) != 10 {
				b.Fatalf("regenerate = %d %s", res.StatusCode, res.Body)
			}
			m.recovery = r.Codes
		}
		m.startChallenge(b, c)
		code := bytes.ToUpper(bytes.ReplaceAll([]byte(m.recovery[7]), []byte("-"), nil))
		m.input = map[string]string{"mfa_token": m.mfaToken, "recovery_code": string(code)}
		m.recovery = nil
	}, func(m *mfaBenchMember) {
		var r struct {
			AAL       string `json:"aal"`
			Token     string `json:"session_token"`
			Remaining *int   `json:"remaining_recovery_codes"`
		}
		if json.Unmarshal(m.res, &r) != nil || r.AAL != "aal2" || r.Token == "" || r.Remaining == nil || *r.Remaining != 9 {
			b.Fatalf("login/mfa answered %s", m.res)
		}
		m.token = r.Token
	})
}

// BenchmarkChallengeTOTPParallel is the TOTP second step from 64 clients at
// once. Every mfa_token is made before the timer starts (a pending sign-in
// lives ChallengeLifetime, so up to 10 rounds of 30 s steps per token
// batch); each round moves the clock one TOTP step and every member signs
// in once, 64 requests in flight. GATEHOUSE_BENCH_CPUPROFILE=FILE writes a
// CPU profile of the timed rounds only.
func BenchmarkChallengeTOTPParallel(b *testing.B) {
	const clients, rounds = 64, 9
	env := apptest.New(b)
	ws := env.Workspace("acme", "Acme")
	c := env.Client()
	n := max(clients, (b.N+rounds-1)/rounds)
	type member struct {
		email, secret string
		tokens        []string
	}
	members := make([]*member, n)
	for i := range members {
		m := &member{email: fmt.Sprintf("member%d@acme.test", i)}
		env.User(ws, m.email, "member", benchPassword)
		tok := c.APILogin("acme", m.email, benchPassword)
		res := c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/setup", tok, nil)
		m.secret, _ = res.JSON()["secret"].(string)
		code, _ := mfa.CodeAt(m.secret, mfa.Step(env.Clock.Now()), mfa.Digits)
		if res = c.API(http.MethodPost, "/t/acme/api/v1/mfa/totp/verify-setup", tok, map[string]string{"code": code}); res.StatusCode != http.StatusOK {
			b.Fatalf("verify-setup = %d %s", res.StatusCode, res.Body)
		}
		members[i] = m
	}
	// The code that confirmed enrollment used the current step.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	b.Cleanup(client.CloseIdleConnections)
	url := c.URL("/t/acme/api/v1/login/mfa")
	var cpu timedCPU
	var prof *os.File
	if f := os.Getenv("GATEHOUSE_BENCH_CPUPROFILE"); f != "" {
		var err error
		if prof, err = os.Create(f); err != nil {
			b.Fatal(err)
		}
		defer prof.Close()
	}
	done := 0
	var commits, steps int64
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	for done < b.N {
		for _, m := range members {
			m.tokens = m.tokens[:0]
			for range rounds {
				res := c.API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": m.email, "password": benchPassword})
				t, _ := res.JSON()["mfa_token"].(string)
				if t == "" {
					b.Fatalf("login = %d %s", res.StatusCode, res.Body)
				}
				m.tokens = append(m.tokens, t)
			}
		}
		for r := 0; r < rounds && done < b.N; r++ {
			env.Clock.Advance(mfa.Period * time.Second)
			bodies := make(chan []byte, len(members))
			for _, m := range members[:min(len(members), b.N-done)] {
				code, _ := mfa.CodeAt(m.secret, mfa.Step(env.Clock.Now()), mfa.Digits)
				body, _ := json.Marshal(map[string]string{"mfa_token": m.tokens[r], "code": code})
				bodies <- body
				done++
			}
			close(bodies)
			c0, s0 := env.Store.GroupCommits()
			if prof != nil && r == 0 {
				pprof.StartCPUProfile(prof)
			}
			cpu.startTimer(b)
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for body := range bodies {
						postMFA(b, client, url, body)
					}
				})
			}
			wg.Wait()
			cpu.stopTimer(b)
			c1, s1 := env.Store.GroupCommits()
			commits, steps = commits+c1-c0, steps+s1-s0
			if prof != nil && (r == rounds-1 || done == b.N) {
				// The rounds of the first batch of sign-ins: a profile
				// cannot pause for the next batch.
				pprof.StopCPUProfile()
				prof.Close()
				prof = nil
			}
		}
	}
	cpu.report(b)
	if commits > 0 {
		b.ReportMetric(float64(steps)/float64(commits), "tx/commit")
	}
}
