package kmipops

import (
	"crypto/cipher"
	"crypto/subtle"
)

// cmac is CMAC (NIST SP 800-38B; RFC 4493 for AES) as a hash.Hash, so MAC
// sessions treat it like HMAC. Go's standard library has no CMAC and the
// module takes no new dependency for 80 lines.
type cmac struct {
	b      cipher.Block
	k1, k2 []byte
	x      []byte // chaining value
	buf    []byte // the last, possibly partial, block: held until Sum
	n      int    // bytes in buf
}

// newCMAC returns CMAC over a 64- or 128-bit block cipher.
func newCMAC(b cipher.Block) *cmac {
	bs := b.BlockSize()
	rb := byte(0x87) // R128 of SP 800-38B
	if bs == 8 {
		rb = 0x1b // R64
	}
	l := make([]byte, bs)
	b.Encrypt(l, l)
	c := &cmac{b: b, k1: cmacDouble(l, rb), x: make([]byte, bs), buf: make([]byte, bs)}
	c.k2 = cmacDouble(c.k1, rb)
	clear(l)
	return c
}

// cmacDouble is multiplication by x in GF(2^n): shift left, reduce by rb when the
// top bit falls out (without a branch on that secret bit).
func cmacDouble(in []byte, rb byte) []byte {
	out := make([]byte, len(in))
	var carry byte
	for i := len(in) - 1; i >= 0; i-- {
		out[i] = in[i]<<1 | carry
		carry = in[i] >> 7
	}
	out[len(out)-1] ^= rb & -carry
	return out
}

func (c *cmac) Write(p []byte) (int, error) {
	total := len(p)
	bs := len(c.buf)
	for len(p) > 0 {
		if c.n == bs {
			// More data follows, so the held block is not the last one.
			subtle.XORBytes(c.x, c.x, c.buf)
			c.b.Encrypt(c.x, c.x)
			c.n = 0
		}
		k := copy(c.buf[c.n:], p)
		c.n += k
		p = p[k:]
	}
	return total, nil
}

// Sum appends the tag; the state is left as is (hash.Hash semantics).
func (c *cmac) Sum(in []byte) []byte {
	bs := len(c.buf)
	last := make([]byte, bs)
	copy(last, c.buf[:c.n])
	if c.n == bs {
		subtle.XORBytes(last, last, c.k1)
	} else {
		last[c.n] = 0x80
		subtle.XORBytes(last, last, c.k2)
	}
	subtle.XORBytes(last, last, c.x)
	c.b.Encrypt(last, last)
	return append(in, last...)
}

func (c *cmac) Reset() {
	clear(c.x)
	clear(c.buf)
	c.n = 0
}

func (c *cmac) Size() int      { return len(c.buf) }
func (c *cmac) BlockSize() int { return len(c.buf) }
