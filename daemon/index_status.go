package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmipd/kmipd/admin"
	"github.com/kmipd/kmipd/kmipops"
)

// The blind index's rebuilds as operators see them: in kmipd admin status
// and as metrics. Owners, times and counts only.

// indexStatus is what admin status shows of p's index rebuilds.
func indexStatus(p *kmipops.Processor) admin.IndexStatus {
	st := p.IndexStatus()
	out := admin.IndexStatus{Running: []admin.IndexRebuild{}, Failed: []admin.IndexFailure{}, Ended: st.Ended}
	for _, r := range st.Running {
		by := "admin"
		if r.Background {
			by = "locate"
		}
		out.Running = append(out.Running, admin.IndexRebuild{Owner: r.Owner, Started: r.Started, Objects: r.Objects, Total: r.Total, By: by})
	}
	for _, f := range st.Failures {
		out.Failed = append(out.Failed, admin.IndexFailure{Owner: f.Owner, At: f.At, RetryAt: f.RetryAt, Error: f.Err})
	}
	return out
}

// indexCollector exposes the rebuilds to Prometheus: how many run now, and
// how many ended, by outcome. It reads the processor's counters when
// scraped.
type indexCollector struct {
	p              *kmipops.Processor
	running, ended *prometheus.Desc
}

var _ prometheus.Collector = (*indexCollector)(nil)

func newIndexCollector(p *kmipops.Processor) *indexCollector {
	return &indexCollector{
		p: p,
		running: prometheus.NewDesc("kmipd_index_rebuilds_running",
			"Blind index rebuilds running (started by a Locate that found an owner's index not current, or by kmipd admin reindex); Locate scans that owner's records meanwhile.", nil, nil),
		ended: prometheus.NewDesc("kmipd_index_rebuilds_total",
			"Blind index rebuilds that ended, by result: completed, failed (no Locate retries that owner for 30s), stopped (shutdown, a cancelled request, or a pKEK rotation overtook it).", []string{"result"}, nil),
	}
}

func (c *indexCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.ended
}

func (c *indexCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.IndexStatus()
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(len(st.Running)))
	for result, n := range st.Ended {
		ch <- prometheus.MustNewConstMetric(c.ended, prometheus.CounterValue, float64(n), result)
	}
}
