package server

import (
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Observer receives one call per KMIP operation. kmipops declares the same
// method set for its own use; *Metrics satisfies both.
type Observer interface {
	ObserveOperation(op, result string, d time.Duration)
}

var _ Observer = (*Metrics)(nil)

// Metrics are kmipd's Prometheus metrics on a private registry, so tests can
// build many and nothing leaks into the global default registry. Every
// method is safe on a nil *Metrics, which records nothing.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	active   prometheus.Gauge
	conns    prometheus.Counter
	rejects  *prometheus.CounterVec
}

// NewMetrics creates the metrics, with Go runtime and process collectors.
func NewMetrics() *Metrics {
	const ns = "kmipd"
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "requests_total",
			Help: "KMIP operations processed, by operation and result status.",
		}, []string{"operation", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "request_duration_seconds",
			Help: "Time to process one KMIP operation.",
			// 0.5 ms (cached keys, no HSM) to ~16 s (HSM pool starved).
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"operation"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "connections_active",
			Help: "KMIP connections currently open.",
		}),
		conns: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "connections_total",
			Help: "KMIP connections accepted.",
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "messages_rejected_total",
			Help: "Connections or messages refused at the transport: handshake, max_conns, bad_header, too_large, truncated, timeout, malformed, panic.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.active, m.conns, m.rejects,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds another package's collector (the HSM pool's, for one).
func (m *Metrics) Register(c prometheus.Collector) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(c)
}

// Registry exposes the private registry, for tests and custom handlers.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// ObserveOperation counts one KMIP operation and its duration.
func (m *Metrics) ObserveOperation(op, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(op, result).Inc()
	m.duration.WithLabelValues(op).Observe(d.Seconds())
}

func (m *Metrics) connOpened() {
	if m == nil {
		return
	}
	m.conns.Inc()
	m.active.Inc()
}

func (m *Metrics) connClosed() {
	if m == nil {
		return
	}
	m.active.Dec()
}

func (m *Metrics) rejected(reason string) {
	if m == nil {
		return
	}
	m.rejects.WithLabelValues(reason).Inc()
}

// TelemetryServer returns the HTTP server for /metrics (Prometheus, from m's
// registry), /healthz (200 while the process serves) and /readyz (200 while
// ready() is true, else 503). The caller runs it (ListenAndServe) and stops
// it (Shutdown). m and ready may be nil: no metrics, always ready. It logs
// under log.Named("telemetry"), so pass the parent logger.
func TelemetryServer(addr string, m *Metrics, ready func() bool, log hclog.Logger) *http.Server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("telemetry")
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
			ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
			Registry:          m.reg, // also counts scrape errors
			EnableOpenMetrics: true,
		}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil && !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
}
