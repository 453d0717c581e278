package aesmodes

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// GCM. The common case (96-bit nonce, one part) goes to Go's cipher.AEAD,
// which is constant time and hardware accelerated. GCMStream is GCM written
// out (NIST SP 800-38D) for the two things cipher.AEAD cannot do: release
// ciphertext part by part, and nonces other than 96 bits together with tags
// shorter than 16 bytes. It is slower, but only those callers use it.

const (
	// BlockSize is the block size GCM needs: 128 bits.
	BlockSize = 16
	// StdNonceSize is the 96-bit nonce SP 800-38D recommends.
	StdNonceSize = 12
	// MinTagSize and MaxTagSize bound the tag length in bytes. SP 800-38D
	// allows 4 and 8 only for special uses, and cipher.AEAD neither.
	MinTagSize = 12
	MaxTagSize = 16
	// MaxBytes is SP 800-38D's plaintext limit, 2^39-256 bits.
	MaxBytes = 1<<36 - 32
)

// checkGCM validates what every GCM call shares.
func checkGCM(b cipher.Block, nonce []byte) error {
	if b.BlockSize() != BlockSize {
		return fmt.Errorf("%w: GCM needs a 128-bit block cipher", ErrLength)
	}
	if len(nonce) == 0 {
		return fmt.Errorf("%w: GCM needs a nonce", ErrLength)
	}
	return nil
}

func checkTag(n int) error {
	if n < MinTagSize || n > MaxTagSize {
		return fmt.Errorf("%w: GCM tag of %d bytes (%d to %d)", ErrLength, n, MinTagSize, MaxTagSize)
	}
	return nil
}

// GCMSeal encrypts pt under b (AES) and returns the ciphertext and a
// tagSize-byte tag.
func GCMSeal(b cipher.Block, nonce, pt, aad []byte, tagSize int) (ct, tag []byte, err error) {
	if err := checkGCM(b, nonce); err != nil {
		return nil, nil, err
	}
	if err := checkTag(tagSize); err != nil {
		return nil, nil, err
	}
	if uint64(len(pt)) > MaxBytes {
		return nil, nil, ErrTooLong
	}
	if len(nonce) == StdNonceSize {
		a, err := cipher.NewGCMWithTagSize(b, tagSize)
		if err != nil {
			return nil, nil, err
		}
		out := a.Seal(nil, nonce, pt, aad)
		return out[:len(pt)], out[len(pt):], nil
	}
	g := newGCMStream(b, nonce, aad)
	ct = make([]byte, len(pt))
	g.xorKeyStream(ct, pt)
	g.hash(ct)
	sum := g.sum()
	return ct, sum[:tagSize], nil
}

// GCMOpen checks tag (its length is the tag length) and decrypts ct. A tag
// that does not verify is ErrAuth, and then nothing is decrypted.
func GCMOpen(b cipher.Block, nonce, ct, aad, tag []byte) ([]byte, error) {
	if err := checkGCM(b, nonce); err != nil {
		return nil, err
	}
	if err := checkTag(len(tag)); err != nil {
		return nil, err
	}
	if uint64(len(ct)) > MaxBytes {
		return nil, ErrTooLong
	}
	if len(nonce) == StdNonceSize {
		a, err := cipher.NewGCMWithTagSize(b, len(tag))
		if err != nil {
			return nil, err
		}
		in := make([]byte, 0, len(ct)+len(tag))
		in = append(append(in, ct...), tag...)
		pt, err := a.Open(in[:0], nonce, in, aad)
		if err != nil {
			return nil, ErrAuth
		}
		return pt, nil
	}
	g := newGCMStream(b, nonce, aad)
	g.hash(ct)
	sum := g.sum()
	if subtle.ConstantTimeCompare(sum[:len(tag)], tag) != 1 {
		return nil, ErrAuth
	}
	pt := make([]byte, len(ct))
	g.xorKeyStream(pt, ct)
	return pt, nil
}

// GCMStream is one GCM encryption fed part by part: Seal releases each part's
// ciphertext at once, Tag ends the message. It is not safe for concurrent
// use.
type GCMStream struct {
	b      cipher.Block
	h      [2]uint64 // hash subkey E(K, 0¹²⁸)
	y      [2]uint64 // GHASH accumulator
	part   [BlockSize]byte
	npart  int // ciphertext bytes in part, not yet hashed
	ctr    [BlockSize]byte
	ks     [BlockSize]byte
	nks    int // unused keystream bytes at the end of ks
	ekj0   [BlockSize]byte
	aadLen uint64
	ctLen  uint64
	done   bool
}

// NewGCMStream starts encrypting a message under b (AES) with nonce (any
// non-empty length) and additional data aad.
func NewGCMStream(b cipher.Block, nonce, aad []byte) (*GCMStream, error) {
	if err := checkGCM(b, nonce); err != nil {
		return nil, err
	}
	return newGCMStream(b, nonce, aad), nil
}

