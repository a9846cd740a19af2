package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// OutboxMessage is an email waiting in (or delivered from) the outbox.
type OutboxMessage struct {
	ID            int64
	WorkspaceID   int64 // 0 for platform mail
	Kind          string
	To            string
	Subject       string
	Text          string
	HTML          string
	CreatedAt     time.Time
	NextAttemptAt time.Time
	Attempts      int
	SentAt        time.Time
	FailedAt      time.Time
	LastError     string
}

const outboxColumns = `id, workspace_id, kind, to_addr, subject, text_body, html_body, created_at, next_attempt_at, attempts, sent_at, failed_at, COALESCE(last_error, '')`

func scanOutbox(row interface{ Scan(...any) error }) (OutboxMessage, error) {
	var m OutboxMessage
	var ws, sent, failed sql.NullInt64
	var created, next int64
	if err := row.Scan(&m.ID, &ws, &m.Kind, &m.To, &m.Subject, &m.Text, &m.HTML, &created, &next, &m.Attempts, &sent, &failed, &m.LastError); err != nil {
		return OutboxMessage{}, err
	}
	m.WorkspaceID, m.CreatedAt, m.NextAttemptAt, m.SentAt, m.FailedAt = ws.Int64, unix(created), unix(next), nullTime(sent), nullTime(failed)
	return m, nil
}

// enqueue writes msg to the outbox inside tx, so that it is sent if and only
// if the change that causes it commits. A message with no recipient is
// skipped.
func (s *Store) enqueue(ctx context.Context, tx *sql.Tx, workspaceID int64, msg OutboxMessage) error {
	return s.enqueueAll(ctx, tx, workspaceID, msg)
}

// enqueueAll writes msgs to the outbox inside tx, one statement for up to
// rowsPerInsert messages; those without a recipient are skipped.
func (s *Store) enqueueAll(ctx context.Context, tx *sql.Tx, workspaceID int64, msgs ...OutboxMessage) error {
	now := s.now()
	var rows [][]any
	for _, msg := range msgs {
		if msg.To != "" {
			rows = append(rows, []any{nullID(workspaceID), msg.Kind, msg.To, msg.Subject, msg.Text, msg.HTML, now, now})
		}
	}
	if err := insertValues(ctx, tx, `INSERT INTO outbox (workspace_id, kind, to_addr, subject, text_body, html_body, created_at, next_attempt_at)`, rows); err != nil {
		return fmt.Errorf("enqueue mail: %w", err)
	}
	return nil
}

// Enqueue writes one message to the outbox on its own.
func (s *Store) Enqueue(ctx context.Context, workspaceID int64, msg OutboxMessage) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.enqueue(ctx, tx, workspaceID, msg) })
}

