package secp256k1

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
)

// BitSize is the size of the curve's field and order.
const BitSize = 256

var (
	// ErrPrivateKey is a private scalar outside [1, n−1].
	ErrPrivateKey = errors.New("secp256k1: private key out of range")
	// ErrPublicKey is a public key that is not a point of the curve (or is
	// the point at infinity).
	ErrPublicKey = errors.New("secp256k1: invalid public key")
	// ErrHash is a hash function that is not linked into the binary.
	ErrHash = errors.New("secp256k1: hash function not available")
)

// PublicKey is a point of the curve other than the identity.
type PublicKey struct {
	p point
	// enc is the uncompressed SEC 1 encoding, kept for Bytes and Equal.
	enc []byte
}

// PrivateKey is a scalar d in [1, n−1] and its public key d·G.
type PrivateKey struct {
	pub PublicKey
	d   [32]byte
}

// NewPublicKey reads a SEC 1 encoded point (uncompressed or compressed).
func NewPublicKey(b []byte) (*PublicKey, error) {
	p, err := decodePoint(b)
	if err != nil {
		return nil, ErrPublicKey
	}
	return &PublicKey{p: p, enc: p.encode()}, nil
}

// NewPrivateKey makes a key from its big-endian scalar: at most 32 bytes,
// or more with leading zeros.
func NewPrivateKey(d []byte) (*PrivateKey, error) {
	if len(d) > 32 {
		// Leading zeros only; checked without branching on their values.
		var high byte
		for _, b := range d[:len(d)-32] {
			high |= b
		}
		if high != 0 {
			return nil, ErrPrivateKey
		}
		d = d[len(d)-32:]
	}
	var k PrivateKey
	copy(k.d[32-len(d):], d)
	x := limbsFromBytes(&k.d)
	if isZero(&x) == 1 || fn.less(&x) == 0 {
		return nil, ErrPrivateKey
	}
	k.pub.p = baseMult(&k.d)
	k.pub.enc = k.pub.p.encode()
	return &k, nil
}

// GenerateKey draws a private key from r by rejection sampling: 32 bytes
// at a time until they form a scalar in [1, n−1] (a draw is rejected with
// probability about 2⁻¹²⁸), so the key is uniform.
func GenerateKey(r io.Reader) (*PrivateKey, error) {
	var b [32]byte
	for range 64 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		k, err := NewPrivateKey(b[:])
		clear(b[:])
		if err == nil {
			return k, nil
		}
	}
	return nil, errors.New("secp256k1: random source keeps producing invalid scalars")
}

// Bytes is the uncompressed SEC 1 encoding 04‖x‖y.
func (k *PublicKey) Bytes() []byte { return bytes.Clone(k.enc) }

// Equal reports whether x is the same public key.
func (k *PublicKey) Equal(x crypto.PublicKey) bool {
	o, ok := x.(*PublicKey)
	return ok && bytes.Equal(k.enc, o.enc)
}

// Public returns the public key.
func (k *PrivateKey) Public() crypto.PublicKey { return &k.pub }

// PublicKey returns the public key.
func (k *PrivateKey) PublicKey() *PublicKey { return &k.pub }

// Bytes is the private scalar, 32 bytes big-endian.
func (k *PrivateKey) Bytes() []byte { return bytes.Clone(k.d[:]) }

// Equal reports whether x is the same private key, in constant time.
func (k *PrivateKey) Equal(x crypto.PrivateKey) bool {
	o, ok := x.(*PrivateKey)
	return ok && subtle.ConstantTimeCompare(k.d[:], o.d[:]) == 1
}

// hashToScalar is SEC 1 §4.1.3 step 5 (and RFC 6979 bits2int): the
// leftmost 256 bits of the digest as an integer, then reduced mod n.
func hashToScalar(digest []byte) limbs {
	var b [32]byte
	if len(digest) >= 32 {
		copy(b[:], digest[:32])
	} else {
		copy(b[32-len(digest):], digest)
	}
	e := limbsFromBytes(&b)
	return fn.reduceOnce(&e)
}

// SignASN1 signs a digest made with h and returns the DER ECDSA-Sig-Value
// (SEC 1 v2 §4.1.3, C.5). The nonce is RFC 6979's, with HMAC-h.
func SignASN1(k *PrivateKey, h crypto.Hash, digest []byte) ([]byte, error) {
	r, s, err := sign(k, h, digest)
	if err != nil {
		return nil, err
	}
	return encodeSig(new(big.Int).SetBytes(r[:]), new(big.Int).SetBytes(s[:]))
}

// encodeSig is the DER ECDSA-Sig-Value (r and s are public).
func encodeSig(r, s *big.Int) ([]byte, error) {
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}

