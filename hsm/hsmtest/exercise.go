package hsmtest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kmipd/kmipd/hsm"
)

// Exercise runs the master-key contract against an open HSM: every
// implementation of the kek.MasterKeys seam backed by hsm must pass it.
func Exercise(t *testing.T, h *hsm.HSM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("Random", func(t *testing.T) {
		a, err := h.Random(ctx, 32)
		if err != nil {
			t.Fatal(err)
		}
		b, err := h.Random(ctx, 32)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != 32 || len(b) != 32 || bytes.Equal(a, b) {
			t.Fatalf("Random: got %d and %d bytes, equal=%v", len(a), len(b), bytes.Equal(a, b))
		}
	})

	t.Run("WrapUnwrap", func(t *testing.T) {
		pt := bytes.Repeat([]byte("secret-key-bytes"), 2)
		aad := []byte("kmipd/pkek/v1\x00owner")
		w1, err := h.Wrap(ctx, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		w2, err := h.Wrap(ctx, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(w1) != 12+len(pt)+16 {
			t.Fatalf("wrapped length %d, want %d", len(w1), 12+len(pt)+16)
		}
		if bytes.Equal(w1, w2) || bytes.Equal(w1[:12], w2[:12]) {
			t.Fatal("two wraps share an IV")
		}
		if bytes.Contains(w1, pt[:16]) {
			t.Fatal("wrapped value contains the plaintext")
		}
		got, err := h.Unwrap(ctx, w1, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatal("round trip changed the value")
		}
		empty, err := h.Wrap(ctx, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := h.Unwrap(ctx, empty, nil); err != nil || len(got) != 0 {
			t.Fatalf("empty round trip: %v %d", err, len(got))
		}
		for i := range w1 {
			bad := bytes.Clone(w1)
			bad[i] ^= 0x01
			if _, err := h.Unwrap(ctx, bad, aad); !isCrypto(err) {
				t.Fatalf("flipped byte %d: got %v, want a cryptographic failure", i, err)
			}
		}
		if _, err := h.Unwrap(ctx, w1, []byte("kmipd/pkek/v1\x00other")); !isCrypto(err) {
			t.Fatalf("wrong AAD: got %v, want a cryptographic failure", err)
		}
		if _, err := h.Unwrap(ctx, w1[:20], aad); !isCrypto(err) {
			t.Fatalf("truncated: got %v, want a cryptographic failure", err)
		}
		if !h.Ready() {
			t.Fatal("tag failures must not mark the HSM lost")
		}
	})

	t.Run("MAC", func(t *testing.T) {
		data := []byte("kmipd/pkek-mac/v1\x00owner\x00wrapped")
		m1, err := h.MAC(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := h.MAC(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(m1) != 32 || !bytes.Equal(m1, m2) {
			t.Fatalf("MAC not deterministic or wrong size (%d)", len(m1))
		}
		if err := h.VerifyMAC(ctx, data, m1); err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(m1)
		bad[0] ^= 0x80
		if err := h.VerifyMAC(ctx, data, bad); !isCrypto(err) {
			t.Fatalf("bad MAC: got %v, want a cryptographic failure", err)
		}
		if err := h.VerifyMAC(ctx, append(bytes.Clone(data), 'x'), m1); !isCrypto(err) {
			t.Fatalf("other data: got %v, want a cryptographic failure", err)
		}
	})

	t.Run("Check", func(t *testing.T) {
		if err := h.Check(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func isCrypto(err error) bool {
	var he *hsm.Error
	return errors.As(err, &he) && he.Class == hsm.ClassCrypto &&
		he.ClientMessage() == "cryptographic failure"
}
