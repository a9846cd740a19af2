package db

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Coverage counts a workspace's members by their standing with the policy.
// The counts follow MemberMFAFilter: Enrolled is compliant (a confirmed
// factor of an allowed method), LowRecoveryCodes is within Enrolled, NoMFA
// is no second factor of any method; InGrace and PastDeadline are covered,
// not compliant members before and after their deadline. NextDeadline is the
// earliest deadline still ahead among the members in grace, zero if none.
type Coverage struct {
	Members          int
	Enrolled         int
	InGrace          int
	PastDeadline     int
	LowRecoveryCodes int
	NoMFA            int
	NextDeadline     time.Time
}

// EnrollmentDay is one UTC day of the enrollment history: at the end of
// Day, Members had joined and Enrolled of today's members held their first
// second factor (any method).
type EnrollmentDay struct {
	Day      time.Time
	Members  int
	Enrolled int
}

// querier is what reads need of *sql.DB, *sql.Conn and *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// coverageRow is one line of the coverage statement: the members holding
// exactly the factors f (and, when roles is set, having one of those
// roles), and whether the policy counts them compliant.
type coverageRow struct {
	f         Factors
	roles     []string // nil: every role
	compliant bool
}

// coverageRows lists, for each of the eight values of users.mfa_factors,
// whether the policy counts its holders compliant (Policy.CompliantWith):
// one row when the role makes no difference, one per group of roles where
// it does (SMS kept from owners and admins).
func coverageRows(p Policy) []coverageRow {
	var out []coverageRow
	for f := Factors(0); f <= allFactors; f++ {
		groups := factorGroups(func(role string, g Factors) bool { return g == f && p.CompliantWith(role, g) })
		if len(groups) == 1 {
			out = append(out, coverageRow{f: f, compliant: len(groups[0].sets) == 1})
			continue
		}
		for _, g := range groups {
			out = append(out, coverageRow{f: f, roles: g.roles, compliant: len(g.sets) == 1})
		}
	}
	return out
}

// coverageSQL counts, for each coverage row (a value of users.mfa_factors,
// with the roles when the policy tells them apart), the members holding
// exactly those methods; for the rows the policy accepts, those low on
// recovery codes; for the others, those in grace and past their deadline,
// and the next deadline. Each count is a range of one covering index
// (users_factors_codes, users_factors_deadline), so the work is one walk
// over the workspace's entries of an index plus the members in grace, past
// deadline or low on codes, and never a lookup per member in the factor
// tables; only a row that names roles reads the members it counts. One
// statement, so one snapshot. Compliance is decided in Go for each row:
// constants of the statement; everything else is an argument.
func coverageSQL(p Policy, workspaceID int64, now int64) (string, []any) {
	var parts []string
	var args []any
	for _, r := range coverageRows(p) {
		where := `u.workspace_id = ? AND u.mfa_factors = ` + strconv.Itoa(int(r.f))
		if r.roles != nil {
			where += ` AND ` + roleIn("u.role", r.roles)
		}
		compliant := "0"
		if r.compliant {
			compliant = "1"
		}
		q := `SELECT ` + strconv.Itoa(int(r.f)) + `, ` + compliant + `,
		(SELECT COUNT(*) FROM users u WHERE ` + where + `), `
		args = append(args, workspaceID)
		if r.compliant {
			q += `(SELECT COUNT(*) FROM users u WHERE ` + where + ` AND u.mfa_codes <= ?), 0, 0, CAST(NULL AS BIGINT)`
			args = append(args, workspaceID, LowRecoveryCodesThreshold)
		} else {
			q += `0,
		(SELECT COUNT(*) FROM users u WHERE ` + where + ` AND u.mfa_deadline > ?),
		(SELECT COUNT(*) FROM users u WHERE ` + where + ` AND u.mfa_deadline <= ?),
		(SELECT MIN(u.mfa_deadline) FROM users u WHERE ` + where + ` AND u.mfa_deadline > ?)`
			args = append(args, workspaceID, now, workspaceID, now, workspaceID, now)
		}
		parts = append(parts, q)
	}
	return strings.Join(parts, "\n\tUNION ALL\n\t"), args
}

// Coverage counts the workspace's members under policy p at now. The
// figures come from the per-member summary that the store keeps in the
// same transaction as every enrollment, removal, reset and used code
// (refreshFactorSummaries), so they are exact on every call; there is no
// cache.
func (s *Store) Coverage(ctx context.Context, workspaceID int64, p Policy, now time.Time) (Coverage, error) {
	return coverage(ctx, s.db, workspaceID, p, now)
}

func coverage(ctx context.Context, q querier, workspaceID int64, p Policy, now time.Time) (Coverage, error) {
	query, args := coverageSQL(p, workspaceID, now.Unix())
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return Coverage{}, fmt.Errorf("coverage: %w", err)
	}
	defer rows.Close()
	var c Coverage
	var next int64
	for rows.Next() {
		var factors, members, low, grace, past int
		var ok bool
		var deadline sql.NullInt64
		if err := rows.Scan(&factors, &ok, &members, &low, &grace, &past, &deadline); err != nil {
			return Coverage{}, fmt.Errorf("coverage: %w", err)
		}
		c.Members += members
		if factors == 0 {
			c.NoMFA += members
		}
		if ok {
			c.Enrolled += members
			c.LowRecoveryCodes += low
		}
		c.InGrace += grace
		c.PastDeadline += past
		if deadline.Valid && (next == 0 || deadline.Int64 < next) {
			next = deadline.Int64
		}
	}
	if err := rows.Err(); err != nil {
		return Coverage{}, fmt.Errorf("coverage: %w", err)
	}
	if next != 0 {
		c.NextDeadline = unix(next)
	}
	return c, nil
}

