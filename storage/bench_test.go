package storage

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkSyncedCreate is concurrent Creates against a store with synced
// writes, as kmipd's Create and Register issue them: what group commit is
// for. ns/op is wall time per Create at that concurrency.
func BenchmarkSyncedCreate(b *testing.B) {
	for _, want := range []int{1, 16, 64} {
		// RunParallel runs parallelism × GOMAXPROCS goroutines.
		par := max(1, want/runtime.GOMAXPROCS(0))
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			s := openTest(b, b.TempDir())
			defer s.Close()
			value := make([]byte, 800) // a sealed object record
			var next atomic.Int64
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					key := fmt.Sprintf("obj/owner/%d", next.Add(1))
					if err := s.Create(ctx, key, value); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportCommits(b, s)
		})
	}
}

// reportCommits reports how many operations each committed transaction
// carried: 1 means no group commit happened.
func reportCommits(b *testing.B, s *Badger) {
	if g := s.groups.Load(); g > 0 {
		b.ReportMetric(float64(s.grouped.Load())/float64(g), "ops/commit")
	}
}
