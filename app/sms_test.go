package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/app/sms/smstest"
	"github.com/gatehouse/gatehouse/db"
)

// SMS tests (DESIGN "SMS", API "SMS"): the texts go to a fake Twilio
// (smstest) through the jobs' sender; the clock is moved, never slept.

const smsPhone = "+447400123456"

// smsStepUpStale is past the step-up window, within the idle timeout.
const smsStepUpStale = app.StepUpWindow + time.Minute

type smsEnv struct {
	env  *apptest.Env
	fake *smstest.Server
	jobs *app.Jobs
	ws   db.Workspace
}

func newSMSEnv(t *testing.T) *smsEnv {
	t.Helper()
	fake := smstest.NewServer(t)
	env := apptest.New(t, func(c *app.Config) { c.SMSURL = fake.URL() })
	s := &smsEnv{env: env, fake: fake, ws: env.Workspace("acme", "Acme")}
	allowSMS(t, env, s.ws)
	s.jobs = app.NewJobs(env.Store, slog.New(slog.DiscardHandler), env.Config)
	s.jobs.Keys = env.Keys
	if s.jobs.SMSProvider == nil {
		t.Fatal("no SMS provider")
	}
	return s
}

// allowSMS turns SMS on in ws for GB and US numbers.
func allowSMS(t *testing.T, env *apptest.Env, ws db.Workspace) {
	t.Helper()
	ctx := context.Background()
	p := db.DefaultPolicy()
	p.Methods = append(p.Methods, db.MethodSMS)
	if _, _, err := env.Store.SetPolicy(ctx, ws.ID, 0, db.PolicyChange{Policy: p}, db.Meta{}); err != nil {
		t.Fatal(err)
	}
	st, err := env.Store.SMSSettings(ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	st.Countries = []string{"GB", "US"}
	if _, err := env.Store.SetSMSSettings(ctx, ws.ID, 0, st, db.Meta{}); err != nil {
		t.Fatal(err)
	}
}

// deliver runs the SMS sender once and returns the texts it sent.
func (s *smsEnv) deliver(t *testing.T) int {
	t.Helper()
	sent, _, err := s.jobs.SendTexts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sent
}

var smsCodeRE = regexp.MustCompile(`^(\d{6}) is your`)

// lastCode returns the code of the last text to number.
func (s *smsEnv) lastCode(t *testing.T, number string) string {
	t.Helper()
	msgs := s.fake.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].To == number {
			m := smsCodeRE.FindStringSubmatch(msgs[i].Body)
			if m == nil {
				t.Fatalf("text %q has no code", msgs[i].Body)
			}
			return m[1]
		}
	}
	t.Fatalf("no text to %s", number)
	return ""
}

func (s *smsEnv) api(method, path, token string, body any) *apptest.Response {
	return s.env.Client().API(method, "/t/acme/api/v1"+path, token, body)
}

// enroll signs email in and verifies phone; it returns the aal2 session
// token and the recovery codes.
func (s *smsEnv) enroll(t *testing.T, email, phone string) (string, []any) {
	t.Helper()
	s.env.User(s.ws, email, db.RoleMember, pw)
	token := s.env.Client().APILogin("acme", email, pw)
	res := s.api(http.MethodPost, "/mfa/sms/setup", token, map[string]string{"phone": phone})
	if res.StatusCode != http.StatusOK || !strings.Contains(res.JSON()["phone"].(string), "•") {
		t.Fatalf("setup = %d %s", res.StatusCode, res.Body)
	}
	if strings.Contains(string(res.Body), phone[3:]) {
		t.Fatalf("setup shows the number: %s", res.Body)
	}
	s.deliver(t)
	res = s.api(http.MethodPost, "/mfa/sms/verify-setup", token, map[string]string{"code": s.lastCode(t, phone)})
	if res.StatusCode != http.StatusOK || res.JSON()["enabled"] != true {
		t.Fatalf("verify-setup = %d %s", res.StatusCode, res.Body)
	}
	codes, _ := res.JSON()["recovery_codes"].([]any)
	token, _ = res.JSON()["session_token"].(string)
	s.env.Clock.Advance(time.Minute)
	return token, codes
}

func (s *smsEnv) mfaToken(t *testing.T, email string) string {
	t.Helper()
	return mfaToken(t, s.env, "acme", email, pw)
}

func (s *smsEnv) send(token string) *apptest.Response {
	return s.api(http.MethodPost, "/login/sms/send", "", map[string]string{"mfa_token": token})
}

func (s *smsEnv) login(token, code string) *apptest.Response {
	return s.api(http.MethodPost, "/login/mfa", "", map[string]string{"mfa_token": token, "sms_code": code})
}