// ClaimOutbox claims up to limit due messages for lease, atomically: a
// claimed row is invisible to other claimers until its lease runs out, so
// several senders never hold the same message.
func (s *Store) ClaimOutbox(ctx context.Context, claimToken string, lease time.Duration, limit int) ([]OutboxMessage, error) {
	// Senders poll, most often an outbox with nothing due: look first
	// without the write lock, so that idle polls of several processes do not
	// queue behind each other and hold back the writes that matter.
	var due bool
	if err := s.q(ctx).QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM outbox
		WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?))`,
		s.now(), s.now()).Scan(&due); err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	if !due {
		return nil, nil
	}
	var out []OutboxMessage
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		// The rows are picked once (MATERIALIZED): PostgreSQL would
		// otherwise run a locking subquery again for each row it updates,
		// skipping the rows it had just claimed and taking more.
		_, err := tx.ExecContext(ctx, `
			WITH picked AS MATERIALIZED (
				SELECT id FROM outbox
				WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?
				  AND (claimed_until IS NULL OR claimed_until < ?)
				ORDER BY id LIMIT ?`+s.engine.skipLocked()+`)
			UPDATE outbox SET claim_token = ?, claimed_until = ?
			WHERE id IN (SELECT id FROM picked)
			  AND sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?
			  AND (claimed_until IS NULL OR claimed_until < ?)`,
			now, now, limit, claimToken, now+int64(lease/time.Second), now, now)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE claim_token = ? AND sent_at IS NULL ORDER BY id`, claimToken)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanOutbox(rows)
			if err != nil {
				return fmt.Errorf("claim outbox: %w", err)
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// RenewOutboxClaim extends the holder's claim on one message to lease from
// now, just before it is sent: a batch is claimed under one lease but sent
// one message at a time, and a message must not go out after its lease ran
// out and another sender may have claimed it. It reports false when the
// claim is no longer the caller's (taken over, or the message is done).
func (s *Store) RenewOutboxClaim(ctx context.Context, id int64, claimToken string, lease time.Duration) (bool, error) {
	res, err := s.exec(ctx, `
		UPDATE outbox SET claimed_until = ?
		WHERE id = ? AND claim_token = ? AND sent_at IS NULL AND failed_at IS NULL`,
		s.now()+int64(lease/time.Second), id, claimToken)
	if err != nil {
		return false, fmt.Errorf("renew outbox claim: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("renew outbox claim: %w", err)
	}
	return n == 1, nil
}

// ReleaseOutboxClaim hands back the holder's claim on the messages ids that
// it will not attempt after all (its batch was cut short by an error or by
// shutdown), so that any sender may take them at once instead of when the
// lease runs out. Messages already done, or claimed by another since, are
// left alone.
func (s *Store) ReleaseOutboxClaim(ctx context.Context, claimToken string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	in, args := inList(ids)
	_, err := s.exec(ctx, `
		UPDATE outbox SET claim_token = NULL, claimed_until = NULL
		WHERE claim_token = ? AND sent_at IS NULL AND failed_at IS NULL AND id IN (`+in+`)`,
		append([]any{claimToken}, args...)...)
	if err != nil {
		return fmt.Errorf("release outbox claim: %w", err)
	}
	return nil
}

// MarkOutboxSent records a delivery. It only succeeds for the holder of the
// claim; anyone else gets ErrNotFound (the claim expired and was taken over).
func (s *Store) MarkOutboxSent(ctx context.Context, id int64, claimToken string) error {
	res, err := s.exec(ctx, `
		UPDATE outbox SET sent_at = ?, attempts = attempts + 1, claim_token = NULL, claimed_until = NULL, last_error = NULL
		WHERE id = ? AND claim_token = ? AND sent_at IS NULL`, s.now(), id, claimToken)
	return claimResult("mark outbox sent", res, err)
}

// MarkOutboxRetry records a failed attempt: the message is tried again at
// next, or given up on (failed) when next is the zero time. It returns
// ErrNotFound unless the caller still holds the claim.
func (s *Store) MarkOutboxRetry(ctx context.Context, id int64, claimToken string, next time.Time, cause string) error {
	var failedAt sql.NullInt64
	nextAt := s.now()
	if next.IsZero() {
		failedAt = sql.NullInt64{Int64: s.now(), Valid: true}
	} else {
		nextAt = next.Unix()
	}
	res, err := s.exec(ctx, `
		UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, failed_at = ?, last_error = ?,
			claim_token = NULL, claimed_until = NULL
		WHERE id = ? AND claim_token = ? AND sent_at IS NULL`, nextAt, failedAt, truncate(cause, 1000), id, claimToken)
	return claimResult("mark outbox retry", res, err)
}

// claimResult turns the outcome of an update guarded by a claim token into
// nil, ErrNotFound (the claim is not the caller's) or the error.
func claimResult(op string, res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: claim lost: %w", op, ErrNotFound)
	}
	return nil
}

// OutboxMessages lists the newest messages (the dev mailbox).
func (s *Store) OutboxMessages(ctx context.Context, limit int) ([]OutboxMessage, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox messages: %w", err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("outbox messages: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// OutboxMessage returns one message by id, or ErrNotFound.
func (s *Store) OutboxMessage(ctx context.Context, id int64) (OutboxMessage, error) {
	m, err := scanOutbox(s.q(ctx).QueryRowContext(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE id = ?`, id))
	if err != nil {
		return OutboxMessage{}, notFound("outbox message", err)
	}
	return m, nil
}

// OutboxStats is the outbox's backlog, for the metrics.
type OutboxStats struct {
	// Unsent counts messages still to be delivered (due or waiting for a
	// retry); OldestUnsent is when the oldest of them was queued (zero when
	// there is none).
	Unsent       int
	OldestUnsent time.Time
	// Failed counts messages given up on.
	Failed int
}

// OutboxStats counts the outbox's backlog. Both counts read the outbox_due
// index (sent_at, failed_at, …) only for the rows they count, so the cost
// follows the backlog, not the outbox's history.
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	var oldest sql.NullInt64
	err := s.q(ctx).QueryRowContext(ctx, `
		SELECT (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL),
		       (SELECT MIN(created_at) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL),
		       (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NOT NULL)`).Scan(&st.Unsent, &oldest, &st.Failed)
	if err != nil {
		return OutboxStats{}, fmt.Errorf("outbox stats: %w", err)
	}
	st.OldestUnsent = nullTime(oldest)
	return st, nil
}
