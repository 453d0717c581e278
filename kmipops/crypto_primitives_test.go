package kmipops

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	mrand "math/rand/v2"
	"testing"
)

// The hand-written primitives are checked against published vectors and
// against Go's own implementations.

// RFC 4493 §4 (AES-128 CMAC), all four examples, with the subkeys.
func TestCMACRFC4493(t *testing.T) {
	key := crHex(t, "2b7e151628aed2a6abf7158809cf4f3c")
	msg := crHex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
	b, _ := aes.NewCipher(key)
	c := newCMAC(b)
	if !bytes.Equal(c.k1, crHex(t, "fbeed618357133667c85e08f7236a8de")) || !bytes.Equal(c.k2, crHex(t, "f7ddac306ae266ccf90bc11ee46d513b")) {
		t.Fatalf("subkeys %x %x", c.k1, c.k2)
	}
	for _, v := range []struct {
		n   int
		tag string
	}{
		{0, "bb1d6929e95937287fa37d129b756746"},
		{16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"},
		{64, "51f0bebf7e3b9d92fc49741779363cfe"},
	} {
		// Whole, then byte by byte: the held last block must not depend on
		// how the data was split.
		c := newCMAC(b)
		c.Write(msg[:v.n])
		if got := c.Sum(nil); !bytes.Equal(got, crHex(t, v.tag)) {
			t.Errorf("len %d: %x, want %s", v.n, got, v.tag)
		}
		c.Reset()
		for i := range v.n {
			c.Write(msg[i : i+1])
		}
		if got := c.Sum(nil); !bytes.Equal(got, crHex(t, v.tag)) {
			t.Errorf("len %d bytewise: %x", v.n, got)
		}
	}
	// 64-bit blocks use R64: SP 800-38B D.4 (TDEA, three keys), example 2.
	tk := crHex(t, "8aa83bf8cbda10620bc1bf19fbb6cd58bc313d4a371ca8b5")
	tb, _ := des.NewTripleDESCipher(tk)
	c = newCMAC(tb)
	c.Write(crHex(t, "6bc1bee22e409f96"))
	if got := c.Sum(nil); !bytes.Equal(got, crHex(t, "8e8f293136283797")) {
		t.Errorf("TDEA CMAC %x", got)
	}
}

// gcmStream must agree with Go's GCM for every IV length, AAD length, tag
// length and way of splitting the data.
func TestGCMStreamMatchesGo(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for i := range 300 {
		key := rnd([]int{16, 24, 32}[i%3])
		b, _ := aes.NewCipher(key)
		ivLen := 1 + r.IntN(40)
		if i%4 == 0 {
			ivLen = 12
		}
		iv, aad, pt := rnd(ivLen), rnd(r.IntN(50)), rnd(r.IntN(100))
		ref, _ := cipher.NewGCMWithNonceSize(b, ivLen)
		want := ref.Seal(nil, iv, pt, aad)
		wantCT, wantTag := want[:len(pt)], want[len(pt):]

		// Streamed in random parts.
		g := newGCMStream(b, iv, aad)
		var ct []byte
		for rest := pt; len(rest) > 0; {
			n := 1 + r.IntN(len(rest))
			out := make([]byte, n)
			g.seal(out, rest[:n])
			ct = append(ct, out...)
			rest = rest[n:]
		}
		tag := g.sum()
		if !bytes.Equal(ct, wantCT) || !bytes.Equal(tag[:], wantTag) {
			t.Fatalf("case %d (iv %d, aad %d, pt %d): stream differs from Go", i, ivLen, len(aad), len(pt))
		}
		// One shot with a truncated tag, both ways.
		tl := 12 + r.IntN(5)
		ct2, tag2, err := gcmSeal(b, iv, pt, aad, tl)
		if err != nil || !bytes.Equal(ct2, wantCT) || !bytes.Equal(tag2, wantTag[:tl]) {
			t.Fatalf("case %d: gcmSeal differs (%v)", i, err)
		}
		got, err := gcmOpen(b, iv, ct2, aad, tag2)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("case %d: gcmOpen: %v", i, err)
		}
		if len(ct2) > 0 {
			ct2[r.IntN(len(ct2))] ^= 1
		} else {
			tag2[0] ^= 1
		}
		if _, err := gcmOpen(b, iv, ct2, aad, tag2); err == nil {
			t.Fatalf("case %d: tampered message opened", i)
		}
	}
}

func TestUnpadPKCS5(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want []byte
		ok   bool
	}{
		{append(bytes.Repeat([]byte{7}, 15), 1), bytes.Repeat([]byte{7}, 15), true},
		{bytes.Repeat([]byte{16}, 16), []byte{}, true},
		{append([]byte{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, 3, 3, 3), bytes.Repeat([]byte{9}, 13), true},
		{append(bytes.Repeat([]byte{0}, 13), 2, 3, 3), nil, false},
		{bytes.Repeat([]byte{0}, 16), nil, false},
		{bytes.Repeat([]byte{17}, 16), nil, false},
	} {
		got, ok := unpadPKCS5(c.in, 16)
		if ok != c.ok || (ok && !bytes.Equal(got, c.want)) {
			t.Errorf("unpad(%x) = %x, %v", c.in, got, ok)
		}
	}
}
