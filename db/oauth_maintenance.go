package db

import (
	"context"
	"fmt"
)

// Maintenance of the OpenID provider's secrets across workspaces: the
// master-key rotation re-encrypts every signing key, and the signing-key
// rotation of the command line walks every workspace. Nothing here is
// reachable from a request.

// AllSigningKeys lists every workspace's signing keys, retired ones too
// (their private halves are still sealed under a master key), for the
// master-key rotation.
func (s *Store) AllSigningKeys(ctx context.Context) ([]SigningKey, error) {
	return s.signingKeys(ctx, `ORDER BY workspace_id, created_at, CASE WHEN retired_at IS NULL THEN 1 ELSE 0 END, id`)
}

// ReplaceSigningKeyPrivate stores a signing key's private half sealed
// again under the master key masterKeyID, if the ciphertext is still the
// one that was read (a concurrent change wins).
func (s *Store) ReplaceSigningKeyPrivate(ctx context.Context, workspaceID int64, id string, oldSealed []byte, masterKeyID string, sealed []byte) error {
	_, err := s.exec(ctx, `UPDATE oauth_signing_keys SET master_key_id = ?, private_key = ?
		WHERE workspace_id = ? AND id = ? AND private_key = ?`, masterKeyID, sealed, workspaceID, id, oldSealed)
	if err != nil {
		return fmt.Errorf("replace signing key: %w", err)
	}
	return nil
}

// Workspaces lists the customer workspaces (never the platform's), oldest
// first.
func (s *Store) Workspaces(ctx context.Context) ([]Workspace, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE platform = 0 ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("workspaces: %w", err)
	}
	defer rows.Close()
	var out []Workspace
	for rows.Next() {
		w, err := scanWorkspace(rows)
		if err != nil {
			return nil, fmt.Errorf("workspaces: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}
