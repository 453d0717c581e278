package secp256k1

import (
	"encoding/binary"
	"math/big"
	"math/bits"
)

// limbs is a 256-bit number, least significant limb first.
type limbs [4]uint64

// modulus is an odd modulus m with 2^255 < m < 2^256 (p and n of
// secp256k1) and what Montgomery multiplication by R = 2^256 needs.
// Elements are kept fully reduced (< m) and in Montgomery form (x·R mod m).
type modulus struct {
	m     limbs
	m0inv uint64 // −m⁻¹ mod 2^64
	rr    limbs  // R² mod m, to enter Montgomery form
	one   limbs  // R mod m: 1 in Montgomery form
	mm2   limbs  // m − 2: the exponent of Fermat inversion
}

// newModulus derives the constants from m's hex digits. It runs once per
// modulus at package initialisation, on public values only.
func newModulus(hex string) *modulus {
	m, ok := new(big.Int).SetString(hex, 16)
	if !ok || m.Bit(0) == 0 || m.BitLen() != 256 {
		panic("secp256k1: bad modulus " + hex)
	}
	md := &modulus{m: limbsOf(m)}
	r := new(big.Int).Lsh(big.NewInt(1), 256)
	md.one = limbsOf(new(big.Int).Mod(r, m))
	md.rr = limbsOf(new(big.Int).Mod(new(big.Int).Mul(r, r), m))
	md.mm2 = limbsOf(new(big.Int).Sub(m, big.NewInt(2)))
	// Newton's iteration for m⁻¹ mod 2^64 doubles the correct bits each step.
	inv := md.m[0]
	for range 6 {
		inv *= 2 - md.m[0]*inv
	}
	md.m0inv = -inv
	return md
}

func limbsOf(x *big.Int) limbs {
	var b [32]byte
	x.FillBytes(b[:])
	return limbsFromBytes(&b)
}

// limbsFromBytes reads 32 big-endian bytes.
func limbsFromBytes(b *[32]byte) limbs {
	return limbs{
		binary.BigEndian.Uint64(b[24:]), binary.BigEndian.Uint64(b[16:]),
		binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[0:]),
	}
}

// bytes writes x as 32 big-endian bytes.
func (x *limbs) bytes() [32]byte {
	var b [32]byte
	binary.BigEndian.PutUint64(b[0:], x[3])
	binary.BigEndian.PutUint64(b[8:], x[2])
	binary.BigEndian.PutUint64(b[16:], x[1])
	binary.BigEndian.PutUint64(b[24:], x[0])
	return b
}

// less reports (as 1 or 0) whether x < m, without branching on x.
func (md *modulus) less(x *limbs) uint64 {
	var b uint64
	_, b = bits.Sub64(x[0], md.m[0], b)
	_, b = bits.Sub64(x[1], md.m[1], b)
	_, b = bits.Sub64(x[2], md.m[2], b)
	_, b = bits.Sub64(x[3], md.m[3], b)
	return b
}

// reduceOnce returns x mod m for any x < 2m (every 256-bit x, as m > 2^255).
func (md *modulus) reduceOnce(x *limbs) limbs {
	return md.subIfNotBelow(x, 0)
}

// subIfNotBelow returns hi·2^256 + x − m if that is ≥ 0, else x; hi is 0 or 1.
func (md *modulus) subIfNotBelow(x *limbs, hi uint64) limbs {
	var d limbs
	var b uint64
	d[0], b = bits.Sub64(x[0], md.m[0], b)
	d[1], b = bits.Sub64(x[1], md.m[1], b)
	d[2], b = bits.Sub64(x[2], md.m[2], b)
	d[3], b = bits.Sub64(x[3], md.m[3], b)
	_, b = bits.Sub64(hi, 0, b)
	// b = 1: x (with hi) was below m, keep it.
	keep := -b
	var z limbs
	for i := range z {
		z[i] = x[i]&keep | d[i]&^keep
	}
	return z
}

// add returns x + y mod m.
func (md *modulus) add(x, y *limbs) limbs {
	var t limbs
	var c uint64
	t[0], c = bits.Add64(x[0], y[0], c)
	t[1], c = bits.Add64(x[1], y[1], c)
	t[2], c = bits.Add64(x[2], y[2], c)
	t[3], c = bits.Add64(x[3], y[3], c)
	return md.subIfNotBelow(&t, c)
}

