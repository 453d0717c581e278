package kektest_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kek/kektest"
)

var _ kek.MasterKeys = (*kektest.MasterKeys)(nil)

func TestMasterKeys(t *testing.T) {
	ctx := context.Background()
	mk := kektest.NewMasterKeys()
	r1, err1 := mk.Random(ctx, 32)
	r2, err2 := mk.Random(ctx, 32)
	if err1 != nil || err2 != nil || len(r1) != 32 || bytes.Equal(r1, r2) {
		t.Fatalf("Random: %x %x, %v %v", r1, r2, err1, err2)
	}

	pt, aad := []byte("a pKEK of 32 bytes, more or less"), []byte("kmipd/pkek/v1\x00alice")
	w, err := mk.Wrap(ctx, pt, aad)
	if err != nil || bytes.Contains(w, pt) {
		t.Fatalf("Wrap: %v", err)
	}
	if got, err := mk.Unwrap(ctx, w, aad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Unwrap: %q, %v", got, err)
	}
	// Refused: other additional data, a flipped byte, a short input, other keys.
	w2 := bytes.Clone(w)
	w2[len(w2)-1] ^= 1
	for name, c := range map[string]struct{ w, aad []byte }{
		"other aad": {w, []byte("kmipd/pkek/v1\x00bob")},
		"flipped":   {w2, aad},
		"short":     {w[:5], aad},
	} {
		if got, err := mk.Unwrap(ctx, c.w, c.aad); err == nil || got != nil {
			t.Errorf("Unwrap, %s: %q", name, got)
		}
	}
	other := kektest.NewMasterKeys()
	if _, err := other.Unwrap(ctx, w, aad); err == nil {
		t.Error("another instance unwrapped")
	}

	mac, err := mk.MAC(ctx, []byte("data"))
	if err != nil || len(mac) != 32 {
		t.Fatalf("MAC: %x, %v", mac, err)
	}
	if err := mk.VerifyMAC(ctx, []byte("data"), mac); err != nil {
		t.Fatalf("VerifyMAC: %v", err)
	}
	if err := mk.VerifyMAC(ctx, []byte("Data"), mac); err == nil {
		t.Error("VerifyMAC accepted other data")
	}
	if err := other.VerifyMAC(ctx, []byte("data"), mac); err == nil {
		t.Error("another instance verified the MAC")
	}

	done, cancel := context.WithCancel(ctx)
	cancel()
	_, e1 := mk.Random(done, 1)
	_, e2 := mk.Wrap(done, pt, aad)
	_, e3 := mk.Unwrap(done, w, aad)
	_, e4 := mk.MAC(done, nil)
	e5 := mk.VerifyMAC(done, []byte("data"), mac)
	for i, err := range []error{e1, e2, e3, e4, e5} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("call %d with a cancelled ctx: %v", i, err)
		}
	}
}
