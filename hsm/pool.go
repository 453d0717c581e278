package hsm

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/pkcs11"
	"github.com/prometheus/client_golang/prometheus"
)

// session is one open PKCS#11 session.
type session struct {
	h   pkcs11.SessionHandle
	gen uint64 // module generation it was opened in
	// login marks the persistent session that keeps the token logged in: the
	// reaper never closes it. It is otherwise an ordinary session, used for
	// operations like the others, so a sequential caller needs only it.
	login bool
	last  time.Time // when it last went idle
	// suspect: it was idle when a sibling turned out broken (modules tend to
	// invalidate all sessions at once); checked with C_GetSessionInfo before use.
	suspect bool
}

// reused reports whether s has been idle in the pool since it was opened
// (put and newPool/restore set last), i.e. whether it can have died unnoticed.
func (s *session) reused() bool { return !s.last.IsZero() }

// grant is what a waiter is handed: a session, or permission to open one
// (already counted in open/inUse), or an error.
type grant struct {
	s    *session
	open bool
	err  error
}

type waiter struct {
	ch chan grant    // buffered: the granter never blocks
	el *list.Element // nil once served or removed
}

// Pool is the bounded session pool. Every open session, the login session
// included, counts toward the cap. Idle sessions are reused LIFO (so a
// sequential caller keeps reusing one session and the pool never grows
// under sequential load), a new session is opened only when none is idle
// and the cap allows, and waiters are served FIFO. With a Budget the cap is
// also bounded by the share the budget grants (share.go).
type Pool struct {
	log     hclog.Logger
	openFn  func(ctx context.Context) (*session, error)
	closeFn func(s *session)

	waitTimeout   time.Duration
	idleTimeout   time.Duration
	minIdle       int
	raiseEvery    int           // successes needed before the cap is raised by one
	raiseInterval time.Duration // and time since the last change
	waitHist      prometheus.Histogram

	mu           sync.Mutex
	idle         []*session // sorted by last use; the top is the most recent
	open         int        // sessions open, being opened or being closed
	closing      int        // of those, being closed: open but not usable
	inUse        int
	peakOpen     int
	effCap       int
	maxCap       int
	waiters      list.List
	ready        bool
	lost         bool // device lost: returned sessions are dead
	closed       bool
	loginMissing bool // the login session was discarded; promote the next one
	okSince      int
	lastAdjust   time.Time
	noneInUse    chan struct{} // closed when inUse reaches 0
	capLowered   uint64
	capRaised    uint64

	// A cluster-wide session budget (share.go); budgeted false: the cap is
	// effCap alone, as without one.
	budgeted    bool
	share       int       // sessions granted, the login session included
	shareUntil  time.Time // the grant's local deadline (monotonic clock)
	shareLost   bool      // the deadline passed: every session is being closed
	shareLosses uint64
	fenceTimer  *time.Timer
	roomCh      chan struct{} // closed when room may have appeared (waitRoom)
	peakWant    int           // most sessions in use plus waiters since the last Demand
	invalidate  func()        // forget the login state (HSM.invalidateState)
}

// newPool makes a pool around the open login session first; with first nil
// it holds nothing and is not ready until restore hands it one.
func newPool(log hclog.Logger, cfg Config, maxCap int, first *session) *Pool {
	p := &Pool{
		log:           log,
		waitTimeout:   cfg.WaitTimeout,
		idleTimeout:   cfg.IdleTimeout,
		minIdle:       cfg.MinIdle,
		raiseEvery:    32,
		raiseInterval: time.Second,
		waitHist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kmipd_hsm_wait_seconds",
			Help:    "Time spent waiting for an HSM session.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}),
		effCap:     maxCap,
		maxCap:     maxCap,
		ready:      first != nil,
		lastAdjust: time.Now(),
	}
	if first == nil {
		return p
	}
	first.login = true
	first.last = time.Now()
	p.idle = []*session{first}
	p.open, p.peakOpen = 1, 1
	return p
}

// take returns a session for exclusive use; give it back with put or discard.
// fresh prefers opening a new session over reusing an idle one (used to
// retry after a broken session, whose idle siblings may be broken too).
func (p *Pool) take(ctx context.Context, fresh bool) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "acquire session", Err: err}
	}
	// The fast path reads no clock: time.Now is a visible part of an
	// uncontended take/put on some VMs.
	if s := p.takeIdle(fresh); s != nil {
		p.waitHist.Observe(0)
		return s, nil
	}
	start := time.Now()
	s, err := p.takeSlow(ctx, fresh, start.Add(p.waitTimeout))
	p.waitHist.Observe(time.Since(start).Seconds())
	return s, err
}

