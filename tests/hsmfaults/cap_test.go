package hsmfaults_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/kmipd/kmipd/testkit"
)

// Load parameters shared by the scenarios: a few seconds each keeps the
// package within a few minutes on two cores, race detector included.
const (
	loadFor   = 4 * time.Second
	nOwners   = 50 // distinct owners in the steady mix
	nFresh    = 60 // brand-new owners handed out during the load
	smallKEKs = 8  // kek.cache_size: far fewer than the owners, so pKEKs keep being unwrapped
)

// The cap holds: an HSM that refuses a 4th session with CKR_DEVICE_MEMORY,
// kmipd with -max-sessions 3, and 200 concurrent clients of many owners
// whose pKEKs keep being created and (through a cache much smaller than the
// owner count) unwrapped, so nearly every request needs the HSM.
func TestCapHolds(t *testing.T) {
	const capN, workers = 3, 200
	c := startCapped(t, capN, testkit.DevOptions{MaxSessions: capN, KEKCacheSize: smallKEKs})
	d := c.dev
	set := identities(t, d, "owner", nOwners)
	fresh := freshPool(t, d, nFresh)
	c.ctl.ResetPeak() // from here on, only the load counts
	calls0 := c.ctl.Stats().Calls

	ctx, cancel := context.WithTimeout(context.Background(), loadFor)
	defer cancel()
	tl := runLoad(ctx, workers, owners(set, fresh, 7))
	st := c.ctl.Stats()
	t.Logf("%d clients of %d+%d owners: %s", workers, nOwners, nFresh-len(fresh), tl)
	t.Logf("HSM: peak %d sessions (cap %d), %d PKCS#11 calls, %d refusals; %v session acquisitions in kmipd",
		st.Peak, capN, st.Calls-calls0, st.Refusals, d.Metric("kmipd_hsm_wait_seconds"))

	tl.requireNoFailures(t, d)
	if st.Peak > capN {
		t.Errorf("the HSM saw %d sessions at once, cap %d", st.Peak, capN)
	}
	// The module refuses a 4th session, so Peak alone cannot exceed 3 even
	// if kmipd overreached: the proof that kmipd kept to its own cap is that
	// it never asked for a session beyond it.
	if st.Refusals != 0 {
		t.Errorf("kmipd asked the HSM for a session beyond its cap %d times", st.Refusals)
	}
	// 200 clients over a cache that keeps missing must fill the cap, or
	// the scenario tests nothing (the race detector makes kmipd slow, so
	// the call count is only checked loosely).
	if st.Peak != capN || st.Calls-calls0 < 100 {
		t.Errorf("the load hardly used the HSM (peak %d, %d calls): the scenario tests nothing", st.Peak, st.Calls-calls0)
	}
	if len(fresh) == nFresh {
		t.Errorf("no fresh owner was used")
	}
}

// A shared HSM: kmipd is configured for 6 sessions and the token reports a
// limit of 6, but another application already holds 4 of them, so only 2
// are kmipd's. kmipd must find that out from CKR_DEVICE_MEMORY, lower its
// effective cap to 2, say so in its log, and fail no request.
func TestSharedHSM(t *testing.T) {
	const total, theirs, workers = 6, 4, 100
	c := startCapped(t, total, testkit.DevOptions{MaxSessions: total, KEKCacheSize: smallKEKs})
	d := c.dev
	other := startTenant(t, c, d.Dir, theirs)
	set := identities(t, d, "owner", nOwners)
	fresh := freshPool(t, d, nFresh)
	c.ctl.ResetPeak()

	caps := sample(50*time.Millisecond, func() float64 {
		v, err := d.TryMetric("kmipd_hsm_sessions_effective_cap")
		if err != nil {
			return -1
		}
		return v
	})
	ctx, cancel := context.WithTimeout(context.Background(), loadFor)
	defer cancel()
	tl := runLoad(ctx, workers, owners(set, fresh, 7))
	lo, hi, n := caps.stop()
	st := c.ctl.Stats()
	lowered := regexp.MustCompile(`session cap lowered.*to=2\b`).FindString(d.Log())
	t.Logf("%d clients: %s", workers, tl)
	t.Logf("HSM: cap %d, other tenant (pid %d) holds %d; peak %d, %d refusals; kmipd effective cap %v..%v over %d samples, now %v",
		total, other, st.Procs[other], st.Peak, st.Refusals, lo, hi, n, d.Metric("kmipd_hsm_sessions_effective_cap"))
	t.Logf("log: %s", lowered)

	tl.requireNoFailures(t, d)
	if st.Procs[other] != theirs {
		t.Errorf("the other tenant holds %d sessions, want %d: %+v", st.Procs[other], theirs, st.Procs)
	}
	if st.Peak > total {
		t.Errorf("the HSM saw %d sessions at once, cap %d", st.Peak, total)
	}
	if lo != total-theirs {
		t.Errorf("kmipd's effective cap went no lower than %v, want %d", lo, total-theirs)
	}
	if lowered == "" {
		t.Errorf("kmipd's log does not say the cap was lowered to 2:\n%s", d.LogTail(30))
	}
	if st.Refusals == 0 {
		t.Errorf("kmipd never ran into the shared cap: the scenario tests nothing")
	}
}
