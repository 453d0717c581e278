package secp256k1

import "errors"

// The curve y² = x³ + 7 over GF(p), SEC 2 v2 §2.4.1.
var (
	fp = newModulus("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f")
	fn = newModulus("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")

	gx = [32]byte{
		0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b, 0x07,
		0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8, 0x17, 0x98}
	gy = [32]byte{
		0x48, 0x3a, 0xda, 0x77, 0x26, 0xa3, 0xc4, 0x65, 0x5d, 0xa4, 0xfb, 0xfc, 0x0e, 0x11, 0x08, 0xa8,
		0xfd, 0x17, 0xb4, 0x48, 0xa6, 0x85, 0x54, 0x19, 0x9c, 0x47, 0xd0, 0x8f, 0xfb, 0x10, 0xd4, 0xb8}

	curveB  = fp.toMont(&limbs{7})
	curveB3 = fp.toMont(&limbs{21}) // 3·b, as the complete formulas use it
	// sqrtExp is (p + 1) / 4: p ≡ 3 (mod 4), so a square root of a square
	// a is a^((p+1)/4).
	sqrtExp = limbs{0xffffffffbfffff0c, 0xffffffffffffffff, 0xffffffffffffffff, 0x3fffffffffffffff}

	generator = mustAffine(gx, gy)
)

// errPoint is every malformed, off-curve or infinite point encoding; the
// caller says which key it was.
var errPoint = errors.New("secp256k1: invalid point encoding")

// point is a projective point (X:Y:Z), x = X/Z and y = Y/Z, coordinates in
// Montgomery form. The identity is (0:1:0).
type point struct{ x, y, z limbs }

func identity() point { return point{y: fp.one} }

func mustAffine(x, y [32]byte) point {
	p, err := fromAffine(x, y)
	if err != nil {
		panic(err)
	}
	return p
}

// fromAffine checks that (x, y) is a point of the curve: both coordinates
// below p, y² = x³ + 7. The identity has no affine form, so it cannot pass.
func fromAffine(xb, yb [32]byte) (point, error) {
	x, y := limbsFromBytes(&xb), limbsFromBytes(&yb)
	if fp.less(&x) == 0 || fp.less(&y) == 0 {
		return point{}, errPoint
	}
	x, y = fp.toMont(&x), fp.toMont(&y)
	rhs := curveRHS(&x)
	y2 := fp.sqr(&y)
	if equal(&y2, &rhs) == 0 {
		return point{}, errPoint
	}
	return point{x: x, y: y, z: fp.one}, nil
}

// curveRHS is x³ + 7.
func curveRHS(x *limbs) limbs {
	x2 := fp.sqr(x)
	x3 := fp.mul(&x2, x)
	return fp.add(&x3, &curveB)
}

// decodePoint reads a SEC 1 v2 §2.3.4 encoding: 04‖x‖y or, compressed,
// 02/03‖x. The identity (00) and anything off the curve are refused.
func decodePoint(b []byte) (point, error) {
	switch {
	case len(b) == 65 && b[0] == 4:
		return fromAffine([32]byte(b[1:33]), [32]byte(b[33:65]))
	case len(b) == 33 && (b[0] == 2 || b[0] == 3):
		x := limbsFromBytes((*[32]byte)(b[1:33]))
		if fp.less(&x) == 0 {
			return point{}, errPoint
		}
		x = fp.toMont(&x)
		rhs := curveRHS(&x)
		y := fp.exp(&rhs, &sqrtExp)
		if y2 := fp.sqr(&y); equal(&y2, &rhs) == 0 {
			return point{}, errPoint // x³ + 7 is not a square
		}
		plain := fp.fromMont(&y)
		if plain[0]&1 != uint64(b[0]&1) {
			zero := limbs{}
			y = fp.sub(&zero, &y)
		}
		return point{x: x, y: y, z: fp.one}, nil
	}
	return point{}, errPoint
}

// affine returns x and y as big-endian bytes, and ok = 0 for the identity.
func (p *point) affine() (x, y [32]byte, ok uint64) {
	zinv := fp.inv(&p.z)
	ax, ay := fp.mul(&p.x, &zinv), fp.mul(&p.y, &zinv)
	ax, ay = fp.fromMont(&ax), fp.fromMont(&ay)
	return ax.bytes(), ay.bytes(), 1 ^ isZero(&p.z)
}

