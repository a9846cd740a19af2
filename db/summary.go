package db

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
)

// The factor summary: three columns of users that the admin pages read
// instead of looking up every member in the factor tables, which took
// seconds at 100,000 members (migration 0007). mfa_factors is the Factors
// a member holds, mfa_codes how many unused recovery codes they have,
// mfa_first_at when their earliest current second factor was added (app
// confirmed, key registered, phone verified; NULL without one).
//
// The store keeps them: every method that inserts or deletes rows of
// totp_credentials, webauthn_credentials, sms_phones or recovery_codes, or
// updates their user_id, workspace_id, confirmed_at, verified_at,
// created_at or used_at, refreshes the members it touched in the same
// transaction, after its last such write and before it reads the summary. Migration 0016 dropped the
// triggers that did this before: the rule is Go's, in the transaction of
// the change, on every engine.

// factorSummarySet recounts the summary of the users row being updated
// from the factor tables: a recount, not an addition, so it cannot drift
// whatever changed.
var factorSummarySet = `mfa_factors =
		CASE WHEN EXISTS (SELECT 1 FROM totp_credentials t
			WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL)
		THEN ` + strconv.Itoa(int(FactorTOTP)) + ` ELSE 0 END
		+ CASE WHEN EXISTS (SELECT 1 FROM webauthn_credentials w
			WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id)
		THEN ` + strconv.Itoa(int(FactorWebAuthn)) + ` ELSE 0 END
		+ CASE WHEN EXISTS (SELECT 1 FROM sms_phones p
			WHERE p.workspace_id = users.workspace_id AND p.user_id = users.id AND p.verified_at IS NOT NULL)
		THEN ` + strconv.Itoa(int(FactorSMS)) + ` ELSE 0 END,
	mfa_codes = (SELECT COUNT(*) FROM recovery_codes r
		WHERE r.workspace_id = users.workspace_id AND r.user_id = users.id AND r.used_at IS NULL),
	mfa_first_at = (SELECT MIN(f.added_at) FROM (
		SELECT t.confirmed_at AS added_at FROM totp_credentials t
			WHERE t.workspace_id = users.workspace_id AND t.user_id = users.id AND t.confirmed_at IS NOT NULL
		UNION ALL
		SELECT w.created_at AS added_at FROM webauthn_credentials w
			WHERE w.workspace_id = users.workspace_id AND w.user_id = users.id
		UNION ALL
		SELECT p.verified_at AS added_at FROM sms_phones p
			WHERE p.workspace_id = users.workspace_id AND p.user_id = users.id AND p.verified_at IS NOT NULL) f)`

// reenrolledSet is the re-enrollment rule (migration 0013): a member reset
// by support or by recovery by email who holds a second factor again has
// re-enrolled. The flag goes, and so does the deadline it set unless the
// workspace's policy covers the member (a later requirement then gives
// them a grace period like everyone else).
var reenrolledSet = func() string {
	covered := `EXISTS (SELECT 1 FROM workspaces w WHERE w.id = users.workspace_id AND ` + policyCoversSQL("w.mfa_policy", "users.role") + `)`
	return `mfa_reenroll = 0,
	mfa_since = CASE WHEN ` + covered + ` THEN mfa_since ELSE NULL END,
	mfa_deadline = CASE WHEN ` + covered + ` THEN mfa_deadline ELSE NULL END`
}()

// summaryBatch bounds the members of one statement (SQLite allows 32,766
// parameters, PostgreSQL 65,535).
const summaryBatch = 500

// refreshFactorSummary recounts one member's factor summary and applies
// the re-enrollment rule, in tx.
func (s *Store) refreshFactorSummary(ctx context.Context, tx *sql.Tx, workspaceID, userID int64) error {
	return s.refreshFactorSummaries(ctx, tx, workspaceID, []int64{userID})
}

// refreshFactorSummaries is refreshFactorSummary for many members of a
// workspace: one set-based statement per batch, not one per member.
func (s *Store) refreshFactorSummaries(ctx context.Context, tx *sql.Tx, workspaceID int64, userIDs []int64) error {
	for len(userIDs) > 0 {
		n := min(len(userIDs), summaryBatch)
		list, args := inList(userIDs[:n])
		if err := refreshSummaryWhere(ctx, tx, `workspace_id = ? AND id IN (`+list+`)`, append([]any{workspaceID}, args...)); err != nil {
			return err
		}
		userIDs = userIDs[n:]
	}
	return nil
}

// refreshSummaryWhere recounts the summary of the users rows that where
// (a condition on users, with args) selects, then applies the
// re-enrollment rule to them.
func refreshSummaryWhere(ctx context.Context, tx *sql.Tx, where string, args []any) error {
	if _, err := tx.ExecContext(ctx, `UPDATE users SET `+factorSummarySet+` WHERE `+where, args...); err != nil {
		return fmt.Errorf("refresh factor summary: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET `+reenrolledSet+`
		WHERE `+where+` AND mfa_reenroll = 1 AND mfa_factors <> 0`, args...); err != nil {
		return fmt.Errorf("refresh factor summary: re-enrollment: %w", err)
	}
	return nil
}

// RecountFactorSummaries recounts the factor summary of every member of
// the workspace, as the store's methods do for the members they change:
// for factor rows written outside the store (a bulk import, a test
// fixture).
func (s *Store) RecountFactorSummaries(ctx context.Context, workspaceID int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		return refreshSummaryWhere(ctx, tx, `workspace_id = ?`, []any{workspaceID})
	})
}