// sign returns r and s as 32-byte big-endian integers.
func sign(k *PrivateKey, h crypto.Hash, digest []byte) (r, s [32]byte, err error) {
	if !h.Available() {
		return r, s, ErrHash
	}
	e := hashToScalar(digest)
	em := fn.toMont(&e)
	dl := limbsFromBytes(&k.d)
	dm := fn.toMont(&dl)
	nonces := newRFC6979(h, &k.d, digest)
	for {
		kb := nonces.next()
		R := baseMult(&kb)
		x, _, _ := R.affine() // k ∈ [1, n−1], so R is never the identity
		rl := limbsFromBytes(&x)
		rl = fn.reduceOnce(&rl) // x < p < 2n
		if isZero(&rl) == 1 {
			continue
		}
		// s = k⁻¹ (e + r·d) mod n, in Montgomery form throughout.
		kl := limbsFromBytes(&kb)
		km := fn.toMont(&kl)
		kinv := fn.inv(&km)
		rm := fn.toMont(&rl)
		rd := fn.mul(&rm, &dm)
		sum := fn.add(&em, &rd)
		sm := fn.mul(&kinv, &sum)
		sl := fn.fromMont(&sm)
		clear(kb[:])
		if isZero(&sl) == 1 {
			continue
		}
		return rl.bytes(), sl.bytes(), nil
	}
}

// VerifyASN1 reports whether sig, a DER ECDSA-Sig-Value, is a valid
// signature of digest by k (SEC 1 v2 §4.1.4). Signatures that are not
// strict DER, or whose r or s is outside [1, n−1], are invalid.
func VerifyASN1(k *PublicKey, digest, sig []byte) bool {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &v)
	if err != nil || len(rest) != 0 {
		return false
	}
	// encoding/asn1 accepts some BER; the re-encoding must be the input.
	if again, err := asn1.Marshal(v); err != nil || !bytes.Equal(again, sig) {
		return false
	}
	if v.R.Sign() <= 0 || v.S.Sign() <= 0 || v.R.BitLen() > 256 || v.S.BitLen() > 256 {
		return false
	}
	var r, s [32]byte
	v.R.FillBytes(r[:])
	v.S.FillBytes(s[:])
	return verify(k, digest, &r, &s)
}

func verify(k *PublicKey, digest []byte, rb, sb *[32]byte) bool {
	r, s := limbsFromBytes(rb), limbsFromBytes(sb)
	if isZero(&r) == 1 || isZero(&s) == 1 || fn.less(&r) == 0 || fn.less(&s) == 0 {
		return false
	}
	e := hashToScalar(digest)
	em, rm, sm := fn.toMont(&e), fn.toMont(&r), fn.toMont(&s)
	w := fn.inv(&sm)
	u1m, u2m := fn.mul(&em, &w), fn.mul(&rm, &w)
	u1, u2 := fn.fromMont(&u1m), fn.fromMont(&u2m)
	u1b, u2b := u1.bytes(), u2.bytes()
	p1 := baseMult(&u1b)
	p2 := scalarMult(&k.p, &u2b)
	R := add(&p1, &p2)
	x, _, ok := R.affine()
	if ok == 0 {
		return false
	}
	v := limbsFromBytes(&x)
	v = fn.reduceOnce(&v)
	return equal(&v, &r) == 1
}

// rfc6979 is the nonce generator of RFC 6979 §3.2 for secp256k1 (qlen =
// rlen = 256 bits), with HMAC over the hash that made the digest.
type rfc6979 struct {
	h    crypto.Hash
	k, v []byte
}

func newRFC6979(h crypto.Hash, d *[32]byte, digest []byte) *rfc6979 {
	// bits2octets(h1) = int2octets(bits2int(h1) mod q).
	e := hashToScalar(digest)
	h1 := e.bytes()
	g := &rfc6979{h: h, k: make([]byte, h.Size()), v: bytes.Repeat([]byte{1}, h.Size())}
	g.k = g.mac(g.k, g.v, []byte{0}, d[:], h1[:]) // step d
	g.v = g.mac(g.k, g.v)                         // step e
	g.k = g.mac(g.k, g.v, []byte{1}, d[:], h1[:]) // step f
	g.v = g.mac(g.k, g.v)                         // step g
	return g
}

func (g *rfc6979) mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(g.h.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// next returns the next candidate k in [1, n−1] (step h), and prepares the
// one after it, as a rejected r or s requires.
func (g *rfc6979) next() [32]byte {
	for {
		var t []byte
		for len(t) < 32 {
			g.v = g.mac(g.k, g.v)
			t = append(t, g.v...)
		}
		var kb [32]byte
		copy(kb[:], t[:32])
		clear(t)
		g.k = g.mac(g.k, g.v, []byte{0})
		g.v = g.mac(g.k, g.v)
		kl := limbsFromBytes(&kb)
		if isZero(&kl) == 0 && fn.less(&kl) == 1 {
			return kb
		}
	}
}
