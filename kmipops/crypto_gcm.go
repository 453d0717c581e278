package kmipops

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// GCM for KMIP. The common case (96-bit IV, one part) goes to Go's
// cipher.AEAD, which is constant time and hardware accelerated. gcmStream
// is GCM written out (NIST SP 800-38D) for the two things cipher.AEAD cannot
// do: release ciphertext part by part in a stream (CS-BC-M-GCM-3), and
// nonces other than 96 bits together with tags shorter than 16 bytes
// (CS-BC-M-GCM-2). It is slower, but only those requests use it.

const (
	gcmBlock    = 16
	gcmStdNonce = 12
	gcmMinTag   = 12 // SP 800-38D allows 4 and 8 only for special uses; KMIP clients do not need them
	gcmMaxTag   = 16
	gcmMaxNonce = 256 // bytes; anything longer is a client bug, not a nonce
	// gcmMaxBytes is SP 800-38D's plaintext limit, 2^39-256 bits.
	gcmMaxBytes = 1<<36 - 32
)

var errGCMAuth = errors.New("gcm: message authentication failed")

// gcmSeal encrypts pt and returns the ciphertext and a tagLen-byte tag.
func gcmSeal(b cipher.Block, iv, pt, aad []byte, tagLen int) (ct, tag []byte, err error) {
	if len(iv) == gcmStdNonce {
		a, err := cipher.NewGCMWithTagSize(b, tagLen)
		if err != nil {
			return nil, nil, err
		}
		out := a.Seal(nil, iv, pt, aad)
		return out[:len(pt)], out[len(pt):], nil
	}
	g := newGCMStream(b, iv, aad)
	ct = make([]byte, len(pt))
	g.seal(ct, pt)
	sum := g.sum()
	return ct, sum[:tagLen], nil
}

// gcmOpen checks tag (its length is the tag length) and decrypts ct.
func gcmOpen(b cipher.Block, iv, ct, aad, tag []byte) ([]byte, error) {
	if len(iv) == gcmStdNonce {
		a, err := cipher.NewGCMWithTagSize(b, len(tag))
		if err != nil {
			return nil, err
		}
		in := make([]byte, 0, len(ct)+len(tag))
		in = append(append(in, ct...), tag...)
		return a.Open(in[:0], iv, in, aad)
	}
	g := newGCMStream(b, iv, aad)
	g.hash(ct)
	sum := g.sum()
	if subtle.ConstantTimeCompare(sum[:len(tag)], tag) != 1 {
		return nil, errGCMAuth
	}
	pt := make([]byte, len(ct))
	g.xorKeyStream(pt, ct)
	return pt, nil
}

// gcmStream is one GCM computation: CTR keystream from gcmInc32(J0) and GHASH
// over the additional data and the ciphertext.
type gcmStream struct {
	b      cipher.Block
	h      [2]uint64 // hash subkey E(K, 0¹²⁸)
	y      [2]uint64 // GHASH accumulator
	part   [gcmBlock]byte
	npart  int // ciphertext bytes in part, not yet hashed
	ctr    [gcmBlock]byte
	ks     [gcmBlock]byte
	nks    int // unused keystream bytes at the end of ks
	ekj0   [gcmBlock]byte
	aadLen uint64
	ctLen  uint64
}

func newGCMStream(b cipher.Block, iv, aad []byte) *gcmStream {
	g := &gcmStream{b: b}
	var hb [gcmBlock]byte
	b.Encrypt(hb[:], hb[:])
	g.h = [2]uint64{binary.BigEndian.Uint64(hb[:8]), binary.BigEndian.Uint64(hb[8:])}
	var j0 [gcmBlock]byte
	if len(iv) == gcmStdNonce {
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

// seal encrypts a part; open would hash first, then decrypt.
func (g *gcmStream) seal(dst, src []byte) {
	g.xorKeyStream(dst, src)
	g.hash(dst[:len(src)])
}

// xorKeyStream applies the CTR keystream. gcmInc32 wraps the low 32 bits only,
// unlike cipher.NewCTR, so J0 from a non-96-bit IV is handled right.
func (g *gcmStream) xorKeyStream(dst, src []byte) {
	for i := range src {
		if g.nks == 0 {
			g.b.Encrypt(g.ks[:], g.ctr[:])
			gcmInc32(&g.ctr)
			g.nks = gcmBlock
		}
		dst[i] = src[i] ^ g.ks[gcmBlock-g.nks]
		g.nks--
	}
}

// hash feeds ciphertext to GHASH, holding back a partial block.
func (g *gcmStream) hash(c []byte) {
	g.ctLen += uint64(len(c))
	for len(c) > 0 {
		n := copy(g.part[g.npart:], c)
		g.npart += n
		c = c[n:]
		if g.npart == gcmBlock {
			g.block(g.part[:])
			g.npart = 0
		}
	}
}

// sum finishes GHASH and returns the full 16-byte tag.
func (g *gcmStream) sum() [gcmBlock]byte {
	if g.npart > 0 {
		clear(g.part[g.npart:])
		g.block(g.part[:])
		g.npart = 0
	}
	g.lengths(g.aadLen*8, g.ctLen*8)
	var t [gcmBlock]byte
	binary.BigEndian.PutUint64(t[:8], g.y[0])
	binary.BigEndian.PutUint64(t[8:], g.y[1])
	subtle.XORBytes(t[:], t[:], g.ekj0[:])
	return t
}

func (g *gcmStream) hashPadded(b []byte) {
	for len(b) >= gcmBlock {
		g.block(b[:gcmBlock])
		b = b[gcmBlock:]
	}
	if len(b) > 0 {
		var last [gcmBlock]byte
		copy(last[:], b)
		g.block(last[:])
	}
}

func (g *gcmStream) lengths(a, c uint64) {
	var l [gcmBlock]byte
	binary.BigEndian.PutUint64(l[:8], a)
	binary.BigEndian.PutUint64(l[8:], c)
	g.block(l[:])
}

// block is one GHASH step: Y = (Y ⊕ X) · H.
func (g *gcmStream) block(x []byte) {
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

func gcmInc32(ctr *[gcmBlock]byte) {
	binary.BigEndian.PutUint32(ctr[12:], binary.BigEndian.Uint32(ctr[12:])+1)
}
