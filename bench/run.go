package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
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
)

var mixes = []string{MixGet, MixCreate, MixCreateGetDestroy, MixRegisterGet, MixEncrypt}

// Config describes one run.
type Config struct {
	Addr string
	// TLS holds one client configuration per owner (identity); worker i
	// uses TLS[i % len(TLS)]. Each must carry RootCAs and a certificate.
	TLS      []*tls.Config
	Mode     string
	Mix      string
	Workers  int
	Duration time.Duration
	// MaxOps, when > 0, also ends the run after that many requests (Go
	// benchmarks set it to b.N).
	MaxOps   uint64
	PoolSize int           // keys per owner for the get mix; default 64
	DataSize int           // plaintext bytes for encrypt; default 64
	Timeout  time.Duration // per request, handshake included; default 10s
	Version  string        // KMIP protocol version sent; default 1.2
	// MetricsURL is kmipd's telemetry /metrics; when set, HSM calls are
	// scraped before and after the measured phase and open sessions are
	// sampled every 100ms during it.
	MetricsURL string
	Label      string
	Progress   io.Writer // one line a second while running; nil for none
}

func (c *Config) setDefaults() error {
	if c.Addr == "" {
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
	if c.Workers <= 0 {
		c.Workers = 1
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
	ctx       context.Context // cancelled on interrupt; bounds dials
	cfg       Config
	v         protoVersion
	owners    []*owner
	createReq []byte

	stop   atomic.Bool
	issued atomic.Uint64 // requests started, against MaxOps
	ops    atomic.Uint64 // requests finished, for the progress line
	errs   atomic.Uint64

	errMu  sync.Mutex
	errLog errorLog
}

// Run performs setup (a warm-up Create per owner, plus the get pool or the
// encrypt key), then the measured phase, and returns its figures. A setup
// failure is an error; failures during the measured phase are counted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	v, err := parseProtoVersion(cfg.Version)
	if err != nil {
		return nil, err
	}
	r := &runner{ctx: ctx, cfg: cfg, v: v, createReq: createAES256(v)}
	res := &Result{
		Label: cfg.Label, Addr: cfg.Addr, Mode: cfg.Mode, Mix: cfg.Mix, Workers: cfg.Workers,
		Owners: len(cfg.TLS), KMIPVersion: v.String(), Started: time.Now().UTC(),
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

	var before map[string]float64
	var sampler *sessionSampler
	if cfg.MetricsURL != "" {
		if before, err = scrape(ctx, cfg.MetricsURL, metricCalls); err != nil {
			return nil, err
		}
		sampler = startSampler(ctx, cfg.MetricsURL, 100*time.Millisecond)
	}

	workers := make([]*worker, cfg.Workers)
	for i := range workers {
		workers[i] = newWorker(r, r.owners[i%len(r.owners)], uint64(i))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.loop() }()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	r.supervise(ctx, workers, start, finished)
	elapsed := time.Since(start)

	if sampler != nil {
		peak, n, errs := sampler.stop()
		after, err := scrape(context.WithoutCancel(ctx), cfg.MetricsURL, metricCalls)
		if err != nil {
			return nil, err
		}
		res.HSM = &HSMStats{
			CallsBefore: before[metricCalls], CallsAfter: after[metricCalls],
			PeakSessions: peak, Samples: n, SampleErrors: errs,
		}
		res.HSM.Calls = res.HSM.CallsAfter - res.HSM.CallsBefore
	}

	var total Hist
	var byOp [numOpKinds]Hist
	var opCount, errCount [numOpKinds]uint64
	for _, w := range workers {
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
	res.Seconds = elapsed.Seconds()
	if res.Seconds > 0 {
		res.OpsPerSec = float64(res.Ops) / res.Seconds
		res.OKPerSec = float64(res.Ops-res.Errors) / res.Seconds
	}
	res.Latency = summarize(&total)
	if res.HSM != nil && res.Ops > 0 {
		res.HSM.CallsPerOp = res.HSM.Calls / float64(res.Ops)
	}
	res.ErrorSamples = r.errLog.samples()
	return res, ctx.Err()
}

// supervise ends the run when the duration is over, MaxOps is reached (the
// workers notice themselves) or ctx is cancelled (then it also closes the
// workers' connections so none waits out its timeout), printing progress.
func (r *runner) supervise(ctx context.Context, workers []*worker, start time.Time, finished <-chan struct{}) {
	var deadline <-chan time.Time
	if r.cfg.Duration > 0 {
		t := time.NewTimer(r.cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastOps uint64
	lastAt := start
	for {
		select {
		case <-finished:
			return
		case <-deadline:
			r.stop.Store(true)
			deadline = nil
		case <-ctx.Done():
			r.stop.Store(true)
			for _, w := range workers {
				w.abort()
			}
			<-finished
			return
		case now := <-tick.C:
			if r.cfg.Progress == nil {
				continue
			}
			ops := r.ops.Load()
			rate := float64(ops-lastOps) / now.Sub(lastAt).Seconds()
			lastOps, lastAt = ops, now
			fmt.Fprintf(r.cfg.Progress, "bench %s %s/%s w=%d: %3.0fs %d ops %.0f ops/s, %d errors\n",
				r.cfg.Label, r.cfg.Mix, r.cfg.Mode, r.cfg.Workers, now.Sub(start).Seconds(), ops, rate, r.errs.Load())
		}
	}
}

// setupOwner warms the owner up on the server (its first Create makes
// kmipd create and cache the owner's pKEK, which is not the steady state
// being measured) and prepares what the mix needs.
func (r *runner) setupOwner(ctx context.Context, tc *tls.Config) (*owner, string, error) {
	c, err := dial(ctx, r.cfg.Addr, tc, r.cfg.Timeout)
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
	uid, err := call(opCreate, r.createReq)
	if err != nil {
		return nil, "", err
	}
	switch r.cfg.Mix {
	case MixGet:
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

// worker runs one client's loop. Its histograms and counters are its own,
// merged after the run, so recording costs no synchronisation.
type worker struct {
	r   *runner
	o   *owner
	rng *mrand.Rand

	mu      sync.Mutex // guards cur and aborted against abort()
	cur     *conn
	aborted bool

	hist [numOpKinds]*Hist
	ops  [numOpKinds]uint64
	errs [numOpKinds]uint64
}

func newWorker(r *runner, o *owner, seed uint64) *worker {
	return &worker{r: r, o: o, rng: mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano())))}
}

func (w *worker) loop() {
	defer w.closeConn()
	for !w.r.stop.Load() {
		switch w.r.cfg.Mix {
		case MixGet:
			w.do(opGet, w.o.getReqs[w.rng.IntN(len(w.o.getReqs))])
		case MixCreate:
			w.do(opCreate, w.r.createReq)
		case MixCreateGetDestroy:
			if uid, ok := w.do(opCreate, w.r.createReq); ok {
				w.do(opGet, byUID(w.r.v, opGet, uid))
				w.do(opDestroy, byUID(w.r.v, opDestroy, uid))
			}
		case MixRegisterGet:
			material := make([]byte, 32)
			_, _ = rand.Read(material)
			if uid, ok := w.do(opRegister, registerAES256(w.r.v, material)); ok {
				w.do(opGet, byUID(w.r.v, opGet, uid))
			}
		case MixEncrypt:
			w.do(opEncrypt, w.o.encReq)
		}
	}
}

// do sends one request and records it. It returns the identifier the
// server answered with for a Create or Register ("" for other operations)
// and whether the request succeeded. Once the run is
// over it sends nothing, so a cycle cut short is not counted.
func (w *worker) do(k opKind, req []byte) (string, bool) {
	r := w.r
	if r.stop.Load() {
		return "", false
	}
	if r.cfg.MaxOps > 0 && r.issued.Add(1) > r.cfg.MaxOps {
		r.stop.Store(true)
		return "", false
	}
	persistent := r.cfg.Mode == Persistent
	if persistent && w.cur == nil {
		// A persistent connection's handshake is set-up, not request time.
		if err := w.connect(); err != nil {
			w.fail(k, err)
			return "", false
		}
	}
	start := time.Now()
	if !persistent {
		if err := w.connect(); err != nil {
			w.fail(k, err)
			return "", false
		}
	}
	resp, err := w.cur.roundTrip(req, r.cfg.Timeout)
	var uid []byte
	if err == nil {
		uid, err = checkResponse(k, resp)
	}
	lat := time.Since(start)
	if !persistent || (err != nil && !isOpError(err)) {
		// Reconnect mode closes after each request; a transport error
		// leaves a connection in an unknown state, so it is replaced.
		w.closeConn()
	}
	if err != nil {
		w.fail(k, err)
		return "", false
	}
	if w.hist[k] == nil {
		w.hist[k] = new(Hist)
	}
	w.hist[k].Record(lat)
	w.ops[k]++
	r.ops.Add(1)
	if k != opCreate && k != opRegister {
		// Only a new object's identifier is used (by the next requests
		// of its cycle); copying it out of the read buffer costs an
		// allocation that the Get and Encrypt hot paths skip.
		return "", true
	}
	return string(uid), true
}

// isOpError reports whether err is a KMIP-level failure. It is a function
// of its own so that the errors.As target is only allocated on failure.
func isOpError(err error) bool {
	var opErr *opError
	return errors.As(err, &opErr)
}

func (w *worker) fail(k opKind, err error) {
	w.ops[k]++
	w.errs[k]++
	w.r.ops.Add(1)
	w.r.errs.Add(1)
	w.r.errMu.Lock()
	w.r.errLog.add(k.String() + ": " + errorKey(err))
	w.r.errMu.Unlock()
}

func (w *worker) connect() error {
	c, err := dial(w.r.ctx, w.r.cfg.Addr, w.o.tls, w.r.cfg.Timeout)
	if err != nil {
		// A refused connection fails at once: pause so a dead server
		// does not turn the load generator into a busy loop.
		time.Sleep(10 * time.Millisecond)
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted {
		c.Close()
		return errors.New("run aborted")
	}
	w.cur = c
	return nil
}

func (w *worker) closeConn() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != nil {
		w.cur.Close()
		w.cur = nil
	}
}

// abort closes the worker's connection from outside, unblocking its I/O.
func (w *worker) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.aborted = true
	if w.cur != nil {
		w.cur.Close()
	}
}