// sub returns x − y mod m.
func (md *modulus) sub(x, y *limbs) limbs {
	var t limbs
	var b uint64
	t[0], b = bits.Sub64(x[0], y[0], b)
	t[1], b = bits.Sub64(x[1], y[1], b)
	t[2], b = bits.Sub64(x[2], y[2], b)
	t[3], b = bits.Sub64(x[3], y[3], b)
	mask := -b // add m back when it went below zero
	var c uint64
	t[0], c = bits.Add64(t[0], md.m[0]&mask, c)
	t[1], c = bits.Add64(t[1], md.m[1]&mask, c)
	t[2], c = bits.Add64(t[2], md.m[2]&mask, c)
	t[3], _ = bits.Add64(t[3], md.m[3]&mask, c)
	return t
}

// mul returns x·y·R⁻¹ mod m (CIOS Montgomery multiplication, unrolled
// over the limbs of x).
func (md *modulus) mul(x, y *limbs) limbs {
	m0, m1, m2, m3 := md.m[0], md.m[1], md.m[2], md.m[3]
	x0, x1, x2, x3 := x[0], x[1], x[2], x[3]
	var t0, t1, t2, t3, t4 uint64
	for _, yi := range y {
		// t += x·yi
		var c, t5, k uint64
		c, t0 = madd(x0, yi, t0, 0)
		c, t1 = madd(x1, yi, t1, c)
		c, t2 = madd(x2, yi, t2, c)
		c, t3 = madd(x3, yi, t3, c)
		t4, t5 = bits.Add64(t4, c, 0)
		// t = (t + q·m) / 2^64, q chosen so that the low limb vanishes.
		q := t0 * md.m0inv
		c, _ = madd(q, m0, t0, 0)
		c, t0 = madd(q, m1, t1, c)
		c, t1 = madd(q, m2, t2, c)
		c, t2 = madd(q, m3, t3, c)
		t3, k = bits.Add64(t4, c, 0)
		t4 = t5 + k
	}
	// t < 2m: one conditional subtraction.
	r := limbs{t0, t1, t2, t3}
	return md.subIfNotBelow(&r, t4)
}

// madd returns a·b + c + d as two limbs; it cannot overflow 128 bits.
func madd(a, b, c, d uint64) (hi, lo uint64) {
	hi, lo = bits.Mul64(a, b)
	var k uint64
	lo, k = bits.Add64(lo, c, 0)
	hi += k
	lo, k = bits.Add64(lo, d, 0)
	hi += k
	return hi, lo
}

func (md *modulus) sqr(x *limbs) limbs { return md.mul(x, x) }

// toMont enters Montgomery form; x must be < m.
func (md *modulus) toMont(x *limbs) limbs { return md.mul(x, &md.rr) }

// fromMont leaves Montgomery form.
func (md *modulus) fromMont(x *limbs) limbs {
	one := limbs{1}
	return md.mul(x, &one)
}

// exp returns x^e for a public exponent e (Montgomery form in and out):
// the branches follow e's bits, never x's.
func (md *modulus) exp(x *limbs, e *limbs) limbs {
	z := md.one
	for i := 255; i >= 0; i-- {
		z = md.sqr(&z)
		if e[i/64]>>(uint(i)%64)&1 == 1 {
			z = md.mul(&z, x)
		}
	}
	return z
}

// inv returns x⁻¹ (0 for 0) by Fermat's little theorem; m is prime.
func (md *modulus) inv(x *limbs) limbs { return md.exp(x, &md.mm2) }

// isZero reports (as 1 or 0) whether x is 0, without branching.
func isZero(x *limbs) uint64 {
	v := x[0] | x[1] | x[2] | x[3]
	return 1 ^ (v|-v)>>63
}

// equal reports (as 1 or 0) whether x = y.
func equal(x, y *limbs) uint64 {
	d := limbs{x[0] ^ y[0], x[1] ^ y[1], x[2] ^ y[2], x[3] ^ y[3]}
	return isZero(&d)
}

// sel returns x if c is 1 and y if c is 0.
func sel(c uint64, x, y *limbs) limbs {
	mask := -c
	return limbs{
		x[0]&mask | y[0]&^mask, x[1]&mask | y[1]&^mask,
		x[2]&mask | y[2]&^mask, x[3]&mask | y[3]&^mask,
	}
}
