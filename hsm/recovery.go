package hsm

import (
	"context"
	"errors"
	"time"
)

// Recovery re-initialises with exponential back-off, but never waits more
// than recoveryBackoffMax between attempts: that wait is what a client sees
// after the HSM comes back (kmipd promises HSM work within 2 s of the token's
// return), and one C_Finalize + C_Initialize a second while the HSM is gone
// costs nothing worth saving.
const (
	recoveryBackoffMin = 100 * time.Millisecond
	recoveryBackoffMax = time.Second
)

// deviceLost marks the HSM not ready and starts background recovery, once.
// gen is the module generation the failure was seen in.
func (h *HSM) deviceLost(gen uint64, cause *Error) {
	h.lifeMu.Lock()
	defer h.lifeMu.Unlock()
	if h.closing {
		return
	}
	open, inUse, ok := h.pool.setLost()
	if !ok {
		return
	}
	h.log.Error("HSM device lost; failing fast and re-initialising in the background",
		"code", ckrName(cause.Code), "op", cause.Op, "open", open, "in_use", inUse)
	h.wg.Add(1)
	go h.recover(gen)
}

// recover waits for sessions in use to come back, then re-initialises the
// module and reconnects, with exponential back-off, until it works or the
// HSM is closed.
func (h *HSM) recover(gen uint64) {
	defer h.wg.Done()
	if !h.pool.waitNoneInUse(h.stop, 0) {
		return
	}
	backoff := recoveryBackoffMin
	for attempt := 1; ; attempt++ {
		err := h.m.reinitialize(gen)
		if err == nil {
			// Under a budget this first waits for room in the share.
			err = h.reconnect(context.Background())
			if err == nil {
				n := h.reinits.Add(1)
				h.log.Info("HSM recovered", "attempts", attempt, "reinitializations", n,
					"max_sessions", h.Stats().MaxSessions)
				return
			}
			if errors.Is(err, errPoolClosed) {
				return
			}
		}
		h.recordErr(toError("recover", err))
		h.log.Warn("HSM recovery attempt failed", "attempt", attempt, "retry_in", backoff, "error", err)
		select {
		case <-h.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, recoveryBackoffMax)
		// Every further attempt re-initialises again: many modules only
		// rescan their slots in C_Initialize.
		gen = h.m.gen.Load()
	}
}

// reconnect opens and logs in a new login session and puts the pool (back)
// in service with it. Under a budget it first waits for room in the share,
// and starts over if the share is lost before the session is in the pool.
func (h *HSM) reconnect(ctx context.Context) error {
	for {
		if h.budget != nil {
			if err := h.pool.waitRoom(ctx, h.stop); err != nil {
				return err
			}
		}
		first, maxCap, err := h.connect()
		if err != nil {
			if h.budget != nil {
				h.pool.unreserve()
			}
			return err
		}
		err = h.pool.restore(first, maxCap)
		if err == nil {
			return nil
		}
		h.closeSession(first)
		if h.budget != nil {
			h.pool.unreserve()
		}
		if !errors.Is(err, ErrNoShare) {
			return err
		}
	}
}