func TestSMSEnrollAndSignIn(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	_, codes := s.enroll(t, "alice@acme.test", smsPhone)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes for a first factor, want 10", len(codes))
	}
	tok := s.mfaToken(t, "alice@acme.test")
	res := s.send(tok)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("send = %d %s", res.StatusCode, res.Body)
	}
	if n := s.deliver(t); n != 1 {
		t.Fatalf("%d texts sent", n)
	}
	code := s.lastCode(t, smsPhone)
	res = s.login(tok, code)
	if res.StatusCode != http.StatusOK || res.JSON()["session_token"] == nil {
		t.Fatalf("login/mfa = %d %s", res.StatusCode, res.Body)
	}
	if !strings.Contains(string(res.Body), `"sms"`) {
		t.Errorf("amr without sms: %s", res.Body)
	}
	// Replayed: on the spent challenge, and on a new one.
	if res := s.login(tok, code); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("replay on the same token = %d %s", res.StatusCode, res.Body)
	}
	if res := s.login(s.mfaToken(t, "alice@acme.test"), code); res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_code" {
		t.Errorf("replay on a new challenge = %d %s", res.StatusCode, res.Body)
	}
}

func TestSMSCodeRace(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	s.enroll(t, "alice@acme.test", smsPhone)
	tok := s.mfaToken(t, "alice@acme.test")
	s.send(tok)
	s.deliver(t)
	code := s.lastCode(t, smsPhone)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Go(func() { statuses[i] = s.login(tok, code).StatusCode })
	}
	wg.Wait()
	ok := 0
	for _, st := range statuses {
		if st == http.StatusOK {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("statuses %v, want exactly one 200", statuses)
	}
}

func TestSMSSendCapsAndNoOracle(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	s.enroll(t, "alice@acme.test", smsPhone)
	sentBefore := len(s.fake.Messages())
	var tokens []string
	for range 10 {
		tokens = append(tokens, s.mfaToken(t, "alice@acme.test"))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	bodies := map[string]int{}
	for i := range 50 {
		wg.Go(func() {
			res := s.send(tokens[i%len(tokens)])
			mu.Lock()
			defer mu.Unlock()
			bodies[fmt.Sprintf("%d %s", res.StatusCode, res.Body)]++
		})
	}
	wg.Wait()
	s.deliver(t)
	// Per number: 3 texts in 15 minutes, the setup's included.
	if n := len(s.fake.Messages()) - sentBefore; n != db.SMSNumberWindowLimit-1 {
		t.Errorf("%d texts sent for 50 requests, want %d", n, db.SMSNumberWindowLimit-1)
	}
	if len(bodies) != 1 {
		t.Errorf("answers differ: %v", bodies)
	}
	for b := range bodies {
		if !strings.HasPrefix(b, "202 ") {
			t.Errorf("answer %q", b)
		}
	}
	want := ""
	for b := range bodies {
		want = b
	}
	// A member without a phone, and a provider that is down: the same.
	s.env.User(s.ws, "bob@acme.test", db.RoleMember, pw)
	enrollAPI(t, s.env, "acme", "bob@acme.test", pw) // an authenticator app, no phone
	s.env.Clock.Advance(time.Minute)
	if res := s.send(s.mfaToken(t, "bob@acme.test")); fmt.Sprintf("%d %s", res.StatusCode, res.Body) != want {
		t.Errorf("no phone: %d %s, want %s", res.StatusCode, res.Body, want)
	}
	s.env.Clock.Advance(16 * time.Minute)
	s.fake.SetDown(true)
	if res := s.send(s.mfaToken(t, "alice@acme.test")); fmt.Sprintf("%d %s", res.StatusCode, res.Body) != want {
		t.Errorf("provider down: %d %s, want %s", res.StatusCode, res.Body, want)
	}
}

func TestSMSNothingBeforePassword(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	s.enroll(t, "alice@acme.test", smsPhone)
	before := s.fake.Requests()
	res := s.env.Client().API(http.MethodPost, "/t/acme/api/v1/login", "", map[string]string{"email": "alice@acme.test", "password": "wrong password!"})
	if res.JSON()["mfa_token"] != nil {
		t.Fatalf("mfa_token for a wrong password: %s", res.Body)
	}
	for _, tok := range []string{"", "x", strings.Repeat("A", 43), s.mfaToken(t, "alice@acme.test") + "x"} {
		if res := s.send(tok); res.StatusCode != http.StatusUnauthorized || res.JSON()["error"] != "invalid_mfa_token" {
			t.Errorf("send with %q = %d %s", tok, res.StatusCode, res.Body)
		}
	}
	s.deliver(t)
	if n := s.fake.Requests() - before; n != 0 {
		t.Errorf("%d texts before the password", n)
	}
}

func TestSMSResendCooldown(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	s.enroll(t, "alice@acme.test", smsPhone)
	tok := s.mfaToken(t, "alice@acme.test")
	s.send(tok)
	s.deliver(t)
	first := s.lastCode(t, smsPhone)
	if res := s.send(tok); res.StatusCode != http.StatusAccepted {
		t.Fatalf("resend in the cooldown = %d", res.StatusCode)
	}
	if n := s.deliver(t); n != 0 {
		t.Fatalf("resend in the cooldown sent %d", n)
	}
	s.env.Clock.Advance(db.SMSResendCooldown + time.Second)
	s.send(tok)
	if n := s.deliver(t); n != 1 {
		t.Fatalf("resend after the cooldown sent %d", n)
	}
	second := s.lastCode(t, smsPhone)
	if first != second {
		if res := s.login(tok, first); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("voided code = %d %s", res.StatusCode, res.Body)
		}
	}
	if res := s.login(tok, second); res.StatusCode != http.StatusOK {
		t.Errorf("new code = %d %s", res.StatusCode, res.Body)
	}
}

