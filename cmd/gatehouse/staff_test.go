package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

var staffLinkRE = regexp.MustCompile(`^(https?://[^/]+)/support/enroll/([A-Za-z0-9_-]{43})\n$`)

// A staff member is created by the CLI, enrolls with the printed link
// through the support API of a running server, and signs in at aal2.
func TestStaffCreateEnrollAndSignIn(t *testing.T) {
	t.Parallel()
	h := newHome(t).with("GATEHOUSE_DEV", "1", "GATEHOUSE_BASE_URL", "https://gatehouse.example.com")
	out := h.ok("staff password 1\n", "staff", "create", "--email", "sam@gatehouse.test", "--password-stdin")
	m := staffLinkRE.FindStringSubmatch(out)
	if m == nil || m[1] != "https://gatehouse.example.com" {
		t.Fatalf("staff create printed %q, want one line with the enrollment link", out)
	}
	first := m[2]
	h.fails("already staff", "staff password 1\n", "staff", "create", "--email", "SAM@gatehouse.test", "--password-stdin")
	h.fails("not a valid email address", "staff password 1\n", "staff", "create", "--email", "sam", "--password-stdin")
	h.fails("--password-stdin is required", "", "staff", "create", "--email", "ann@gatehouse.test")
	h.fails("password", "short\n", "staff", "create", "--email", "ann@gatehouse.test", "--password-stdin")
	h.fails(`no staff member "nobody@gatehouse.test"`, "", "staff", "enroll-link", "--email", "nobody@gatehouse.test")

	// A new link voids the first.
	out = h.ok("", "staff", "enroll-link", "--email", "sam@gatehouse.test")
	m = staffLinkRE.FindStringSubmatch(out)
	if m == nil || m[2] == first {
		t.Fatalf("staff enroll-link printed %q", out)
	}
	token := m[2]
	if ws, ok := h.workspace("_support"); ok {
		t.Errorf("the platform workspace is listed as workspace %v", ws)
	}
	if out := h.ok("", "--help"); !strings.Contains(out, "gatehouse staff create --email EMAIL") {
		t.Errorf("usage lacks staff create: %q", out)
	}

	s := h.with("GATEHOUSE_BASE_URL", "").serve()
	if status, body := s.doJSON(http.MethodPost, "/support/api/v1/enroll/totp/setup", "", map[string]string{"enrollment_token": first}); status != http.StatusUnauthorized {
		t.Errorf("the voided link = %d %v", status, body)
	}
	status, body := s.doJSON(http.MethodPost, "/support/api/v1/login", "", map[string]string{"email": "sam@gatehouse.test", "password": "staff password 1"})
	if status != http.StatusForbidden || body["error"] != "mfa_enrollment_required" {
		t.Errorf("sign-in before enrolling = %d %v", status, body)
	}
	status, body = s.doJSON(http.MethodPost, "/support/api/v1/enroll/totp/setup", "", map[string]string{"enrollment_token": token})
	secret, _ := body["secret"].(string)
	if status != http.StatusOK || secret == "" {
		t.Fatalf("enroll setup = %d %v", status, body)
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	status, body = s.doJSON(http.MethodPost, "/support/api/v1/enroll/totp/verify", "", map[string]string{"enrollment_token": token, "code": code})
	codes, _ := body["recovery_codes"].([]any)
	if status != http.StatusOK || body["enabled"] != true || len(codes) != 10 {
		t.Fatalf("enroll verify = %d %v", status, body)
	}
	status, body = s.doJSON(http.MethodPost, "/support/api/v1/login", "", map[string]string{"email": "sam@gatehouse.test", "password": "staff password 1"})
	mfaToken, _ := body["mfa_token"].(string)
	if status != http.StatusOK || mfaToken == "" {
		t.Fatalf("staff sign-in = %d %v", status, body)
	}
	// The app's code of this step is spent by the enrollment: a recovery
	// code passes the challenge without waiting for the next step.
	status, body = s.doJSON(http.MethodPost, "/support/api/v1/login/mfa", "", map[string]string{"mfa_token": mfaToken, "recovery_code": codes[0].(string)})
	if status != http.StatusOK || body["aal"] != "aal2" {
		t.Fatalf("staff challenge = %d %v", status, body)
	}
}
