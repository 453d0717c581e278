package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Latency is a latency summary in milliseconds (JSON-friendly floats).
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summarize(h *Hist) Latency {
	return Latency{
		P50: ms(h.Percentile(50)), P90: ms(h.Percentile(90)), P99: ms(h.Percentile(99)),
		Max: ms(h.Max()), Mean: ms(h.Mean()),
	}
}

// OpStats is one KMIP operation's share of a run.
type OpStats struct {
	Ops     uint64  `json:"ops"`
	Errors  uint64  `json:"errors"`
	Latency Latency `json:"latency"`
}

// HSMStats is what kmipd's telemetry said about the HSM at the start and
// the end of the measured phase (after setup and warm-up), when -metrics
// was given. PeakSessions is kmipd's own high-water mark of open sessions
// since it started (kmipd_hsm_sessions_peak), so it misses no spike between
// scrapes; PeakBefore is the same mark when measuring began.
type HSMStats struct {
	CallsBefore  float64 `json:"calls_before"`
	CallsAfter   float64 `json:"calls_after"`
	Calls        float64 `json:"calls"`
	CallsPerOp   float64 `json:"calls_per_op"`
	PeakBefore   float64 `json:"peak_sessions_before"`
	PeakSessions float64 `json:"peak_sessions"`
}

// StorageStats is kmipd's synced write path during the measured phase, from
// its telemetry: writes (put, create, delete; a KMIP request may make
// several, or none), the group commits that carried them, and the mean time
// a write waited to be durable and a commit took (its syncs included).
type StorageStats struct {
	Writes          float64 `json:"writes"`
	Commits         float64 `json:"commits"`
	WritesPerCommit float64 `json:"writes_per_commit"`
	MeanWaitMS      float64 `json:"mean_wait_ms"`
	MeanCommitMS    float64 `json:"mean_commit_ms"`
}

// Result is one run's measured phase: Ops counts KMIP requests (a
// create-get-destroy cycle is three), successful or not, started after the
// warm-up; latencies are of successful requests only, measured at the
// client, including the TLS handshake in reconnect mode.
type Result struct {
	Label         string             `json:"label,omitempty"`
	Addr          string             `json:"addr"`
	Mode          string             `json:"mode"`
	Mix           string             `json:"mix"`
	Workers       int                `json:"workers"`
	Owners        int                `json:"owners"`
	KMIPVersion   string             `json:"kmip_version"`
	TLSVersion    string             `json:"tls_version,omitempty"`
	Seconds       float64            `json:"seconds"`
	SetupSeconds  float64            `json:"setup_seconds"`
	WarmupSeconds float64            `json:"warmup_seconds"` // the mix ran unmeasured this long first
	LoadProcs     int                `json:"load_procs"`     // the load generator's GOMAXPROCS
	Ops           uint64             `json:"ops"`
	Errors        uint64             `json:"errors"`
	OpsPerSec     float64            `json:"ops_per_sec"`
	OKPerSec      float64            `json:"ok_per_sec"` // successful requests only
	Latency       Latency            `json:"latency"`
	ByOp          map[string]OpStats `json:"by_op"`
	ErrorSamples  []string           `json:"error_samples,omitempty"`
	HSM           *HSMStats          `json:"hsm,omitempty"`
	Storage       *StorageStats      `json:"storage,omitempty"`
	Started       time.Time          `json:"started"`
}

// WriteText prints a human-readable report.
func (r *Result) WriteText(w io.Writer) {
	label := r.Label
	if label == "" {
		label = r.Addr
	}
	fmt.Fprintf(w, "%s: mix=%s mode=%s workers=%d owners=%d KMIP %s over %s\n",
		label, r.Mix, r.Mode, r.Workers, r.Owners, r.KMIPVersion, r.TLSVersion)
	fmt.Fprintf(w, "  operations  %d in %.2fs (after setup %.2fs and %s)\n", r.Ops, r.Seconds, r.SetupSeconds, r.warmupText())
	fmt.Fprintf(w, "  errors      %d\n", r.Errors)
	fmt.Fprintf(w, "  throughput  %.1f ops/s (%.1f successful/s)\n", r.OpsPerSec, r.OKPerSec)
	fmt.Fprintf(w, "  latency     p50 %s  p90 %s  p99 %s  max %s  mean %s\n",
		fmtMS(r.Latency.P50), fmtMS(r.Latency.P90), fmtMS(r.Latency.P99), fmtMS(r.Latency.Max), fmtMS(r.Latency.Mean))
	names := make([]string, 0, len(r.ByOp))
	for n := range r.ByOp {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := r.ByOp[n]
		fmt.Fprintf(w, "  %-10s  %d ops, %d errors, p50 %s  p99 %s  max %s\n",
			n, s.Ops, s.Errors, fmtMS(s.Latency.P50), fmtMS(s.Latency.P99), fmtMS(s.Latency.Max))
	}
	if h := r.HSM; h != nil {
		fmt.Fprintf(w, "  HSM         %.0f PKCS#11 calls (%.4f per op), at most %.0f sessions open since kmipd started\n",
			h.Calls, h.CallsPerOp, h.PeakSessions)
	}
	if st := r.Storage; st != nil && st.Writes > 0 {
		fmt.Fprintf(w, "  storage     %.0f synced writes in %.0f commits (%.1f per commit), mean wait %.2fms, mean commit %.2fms\n",
			st.Writes, st.Commits, st.WritesPerCommit, st.MeanWaitMS, st.MeanCommitMS)
	}
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

// warmupText describes the warm-up, which the figures exclude.
func (r *Result) warmupText() string {
	if r.WarmupSeconds <= 0 {
		return "no warm-up"
	}
	return "a " + fmtSeconds(r.WarmupSeconds) + " warm-up, not measured"
}

// fmtSeconds prints a duration in seconds as Go does (2s, 500ms).
func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// fmtMS prints milliseconds with precision that suits their size.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1:
		return fmt.Sprintf("%.3fms", v)
	case v < 100:
		return fmt.Sprintf("%.2fms", v)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}

// errorLog keeps the first few distinct error messages with their counts,
// so a run that fails a million times still uses bounded memory.
type errorLog struct {
	counts map[string]uint64
	order  []string
}

const maxErrorSamples = 8

func (l *errorLog) add(msg string) {
	if l.counts == nil {
		l.counts = make(map[string]uint64)
	}
	if _, ok := l.counts[msg]; !ok {
		if len(l.order) >= maxErrorSamples {
			return
		}
		l.order = append(l.order, msg)
	}
	l.counts[msg]++
}

func (l *errorLog) samples() []string {
	out := make([]string, 0, len(l.order))
	for _, m := range l.order {
		out = append(out, fmt.Sprintf("%s (×%d)", m, l.counts[m]))
	}
	return out
}

// errorKey shortens an error for grouping; the log above bounds how many
// distinct ones are kept.
func errorKey(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.TrimSpace(s)
}
