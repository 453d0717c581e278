package sessionbudget

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/testmodule"
	"github.com/kmipd/kmipd/testkit"
)

// Three replicas, a budget equal to the HSM's cap, 200 clients: nobody
// fails, the HSM never sees more than its cap and never refuses a session.
func TestThreeReplicasUnderLoad(t *testing.T) {
	c := newCluster(t)
	reps := []*replica{c.join("a", false), c.join("b", false), c.join("c", false)}
	c.ctl.ResetPeak()
	l := startLoad(reps, 100, 100, nil)
	// Long enough for shares to settle and be renewed several times.
	time.Sleep(4 * testLease)
	var shares []int
	sum := 0
	for _, r := range reps {
		s := r.b.Stats()
		shares = append(shares, s.Share)
		sum += s.Held
		if s.Share < 1 || s.Replicas != 3 || s.Budget != budgetN || s.Demand.Want < 2 {
			t.Errorf("%s under load: %+v", r.name, s)
		}
	}
	errs := l.finish()
	for name, e := range errs {
		t.Errorf("%s: %d failed operations, first: %v", name, len(e), e[0])
	}
	cs := c.ctl.Stats()
	var ops int64
	for _, r := range reps {
		ops += l.okCount(r.name)
		if l.okCount(r.name) == 0 {
			t.Errorf("%s served nothing", r.name)
		}
		if st := r.h.Stats(); st.ShareLosses != 0 || st.CapLowered != 0 {
			t.Errorf("%s: %+v", r.name, st)
		}
	}
	t.Logf("%d operations; shares %v (held %d); HSM peak %d, refusals %d", ops, shares, sum, cs.Peak, cs.Refusals)
	if cs.Peak > budgetN || cs.Refusals != 0 || sum > budgetN {
		t.Fatalf("HSM peak %d, %d refused opens, leases hold %d; budget %d", cs.Peak, cs.Refusals, sum, budgetN)
	}
	got := testkit.Gather(t, reps[0].b.Collector())
	for _, name := range []string{"kmipd_hsm_budget_share", "kmipd_hsm_budget_sessions_waiting", "kmipd_hsm_budget_lease_renewals_total",
		"kmipd_hsm_budget_lease_losses_total", "kmipd_hsm_budget_target", "kmipd_hsm_budget_held"} {
		if _, ok := got[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if got["kmipd_hsm_budget_lease_renewals_total"] < 5 || got["kmipd_hsm_budget_lease_losses_total"] != 0 ||
		got["kmipd_hsm_budget_sessions"] != budgetN {
		t.Errorf("metrics %v", got)
	}
}

// Shares move to the busy replica; an idle one keeps one session.
func TestSharesFollowLoad(t *testing.T) {
	c := newCluster(t)
	a, b, cc := c.join("a", false), c.join("b", false), c.join("c", false)
	l := startLoad([]*replica{a}, 30, 0, nil)
	start := time.Now()
	waitUntil(t, 10*testLease, "a to get the idle replicas' sessions", func() bool {
		return a.b.Stats().Share == budgetN-2 && b.b.Stats().Share == 1 && cc.b.Stats().Share == 1
	})
	t.Logf("busy a reached %d sessions in %v", budgetN-2, time.Since(start).Round(time.Millisecond))
	if errs := l.finish(); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	l = startLoad([]*replica{b}, 30, 0, nil)
	start = time.Now()
	waitUntil(t, 10*testLease, "the share to move from a to b", func() bool {
		return b.b.Stats().Share == budgetN-2 && a.b.Stats().Share == 1 && a.h.Stats().Open <= 1
	})
	t.Logf("the share moved to b in %v", time.Since(start).Round(time.Millisecond))
	if errs := l.finish(); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if cs := c.ctl.Stats(); cs.Peak > budgetN || cs.Refusals != 0 {
		t.Fatalf("HSM %+v", cs)
	}
}

// A replica cut off from PostgreSQL (a partition: nothing passes, nothing
// is reset) closes its sessions by its own deadline; the others take its
// share only later, and serve on; once healed it gets a share back.
func TestCutOffFromPostgres(t *testing.T) {
	fenceScenario(t, func(r *replica) { r.px.freeze() }, func(r *replica) { r.px.heal() })
}

// A replica whose renewer hangs (while its pool works on) gives up its
// sessions in time as well.
func TestHungRenewer(t *testing.T) {
	fenceScenario(t, func(r *replica) { r.b.paused.Store(true) }, func(r *replica) { r.b.paused.Store(false) })
}

func fenceScenario(t *testing.T, cut, restore func(r *replica)) {
	c := newCluster(t)
	a, b, cc := c.join("a", false), c.join("b", false), c.join("c", true)
	c.ctl.ResetPeak()
	l := startLoad([]*replica{a, b, cc}, 90, 0, noShareOn("c"))
	waitUntil(t, 10*testLease, "every replica to use two sessions", func() bool {
		return a.b.Stats().Share == 2 && b.b.Stats().Share == 2 && cc.b.Stats().Share == 2 && cc.h.Stats().Open == 2
	})
	held := cc.b.Stats().Held
	cut(cc)
	t0 := time.Now()
	var closed, takeover time.Time
	waitUntil(t, 5*testLease, "c to close its sessions and the others to take its share", func() bool {
		now := time.Now()
		if closed.IsZero() && cc.h.Stats().Open == 0 {
			closed = now
		}
		if takeover.IsZero() && a.b.Stats().Held+b.b.Stats().Held > budgetN-held {
			takeover = now
		}
		return !closed.IsZero() && !takeover.IsZero()
	})
	deadline := cc.b.Stats().Until // its last renewal's start + lease - margin
	okC := l.okCount("c")
	t.Logf("cut at 0: c's share ran out at +%v and its sessions were closed at +%v; a and b took its share at +%v "+
		"(lease %v, margin %v, renew every %v)", deadline.Sub(t0).Round(time.Millisecond),
		closed.Sub(t0).Round(time.Millisecond), takeover.Sub(t0).Round(time.Millisecond), testLease, testMarg, testRenew)
	if !closed.Before(takeover) {
		t.Fatalf("c still had sessions open when the others took its share")
	}
	// Its lease ends (database clock) a margin after its own deadline at
	// the earliest: every session must be closed by then.
	if !closed.Before(deadline.Add(testMarg)) {
		t.Fatalf("c closed its sessions %v after its deadline, later than its lease's end", closed.Sub(deadline))
	}
	// The others wait for the lease's expiry plus the margin: at least two
	// margins after c's own deadline (same machine, same clock rate).
	if gap := takeover.Sub(deadline); gap < 2*testMarg-50*time.Millisecond {
		t.Fatalf("the others took c's share %v after c's deadline; want at least %v", gap, 2*testMarg)
	}
	if _, err := cc.h.Random(context.Background(), 8); !errors.Is(err, hsm.ErrNoShare) {
		t.Fatalf("c without a share: %v", err)
	}
	// a and b go on, with c's sessions.
	okA, okB := l.okCount("a"), l.okCount("b")
	time.Sleep(testRenew)
	if l.okCount("a") == okA || l.okCount("b") == okB || l.okCount("c") != okC {
		t.Fatalf("after the cut: a %d→%d, b %d→%d, c %d→%d ops", okA, l.okCount("a"), okB, l.okCount("b"), okC, l.okCount("c"))
	}

	restore(cc)
	tr := time.Now()
	back := waitUntil(t, 10*testLease, "c to get a share back and serve", func() bool {
		return cc.b.Stats().Share >= 1 && l.okCount("c") > okC+10
	})
	t.Logf("restored: c serving again %v later", back.Sub(tr).Round(time.Millisecond))
	errs := l.finish()
	for name, e := range errs {
		t.Errorf("%s: %d failed operations, first: %v", name, len(e), e[0])
	}
	cs := c.ctl.Stats()
	if cs.Peak > budgetN || cs.Refusals != 0 {
		t.Fatalf("HSM peak %d, %d refused opens", cs.Peak, cs.Refusals)
	}
	if st := cc.h.Stats(); st.ShareLosses != 1 {
		t.Fatalf("c: %+v", st)
	}
	if got := testkit.Gather(t, cc.b.Collector()); got["kmipd_hsm_budget_lease_losses_total"] != 1 {
		t.Fatalf("c's lease losses %v", got["kmipd_hsm_budget_lease_losses_total"])
	}
}

// A replica SIGKILLed under load: the others take its share once its lease
// is over, never before, and the HSM never goes over its cap.
func TestKilledReplica(t *testing.T) {
	c := newCluster(t)
	a, b := c.join("a", false), c.join("b", false)
	c.ctl.ResetPeak()
	l := startLoad([]*replica{a, b}, 60, 20, nil)
	cmd, _ := testmodule.StartClient(t, "child replica", "SESSIONBUDGET_CHILD=1", "SB_URL="+c.url, "SB_REPLICA=child",
		"SB_MODULE="+c.cfg.ModulePath, "SB_LABEL="+c.cfg.TokenLabel, "SB_PIN="+c.cfg.PIN)
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	held := c.leases()["child"]
	if held < 2 {
		t.Fatalf("child holds %d sessions", held)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_ = cmd.Wait()
	takeover := waitUntil(t, 5*testLease, "a and b to take the killed replica's share", func() bool {
		return a.b.Stats().Held+b.b.Stats().Held > budgetN-held
	})
	took := takeover.Sub(t0)
	t.Logf("SIGKILL at 0 (child held %d sessions): a and b took its share at +%v (lease %v, margin %v, renew every %v; "+
		"bound lease+margin+renew = %v)", held, took.Round(time.Millisecond), testLease, testMarg, testRenew,
		testLease+testMarg+testRenew)
	if _, ok := c.leases()["child"]; ok {
		t.Fatal("the killed replica's lease is still there")
	}
	// Its last renewal was at most one interval (plus a slow transaction)
	// before the kill: nobody may take its share before expiry + margin.
	if took < testLease+testMarg-testRenew-testLease/4 {
		t.Fatalf("share taken %v after the kill: before its lease could have ended", took)
	}
	if took > testLease+testMarg+2*testRenew {
		t.Fatalf("share taken %v after the kill; want within lease + margin + renew", took)
	}
	time.Sleep(testRenew)
	errs := l.finish()
	for name, e := range errs {
		t.Errorf("%s: %d failed operations, first: %v", name, len(e), e[0])
	}
	cs := c.ctl.Stats()
	t.Logf("HSM peak %d, refusals %d, sessions of the dead process reclaimed %d", cs.Peak, cs.Refusals, cs.Reclaimed)
	if cs.Peak > budgetN || cs.Refusals != 0 || cs.Reclaimed == 0 {
		t.Fatalf("HSM peak %d, %d refused opens, %d reclaimed", cs.Peak, cs.Refusals, cs.Reclaimed)
	}
}

// A replica restarted under its name while its old lease is alive waits for
// it to run out, then gets its share back from the busy others.
func TestRestartSameName(t *testing.T) {
	c := newCluster(t)
	a, b := c.join("a", false), c.join("b", false)
	c.ctl.ResetPeak()
	l := startLoad([]*replica{a, b}, 40, 0, nil)
	env := []string{"SESSIONBUDGET_CHILD=1", "SB_URL=" + c.url, "SB_REPLICA=child",
		"SB_MODULE=" + c.cfg.ModulePath, "SB_LABEL=" + c.cfg.TokenLabel, "SB_PIN=" + c.cfg.PIN}
	cmd, _ := testmodule.StartClient(t, "child replica", env...)
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	t0 := time.Now()
	_, stop := testmodule.StartClient(t, "restarted child replica", env...) // ready: a share of two
	t.Logf("restarted replica serving with two sessions %v after the kill", time.Since(t0).Round(time.Millisecond))
	if d := time.Since(t0); d < testLease-testRenew {
		t.Fatalf("restarted replica had its share %v after the kill: the old lease was alive", d)
	}
	stop()
	errs := l.finish()
	for name, e := range errs {
		t.Errorf("%s: %d failed operations, first: %v", name, len(e), e[0])
	}
	if cs := c.ctl.Stats(); cs.Peak > budgetN || cs.Refusals != 0 {
		t.Fatalf("HSM peak %d, %d refused opens", cs.Peak, cs.Refusals)
	}
}

// A clean close hands the share back at once, not a lease later.
func TestCloseReleases(t *testing.T) {
	c := newCluster(t)
	a, b := c.join("a", false), c.join("b", false)
	// a's clients see its HSM close under them: not a budget matter.
	closedA := func(r *replica, err error) bool { return r.name == "a" && errors.Is(err, hsm.ErrUnavailable) }
	l := startLoad([]*replica{a, b}, 40, 0, closedA)
	waitUntil(t, 10*testLease, "a and b to split the budget", func() bool {
		return a.b.Stats().Share == budgetN/2 && b.b.Stats().Share == budgetN/2
	})
	a.h.Close()
	t0 := time.Now()
	if _, ok := c.leases()["a"]; ok {
		t.Fatal("a's lease survives its close")
	}
	took := waitUntil(t, 5*testLease, "b to take a's share", func() bool { return b.b.Stats().Share == budgetN }).Sub(t0)
	t.Logf("b had the whole budget %v after a closed", took.Round(time.Millisecond))
	if took > 3*testRenew {
		t.Fatalf("b took %v to get a's released share", took)
	}
	if errs := l.finish(); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if cs := c.ctl.Stats(); cs.Peak > budgetN || cs.Refusals != 0 {
		t.Fatalf("HSM %+v", cs)
	}
}

// Two live processes under one replica name would share a row: refused.
func TestReplicaNameInUse(t *testing.T) {
	c := newCluster(t)
	c.join("a", false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, Options{URL: c.url, Sessions: budgetN, Replica: "a", Lease: testLease}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Longer than a lease: a is alive and renewing, so this never ends.
	octx, ocancel := context.WithTimeout(ctx, testLease+testMarg+testRenew)
	defer ocancel()
	if h, err := hsm.Open(octx, c.cfg, nil, hsm.WithBudget(b)); !errors.Is(err, ErrReplicaInUse) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("second replica named a: %v", err)
	}
	if n := c.ctl.Open(); n != 1 {
		t.Fatalf("%d sessions open; only a's login session should be", n)
	}
}

func TestAllocate(t *testing.T) {
	for _, tc := range []struct {
		size  int
		wants []int
		want  []int
	}{
		{6, []int{1, 1, 1}, []int{1, 1, 1}},
		{6, []int{30, 30, 30}, []int{2, 2, 2}},
		{6, []int{30, 1, 1}, []int{4, 1, 1}},
		{6, []int{2, 30, 1}, []int{2, 3, 1}},
		{7, []int{30, 30, 30}, []int{3, 2, 2}},
		{2, []int{5, 5, 5}, []int{1, 1, 0}}, // the budget is smaller than the replica count
		{6, []int{3}, []int{3}},
		{6, nil, []int{}},
	} {
		got := allocate(tc.size, tc.wants)
		if len(got) != len(tc.want) {
			t.Fatalf("allocate(%d, %v) = %v, want %v", tc.size, tc.wants, got, tc.want)
		}
		sum := 0
		for i := range got {
			sum += got[i]
			if got[i] != tc.want[i] {
				t.Fatalf("allocate(%d, %v) = %v, want %v", tc.size, tc.wants, got, tc.want)
			}
		}
		if sum > tc.size {
			t.Fatalf("allocate(%d, %v) hands out %d", tc.size, tc.wants, sum)
		}
	}
}

func TestOptions(t *testing.T) {
	o, err := Options{URL: "postgres://x", Sessions: 6}.withDefaults()
	if err != nil || o.Lease != DefaultLease || o.Renew != 2*time.Second || o.Margin != 2*time.Second || o.Name != DefaultName ||
		o.Replica == "" {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	for i, bad := range []Options{
		{Sessions: 6},
		{URL: "postgres://x"},
		{URL: "postgres://x", Sessions: 6, Lease: time.Second, Renew: 500 * time.Millisecond},
		{URL: "postgres://x", Sessions: 6, Margin: -time.Second},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("options %d accepted: %+v", i, bad)
		}
	}
}
