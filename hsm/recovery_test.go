package hsm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/testmodule"
)

// However long the token was away, HSM work resumes soon after it returns
// (issue 3: within 2 s): recovery attempts must not back off for longer than
// that while the device is missing. With a 5 s back-off cap, attempts after a
// 3.5 s outage fell at 3.1 s and 6.3 s, 2.8 s after the token's return.
func TestCappedTokenReturnRecoversQuickly(t *testing.T) {
	const outage, within = 3500 * time.Millisecond, 2 * time.Second
	cfg, ctl := capped(t, 0, testmodule.RefuseDeviceMemory)
	h := open(t, cfg)
	ctx := context.Background()
	ctl.SetTokenPresent(false)
	if _, err := h.Random(ctx, 8); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("token removed: %v", err)
	}
	time.Sleep(outage)
	ctl.SetTokenPresent(true)
	back := time.Now()
	waitFor(t, h.Ready, 10*time.Second, "recovery after reinsertion")
	took := time.Since(back)
	t.Logf("ready %v after the token's return (outage %v)", took, outage)
	if took > within {
		t.Fatalf("recovered %v after the token's return, want ≤ %v", took, within)
	}
	if _, err := h.Random(ctx, 8); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// The one retry after a broken session must run on a session known to be
// alive. Scenario 3 of tests/hsmfaults lost requests this way: the retry
// queued behind the other callers (the pool was full), the HSM voided every
// session again meanwhile, and the retry was handed a session another caller
// had just put back: idle, dead, and not yet suspected by anyone, so the
// retry failed on it and the request with it.
func TestCappedRetryAfterBrokenGetsLiveSession(t *testing.T) {
	cfg, ctl := capped(t, 0, testmodule.RefuseDeviceMemory)
	cfg.MaxSessions = 2
	cfg.WaitTimeout = 10 * time.Second
	h := open(t, cfg)
	ctx := context.Background()
	waiting := func(n int) func() bool { return func() bool { return h.Stats().Waiting == n } }

	// A holds the login session until told to go; on its way out the HSM
	// voids every session (the second mass invalidation), after A's last
	// call, so A succeeds and puts back a dead session nobody suspects.
	aIn, aGo := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		aDone <- h.DoForTest(ctx, func(*pkcs11.Ctx, pkcs11.SessionHandle) error {
			close(aIn)
			<-aGo
			ctl.InvalidateAll()
			return nil
		})
	}()
	<-aIn

	// C takes the slot B's broken session frees and keeps it, so B's retry
	// has to queue for the next session put back: A's.
	cIn, cGo := make(chan struct{}), make(chan struct{})
	cDone := make(chan error, 1)
	startC := func() {
		go func() {
			cDone <- h.DoForTest(ctx, func(*pkcs11.Ctx, pkcs11.SessionHandle) error {
				select {
				case <-cIn:
				default:
					close(cIn)
				}
				<-cGo
				return nil
			})
		}()
	}

	// B's first attempt breaks (the first invalidation, seen by B alone)
	// once C queues behind it; its retry does real work on its session.
	var tries int
	bDone := make(chan error, 1)
	go func() {
		bDone <- h.DoForTest(ctx, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
			if tries++; tries == 1 {
				startC()
				if !eventually(waiting(1), 5*time.Second) {
					return errors.New("C never queued")
				}
				return pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
			}
			_, err := p.GenerateRandom(sh, 8)
			return err
		})
	}()
	<-cIn
	waitFor(t, waiting(1), 5*time.Second, "B's retry queued")
	close(aGo)
	if err := <-aDone; err != nil {
		t.Fatalf("A: %v", err)
	}
	err := <-bDone
	close(cGo)
	if cerr := <-cDone; cerr != nil {
		t.Fatalf("C: %v", cerr)
	}
	if err != nil {
		t.Fatalf("B's retry after a broken session failed: %v (tries %d; %+v)", err, tries, h.Stats())
	}
	if tries != 2 {
		t.Fatalf("B's fn ran %d times, want 2 (broken once, then once on a live session)", tries)
	}
	if st := h.Stats(); st.Open > 2 || st.PeakOpen > 2 {
		t.Fatalf("cap exceeded: %+v", st)
	}
}

// eventually polls cond until it holds or d passes; unlike waitFor it may be
// called off the test's goroutine.
func eventually(cond func() bool, d time.Duration) bool {
	for end := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}
