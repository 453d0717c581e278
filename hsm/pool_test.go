package hsm_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
)

func TestSequentialLoadStaysSmall(t *testing.T) {
	h := open(t, hsmtest.SoftHSM(t))
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		var err error
		switch i % 4 {
		case 0:
			_, err = h.Random(ctx, 16)
		case 1:
			var w []byte
			if w, err = h.Wrap(ctx, []byte("k"), nil); err == nil {
				_, err = h.Unwrap(ctx, w, nil)
			}
		case 2:
			var m []byte
			if m, err = h.MAC(ctx, []byte("d")); err == nil {
				err = h.VerifyMAC(ctx, []byte("d"), m)
			}
		case 3:
			err = h.DoForTest(ctx, func(*pkcs11.Ctx, pkcs11.SessionHandle) error {
				if o := h.Stats().Open; o > 2 {
					t.Errorf("Open=%d inside a sequential call", o)
				}
				return nil
			})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := h.Stats(); st.Open > 2 || st.PeakOpen > 2 {
		t.Fatalf("sequential load grew the pool: %+v", st)
	}
}

func TestConcurrentNeverExceedsCap(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	cfg.MaxSessions = 3
	cfg.WaitTimeout = 30 * time.Second
	h := open(t, cfg)
	ctx := context.Background()
	var maxOpen, maxInUse atomic.Int64
	note := func(a *atomic.Int64, v int) {
		for {
			cur := a.Load()
			if int64(v) <= cur || a.CompareAndSwap(cur, int64(v)) {
				return
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				err := h.DoForTest(ctx, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
					st := h.Stats()
					note(&maxOpen, st.Open)
					note(&maxInUse, st.InUse)
					_, err := p.GenerateRandom(sh, 16)
					return err
				})
				if err == nil && i%5 == 0 {
					var w []byte
					if w, err = h.Wrap(ctx, []byte{byte(g), byte(i)}, nil); err == nil {
						_, err = h.Unwrap(ctx, w, nil)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := h.Stats()
	if maxOpen.Load() > 3 || st.PeakOpen > 3 {
		t.Fatalf("cap 3 exceeded: max open seen %d, peak %d", maxOpen.Load(), st.PeakOpen)
	}
	if maxInUse.Load() < 2 {
		t.Fatalf("64 goroutines never used more than %d session(s) at once", maxInUse.Load())
	}
	if st.InUse != 0 || st.Waiting != 0 {
		t.Fatalf("leftovers: %+v", st)
	}
}

// hold takes sessions until n are in use and keeps them until release is called.
func hold(t *testing.T, h *hsm.HSM, n int) (release func()) {
	t.Helper()
	ch := make(chan struct{})
	var wg sync.WaitGroup
	for i := h.Stats().InUse; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.DoForTest(context.Background(), func(*pkcs11.Ctx, pkcs11.SessionHandle) error { <-ch; return nil })
		}()
	}
	waitFor(t, func() bool { return h.Stats().InUse == n }, 2*time.Second, "sessions held")
	return func() { close(ch); wg.Wait() }
}

func waitFor(t *testing.T, cond func() bool, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWaitTimeoutIsBusy(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	cfg.MaxSessions = 2
	cfg.WaitTimeout = 150 * time.Millisecond
	h := open(t, cfg)
	release := hold(t, h, 2)
	start := time.Now()
	_, err := h.Random(context.Background(), 8)
	el := time.Since(start)
	release()
	if !errors.Is(err, hsm.ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	var he *hsm.Error
	if !errors.As(err, &he) || he.Class != hsm.ClassBusy || he.ClientMessage() != "HSM busy" {
		t.Fatalf("busy error: %#v", err)
	}
	if el < 140*time.Millisecond || el > time.Second {
		t.Fatalf("gave up after %v, want about 150ms", el)
	}
	if st := h.Stats(); st.Waiting != 0 || st.Open > 2 {
		t.Fatalf("after timeout: %+v", st)
	}
	if _, err := h.Random(context.Background(), 8); err != nil {
		t.Fatal("pool unusable after a timeout:", err)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	cfg.MaxSessions = 2
	cfg.WaitTimeout = 10 * time.Second
	h := open(t, cfg)
	release := hold(t, h, 2)
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := h.Random(ctx, 8); done <- err }()
	waitFor(t, func() bool { return h.Stats().Waiting == 1 }, 2*time.Second, "a waiter")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || errors.Is(err, hsm.ErrBusy) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancellation did not end the wait")
	}
	if st := h.Stats(); st.Waiting != 0 {
		t.Fatalf("waiter left behind: %+v", st)
	}
}

func TestWaitersServedInOrder(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	cfg.MaxSessions = 2
	cfg.WaitTimeout = 10 * time.Second
	h := open(t, cfg)
	// Hold both sessions, then free only one: the waiters then take turns
	// on it, so the order they run in is the order they were served in.
	releaseA := hold(t, h, 1)
	defer releaseA()
	release := hold(t, h, 2)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.DoForTest(context.Background(), func(*pkcs11.Ctx, pkcs11.SessionHandle) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				time.Sleep(time.Millisecond)
				return nil
			})
		}()
		waitFor(t, func() bool { return h.Stats().Waiting == i+1 }, 2*time.Second, "waiter to queue")
	}
	release()
	wg.Wait()
	for i, v := range order {
		if i != v {
			t.Fatalf("waiters served out of order: %v", order)
		}
	}
}

func TestIdleReaping(t *testing.T) {
	for _, minIdle := range []int{0, 1} {
		cfg := hsmtest.SoftHSM(t)
		cfg.MaxSessions = 4
		cfg.MinIdle = minIdle
		cfg.IdleTimeout = 200 * time.Millisecond
		h := open(t, cfg)
		release := hold(t, h, 4)
		release()
		if st := h.Stats(); st.Open != 4 || st.Idle != 4 {
			t.Fatalf("after burst: %+v", st)
		}
		time.Sleep(cfg.IdleTimeout / 2)
		if o := h.Stats().Open; o != 4 {
			t.Fatalf("reaped too early: open %d", o)
		}
		want := 1 + minIdle
		waitFor(t, func() bool { return h.Stats().Open == want }, 2*cfg.IdleTimeout, "idle sessions reaped")
		time.Sleep(cfg.IdleTimeout)
		if o := h.Stats().Open; o != want {
			t.Fatalf("min_idle %d: open %d, want %d", minIdle, o, want)
		}
		if _, err := h.Random(context.Background(), 8); err != nil {
			t.Fatal("login lost after reaping:", err)
		}
	}
}

func TestBrokenSessionDiscarded(t *testing.T) {
	h := open(t, hsmtest.SoftHSM(t))
	ctx := context.Background()
	w, err := h.Wrap(ctx, []byte("value"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Close the only (login) session behind the pool's back: the token is
	// logged out too, since no session is left.
	handles := h.IdleHandlesForTest()
	if len(handles) != 1 {
		t.Fatalf("idle handles %v", handles)
	}
	h.BehindTheBackForTest(func(p *pkcs11.Ctx) {
		if err := p.CloseSession(handles[0]); err != nil {
			t.Fatal(err)
		}
	})
	got, err := h.Unwrap(ctx, w, nil)
	if err != nil || string(got) != "value" {
		t.Fatalf("op after a broken session: %q %v", got, err)
	}
	st := h.Stats()
	if st.ErrorsByCode["CKR_SESSION_HANDLE_INVALID"] != 1 || st.Open != 1 {
		t.Fatalf("after recovery from a broken session: %+v", st)
	}
	for _, hd := range h.IdleHandlesForTest() {
		if hd == handles[0] {
			t.Fatal("broken session returned to the pool")
		}
	}

	// Several broken idle sessions: the retry opens a fresh one.
	release := hold(t, h, 3)
	release()
	handles = h.IdleHandlesForTest()
	h.BehindTheBackForTest(func(p *pkcs11.Ctx) {
		for _, hd := range handles[1:] { // keep one so the login survives
			_ = p.CloseSession(hd)
		}
	})
	if _, err := h.MAC(ctx, []byte("x")); err != nil {
		t.Fatal("op after several broken sessions:", err)
	}
}

func TestCapacityErrorLowersCapThenRaises(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	cfg.MaxSessions = 4
	h := open(t, cfg)
	h.SetRaiseForTest(4, 0)
	release := hold(t, h, 4)
	release()
	var failed atomic.Bool
	err := h.DoForTest(context.Background(), func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		if failed.CompareAndSwap(false, true) {
			return pkcs11.Error(pkcs11.CKR_DEVICE_MEMORY)
		}
		return nil
	})
	if err != nil {
		t.Fatal("capacity error was not retried:", err)
	}
	st := h.Stats()
	if st.EffectiveCap != 3 || st.Open != 3 || st.CapLowered != 1 || !st.Ready {
		t.Fatalf("after CKR_DEVICE_MEMORY: %+v", st)
	}
	for i := 0; i < 8; i++ {
		if _, err := h.Random(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if st := h.Stats(); st.EffectiveCap != 4 || st.CapRaised != 1 {
		t.Fatalf("cap not raised again: %+v", st)
	}
}

func TestDeviceLostRecovers(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	h := open(t, cfg)
	other := open(t, hsmtest.SoftHSM(t)) // a second token on the same module
	ctx := context.Background()
	w, err := h.Wrap(ctx, []byte("survives"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = h.DoForTest(ctx, func(*pkcs11.Ctx, pkcs11.SessionHandle) error {
		return pkcs11.Error(pkcs11.CKR_DEVICE_ERROR)
	})
	if !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("device error: %v", err)
	}
	waitFor(t, h.Ready, 5*time.Second, "recovery")
	got, err := h.Unwrap(ctx, w, nil)
	if err != nil || string(got) != "survives" {
		t.Fatalf("after recovery: %q %v", got, err)
	}
	if st := h.Stats(); st.Reinits != 1 || st.Open != 1 {
		t.Fatalf("after recovery: %+v", st)
	}
	// The other HSM's sessions died with the re-initialisation; it notices
	// by generation and carries on without a device-lost cycle of its own.
	if _, err := other.MAC(ctx, []byte("x")); err != nil {
		t.Fatal("other HSM after re-initialisation:", err)
	}
	if st := other.Stats(); st.Reinits != 0 || !st.Ready {
		t.Fatalf("other HSM: %+v", st)
	}

	// Finalize behind everyone's back: the module answers
	// CKR_CRYPTOKI_NOT_INITIALIZED and the HSM re-initialises it.
	h.BehindTheBackForTest(func(p *pkcs11.Ctx) { _ = p.Finalize() })
	if _, err := h.Random(ctx, 8); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("after C_Finalize: %v", err)
	}
	waitFor(t, h.Ready, 5*time.Second, "second recovery")
	if err := h.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Check(ctx); err != nil {
		t.Fatal("other HSM:", err)
	}
}

func TestFailFastWhileNotReady(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	h := open(t, cfg)
	ctx := context.Background()
	release := make(chan struct{})
	held := make(chan struct{})
	go func() {
		_ = h.DoForTest(ctx, func(*pkcs11.Ctx, pkcs11.SessionHandle) error {
			close(held)
			<-release // recovery must wait for this session to come back
			return nil
		})
	}()
	<-held
	if err := h.DoForTest(ctx, func(*pkcs11.Ctx, pkcs11.SessionHandle) error {
		return pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT)
	}); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := h.Random(ctx, 8)
	if !errors.Is(err, hsm.ErrUnavailable) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("not ready: %v after %v, want a fast ErrUnavailable", err, time.Since(start))
	}
	time.Sleep(300 * time.Millisecond)
	if h.Ready() || h.Stats().Reinits != 0 {
		t.Fatal("recovered while a session was still in use")
	}
	close(release)
	waitFor(t, h.Ready, 5*time.Second, "recovery")
}

func TestAllSessionsInvalidatedNoCallerErrors(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	cfg.MaxSessions = 4
	cfg.WaitTimeout = 10 * time.Second
	h := open(t, cfg)
	hold(t, h, 4)()
	handles := h.IdleHandlesForTest()
	if len(handles) != 4 {
		t.Fatalf("idle %v", handles)
	}
	// Like an HSM fail-over: every session dies (and the login with them).
	h.BehindTheBackForTest(func(p *pkcs11.Ctx) {
		for _, hd := range handles {
			if err := p.CloseSession(hd); err != nil {
				t.Fatal(err)
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if _, err := h.MAC(context.Background(), []byte("x")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error("caller saw:", err)
	}
	st := h.Stats()
	if n := st.ErrorsByCode["CKR_SESSION_HANDLE_INVALID"]; n < 1 || n > 4 {
		t.Fatalf("%d CKR_SESSION_HANDLE_INVALID for 4 dead sessions", n)
	}
	if st.Open > 4 || st.InUse != 0 {
		t.Fatalf("after: %+v", st)
	}
	for _, hd := range h.IdleHandlesForTest() {
		for _, dead := range handles {
			if hd == dead {
				// SoftHSM may reuse a handle number for a new session; only
				// a failing one would be wrong.
				if err := h.DoForTest(context.Background(), func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
					_, err := p.GetSessionInfo(sh)
					return err
				}); err != nil {
					t.Fatal("dead session still pooled:", err)
				}
			}
		}
	}
}

func TestCloseWhileBusy(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	cfg.MaxSessions = 2
	h, err := hsm.Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok, unavailable atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := h.MAC(context.Background(), []byte("x"))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, hsm.ErrUnavailable):
					unavailable.Add(1)
					return
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	waitFor(t, func() bool { return ok.Load() > 50 }, 5*time.Second, "some work")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if unavailable.Load() != 8 {
		t.Fatalf("%d of 8 callers saw ErrUnavailable after Close", unavailable.Load())
	}
	if st := h.Stats(); st.Open != 0 || st.InUse != 0 {
		t.Fatalf("after Close: %+v", st)
	}
}
