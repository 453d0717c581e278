package hsm_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/hsm/testmodule"
)

// The pool against hsm/testmodule's libcapped.so: a SoftHSM wrapper that
// behaves like a shared, session-limited network HSM with injectable faults.

func capped(t *testing.T, capN int, refuse uint) (hsm.Config, *testmodule.Control) {
	t.Helper()
	so := testmodule.Build(t)
	cfg := hsmtest.SoftHSM(t) // token and keys made through SoftHSM directly
	state := filepath.Join(t.TempDir(), "state")
	ctl, err := testmodule.OpenControl(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	ctl.SetCap(capN)
	ctl.SetRefuse(refuse)
	t.Setenv("CAPPED_STATE", state)
	cfg.ModulePath = so
	return cfg, ctl
}

func TestCappedHSMLowersCap(t *testing.T) {
	for _, refuse := range []uint{testmodule.RefuseDeviceMemory, testmodule.RefuseSessionCount} {
		cfg, ctl := capped(t, 0, refuse)
		cfg.MaxSessions = 8
		cfg.WaitTimeout = 20 * time.Second
		h := open(t, cfg)
		// Another client takes most of the shared HSM after we opened (a cap
		// known at Open would just clamp MaxSessions; see TestCappedClamp).
		ctl.SetCap(3)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					err := h.DoForTest(context.Background(), func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
						time.Sleep(time.Millisecond) // make the callers overlap
						_, err := p.GenerateRandom(sh, 8)
						return err
					})
					if err == nil {
						_, err = h.MAC(context.Background(), []byte("x"))
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("refuse %#x: caller saw %v", refuse, err)
		}
		st, cs := h.Stats(), ctl.Stats()
		if cs.Peak > 3 || st.EffectiveCap > 3 || st.MaxSessions != 8 || st.CapLowered == 0 || cs.Refusals == 0 {
			t.Fatalf("refuse %#x: pool %+v module %+v", refuse, st, cs)
		}
		t.Logf("refuse %#x: %d refusals, cap lowered %d time(s) to %d, module peak %d",
			refuse, cs.Refusals, st.CapLowered, st.EffectiveCap, cs.Peak)
		if cs.Refusals > 16 {
			t.Fatalf("refuse %#x: %d refusals: the pool keeps hammering a full HSM", refuse, cs.Refusals)
		}
		h.Close()
	}
}

func TestCappedClamp(t *testing.T) {
	cfg, ctl := capped(t, 3, testmodule.RefuseDeviceMemory)
	cfg.MaxSessions = 8
	h := open(t, cfg)
	hold(t, h, 3)()
	if st, cs := h.Stats(), ctl.Stats(); st.MaxSessions != 3 || cs.Refusals != 0 {
		t.Fatalf("token limit 3 not honoured: pool %+v module %+v", st, cs)
	}
}

func TestCappedInvalidateAll(t *testing.T) {
	cfg, ctl := capped(t, 0, testmodule.RefuseDeviceMemory)
	h := open(t, cfg)
	hold(t, h, 4)()
	ctl.InvalidateAll()
	for i := 0; i < 20; i++ {
		if _, err := h.Random(context.Background(), 8); err != nil {
			t.Fatalf("op %d after invalidation: %v", i, err)
		}
	}
	if st := h.Stats(); !st.Ready || st.Reinits != 0 || st.ErrorsByCode["CKR_SESSION_HANDLE_INVALID"] == 0 {
		t.Fatalf("after invalidation: %+v", st)
	}
}

func TestCappedDeviceErrorsRecover(t *testing.T) {
	cfg, ctl := capped(t, 0, testmodule.RefuseDeviceMemory)
	h := open(t, cfg)
	ctx := context.Background()
	w, err := h.Wrap(ctx, []byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctl.SetFailEveryK(5)
	failures := 0
	for i := 0; i < 20; i++ {
		if _, err := h.Random(ctx, 8); err != nil {
			if !errors.Is(err, hsm.ErrUnavailable) {
				t.Fatalf("op %d: %v", i, err)
			}
			failures++
			waitFor(t, h.Ready, 5*time.Second, "recovery")
		}
	}
	ctl.SetFailEveryK(0)
	if st := h.Stats(); failures == 0 || st.Reinits != uint64(failures) {
		t.Fatalf("failures %d, stats %+v", failures, st)
	}
	if got, err := h.Unwrap(ctx, w, nil); err != nil || string(got) != "v" {
		t.Fatalf("after recoveries: %q %v", got, err)
	}
}

func TestCappedTokenRemoval(t *testing.T) {
	cfg, ctl := capped(t, 0, testmodule.RefuseDeviceMemory)
	h := open(t, cfg)
	ctx := context.Background()
	if err := h.Check(ctx); err != nil {
		t.Fatal(err)
	}
	ctl.SetTokenPresent(false)
	if _, err := h.Random(ctx, 8); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("token removed: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // a few failed recovery attempts
	if h.Ready() {
		t.Fatal("ready without a token")
	}
	if _, err := h.Random(ctx, 8); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("while removed: %v", err)
	}
	ctl.SetTokenPresent(true)
	waitFor(t, h.Ready, 10*time.Second, "recovery after reinsertion")
	if err := h.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if st := h.Stats(); st.Reinits != 1 {
		t.Fatalf("%+v", st)
	}
}

// A session counts toward the cap until C_CloseSession has returned: while
// one is being closed (discarded after a broken-session error, reaped, or
// closed over a lowered cap) no other may be opened in its place, or the HSM
// sees one session more than the cap. The module has no cap of its own here,
// so its peak is exactly what kmipd held open at once.
func TestCappedChurnStaysWithinCap(t *testing.T) {
	for _, tc := range []struct {
		name         string
		max, lowerTo int
	}{
		{name: "configured", max: 3},
		{name: "lowered", max: 6, lowerTo: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ctl := capped(t, 0, testmodule.RefuseSessionCount)
			cfg.MaxSessions = tc.max
			cfg.WaitTimeout = 20 * time.Second
			cfg.IdleTimeout = 2 * time.Millisecond // the reaper closes sessions too
			h := open(t, cfg)
			limit := tc.max
			if tc.lowerTo > 0 {
				h.LowerCapForTest(tc.lowerTo)
				limit = tc.lowerTo
			}
			ctl.ResetPeak()
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 120; i++ {
						// Every other operation's first attempt finds its
						// session poisoned (an operation left active: the
						// session is alive, so it is closed, not forgotten).
						tries := 0
						err := h.DoForTest(context.Background(), func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
							if _, err := p.GenerateRandom(sh, 8); err != nil {
								return err
							}
							if tries++; tries == 1 && (g+i)%2 == 0 {
								return pkcs11.Error(pkcs11.CKR_OPERATION_ACTIVE)
							}
							return nil
						})
						if err != nil {
							errs <- err
							return
						}
						if i%10 == 0 {
							time.Sleep(3 * time.Millisecond) // let the reaper in
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("caller saw %v", err)
			}
			st, cs := h.Stats(), ctl.Stats()
			t.Logf("module peak %d, open %d; pool %+v", cs.Peak, cs.Open, st)
			if cs.Peak > limit || st.PeakOpen > tc.max {
				t.Fatalf("the HSM saw %d sessions at once, cap %d (pool peak %d)", cs.Peak, limit, st.PeakOpen)
			}
		})
	}
}
