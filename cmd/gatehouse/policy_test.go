package main

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestWorkspacePolicy(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("pw-for-the-cli-test\n", "user", "create", "--workspace", "acme", "--email", "ann@acme.test", "--role", "owner", "--password-stdin")
	h.ok("pw-for-the-cli-test\n", "user", "create", "--workspace", "acme", "--email", "bob@acme.test", "--role", "member", "--password-stdin")
	ws, _ := h.workspace("acme")
	policy := func() (string, int, []int, []string) {
		p, err := h.store().Policy(context.Background(), ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p.Mode, p.GraceDays, p.ReminderDays, p.Methods
	}

	// Dry run: the impact is printed, nothing is saved.
	out := h.ok("", "workspace", "policy", "--slug", "acme", "--policy", "required", "--grace-days", "14", "--dry-run")
	if !strings.HasPrefix(out, "dry run, nothing saved: acme: policy required; grace 14 days; deadline ") || !strings.Contains(out, "2 of 2 covered members not compliant") {
		t.Errorf("dry run stdout %q", out)
	}
	if mode, grace, _, _ := policy(); mode != "optional" || grace != 30 {
		t.Errorf("dry run saved: %s, %d", mode, grace)
	}

	// The system needs no second factor to require one (no enroll-first).
	out = h.ok("", "workspace", "policy", "--slug", "acme", "--policy", "required", "--grace-days", "14", "--reminder-days", "5, 2", "--methods", "totp")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "acme: policy required; grace 14 days; deadline 20") {
		t.Errorf("stdout %q", out)
	}
	mode, grace, days, methods := policy()
	if mode != "required" || grace != 14 || !slices.Equal(days, []int{5, 2}) || !slices.Equal(methods, []string{"totp"}) {
		t.Errorf("saved %s %d %v %v", mode, grace, days, methods)
	}
	// Flags not given keep their values.
	h.ok("", "workspace", "policy", "--slug", "acme", "--policy", "required_for_admins")
	if mode, grace, days, methods := policy(); mode != "required_for_admins" || grace != 14 || !slices.Equal(days, []int{5, 2}) || !slices.Equal(methods, []string{"totp"}) {
		t.Errorf("kept %s %d %v %v", mode, grace, days, methods)
	}

	h.fails(`no workspace "nope"`, "", "workspace", "policy", "--slug", "nope", "--policy", "off")
	h.fails("policy must be off, optional, required or required_for_admins", "", "workspace", "policy", "--slug", "acme", "--policy", "mandatory")
	h.fails("--policy is required", "", "workspace", "policy", "--slug", "acme")
	h.fails("grace period must be 0 to 365", "", "workspace", "policy", "--slug", "acme", "--policy", "required", "--grace-days", "400")
	h.fails("unknown method", "", "workspace", "policy", "--slug", "acme", "--policy", "required", "--methods", "email")
	// SMS is a restricted authenticator (SP 800-63B): never the only way.
	h.fails("SMS is allowed only beside an authenticator app or a passkey", "", "workspace", "policy", "--slug", "acme", "--policy", "required", "--methods", "sms")
	h.fails("not a whole number", "", "workspace", "policy", "--slug", "acme", "--policy", "required", "--reminder-days", "7,x")
	if mode, grace, _, _ := policy(); mode != "required_for_admins" || grace != 14 {
		t.Errorf("a refused change saved: %s %d", mode, grace)
	}
	if out := h.ok("", "--help"); !strings.Contains(out, "gatehouse workspace policy --slug SLUG --policy off|optional|required|required_for_admins") {
		t.Errorf("usage lacks workspace policy: %q", out)
	}
}
