// Package hsm is kmipd's only door to the HSM: it loads the PKCS#11 module,
// keeps one bounded, self-healing pool of sessions on one token and offers
// the master-key operations (kek.MasterKeys) under the MKEK and HMAC key.
//
// The login session (opened and logged in by Open) is kept open for the
// HSM's life so the token stays logged in, and it is also used for
// operations like any pooled session: it counts toward max_sessions, and a
// sequential caller needs no other session. The reaper never closes it; if
// it breaks, the next healthy session takes its role.
//
// Failures are handled by class (see Class): broken sessions are discarded
// and the operation retried once on a fresh, logged-in session; capacity
// refusals lower the effective cap to what is open (AIMD: +1 after 32
// successes and 1s); a lost device makes callers fail fast with
// ErrUnavailable while a goroutine re-initialises the module (C_Finalize +
// C_Initialize under the module's write lock) with back-off 100ms..1s.
//
// With a Budget (WithBudget, share.go) the pool's cap is also bounded by the
// share of a cluster-wide session budget, which can shrink, grow or be lost
// (then every session, the login one included, is closed) at any time.
package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/pkcs11"
)

// HSM is an open token with its session pool. It is safe for concurrent use.
type HSM struct {
	cfg         Config
	log         hclog.Logger
	m           *module
	pool        *Pool
	budget      Budget // nil: MaxSessions alone bounds the pool
	requireKeys bool   // false only while InitMasterKeys creates them

	stateMu  sync.Mutex
	slot     uint
	slotGen  uint64 // module generation slot was found in (modules may renumber)
	token    TokenInfo
	loginGen uint64 // module generation of our last login; 0 forces a new login
	keysGen  uint64 // module generation the key handles belong to
	mkek     pkcs11.ObjectHandle
	hmac     pkcs11.ObjectHandle
	// curMKEK and curHMAC label the current master keys: the configured
	// ones until a rotation moves on (SetCurrentMasterKey), so the old key
	// can be retired without a restart.
	curMKEK, curHMAC string
	byLabel          labelCache // master keys other than the current ones (rotation)

	calls   atomic.Uint64
	reinits atomic.Uint64
	errMu   sync.Mutex
	errs    map[uint]uint64

	lifeMu  sync.Mutex
	closing bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// keys are the current master keys' handles, valid in the current module
// generation, and their labels.
type keys struct {
	mkek, hmac           pkcs11.ObjectHandle
	mkekLabel, hmacLabel string
}

// Open opens the token cfg selects and checks that the master keys exist.
// log should be a named sub-logger (logger.Named("hsm")); the session pool
// logs under log.Named("pool").
func Open(ctx context.Context, cfg Config, log hclog.Logger, opts ...Option) (*HSM, error) {
	return open(ctx, cfg, log, true, opts)
}

func open(ctx context.Context, cfg Config, log hclog.Logger, requireKeys bool, opts []Option) (*HSM, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m, err := acquireModule(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	h := &HSM{cfg: cfg, log: log, m: m, budget: o.budget, requireKeys: requireKeys, errs: map[uint]uint64{}, stop: make(chan struct{}),
		curMKEK: cfg.MKEKLabel, curHMAC: cfg.HMACLabel}
	if h.budget == nil {
		first, maxCap, err := h.connect()
		if err != nil {
			m.release()
			return nil, err
		}
		h.pool = newPool(log.Named("pool"), cfg, maxCap, first)
		h.pool.openFn = h.openSession
		h.pool.closeFn = h.closeSession
	} else if err := h.openBudgeted(ctx); err != nil {
		m.release()
		return nil, err
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.pool.reaper(h.stop)
	}()
	log.Info("HSM opened", "module", cfg.ModulePath, "token", cfg.tokenDesc(), "slot", h.slot,
		"max_sessions", h.Stats().MaxSessions, "budget", h.budget != nil)
	return h, nil
}

// connect selects the token, opens and logs in the persistent session and
// finds the master keys, in the current module generation. It returns the
// session and the cap (MaxSessions, clamped to the token's own limit).
func (h *HSM) connect() (*session, int, error) {
	h.m.mu.RLock()
	defer h.m.mu.RUnlock()
	p := h.m.p11
	gen := h.m.gen.Load()
	h.calls.Add(2)
	slot, ti, err := findSlot(p, h.cfg)
	if err != nil {
		return nil, 0, err
	}
	maxCap := h.cfg.MaxSessions
	if limit := sessionLimit(ti); limit > 0 && limit < maxCap {
		h.log.Warn("token limits sessions; clamping the pool cap", "max_sessions", maxCap, "token_limit", limit)
		maxCap = limit
	}
	h.calls.Add(1)
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, 0, toError("C_OpenSession", err)
	}
	h.stateMu.Lock()
	h.slot, h.slotGen, h.loginGen, h.keysGen = slot, gen, 0, 0
	h.token = TokenInfo{Slot: slot, Label: ti.Label, Serial: ti.SerialNumber, Model: ti.Model}
	h.stateMu.Unlock()
	if _, err := h.ensureState(sh, gen); err != nil {
		h.calls.Add(1)
		_ = p.CloseSession(sh)
		return nil, 0, err
	}
	return &session{h: sh, gen: gen}, maxCap, nil
}

// ensureState logs in and finds the key handles if the module generation
// changed (or a broken session forced it). Caller holds m.mu.RLock.
func (h *HSM) ensureState(sh pkcs11.SessionHandle, gen uint64) (keys, error) {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	p := h.m.p11
	if h.loginGen != gen {
		h.calls.Add(1)
		if err := login(p, sh, h.cfg.PIN); err != nil {
			return keys{}, err
		}
		h.loginGen = gen
	}
	if h.keysGen != gen {
		h.calls.Add(3)
		mkek, err := findKey(p, sh, h.curMKEK, pkcs11.CKK_AES)
		if err != nil {
			return keys{}, err
		}
		h.calls.Add(3)
		hmac, err := findKey(p, sh, h.curHMAC, pkcs11.CKK_GENERIC_SECRET)
		if err != nil {
			return keys{}, err
		}
		if h.requireKeys && (mkek == 0 || hmac == 0) {
			return keys{}, &Error{Op: "find master keys", Class: ClassOther, Err: fmt.Errorf(
				"%w: %q and %q not both found on %s; run `kmipd hsm init` to create them",
				ErrNoKey, h.curMKEK, h.curHMAC, h.cfg.tokenDesc())}
		}
		h.mkek, h.hmac, h.keysGen = mkek, hmac, gen
	}
	return keys{mkek: h.mkek, hmac: h.hmac, mkekLabel: h.curMKEK, hmacLabel: h.curHMAC}, nil
}

// invalidateState forces a new login and key lookup on the next operation.
func (h *HSM) invalidateState() {
	h.stateMu.Lock()
	h.loginGen, h.keysGen = 0, 0
	h.stateMu.Unlock()
}

// openSession is the pool's opener.
func (h *HSM) openSession(context.Context) (*session, error) {
	h.m.mu.RLock()
	gen := h.m.gen.Load()
	slot, err := h.currentSlot(gen)
	var sh pkcs11.SessionHandle
	if err == nil {
		h.calls.Add(1)
		sh, err = h.m.p11.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	}
	h.m.mu.RUnlock()
	if err != nil {
		e := toError("C_OpenSession", err)
		h.recordErr(e)
		if e.Class == ClassDevice {
			h.deviceLost(gen, e)
		}
		return nil, e
	}
	return &session{h: sh, gen: gen}, nil
}

// currentSlot returns our token's slot in module generation gen, looking
// it up again after someone re-initialised the module (SoftHSM renumbers
// its slots then). Caller holds m.mu.RLock.
func (h *HSM) currentSlot(gen uint64) (uint, error) {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	if h.slotGen != gen {
		h.calls.Add(2)
		slot, ti, err := findSlot(h.m.p11, h.cfg)
		if err != nil {
			return 0, err
		}
		h.slot, h.slotGen = slot, gen
		h.token = TokenInfo{Slot: slot, Label: ti.Label, Serial: ti.SerialNumber, Model: ti.Model}
	}
	return h.slot, nil
}

// closeSession is the pool's closer; errors are moot (the session is going).
func (h *HSM) closeSession(s *session) {
	h.m.mu.RLock()
	defer h.m.mu.RUnlock()
	if s.gen != h.m.gen.Load() {
		return // died with a re-initialisation
	}
	h.calls.Add(1)
	_ = h.m.p11.CloseSession(s.h)
}

func (h *HSM) recordErr(e *Error) {
	if e == nil || e.Code == 0 {
		return
	}
	h.errMu.Lock()
	h.errs[e.Code]++
	h.errMu.Unlock()
}

// Close closes all sessions, logs out and finalises the module when this
// was its last user. In-flight operations get up to WaitTimeout to finish.
func (h *HSM) Close() error {
	h.lifeMu.Lock()
	if h.closing {
		h.lifeMu.Unlock()
		return nil
	}
	h.closing = true
	h.lifeMu.Unlock()
	close(h.stop)
	h.pool.close()
	h.wg.Wait()
	h.pool.waitNoneInUse(nil, h.cfg.WaitTimeout)
	idle, lost := h.pool.drain()
	if !lost {
		logout := !h.m.shared() // before m.mu: release takes registry.mu, then m.mu
		h.m.mu.RLock()
		gen := h.m.gen.Load()
		live := idle[:0]
		for _, s := range idle {
			if s.gen == gen {
				live = append(live, s)
			}
		}
		for i, s := range live {
			if logout && i == len(live)-1 {
				h.calls.Add(1)
				_ = h.m.p11.Logout(s.h)
			}
			h.calls.Add(1)
			_ = h.m.p11.CloseSession(s.h)
		}
		h.m.mu.RUnlock()
	}
	if h.budget != nil {
		// Every session we could close is closed: the budget may hand our
		// share to another replica now.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.budget.Detach(ctx, h.pool); err != nil {
			h.log.Warn("could not release the session budget share; it runs out with its lease", "error", err)
		}
		cancel()
	}
	h.m.release()
	h.log.Info("HSM closed", "calls", h.calls.Load(), "reinitializations", h.reinits.Load())
	return nil
}

