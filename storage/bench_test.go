package storage

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// BenchmarkSustainedCreate writes b.N object-sized records from 16
// goroutines as fast as synced writes allow, and reports the write latency
// tail and the worst second: what background flushes and compactions do to
// the write path. With -v it logs every second (writes, p99, max and
// level-0 tables). It only means something once several memtables have
// filled: with badger's defaults, badger's first level-0 compaction (five
// 64 MiB tables into the last level) comes after about 300,000 writes, so
// run it with -benchtime=400000x.
func BenchmarkSustainedCreate(b *testing.B) {
	s := openTest(b, b.TempDir())
	defer s.Close()
	value := make([]byte, 1200) // a sealed object record
	start := time.Now()
	type second struct {
		mu  sync.Mutex
		lat []time.Duration
	}
	var (
		secMu sync.Mutex
		secs  []*second
	)
	at := func(t time.Time) *second {
		i := int(t.Sub(start) / time.Second)
		secMu.Lock()
		defer secMu.Unlock()
		for len(secs) <= i {
			secs = append(secs, &second{})
		}
		return secs[i]
	}
	l0 := map[int]int{}
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() { // level-0 tables at each second's end
		defer sampler.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(time.Until(start.Add(time.Duration(i+1) * time.Second))):
			}
			for _, l := range s.db.Levels() {
				if l.Level == 0 {
					l0[i] = l.NumTables
				}
			}
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				t0 := time.Now()
				if err := s.Create(ctx, fmt.Sprintf("obj/owner/%d", i), value); err != nil {
					b.Error(err)
					return
				}
				sec := at(t0)
				sec.mu.Lock()
				sec.lat = append(sec.lat, time.Since(t0))
				sec.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(done)
	sampler.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	worst := -1
	// The last second is partial; it does not compete for the worst.
	for i, sec := range secs {
		sort.Slice(sec.lat, func(x, y int) bool { return sec.lat[x] < sec.lat[y] })
		all = append(all, sec.lat...)
		if n := len(sec.lat); n > 0 {
			b.Logf("second %3d: %6d writes, p99 %7.2f ms, max %7.2f ms, level-0 tables %d",
				i, n, ms(sec.lat[n*99/100]), ms(sec.lat[n-1]), l0[i])
		}
		if i < len(secs)-1 && (worst < 0 || len(sec.lat) < len(secs[worst].lat)) {
			worst = i
		}
	}
	sort.Slice(all, func(x, y int) bool { return all[x] < all[y] })
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "writes/s")
	b.ReportMetric(ms(all[len(all)*99/100]), "p99-ms")
	b.ReportMetric(ms(all[len(all)-1]), "max-ms")
	if worst >= 0 {
		b.ReportMetric(float64(len(secs[worst].lat)), "worst-second-writes")
	}
	reportCommits(b, s)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
