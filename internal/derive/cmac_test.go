package derive

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"hash"
	"testing"
)

// testCMAC is CMAC (NIST SP 800-38B) over a 128-bit block cipher, for the
// CAVP vectors whose PRF is CMAC-AES: the package takes CMAC from its caller
// (kmipops has one), so the tests bring their own, checked against RFC 4493.
type testCMAC struct {
	b         cipher.Block
	k1, k2, x []byte
	buf       []byte
	n         int
}

func newTestCMAC(b cipher.Block) *testCMAC {
	l := make([]byte, 16)
	b.Encrypt(l, l)
	dbl := func(in []byte) []byte {
		out := make([]byte, 16)
		for i := 0; i < 16; i++ {
			out[i] = in[i] << 1
			if i < 15 {
				out[i] |= in[i+1] >> 7
			}
		}
		if in[0]&0x80 != 0 {
			out[15] ^= 0x87
		}
		return out
	}
	c := &testCMAC{b: b, k1: dbl(l), x: make([]byte, 16), buf: make([]byte, 16)}
	c.k2 = dbl(c.k1)
	return c
}

func (c *testCMAC) Write(p []byte) (int, error) {
	for _, v := range p {
		if c.n == 16 {
			for i := range c.x {
				c.x[i] ^= c.buf[i]
			}
			c.b.Encrypt(c.x, c.x)
			c.n = 0
		}
		c.buf[c.n] = v
		c.n++
	}
	return len(p), nil
}

func (c *testCMAC) Sum(in []byte) []byte {
	last := make([]byte, 16)
	copy(last, c.buf[:c.n])
	k := c.k1
	if c.n < 16 {
		last[c.n] = 0x80
		k = c.k2
	}
	for i := range last {
		last[i] ^= k[i] ^ c.x[i]
	}
	c.b.Encrypt(last, last)
	return append(in, last...)
}

func (c *testCMAC) Reset()         { clear(c.x); c.n = 0 }
func (c *testCMAC) Size() int      { return 16 }
func (c *testCMAC) BlockSize() int { return 16 }

var _ hash.Hash = (*testCMAC)(nil)

// cmacAESPRF is CMAC-AES as an SP 800-108 PRF.
func cmacAESPRF(key []byte) (hash.Hash, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return newTestCMAC(b), nil
}

// TestTestCMAC checks the helper against RFC 4493 §4 (AES-128).
func TestTestCMAC(t *testing.T) {
	key := unhex(t, "2b7e151628aed2a6abf7158809cf4f3c")
	msg := unhex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
	for _, tc := range []struct {
		n   int
		tag string
	}{
		{0, "bb1d6929e95937287fa37d129b756746"},
		{16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"},
		{64, "51f0bebf7e3b9d92fc49741779363cfe"},
	} {
		h, _ := cmacAESPRF(key)
		h.Write(msg[:tc.n])
		if got := h.Sum(nil); !bytes.Equal(got, unhex(t, tc.tag)) {
			t.Errorf("CMAC of %d bytes = %x, want %s", tc.n, got, tc.tag)
		}
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}
