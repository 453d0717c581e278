package hsmfaults_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmipd/kmipd/testkit"
)

// Sessions killed mid-load: the HSM voids every open session, kmipd's login
// session included, several times while 100 clients keep it busy. A broken
// session is discarded and the operation retried on a fresh, re-logged-in
// one, so at most the requests in flight at those instants may fail, and of
// those only the ones holding one of the capN sessions then.
func TestSessionsKilledMidLoad(t *testing.T) {
	const capN, workers, kills = 4, 100, 6
	c := startCapped(t, capN, testkit.DevOptions{MaxSessions: capN, KEKCacheSize: smallKEKs})
	d := c.dev
	set := identities(t, d, "owner", nOwners)
	fresh := freshPool(t, d, nFresh)
	inv0 := c.ctl.Stats().Invalidated

	ctx, cancel := context.WithTimeout(context.Background(), loadFor)
	defer cancel()
	tl := new(tally)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tl.run(ctx, workers, owners(set, fresh, 7))
	}()

	// Spread the kills over the middle of the load, and note how many
	// requests were in flight at each: those are the only ones that may fail.
	var inflight []int64
	var when []time.Duration
	time.Sleep(loadFor / (kills + 2))
	start := time.Now()
	for i := 0; i < kills; i++ {
		c.ctl.InvalidateAll()
		when = append(when, time.Since(start).Round(time.Millisecond))
		inflight = append(inflight, tl.inflight.Load())
		time.Sleep(loadFor / (kills + 2))
	}
	wg.Wait()
	st := c.ctl.Stats()
	var bound int64
	for _, n := range inflight {
		bound += min(n, capN)
	}
	t.Logf("%d clients: %s", workers, tl)
	t.Logf("HSM: %d InvalidateAll at %v voided %d sessions; requests in flight then: %v (those on a session, at most %d each: %d); peak %d (cap %d), %d refusals",
		kills, when, st.Invalidated-inv0, inflight, capN, bound, st.Peak, capN, st.Refusals)

	// A kill right after another may find nothing alive to void (kmipd
	// reopens sessions on demand), but the kills as a whole must have hit
	// sessions kmipd was holding, or the scenario tested nothing.
	if st.Invalidated-inv0 < 2 {
		t.Errorf("only %d sessions voided by %d kills: kmipd held no session", st.Invalidated-inv0, kills)
	}
	if f := tl.failures.Load(); f > bound {
		t.Errorf("%d requests failed, more than the %d in flight on a session at the kills:%s\nkmipd log tail:\n%s",
			f, bound, tl.report(), d.LogTail(30))
	} else if f > 0 {
		t.Logf("%d requests failed (bound %d):%s\nkmipd says:\n%s", f, bound, tl.report(), grepLog(d, "operation failed", 10))
	}
	if st.Peak > capN {
		t.Errorf("the HSM saw %d sessions at once, cap %d", st.Peak, capN)
	}
	// kmipd is whole afterwards: a new owner (pKEK creation: three HSM
	// operations on re-logged-in sessions) works.
	if _, err := d.NewIdentity(t, "after").Create(); err != nil {
		t.Errorf("Create for a new owner after the kills: %v\n%s", err, d.LogTail(30))
	}
}

// grepLog returns up to n lines of the server's log containing substr.
func grepLog(d *testkit.Dev, substr string, n int) string {
	var out []string
	for _, l := range strings.Split(d.Log(), "\n") {
		if strings.Contains(l, substr) && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