func TestSMSWrongTriesKillTheCode(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	s.env.User(s.ws, "alice@acme.test", db.RoleMember, pw)
	token := s.env.Client().APILogin("acme", "alice@acme.test", pw)
	if res := s.api(http.MethodPost, "/mfa/sms/setup", token, map[string]string{"phone": smsPhone}); res.StatusCode != http.StatusOK {
		t.Fatalf("setup = %d %s", res.StatusCode, res.Body)
	}
	s.deliver(t)
	code := s.lastCode(t, smsPhone)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := range db.SMSCodeMaxFailures {
		if res := s.api(http.MethodPost, "/mfa/sms/verify-setup", token, map[string]string{"code": wrong}); res.StatusCode != http.StatusBadRequest || res.JSON()["error"] != "invalid_code" {
			t.Fatalf("wrong try %d = %d %s", i+1, res.StatusCode, res.Body)
		}
	}
	if res := s.api(http.MethodPost, "/mfa/sms/verify-setup", token, map[string]string{"code": code}); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("right code after 5 wrong = %d %s", res.StatusCode, res.Body)
	}
}

func TestSMSCrossWorkspace(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	s.enroll(t, "alice@acme.test", smsPhone)
	other := s.env.Workspace("globex", "Globex")
	allowSMS(t, s.env, other)
	s.env.User(other, "alice@acme.test", db.RoleMember, pw)
	// Alice of Globex has the same number.
	c := s.env.Client()
	gt := c.APILogin("globex", "alice@acme.test", pw)
	if res := c.API(http.MethodPost, "/t/globex/api/v1/mfa/sms/setup", gt, map[string]string{"phone": smsPhone}); res.StatusCode != http.StatusOK {
		t.Fatalf("globex setup = %d %s", res.StatusCode, res.Body)
	}
	s.deliver(t)
	if res := c.API(http.MethodPost, "/t/globex/api/v1/mfa/sms/verify-setup", gt, map[string]string{"code": s.lastCode(t, smsPhone)}); res.StatusCode != http.StatusOK {
		t.Fatalf("globex verify = %d %s", res.StatusCode, res.Body)
	}
	s.env.Clock.Advance(16 * time.Minute)
	tok := s.mfaToken(t, "alice@acme.test")
	s.send(tok)
	s.deliver(t)
	code := s.lastCode(t, smsPhone)
	gtok := mfaToken(t, s.env, "globex", "alice@acme.test", pw)
	res := s.env.Client().API(http.MethodPost, "/t/globex/api/v1/login/mfa", "", map[string]string{"mfa_token": gtok, "sms_code": code})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("acme's code at globex = %d %s", res.StatusCode, res.Body)
	}
	// Acme's mfa_token at Globex.
	if res := s.env.Client().API(http.MethodPost, "/t/globex/api/v1/login/sms/send", "", map[string]string{"mfa_token": tok}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("acme's mfa_token at globex = %d %s", res.StatusCode, res.Body)
	}
}

