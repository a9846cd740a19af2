package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ThrottleBlocked reports until when key is blocked: the end of its window
// when it holds limit or more failures, the zero time otherwise.
func (s *Store) ThrottleBlocked(ctx context.Context, key string, window time.Duration, limit int) (time.Time, error) {
	var start int64
	var failures int
	err := s.db.QueryRowContext(ctx, `SELECT window_start, failures FROM throttles WHERE key = ?`, key).Scan(&start, &failures)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return time.Time{}, nil
		}
		return time.Time{}, fmt.Errorf("throttle blocked: %w", err)
	}
	end := start + int64(window/time.Second)
	if failures >= limit && s.now() < end {
		return unix(end), nil
	}
	return time.Time{}, nil
}

// ThrottleFail counts one failure for key in a fixed window starting at its
// first failure, atomically across app nodes, and returns the failures in
// the current window.
func (s *Store) ThrottleFail(ctx context.Context, key string, window time.Duration) (int, error) {
	now := s.now()
	cutoff := now - int64(window/time.Second)
	var failures int
	err := s.db.QueryRowContext(ctx, `
		INSERT INTO throttles (key, window_start, failures) VALUES (?, ?, 1)
		ON CONFLICT (key) DO UPDATE SET
			failures     = CASE WHEN throttles.window_start <= ? THEN 1 ELSE throttles.failures + 1 END,
			window_start = CASE WHEN throttles.window_start <= ? THEN ? ELSE throttles.window_start END
		RETURNING failures`, key, now, cutoff, cutoff, now).Scan(&failures)
	if err != nil {
		return 0, fmt.Errorf("throttle fail: %w", err)
	}
	return failures, nil
}

// ThrottleReset forgets key's failures (after a success).
func (s *Store) ThrottleReset(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM throttles WHERE key = ?`, key); err != nil {
		return fmt.Errorf("throttle reset: %w", err)
	}
	return nil
}

// DeleteStaleThrottles removes counters whose window ended before horizon.
func (s *Store) DeleteStaleThrottles(ctx context.Context, horizon time.Duration) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM throttles WHERE window_start < ?`, s.now()-int64(horizon/time.Second))
	if err != nil {
		return 0, fmt.Errorf("delete stale throttles: %w", err)
	}
	return res.RowsAffected()
}
