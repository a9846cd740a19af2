package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/db/dbtest"
)

func TestOutboxStats(t *testing.T) {
	ctx := context.Background()
	store, clock := dbtest.New(t)
	st, err := store.OutboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st != (db.OutboxStats{}) {
		t.Errorf("OutboxStats() of an empty outbox = %+v, want zero", st)
	}

	first := clock.Now()
	for _, to := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if err := store.Enqueue(ctx, 0, db.OutboxMessage{Kind: "test", To: to, Subject: "s", Text: "t"}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
	}
	// One sent, one given up on, one still waiting.
	msgs, err := store.ClaimOutbox(ctx, "claim", time.Minute, 2)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("ClaimOutbox = %d messages, %v; want 2", len(msgs), err)
	}
	if err := store.MarkOutboxSent(ctx, msgs[0].ID, "claim"); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkOutboxRetry(ctx, msgs[1].ID, "claim", time.Time{}, "rejected"); err != nil {
		t.Fatal(err)
	}
	if err := store.Enqueue(ctx, 0, db.OutboxMessage{Kind: "test", To: "d@example.com", Subject: "s", Text: "t"}); err != nil {
		t.Fatal(err)
	}

	st, err = store.OutboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := db.OutboxStats{Unsent: 2, OldestUnsent: first.Add(2 * time.Minute).Truncate(time.Second).UTC(), Failed: 1}
	if !st.OldestUnsent.Equal(want.OldestUnsent) || st.Unsent != want.Unsent || st.Failed != want.Failed {
		t.Errorf("OutboxStats() = %+v, want %+v", st, want)
	}
}
