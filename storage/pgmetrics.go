package storage

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// pgMetrics times every operation as its caller sees it (retries and
// their back-off included) and counts what retrying did. A histogram
// observation is a clock read against a network round trip.
type pgMetrics struct {
	op        *prometheus.HistogramVec // by op
	retries   *prometheus.CounterVec   // by op
	ambiguous *prometheus.CounterVec   // by outcome: committed, aborted, unknown
}

func newPGMetrics() *pgMetrics {
	return &pgMetrics{
		op: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kmipd_storage_postgres_op_seconds",
			Help:    "Time of one store operation on PostgreSQL as its caller waits for it, retries included.",
			Buckets: writeBuckets,
		}, []string{"op"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmipd_storage_postgres_retries_total",
			Help: "Attempts repeated after a transient failure (connection loss, failover, serialization failure).",
		}, []string{"op"}),
		ambiguous: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmipd_storage_postgres_lost_commits_total",
			Help: "Commits whose answer was lost, by what their rows then showed (committed, aborted; unknown: not settled in time); reused also counts those whose transaction id's status said otherwise (an id handed out again after a failover).",
		}, []string{"outcome"}),
	}
}

func (m *pgMetrics) observe(op string, start time.Time) {
	m.op.WithLabelValues(op).Observe(since(start))
}

type pgCollector struct {
	p                                  *Postgres
	conns, maxConns, acquires, waitSec *prometheus.Desc
	emptyAcquires, newConns            *prometheus.Desc
}

var _ prometheus.Collector = (*pgCollector)(nil)

// Collector exposes operation latency, retries and the connection pool to
// Prometheus. Waits for a connection (empty_acquires_total, and
// acquire_wait_seconds_total growing) mean max_conns is too small for the
// load.
func (p *Postgres) Collector() prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("kmipd_storage_postgres_pool_"+name, help, labels, nil)
	}
	return &pgCollector{
		p:             p,
		conns:         d("conns", "Connections in the pool, by state.", "state"),
		maxConns:      d("max_conns", "The pool's bound on connections (this replica's)."),
		acquires:      d("acquires_total", "Connections taken from the pool."),
		waitSec:       d("acquire_wait_seconds_total", "Time spent waiting to take a connection."),
		emptyAcquires: d("empty_acquires_total", "Acquires that found no idle connection and waited for one (or for a new one)."),
		newConns:      d("new_conns_total", "Connections opened, reconnects after a failure included."),
	}
}

func (c *pgCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.maxConns, c.acquires, c.waitSec, c.emptyAcquires, c.newConns} {
		ch <- d
	}
	c.p.metrics.op.Describe(ch)
	c.p.metrics.retries.Describe(ch)
	c.p.metrics.ambiguous.Describe(ch)
}

func (c *pgCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.pool.Stat()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	n := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.conns, float64(s.IdleConns()), "idle")
	g(c.conns, float64(s.AcquiredConns()), "acquired")
	g(c.conns, float64(s.ConstructingConns()), "constructing")
	g(c.maxConns, float64(s.MaxConns()))
	n(c.acquires, float64(s.AcquireCount()))
	n(c.waitSec, s.AcquireDuration().Seconds())
	n(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	n(c.newConns, float64(s.NewConnsCount()))
	c.p.metrics.op.Collect(ch)
	c.p.metrics.retries.Collect(ch)
	c.p.metrics.ambiguous.Collect(ch)
}
