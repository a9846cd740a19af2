// Package keys loads the master keys and derives from them the keys
// Gatehouse encrypts secrets and hashes codes and tokens with. Master keys
// never sit in the database, so a copy of the database alone yields no
// usable secret, code or token.
//
// There can be several master keys: the last is current (new secrets and
// hashes use it), the others still decrypt and verify what was made under
// them. Every ciphertext and keyed hash carries the id of its key, which is
// how `gatehouse keys rotate` works: add a key, re-encrypt every secret.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
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
	"slices"
	"strings"

	"golang.org/x/crypto/hkdf"
)

// FileName is the key file created in the data directory on first run.
const FileName = "master.key"

// ErrUnknownKey is returned for data made under a key the keyring lacks.
var ErrUnknownKey = errors.New("unknown key id")

// ErrDecrypt is returned when a ciphertext is not authentic (tampered, or
// bound to other associated data).
var ErrDecrypt = errors.New("decryption failed")

type key struct {
	id     string
	aead   cipher.AEAD
	mac    []byte
	master []byte
}

func (k *key) derived(info string) []byte { return derive(k.master, info) }

// Keyring holds the master keys and their derived keys.
type Keyring struct {
	keys    map[string]*key
	current *key
	// Path is the key file the keyring was read from ("" for the
	// environment).
	Path string
}

// Load returns the keys from env (base64 of 32 bytes; several separated by
// commas, the last current) if set, otherwise from dataDir/master.key (one
// per line, the last current), creating the file with mode 0600 when
// missing.
func Load(env, dataDir string) (*Keyring, error) {
	if env != "" {
		kr, err := parse(strings.Split(env, ","))
		if err != nil {
			return nil, fmt.Errorf("GATEHOUSE_MASTER_KEY: %w", err)
		}
		return kr, nil
	}
	path := filepath.Join(dataDir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s is readable by others (mode %o); chmod 600 it", path, st.Mode().Perm())
	}
	kr, err := parse(strings.Split(string(b), "\n"))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	kr.Path = path
	return kr, nil
}

func parse(lines []string) (*Keyring, error) {
	var masters [][]byte
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(k) != 32 {
			return nil, errors.New("each key must be the base64 of 32 bytes")
		}
		masters = append(masters, k)
	}
	if len(masters) == 0 {
		return nil, errors.New("no key")
	}
	return New(masters...), nil
}

func create(path string) (*Keyring, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create master key: %w", err)
	}
	k := NewMasterKey()
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
	kr := New(k)
	kr.Path = path
	return kr, nil
}

// NewMasterKey returns 32 random bytes.
func NewMasterKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

// AddToFile appends a new master key to the key file, making it current.
// The file is rewritten atomically with mode 0600.
func AddToFile(path string, master []byte) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	content := strings.TrimRight(string(old), "\n") + "\n" + base64.StdEncoding.EncodeToString(master) + "\n"
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// New builds a keyring from 32-byte master keys; the last is current.
func New(masters ...[]byte) *Keyring {
	kr := &Keyring{keys: map[string]*key{}}
	for _, m := range masters {
		sum := sha256.Sum256(append([]byte("gatehouse key id\x00"), m...))
		block, err := aes.NewCipher(derive(m, "gatehouse secret encryption v1"))
		if err != nil {
			panic(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			panic(err)
		}
		k := &key{id: hex.EncodeToString(sum[:4]), aead: aead, mac: derive(m, "gatehouse token hash v1"), master: slices.Clone(m)}
		kr.keys[k.id] = k
		kr.current = k
	}
	return kr
}

func derive(master []byte, info string) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, master, nil, []byte(info)), out); err != nil {
		panic(err)
	}
	return out
}

// Derive returns a 32-byte key for info derived from the current master
// key (HKDF-SHA-256), for libraries that take a key of their own.
func (kr *Keyring) Derive(info string) []byte { return slices.Clone(kr.current.derived(info)) }

// CurrentID names the current key.
func (kr *Keyring) CurrentID() string { return kr.current.id }

// IDs lists every key id.
func (kr *Keyring) IDs() []string {
	var out []string
	for id := range kr.keys {
		out = append(out, id)
	}
	return out
}

// Encrypt seals plaintext under the current key with AES-256-GCM. aad binds
// the ciphertext to its owner (credential and user ids): moved to another
// row, it no longer decrypts.
func (kr *Keyring) Encrypt(plaintext, aad []byte) (keyID string, ciphertext []byte) {
	nonce := make([]byte, kr.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return kr.current.id, kr.current.aead.Seal(nonce, nonce, plaintext, aad)
}

// Decrypt opens a ciphertext made by Encrypt under keyID.
func (kr *Keyring) Decrypt(keyID string, ciphertext, aad []byte) ([]byte, error) {
	k, ok := kr.keys[keyID]
	if !ok {
		return nil, ErrUnknownKey
	}
	n := k.aead.NonceSize()
	if len(ciphertext) < n+k.aead.Overhead() {
		return nil, ErrDecrypt
	}
	pt, err := k.aead.Open(nil, ciphertext[:n], ciphertext[n:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func (k *key) hash(purpose, token string) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(token))
	return k.id + ":" + hex.EncodeToString(m.Sum(nil))
}

// HashToken returns the keyed hash (HMAC-SHA-256, current key) under which a
// token or code is stored, as "keyid:hex".
func (kr *Keyring) HashToken(purpose, token string) string { return kr.current.hash(purpose, token) }

// TokenHashes returns the hash of token under every key, for looking up a
// token stored before the last rotation.
func (kr *Keyring) TokenHashes(purpose, token string) []string {
	out := []string{kr.current.hash(purpose, token)}
	for _, k := range kr.keys {
		if k != kr.current {
			out = append(out, k.hash(purpose, token))
		}
	}
	return out
}

// VerifyHash reports, in constant time, whether stored is the hash of token
// under the key it names.
func (kr *Keyring) VerifyHash(purpose, token, stored string) bool {
	id, _, ok := strings.Cut(stored, ":")
	k := kr.keys[id]
	if !ok || k == nil {
		return false
	}
	return hmac.Equal([]byte(k.hash(purpose, token)), []byte(stored))
}
