package sms_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app/sms"
)

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		attempt int
		max     time.Duration
	}{{-1, 2 * time.Second}, {0, 2 * time.Second}, {1, 2 * time.Second}, {2, 4 * time.Second}, {3, 8 * time.Second},
		{4, 16 * time.Second}, {5, 32 * time.Second}, {6, time.Minute}, {7, time.Minute}, {63, time.Minute}, {1 << 40, time.Minute}} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := sms.Backoff(tt.attempt)
			if d > tt.max || d < tt.max*4/5 {
				t.Fatalf("Backoff(%d) = %v, want between %v and %v", tt.attempt, d, tt.max*4/5, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("Backoff(%d) always %v: no jitter", tt.attempt, seen)
		}
	}
}

func TestSendErrorClassification(t *testing.T) {
	perm := &sms.SendError{Permanent: true, Status: 400, Code: 21211, Message: "The 'To' number is not a valid phone number."}
	retry := &sms.SendError{Status: 429, Code: 20429, Message: "Too Many Requests", RetryAfter: 30 * time.Second}
	network := &sms.SendError{Message: "connection refused", Err: context.DeadlineExceeded}
	for _, tt := range []struct {
		err        error
		permanent  bool
		retryAfter time.Duration
		text       string
	}{
		{nil, false, 0, ""},
		{errors.New("other"), false, 0, "other"},
		{perm, true, 0, "sms provider: HTTP 400 (code 21211): The 'To' number is not a valid phone number."},
		{fmt.Errorf("outbox 7: %w", perm), true, 0, "outbox 7: sms provider: HTTP 400 (code 21211): The 'To' number is not a valid phone number."},
		{retry, false, 30 * time.Second, "sms provider: HTTP 429 (code 20429): Too Many Requests"},
		{fmt.Errorf("outbox 7: %w", retry), false, 30 * time.Second, "outbox 7: sms provider: HTTP 429 (code 20429): Too Many Requests"},
		{&sms.SendError{Status: 503}, false, 0, "sms provider: HTTP 503"},
		{network, false, 0, "sms provider: connection refused"},
	} {
		if got := sms.Permanent(tt.err); got != tt.permanent {
			t.Errorf("Permanent(%v) = %v", tt.err, got)
		}
		if got := sms.RetryAfter(tt.err); got != tt.retryAfter {
			t.Errorf("RetryAfter(%v) = %v, want %v", tt.err, got, tt.retryAfter)
		}
		if tt.err != nil && tt.err.Error() != tt.text {
			t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.text)
		}
	}
	if !errors.Is(network, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", network)
	}
}
