package auth

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// reportCPU adds cpu-ms/op: process CPU time (hashing, GC, page faults) per
// operation since start, which stays meaningful when other work shares the
// machine and stretches ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	if start == 0 {
		return
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkHasherVerify is one password check with the default production
// parameters, one at a time: cpu-ms/op is the cost of one hash, and
// bound-hashes/s = GOMAXPROCS / cpu-ms/op is the most sign-ins per second
// the pool can reach on otherwise idle cores.
func BenchmarkHasherVerify(b *testing.B) {
	h := NewHasher(DefaultParams)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", enc); err != nil || !ok {
			b.Fatalf("verify = %v, %v", ok, err)
		}
	}
	reportCPU(b, cpu0)
	if cpu0 != 0 {
		perHash := float64(cpuTime()-cpu0) / float64(b.N)
		b.ReportMetric(float64(runtime.GOMAXPROCS(0))*float64(time.Second)/perHash, "bound-hashes/s")
	}
}

// BenchmarkHasherVerifyParallel runs four callers per slot, as concurrent
// sign-ins do: hashes/s is the throughput the pool really reaches (on a
// shared machine, less than bound-hashes/s).
func BenchmarkHasherVerifyParallel(b *testing.B) {
	h := NewHasher(DefaultParams)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(4)
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := h.Verify(ctx, "correct horse battery staple", enc); err != nil || !ok {
				b.Errorf("verify = %v, %v", ok, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "hashes/s")
	reportCPU(b, cpu0)
}
