package hsmfaults_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmipd/kmipd/testkit"
)

// The token disappears for 5 s under load. Owners whose pKEK is cached keep
// being served throughout (their Create, Get, Register and Destroy make no
// HSM call); /readyz goes false while the HSM is gone; and within 2 s of the
// token's return the same kmipd process (no restart) does HSM work again: a
// new owner's Create, which needs Random, Wrap and MAC in the HSM, succeeds.
func TestTokenRemoved(t *testing.T) {
	const (
		capN     = 4
		workers  = 24
		outage   = 5 * time.Second
		recovery = 2 * time.Second
		probeGap = 50 * time.Millisecond
	)
	c := startCapped(t, capN, testkit.DevOptions{MaxSessions: capN})
	d := c.dev
	pid := d.PID()
	cached := identities(t, d, "cached", 8)
	for _, cl := range cached { // creates and caches each owner's pKEK
		if _, err := cl.Create(); err != nil {
			t.Fatalf("warming %s: %v", cl.Name, err)
		}
	}
	probes := freshPool(t, d, 40)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tl := new(tally)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tl.run(ctx, workers, owners(cached, nil, 0))
	}()

	// The prober is HSM work: a new owner's Create every probeGap. Its
	// failures while the token is away are expected; what it measures is
	// when HSM work succeeds again. A failed probe's owner has no pKEK yet,
	// so it is retried until it succeeds.
	var lastOK atomic.Int64 // unix nanos of the last successful probe
	var probeFails atomic.Int64
	probeCtx, stopProbes := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		cur := <-probes
		for probeCtx.Err() == nil {
			if _, err := cur.Create(); err == nil {
				lastOK.Store(time.Now().UnixNano())
				select {
				case cur = <-probes:
				default: // out of fresh owners: keep probing with a known one
				}
			} else {
				probeFails.Add(1)
			}
			time.Sleep(probeGap)
		}
	}()
	defer func() { stopProbes(); pwg.Wait() }()

	time.Sleep(time.Second)
	if lastOK.Load() == 0 {
		t.Fatalf("no HSM work succeeded before the outage\n%s", d.LogTail(30))
	}
	before := tl.requests.Load()
	gone := time.Now()
	c.ctl.SetTokenPresent(false)
	var notReadyAfter time.Duration = -1
	for time.Since(gone) < outage {
		if notReadyAfter < 0 && !d.Ready() {
			notReadyAfter = time.Since(gone)
		}
		time.Sleep(probeGap)
	}
	during := tl.requests.Load() - before
	duringFails := tl.failures.Load()
	back := time.Now()
	c.ctl.SetTokenPresent(true)

	// Recovered when a probe that started after the return has succeeded.
	var recovered, readyAgain time.Duration = -1, -1
	for time.Since(back) < 3*recovery && (recovered < 0 || readyAgain < 0) {
		if recovered < 0 && lastOK.Load() > back.UnixNano() {
			recovered = time.Since(back)
		}
		if readyAgain < 0 && d.Ready() {
			readyAgain = time.Since(back)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a little load after the return too
	cancel()
	wg.Wait()
	st := c.ctl.Stats()
	t.Logf("cached owners, %d clients: %s (%d during the %v outage, %d failed then)",
		workers, tl, during, outage, duringFails)
	t.Logf("readyz false %v after removal; token back: HSM work again after %v, ready after %v; %d failed probes; %v reinitialisations; pid %d → %d",
		notReadyAfter, recovered, readyAgain, probeFails.Load(), d.Metric("kmipd_hsm_reinitializations_total"), pid, d.PID())

	tl.requireNoFailures(t, d)
	if during == 0 {
		t.Errorf("no request of a cached owner completed during the outage")
	}
	if notReadyAfter < 0 {
		t.Errorf("/readyz stayed ready while the token was away")
	}
	switch {
	case recovered < 0:
		t.Errorf("no HSM work succeeded within %v of the token's return\n%s", 3*recovery, d.LogTail(30))
	case recovered > recovery:
		t.Errorf("HSM work resumed %v after the token's return, want ≤ %v\n%s", recovered, recovery, d.LogTail(30))
	}
	if readyAgain < 0 || readyAgain > recovery {
		t.Errorf("/readyz true again %v after the token's return, want ≤ %v", readyAgain, recovery)
	}
	if d.PID() != pid || !d.Alive() {
		t.Errorf("kmipd was restarted or died: pid %d → %d", pid, d.PID())
	}
	if st.Peak > capN {
		t.Errorf("the HSM saw %d sessions at once, cap %d", st.Peak, capN)
	}
}
