package hsm

import (
	"context"
	"errors"
	"time"
)

// Budget is a bound on HSM sessions shared with other processes that use
// the same HSM: kmipd replicas splitting one cluster_max_sessions between
// them (package hsm/sessionbudget keeps one in PostgreSQL). It grants the
// pool a share that it may change at any time, and every grant holds only
// until a deadline: past it the pool closes every session it has (fencing
// by time), so the budget can give the share to another replica once the
// deadline has surely passed, whether or not it still hears from this one.
//
// Under a budget every session the pool holds counts toward the share, the
// login session included: while the share is 0 (not granted yet, or lost)
// the pool holds no session at all and callers fail fast with ErrNoShare;
// when a share comes back, the first session logs in again.
type Budget interface {
	// Attach makes l the pool the budget steers. From then on the budget
	// calls l.SetShare whenever the grant or its deadline changes (at least
	// on every renewal) and reads l.Demand to decide what to ask for. It
	// returns once a first grant (possibly of 0 sessions) has been set.
	Attach(ctx context.Context, l Lessee) error
	// Detach stops steering l. The budget releases l's share at once only
	// if l.Demand().Open is 0; otherwise it lets the grant run out.
	Detach(ctx context.Context, l Lessee) error
}

// Lessee is a session pool as its Budget sees it.
type Lessee interface {
	// Demand reports what the pool holds and what it wanted since the
	// previous call.
	Demand() Demand
	// SetShare replaces the grant. Lowering it closes idle sessions over
	// it at once and in-use ones as they come back; a grant of 0, or one
	// whose deadline has passed, closes every session.
	SetShare(s Share)
}

// Share is a grant from a Budget.
type Share struct {
	// Sessions the pool may hold open, the login session included.
	Sessions int
	// Until is when the grant ends, on this process's monotonic clock
	// (a time.Now() reading plus a duration).
	Until time.Time
}

// Demand is what a pool holds and wants, for its Budget.
type Demand struct {
	// Open counts sessions open, being opened or being closed: what the
	// HSM may count for this pool now.
	Open int
	// Want is the most sessions in use plus callers waiting for one at any
	// moment since the previous Demand call, and at least 1 (the login
	// session).
	Want int
	// Waiting is the number of callers waiting for a session now.
	Waiting int
	// Max is the pool's own cap: max_sessions clamped to the token's limit.
	Max int
}

// ErrNoShare is returned while a session budget grants this replica
// nothing, typically because its lease could not be renewed. It is of the
// capacity class: errors.Is(err, ErrBusy) holds too.
var ErrNoShare = &Error{Op: "acquire session", Class: ClassCapacity,
	Err: errors.New("no share of the cluster's HSM session budget (lease lost or not granted yet)")}

// Option configures Open.
type Option func(*options)

type options struct {
	budget Budget
}

// WithBudget bounds the pool by b's share as well as by MaxSessions. Open
// waits (up to ctx) for a share of at least one session before it opens
// the login session.
func WithBudget(b Budget) Option { return func(o *options) { o.budget = b } }

// openBudgeted attaches the pool to the budget and opens the login session
// once the budget grants room for it.
func (h *HSM) openBudgeted(ctx context.Context) error {
	h.pool = newPool(h.log.Named("pool"), h.cfg, h.cfg.MaxSessions, nil)
	h.pool.openFn = h.openSession
	h.pool.closeFn = h.closeSession
	h.pool.invalidate = h.invalidateState
	h.pool.budgeted = true
	if err := h.budget.Attach(ctx, h.pool); err != nil {
		h.pool.close()
		return &Error{Op: "attach to the session budget", Class: ClassUnavailable, Err: err}
	}
	if err := h.reconnect(ctx); err != nil {
		h.pool.close()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if derr := h.budget.Detach(dctx, h.pool); derr != nil {
			h.log.Warn("could not release the session budget share", "error", derr)
		}
		return err
	}
	return nil
}

var _ Lessee = (*Pool)(nil)

