package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/apptest"
)

// needTools returns the paths of the named programs. A missing one skips
// the test on a developer machine and fails it under CI (CI set), where
// .ci/run installs them.
func needTools(t *testing.T, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	var missing []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %v missing: install oathtool and zbar-tools (see .ci/run)", missing)
		}
		t.Skipf("skipped: %v not installed (apt-get install oathtool zbar-tools; under CI this is a failure)", missing)
	}
	return paths
}

// runTool runs a program and returns its standard output. Standard error
// is kept apart: zbarimg writes its statistics there, and they must never
// be mistaken for the decoded data.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstderr: %s", name, args, err, stderr.String())
	}
	return stdout.String()
}

// oathtoolCode computes the TOTP code of a base32 secret at instant at with
// oathtool (SHA-1, 6 digits, 30 s: its defaults, spelled out anyway).
func oathtoolCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	out := strings.TrimSpace(runTool(t, "oathtool", "--totp=SHA1", "--digits=6", "--time-step-size=30s",
		"-b", secret, "-N", fmt.Sprintf("@%d", at.Unix())))
	if !regexp.MustCompile(`^[0-9]{6}$`).MatchString(out) {
		t.Fatalf("oathtool printed %q, want 6 digits", out)
	}
	return out
}

// TestTOTPWithIndependentClients enrolls and signs in through the real JSON
// API with programs that share no code with Gatehouse: zbarimg reads the QR
// code the API returns, and oathtool makes the codes from the secret found
// in it, as an authenticator app on a phone would.
//
// The app's clock is a test clock that starts at the current second;
// oathtool is given that same instant (-N @unix), so that the test does not
// depend on where a 30 s boundary falls.
func TestTOTPWithIndependentClients(t *testing.T) {
	needTools(t, "oathtool", "zbarimg")
	env := apptest.New(t)
	ws := env.Workspace("acme", "Acme Corp")
	const email = "alice@acme.test"
	env.User(ws, email, "member", password)
	c := env.Client()
	api := "/t/acme/api/v1"

	tok := c.APILogin("acme", email, password)
	res := c.API(http.MethodPost, api+"/mfa/totp/setup", tok, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /mfa/totp/setup = %d %s", res.StatusCode, res.Body)
	}
	setup := res.JSON()
	uri, _ := setup["otpauth_uri"].(string)
	qr, _ := setup["qr_code"].(string)
	apiSecret, _ := setup["secret"].(string)
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(qr, prefix) {
		t.Fatalf("qr_code = %.40q…, want a %s URL", qr, prefix)
	}
	pngBytes, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(qr, prefix))
	if err != nil {
		t.Fatalf("qr_code is not base64: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatalf("qr_code is not a PNG: %v", err)
	}
	t.Logf("QR code: %d bytes, %v", len(pngBytes), img.Bounds().Size())
	qrFile := filepath.Join(t.TempDir(), "totp-qr.png")
	if err := os.WriteFile(qrFile, pngBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	// zbarimg: --raw prints only the data, -q drops the statistics; read
	// stdout only.
	scanned := strings.TrimRight(runTool(t, "zbarimg", "--raw", "-q", qrFile), "\r\n")
	if scanned != uri {
		t.Fatalf("the QR code says\n  %q\nbut otpauth_uri is\n  %q", scanned, uri)
	}
	u, err := url.Parse(scanned)
	if err != nil {
		t.Fatalf("QR URI %q: %v", scanned, err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Errorf("QR URI %q: want otpauth://totp/…", scanned)
	}
	label, err := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/"))
	if err != nil {
		t.Fatalf("label of %q: %v", scanned, err)
	}
	if want := "Acme Corp:" + email; label != want {
		t.Errorf("QR label = %q, want %q (issuer:account)", label, want)
	}
	q := u.Query()
	for k, want := range map[string]string{"issuer": "Acme Corp", "algorithm": "SHA1", "digits": "6", "period": "30"} {
		if got := q.Get(k); got != want {
			t.Errorf("QR URI %s = %q, want %q", k, got, want)
		}
	}
	secret := q.Get("secret")
	if secret != apiSecret {
		t.Errorf("secret in the QR code %q differs from the API's %q", secret, apiSecret)
	}
	if n := len(secret) * 5 / 8; n < 20 {
		t.Errorf("secret %q holds %d bytes, want at least 20 (160 bits)", secret, n)
	}

	// The phone app's first code confirms the enrollment.
	enrollAt := env.Clock.Now()
	code := oathtoolCode(t, secret, enrollAt)
	res = c.API(http.MethodPost, api+"/mfa/totp/verify-setup", tok, map[string]string{"code": code})
	if res.StatusCode != http.StatusOK || res.JSON()["enabled"] != true {
		t.Fatalf("verify-setup with oathtool's code %s = %d %s", code, res.StatusCode, res.Body)
	}
	codes, _ := res.JSON()["recovery_codes"].([]any)
	if len(codes) != 10 {
		t.Fatalf("verify-setup returned %d recovery codes, want 10: %s", len(codes), res.Body)
	}
	recoveryFormat := regexp.MustCompile(`^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$`)
	for _, rc := range codes {
		if s, _ := rc.(string); !recoveryFormat.MatchString(s) {
			t.Errorf("recovery code %q is not xxxx-xxxx-xxxx-xxxx", rc)
		}
	}
	// The session is aal2 now, under a new token.
	if tok, _ = res.JSON()["session_token"].(string); tok == "" {
		t.Fatalf("verify-setup returned no session_token: %s", res.Body)
	}
	res = c.API(http.MethodGet, api+"/mfa", tok, nil)
	if res.StatusCode != http.StatusOK || res.JSON()["recovery_codes_remaining"] != float64(10) {
		t.Errorf("GET /mfa = %d %s, want 10 recovery codes left", res.StatusCode, res.Body)
	}

	// Sign in again: password, then a code from the app.
	d := env.Client()
	res = d.API(http.MethodPost, api+"/login", "", map[string]string{"email": email, "password": password})
	mfaToken, _ := res.JSON()["mfa_token"].(string)
	if res.StatusCode != http.StatusOK || res.JSON()["mfa_required"] != true || mfaToken == "" {
		t.Fatalf("POST /login = %d %s, want mfa_required with an mfa_token", res.StatusCode, res.Body)
	}
	if _, ok := res.JSON()["session_token"]; ok {
		t.Errorf("POST /login gave a session_token before the second factor: %s", res.Body)
	}
	if methods, _ := res.JSON()["methods"].([]any); !containsAny(methods, "totp") {
		t.Errorf("POST /login methods = %v, want totp among them", methods)
	}
	// The enrollment code was consumed: the same code at the same time
	// does not sign in.
	res = d.API(http.MethodPost, api+"/login/mfa", "", map[string]string{"mfa_token": mfaToken, "code": code})
	if res.StatusCode == http.StatusOK {
		t.Fatalf("the code that confirmed the enrollment signed in again: %s", res.Body)
	}

	env.Clock.Advance(30 * time.Second)
	code2 := oathtoolCode(t, secret, env.Clock.Now())
	if code2 == code {
		t.Logf("the next step's code happens to equal the last one (%s)", code)
	}
	res = d.API(http.MethodPost, api+"/login/mfa", "", map[string]string{"mfa_token": mfaToken, "code": code2})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /login/mfa with oathtool's code = %d %s", res.StatusCode, res.Body)
	}
	session, _ := res.JSON()["session_token"].(string)
	if session == "" || res.JSON()["aal"] != "aal2" {
		t.Fatalf("POST /login/mfa = %s, want an aal2 session_token", res.Body)
	}
	if session == mfaToken {
		t.Errorf("the session token is the mfa_token: it must be renewed")
	}
	res = d.API(http.MethodGet, api+"/session", session, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /session = %d %s", res.StatusCode, res.Body)
	}
	if got := res.JSON()["aal"]; got != "aal2" {
		t.Errorf("session aal = %v, want aal2", got)
	}
	var amr []string
	list, _ := res.JSON()["amr"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		s, _ := m["method"].(string)
		amr = append(amr, s)
	}
	if strings.Join(amr, ",") != "password,totp" {
		t.Errorf("session amr = %v, want [password totp]; body %s", amr, res.Body)
	}
	if strings.Contains(env.Logs(), secret) {
		t.Errorf("the logs contain the TOTP secret")
	}
}

func containsAny(list []any, want string) bool {
	for _, v := range list {
		if s, _ := v.(string); s == want {
			return true
		}
	}
	return false
}
