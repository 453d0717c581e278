package bench

import (
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"sync"
	"time"
)

// worker runs one client's loop. Its histograms and counters are its own,
// merged after the run, so recording costs no synchronisation; they hold
// the phase in measuring, to which the worker's current cycle belongs.
type worker struct {
	r    *runner
	o    *owner
	rng  *mrand.Rand
	addr string // one of the -addr list's

	mu      sync.Mutex // guards cur and aborted against abort()
	cur     *conn
	aborted bool

	measuring bool
	hist      [numOpKinds]*Hist
	ops       [numOpKinds]uint64
	errs      [numOpKinds]uint64
}

func newWorker(r *runner, o *owner, seed uint64) *worker {
	return &worker{r: r, o: o, rng: mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano())))}
}

func (w *worker) loop() {
	defer w.closeConn()
	for !w.r.stop.Load() {
		// A cycle belongs to the phase in which it starts, so each
		// operation's count covers the same cycles.
		if m := w.r.measuring.Load(); m != w.measuring {
			// The warm-up is over: drop what it recorded.
			w.measuring = m
			w.hist, w.ops, w.errs = [numOpKinds]*Hist{}, [numOpKinds]uint64{}, [numOpKinds]uint64{}
		}
		switch w.r.cfg.Mix {
		case MixGet:
			if u := w.r.cfg.UIDs; len(u) > 0 {
				w.do(opGet, byUID(w.r.v, opGet, u[w.rng.IntN(len(u))]))
				break
			}
			w.do(opGet, w.o.getReqs[w.rng.IntN(len(w.o.getReqs))])
		case MixLocateName:
			n := w.r.cfg.Names
			w.do(opLocate, locateByName(w.r.v, n[w.rng.IntN(len(n))]))
		case MixLocatePage:
			w.do(opLocate, w.r.locatePage)
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
	if w.measuring && r.cfg.MaxOps > 0 && r.issued.Add(1) > r.cfg.MaxOps {
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
	// A warm-up cycle's request that failed after the warm-up ended is
	// not measured; one that failed before was cleared with the log.
	if w.measuring == w.r.measuring.Load() {
		w.r.errLog.add(k.String() + ": " + errorKey(err))
	}
	w.r.errMu.Unlock()
}

func (w *worker) connect() error {
	c, err := dial(w.r.ctx, w.addr, w.o.tls, w.r.cfg.Timeout)
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
