package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Modes.
const (
	// Persistent: one TLS connection per worker, reused for every request,
	// as a storage array or a pooled client does.
	Persistent = "persistent"
	// Reconnect: a new TLS connection (full handshake, no resumption) for
	// every request, as Barbican's kmip_plugin does.
	Reconnect = "reconnect"
)

// Mixes.
const (
	MixGet              = "get"
	MixCreate           = "create"
	MixCreateGetDestroy = "create-get-destroy"
	MixRegisterGet      = "register-get"
	MixEncrypt          = "encrypt"
	// MixLocateName locates one of Config.Names by Name.
	MixLocateName = "locate-name"
	// MixLocatePage locates the ten newest symmetric keys (Maximum Items).
	MixLocatePage = "locate-page"
)

var mixes = []string{MixGet, MixCreate, MixCreateGetDestroy, MixRegisterGet, MixEncrypt, MixLocateName, MixLocatePage}

// Config describes one run.
type Config struct {
	Addr string // host:port, or a comma-separated list of a cluster's replicas
	// TLS holds one client configuration per owner (identity); worker i
	// uses TLS[i % len(TLS)]. Each must carry RootCAs and a certificate.
	TLS      []*tls.Config
	Mode     string
	Mix      string
	Workers  int
	Duration time.Duration // of the measured phase
	// Warmup, when > 0, runs the mix that long before the measured phase
	// and discards everything it recorded, so the figures leave out
	// persistent connections' handshakes, the server's heap growing from
	// its initial size and cold caches. Zero means none (the command
	// line's default is DefaultWarmup when the run has a duration).
	Warmup time.Duration
	// MaxOps, when > 0, also ends the run after that many measured
	// requests (Go benchmarks set it to b.N).
	MaxOps   uint64
	PoolSize int // keys per owner for the get mix; default 64
	// UIDs, when set, are what the get mix reads, one at random per
	// request, instead of a pool it creates: objects already in the
	// store (kmipd bench scale's preload), each owned by every identity.
	// The get and locate-name mixes then write nothing (setupOwner).
	UIDs []string
	// Names are what the locate-name mix looks for, one at random per
	// request; each must name an object the caller owns.
	Names    []string
	DataSize int           // plaintext bytes for encrypt; default 64
	Timeout  time.Duration // per request, handshake included; default 10s
	Version  string        // KMIP protocol version sent; default 1.2
	// MetricsURL is kmipd's telemetry /metrics; when set, the HSM call
	// count and the open-session high-water mark are scraped at the start
	// and the end of the measured phase (never during it).
	MetricsURL string
	Label      string
	Progress   io.Writer // one line a second while running; nil for none
}

// DefaultWarmup is the command line's -warmup for runs with a duration.
const DefaultWarmup = 2 * time.Second