// encode is the uncompressed SEC 1 encoding 04‖x‖y; p must not be the
// identity.
func (p *point) encode() []byte {
	x, y, _ := p.affine()
	out := make([]byte, 65)
	out[0] = 4
	copy(out[1:], x[:])
	copy(out[33:], y[:])
	return out
}

// add is P + Q for any P and Q (RCB 2015/1060 algorithm 7, a = 0).
func add(p, q *point) point {
	t0 := fp.mul(&p.x, &q.x)
	t1 := fp.mul(&p.y, &q.y)
	t2 := fp.mul(&p.z, &q.z)
	t3 := fp.add(&p.x, &p.y)
	t4 := fp.add(&q.x, &q.y)
	t3 = fp.mul(&t3, &t4)
	t4 = fp.add(&t0, &t1)
	t3 = fp.sub(&t3, &t4)
	t4 = fp.add(&p.y, &p.z)
	x3 := fp.add(&q.y, &q.z)
	t4 = fp.mul(&t4, &x3)
	x3 = fp.add(&t1, &t2)
	t4 = fp.sub(&t4, &x3)
	x3 = fp.add(&p.x, &p.z)
	y3 := fp.add(&q.x, &q.z)
	x3 = fp.mul(&x3, &y3)
	y3 = fp.add(&t0, &t2)
	y3 = fp.sub(&x3, &y3)
	x3 = fp.add(&t0, &t0)
	t0 = fp.add(&x3, &t0)
	t2 = fp.mul(&curveB3, &t2)
	z3 := fp.add(&t1, &t2)
	t1 = fp.sub(&t1, &t2)
	y3 = fp.mul(&curveB3, &y3)
	x3 = fp.mul(&t4, &y3)
	t2 = fp.mul(&t3, &t1)
	x3 = fp.sub(&t2, &x3)
	y3 = fp.mul(&y3, &t0)
	t1 = fp.mul(&t1, &z3)
	y3 = fp.add(&t1, &y3)
	t0 = fp.mul(&t0, &t3)
	z3 = fp.mul(&z3, &t4)
	z3 = fp.add(&z3, &t0)
	return point{x3, y3, z3}
}

// double is 2P (RCB 2015/1060 algorithm 9, a = 0).
func double(p *point) point {
	t0 := fp.sqr(&p.y)
	z3 := fp.add(&t0, &t0)
	z3 = fp.add(&z3, &z3)
	z3 = fp.add(&z3, &z3)
	t1 := fp.mul(&p.y, &p.z)
	t2 := fp.sqr(&p.z)
	t2 = fp.mul(&curveB3, &t2)
	x3 := fp.mul(&t2, &z3)
	y3 := fp.add(&t0, &t2)
	z3 = fp.mul(&t1, &z3)
	t1 = fp.add(&t2, &t2)
	t2 = fp.add(&t1, &t2)
	t0 = fp.sub(&t0, &t2)
	y3 = fp.mul(&t0, &y3)
	y3 = fp.add(&x3, &y3)
	t1 = fp.mul(&p.x, &p.y)
	x3 = fp.mul(&t0, &t1)
	x3 = fp.add(&x3, &x3)
	return point{x3, y3, z3}
}

// scalarMult is k·P for a 32-byte big-endian k (any value; k ≥ n wraps).
// Fixed 4-bit windows: always 256 doublings and 64 additions, and every
// table entry is read for every window, so neither timing nor memory
// access depends on k.
func scalarMult(p *point, k *[32]byte) point {
	var table [16]point
	table[0] = identity()
	table[1] = *p
	for i := 2; i < 16; i++ {
		table[i] = add(&table[i-1], p)
	}
	acc := identity()
	for _, b := range k {
		for _, w := range [2]byte{b >> 4, b & 15} {
			for range 4 {
				acc = double(&acc)
			}
			t := lookup(&table, w)
			acc = add(&acc, &t)
		}
	}
	return acc
}

// lookup returns table[w], reading all entries.
func lookup(table *[16]point, w byte) point {
	var out point
	for i := range table {
		d := uint64(byte(i) ^ w)
		hit := 1 ^ (d|-d)>>63
		out.x = sel(hit, &table[i].x, &out.x)
		out.y = sel(hit, &table[i].y, &out.y)
		out.z = sel(hit, &table[i].z, &out.z)
	}
	return out
}

// baseMult is k·G.
func baseMult(k *[32]byte) point { return scalarMult(&generator, k) }
