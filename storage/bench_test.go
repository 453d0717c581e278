package storage

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
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

// BenchmarkDurableCycle is the store's part of kmipd's create-get-destroy
// (BenchmarkDurableWrites in bench/) without TLS and KMIP: from 16
// goroutines, a Create's batch (a sealed record, four blind-index entries
// and an ordering entry), the first Get's Put (Fresh), and a Destroy's
// batch (the record, one entry moved), all synced. cpu-us/cycle is the
// process's CPU per cycle, which the load of other processes moves less
// than wall time.
func BenchmarkDurableCycle(b *testing.B) {
	s := openTest(b, b.TempDir())
	defer s.Close()
	record := make([]byte, 1200)
	entry := func(i int64, term string) string {
		// idx/<owner>/<hex tag>/<uid>, as kmipops/object writes them.
		return fmt.Sprintf("idx/owner0123456789abcdef/%064x/%036d", sha(term), i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				key := fmt.Sprintf("obj/owner0123456789abcdef/%036d", i)
				create := []Write{{Kind: WriteCreate, Key: key, Value: record}}
				for _, t := range []string{"type", "state-pre", "alg", "len"} {
					create = append(create, Write{Kind: WritePut, Key: entry(i, t)})
				}
				create = append(create, Write{Kind: WritePut, Key: fmt.Sprintf("idx/owner0123456789abcdef/order/%016x/%036d", -i, i)})
				destroy := []Write{{Kind: WritePut, Key: key, Value: record},
					{Kind: WriteDelete, Key: entry(i, "state-pre")}, {Kind: WritePut, Key: entry(i, "state-destroyed")}}
				if err := s.Apply(ctx, create); err != nil {
					b.Error(err)
					return
				}
				if err := s.Put(ctx, key, record); err != nil {
					b.Error(err)
					return
				}
				if err := s.Apply(ctx, destroy); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/cycle")
	reportCommits(b, s)
}

func sha(term string) [32]byte { return sha256.Sum256([]byte(term)) }

// cpuTime is the process's user+system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
