package db

import (
	"context"
	"fmt"
	"time"
)

// Coverage counts a workspace's members by their standing with the policy.
// The counts follow MemberMFAFilter: Enrolled is compliant (a confirmed
// factor of an allowed method), LowRecoveryCodes is within Enrolled, NoMFA
// is no second factor of any method; InGrace and PastDeadline are covered,
// not compliant members before and after their deadline.
type Coverage struct {
	Members          int
	Enrolled         int
	InGrace          int
	PastDeadline     int
	LowRecoveryCodes int
	NoMFA            int
}

// Coverage counts the workspace's members under policy p at now, in one
// pass over the users with the factor tables' indexes.
func (s *Store) Coverage(ctx context.Context, workspaceID int64, p Policy, now time.Time) (Coverage, error) {
	var c Coverage
	compliant := compliantSQL(p.Methods)
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(c), 0),
			COALESCE(SUM(NOT c AND d > ?), 0), COALESCE(SUM(NOT c AND d <= ?), 0),
			COALESCE(SUM(c AND `+memberUnusedCodes+` <= ?), 0), COALESCE(SUM(NOT f), 0)
		FROM (SELECT u.id, u.workspace_id, u.mfa_deadline d, `+compliant+` c, `+memberHasFactor+` f
			FROM users u WHERE u.workspace_id = ?) u`,
		now.Unix(), now.Unix(), LowRecoveryCodesThreshold, workspaceID).
		Scan(&c.Members, &c.Enrolled, &c.InGrace, &c.PastDeadline, &c.LowRecoveryCodes, &c.NoMFA)
	if err != nil {
		return Coverage{}, fmt.Errorf("coverage: %w", err)
	}
	return c, nil
}

// EnrollmentDay is one UTC day of the enrollment history: at the end of
// Day, Members had joined and Enrolled of today's members held their first
// second factor (any method).
type EnrollmentDay struct {
	Day      time.Time
	Members  int
	Enrolled int
}

// EnrollmentHistory reconstructs the last days (UTC, ending today) of
// enrollment from what the tables still hold: a member counts as enrolled
// from their earliest current factor (authenticator app confirmed, key
// registered) and as a member from their users.created_at. Factors removed
// since (reset, deleted) and members who left do not appear, so the past
// is the history of today's members, not a log.
func (s *Store) EnrollmentHistory(ctx context.Context, workspaceID int64, days int, now time.Time) ([]EnrollmentDay, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	start := today.AddDate(0, 0, -(days - 1))
	out := make([]EnrollmentDay, days)
	for i := range out {
		out[i].Day = start.AddDate(0, 0, i)
	}
	// add counts n into day index i (and every later day, done below).
	added := make([][2]int, days)
	bucket := func(ts int64) int {
		i := int((ts - start.Unix()) / 86400)
		if ts < start.Unix() {
			i = -1
		}
		return i
	}
	var baseMembers, baseEnrolled int
	rows, err := s.db.QueryContext(ctx, `SELECT 0, created_at / 86400, COUNT(*) FROM users WHERE workspace_id = ? GROUP BY 2
		UNION ALL
		SELECT 1, first / 86400, COUNT(*) FROM (
			SELECT MIN(ts) first FROM (
				SELECT user_id, confirmed_at ts FROM totp_credentials WHERE workspace_id = ? AND confirmed_at IS NOT NULL
				UNION ALL SELECT user_id, created_at FROM webauthn_credentials WHERE workspace_id = ?)
			GROUP BY user_id)
		GROUP BY 2`, workspaceID, workspaceID, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("enrollment history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, day, n int64
		if err := rows.Scan(&kind, &day, &n); err != nil {
			return nil, fmt.Errorf("enrollment history: %w", err)
		}
		i := bucket(day * 86400)
		switch {
		case i < 0 && kind == 0:
			baseMembers += int(n)
		case i < 0:
			baseEnrolled += int(n)
		case i >= days:
			// In the future of now (a test clock): not shown.
		default:
			added[i][kind] += int(n)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("enrollment history: %w", err)
	}
	m, e := baseMembers, baseEnrolled
	for i := range out {
		m += added[i][0]
		e += added[i][1]
		out[i].Members, out[i].Enrolled = m, e
	}
	return out, nil
}