// opCtx is what an operation gets: the module, a session and the key handles.
type opCtx struct {
	h   *HSM
	p   *pkcs11.Ctx
	sh  pkcs11.SessionHandle
	k   keys
	gen uint64 // module generation: handles found by label are valid in it
}

// call counts one PKCS#11 call (Stats.Calls) and returns the module.
func (c opCtx) call() *pkcs11.Ctx {
	c.h.calls.Add(1)
	return c.p
}

const (
	maxCapacityRetries = 3
	maxStaleRetries    = 8
)

// do runs fn on a pooled session, handling failures by class: a broken
// session is discarded and fn retried once on another (after a new login);
// a capacity error lowers the cap, backs off and retries; a lost device
// starts recovery and fails fast; anything else goes back to the caller
// with the session pooled.
func (h *HSM) do(ctx context.Context, op string, fn func(c opCtx) error) error {
	brokenRetried := false
	capTries, stale := 0, 0
	for {
		s, err := h.pool.take(ctx, brokenRetried)
		if err != nil {
			return err
		}
		if brokenRetried && s.reused() {
			// The one retry must run on a session known to be alive. An idle
			// session can have died in a mass invalidation that nobody has
			// noticed yet (suspectIdle only marks what was idle when the
			// first break was seen): the retry may have queued through the
			// next one and been handed a session another caller just put
			// back. So check it first; a dead one costs a stale round, not
			// the retry. A freshly opened session needs no check.
			s.suspect = true
		}
		err, isStale := h.attempt(s, fn)
		if errors.Is(err, errSuspectBroken) {
			// Checked and found dead before fn ran: not the caller's retry.
			// It may be the first sign of a new mass invalidation, so treat
			// its siblings and the login state as the broken path does.
			h.pool.discard(s, true)
			h.pool.suspectIdle()
			h.invalidateState()
			if stale++; stale > maxStaleRetries {
				return &Error{Op: op, Class: ClassBroken, Err: err}
			}
			continue
		}
		if isStale {
			// Opened before a re-initialisation (by another HSM on this
			// module): the handle is dead, not closable.
			h.pool.discard(s, false)
			if stale++; stale > maxStaleRetries {
				return &Error{Op: op, Class: ClassUnavailable, Err: errors.New("module keeps being re-initialised")}
			}
			continue
		}
		if err == nil {
			h.pool.put(s, true)
			return nil
		}
		e := toError(op, err)
		h.recordErr(e)
		switch e.Class {
		case ClassBroken:
			h.pool.discard(s, true)
			h.pool.suspectIdle()
			h.invalidateState()
			h.log.Warn("HSM session broken; discarded", "op", op, "code", ckrName(e.Code), "retry", !brokenRetried)
			if !brokenRetried {
				brokenRetried = true
				continue
			}
			return e
		case ClassCapacity:
			h.pool.lowerCap(e.Code)
			h.pool.put(s, false)
			if capTries < maxCapacityRetries {
				capTries++
				if err := sleepCtx(ctx, time.Duration(capTries)*20*time.Millisecond); err != nil {
					return &Error{Op: op, Err: err}
				}
				continue
			}
			return e
		case ClassDevice:
			h.deviceLost(s.gen, e)
			h.pool.discard(s, false)
			return e
		default:
			h.pool.put(s, true)
			return e
		}
	}
}

// attempt runs fn on s inside the module's read lock. stale reports a
// session from an older module generation.
func (h *HSM) attempt(s *session, fn func(c opCtx) error) (err error, stale bool) {
	h.m.mu.RLock()
	defer h.m.mu.RUnlock()
	gen := h.m.gen.Load()
	if s.gen != gen {
		return nil, true
	}
	if s.suspect {
		h.calls.Add(1)
		info, err := h.m.p11.GetSessionInfo(s.h)
		if err != nil {
			e := toError("C_GetSessionInfo", err)
			h.recordErr(e)
			if e.Class == ClassBroken {
				return errSuspectBroken, false
			}
			return e, false
		}
		s.suspect = false
		if info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS {
			h.invalidateState() // alive but logged out: log in again below
		}
	}
	k, err := h.ensureState(s.h, gen)
	if err != nil {
		return err, false
	}
	return fn(opCtx{h: h, p: h.m.p11, sh: s.h, k: k, gen: gen}), false
}

var errSuspectBroken = errors.New("suspect session failed its check")

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
