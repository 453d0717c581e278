package hsm_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/kmipd/kmipd/hsm"
	"github.com/kmipd/kmipd/hsm/hsmtest"
)

// TestCurrentMasterKeyFollowsRotation: once a new MKEK is current, Wrap,
// Unwrap and Check use it, the configured MKEK can be destroyed while the
// HSM runs (it cannot while current), and a fresh key lookup (as after a
// device recovery) finds the current key, not the configured one.
func TestCurrentMasterKeyFollowsRotation(t *testing.T) {
	ctx := context.Background()
	cfg := hsmtest.SoftHSM(t)
	h := open(t, cfg)
	conf, _ := h.ConfiguredLabels()
	if err := h.RetireMasterKey(ctx, hsm.KindMKEK, conf, true); err == nil {
		t.Fatal("the current MKEK was retired")
	}
	const next = "kmipd-mkek/next"
	if err := h.SetCurrentMasterKey(ctx, hsm.KindMKEK, next); err == nil {
		t.Fatal("a key not on the token became current")
	}
	if _, err := h.CreateMasterKey(ctx, hsm.KindMKEK, next); err != nil {
		t.Fatal(err)
	}
	old, err := h.Wrap(ctx, []byte("under the configured key"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetCurrentMasterKey(ctx, hsm.KindMKEK, next); err != nil {
		t.Fatal(err)
	}
	if m, _ := h.CurrentLabels(); m != next {
		t.Fatalf("current MKEK %q", m)
	}
	if m, _ := h.ConfiguredLabels(); m != conf {
		t.Fatalf("configured MKEK %q", m)
	}
	// The configured key is reachable by label until it is retired.
	if pt, err := h.UnwrapLabel(ctx, conf, old, []byte("aad")); err != nil || string(pt) != "under the configured key" {
		t.Fatalf("old wrap by label: %v", err)
	}
	if _, err := h.Unwrap(ctx, old, []byte("aad")); err == nil {
		t.Fatal("Unwrap still uses the configured MKEK")
	}
	w, err := h.Wrap(ctx, []byte("under the new key"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := h.UnwrapLabel(ctx, next, w, []byte("aad")); err != nil || !bytes.Equal(pt, []byte("under the new key")) {
		t.Fatalf("Wrap did not use the current MKEK: %v", err)
	}
	if err := h.RetireMasterKey(ctx, hsm.KindMKEK, conf, true); err != nil {
		t.Fatal(err)
	}
	if have, err := h.HasMasterKey(ctx, hsm.KindMKEK, conf); err != nil || have {
		t.Fatalf("configured MKEK still there: %v %v", have, err)
	}
	h.ForgetStateForTest()
	if err := h.Check(ctx); err != nil {
		t.Fatalf("check after retiring the configured MKEK: %v", err)
	}
	if _, err := h.UnwrapLabel(ctx, conf, old, []byte("aad")); err == nil {
		t.Fatal("a destroyed MKEK still unwraps")
	}
}
