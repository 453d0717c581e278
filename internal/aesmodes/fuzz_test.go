package aesmodes

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"testing"
)

// FuzzGCM checks GCMSeal, GCMOpen and GCMStream against Go's GCM for any
// key, nonce, data, tag length and split, and that nothing panics on the
// lengths Go's GCM would not take.
func FuzzGCM(f *testing.F) {
	f.Add(uint8(0), []byte("nonce-12byte"), []byte("aad"), []byte("plaintext"), uint8(16), uint16(3))
	f.Add(uint8(1), []byte{1}, []byte(nil), []byte("x"), uint8(12), uint16(0))
	f.Add(uint8(2), bytes.Repeat([]byte{7}, 60), []byte("aad"), bytes.Repeat([]byte{1}, 100), uint8(13), uint16(50))
	f.Add(uint8(0), []byte(nil), []byte(nil), []byte(nil), uint8(8), uint16(0))
	f.Fuzz(func(t *testing.T, k uint8, nonce, aad, pt []byte, tagSize uint8, cut uint16) {
		b := newAES(t, bytes.Repeat([]byte{k}, []int{16, 24, 32}[int(k)%3]))
		ct, tag, err := GCMSeal(b, nonce, pt, aad, int(tagSize))
		if len(nonce) == 0 || int(tagSize) < MinTagSize || int(tagSize) > MaxTagSize {
			if !errors.Is(err, ErrLength) {
				t.Fatalf("GCMSeal with nonce %d, tag %d: %v", len(nonce), tagSize, err)
			}
			if _, err := GCMOpen(b, nonce, pt, aad, make([]byte, tagSize)); !errors.Is(err, ErrLength) {
				t.Fatalf("GCMOpen with nonce %d, tag %d: %v", len(nonce), tagSize, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ref, err := cipher.NewGCMWithNonceSize(b, len(nonce))
		if err != nil {
			t.Fatal(err)
		}
		want := ref.Seal(nil, nonce, pt, aad)
		if !bytes.Equal(ct, want[:len(pt)]) || !bytes.Equal(tag, want[len(pt):len(pt)+int(tagSize)]) {
			t.Fatal("GCMSeal differs from crypto/cipher")
		}
		s, err := NewGCMStream(b, nonce, aad)
		if err != nil {
			t.Fatal(err)
		}
		c := int(cut) % (len(pt) + 1)
		out := make([]byte, len(pt))
		if s.Seal(out[:c], pt[:c]) != nil || s.Seal(out[c:], pt[c:]) != nil {
			t.Fatal("stream Seal failed")
		}
		if st, err := s.Tag(int(tagSize)); err != nil || !bytes.Equal(out, ct) || !bytes.Equal(st, tag) {
			t.Fatalf("stream differs: %v", err)
		}
		got, err := GCMOpen(b, nonce, ct, aad, tag)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("GCMOpen: %v", err)
		}
		tag[int(cut)%len(tag)] ^= 1
		if got, err := GCMOpen(b, nonce, ct, aad, tag); !errors.Is(err, ErrAuth) || got != nil {
			t.Fatalf("altered tag: %v", err)
		}
	})
}

// FuzzKeyWrap wraps and unwraps any input, and unwraps arbitrary bytes:
// never a panic, and whatever unwraps wraps back to the same bytes (key
// wrap is deterministic).
func FuzzKeyWrap(f *testing.F) {
	for _, v := range kwVectors {
		f.Add(unhex(f, v.kek), unhex(f, v.in), unhex(f, v.out))
	}
	f.Add([]byte("short key"), []byte{}, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, kek, plain, wrapped []byte) {
		w, err := WrapPad(kek, plain)
		if err == nil {
			if back, err := UnwrapPad(kek, w); err != nil || !bytes.Equal(back, plain) {
				t.Fatalf("WrapPad round trip: %v", err)
			}
		}
		w, err = Wrap(kek, plain)
		if err == nil {
			if back, err := Unwrap(kek, w); err != nil || !bytes.Equal(back, plain) {
				t.Fatalf("Wrap round trip: %v", err)
			}
		}
		if p, err := Unwrap(kek, wrapped); err == nil {
			if again, err := Wrap(kek, p); err != nil || !bytes.Equal(again, wrapped) {
				t.Fatalf("Unwrap accepted %x, which does not wrap back", wrapped)
			}
		}
		if p, err := UnwrapPad(kek, wrapped); err == nil {
			if again, err := WrapPad(kek, p); err != nil || !bytes.Equal(again, wrapped) {
				t.Fatalf("UnwrapPad accepted %x, which does not wrap back", wrapped)
			}
		}
	})
}

// FuzzCMAC checks that the tag does not depend on how the message is split.
func FuzzCMAC(f *testing.F) {
	f.Add([]byte(nil), uint16(0))
	f.Add(unhex(f, cmacMsg), uint16(16))
	f.Add(unhex(f, cmacMsg)[:40], uint16(39))
	f.Fuzz(func(t *testing.T, msg []byte, cut uint16) {
		m, err := NewCMAC(newAES(t, unhex(t, "2b7e151628aed2a6abf7158809cf4f3c")))
		if err != nil {
			t.Fatal(err)
		}
		m.Write(msg)
		whole := m.Sum(nil)
		m.Reset()
		c := int(cut) % (len(msg) + 1)
		m.Write(msg[:c])
		m.Write(nil)
		m.Write(msg[c:])
		if got := m.Sum(nil); !bytes.Equal(got, whole) {
			t.Fatalf("split at %d: %x, whole %x", c, got, whole)
		}
	})
}
