package hsmfaults_test

import (
	"context"
	"testing"
	"time"

	"github.com/kmipd/kmipd/testkit"
)

// Idle: after a load that made kmipd open every session it may, only the
// login session is left open once idle_timeout has passed (min_idle is 0 in
// dev mode), and it stays open: the token remains logged in.
func TestIdleSessionsClosed(t *testing.T) {
	const (
		capN    = 4
		workers = 50
		idle    = 2 * time.Second
		// The reaper looks every idle/4: a session last used when the load
		// stopped is closed at most idle + idle/4 later; the rest is slack
		// for a loaded CI machine.
		bound = idle + idle/4 + 750*time.Millisecond
	)
	c := startCapped(t, capN, testkit.DevOptions{
		MaxSessions:  capN,
		KEKCacheSize: smallKEKs,
		ExtraArgs:    []string{"-hsm-idle-timeout", idle.String()},
	})
	d := c.dev
	set := identities(t, d, "owner", nOwners)
	c.ctl.ResetPeak()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	open := sample(20*time.Millisecond, func() float64 { return float64(c.ctl.Open()) })
	tl := runLoad(ctx, workers, owners(set, nil, 0))
	stopped := time.Now()
	_, busiest, _ := open.stop()
	tl.requireNoFailures(t, d)
	if busiest < 2 {
		t.Fatalf("the load never opened a second session (peak %d): nothing to reap", c.ctl.Peak())
	}

	var after time.Duration = -1
	for time.Since(stopped) < 2*bound {
		if c.ctl.Open() == 1 {
			after = time.Since(stopped)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d clients: %s", workers, tl)
	t.Logf("HSM: %v sessions open under load (peak %d); down to %d %v after the load stopped (idle_timeout %v, bound %v)",
		busiest, c.ctl.Peak(), c.ctl.Open(), after, idle, bound)
	switch {
	case after < 0:
		t.Fatalf("%d sessions still open %v after the load stopped\n%s", c.ctl.Open(), 2*bound, d.LogTail(20))
	case after > bound:
		t.Errorf("idle sessions closed %v after the load stopped, want ≤ %v", after, bound)
	}

	// The login session is not reaped, and kmipd agrees with the HSM.
	time.Sleep(idle / 2)
	if n := c.ctl.Open(); n != 1 {
		t.Errorf("%d sessions open %v later, want the login session alone", n, idle/2)
	}
	if v := d.Metric("kmipd_hsm_sessions_open"); v != 1 {
		t.Errorf("kmipd_hsm_sessions_open = %v, want 1", v)
	}
	// Still logged in: a new owner's pKEK is made on the login session.
	if _, err := d.NewIdentity(t, "after").Create(); err != nil {
		t.Errorf("Create for a new owner after the idle period: %v", err)
	}
	if n := c.ctl.Open(); n != 1 {
		t.Errorf("%d sessions open after one sequential request, want 1 (reuse before growth)", n)
	}
}
