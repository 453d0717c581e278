package aesmodes

import (
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

func TestGCMVectors(t *testing.T) {
	for _, v := range append(append([]gcmVector(nil), gcmSpecVectors...), gcmCAVPVectors...) {
		t.Run(v.name, func(t *testing.T) {
			b := newAES(t, unhex(t, v.key))
			iv, pt, aad, ct, tag := unhex(t, v.iv), unhex(t, v.pt), unhex(t, v.aad), unhex(t, v.ct), unhex(t, v.tag)
			if len(pt) == 0 {
				pt = nil // GCMOpen answers an empty plaintext as nil or empty alike
			}
			// The vector as copied must agree with Go's GCM (full tag), or
			// it was mistyped.
			ref, err := cipher.NewGCMWithNonceSize(b, len(iv))
			if err != nil {
				t.Fatal(err)
			}
			full := ref.Seal(nil, iv, pt, aad)
			if !bytes.Equal(full[:len(pt)], ct) || !bytes.HasPrefix(full[len(pt):], tag) {
				t.Fatalf("the vector disagrees with crypto/cipher: mistyped?")
			}

			if len(tag) < MinTagSize {
				// Refused at this length; the full tag still starts with it.
				if _, _, err := GCMSeal(b, iv, pt, aad, len(tag)); !errors.Is(err, ErrLength) {
					t.Fatalf("GCMSeal with a %d-byte tag: %v", len(tag), err)
				}
				if _, err := GCMOpen(b, iv, ct, aad, tag); !errors.Is(err, ErrLength) {
					t.Fatalf("GCMOpen with a %d-byte tag: %v", len(tag), err)
				}
				gotCT, gotTag, err := GCMSeal(b, iv, pt, aad, MaxTagSize)
				if err != nil || !bytes.Equal(gotCT, ct) || !bytes.HasPrefix(gotTag, tag) {
					t.Fatalf("GCMSeal: %x %x, %v", gotCT, gotTag, err)
				}
				return
			}
			gotCT, gotTag, err := GCMSeal(b, iv, pt, aad, len(tag))
			if err != nil || !bytes.Equal(gotCT, ct) || !bytes.Equal(gotTag, tag) {
				t.Fatalf("GCMSeal = %x %x, %v", gotCT, gotTag, err)
			}
			got, err := GCMOpen(b, iv, ct, aad, tag)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("GCMOpen = %x, %v", got, err)
			}
			// Streamed, split at every point.
			for cut := 0; cut <= len(pt); cut++ {
				s, err := NewGCMStream(b, iv, aad)
				if err != nil {
					t.Fatal(err)
				}
				out := make([]byte, len(pt))
				if err := s.Seal(out[:cut], pt[:cut]); err != nil {
					t.Fatal(err)
				}
				if err := s.Seal(out[cut:], pt[cut:]); err != nil {
					t.Fatal(err)
				}
				st, err := s.Tag(len(tag))
				if err != nil || !bytes.Equal(out, ct) || !bytes.Equal(st, tag) || s.Len() != uint64(len(pt)) {
					t.Fatalf("stream cut at %d: %x %x, %v", cut, out, st, err)
				}
			}
			// Whatever is altered, Open refuses and returns nothing.
			alter := func(name string, p []byte, i int) {
				if len(p) == 0 {
					return
				}
				p[i%len(p)] ^= 0x80
				defer func() { p[i%len(p)] ^= 0x80 }()
				if got, err := GCMOpen(b, iv, ct, aad, tag); !errors.Is(err, ErrAuth) || got != nil {
					t.Errorf("altered %s byte %d: %x, %v", name, i%len(p), got, err)
				}
			}
			for i := range 40 {
				alter("ciphertext", ct, i)
				alter("tag", tag, i)
				alter("additional data", aad, i)
				alter("nonce", iv, i)
			}
			if len(iv) != StdNonceSize {
				// A nonce one byte longer is a different nonce.
				if got, err := GCMOpen(b, append(iv, 0), ct, aad, tag); !errors.Is(err, ErrAuth) || got != nil {
					t.Errorf("longer nonce: %x, %v", got, err)
				}
			}
		})
	}
}

