package hsm

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of the pool and the HSM's counters.
type Stats struct {
	Ready        bool
	Open         int // sessions open (or being opened or closed), the login session included
	InUse        int
	Idle         int
	Waiting      int
	PeakOpen     int // highest Open ever seen
	EffectiveCap int // the cap now in force (lowered on capacity errors; within the budget's share)
	MaxSessions  int // the configured cap, clamped to the token's limit
	CapLowered   uint64
	CapRaised    uint64
	// With a session budget (WithBudget): Share is what it grants now (0
	// while not granted or lost), ShareLost says the last grant ran out or
	// was withdrawn, ShareLosses counts such losses.
	Budgeted    bool
	Share       int
	ShareLost   bool
	ShareLosses uint64
	Calls       uint64 // PKCS#11 calls made
	Reinits     uint64 // successful recoveries (C_Finalize + C_Initialize)
	// ErrorsByCode counts PKCS#11 failures by CKR_ name.
	ErrorsByCode map[string]uint64
}

// Ready reports whether the HSM hands out sessions (false while recovering
// from a lost device, and after Close).
func (h *HSM) Ready() bool {
	h.pool.mu.Lock()
	defer h.pool.mu.Unlock()
	return h.pool.ready
}

// Stats returns a snapshot.
func (h *HSM) Stats() Stats {
	p := h.pool
	p.mu.Lock()
	s := Stats{
		Ready:        p.ready,
		Open:         p.open,
		InUse:        p.inUse,
		Idle:         len(p.idle),
		Waiting:      p.waiters.Len(),
		PeakOpen:     p.peakOpen,
		EffectiveCap: p.capLocked(),
		MaxSessions:  p.maxCap,
		CapLowered:   p.capLowered,
		CapRaised:    p.capRaised,
		Budgeted:     p.budgeted,
		Share:        p.share,
		ShareLost:    p.shareLost,
		ShareLosses:  p.shareLosses,
	}
	p.mu.Unlock()
	s.Calls = h.calls.Load()
	s.Reinits = h.reinits.Load()
	h.errMu.Lock()
	s.ErrorsByCode = make(map[string]uint64, len(h.errs))
	for code, n := range h.errs {
		s.ErrorsByCode[ckrName(code)] += n
	}
	h.errMu.Unlock()
	return s
}

type collector struct {
	h                                      *HSM
	open, peak, inUse, idle, waiting       *prometheus.Desc
	effCap, share, shareLosses             *prometheus.Desc
	errors, reinits, calls, ready, maxSess *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

// Collector exposes the pool and HSM counters to Prometheus.
func (h *HSM) Collector() prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("kmipd_hsm_"+name, help, labels, nil)
	}
	return &collector{
		h:       h,
		open:    d("sessions_open", "HSM sessions open, the login session included."),
		peak:    d("sessions_peak", "Most HSM sessions open at once since kmipd started, the login session included."),
		inUse:   d("sessions_in_use", "HSM sessions in use by an operation."),
		idle:    d("sessions_idle", "HSM sessions idle in the pool."),
		waiting: d("sessions_waiting", "Callers waiting for an HSM session."),
		effCap:  d("sessions_effective_cap", "Session cap in force (lowered while the HSM is short of capacity, and within the session budget's share)."),
		share:   d("sessions_share", "Sessions this replica's share of the cluster session budget allows, the login session included (only with a budget)."),
		shareLosses: d("share_losses_total",
			"Times this replica's budget share ran out without renewal (or was withdrawn) and every session was closed (only with a budget)."),
		maxSess: d("sessions_max", "Configured session cap (clamped to the token's limit)."),
		ready:   d("ready", "1 when the HSM hands out sessions."),
		errors:  d("errors_total", "PKCS#11 errors by return code.", "code"),
		reinits: d("reinitializations_total", "Recoveries from a lost device (C_Finalize + C_Initialize)."),
		calls:   d("calls_total", "PKCS#11 calls made."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.open, c.peak, c.inUse, c.idle, c.waiting, c.effCap, c.share, c.shareLosses,
		c.maxSess, c.ready, c.errors, c.reinits, c.calls} {
		ch <- d
	}
	c.h.pool.waitHist.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Stats()
	g := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	g(c.open, s.Open)
	g(c.peak, s.PeakOpen)
	g(c.inUse, s.InUse)
	g(c.idle, s.Idle)
	g(c.waiting, s.Waiting)
	g(c.effCap, s.EffectiveCap)
	if s.Budgeted {
		g(c.share, s.Share)
		ch <- prometheus.MustNewConstMetric(c.shareLosses, prometheus.CounterValue, float64(s.ShareLosses))
	}
	g(c.maxSess, s.MaxSessions)
	ready := 0
	if s.Ready {
		ready = 1
	}
	g(c.ready, ready)
	for code, n := range s.ErrorsByCode {
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(n), code)
	}
	ch <- prometheus.MustNewConstMetric(c.reinits, prometheus.CounterValue, float64(s.Reinits))
	ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(s.Calls))
	c.h.pool.waitHist.Collect(ch)
}
