package app

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
)

// Token signing keys: per workspace, in the database, the private half
// sealed under the master key. RS256 (every client supports it) or ES256.
// The newest key signs; a rotation keeps publishing the old keys until
// every token they signed has expired.

// SigningAlgs are the algorithms a workspace's signing key may use.
var SigningAlgs = []string{"RS256", "ES256"}

// oldKeysPublished is how long keys stay in the JWKS after a rotation:
// the longest-lived token they signed (an ID token), plus the time other
// nodes may keep signing with a cached key, plus clock skew.
const oldKeysPublished = IDTokenLifetime + signingKeyCache + 5*time.Minute

type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ jwk jose.JSONWebKey }

func (k *publicKey) ID() string { return k.jwk.KeyID }
func (k *publicKey) Algorithm() jose.SignatureAlgorithm {
	return jose.SignatureAlgorithm(k.jwk.Algorithm)
}
func (k *publicKey) Use() string { return "sig" }
func (k *publicKey) Key() any    { return k.jwk.Key }

// keySet is a workspace's keys as one node holds them.
type keySet struct {
	signing  *signingKey
	public   []op.Key
	loadedAt time.Time
}

// keyCache holds each workspace's keys for signingKeyCache.
type keyCache struct {
	mu   sync.Mutex
	sets map[int64]*keySet
}

func signingKeyAAD(k db.SigningKey) []byte {
	return fmt.Appendf(nil, "oidc signing key:%s:%d", k.ID, k.WorkspaceID)
}

// signingKeys returns the workspace's keys, creating the first one (RS256)
// on first use.
func (s *Server) signingKeys(ctx context.Context, workspaceID int64) (*keySet, error) {
	s.keyCache.mu.Lock()
	ks := s.keyCache.sets[workspaceID]
	s.keyCache.mu.Unlock()
	if ks != nil && s.now().Sub(ks.loadedAt) < signingKeyCache && !s.now().Before(ks.loadedAt) {
		return ks, nil
	}
	for range 2 {
		rows, err := s.store.SigningKeys(ctx, workspaceID)
		if err != nil {
			return nil, err
		}
		if ks, err = s.parseKeys(rows, s.now()); err != nil {
			return nil, err
		}
		if ks.signing != nil {
			s.keyCache.mu.Lock()
			s.keyCache.sets[workspaceID] = ks
			s.keyCache.mu.Unlock()
			return ks, nil
		}
		// No key yet: make the first; if another request or node made
		// one meanwhile, read again.
		k, err := s.newSigningKey(workspaceID, "RS256")
		if err != nil {
			return nil, err
		}
		if err := s.store.AddSigningKey(ctx, k, false, time.Time{}, 0, db.Meta{}); err != nil && !errors.Is(err, db.ErrConflict) {
			return nil, err
		}
	}
	return nil, errors.New("signing keys: no key after creating one")
}

func (s *Server) parseKeys(rows []db.SigningKey, now time.Time) (*keySet, error) {
	ks := &keySet{loadedAt: now}
	for _, r := range rows {
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(r.PublicJWK, &jwk); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
		}
		ks.public = append(ks.public, &publicKey{jwk: jwk})
		if ks.signing != nil || !r.RetiredAt.IsZero() {
			continue
		}
		der, err := s.keys.Decrypt(r.MasterKeyID, r.Private, signingKeyAAD(r))
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("signing key %s: not a signer", r.ID)
		}
		ks.signing = &signingKey{id: r.ID, alg: jose.SignatureAlgorithm(r.Alg), key: signer}
	}
	return ks, nil
}

// newSigningKey generates a key pair for the workspace, sealed.
func (s *Server) newSigningKey(workspaceID int64, alg string) (db.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return db.SigningKey{}, fmt.Errorf("signing key: algorithm %q is not one of %v", alg, SigningAlgs)
	}
	if err != nil {
		return db.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return db.SigningKey{}, err
	}
	k := db.SigningKey{ID: auth.NewID()[:16], WorkspaceID: workspaceID, Alg: alg}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: priv.Public(), KeyID: k.ID, Algorithm: alg, Use: "sig"})
	if err != nil {
		return db.SigningKey{}, err
	}
	k.PublicJWK = jwk
	k.MasterKeyID, k.Private = s.keys.Encrypt(der, signingKeyAAD(k))
	return k, nil
}

// RotateSigningKey gives the workspace a new signing key (alg, or the
// current key's algorithm when empty); the old keys stop signing now and
// stay published until the tokens they signed have expired. It returns the
// new key's id.
func (s *Server) RotateSigningKey(ctx context.Context, workspaceID int64, alg string) (string, error) {
	if alg == "" {
		alg = "RS256"
		if rows, err := s.store.SigningKeys(ctx, workspaceID); err != nil {
			return "", err
		} else if len(rows) > 0 {
			alg = rows[0].Alg
		}
	}
	k, err := s.newSigningKey(workspaceID, alg)
	if err != nil {
		return "", err
	}
	if err := s.store.AddSigningKey(ctx, k, true, s.now().Add(oldKeysPublished), 0, db.Meta{}); err != nil {
		return "", err
	}
	s.keyCache.mu.Lock()
	delete(s.keyCache.sets, workspaceID)
	s.keyCache.mu.Unlock()
	return k.ID, nil
}