func TestSMSSetupBadInput(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	s.env.User(s.ws, "alice@acme.test", db.RoleMember, pw)
	token := s.env.Client().APILogin("acme", "alice@acme.test", pw)
	for _, tc := range []struct {
		body   map[string]string
		status int
		code   string
	}{
		{map[string]string{"phone": strings.Repeat("1", 200)}, http.StatusBadRequest, "invalid_phone"},
		{map[string]string{"phone": "+44 7400\x00123456"}, http.StatusBadRequest, "invalid_phone"},
		{map[string]string{"phone": "+44 7400\n123456"}, http.StatusBadRequest, "invalid_phone"},
		{map[string]string{"phone": "hello"}, http.StatusBadRequest, "invalid_phone"},
		{map[string]string{"phone": "+442079460000"}, http.StatusBadRequest, "invalid_phone"}, // a landline
		{map[string]string{"phone": "+33612345678"}, http.StatusForbidden, "sms_not_allowed"},
		{map[string]string{"phone": "07400 123456", "country": "FR"}, http.StatusBadRequest, "invalid_phone"},
	} {
		res := s.api(http.MethodPost, "/mfa/sms/setup", token, tc.body)
		if res.StatusCode != tc.status || res.JSON()["error"] != tc.code {
			t.Errorf("setup %q = %d %s, want %d %s", tc.body, res.StatusCode, res.Body, tc.status, tc.code)
		}
	}
	if res := s.api(http.MethodPost, "/mfa/sms/setup", token, map[string]string{"phone": "07400 123456", "country": "GB"}); res.StatusCode != http.StatusOK {
		t.Errorf("national format with its country = %d %s", res.StatusCode, res.Body)
	}
	if s.fake.Requests() != 0 {
		t.Errorf("texts sent by the refused setups")
	}
}

func TestSMSRemove(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	token, _ := s.enroll(t, "alice@acme.test", smsPhone)
	s.env.Clock.Advance(smsStepUpStale) // the step-up is stale
	if res := s.api(http.MethodDelete, "/mfa/sms", token, nil); res.StatusCode != http.StatusForbidden || res.JSON()["error"] != "step_up_required" {
		t.Fatalf("stale delete = %d %s", res.StatusCode, res.Body)
	}
	res := s.api(http.MethodPost, "/step-up/sms/send", token, nil)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("step-up send = %d %s", res.StatusCode, res.Body)
	}
	s.deliver(t)
	res = s.api(http.MethodPost, "/step-up", token, map[string]string{"sms_code": s.lastCode(t, smsPhone)})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("step-up = %d %s", res.StatusCode, res.Body)
	}
	token, _ = res.JSON()["session_token"].(string)
	if res := s.api(http.MethodDelete, "/mfa/sms", token, nil); res.StatusCode != http.StatusNoContent {
		t.Fatalf("delete = %d %s", res.StatusCode, res.Body)
	}
	if _, err := s.env.Store.SMSPhone(context.Background(), s.ws.ID, 0); err == nil {
		t.Fatal("phone left")
	}
}

// enqueueText queues a sign-in text for a fresh member through the
// enrollment, then sends nothing: the sender tests drive the provider.
func (s *smsEnv) queueSetupText(t *testing.T, email, phone string) {
	t.Helper()
	s.env.User(s.ws, email, db.RoleMember, pw)
	token := s.env.Client().APILogin("acme", email, pw)
	if res := s.api(http.MethodPost, "/mfa/sms/setup", token, map[string]string{"phone": phone}); res.StatusCode != http.StatusOK {
		t.Fatalf("setup = %d %s", res.StatusCode, res.Body)
	}
}

