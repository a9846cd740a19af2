package app

import (
	"context"
	"fmt"

	"github.com/gatehouse/gatehouse/app/keys"
	"github.com/gatehouse/gatehouse/db"
)

// ReencryptSecrets re-encrypts every TOTP secret and every token signing
// key's private half (retired keys too) not yet under the keyring's
// current key, and returns how many it changed. Keys are never dropped:
// recovery codes and links hashed under an old key still verify.
func ReencryptSecrets(ctx context.Context, store *db.Store, kr *keys.Keyring) (int, error) {
	creds, err := store.AllTOTPSecrets(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range creds {
		if c.KeyID == kr.CurrentID() {
			continue
		}
		aad := totpAAD(c.ID, c.UserID)
		pt, err := kr.Decrypt(c.KeyID, c.Secret, aad)
		if err != nil {
			return n, fmt.Errorf("re-encrypt totp secret %d (key %s): %w", c.ID, c.KeyID, err)
		}
		id, ct := kr.Encrypt(pt, aad)
		if err := store.ReplaceTOTPSecret(ctx, c.ID, c.Secret, id, ct); err != nil {
			return n, err
		}
		n++
	}
	signing, err := store.AllSigningKeys(ctx)
	if err != nil {
		return n, err
	}
	for _, k := range signing {
		if k.MasterKeyID == kr.CurrentID() {
			continue
		}
		aad := signingKeyAAD(k)
		pt, err := kr.Decrypt(k.MasterKeyID, k.Private, aad)
		if err != nil {
			return n, fmt.Errorf("re-encrypt signing key %s (key %s): %w", k.ID, k.MasterKeyID, err)
		}
		id, ct := kr.Encrypt(pt, aad)
		if err := store.ReplaceSigningKeyPrivate(ctx, k.WorkspaceID, k.ID, k.Private, id, ct); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// TOTPAAD is the associated data a TOTP secret is encrypted with: it binds
// the ciphertext to its credential and member.
func TOTPAAD(credID, userID int64) []byte { return totpAAD(credID, userID) }

// SigningKeyAAD is the associated data a signing key's private half is
// sealed with: it binds the ciphertext to the key's id and workspace.
func SigningKeyAAD(k db.SigningKey) []byte { return signingKeyAAD(k) }
