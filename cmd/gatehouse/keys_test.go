package main

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/db"
)

// enrollTOTP stores a confirmed TOTP credential for the workspace's first
// member, encrypted under kr's current key, as the server would.
func enrollTOTP(t *testing.T, h *home, kr *keys.Keyring, secret string) db.TOTPCredential {
	t.Helper()
	ctx := context.Background()
	store := h.store()
	ws, _ := h.workspace("acme")
	u := h.members("acme")[0]
	seal := func(id int64) (string, []byte) { return kr.Encrypt([]byte(secret), app.TOTPAAD(id, u.ID)) }
	cred, err := store.StartTOTPEnrollment(ctx, ws.ID, u.ID, seal, time.Now().Add(time.Hour), db.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ConfirmTOTPEnrollment(ctx, ws.ID, u.ID, cred.ID, 1, nil, db.Meta{}, db.OutboxMessage{}); err != nil {
		t.Fatal(err)
	}
	return cred
}

func storedTOTP(t *testing.T, h *home, id int64) db.TOTPCredential {
	t.Helper()
	all, err := h.store().AllTOTPSecrets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("credential %d gone", id)
	return db.TOTPCredential{}
}

func TestKeysRotateKeyFile(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("secret pass 1\n", "user", "create", "--workspace", "acme", "--email", "a@acme.test", "--role", "owner", "--password-stdin")
	kr1, err := keys.Load("", h.data)
	if err != nil {
		t.Fatal(err)
	}
	cred := enrollTOTP(t, h, kr1, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")

	out := h.ok("", "keys", "rotate")
	if !regexp.MustCompile(`^current key [0-9a-f]{8}; re-encrypted 1 secrets; 2 keys kept\n$`).MatchString(out) {
		t.Fatalf("keys rotate printed %q", out)
	}
	path := filepath.Join(h.data, keys.FileName)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file after rotation: %v, %v", st, err)
	}
	kr2, err := keys.Load("", h.data)
	if err != nil {
		t.Fatal(err)
	}
	if kr2.CurrentID() == kr1.CurrentID() || len(kr2.IDs()) != 2 {
		t.Fatalf("keyring after rotation: current %s (was %s), %d keys", kr2.CurrentID(), kr1.CurrentID(), len(kr2.IDs()))
	}
	got := storedTOTP(t, h, cred.ID)
	if got.KeyID != kr2.CurrentID() {
		t.Fatalf("secret still under key %s, want %s", got.KeyID, kr2.CurrentID())
	}
	pt, err := kr2.Decrypt(got.KeyID, got.Secret, app.TOTPAAD(cred.ID, cred.UserID))
	if err != nil || string(pt) != "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" {
		t.Fatalf("decrypt after rotation = %q, %v", pt, err)
	}
	// Hashes made under the old key still verify with the new keyring.
	old := kr1.HashToken("recovery:1:1", "abcd-efgh-jkmn-pqrs")
	if !kr2.VerifyHash("recovery:1:1", "abcd-efgh-jkmn-pqrs", old) {
		t.Fatal("a hash made under the old key no longer verifies")
	}
	// Rotating again moves everything to a third key.
	h.ok("", "keys", "rotate")
	kr3, _ := keys.Load("", h.data)
	if len(kr3.IDs()) != 3 || storedTOTP(t, h, cred.ID).KeyID != kr3.CurrentID() {
		t.Fatal("second rotation did not move the secret to the newest key")
	}
}

func TestKeysRotateEnvironment(t *testing.T) {
	t.Parallel()
	a, b := keys.NewMasterKey(), keys.NewMasterKey()
	enc := base64.StdEncoding.EncodeToString
	h := newHome(t).with("GATEHOUSE_MASTER_KEY", enc(a))
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	h.ok("secret pass 1\n", "user", "create", "--workspace", "acme", "--email", "a@acme.test", "--role", "owner", "--password-stdin")
	cred := enrollTOTP(t, h, keys.New(a), "JBSWY3DPEHPK3PXP")
	// With one key there is nothing to move.
	if out := h.ok("", "keys", "rotate"); !strings.Contains(out, "re-encrypted 0 secrets") {
		t.Fatalf("rotate with one key: %q", out)
	}
	// The operator appends the new key; rotate re-encrypts under it.
	h2 := h.with("GATEHOUSE_MASTER_KEY", enc(a)+","+enc(b))
	if out := h2.ok("", "keys", "rotate"); !strings.Contains(out, "re-encrypted 1 secrets") {
		t.Fatalf("rotate to the appended key: %q", out)
	}
	if got := storedTOTP(t, h2, cred.ID); got.KeyID != keys.New(b).CurrentID() {
		t.Fatalf("secret under %s, want the new key %s", got.KeyID, keys.New(b).CurrentID())
	}
	if _, err := os.Stat(filepath.Join(h.data, keys.FileName)); err == nil {
		t.Fatal("a key file was written although the key comes from the environment")
	}
	// Dropping the key a secret needs is caught, not silently broken.
	h.with("GATEHOUSE_MASTER_KEY", enc(keys.NewMasterKey())).fails("keys rotate: re-encrypt totp secret", "", "keys", "rotate")
}

func TestWorkspacePasskeys(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	h.ok("", "workspace", "create", "--slug", "acme", "--name", "Acme")
	if out := h.ok("", "workspace", "passkeys", "--slug", "acme"); out != "acme: passkeys satisfy MFA: true; device-bound keys only: false\n" {
		t.Fatalf("defaults: %q", out)
	}
	if out := h.ok("", "workspace", "passkeys", "--slug", "acme", "--device-bound-only", "true", "--satisfy-mfa", "false"); out != "acme: passkeys satisfy MFA: false; device-bound keys only: true\n" {
		t.Fatalf("after change: %q", out)
	}
	ws, _ := h.workspace("acme")
	p, err := h.store().PasskeySettings(context.Background(), ws.ID)
	if err != nil || p.SatisfyMFA || !p.DeviceBoundOnly {
		t.Fatalf("stored = %+v, %v", p, err)
	}
	h.fails("--satisfy-mfa must be true or false", "", "workspace", "passkeys", "--slug", "acme", "--satisfy-mfa", "yes")
	h.fails(`no workspace "nope"`, "", "workspace", "passkeys", "--slug", "nope")
	if p2, _ := h.store().PasskeySettings(context.Background(), ws.ID); p2 != p {
		t.Fatalf("a refused command changed the settings: %+v", p2)
	}
}
