package bench

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kmipd/kmipd/audit"
	"github.com/kmipd/kmipd/kmipops"
)

// BenchmarkInProcessAudit is BenchmarkInProcess's Get and reconnecting
// scenarios with the audit log off and on (a file in a temp dir), in one
// run. cpu-ns/op is the process's CPU time per request, load generator
// included (it shares the process, as it shares the machine in
// scripts/bench.sh): on a busy machine it moves less than ns/op.
// Compare the modes in separate runs, alternating, e.g.
//
//	go test -c -o bench.test ./bench/ && for i in 1 2 3 4 5; do for m in off file; do
//	  ./bench.test -test.run '^$' -test.bench "InProcessAudit/$m/^get" -test.benchtime 30000x; done; done
func BenchmarkInProcessAudit(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "file"
		}
		// Each mode starts its own server inside its b.Run, so that a run
		// filtered to one mode has one server: in one process the server
		// started first was measurably faster, whichever it was.
		b.Run(name, func(b *testing.B) {
			var with []func(*kmipops.Options)
			if on {
				s, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), audit.Options{}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				with = append(with, func(o *kmipops.Options) { o.Audit = s })
			}
			env := startInProcess(b, with...)
			for _, sc := range []struct {
				name, mix, mode string
				workers         int
			}{
				{"get/persistent/32", MixGet, Persistent, 32},
				{"create-get-destroy/reconnect/16", MixCreateGetDestroy, Reconnect, 16},
			} {
				b.Run(sc.name, func(b *testing.B) {
					c := env.tls.Clone()
					c.MaxVersion = tls.VersionTLS13
					cpu0 := cpuTime(b)
					res, err := Run(context.Background(), Config{
						Addr: env.addr, TLS: []*tls.Config{c}, Mode: sc.mode, Mix: sc.mix,
						Workers: sc.workers, MaxOps: uint64(b.N), Timeout: 30 * time.Second,
					})
					if err != nil {
						b.Fatal(err)
					}
					if res.Errors > 0 {
						b.Fatalf("%d errors: %v", res.Errors, res.ErrorSamples)
					}
					b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(max(res.Ops, 1)), "cpu-ns/op")
					b.ReportMetric(res.Seconds*1e9/float64(max(res.Ops, 1)), "ns/op")
					b.ReportMetric(res.OKPerSec, "ops/s")
					b.ReportMetric(res.Latency.P99, "p99-ms")
				})
			}
		})
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
