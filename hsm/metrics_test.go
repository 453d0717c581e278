package hsm_test

import (
	"context"
	"testing"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
	"github.com/kmipd/kmipd/testkit"
)

func TestCollector(t *testing.T) {
	h := open(t, hsmtest.SoftHSM(t))
	ctx := context.Background()
	w, err := h.Wrap(ctx, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	w[len(w)-1] ^= 1
	if _, err := h.Unwrap(ctx, w, nil); err == nil {
		t.Fatal("tampered unwrap succeeded")
	}
	got := testkit.Gather(t, h.Collector())
	for name, want := range map[string]float64{
		"kmipd_hsm_sessions_open":                        1,
		"kmipd_hsm_sessions_in_use":                      0,
		"kmipd_hsm_sessions_idle":                        1,
		"kmipd_hsm_sessions_waiting":                     0,
		"kmipd_hsm_sessions_effective_cap":               4,
		"kmipd_hsm_reinitializations_total":              0,
		"kmipd_hsm_errors_total{code=CKR_GENERAL_ERROR}": 1, // SoftHSM's bad-tag answer
		"kmipd_hsm_wait_seconds":                         2,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if p := got["kmipd_hsm_sessions_peak"]; p != float64(h.Stats().PeakOpen) || p < got["kmipd_hsm_sessions_open"] {
		t.Errorf("sessions_peak %v, Stats().PeakOpen %d, open %v", p, h.Stats().PeakOpen, got["kmipd_hsm_sessions_open"])
	}
	if got["kmipd_hsm_calls_total"] != float64(h.Stats().Calls) || got["kmipd_hsm_calls_total"] == 0 {
		t.Errorf("calls_total %v, Stats().Calls %d", got["kmipd_hsm_calls_total"], h.Stats().Calls)
	}
}

func TestSelectBySerialAndSlot(t *testing.T) {
	cfg := hsmtest.SoftHSM(t)
	h := open(t, cfg)
	info := h.TokenInfo()
	if info.Label != cfg.TokenLabel || info.Serial == "" {
		t.Fatalf("token info %+v", info)
	}
	bySerial := cfg
	bySerial.TokenLabel, bySerial.TokenSerial = "", info.Serial
	h2 := open(t, bySerial)
	if h2.TokenInfo().Label != cfg.TokenLabel {
		t.Fatal("serial selected another token")
	}
	slot := info.Slot
	bySlot := cfg
	bySlot.TokenLabel, bySlot.Slot = "", &slot
	h3 := open(t, bySlot)
	if h3.TokenInfo().Label != cfg.TokenLabel {
		t.Fatal("slot selected another token")
	}
	var _ hsm.TokenInfo = info
}
