package aesmodes

import (
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
	"hash"
)

// CMAC is CMAC (NIST SP 800-38B; RFC 4493 for AES) as a hash.Hash, so MAC
// code treats it like HMAC. Go's standard library has no CMAC.
type CMAC struct {
	b      cipher.Block
	k1, k2 []byte
	x      []byte // chaining value
	buf    []byte // the last, possibly partial, block: held until Sum
	n      int    // bytes in buf
}

var _ hash.Hash = (*CMAC)(nil)

// NewCMAC returns CMAC over a 64- or 128-bit block cipher (TDEA or AES);
// other block sizes are ErrLength.
func NewCMAC(b cipher.Block) (*CMAC, error) {
	bs := b.BlockSize()
	var rb byte
	switch bs {
	case 16:
		rb = 0x87 // R128 of SP 800-38B
	case 8:
		rb = 0x1b // R64
	default:
		return nil, fmt.Errorf("%w: CMAC needs a 64- or 128-bit block cipher, not %d bits", ErrLength, 8*bs)
	}
	l := make([]byte, bs)
	b.Encrypt(l, l)
	c := &CMAC{b: b, k1: cmacDouble(l, rb), x: make([]byte, bs), buf: make([]byte, bs)}
	c.k2 = cmacDouble(c.k1, rb)
	clear(l)
	return c, nil
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

// Write never fails.
func (c *CMAC) Write(p []byte) (int, error) {
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
func (c *CMAC) Sum(in []byte) []byte {
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

// Reset starts a new message under the same key.
func (c *CMAC) Reset() {
	clear(c.x)
	clear(c.buf)
	c.n = 0
}

// Size is the tag length: the block size.
func (c *CMAC) Size() int { return len(c.buf) }

// BlockSize is the cipher's block size.
func (c *CMAC) BlockSize() int { return len(c.buf) }
