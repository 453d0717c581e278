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
	"github.com/kmipd/kmipd/hsm/testmodule"
)

// The pool under a session budget, against the capped module with no cap of
// its own: the module's open count and peak are exactly what the pool held.
// The budget is driven by hand here; hsm/sessionbudget tests the real one.

type handBudget struct {
	mu         sync.Mutex
	l          hsm.Lessee
	first      hsm.Share
	detached   bool
	detachOpen int
}

var _ hsm.Budget = (*handBudget)(nil)

func (b *handBudget) Attach(_ context.Context, l hsm.Lessee) error {
	b.mu.Lock()
	b.l = l
	b.mu.Unlock()
	l.SetShare(b.first)
	return nil
}

func (b *handBudget) Detach(_ context.Context, l hsm.Lessee) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.detached, b.detachOpen = true, l.Demand().Open
	return nil
}

func (b *handBudget) set(n int, valid time.Duration) {
	b.mu.Lock()
	l := b.l
	b.mu.Unlock()
	l.SetShare(hsm.Share{Sessions: n, Until: time.Now().Add(valid)})
}

func openBudgeted(t *testing.T, cfg hsm.Config, b hsm.Budget) *hsm.HSM {
	t.Helper()
	h, err := hsm.Open(context.Background(), cfg, testLogger(t), hsm.WithBudget(b))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// load runs n callers doing HSM work until stop is closed, counting
// successes and collecting errors other than the ones allowed.
func load(h *hsm.HSM, n int, stop <-chan struct{}, allowed func(error) bool) (wait func() (ok int64, errs []error)) {
	var wg sync.WaitGroup
	var okN atomic.Int64
	var mu sync.Mutex
	var errs []error
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := h.DoForTest(context.Background(), func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
					time.Sleep(time.Millisecond) // overlap
					_, err := p.GenerateRandom(sh, 8)
					return err
				})
				if err == nil && i%4 == 0 {
					_, err = h.MAC(context.Background(), []byte("x")) // needs the login
				}
				switch {
				case err == nil:
					okN.Add(1)
				case allowed != nil && allowed(err):
					time.Sleep(time.Millisecond)
				default:
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	return func() (int64, []error) {
		wg.Wait()
		return okN.Load(), errs
	}
}

func TestBudgetShareBoundsPool(t *testing.T) {
	cfg, ctl := capped(t, 0, testmodule.RefuseSessionCount)
	cfg.MaxSessions = 8
	cfg.WaitTimeout = 20 * time.Second
	b := &handBudget{first: hsm.Share{Sessions: 4, Until: time.Now().Add(time.Hour)}}
	h := openBudgeted(t, cfg, b)
	stop := make(chan struct{})
	wait := load(h, 16, stop, nil)
	waitFor(t, func() bool { return ctl.Peak() == 4 }, 10*time.Second, "the pool to use its share of 4")

	b.set(2, time.Hour) // shrink under load: idle ones close now, in-use ones as they return
	waitFor(t, func() bool { return ctl.Open() <= 2 }, 10*time.Second, "the pool to close down to 2")
	ctl.ResetPeak()
	time.Sleep(200 * time.Millisecond)
	if p := ctl.Peak(); p > 2 {
		t.Fatalf("module peak %d after the share went down to 2", p)
	}
	if st := h.Stats(); st.Share != 2 || st.EffectiveCap != 2 || st.PeakOpen > 4 {
		t.Fatalf("after shrinking: %+v", st)
	}
	b.set(3, time.Hour) // grow: waiters get the room
	waitFor(t, func() bool { return ctl.Open() == 3 }, 10*time.Second, "the pool to grow to 3")
	d := h.DemandForTest()
	close(stop)
	ok, errs := wait()
	if len(errs) > 0 {
		t.Fatalf("%d callers failed, first: %v", len(errs), errs[0])
	}
	if cs := ctl.Stats(); cs.Peak > 4 || cs.Refusals != 0 || ok == 0 {
		t.Fatalf("module %+v, %d ops", cs, ok)
	}
	if d.Want < 16 || d.Open != 3 || d.Max != 8 {
		t.Fatalf("demand under 16 callers: %+v", d)
	}
}

// A grant that is not renewed runs out: every session is closed (the login
// one too) before the deadline's consumers could hand it on, callers fail
// fast with ErrNoShare, and a new grant brings the pool back, logged in.
func TestBudgetShareRunsOut(t *testing.T) {
	cfg, ctl := capped(t, 0, testmodule.RefuseSessionCount)
	cfg.MaxSessions = 8
	cfg.WaitTimeout = 20 * time.Second
	b := &handBudget{first: hsm.Share{Sessions: 3, Until: time.Now().Add(time.Hour)}}
	h := openBudgeted(t, cfg, b)
	stop := make(chan struct{})
	noShare := func(err error) bool { return errors.Is(err, hsm.ErrNoShare) }
	wait := load(h, 8, stop, noShare)
	waitFor(t, func() bool { return ctl.Open() == 3 }, 10*time.Second, "the pool to use its share")

	const valid = 300 * time.Millisecond
	deadline := time.Now().Add(valid)
	b.set(3, valid)
	waitFor(t, func() bool { return ctl.Open() == 0 }, 5*time.Second, "every session to close")
	closedAt := time.Now()
	if closedAt.Before(deadline) {
		t.Fatalf("sessions closed %v before the deadline", deadline.Sub(closedAt))
	}
	t.Logf("all sessions closed %v after the deadline", closedAt.Sub(deadline))
	if late := closedAt.Sub(deadline); late > 200*time.Millisecond {
		t.Errorf("sessions closed %v after the deadline; fencing must be prompt", late)
	}
	start := time.Now()
	_, err := h.Random(context.Background(), 8)
	if !errors.Is(err, hsm.ErrNoShare) || !errors.Is(err, hsm.ErrBusy) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("without a share: %v after %v, want ErrNoShare at once", err, time.Since(start))
	}
	var he *hsm.Error
	if !errors.As(err, &he) || he.Class != hsm.ClassCapacity || he.ClientMessage() != "HSM busy" {
		t.Fatalf("no-share error %#v", err)
	}
	ctl.ResetPeak()
	time.Sleep(50 * time.Millisecond)
	if st := h.Stats(); ctl.Peak() != 0 || st.Open != 0 || !st.ShareLost || st.ShareLosses != 1 || st.Share != 0 {
		t.Fatalf("while lost: module peak %d, %+v", ctl.Peak(), st)
	}

	// Nothing of ours is open, so the token logged us out: the next
	// session must log in again before MAC can find its key.
	b.set(2, time.Hour)
	mac, err := h.MAC(context.Background(), []byte("after"))
	if err != nil || len(mac) != 32 {
		t.Fatalf("MAC after the share came back: %v", err)
	}
	close(stop)
	ok, errs := wait()
	if len(errs) > 0 {
		t.Fatalf("%d callers failed otherwise than with ErrNoShare, first: %v", len(errs), errs[0])
	}
	if cs, st := ctl.Stats(), h.Stats(); cs.Refusals != 0 || cs.Open > 2 || st.ShareLost || ok == 0 {
		t.Fatalf("after regaining: module %+v pool %+v", cs, st)
	}
	// Without a new login the first MAC on a fresh session fails on its
	// key handle (a broken-session error, retried): there must be none.
	if st := h.Stats(); len(st.ErrorsByCode) != 0 {
		t.Fatalf("PKCS#11 errors after regaining the share: %v", st.ErrorsByCode)
	}
}

