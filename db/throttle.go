package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Throttles are fixed-window counters shared by every app node: a window
// starts at a key's first attempt and lasts window. An attempt is counted
// before it is judged (SECURITY.md rule 11): ThrottleTake takes a place in
// the window with one conditional write, or refuses, so N callers racing
// for a key with limit places get at most limit of them whatever their
// timing. A caller gives the place back with ThrottleRefund when the
// attempt turned out not to be a failure (the right password) or was never
// judged (a full hashing queue).

// ErrTooMany is returned when a throttle refuses a request: the limit is
// reached. The error is a *TooManyError that says until when.
var ErrTooMany = errors.New("too many requests")

// TooManyError is a refusal by a throttle; errors.Is(err, ErrTooMany).
type TooManyError struct {
	// Until is the end of the window that holds the limit.
	Until time.Time
}

func (e *TooManyError) Error() string {
	return fmt.Sprintf("too many requests until %s", e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrTooMany) true.
func (e *TooManyError) Is(target error) bool { return target == ErrTooMany }

// Throttle is one place taken by ThrottleTake, to give back with
// ThrottleRefund.
type Throttle struct {
	Key   string
	start int64
}

// ThrottleTake counts one attempt for key unless the current window already
// holds limit: one upsert, atomic across app nodes. A refusal is a
// *TooManyError and counts nothing.
func (s *Store) ThrottleTake(ctx context.Context, key string, window time.Duration, limit int) (Throttle, error) {
	var th Throttle
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		th, err = s.throttleTake(ctx, tx, key, window, limit)
		return err
	})
	return th, err
}

// throttleTake is ThrottleTake inside tx, so that the count is undone with
// the request's other writes when it fails.
func (s *Store) throttleTake(ctx context.Context, tx *sql.Tx, key string, window time.Duration, limit int) (Throttle, error) {
	now := s.now()
	secs := int64(window / time.Second)
	cutoff := now - secs
	// The WHERE of DO UPDATE makes the write conditional: a full window
	// is left as it is and RETURNING gives no row.
	var start int64
	err := tx.QueryRowContext(ctx, `
		INSERT INTO throttles (key, window_start, failures) VALUES (?, ?, 1)
		ON CONFLICT (key) DO UPDATE SET
			failures     = CASE WHEN throttles.window_start <= ? THEN 1 ELSE throttles.failures + 1 END,
			window_start = CASE WHEN throttles.window_start <= ? THEN ? ELSE throttles.window_start END
		WHERE throttles.window_start <= ? OR throttles.failures < ?
		RETURNING window_start`, key, now, cutoff, cutoff, now, cutoff, limit).Scan(&start)
	if err == nil {
		return Throttle{Key: key, start: start}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Throttle{}, fmt.Errorf("throttle take: %w", err)
	}
	// Refused. Read the window only to tell the caller when to come back.
	if err := tx.QueryRowContext(ctx, `SELECT window_start FROM throttles WHERE key = ?`, key).Scan(&start); err != nil {
		return Throttle{}, fmt.Errorf("throttle take: %w", err)
	}
	return Throttle{}, &TooManyError{Until: unix(start + secs)}
}

// ThrottleRefund gives back the place th took, if its window is still the
// key's current one. A zero Throttle is a no-op.
func (s *Store) ThrottleRefund(ctx context.Context, th Throttle) error {
	if th.Key == "" {
		return nil
	}
	if _, err := s.exec(ctx, `UPDATE throttles SET failures = failures - 1 WHERE key = ? AND window_start = ? AND failures > 0`,
		th.Key, th.start); err != nil {
		return fmt.Errorf("throttle refund: %w", err)
	}
	return nil
}

// throttleRefund is ThrottleRefund inside tx: a place taken earlier in
// the same transaction, given back when a later check refused.
func (s *Store) throttleRefund(ctx context.Context, tx *sql.Tx, th Throttle) error {
	if _, err := tx.ExecContext(ctx, `UPDATE throttles SET failures = failures - 1 WHERE key = ? AND window_start = ? AND failures > 0`,
		th.Key, th.start); err != nil {
		return fmt.Errorf("throttle refund: %w", err)
	}
	return nil
}

// DeleteStaleThrottles removes counters whose window ended before horizon.
func (s *Store) DeleteStaleThrottles(ctx context.Context, horizon time.Duration) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM throttles WHERE window_start < ?`, s.now()-int64(horizon/time.Second))
	if err != nil {
		return 0, fmt.Errorf("delete stale throttles: %w", err)
	}
	return res.RowsAffected()
}
