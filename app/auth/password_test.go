package auth

import (
	"context"
	"errors"
	"testing"
)

func TestHasherSheds(t *testing.T) {
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1})
	if _, err := h.Hash(context.Background(), "a password"); err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if running, waiting := h.Load(); running != 0 || waiting != 0 || h.Sheds() != 0 {
		t.Fatalf("idle Load() = %d, %d, Sheds() = %d; want 0, 0, 0", running, waiting, h.Sheds())
	}
	h.queue = 0 // every place taken
	if _, err := h.Hash(context.Background(), "a password"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash with a full queue = %v, want ErrBusy", err)
	}
	if !h.ShedIfSaturated() {
		t.Fatal("ShedIfSaturated() with a full queue = false")
	}
	if got := h.Sheds(); got != 2 {
		t.Errorf("Sheds() = %d, want 2", got)
	}
	h.queue = 256
	if h.ShedIfSaturated() || h.Sheds() != 2 {
		t.Errorf("ShedIfSaturated() with room counted a shed: Sheds() = %d", h.Sheds())
	}
}
