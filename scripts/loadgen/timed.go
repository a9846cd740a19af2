package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// workerResult is what one client of a phase saw.
type workerResult struct {
	lats     []time.Duration
	errors   int
	statuses map[int]int
	firstErr string
}

// timed runs one closed-loop phase: c clients, each sending its next step
// as soon as the last is answered, until -seconds have passed (then the
// steps in flight finish) or its jobs run out. It measures the server
// around it.
func (r *runner) timed(step string, c int, d time.Duration, src source) row {
	client := newHTTPClient(c, r.cfg.timeout)
	defer client.CloseIdleConnections()
	meter := startMeter(r.cfg.pid, r.cfg.dbpid)
	results := make([]workerResult, c)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[w]
			res.statuses = map[int]int{}
			for time.Now().Before(deadline) {
				j := src.nextJob(w)
				if j == nil {
					return
				}
				lat, status, err := r.do(client, step, j)
				j.done = true
				res.statuses[status]++
				if err != nil {
					res.errors++
					if res.firstErr == "" {
						res.firstErr = err.Error()
					}
					continue
				}
				res.lats = append(res.lats, lat)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	m := meter.finish()
	return summarizePhase(r.cfg.engine, step, c, elapsed, results, m)
}

func summarizePhase(engine, step string, c int, elapsed time.Duration, results []workerResult, m measured) row {
	var lats []time.Duration
	out := row{Engine: engine, Step: step, Clients: c, Source: "http", Secs: elapsed.Seconds(), Statuses: map[string]int{}}
	for _, res := range results {
		lats = append(lats, res.lats...)
		out.Errors += res.errors
		if out.FirstError == "" {
			out.FirstError = res.firstErr
		}
		for st, n := range res.statuses {
			k := "transport"
			if st != 0 {
				k = fmt.Sprint(st)
			}
			out.Statuses[k] += n
		}
	}
	slices.Sort(lats)
	out.OK = len(lats)
	if secs := elapsed.Seconds(); secs > 0 {
		out.OKPerSec = float64(out.OK) / secs
	}
	var sum time.Duration
	for _, l := range lats {
		sum += l
	}
	if out.OK > 0 {
		out.MeanMS = msf(sum / time.Duration(out.OK))
		out.P50MS = msf(percentile(lats, 50))
		out.P99MS = msf(percentile(lats, 99))
		out.CPUMS = 1000 * m.cpuSec / float64(out.OK)
		out.DBCPUMS = 1000 * m.dbSec / float64(out.OK)
		out.ClientCPUMS = 1000 * m.selfSec / float64(out.OK)
	}
	out.MachineBusy = m.busy
	out.RSSMB = m.peakRSSMB
	return out
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// stepAnswer is what a successful sign-in step answers.
type stepAnswer struct {
	MFARequired  bool   `json:"mfa_required"`
	SessionToken string `json:"session_token"`
	AAL          string `json:"aal"`
}

// do sends one timed step and checks its answer: a session, aal2 after a
// second factor. Only the HTTP exchanges (and, for a passkey, signing the
// assertion between them) are timed.
func (r *runner) do(client *http.Client, step string, j *job) (time.Duration, int, error) {
	api := r.api
	var body []byte
	switch step {
	case stepPassword:
		body, _ = json.Marshal(map[string]string{"email": j.m.email, "password": memberPassword})
		return timedPost(client, api.base+"/login", body, false)
	case stepTOTP:
		now := time.Now()
		code, err := totpCode(j.m.secret, now)
		if err != nil {
			return 0, 0, err
		}
		j.m.lastStep = max(j.m.lastStep, totpStep(now))
		body, _ = json.Marshal(map[string]string{"mfa_token": j.token, "code": code})
		return timedPost(client, api.base+"/login/mfa", body, true)
	case stepRecovery:
		body, _ = json.Marshal(map[string]string{"mfa_token": j.token, "recovery_code": j.code})
		return timedPost(client, api.base+"/login/mfa", body, true)
	case stepPasskey:
		body, _ = json.Marshal(map[string]string{"mfa_token": j.token})
		t0 := time.Now()
		status, data, err := post(client, api.base+"/login/webauthn/begin", body)
		if err != nil {
			return time.Since(t0), status, fmt.Errorf("begin: %w", err)
		}
		var begin ceremony
		if err := json.Unmarshal(data, &begin); err != nil || begin.Ceremony == "" {
			return time.Since(t0), status, fmt.Errorf("begin: answer %s", truncate(string(data), 200))
		}
		cred, err := j.m.key.assert(begin.Options, api.origin)
		if err != nil {
			return time.Since(t0), status, err
		}
		body, _ = json.Marshal(map[string]any{"mfa_token": j.token, "ceremony": begin.Ceremony, "credential": cred})
		status, data, err = post(client, api.base+"/login/webauthn/finish", body)
		lat := time.Since(t0)
		if err == nil {
			err = checkAnswer(data, true)
		}
		return lat, status, err
	}
	return 0, 0, fmt.Errorf("unknown step %q", step)
}

// timedPost is one timed request whose answer is checkAnswer's: a
// pending sign-in's, or with aal2 an aal2 session's.
func timedPost(client *http.Client, url string, body []byte, aal2 bool) (time.Duration, int, error) {
	t0 := time.Now()
	status, data, err := post(client, url, body)
	lat := time.Since(t0)
	if err == nil {
		err = checkAnswer(data, aal2)
	}
	return lat, status, err
}

// post sends a JSON body; any status but 200 is an error that quotes the
// answer. A transport error has status 0.
func post(client *http.Client, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("transport: %w", err)
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("transport: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, data, fmt.Errorf("status %d %s", res.StatusCode, truncate(string(bytes.TrimSpace(data)), 200))
	}
	return res.StatusCode, data, nil
}

// checkAnswer wants a session token: aal2 after a second factor, no second
// step asked for after a password alone (the password members have none).
func checkAnswer(data []byte, aal2 bool) error {
	var a stepAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return fmt.Errorf("answer %s: %w", truncate(string(data), 200), err)
	}
	switch {
	case a.SessionToken == "":
		return errors.New("answer without session_token: " + truncate(string(data), 200))
	case aal2 && a.AAL != "aal2":
		return fmt.Errorf("answer with aal %q, want aal2", a.AAL)
	case !aal2 && a.MFARequired:
		return errors.New("a second step was asked for")
	}
	return nil
}
