package audit

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSinkLog: events a file sink takes per second, writer included
// (Close, which writes everything, is inside the timing), what Log
// allocates per event, and cpu-ns/op: the process's CPU time (user+system,
// every goroutine, the writer's too) per event, steadier than ns/op on a
// shared machine.
// Run: go test -run '^$' -bench BenchmarkSink ./audit/
func BenchmarkSinkLog(b *testing.B) {
	e := testEvent(7)
	run := func(b *testing.B, parallel bool) {
		s, err := Open(filepath.Join(b.TempDir(), "audit.log"), Options{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ReportAllocs()
		cpu0 := cpuTime(b)
		b.ResetTimer()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = s.Log(ctx, e)
				}
			})
		} else {
			for range b.N {
				_ = s.Log(ctx, e)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}

// BenchmarkEncodeEvent is the writer's work per line: JSON and SHA-256.
func BenchmarkEncodeEvent(b *testing.B) {
	e := testEvent(7)
	var c chain
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = c.appendEvent(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
