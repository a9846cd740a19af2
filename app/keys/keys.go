// Package keys loads the master key and derives the keys Gatehouse uses from
// it. The master key never sits in the database, so a copy of the database
// alone yields no usable secret or token.
package keys

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/hkdf"
)

// Keyring holds the master key and its derived keys.
type Keyring struct {
	// ID names the master key (a fingerprint, not the key).
	ID      string
	master  []byte
	hashKey []byte
}

// FileName is the key file created in the data directory on first run.
const FileName = "master.key"

// Load returns the key from env (base64 of 32 bytes) if set, otherwise reads
// dataDir/master.key, creating it with mode 0600 when missing.
func Load(env, dataDir string) (*Keyring, error) {
	if env != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(env))
		if err != nil || len(k) != 32 {
			return nil, errors.New("GATEHOUSE_MASTER_KEY must be the base64 of 32 bytes")
		}
		return New(k), nil
	}
	path := filepath.Join(dataDir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	st, err := os.Stat(path)
	if err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key %s is readable by others (mode %o); chmod 600 it", path, st.Mode().Perm())
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("master key %s is not the base64 of 32 bytes", path)
	}
	return New(k), nil
}

func create(path string) (*Keyring, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create master key: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	// O_EXCL: two processes starting at once must not both write a key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return Load("", filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("create master key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("create master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("create master key: %w", err)
	}
	return New(k), nil
}

// New builds a keyring from a 32-byte master key.
func New(master []byte) *Keyring {
	id := sha256.Sum256(append([]byte("gatehouse key id\x00"), master...))
	return &Keyring{ID: hex.EncodeToString(id[:4]), master: master, hashKey: derive(master, "gatehouse token hash v1")}
}

func derive(master []byte, info string) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, master, nil, []byte(info)), out); err != nil {
		panic(err)
	}
	return out
}

// HashToken returns the keyed hash (HMAC-SHA-256) under which a token or
// code is stored, in hex.
func (k *Keyring) HashToken(purpose, token string) string {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}