func newGCMStream(b cipher.Block, iv, aad []byte) *GCMStream {
	g := &GCMStream{b: b}
	var hb [BlockSize]byte
	b.Encrypt(hb[:], hb[:])
	g.h = [2]uint64{binary.BigEndian.Uint64(hb[:8]), binary.BigEndian.Uint64(hb[8:])}
	var j0 [BlockSize]byte
	if len(iv) == StdNonceSize {
		copy(j0[:], iv)
		j0[15] = 1
	} else {
		// J0 = GHASH(IV ‖ 0-pad ‖ [0]64 ‖ [len(IV)]64)
		g.hashPadded(iv)
		g.lengths(0, uint64(len(iv))*8)
		binary.BigEndian.PutUint64(j0[:8], g.y[0])
		binary.BigEndian.PutUint64(j0[8:], g.y[1])
		g.y = [2]uint64{}
	}
	b.Encrypt(g.ekj0[:], j0[:])
	g.ctr = j0
	gcmInc32(&g.ctr)
	g.hashPadded(aad)
	g.aadLen = uint64(len(aad))
	return g
}

// Len is the number of bytes sealed so far.
func (g *GCMStream) Len() uint64 { return g.ctLen }

// Seal encrypts src into dst, which must be at least as long (else
// ErrLength). A message past MaxBytes is ErrTooLong, and nothing of src is
// encrypted.
func (g *GCMStream) Seal(dst, src []byte) error {
	switch {
	case g.done:
		return ErrFinished
	case len(dst) < len(src):
		return fmt.Errorf("%w: GCM output buffer too short", ErrLength)
	case g.ctLen+uint64(len(src)) > MaxBytes:
		return ErrTooLong
	}
	g.xorKeyStream(dst, src)
	g.hash(dst[:len(src)])
	return nil
}

// Tag ends the message and returns its first size bytes of tag. The stream
// cannot be used after.
func (g *GCMStream) Tag(size int) ([]byte, error) {
	if g.done {
		return nil, ErrFinished
	}
	if err := checkTag(size); err != nil {
		return nil, err
	}
	g.done = true
	sum := g.sum()
	return sum[:size], nil
}

// xorKeyStream applies the CTR keystream. gcmInc32 wraps the low 32 bits only,
// unlike cipher.NewCTR, so J0 from a non-96-bit IV is handled right.
func (g *GCMStream) xorKeyStream(dst, src []byte) {
	for i := range src {
		if g.nks == 0 {
			g.b.Encrypt(g.ks[:], g.ctr[:])
			gcmInc32(&g.ctr)
			g.nks = BlockSize
		}
		dst[i] = src[i] ^ g.ks[BlockSize-g.nks]
		g.nks--
	}
}

// hash feeds ciphertext to GHASH, holding back a partial block.
func (g *GCMStream) hash(c []byte) {
	g.ctLen += uint64(len(c))
	for len(c) > 0 {
		n := copy(g.part[g.npart:], c)
		g.npart += n
		c = c[n:]
		if g.npart == BlockSize {
			g.block(g.part[:])
			g.npart = 0
		}
	}
}

// sum finishes GHASH and returns the full 16-byte tag; call it once.
func (g *GCMStream) sum() [BlockSize]byte {
	if g.npart > 0 {
		clear(g.part[g.npart:])
		g.block(g.part[:])
		g.npart = 0
	}
	g.lengths(g.aadLen*8, g.ctLen*8)
	var t [BlockSize]byte
	binary.BigEndian.PutUint64(t[:8], g.y[0])
	binary.BigEndian.PutUint64(t[8:], g.y[1])
	subtle.XORBytes(t[:], t[:], g.ekj0[:])
	return t
}

func (g *GCMStream) hashPadded(b []byte) {
	for len(b) >= BlockSize {
		g.block(b[:BlockSize])
		b = b[BlockSize:]
	}
	if len(b) > 0 {
		var last [BlockSize]byte
		copy(last[:], b)
		g.block(last[:])
	}
}

func (g *GCMStream) lengths(a, c uint64) {
	var l [BlockSize]byte
	binary.BigEndian.PutUint64(l[:8], a)
	binary.BigEndian.PutUint64(l[8:], c)
	g.block(l[:])
}

// block is one GHASH step: Y = (Y ⊕ X) · H.
func (g *GCMStream) block(x []byte) {
	g.y[0] ^= binary.BigEndian.Uint64(x[:8])
	g.y[1] ^= binary.BigEndian.Uint64(x[8:])
	g.y = gfMul(g.y, g.h)
}

// gfMul multiplies in GF(2¹²⁸) with the GCM bit order (SP 800-38D
// algorithm 1). It uses masks, not branches, on the bits of H and Y, which
// are secret.
func gfMul(x, y [2]uint64) [2]uint64 {
	var z [2]uint64
	v := y
	for i := 0; i < 128; i++ {
		w := x[i/64]
		bit := (w >> (63 - uint(i%64))) & 1
		m := -bit
		z[0] ^= v[0] & m
		z[1] ^= v[1] & m
		lsb := v[1] & 1
		v[1] = v[1]>>1 | v[0]<<63
		v[0] = v[0]>>1 ^ (0xe100000000000000 & -lsb)
	}
	return z
}

func gcmInc32(ctr *[BlockSize]byte) {
	binary.BigEndian.PutUint32(ctr[12:], binary.BigEndian.Uint32(ctr[12:])+1)
}
