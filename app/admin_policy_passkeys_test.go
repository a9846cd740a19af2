package app_test

// The passkey rules on the security settings page and in the admin API are
// part of the policy change: saved in its transaction, audited with old
// and new values, and left alone by previews and dry runs.

import (
	"context"
	"net/http"
	"testing"

	"github.com/gatehouse/gatehouse/app/apptest"
	"github.com/gatehouse/gatehouse/db"
)

func passkeysOf(t *testing.T, env *apptest.Env, ws db.Workspace) db.PasskeySettings {
	t.Helper()
	k, err := env.Store.PasskeySettings(context.Background(), ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lastPolicyChange returns the old and new values of the newest policy
// event.
func lastPolicyChange(t *testing.T, env *apptest.Env, ws db.Workspace) (old, nw map[string]any) {
	t.Helper()
	evs, err := env.Store.AuditEvents(context.Background(), ws.ID, db.AuditFilter{Event: db.EventPolicyChanged, Limit: 1})
	if err != nil || len(evs) == 0 {
		t.Fatalf("no policy event: %v", err)
	}
	old, _ = evs[0].Details["old"].(map[string]any)
	nw, _ = evs[0].Details["new"].(map[string]any)
	return old, nw
}

func TestPolicyPasskeysPage(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	def := db.PasskeySettings{SatisfyMFA: true}
	f := requiredForm()
	f.Del("passkeys_satisfy_mfa")
	f.Set("device_bound_keys_only", "on")

	// Preview: nothing saved, nothing audited.
	if res := a.c.Get(settingsPath + "?" + f.Encode()); res.StatusCode != http.StatusOK {
		t.Fatalf("preview = %d", res.StatusCode)
	}
	if k := passkeysOf(t, env, a.acme); k != def || policyAudits(t, env, a.acme) != 0 {
		t.Fatalf("preview saved %+v", k)
	}

	// Save: one event, with the passkey rules' old and new values.
	if res := a.c.PostForm(settingsPath, f); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save = %d %s", res.StatusCode, res.Body)
	}
	want := db.PasskeySettings{SatisfyMFA: false, DeviceBoundOnly: true}
	if k := passkeysOf(t, env, a.acme); k != want {
		t.Fatalf("saved passkey rules %+v, want %+v", k, want)
	}
	if n := policyAudits(t, env, a.acme); n != 1 {
		t.Fatalf("%d policy events, want 1", n)
	}
	old, nw := lastPolicyChange(t, env, a.acme)
	if old["passkeys_satisfy_mfa"] != true || old["device_bound_keys_only"] != false || nw["passkeys_satisfy_mfa"] != false || nw["device_bound_keys_only"] != true {
		t.Fatalf("audit old %v new %v", old, nw)
	}

	// Only the passkey rules change: still a policy change, audited.
	f.Set("passkeys_satisfy_mfa", "on")
	if res := a.c.PostForm(settingsPath, f); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second save = %d", res.StatusCode)
	}
	if _, nw := lastPolicyChange(t, env, a.acme); nw["passkeys_satisfy_mfa"] != true || policyAudits(t, env, a.acme) != 2 {
		t.Fatalf("passkeys-only change: new %v, %d events", nw, policyAudits(t, env, a.acme))
	}
}

func TestPolicyPasskeysAPI(t *testing.T) {
	t.Parallel()
	a := aal2AdminSetup(t)
	env := a.env
	const path = "/t/acme/api/v1/admin/policy"
	def := db.PasskeySettings{SatisfyMFA: true}

	// Dry run: the answer shows the change, nothing is saved.
	res := a.c.API(http.MethodPut, path+"?dry_run=true", a.token, map[string]any{"passkeys_satisfy_mfa": false})
	if res.StatusCode != http.StatusOK || res.JSON()["passkeys_satisfy_mfa"] != false || res.JSON()["impact"] == nil {
		t.Fatalf("dry run = %d %s", res.StatusCode, res.Body)
	}
	if k := passkeysOf(t, env, a.acme); k != def || policyAudits(t, env, a.acme) != 0 {
		t.Fatalf("dry run saved %+v", k)
	}

	// Saved and audited.
	res = a.c.API(http.MethodPut, path, a.token, map[string]any{"passkeys_satisfy_mfa": false, "device_bound_keys_only": true})
	if res.StatusCode != http.StatusOK || res.JSON()["passkeys_satisfy_mfa"] != false || res.JSON()["device_bound_keys_only"] != true {
		t.Fatalf("PUT = %d %s", res.StatusCode, res.Body)
	}
	want := db.PasskeySettings{DeviceBoundOnly: true}
	if k := passkeysOf(t, env, a.acme); k != want {
		t.Fatalf("saved %+v, want %+v", k, want)
	}
	old, nw := lastPolicyChange(t, env, a.acme)
	if old["passkeys_satisfy_mfa"] != true || nw["passkeys_satisfy_mfa"] != false || nw["device_bound_keys_only"] != true || nw["policy"] != "optional" {
		t.Fatalf("audit old %v new %v", old, nw)
	}
	if res := a.c.API(http.MethodGet, path, a.token, nil); res.JSON()["passkeys_satisfy_mfa"] != false || res.JSON()["device_bound_keys_only"] != true {
		t.Fatalf("GET after PUT = %s", res.Body)
	}

	// Refused (enroll first): neither the policy nor the passkey rules move.
	res = a.c.API(http.MethodPut, path, a.token, map[string]any{"policy": "required", "methods": []string{"webauthn"}, "passkeys_satisfy_mfa": true})
	wantErr(t, "PUT enroll first", res, "enroll_first", http.StatusConflict)
	if k := passkeysOf(t, env, a.acme); k != want || policyOf(t, env, a.acme).Mode != db.PolicyOptional || policyAudits(t, env, a.acme) != 1 {
		t.Fatalf("a refused change saved %+v", k)
	}
}
