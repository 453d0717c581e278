package hsm

import (
	"errors"
	"time"
)

// Pool life cycle: waiting for in-use sessions, device loss and restore,
// close, and the idle reaper.

// waitNoneInUse waits until no session is in use, stop is closed (false) or
// timeout passes (false; 0 means no timeout).
func (p *Pool) waitNoneInUse(stop <-chan struct{}, timeout time.Duration) bool {
	p.mu.Lock()
	if p.inUse == 0 {
		p.mu.Unlock()
		return true
	}
	if p.noneInUse == nil {
		p.noneInUse = make(chan struct{})
	}
	ch := p.noneInUse
	p.mu.Unlock()
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-ch:
		return true
	case <-stop:
	case <-tc:
	}
	return false
}

// setLost marks the device lost: callers fail fast, idle sessions are
// forgotten (they die with the re-initialisation). False if already lost or closed.
func (p *Pool) setLost() (open, inUse int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lost || p.closed {
		return 0, 0, false
	}
	open, inUse = p.open, p.inUse
	p.lost, p.ready = true, false
	p.open -= len(p.idle)
	p.idle = nil
	p.loginMissing = false
	p.serveLocked() // fails every waiter with ErrUnavailable
	return open, inUse, true
}

// restore puts the pool (back) in service with one logged-in session, after
// recovery or, with a budget, at Open. It refuses (errPoolClosed, or
// ErrNoShare when a budget's share was lost while first was being opened)
// and the caller closes first.
func (p *Pool) restore(first *session, maxCap int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPoolClosed
	}
	if p.budgeted && (p.share == 0 || !time.Now().Before(p.shareUntil)) {
		return ErrNoShare
	}
	first.login = true
	first.last = time.Now()
	p.idle = []*session{first}
	p.open = p.inUse + p.closing + 1 // closes in flight uncount themselves
	p.maxCap, p.effCap = maxCap, maxCap
	p.okSince, p.lastAdjust = 0, time.Now()
	p.lost, p.ready, p.loginMissing = false, true, false
	p.serveLocked()
	return nil
}

var errPoolClosed = &Error{Op: "restore session pool", Class: ClassUnavailable, Err: errors.New("HSM closed")}

// close stops handing out sessions; drain then returns the idle ones.
func (p *Pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed, p.ready = true, false
	if p.fenceTimer != nil {
		p.fenceTimer.Stop()
	}
	p.serveLocked()
}

func (p *Pool) drain() (idle []*session, lost bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle, p.idle = p.idle, nil
	p.open -= len(idle)
	return idle, p.lost
}

// reap closes idle sessions unused for idleTimeout, keeping the login
// session and minIdle others.
func (p *Pool) reap(now time.Time) {
	p.mu.Lock()
	if !p.ready {
		p.mu.Unlock()
		return
	}
	if p.loginMissing && len(p.idle) > 0 {
		p.idle[len(p.idle)-1].login = true
		p.loginMissing = false
	}
	others := 0
	for _, s := range p.idle {
		if !s.login {
			others++
		}
	}
	victims := p.removeIdleLocked(func(s *session) bool {
		if !s.login && others > p.minIdle && now.Sub(s.last) >= p.idleTimeout {
			others--
			return true
		}
		return false
	})
	open := p.open - p.closing
	p.mu.Unlock()
	if len(victims) == 0 {
		return
	}
	for _, s := range victims {
		p.closeFn(s)
		p.closeDone(1) // one by one: a burst may be waiting for the room
	}
	p.log.Debug("closed idle HSM sessions", "closed", len(victims), "open", open)
}

func (p *Pool) reaper(stop <-chan struct{}) {
	tick := min(max(p.idleTimeout/4, 5*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			p.reap(now)
		}
	}
}

// removeIdleLocked takes the idle sessions take accepts (oldest first) out
// of the pool for closing. They are counted as open until closed (see
// closeDone), so the cap still sees them.
func (p *Pool) removeIdleLocked(take func(s *session) bool) []*session {
	var victims []*session
	kept := p.idle[:0]
	for _, s := range p.idle {
		if take(s) {
			victims = append(victims, s)
			continue
		}
		kept = append(kept, s)
	}
	for i := len(kept); i < len(p.idle); i++ {
		p.idle[i] = nil
	}
	p.idle = kept
	p.closing += len(victims)
	return victims
}
