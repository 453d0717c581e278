package storage

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// writeMetrics times the synced write path, which sets the latency of every
// Create, Register, Destroy and attribute change: how long callers wait to
// be durable, and how long each group commit (its syncs included) takes.
// Both are read per operation or per group, so they cost a clock read each,
// against a sync of about a millisecond.
type writeMetrics struct {
	wait   prometheus.Histogram // per operation: queued until answered
	commit prometheus.Histogram // per group transaction, syncs included
}

// Millisecond-scale buckets: a healthy synced commit is ~1 ms on an SSD; the
// upper ones catch background flush and compaction I/O delaying syncs.
var writeBuckets = []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2}

func newWriteMetrics() *writeMetrics {
	return &writeMetrics{
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kmipd_storage_write_wait_seconds",
			Help:    "Time a write (put, create, delete) waited until durable or failed, queueing for the committer included.",
			Buckets: writeBuckets,
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kmipd_storage_commit_seconds",
			Help:    "Time of one group-commit transaction, its WAL and value-log syncs included.",
			Buckets: writeBuckets,
		}),
	}
}

type storeCollector struct {
	b                                 *Badger
	commits, writes, l0, lsm, advised *prometheus.Desc
}

var _ prometheus.Collector = (*storeCollector)(nil)

// Collector exposes the write path's timings and counters, and the LSM
// tree's shape, to Prometheus. A growing level-0 table count means
// compaction is falling behind the write rate; badger stalls writes at 15.
func (b *Badger) Collector() prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("kmipd_storage_"+name, help, labels, nil)
	}
	return &storeCollector{
		b:       b,
		commits: d("commits_total", "Group-commit transactions committed (one WAL sync each)."),
		writes:  d("committed_writes_total", "Writes those transactions carried; divided by commits_total, the mean group size."),
		l0:      d("level0_tables", "Tables in LSM level 0, waiting for compaction."),
		lsm:     d("lsm_bytes", "Bytes in LSM tables, by level.", "level"),
		advised: d("wal_mappings_advised_total", "Memtable WAL mappings marked MADV_RANDOM so that syncs write only what changed (Linux)."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.commits, c.writes, c.l0, c.lsm, c.advised} {
		ch <- d
	}
	c.b.wm.wait.Describe(ch)
	c.b.wm.commit.Describe(ch)
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(c.b.groups.Load()))
	ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(c.b.grouped.Load()))
	ch <- prometheus.MustNewConstMetric(c.advised, prometheus.CounterValue, float64(c.b.advised.Load()))
	c.b.wm.wait.Collect(ch)
	c.b.wm.commit.Collect(ch)
	// Levels reads badger's level handlers under their locks; a closed
	// store has none left to report.
	if c.b.enter(context.Background()) != nil {
		return
	}
	defer c.b.leave()
	for _, l := range c.b.db.Levels() {
		if l.Level == 0 {
			ch <- prometheus.MustNewConstMetric(c.l0, prometheus.GaugeValue, float64(l.NumTables))
		}
		ch <- prometheus.MustNewConstMetric(c.lsm, prometheus.GaugeValue, float64(l.Size), strconv.Itoa(l.Level))
	}
}

func since(t time.Time) float64 { return time.Since(t).Seconds() }