func TestSMSSenderRetries(t *testing.T) {
	t.Parallel()
	t.Run("ServerError", func(t *testing.T) {
		t.Parallel()
		s := newSMSEnv(t)
		s.queueSetupText(t, "alice@acme.test", smsPhone)
		s.fake.FailNext(1, smstest.Failure{Status: http.StatusInternalServerError, Message: "boom"})
		if n := s.deliver(t); n != 0 {
			t.Fatalf("sent %d on a 500", n)
		}
		if n := s.deliver(t); n != 0 {
			t.Fatalf("retried before the backoff")
		}
		s.env.Clock.Advance(3 * time.Second)
		if n := s.deliver(t); n != 1 {
			t.Fatalf("sent %d after the backoff", n)
		}
		s.env.Clock.Advance(time.Minute)
		s.deliver(t)
		if n := len(s.fake.Messages()); n != 1 || s.fake.Requests() != 2 {
			t.Fatalf("%d texts in %d requests, want 1 in 2", n, s.fake.Requests())
		}
	})
	t.Run("Permanent", func(t *testing.T) {
		t.Parallel()
		s := newSMSEnv(t)
		s.queueSetupText(t, "alice@acme.test", smsPhone)
		s.fake.FailNext(1, smstest.Failure{Status: http.StatusBadRequest, Code: 21211, Message: "invalid To"})
		_, failed, err := s.jobs.SendTexts(context.Background())
		if err != nil || failed != 1 {
			t.Fatalf("failed %d, %v", failed, err)
		}
		s.env.Clock.Advance(time.Minute)
		s.deliver(t)
		if s.fake.Requests() != 1 || len(s.fake.Messages()) != 0 {
			t.Fatalf("%d requests, %d texts: retried a permanent refusal", s.fake.Requests(), len(s.fake.Messages()))
		}
	})
	t.Run("RetryAfter", func(t *testing.T) {
		t.Parallel()
		s := newSMSEnv(t)
		s.queueSetupText(t, "alice@acme.test", smsPhone)
		s.fake.FailNext(1, smstest.Failure{Status: http.StatusTooManyRequests, Code: 20429, Message: "slow down", RetryAfter: "120"})
		s.deliver(t)
		s.env.Clock.Advance(time.Minute)
		if n := s.deliver(t); n != 0 || s.fake.Requests() != 1 {
			t.Fatalf("sent before Retry-After")
		}
		s.env.Clock.Advance(61 * time.Second)
		if n := s.deliver(t); n != 1 {
			t.Fatalf("sent %d after Retry-After", n)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		s := newSMSEnv(t)
		s.queueSetupText(t, "alice@acme.test", smsPhone)
		s.env.Clock.Advance(db.SMSCodeTTL + time.Second)
		if n := s.deliver(t); n != 0 || s.fake.Requests() != 0 {
			t.Fatalf("an expired code was texted")
		}
	})
}

func gauge(t *testing.T, env *apptest.Env, name string) float64 {
	t.Helper()
	mfs, err := env.Server.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var m *dto.Metric = mf.GetMetric()[0]
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestSMSBreaker(t *testing.T) {
	t.Parallel()
	s := newSMSEnv(t)
	ctx := context.Background()
	// A spike: 50 setup texts to new numbers, from many members and IPs.
	for i := range 50 {
		u := s.env.User(s.ws, fmt.Sprintf("m%d@acme.test", i), db.RoleMember, pw)
		b := db.SessionBinding{SessionID: fmt.Sprintf("session-%d", i)}
		number := fmt.Sprintf("+4474001234%02d", i)
		if _, err := s.env.Store.StartSMSEnrollment(ctx, s.ws.ID, u.ID, b, number, "GB", "+44 •••• ••••"+number[len(number)-2:], db.Meta{}); err != nil {
			t.Fatal(err)
		}
		res, err := s.env.Store.RequestSMSCode(ctx, db.SMSCodeRequest{WorkspaceID: s.ws.ID, UserID: u.ID, Purpose: db.SMSPurposeSetup, Binding: b,
			CodeHash: "h", Seal: func(int64) (string, []byte) { return "k", []byte("x") }, PriceMicros: 1,
			NumberKey: func(e string) string { return fmt.Sprintf("key-%x", e) }, IPKey: fmt.Sprintf("ip-%d", i)})
		if err != nil || res.Result != db.ResultSent {
			t.Fatalf("spike text %d: %v %v", i, res.Result, err)
		}
	}
	s.env.Clock.Advance(10 * time.Second)
	s.env.User(s.ws, "alice@acme.test", db.RoleMember, pw)
	token := s.env.Client().APILogin("acme", "alice@acme.test", pw)
	res := s.api(http.MethodPost, "/mfa/sms/setup", token, map[string]string{"phone": smsPhone})
	if res.StatusCode != http.StatusServiceUnavailable || res.JSON()["error"] != "sms_unavailable" {
		t.Fatalf("setup in a spike = %d %s", res.StatusCode, res.Body)
	}
	if g := gauge(t, s.env, "gatehouse_sms_breaker_open"); g != 1 {
		t.Errorf("breaker gauge %v, want 1", g)
	}
	s.env.Clock.Advance(16 * time.Minute)
	token = s.env.Client().APILogin("acme", "alice@acme.test", pw)
	if res := s.api(http.MethodPost, "/mfa/sms/setup", token, map[string]string{"phone": smsPhone}); res.StatusCode != http.StatusOK {
		t.Fatalf("setup after the spike = %d %s", res.StatusCode, res.Body)
	}
	if g := gauge(t, s.env, "gatehouse_sms_breaker_open"); g != 0 {
		t.Errorf("breaker gauge %v, want 0", g)
	}
	logs := s.env.Logs()
	if strings.Count(logs, "sms circuit breaker open") != 1 || strings.Count(logs, "sms circuit breaker closed") != 1 {
		t.Errorf("breaker logs:\n%s", logs)
	}
}
