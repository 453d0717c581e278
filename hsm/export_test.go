package hsm

import (
	"context"
	"time"

	"github.com/miekg/pkcs11"
)

// Test hooks, compiled only into this package's tests.

// DoForTest runs fn on a pooled session through the full retry logic.
func (h *HSM) DoForTest(ctx context.Context, fn func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error) error {
	return h.do(ctx, "test", func(c opCtx) error { return fn(c.p, c.sh) })
}

// IdleHandlesForTest lists the idle sessions' handles, most recent last.
func (h *HSM) IdleHandlesForTest() []pkcs11.SessionHandle {
	h.pool.mu.Lock()
	defer h.pool.mu.Unlock()
	var out []pkcs11.SessionHandle
	for _, s := range h.pool.idle {
		out = append(out, s.h)
	}
	return out
}

// BehindTheBackForTest runs fn on the module with no pool involvement, while
// no other goroutine is inside the module.
func (h *HSM) BehindTheBackForTest(fn func(p *pkcs11.Ctx)) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	fn(h.m.p11)
}

// SetRaiseForTest speeds up the additive increase of the cap.
func (h *HSM) SetRaiseForTest(every int, interval time.Duration) {
	h.pool.mu.Lock()
	defer h.pool.mu.Unlock()
	h.pool.raiseEvery, h.pool.raiseInterval = every, interval
}

// LowerCapForTest lowers the effective cap to n, as a capacity error would,
// and keeps it there (no additive increase).
func (h *HSM) LowerCapForTest(n int) {
	h.pool.mu.Lock()
	defer h.pool.mu.Unlock()
	h.pool.effCap = n
	h.pool.raiseEvery, h.pool.raiseInterval = 1<<30, time.Hour
}

// DemandForTest is what the pool reports to its budget (it resets Want).
func (h *HSM) DemandForTest() Demand { return h.pool.Demand() }

// ForgetStateForTest forces the next operation to log in and look the
// master keys up again, as after a device recovery.
func (h *HSM) ForgetStateForTest() { h.invalidateState() }
