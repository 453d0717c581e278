package hostile

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kmipd/kmipd/server"
)

// Usage is a process-wide snapshot of what a hostile client could make the
// server hold on to.
type Usage struct {
	Goroutines int
	HeapInuse  uint64 // live heap after a GC
	TotalAlloc uint64 // cumulative bytes allocated
}

// Measure collects garbage and samples the process. Two GCs, because the
// first only queues finalizers (TLS connections have none, but badger's
// caches and sync.Pools settle on the second).
func Measure() Usage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Usage{Goroutines: runtime.NumGoroutine(), HeapInuse: ms.HeapInuse, TotalAlloc: ms.TotalAlloc}
}

// WaitGoroutines waits until at most baseline+tolerance goroutines run,
// failing the test with a dump of them after timeout. Connection goroutines
// end asynchronously after a close, hence waiting rather than sampling.
func WaitGoroutines(t testing.TB, baseline, tolerance int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+tolerance {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, baseline %d (+%d allowed) after %v:\n%s", n, baseline, tolerance, timeout, summarize(string(buf)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// summarize counts goroutines by the function at the top of their stack,
// which is what tells a leak apart in a dump of thousands.
func summarize(dump string) string {
	counts := map[string]int{}
	var order []string
	for _, g := range strings.Split(dump, "\n\n") {
		lines := strings.Split(g, "\n")
		key := "?"
		for _, l := range lines[1:] {
			if l != "" && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "runtime.") &&
				!strings.HasPrefix(l, "internal/") && !strings.HasPrefix(l, "sync.") {
				key = l
				break
			}
		}
		if counts[key] == 0 {
			order = append(order, key)
		}
		counts[key]++
	}
	var b strings.Builder
	for _, k := range order {
		fmt.Fprintf(&b, "  %s ×%d\n", k, counts[k])
	}
	return b.String()
}

// Metric reads a counter or gauge from the server's registry: the sum of
// the series whose labels include the given name, value pairs (0 if none).
func Metric(m *server.Metrics, name string, labels ...string) float64 {
	fams, err := m.Registry().Gather()
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range s.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case s.Counter != nil:
				sum += s.Counter.GetValue()
			case s.Gauge != nil:
				sum += s.Gauge.GetValue()
			}
		}
	}
	return sum
}

// WaitMetric waits until cond holds for the metric, or fails the test.
func WaitMetric(t testing.TB, m *server.Metrics, name string, cond func(float64) bool, timeout time.Duration, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := Metric(m, name, labels...)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s%v = %v, condition not met after %v", name, labels, v, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