func (c *Config) setDefaults() error {
	if len(splitList(c.Addr)) == 0 {
		return errors.New("an address is required")
	}
	if len(c.TLS) == 0 {
		return errors.New("at least one client TLS configuration is required")
	}
	switch c.Mode {
	case "":
		c.Mode = Persistent
	case Persistent, Reconnect:
	default:
		return fmt.Errorf("mode %q: want %s or %s", c.Mode, Persistent, Reconnect)
	}
	if c.Mix == "" {
		c.Mix = MixGet
	}
	known := false
	for _, m := range mixes {
		known = known || m == c.Mix
	}
	if !known {
		return fmt.Errorf("mix %q: want one of %v", c.Mix, mixes)
	}
	if c.Mix == MixLocateName && len(c.Names) == 0 {
		return fmt.Errorf("mix %s needs names to look for", c.Mix)
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Duration <= 0 && c.MaxOps == 0 {
		c.Duration = 10 * time.Second
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 64
	}
	if c.DataSize <= 0 {
		c.DataSize = 64
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Version == "" {
		c.Version = "1.2"
	}
	return nil
}

// owner is what the setup phase prepared for one client identity.
type owner struct {
	tls     *tls.Config
	getReqs [][]byte // pre-encoded Gets of the pool (get mix)
	encReq  []byte   // pre-encoded Encrypt under an active key (encrypt mix)
}

type runner struct {
	ctx        context.Context // cancelled on interrupt; bounds dials
	cfg        Config
	v          protoVersion
	owners     []*owner
	createReq  []byte
	locatePage []byte

	stop   atomic.Bool
	issued atomic.Uint64 // measured requests started, against MaxOps
	ops    atomic.Uint64 // requests finished, warm-up included, for the progress line
	errs   atomic.Uint64

	// measuring turns true once, when the warm-up ends (before the workers
	// start without one). Each worker compares it with its own copy before
	// every cycle and clears what it recorded in the warm-up itself, so
	// the switch takes no lock on the hot path; errLog, shared, is cleared
	// under errMu by the switch (see beginMeasuring and worker.fail).
	measuring atomic.Bool
	// Set by beginMeasuring, read after the run, both on Run's goroutine.
	measureStart    time.Time
	telemetryBefore map[string]float64 // telemetry at the start of measuring; nil without -metrics

	errMu  sync.Mutex
	errLog errorLog
}

// Run performs setup (a first Create per owner, plus the get pool or the
// encrypt key), then the warm-up if any, then the measured phase, and
// returns the measured phase's figures. A setup failure is an error;
// failures while the workers run are counted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	v, err := parseProtoVersion(cfg.Version)
	if err != nil {
		return nil, err
	}
	r := &runner{ctx: ctx, cfg: cfg, v: v, createReq: createAES256(v), locatePage: locatePage(v)}
	res := &Result{
		Label: cfg.Label, Addr: cfg.Addr, Mode: cfg.Mode, Mix: cfg.Mix, Workers: cfg.Workers,
		Owners: len(cfg.TLS), KMIPVersion: v.String(), WarmupSeconds: cfg.Warmup.Seconds(),
		Started: time.Now().UTC(), LoadProcs: runtime.GOMAXPROCS(0),
	}
	setupStart := time.Now()
	for _, tc := range cfg.TLS {
		o, tlsVer, err := r.setupOwner(ctx, tc)
		if err != nil {
			return nil, fmt.Errorf("setup: %w", err)
		}
		r.owners = append(r.owners, o)
		res.TLSVersion = tlsVer
	}
	res.SetupSeconds = time.Since(setupStart).Seconds()

	if cfg.Warmup == 0 {
		if err := r.beginMeasuring(ctx); err != nil {
			return nil, err
		}
	} else if cfg.MetricsURL != "" {
		// A wrong URL fails now, not after the warm-up.
		if _, err := scrapeAll(ctx, cfg.MetricsURL, metricCalls); err != nil {
			return nil, err
		}
	}
	workers := make([]*worker, cfg.Workers)
	addrs := splitList(cfg.Addr)
	for i := range workers {
		workers[i] = newWorker(r, r.owners[i%len(r.owners)], uint64(i))
		workers[i].addr = addrs[i%len(addrs)]
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.loop() }()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if err := r.supervise(ctx, workers, finished); err != nil {
		return nil, err
	}
	end := time.Now()

	if r.telemetryBefore != nil {
		after, err := scrapeAll(context.WithoutCancel(ctx), cfg.MetricsURL, scraped...)
		if err != nil {
			return nil, err
		}
		res.HSM = &HSMStats{
			CallsBefore: r.telemetryBefore[metricCalls], CallsAfter: after[metricCalls],
			PeakBefore: r.telemetryBefore[metricPeak], PeakSessions: after[metricPeak],
		}
		res.HSM.Calls = res.HSM.CallsAfter - res.HSM.CallsBefore
		res.Storage = storageStats(r.telemetryBefore, after)
	}

	var total Hist
	var byOp [numOpKinds]Hist
	var opCount, errCount [numOpKinds]uint64
	for _, w := range workers {
		if !w.measuring {
			// Its last cycle began in the warm-up (or the run was
			// interrupted during it): it recorded nothing measured.
			continue
		}
		for k := range numOpKinds {
			if w.hist[k] != nil {
				byOp[k].Merge(w.hist[k])
				total.Merge(w.hist[k])
			}
			opCount[k] += w.ops[k]
			errCount[k] += w.errs[k]
		}
	}
	res.ByOp = map[string]OpStats{}
	for k := range numOpKinds {
		if opCount[k] == 0 {
			continue
		}
		res.ByOp[k.String()] = OpStats{Ops: opCount[k], Errors: errCount[k], Latency: summarize(&byOp[k])}
		res.Ops += opCount[k]
		res.Errors += errCount[k]
	}
	if r.measuring.Load() {
		res.Seconds = end.Sub(r.measureStart).Seconds()
	}
	if res.Seconds > 0 {
		res.OpsPerSec = float64(res.Ops) / res.Seconds
		res.OKPerSec = float64(res.Ops-res.Errors) / res.Seconds
	}
	res.Latency = summarize(&total)
	if res.HSM != nil && res.Ops > 0 {
		res.HSM.CallsPerOp = res.HSM.Calls / float64(res.Ops)
	}
	r.errMu.Lock()
	res.ErrorSamples = r.errLog.samples()
	r.errMu.Unlock()
	return res, ctx.Err()
}

// beginMeasuring ends the warm-up: it takes the HSM call count and session
// high-water mark, then switches the phase. HSM calls made between the
// scrape and the switch are counted although their requests are not:
// that errs towards more calls per op, never fewer. Nothing is scraped
// during the phase: a /metrics scrape costs kmipd about 2.6 ms of CPU, and
// the 10 Hz polling this replaced showed in its p99 latency.
func (r *runner) beginMeasuring(ctx context.Context) error {
	if r.cfg.MetricsURL != "" {
		before, err := scrapeAll(ctx, r.cfg.MetricsURL, scraped...)
		if err != nil {
			return err
		}
		r.telemetryBefore = before
	}
	r.errMu.Lock()
	defer r.errMu.Unlock()
	r.errLog = errorLog{}
	r.measureStart = time.Now()
	r.measuring.Store(true)
	return nil
}

// supervise ends the warm-up when it is over, then ends the run when the
// duration is over, MaxOps is reached (the workers notice themselves) or
// ctx is cancelled (then it also closes the workers' connections so none
// waits out its timeout), printing progress. Its error is a failure to
// begin measuring; the workers have stopped when it returns.
func (r *runner) supervise(ctx context.Context, workers []*worker, finished <-chan struct{}) error {
	halt := func() {
		r.stop.Store(true)
		for _, w := range workers {
			w.abort()
		}
		<-finished
	}
	var warmup, deadline <-chan time.Time
	if r.measuring.Load() {
		deadline = r.deadline()
	} else {
		warmup = time.After(r.cfg.Warmup)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastOps uint64
	lastAt, phase, phaseStart := time.Now(), "measuring", time.Now()
	if warmup != nil {
		phase = "warm-up"
	}
	for {
		select {
		case <-finished:
			return nil
		case <-warmup:
			warmup = nil
			if err := r.beginMeasuring(ctx); err != nil {
				if ctx.Err() != nil {
					continue // interrupted: handled below, nothing measured
				}
				halt()
				return fmt.Errorf("end of warm-up: %w", err)
			}
			deadline = r.deadline()
			phase, phaseStart = "measuring", r.measureStart
		case <-deadline:
			r.stop.Store(true)
			deadline = nil
		case <-ctx.Done():
			halt()
			return nil
		case now := <-tick.C:
			if r.cfg.Progress == nil {
				continue
			}
			// The counts run on through both phases; the rate is this
			// second's.
			ops := r.ops.Load()
			rate := float64(ops-lastOps) / now.Sub(lastAt).Seconds()
			lastOps, lastAt = ops, now
			fmt.Fprintf(r.cfg.Progress, "bench %s %s/%s w=%d: %s %3.0fs, %d ops %.0f ops/s, %d errors\n",
				r.cfg.Label, r.cfg.Mix, r.cfg.Mode, r.cfg.Workers, phase, max(0, now.Sub(phaseStart).Seconds()), ops, rate, r.errs.Load())
		}
	}
}

// deadline is when the measured phase, starting now, ends (never without
// a duration).
func (r *runner) deadline() <-chan time.Time {
	if r.cfg.Duration <= 0 {
		return nil
	}
	return time.After(r.cfg.Duration)
}

// setupOwner introduces the owner to the server (its first Create makes
// kmipd create and cache the owner's pKEK, which is not the steady state
// being measured) and prepares what the mix needs. A read-only mix over
// objects already stored (UIDs) is introduced by a Get of one of them
// instead, so that it writes nothing: on a large store, a run's few
// Creates left tables whose key ranges spanned the whole store, and
// merging them into the next level made later runs compact for seconds.
func (r *runner) setupOwner(ctx context.Context, tc *tls.Config) (*owner, string, error) {
	c, err := dial(ctx, splitList(r.cfg.Addr)[0], tc, r.cfg.Timeout)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	call := func(k opKind, req []byte) (string, error) {
		resp, err := c.roundTrip(req, r.cfg.Timeout)
		if err != nil {
			return "", err
		}
		uid, err := checkResponse(k, resp)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k, err)
		}
		return string(uid), nil
	}
	o := &owner{tls: tc}
	var uid string
	if readOnly := r.cfg.Mix == MixGet || r.cfg.Mix == MixLocateName; readOnly && len(r.cfg.UIDs) > 0 {
		if _, err := call(opGet, byUID(r.v, opGet, r.cfg.UIDs[0])); err != nil {
			return nil, "", err
		}
	} else if uid, err = call(opCreate, r.createReq); err != nil {
		return nil, "", err
	}
	switch r.cfg.Mix {
	case MixGet:
		if len(r.cfg.UIDs) > 0 {
			break // the worker builds each Get
		}
		for i := 0; i < r.cfg.PoolSize; i++ {
			if i > 0 {
				if uid, err = call(opCreate, r.createReq); err != nil {
					return nil, "", err
				}
			}
			o.getReqs = append(o.getReqs, byUID(r.v, opGet, uid))
		}
	case MixEncrypt:
		// KMIP only lets an Active key encrypt.
		if _, err := call(opActivate, byUID(r.v, opActivate, uid)); err != nil {
			return nil, "", err
		}
		data := make([]byte, r.cfg.DataSize)
		_, _ = rand.Read(data)
		o.encReq = encryptGCM(r.v, uid, data)
	}
	return o, c.tlsVersion(), nil
}
