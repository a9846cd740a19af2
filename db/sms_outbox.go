package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SMSMessage is a text waiting in (or sent from) sms_outbox. Body is the
// text sealed under the master key KeyID, with the row's id as associated
// data (RequestSMSCode's Sealer).
type SMSMessage struct {
	ID             int64
	WorkspaceID    int64
	UserID         int64 // 0 once the member is gone
	PhoneID        int64 // 0 once the phone is gone
	To             string
	Country        string
	KeyID          string
	Body           []byte
	PriceMicros    int64
	VerifiedNumber bool
	CreatedAt      time.Time
	ExpiresAt      time.Time // the code's expiry: the text is not sent after it
	NextAttemptAt  time.Time
	Attempts       int
	SentAt         time.Time
	FailedAt       time.Time
	LastError      string
	ProviderID     string
}

const smsOutboxColumns = `id, workspace_id, user_id, phone_id, to_e164, country, key_id, body_sealed, price_micros, verified_number,
	created_at, expires_at, next_attempt_at, attempts, sent_at, failed_at, COALESCE(last_error, ''), COALESCE(provider_id, '')`

func scanSMSMessage(row interface{ Scan(...any) error }) (SMSMessage, error) {
	var m SMSMessage
	var user, phone, sent, failed sql.NullInt64
	var created, expires, next int64
	if err := row.Scan(&m.ID, &m.WorkspaceID, &user, &phone, &m.To, &m.Country, &m.KeyID, &m.Body, &m.PriceMicros, &m.VerifiedNumber,
		&created, &expires, &next, &m.Attempts, &sent, &failed, &m.LastError, &m.ProviderID); err != nil {
		return SMSMessage{}, err
	}
	m.UserID, m.PhoneID = user.Int64, phone.Int64
	m.CreatedAt, m.ExpiresAt, m.NextAttemptAt, m.SentAt, m.FailedAt = unix(created), unix(expires), unix(next), nullTime(sent), nullTime(failed)
	return m, nil
}

// smsDue is the condition of a text a sender may take now.
const smsDue = `sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)`

// ClaimSMSOutbox claims up to limit due texts for lease, atomically, as
// ClaimOutbox does for mail: a claimed row is invisible to other claimers
// until its lease runs out, so several senders never hold the same text.
// Due texts whose code has expired are given up ("expired") instead: a
// code that cannot be used is not worth a text.
func (s *Store) ClaimSMSOutbox(ctx context.Context, claimToken string, lease time.Duration, limit int) ([]SMSMessage, error) {
	// Look first without the write lock: idle polls of several nodes do
	// not queue behind each other.
	var due bool
	if err := s.q(ctx).QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sms_outbox WHERE `+smsDue+`)`, s.now(), s.now()).Scan(&due); err != nil {
		return nil, fmt.Errorf("claim sms outbox: %w", err)
	}
	if !due {
		return nil, nil
	}
	var out []SMSMessage
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE sms_outbox SET failed_at = ?, last_error = 'expired', claim_token = NULL, claimed_until = NULL
			WHERE `+smsDue+` AND expires_at <= ?`, now, now, now, now); err != nil {
			return fmt.Errorf("claim sms outbox: %w", err)
		}
		// Picked once (MATERIALIZED), as in ClaimOutbox: PostgreSQL would
		// otherwise run the locking subquery again for each row it updates.
		if _, err := tx.ExecContext(ctx, `
			WITH picked AS MATERIALIZED (
				SELECT id FROM sms_outbox
				WHERE `+smsDue+` AND expires_at > ?
				ORDER BY id LIMIT ?`+s.engine.skipLocked()+`)
			UPDATE sms_outbox SET claim_token = ?, claimed_until = ?
			WHERE id IN (SELECT id FROM picked) AND `+smsDue+` AND expires_at > ?`,
			now, now, now, limit, claimToken, now+int64(lease/time.Second), now, now, now); err != nil {
			return fmt.Errorf("claim sms outbox: %w", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+smsOutboxColumns+` FROM sms_outbox
			WHERE claim_token = ? AND sent_at IS NULL AND failed_at IS NULL ORDER BY id`, claimToken)
		if err != nil {
			return fmt.Errorf("claim sms outbox: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanSMSMessage(rows)
			if err != nil {
				return fmt.Errorf("claim sms outbox: %w", err)
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// RenewSMSClaim extends the holder's claim on one text to lease from now,
// just before it is sent, as RenewOutboxClaim does. It reports false when
// the claim is no longer the caller's (taken over, given up, or done).
func (s *Store) RenewSMSClaim(ctx context.Context, id int64, claimToken string, lease time.Duration) (bool, error) {
	res, err := s.exec(ctx, `UPDATE sms_outbox SET claimed_until = ?
		WHERE id = ? AND claim_token = ? AND sent_at IS NULL AND failed_at IS NULL AND expires_at > ?`,
		s.now()+int64(lease/time.Second), id, claimToken, s.now())
	if err != nil {
		return false, fmt.Errorf("renew sms claim: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("renew sms claim: %w", err)
	}
	return n == 1, nil
}

// MarkSMSSent records that the provider took the text (providerID is its
// message id). Only the holder of the claim can; anyone else gets
// ErrNotFound.
func (s *Store) MarkSMSSent(ctx context.Context, id int64, claimToken, providerID string) error {
	res, err := s.exec(ctx, `
		UPDATE sms_outbox SET sent_at = ?, attempts = attempts + 1, provider_id = ?, claim_token = NULL, claimed_until = NULL, last_error = NULL
		WHERE id = ? AND claim_token = ? AND sent_at IS NULL AND failed_at IS NULL`, s.now(), truncate(providerID, 200), id, claimToken)
	return claimResult("mark sms sent", res, err)
}

// MarkSMSRetry records a failed attempt to be tried again at next. It
// returns ErrNotFound unless the caller still holds the claim.
func (s *Store) MarkSMSRetry(ctx context.Context, id int64, claimToken string, next time.Time, cause string) error {
	res, err := s.exec(ctx, `
		UPDATE sms_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, claim_token = NULL, claimed_until = NULL
		WHERE id = ? AND claim_token = ? AND sent_at IS NULL AND failed_at IS NULL`, next.Unix(), truncate(cause, 1000), id, claimToken)
	return claimResult("mark sms retry", res, err)
}

// MarkSMSFailed gives the text up (the provider refused the number, or
// the retries ran out). It returns ErrNotFound unless the caller still
// holds the claim.
func (s *Store) MarkSMSFailed(ctx context.Context, id int64, claimToken, cause string) error {
	res, err := s.exec(ctx, `
		UPDATE sms_outbox SET attempts = attempts + 1, failed_at = ?, last_error = ?, claim_token = NULL, claimed_until = NULL
		WHERE id = ? AND claim_token = ? AND sent_at IS NULL AND failed_at IS NULL`, s.now(), truncate(cause, 1000), id, claimToken)
	return claimResult("mark sms failed", res, err)
}

// SMSMessages lists the newest texts of every workspace, sealed (the dev
// outbox opens them).
func (s *Store) SMSMessages(ctx context.Context, limit int) ([]SMSMessage, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT `+smsOutboxColumns+` FROM sms_outbox ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sms messages: %w", err)
	}
	defer rows.Close()
	var out []SMSMessage
	for rows.Next() {
		m, err := scanSMSMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("sms messages: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
