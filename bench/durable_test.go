package bench

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmipd/kmipd/daemon"
	"github.com/kmipd/kmipd/storage"
)

// memoryStore is storage.Memory as a daemon.Store: the same kmipd with no
// disk under it, the ceiling for synced writes. Embedding keeps Memory's
// Batcher and Viewer, so the index and the read path are those of Badger.
type memoryStore struct{ *storage.Memory }

func (memoryStore) Collector() prometheus.Collector { return noMetrics{} }

type noMetrics struct{}

func (noMetrics) Describe(chan<- *prometheus.Desc) {}
func (noMetrics) Collect(chan<- prometheus.Metric) {}

// BenchmarkDurableWrites runs create-get-destroy (16 persistent workers:
// three synced writes per cycle, Create, the first Get's Fresh, Destroy)
// against kmipd on Badger with synced writes and against the same kmipd on
// the in-memory store, alternating, three rounds of b.N cycles each, and
// reports the ratio of their medians (issue 20's target: >= 0.6).
//
//	go test -run '^$' -bench DurableWrites -benchtime 3000x ./bench/
func BenchmarkDurableWrites(b *testing.B) {
	disk := startInProcess(b)
	mem := startInProcessOn(b, memoryStore{storage.NewMemory()})
	run := func(env *inProcess) float64 {
		res, err := Run(context.Background(), Config{
			Addr: env.addr, TLS: []*tls.Config{env.tls}, Mode: Persistent, Mix: MixCreateGetDestroy,
			Workers: 16, MaxOps: uint64(b.N), Timeout: 30 * time.Second,
		})
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors > 0 {
			b.Fatalf("%d errors: %v", res.Errors, res.ErrorSamples)
		}
		return res.OKPerSec
	}
	var d, m []float64
	var dCPU, mCPU time.Duration // the process's, client included
	before := commitStats(b, disk.store)
	for range 3 {
		t0 := cpuTime(b)
		d = append(d, run(disk))
		t1 := cpuTime(b)
		m = append(m, run(mem))
		dCPU, mCPU = dCPU+t1-t0, mCPU+cpuTime(b)-t1
	}
	c := commitStats(b, disk.store).minus(before)
	median := func(v []float64) float64 {
		a, bb, c := v[0], v[1], v[2]
		return max(min(a, bb), min(max(a, bb), c))
	}
	b.ReportMetric(median(d), "badger-ops/s")
	b.ReportMetric(median(m), "memory-ops/s")
	b.ReportMetric(median(d)/median(m), "badger/memory")
	// Throughput swings with the load of other processes on shared cores;
	// CPU per cycle much less so. memory/badger of it is the ratio the
	// throughput would have where the cores are the limit.
	b.ReportMetric(float64(mCPU)/float64(dCPU), "cpu-memory/badger")
	b.ReportMetric(float64(dCPU.Microseconds())/float64(3*b.N), "badger-cpu-us/op")
	if c.commits > 0 {
		// Are the workers' writes sharing syncs, and what does one cost?
		b.ReportMetric(c.writes/c.commits, "writes/commit")
		b.ReportMetric(c.commitSum/c.commits*1e3, "ms/commit")
	}
}

// commits are a store's group-commit counters (storage/metrics.go).
type commits struct{ commits, writes, commitSum float64 }

func (c commits) minus(o commits) commits {
	return commits{c.commits - o.commits, c.writes - o.writes, c.commitSum - o.commitSum}
}

func commitStats(tb testing.TB, st daemon.Store) commits {
	tb.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(st.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var c commits
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "kmipd_storage_commits_total":
				c.commits = m.GetCounter().GetValue()
			case "kmipd_storage_committed_writes_total":
				c.writes = m.GetCounter().GetValue()
			case "kmipd_storage_commit_seconds":
				c.commitSum = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return c
}
