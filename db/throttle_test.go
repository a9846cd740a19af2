package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

func TestThrottleTakeWindow(t *testing.T) {
	store, clock := dbtest.New(t)
	ctx := context.Background()
	start := clock.Now()
	for i := 1; i <= 3; i++ {
		if _, err := store.ThrottleTake(ctx, "k", time.Minute, 3); err != nil {
			t.Fatalf("take %d of 3: %v", i, err)
		}
		clock.Advance(time.Second)
	}
	_, err := store.ThrottleTake(ctx, "k", time.Minute, 3)
	var tm *db.TooManyError
	if !errors.As(err, &tm) || !errors.Is(err, db.ErrTooMany) || !tm.Until.Equal(start.Add(time.Minute)) {
		t.Fatalf("4th take = %v, want a TooManyError until %v", err, start.Add(time.Minute))
	}
	// A refused take counted nothing: one refund opens exactly one place.
	th := db.Throttle{}
	if err := store.ThrottleRefund(ctx, th); err != nil {
		t.Fatalf("zero refund: %v", err)
	}
	if _, err := store.ThrottleTake(ctx, "other", time.Minute, 1); err != nil {
		t.Fatalf("another key: %v", err)
	}
	clock.Advance(time.Minute)
	th, err = store.ThrottleTake(ctx, "k", time.Minute, 3)
	if err != nil {
		t.Fatalf("take in a new window: %v", err)
	}
	store.ThrottleTake(ctx, "k", time.Minute, 3)
	store.ThrottleTake(ctx, "k", time.Minute, 3)
	if err := store.ThrottleRefund(ctx, th); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ThrottleTake(ctx, "k", time.Minute, 3); err != nil {
		t.Fatalf("take after a refund: %v", err)
	}
	if _, err := store.ThrottleTake(ctx, "k", time.Minute, 3); !errors.Is(err, db.ErrTooMany) {
		t.Fatalf("take past the limit after a refund = %v", err)
	}
	// A refund from an ended window does not open a place in the next.
	clock.Advance(time.Minute)
	for range 3 {
		store.ThrottleTake(ctx, "k", time.Minute, 3)
	}
	store.ThrottleRefund(ctx, th)
	if _, err := store.ThrottleTake(ctx, "k", time.Minute, 3); !errors.Is(err, db.ErrTooMany) {
		t.Fatalf("a stale refund opened a place: %v", err)
	}
}

// Takes racing for one key get exactly the limit, on a real SQLite file
// through the pool.
func TestThrottleTakeConcurrent(t *testing.T) {
	store, _ := dbtest.New(t)
	ctx := context.Background()
	var mu sync.Mutex
	var wg sync.WaitGroup
	taken, refused := 0, 0
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := store.ThrottleTake(ctx, "k", time.Minute, 10)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				taken++
			case errors.Is(err, db.ErrTooMany):
				refused++
			default:
				t.Errorf("take: %v", err)
			}
		}()
	}
	wg.Wait()
	if taken != 10 || refused != 30 {
		t.Fatalf("40 racing takes with limit 10: %d taken, %d refused; want 10 and 30", taken, refused)
	}
}