// historyWindowSQL counts the members who joined, and those whose earliest
// current factor dates from, each day of the window (days first to last
// since the epoch, UTC) and, as day -2, after it (a test clock). Range
// counts on the covering indexes users_created and users_first_factor: no
// member row is read and nothing is sorted.
const historyWindowSQL = `WITH RECURSIVE d(day) AS (SELECT CAST(? AS BIGINT) UNION ALL SELECT day + 1 FROM d WHERE day < ?)
	SELECT day,
		(SELECT COUNT(*) FROM users u WHERE u.workspace_id = ? AND u.created_at >= d.day * 86400 AND u.created_at < (d.day + 1) * 86400),
		(SELECT COUNT(*) FROM users u WHERE u.workspace_id = ? AND u.mfa_first_at >= d.day * 86400 AND u.mfa_first_at < (d.day + 1) * 86400)
	FROM d
	UNION ALL
	SELECT -2,
		(SELECT COUNT(*) FROM users u WHERE u.workspace_id = ? AND u.created_at >= (CAST(? AS BIGINT) + 1) * 86400),
		(SELECT COUNT(*) FROM users u WHERE u.workspace_id = ? AND u.mfa_first_at >= (CAST(? AS BIGINT) + 1) * 86400)`

// historyBaseSQL is day -1: the members and enrolled before the window.
const historyBaseSQL = `
	UNION ALL
	SELECT -1,
		(SELECT COUNT(*) FROM users u WHERE u.workspace_id = ? AND u.created_at < CAST(? AS BIGINT) * 86400),
		(SELECT COUNT(*) FROM users u WHERE u.workspace_id = ? AND u.mfa_first_at < CAST(? AS BIGINT) * 86400)`

// EnrollmentHistory reconstructs the last days (UTC, ending today) of
// enrollment from what the tables still hold: a member counts as enrolled
// from their earliest current factor (authenticator app confirmed, key
// registered) and as a member from their users.created_at. Factors removed
// since (reset, deleted) and members who left do not appear, so the past
// is the history of today's members, not a log. Anything dated after today
// (a test clock) is left out.
func (s *Store) EnrollmentHistory(ctx context.Context, workspaceID int64, days int, now time.Time) ([]EnrollmentDay, error) {
	return history(ctx, s.db, workspaceID, days, now, nil)
}

// history reads the window; with totals (members, members holding any
// factor, from the same snapshot) it derives the days before the window
// from them instead of counting every older member again.
func history(ctx context.Context, q querier, workspaceID int64, days int, now time.Time, totals *[2]int) ([]EnrollmentDay, error) {
	if days < 1 {
		return nil, nil
	}
	today := now.UTC().Truncate(24 * time.Hour)
	start := today.AddDate(0, 0, -(days - 1))
	first := start.Unix() / 86400
	last, ws := first+int64(days)-1, workspaceID
	query, args := historyWindowSQL, []any{first, last, ws, ws, ws, last, ws, last}
	if totals == nil {
		query += historyBaseSQL
		args = append(args, ws, first, ws, first)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("enrollment history: %w", err)
	}
	defer rows.Close()
	var base, after [2]int
	added := make([][2]int, days)
	for rows.Next() {
		var day int64
		var n [2]int
		if err := rows.Scan(&day, &n[0], &n[1]); err != nil {
			return nil, fmt.Errorf("enrollment history: %w", err)
		}
		switch i := day - first; {
		case day == -1:
			base = n
		case day == -2:
			after = n
		case i >= 0 && i < int64(days):
			added[i] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("enrollment history: %w", err)
	}
	if totals != nil {
		base = *totals
		for k := range base {
			base[k] -= after[k]
			for _, a := range added {
				base[k] -= a[k]
			}
		}
	}
	out := make([]EnrollmentDay, days)
	m, e := base[0], base[1]
	for i := range out {
		m += added[i][0]
		e += added[i][1]
		out[i] = EnrollmentDay{Day: start.AddDate(0, 0, i), Members: m, Enrolled: e}
	}
	return out, nil
}

// Dashboard reads the admin dashboard's figures from one snapshot (a
// read-only transaction, which takes no write lock): Coverage under p at
// now and the EnrollmentHistory of the last days, whose days before the
// window are derived from the coverage totals, so that only the window's
// members are counted day by day.
func (s *Store) Dashboard(ctx context.Context, workspaceID int64, p Policy, days int, now time.Time) (Coverage, []EnrollmentDay, error) {
	var c Coverage
	var h []EnrollmentDay
	err := s.readTx(ctx, func(q querier) error {
		var err error
		if c, err = coverage(ctx, q, workspaceID, p, now); err != nil {
			return err
		}
		// NoMFA is mfa_factors = 0, the members with mfa_first_at NULL: the
		// same recount keeps both.
		h, err = history(ctx, q, workspaceID, days, now, &[2]int{c.Members, c.Members - c.NoMFA})
		return err
	})
	if err != nil {
		return Coverage{}, nil, fmt.Errorf("dashboard: %w", err)
	}
	return c, h, nil
}