// Demand implements Lessee.
func (p *Pool) Demand() Demand {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := max(p.peakWant, p.inUse+p.waiters.Len(), 1)
	p.peakWant = 0
	return Demand{Open: p.open, Want: want, Waiting: p.waiters.Len(), Max: p.maxCap}
}

// SetShare implements Lessee.
func (p *Pool) SetShare(s Share) {
	p.mu.Lock()
	if p.closed || !p.budgeted {
		p.mu.Unlock()
		return
	}
	n := max(s.Sessions, 0)
	now := time.Now()
	if !now.Before(s.Until) {
		n = 0
	}
	p.shareUntil = s.Until
	if p.fenceTimer == nil {
		p.fenceTimer = time.AfterFunc(s.Until.Sub(now), p.fence)
	} else {
		p.fenceTimer.Reset(s.Until.Sub(now))
	}
	var victims []*session
	if n == 0 {
		victims = p.fenceLocked()
	} else {
		if p.shareLost {
			p.shareLost = false
			if p.open == 0 && p.invalidate != nil {
				// Closing our last session logged the token out: the
				// next session logs in again.
				p.invalidate()
			}
			p.log.Info("HSM session share regained", "sessions", n)
		}
		p.share = n
		victims = p.trimLocked()
	}
	p.serveLocked()
	p.mu.Unlock()
	p.closeAll(victims)
}

// fence is the deadline timer: a grant that was not renewed in time is void.
func (p *Pool) fence() {
	p.mu.Lock()
	if p.closed || !p.budgeted || time.Now().Before(p.shareUntil) {
		p.mu.Unlock() // renewed meanwhile (Reset raced with the timer)
		return
	}
	victims := p.fenceLocked()
	p.mu.Unlock()
	p.closeAll(victims)
}

// fenceLocked drops the share to nothing: waiters fail, idle sessions (the
// login one too) are returned for closing, in-use ones close when they
// come back (put). They count as open until closed.
func (p *Pool) fenceLocked() []*session {
	if p.share > 0 {
		p.shareLost = true
		p.shareLosses++
		p.log.Warn("HSM session share lost or withdrawn: closing every session",
			"open", p.open, "in_use", p.inUse, "waiting", p.waiters.Len())
	}
	p.share = 0
	victims := p.idle
	p.idle = nil
	p.closing += len(victims)
	p.loginMissing = true // whichever session comes back first logs in again
	p.serveLocked()
	return victims
}

// trimLocked takes idle sessions beyond the cap out for closing, least
// recently used first and never the login session.
func (p *Pool) trimLocked() []*session {
	excess := p.open - p.closing - p.capLocked()
	return p.removeIdleLocked(func(s *session) bool {
		if excess > 0 && !s.login {
			excess--
			return true
		}
		return false
	})
}

func (p *Pool) closeAll(victims []*session) {
	for _, s := range victims {
		p.closeFn(s)
		p.closeDone(1)
	}
}

// waitRoom waits until the share allows one more session and counts it as
// open: the login session Open or recovery is about to open. On success the
// caller must restore or unreserve.
func (p *Pool) waitRoom(ctx context.Context, stop <-chan struct{}) error {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return errPoolClosed
		}
		if p.roomLocked() {
			p.open++
			p.peakOpen = max(p.peakOpen, p.open)
			p.mu.Unlock()
			return nil
		}
		if p.roomCh == nil {
			p.roomCh = make(chan struct{})
		}
		ch := p.roomCh
		p.mu.Unlock()
		select {
		case <-ch:
		case <-stop:
			return errPoolClosed
		case <-ctx.Done():
			return &Error{Op: "wait for a session share", Class: ClassCapacity, Err: ctx.Err()}
		}
	}
}

// unreserve undoes waitRoom once the session it made room for is closed
// (or was never opened).
func (p *Pool) unreserve() {
	p.mu.Lock()
	p.open--
	p.serveLocked()
	p.mu.Unlock()
}
