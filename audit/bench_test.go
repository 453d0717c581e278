package audit

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkSinkLog: events a file sink takes per second, writer included
// (Close, which writes everything, is inside the timing), and what Log
// allocates per event.
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
