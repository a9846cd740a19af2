// Package auth holds password hashing and random tokens. It has no HTTP in
// it.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password length bounds, in Unicode code points (NIST SP 800-63B §3.1.1.2).
const (
	MinPasswordLength = 8
	MaxPasswordLength = 256
)

// ErrBusy is returned when too many hashes are already waiting; the caller
// answers 503 with Retry-After.
var ErrBusy = errors.New("password hashing is busy")

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams are OWASP's recommended argon2id settings (19 MiB, 2
// iterations, 1 lane).
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1}

// String renders p in the GATEHOUSE_PASSWORD_HASH form.
func (p Params) String() string {
	return fmt.Sprintf("argon2id:m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)
}

// ParseParams reads "argon2id:m=19456,t=2,p=1". An empty string gives the
// defaults.
func ParseParams(s string) (Params, error) {
	if s == "" {
		return DefaultParams, nil
	}
	rest, ok := strings.CutPrefix(s, "argon2id:")
	if !ok {
		return Params{}, fmt.Errorf("password hash %q: only argon2id:m=…,t=…,p=… is supported", s)
	}
	p, err := parseKV(rest)
	if err != nil {
		return Params{}, fmt.Errorf("password hash %q: %w", s, err)
	}
	if p.Memory < 8*uint32(p.Threads) || p.Time < 1 || p.Threads < 1 {
		return Params{}, fmt.Errorf("password hash %q: m must be at least 8*p KiB, t and p at least 1", s)
	}
	return p, nil
}

func parseKV(s string) (Params, error) {
	var p Params
	seen := 0
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Params{}, fmt.Errorf("malformed %q", part)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Params{}, fmt.Errorf("malformed %q", part)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return Params{}, fmt.Errorf("p=%d is too large", n)
			}
			p.Threads = uint8(n)
		default:
			return Params{}, fmt.Errorf("unknown parameter %q", k)
		}
		seen++
	}
	if seen != 3 {
		return Params{}, errors.New("want m, t and p")
	}
	return p, nil
}

// ValidatePassword checks a new password's length; the message is fit to
// show.
func ValidatePassword(pw string) error {
	if !utf8.ValidString(pw) {
		return errors.New("The password contains invalid characters.")
	}
	n := utf8.RuneCountInString(pw)
	switch {
	case n == 0:
		return errors.New("Enter a password.")
	case n < MinPasswordLength:
		return fmt.Errorf("Use at least %d characters.", MinPasswordLength)
	case n > MaxPasswordLength:
		return fmt.Errorf("Use at most %d characters.", MaxPasswordLength)
	}
	return nil
}

// Hasher hashes and verifies passwords in a bounded pool: at most Workers
// hashes run at once (each holds Params.Memory), at most Queue more wait,
// each for at most MaxWait; beyond that, ErrBusy.
type Hasher struct {
	Params  Params
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
	sheds   atomic.Uint64
	maxWait time.Duration
	dummy   string
}

// NewHasher returns a pool with one worker per CPU.
func NewHasher(p Params) *Hasher {
	workers := runtime.GOMAXPROCS(0)
	h := &Hasher{Params: p, slots: make(chan struct{}, workers), queue: 256, maxWait: 10 * time.Second}
	// The dummy hash is verified against for unknown emails, so that they
	// take as long as a wrong password.
	h.dummy = encode(p, make([]byte, 16), argon2.IDKey([]byte("gatehouse-dummy"), make([]byte, 16), p.Time, p.Memory, p.Threads, 32))
	return h
}

func (h *Hasher) acquire(ctx context.Context) error {
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		h.sheds.Add(1)
		return ErrBusy
	}
	defer h.waiting.Add(-1)
	t := time.NewTimer(h.maxWait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-t.C:
		h.sheds.Add(1)
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

// Saturated reports whether every queue place is taken, so that a caller
// can answer ErrBusy before doing other work (database reads) for a request
// the pool would refuse anyway. Hash and Verify enforce the bound
// themselves; this is only a cheap early answer.
func (h *Hasher) Saturated() bool { return h.waiting.Load() >= h.queue }

// ShedIfSaturated is Saturated for a caller that refuses the request when
// it reports true: that refusal is counted as a shed (Sheds).
func (h *Hasher) ShedIfSaturated() bool {
	if h.Saturated() {
		h.sheds.Add(1)
		return true
	}
	return false
}

// Load reports the hashes running now and the ones waiting for a worker.
func (h *Hasher) Load() (running, waiting int) {
	running = len(h.slots)
	// waiting counts every caller inside acquire, including one that has
	// just taken its slot; it is a gauge, not an exact count.
	return running, int(max(h.waiting.Load(), 0))
}

// Sheds is how many hashes were refused with ErrBusy (queue full, waited
// too long, or shed early by ShedIfSaturated) since the hasher was made.
func (h *Hasher) Sheds() uint64 { return h.sheds.Load() }

// Hash returns the encoded argon2id hash of pw under the current parameters.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.Params
	return encode(p, salt, argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, 32)), nil
}

// Verify reports whether pw matches encoded, and whether encoded was made
// with other parameters than the current ones (so it should be replaced).
// An empty encoded verifies against a dummy hash and is always false.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	dummy := encoded == ""
	if dummy {
		encoded = h.dummy
	}
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	h.release()
	ok = subtle.ConstantTimeCompare(got, want) == 1 && !dummy
	return ok, ok && p != h.Params, nil
}

var b64 = base64.RawStdEncoding

// encode writes the PHC string format: $argon2id$v=19$m=…,t=…,p=…$salt$hash.
func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func decode(s string) (Params, []byte, []byte, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, errors.New("unsupported password hash")
	}
	p, err := parseKV(parts[3])
	if err != nil {
		return Params{}, nil, nil, fmt.Errorf("password hash: %w", err)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return Params{}, nil, nil, errors.New("password hash: bad salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return Params{}, nil, nil, errors.New("password hash: bad key")
	}
	return p, salt, key, nil
}

// NewToken returns a random 256-bit token, base64url without padding.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewID returns a random 128-bit identifier in hex.
func NewID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", b)
}

// Bounds on an imported hash's parameters: below them the hash is too weak
// to accept, above them verifying it would tie up a worker (and its memory)
// for every sign-in attempt against that member.
const (
	maxImportMemory = 1 << 20 // KiB: 1 GiB
	maxImportTime   = 64
	minSaltBytes    = 8
	maxKeyBytes     = 128
)

// ValidateHash checks that encoded is a PHC argon2id hash this package can
// verify ($argon2id$v=19$m=…,t=…,p=…$salt$hash) with sane parameters. The
// error never quotes the hash.
func ValidateHash(encoded string) error {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return errors.New("not a PHC argon2id hash ($argon2id$v=19$m=…,t=…,p=…$salt$hash)")
	}
	switch {
	case p.Threads < 1 || p.Time < 1 || p.Memory < 8*uint32(p.Threads):
		return errors.New("argon2id parameters: m must be at least 8*p KiB, t and p at least 1")
	case p.Memory > maxImportMemory || p.Time > maxImportTime:
		return fmt.Errorf("argon2id parameters: m must be at most %d KiB and t at most %d", maxImportMemory, maxImportTime)
	case len(salt) < minSaltBytes:
		return fmt.Errorf("argon2id salt: at least %d bytes", minSaltBytes)
	case len(key) > maxKeyBytes:
		return fmt.Errorf("argon2id hash: at most %d bytes", maxKeyBytes)
	}
	return nil
}