func TestGCMRefusesBadLengths(t *testing.T) {
	b := newAES(t, make([]byte, 16))
	tdea, _ := des.NewTripleDESCipher(make([]byte, 24))
	nonce := make([]byte, 12)
	for _, c := range []struct {
		name  string
		b     cipher.Block
		nonce []byte
		tag   int
	}{
		{"64-bit block", tdea, nonce, 16},
		{"odd block", oddBlock(24), nonce, 16},
		{"no nonce", b, nil, 16},
		{"tag 0", b, nonce, 0},
		{"tag 4", b, nonce, 4},
		{"tag 8", b, []byte{1}, 8},
		{"tag 11", b, nonce, 11},
		{"tag 17", b, nonce, 17},
		{"tag 17, long nonce", b, make([]byte, 16), 17},
		{"tag -1", b, nonce, -1},
	} {
		if ct, tag, err := GCMSeal(c.b, c.nonce, []byte("data"), nil, c.tag); !errors.Is(err, ErrLength) || ct != nil || tag != nil {
			t.Errorf("GCMSeal, %s: %v", c.name, err)
		}
		tag := make([]byte, max(c.tag, 0))
		if pt, err := GCMOpen(c.b, c.nonce, []byte("data"), nil, tag); !errors.Is(err, ErrLength) || pt != nil {
			t.Errorf("GCMOpen, %s: %v", c.name, err)
		}
		if c.tag == 16 {
			if s, err := NewGCMStream(c.b, c.nonce, nil); !errors.Is(err, ErrLength) || s != nil {
				t.Errorf("NewGCMStream, %s: %v", c.name, err)
			}
		}
	}
}

func TestGCMStreamRefusals(t *testing.T) {
	b := newAES(t, make([]byte, 16))
	s, err := NewGCMStream(b, []byte{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(make([]byte, 3), make([]byte, 4)); !errors.Is(err, ErrLength) || s.Len() != 0 {
		t.Fatalf("short dst: %v (len %d)", err, s.Len())
	}
	for _, n := range []int{0, 11, 17} {
		if tag, err := s.Tag(n); !errors.Is(err, ErrLength) || tag != nil {
			t.Fatalf("Tag(%d): %v", n, err)
		}
	}
	// Up to the limit, and not a byte past it (the counter would wrap).
	s.ctLen = MaxBytes - 2
	if err := s.Seal(make([]byte, 2), make([]byte, 2)); err != nil {
		t.Fatalf("Seal to the limit: %v", err)
	}
	if err := s.Seal(make([]byte, 1), make([]byte, 1)); !errors.Is(err, ErrTooLong) || s.Len() != MaxBytes {
		t.Fatalf("Seal past the limit: %v (len %d)", err, s.Len())
	}
	if _, err := s.Tag(16); err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(nil, nil); !errors.Is(err, ErrFinished) {
		t.Fatalf("Seal after Tag: %v", err)
	}
	if _, err := s.Tag(16); !errors.Is(err, ErrFinished) {
		t.Fatalf("Tag twice: %v", err)
	}
}

// GCMSeal, GCMOpen and GCMStream must agree with Go's GCM for every nonce
// length, additional data length, tag length and way of splitting the data.
func TestGCMMatchesGo(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for i := range 300 {
		b := newAES(t, rnd([]int{16, 24, 32}[i%3]))
		ivLen := 1 + r.IntN(40)
		if i%4 == 0 {
			ivLen = StdNonceSize
		}
		iv, aad, pt := rnd(ivLen), rnd(r.IntN(50)), rnd(r.IntN(100))
		ref, _ := cipher.NewGCMWithNonceSize(b, ivLen)
		want := ref.Seal(nil, iv, pt, aad)
		wantCT, wantTag := want[:len(pt)], want[len(pt):]

		// Streamed in random parts.
		s, err := NewGCMStream(b, iv, aad)
		if err != nil {
			t.Fatal(err)
		}
		var ct []byte
		for rest := pt; len(rest) > 0; {
			n := 1 + r.IntN(len(rest))
			out := make([]byte, n)
			if err := s.Seal(out, rest[:n]); err != nil {
				t.Fatal(err)
			}
			ct = append(ct, out...)
			rest = rest[n:]
		}
		tag, err := s.Tag(MaxTagSize)
		if err != nil || !bytes.Equal(ct, wantCT) || !bytes.Equal(tag, wantTag) {
			t.Fatalf("case %d (iv %d, aad %d, pt %d): stream differs from Go (%v)", i, ivLen, len(aad), len(pt), err)
		}
		// One shot with a truncated tag, both ways.
		tl := MinTagSize + r.IntN(MaxTagSize-MinTagSize+1)
		ct2, tag2, err := GCMSeal(b, iv, pt, aad, tl)
		if err != nil || !bytes.Equal(ct2, wantCT) || !bytes.Equal(tag2, wantTag[:tl]) {
			t.Fatalf("case %d: GCMSeal differs (%v)", i, err)
		}
		got, err := GCMOpen(b, iv, ct2, aad, tag2)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("case %d: GCMOpen: %v", i, err)
		}
		if len(ct2) > 0 {
			ct2[r.IntN(len(ct2))] ^= 1
		} else {
			tag2[0] ^= 1
		}
		if _, err := GCMOpen(b, iv, ct2, aad, tag2); !errors.Is(err, ErrAuth) {
			t.Fatalf("case %d: tampered message: %v", i, err)
		}
	}
}