// takeIdle pops the most recently used idle session, if that is allowed now.
func (p *Pool) takeIdle(fresh bool) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if !p.ready || p.waiters.Len() > 0 || n == 0 || (fresh && p.open < p.capLocked()) {
		return nil
	}
	s := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	p.inUse++
	p.noteWantLocked()
	return s
}

func (p *Pool) takeSlow(ctx context.Context, fresh bool, deadline time.Time) (*session, error) {
	backoff := 5 * time.Millisecond
	for {
		var g grant
		p.mu.Lock()
		if !p.ready {
			p.mu.Unlock()
			return nil, ErrUnavailable
		}
		if p.noShareLocked() {
			p.mu.Unlock()
			return nil, ErrNoShare
		}
		if p.waiters.Len() == 0 { // never overtake a waiter
			if n := len(p.idle); n > 0 && !(fresh && p.open < p.capLocked()) {
				s := p.idle[n-1]
				p.idle[n-1] = nil
				p.idle = p.idle[:n-1]
				p.inUse++
				p.noteWantLocked()
				p.mu.Unlock()
				return s, nil
			}
			if p.roomLocked() {
				p.reserveLocked()
				g.open = true
			}
		}
		if g.open {
			p.mu.Unlock()
		} else {
			w := &waiter{ch: make(chan grant, 1)}
			w.el = p.waiters.PushBack(w)
			p.noteWantLocked()
			p.mu.Unlock()
			var err error
			if g, err = p.wait(ctx, w, deadline); err != nil {
				return nil, err
			}
			if g.err != nil {
				return nil, g.err
			}
			if g.s != nil {
				return g.s, nil
			}
		}
		s, err := p.openFn(ctx)
		if err == nil {
			return s, nil
		}
		if !p.openFailed(err) {
			return nil, err
		}
		// The HSM is short of sessions: wait a little (returned sessions are
		// handed to us meanwhile only if we queue, which the next loop does).
		d := time.Until(deadline)
		if d <= 0 {
			return nil, &Error{Op: "acquire session", Code: toError("", err).Code, Class: ClassBusy, Err: err}
		}
		t := time.NewTimer(min(backoff, d))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &Error{Op: "acquire session", Err: ctx.Err()}
		case <-t.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

func (p *Pool) reserveLocked() {
	p.open++
	p.inUse++
	if p.open > p.peakOpen {
		p.peakOpen = p.open
	}
	p.noteWantLocked()
}

// capLocked is the cap in force: the AIMD cap, within the budget's share.
func (p *Pool) capLocked() int {
	if p.budgeted && p.share < p.effCap {
		return p.share
	}
	return p.effCap
}

// roomLocked reports whether one more session may be opened now. With a
// budget that needs a share whose deadline has not passed, even if the
// fence timer has not fired yet: opening is what the others count on us
// not to do after it.
func (p *Pool) roomLocked() bool {
	if p.open >= p.capLocked() {
		return false
	}
	return !p.budgeted || time.Now().Before(p.shareUntil)
}

// noShareLocked: the budget grants nothing (lost, or never granted), so
// callers fail fast instead of waiting for a session that cannot come.
func (p *Pool) noShareLocked() bool { return p.budgeted && p.share == 0 }

// noteWantLocked records demand for the budget (Demand.Want).
func (p *Pool) noteWantLocked() {
	if w := p.inUse + p.waiters.Len(); w > p.peakWant {
		p.peakWant = w
	}
}

// wait blocks until w is served, ctx ends or the deadline passes.
func (p *Pool) wait(ctx context.Context, w *waiter, deadline time.Time) (grant, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var err error
	select {
	case g := <-w.ch:
		return g, nil
	case <-ctx.Done():
		err = &Error{Op: "acquire session", Err: ctx.Err()}
	case <-t.C:
		err = ErrBusy
	}
	p.mu.Lock()
	if w.el != nil {
		p.waiters.Remove(w.el)
		w.el = nil
		p.mu.Unlock()
		return grant{}, err
	}
	p.mu.Unlock()
	// Served in the meantime: hand the grant back before giving up.
	g := <-w.ch
	switch {
	case g.s != nil:
		p.put(g.s, false)
	case g.open:
		p.mu.Lock()
		p.open--
		p.inUse--
		p.serveLocked()
		p.mu.Unlock()
	}
	return grant{}, err
}

// serveLocked hands idle sessions, or room to open one, to waiters in order.
func (p *Pool) serveLocked() {
	if p.roomCh != nil { // waitRoom re-checks
		close(p.roomCh)
		p.roomCh = nil
	}
	for p.waiters.Len() > 0 {
		var g grant
		switch {
		case !p.ready:
			g.err = ErrUnavailable
		case p.noShareLocked():
			g.err = ErrNoShare
		case len(p.idle) > 0:
			n := len(p.idle)
			g.s = p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.inUse++
		case p.roomLocked():
			p.reserveLocked()
			g.open = true
		default:
			return
		}
		w := p.waiters.Remove(p.waiters.Front()).(*waiter)
		w.el = nil
		w.ch <- g
	}
}

// openFailed undoes a reservation after C_OpenSession failed and reports
// whether to try again (capacity errors: the cap is lowered to what is open,
// sessions being closed included: the HSM refused with those still counted).
func (p *Pool) openFailed(err error) bool {
	e := toError("C_OpenSession", err)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open--
	p.inUse--
	retry := false
	if e.Class == ClassCapacity {
		p.lowerCapLocked(max(1, p.open), e.Code)
		retry = true
	}
	p.signalLocked()
	p.serveLocked()
	return retry
}

// lowerCap reacts to a capacity error during an operation on an open session:
// one session fewer than now, so the returned session is closed.
func (p *Pool) lowerCap(code uint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Sessions already being closed are going anyway: one fewer than the
	// usable ones, so that put closes the returned session.
	p.lowerCapLocked(max(1, p.open-p.closing-1), code)
}

func (p *Pool) lowerCapLocked(to int, code uint) {
	p.okSince = 0
	p.lastAdjust = time.Now()
	if to >= p.effCap {
		return
	}
	from := p.effCap
	p.effCap = to
	p.capLowered++
	p.log.Warn("HSM out of capacity: session cap lowered", "code", ckrName(code),
		"from", from, "to", to, "open", p.open, "in_use", p.inUse, "max", p.maxCap)
}

// put returns a session to the pool; ok says the operation succeeded, which
// slowly raises a lowered cap again (additive increase).
func (p *Pool) put(s *session, ok bool) {
	var toClose *session
	p.mu.Lock()
	p.inUse--
	switch {
	case p.lost:
		p.open-- // dead with the device; recovery re-initialises the module
	case p.open-p.closing > p.capLocked():
		// Over a lowered cap: close one session, but never the login one
		// (if it is the only one, a later put closes another) unless the
		// budget grants nothing: then every session goes.
		toClose = s
		if s.login && p.capLocked() > 0 {
			toClose = nil
			for i, v := range p.idle { // the least recently used other
				if !v.login {
					toClose = v
					p.idle = append(p.idle[:i], p.idle[i+1:]...)
					break
				}
			}
			s.last = time.Now()
			p.idle = append(p.idle, s)
		}
		if toClose != nil {
			p.closing++ // still open for the cap until closeDone
		}
	default:
		if p.loginMissing {
			s.login, p.loginMissing = true, false
		}
		s.last = time.Now()
		p.idle = append(p.idle, s)
	}
	if ok && p.effCap < p.maxCap {
		p.okSince++
		if p.okSince >= p.raiseEvery && time.Since(p.lastAdjust) >= p.raiseInterval {
			p.effCap++
			p.capRaised++
			p.okSince = 0
			p.lastAdjust = time.Now()
			p.log.Info("HSM session cap raised", "to", p.effCap, "open", p.open, "max", p.maxCap)
		}
	}
	p.serveLocked()
	p.signalLocked()
	p.mu.Unlock()
	if toClose != nil {
		p.closeFn(toClose)
		p.closeDone(1)
	}
}

// discard drops a session that must not be reused; closeIt closes its
// handle, and until that is done the session still counts toward the cap.
func (p *Pool) discard(s *session, closeIt bool) {
	p.mu.Lock()
	p.inUse--
	if closeIt {
		p.closing++
	} else {
		p.open-- // a dead handle (older module generation, lost device): nothing to close
	}
	if s.login {
		p.loginMissing = true
	}
	p.serveLocked()
	p.signalLocked()
	p.mu.Unlock()
	if closeIt {
		p.closeFn(s)
		p.closeDone(1)
	}
}

// closeDone uncounts n sessions whose C_CloseSession has returned. Until
// then they stay in open: the HSM still counts them, so opening another in
// their place would show it one session over the cap (and, on a capacity
// refusal, make openFailed lower the cap below what is really open).
func (p *Pool) closeDone(n int) {
	p.mu.Lock()
	p.open -= n
	p.closing -= n
	p.serveLocked() // the room they leave may be what a waiter needs
	p.mu.Unlock()
}

// suspectIdle marks every idle session for a check before its next use.
func (p *Pool) suspectIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.idle {
		s.suspect = true
	}
}

func (p *Pool) signalLocked() {
	if p.inUse == 0 && p.noneInUse != nil {
		close(p.noneInUse)
		p.noneInUse = nil
	}
}
