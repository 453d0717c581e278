package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// requestContext is the context one request message is processed under: the
// connection's context with the RequestTimeout deadline. It behaves as
// context.WithDeadline(parent, deadline) would, but arms no runtime timer
// unless something waits on Done.
//
// Why: context.WithTimeout per request (a timer added to and removed from
// the runtime's heap, plus its allocations) was about 3% of all CPU on a
// Get-heavy load, yet the request path only ever asks ctx.Err() (between
// batch items, in storage and kek). Err compares the clock instead; Done,
// which the HSM pool and the pKEK loader select on, builds the real
// WithDeadline context on first use, and everything (Err, Value, hence
// context.Cause) defers to it from then on, so the answers stay consistent.
type requestContext struct {
	parent   context.Context
	deadline time.Time

	mu       sync.Mutex
	released atomic.Bool                 // set under mu
	real     atomic.Pointer[realContext] // set once, under mu
}

type realContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

var _ context.Context = (*requestContext)(nil)

func newRequestContext(parent context.Context, timeout time.Duration) *requestContext {
	return &requestContext{parent: parent, deadline: time.Now().Add(timeout)}
}

// materialize makes (once) the standard context r stands for: with the
// deadline, or already cancelled if the request has ended.
func (r *requestContext) materialize() context.Context {
	if c := r.real.Load(); c != nil {
		return c.ctx
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.real.Load(); c != nil {
		return c.ctx
	}
	var c realContext
	if r.released.Load() {
		c.ctx, c.cancel = context.WithCancel(r.parent)
		c.cancel()
	} else {
		c.ctx, c.cancel = context.WithDeadline(r.parent, r.deadline)
	}
	r.real.Store(&c)
	return c.ctx
}

func (r *requestContext) Deadline() (time.Time, bool) {
	if d, ok := r.parent.Deadline(); ok && d.Before(r.deadline) {
		return d, true
	}
	return r.deadline, true
}

func (r *requestContext) Done() <-chan struct{} { return r.materialize().Done() }

func (r *requestContext) Err() error {
	if c := r.real.Load(); c != nil {
		return c.ctx.Err()
	}
	if err := r.parent.Err(); err != nil {
		return err
	}
	if !r.released.Load() && time.Now().Before(r.deadline) {
		return nil
	}
	// Expired or released: from now on behave exactly as the standard
	// context would, so Err, Done and Cause agree.
	return r.materialize().Err()
}

func (r *requestContext) Value(key any) any {
	if c := r.real.Load(); c != nil {
		return c.ctx.Value(key)
	}
	return r.parent.Value(key)
}

// release ends the request, like the CancelFunc of context.WithTimeout.
func (r *requestContext) release() {
	r.mu.Lock()
	r.released.Store(true)
	c := r.real.Load()
	r.mu.Unlock()
	if c != nil {
		c.cancel()
	}
}
