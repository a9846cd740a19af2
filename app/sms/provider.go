package sms

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Message is one text to send.
type Message struct {
	To   string // E.164
	Body string
}

// Provider delivers texts: Twilio, or in dev mode an outbox that the dev
// mailbox page shows. Send returns the provider's id for the message
// (Twilio's "SM…" sid; may be empty), or an error that Permanent and
// RetryAfter classify; an error that is not a *SendError is retryable.
// Send does not retry: the caller's outbox does, with Backoff.
type Provider interface {
	Send(ctx context.Context, m Message) (providerID string, err error)
}

// SendError is a failed delivery, as the provider (or the network)
// reported it. Its text never holds the auth token, the message body or
// the recipient's full number.
type SendError struct {
	Permanent  bool          // retrying the same message cannot succeed
	Status     int           // the HTTP status, 0 when there was no answer
	Code       int           // the provider's error code (Twilio's 21211), 0 when none
	Message    string        // the provider's message, or what went wrong
	RetryAfter time.Duration // how long the provider asked us to wait (Retry-After), 0 when it did not
	Err        error         // the cause when there was no answer (a timeout, a refused connection)
}

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("sms provider: ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
		if e.Code != 0 {
			fmt.Fprintf(&b, " (code %d)", e.Code)
		}
		if e.Message != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Message)
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// Permanent reports whether err says that sending the message again
// cannot succeed (an invalid number, a refused request). It is false for
// nil and for errors other than *SendError.
func Permanent(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Permanent
}

// RetryAfter returns how long the provider asked us to wait before the
// next request, or 0. The caller waits at least this long, and at least
// Backoff.
func RetryAfter(err error) time.Duration {
	var se *SendError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// Backoff is the wait before the next try after attempt failed tries of
// one message (attempt ≥ 1): 2 s, doubling, at most one minute, less up
// to 20 % at random so that retries spread. Short, because a code lives
// 5 minutes: the caller gives up on a text once its code has expired.
func Backoff(attempt int) time.Duration {
	const base, limit = 2 * time.Second, time.Minute
	d := limit
	if attempt < 1 {
		attempt = 1
	}
	if attempt < 7 {
		d = min(base<<(attempt-1), limit)
	}
	return d - rand.N(d/5)
}
