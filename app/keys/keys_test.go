package keys_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/app/keys"
)

func master(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestEncryptDecrypt(t *testing.T) {
	kr := keys.New(master(1))
	secret := []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	aad := []byte("totp:1:2")
	id, ct := kr.Encrypt(secret, aad)
	if id != kr.CurrentID() || len(id) != 8 {
		t.Fatalf("key id %q, current %q", id, kr.CurrentID())
	}
	if bytes.Contains(ct, secret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	pt, err := kr.Decrypt(id, ct, aad)
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
	// Fresh nonce each time.
	if _, ct2 := kr.Encrypt(secret, aad); bytes.Equal(ct, ct2) {
		t.Fatal("two encryptions gave the same ciphertext")
	}
	// Wrong associated data: the row moved to another credential or user.
	for _, bad := range [][]byte{[]byte("totp:1:3"), []byte("totp:2:2"), nil, []byte("totp:1:2 ")} {
		if _, err := kr.Decrypt(id, ct, bad); !errors.Is(err, keys.ErrDecrypt) {
			t.Errorf("Decrypt with aad %q: err %v, want ErrDecrypt", bad, err)
		}
	}
	// Any flipped bit (nonce, body or tag) is refused.
	for i := range ct {
		tampered := bytes.Clone(ct)
		tampered[i] ^= 0x01
		if _, err := kr.Decrypt(id, tampered, aad); !errors.Is(err, keys.ErrDecrypt) {
			t.Fatalf("flipped byte %d: err %v, want ErrDecrypt", i, err)
		}
	}
	for _, short := range [][]byte{nil, ct[:5], ct[:27]} {
		if _, err := kr.Decrypt(id, short, aad); !errors.Is(err, keys.ErrDecrypt) {
			t.Errorf("short ciphertext (%d): err %v", len(short), err)
		}
	}
	// Unknown key id, and a key id of another keyring.
	if _, err := kr.Decrypt("deadbeef", ct, aad); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("unknown key id: err %v", err)
	}
	other := keys.New(master(2))
	if _, err := other.Decrypt(id, ct, aad); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("other keyring: err %v, want ErrUnknownKey", err)
	}
	// Same id but the ciphertext claims another key of the same keyring.
	both := keys.New(master(1), master(2))
	if _, err := both.Decrypt(both.CurrentID(), ct, aad); !errors.Is(err, keys.ErrDecrypt) {
		t.Errorf("ciphertext under key 1 read with key 2: err %v", err)
	}
}

func TestHashesAcrossKeys(t *testing.T) {
	a := keys.New(master(1))
	ab := keys.New(master(1), master(2))
	if ab.CurrentID() == a.CurrentID() || len(ab.IDs()) != 2 {
		t.Fatalf("ids %v, current %s", ab.IDs(), ab.CurrentID())
	}
	h := a.HashToken("recovery:1:2", "ab12-cd34-ef56-gh78")
	if !strings.HasPrefix(h, a.CurrentID()+":") || len(h) != 8+1+64 {
		t.Fatalf("hash %q, want keyid:hex", h)
	}
	if strings.Contains(h, "ab12") {
		t.Fatal("hash contains the token")
	}
	// Deterministic, purpose-bound, token-bound.
	if a.HashToken("recovery:1:2", "ab12-cd34-ef56-gh78") != h {
		t.Fatal("hash not deterministic")
	}
	if a.VerifyHash("recovery:1:3", "ab12-cd34-ef56-gh78", h) || a.VerifyHash("recovery:1:2", "ab12-cd34-ef56-gh79", h) {
		t.Fatal("hash verified for another purpose or token")
	}
	// Old hashes verify after a key is added; new ones use the new key.
	if !ab.VerifyHash("recovery:1:2", "ab12-cd34-ef56-gh78", h) {
		t.Fatal("hash under the old key no longer verifies")
	}
	h2 := ab.HashToken("recovery:1:2", "ab12-cd34-ef56-gh78")
	if h2 == h || !strings.HasPrefix(h2, ab.CurrentID()+":") {
		t.Fatalf("new hash %q not under the current key", h2)
	}
	if a.VerifyHash("recovery:1:2", "ab12-cd34-ef56-gh78", h2) {
		t.Fatal("keyring without the new key verified its hash")
	}
	// A stored hash relabelled with another key id does not verify.
	_, hexPart, _ := strings.Cut(h, ":")
	if ab.VerifyHash("recovery:1:2", "ab12-cd34-ef56-gh78", ab.CurrentID()+":"+hexPart) {
		t.Fatal("relabelled hash verified")
	}
	for _, junk := range []string{"", ":", "nokey", "deadbeef:00", h + "00"} {
		if ab.VerifyHash("recovery:1:2", "ab12-cd34-ef56-gh78", junk) {
			t.Errorf("junk %q verified", junk)
		}
	}
	// TokenHashes: current first, then every other key.
	hs := ab.TokenHashes("recovery:1:2", "ab12-cd34-ef56-gh78")
	if len(hs) != 2 || hs[0] != h2 || hs[1] != h {
		t.Fatalf("TokenHashes = %v, want [%s %s]", hs, h2, h)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	kr, err := keys.Load("", dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, keys.FileName)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, err %v; want 0600", st.Mode().Perm(), err)
	}
	again, err := keys.Load("", dir)
	if err != nil || again.CurrentID() != kr.CurrentID() {
		t.Fatalf("reload: %v, id %s vs %s", err, again.CurrentID(), kr.CurrentID())
	}
	if err := keys.AddToFile(path, master(9)); err != nil {
		t.Fatal(err)
	}
	rotated, err := keys.Load("", dir)
	if err != nil || rotated.CurrentID() != keys.New(master(9)).CurrentID() || len(rotated.IDs()) != 2 {
		t.Fatalf("after AddToFile: %v, ids %v", err, rotated.IDs())
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("rotated key file mode %v", st.Mode().Perm())
	}
	os.Chmod(path, 0o644)
	if _, err := keys.Load("", dir); err == nil {
		t.Fatal("a key file readable by others was accepted")
	}
	env := base64.StdEncoding.EncodeToString(master(1)) + "," + base64.StdEncoding.EncodeToString(master(2))
	fromEnv, err := keys.Load(env, t.TempDir())
	if err != nil || fromEnv.CurrentID() != keys.New(master(2)).CurrentID() {
		t.Fatalf("env keys: %v", err)
	}
	for _, bad := range []string{"short", base64.StdEncoding.EncodeToString(make([]byte, 16)), ","} {
		if _, err := keys.Load(bad, t.TempDir()); err == nil {
			t.Errorf("Load(%q) accepted", bad)
		}
	}
}
