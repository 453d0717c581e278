package sessionbudget

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	renewals, failures, losses, reclaimed prometheus.Counter
	renewSeconds                          prometheus.Histogram
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "kmipd_hsm_budget_" + name, Help: help})
	}
	return &metrics{
		renewals:  c("lease_renewals_total", "Lease renewals committed."),
		failures:  c("lease_renewal_failures_total", "Lease renewals that failed (database unreachable, timeouts)."),
		losses:    c("lease_losses_total", "Times this replica's lease ran out or was reclaimed, its HSM sessions closed."),
		reclaimed: c("leases_reclaimed_total", "Expired leases of other replicas this replica reclaimed."),
		renewSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kmipd_hsm_budget_renewal_seconds",
			Help:    "Time of one lease renewal transaction.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
}

type collector struct {
	c                                              *Client
	share, target, held, size, replicas, remaining *prometheus.Desc
	demand, waiting                                *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

// Collector exposes this replica's lease: share held, target, demand and
// waiters as of the last renewal, renewals, failures, losses.
func (c *Client) Collector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("kmipd_hsm_budget_"+name, help, nil, nil)
	}
	return &collector{
		c:         c,
		share:     d("share", "HSM sessions this replica may hold open now, the login session included (0 once its lease ran out)."),
		target:    d("target", "HSM sessions the rebalancer gives this replica for its demand."),
		held:      d("held", "HSM sessions this replica's lease holds in the database."),
		size:      d("sessions", "The cluster's HSM session budget in force."),
		replicas:  d("replicas", "Replicas holding a live lease on the budget, this one included."),
		remaining: d("lease_remaining_seconds", "Time left before this replica's share runs out unless renewed."),
		demand:    d("demand", "Most sessions in use plus waiting at once in the last renewal interval."),
		waiting:   d("sessions_waiting", "Callers waiting for an HSM session at the last renewal."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.share, c.target, c.held, c.size, c.replicas, c.remaining, c.demand, c.waiting} {
		ch <- d
	}
	m := c.c.m
	for _, x := range []prometheus.Collector{m.renewals, m.failures, m.losses, m.reclaimed, m.renewSeconds} {
		x.Describe(ch)
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.c.Stats()
	g := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	g(c.share, float64(s.Share))
	g(c.target, float64(s.Target))
	g(c.held, float64(s.Held))
	g(c.size, float64(s.Budget))
	g(c.replicas, float64(s.Replicas))
	g(c.remaining, max(time.Until(s.Until).Seconds(), 0))
	g(c.demand, float64(s.Demand.Want))
	g(c.waiting, float64(s.Demand.Waiting))
	m := c.c.m
	for _, x := range []prometheus.Collector{m.renewals, m.failures, m.losses, m.reclaimed, m.renewSeconds} {
		x.Collect(ch)
	}
}
