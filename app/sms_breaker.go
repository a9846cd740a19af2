package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/db"
)

// The SMS circuit breaker stops texts to new numbers (setup codes) while
// the service's SMS traffic looks like toll fraud or a broken provider:
// over the last smsBreakerWindow, across every workspace,
//
//   - at least smsBreakerUnverifiedMin texts to never-verified numbers
//     making up at least half of all texts queued, or
//   - at least smsBreakerAttemptsMin texts sent or given up on, at least
//     half of them given up on.
//
// The state is derived from the database (db.SMSStats), never from a
// node's memory, so every node agrees; it closes by itself once the window
// no longer holds the spike (at most smsBreakerWindow after it ended,
// since no new setup texts are queued while it is open). Sign-in and
// step-up texts to verified numbers go on. A setup refused by it answers
// 503 sms_unavailable (errSMSUnavailable), the same for everyone.
const (
	smsBreakerWindow        = 15 * time.Minute
	smsBreakerUnverifiedMin = 50
	smsBreakerAttemptsMin   = 20
	// smsBreakerFor is how long one read of the state serves (a node
	// reads SMSStats at most this often).
	smsBreakerFor = 5 * time.Second
)

// smsBreaker caches the state read from the database and remembers the
// last one seen, to log the changes.
type smsBreaker struct {
	mu     sync.Mutex
	readAt time.Time
	open   bool
	known  bool
	reason string
}

// smsBreakerTripped reports whether st, the traffic of the window, opens
// the breaker, and why.
func smsBreakerTripped(st db.SMSStats) (bool, string) {
	if st.ToUnverified >= smsBreakerUnverifiedMin && 2*st.ToUnverified >= st.Queued {
		return true, "unverified_numbers"
	}
	if attempts := st.Sent + st.Failed; attempts >= smsBreakerAttemptsMin && 2*st.Failed >= attempts {
		return true, "failures"
	}
	return false, ""
}

// smsBreakerOpen reports whether texts to new numbers are stopped. The
// opening and the closing are logged once by each node that sees them.
func (s *Server) smsBreakerOpen(ctx context.Context) (bool, error) {
	b := &s.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	now := s.now()
	if b.known && now.Sub(b.readAt) < smsBreakerFor && !now.Before(b.readAt) {
		return b.open, nil
	}
	st, err := s.store.SMSStats(ctx, now.Add(-smsBreakerWindow))
	if err != nil {
		return false, err
	}
	open, reason := smsBreakerTripped(st)
	if open != b.open || !b.known {
		if open {
			s.log.Warn("sms circuit breaker open", slog.String("reason", reason), slog.Int("queued", st.Queued),
				slog.Int("to_unverified", st.ToUnverified), slog.Int("sent", st.Sent), slog.Int("failed", st.Failed))
		} else if b.known {
			s.log.Info("sms circuit breaker closed", slog.Int("queued", st.Queued), slog.Int("to_unverified", st.ToUnverified),
				slog.Int("sent", st.Sent), slog.Int("failed", st.Failed))
		}
	}
	b.open, b.reason, b.readAt, b.known = open, reason, now, true
	return open, nil
}