// Open opens nothing before the budget grants room; Close reports what is
// left open to Detach.
func TestBudgetOpenWaitsForShare(t *testing.T) {
	cfg, ctl := capped(t, 0, testmodule.RefuseSessionCount)
	b := &handBudget{first: hsm.Share{Sessions: 0, Until: time.Now().Add(time.Hour)}}
	opened := make(chan *hsm.HSM, 1)
	go func() {
		h, err := hsm.Open(context.Background(), cfg, testLogger(t), hsm.WithBudget(b))
		if err != nil {
			t.Error(err)
		}
		opened <- h
	}()
	time.Sleep(200 * time.Millisecond)
	if n := ctl.Open(); n != 0 {
		t.Fatalf("%d sessions open without a share", n)
	}
	select {
	case <-opened:
		t.Fatal("Open returned without a share")
	default:
	}
	b.set(1, time.Hour)
	h := <-opened
	if h == nil {
		t.FailNow()
	}
	if st := h.Stats(); ctl.Open() != 1 || st.Open != 1 || st.Share != 1 || !st.Ready {
		t.Fatalf("after the grant: module open %d, %+v", ctl.Open(), st)
	}
	// A share of one: the login session serves everyone, one at a time.
	stop := make(chan struct{})
	wait := load(h, 4, stop, nil)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	if _, errs := wait(); len(errs) > 0 || ctl.Peak() != 1 {
		t.Fatalf("with a share of one: peak %d, errors %v", ctl.Peak(), errs)
	}
	h.Close()
	if !b.detached || b.detachOpen != 0 || ctl.Open() != 0 {
		t.Fatalf("Close: detached %v with %d open, module open %d", b.detached, b.detachOpen, ctl.Open())
	}

	// Open gives up with ctx, leaving nothing open and the budget detached.
	b2 := &handBudget{first: hsm.Share{Sessions: 0, Until: time.Now().Add(time.Hour)}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := hsm.Open(ctx, cfg, testLogger(t), hsm.WithBudget(b2)); !errors.Is(err, context.DeadlineExceeded) || !b2.detached {
		t.Fatalf("Open without a share until ctx ended: %v, detached %v", err, b2.detached)
	}
}

// Recovery from a lost device waits for room in the share before it opens
// its login session.
func TestBudgetRecoveryStaysInShare(t *testing.T) {
	cfg, ctl := capped(t, 0, testmodule.RefuseSessionCount)
	cfg.MaxSessions = 8
	b := &handBudget{first: hsm.Share{Sessions: 2, Until: time.Now().Add(time.Hour)}}
	h := openBudgeted(t, cfg, b)
	ctl.SetFailEveryK(7)
	ctx := context.Background()
	failures := 0
	for i := 0; i < 40; i++ {
		if _, err := h.Random(ctx, 8); err != nil {
			if !errors.Is(err, hsm.ErrUnavailable) {
				t.Fatalf("op %d: %v", i, err)
			}
			failures++
			waitFor(t, h.Ready, 5*time.Second, "recovery")
		}
	}
	ctl.SetFailEveryK(0)
	if st := h.Stats(); failures == 0 || st.Reinits != uint64(failures) || ctl.Peak() > 2 || st.PeakOpen > 2 {
		t.Fatalf("failures %d, module peak %d, %+v", failures, ctl.Peak(), st)
	}
}
