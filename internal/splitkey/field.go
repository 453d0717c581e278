package splitkey

import (
	"fmt"
	"io"
)

// field is GF(2^8) or GF(2^16) with its elements as width bytes of key
// material. An element is held in a uint16 (GF(2^16): u<<8 | v).
type field struct {
	width int
	mul   func(a, b uint16) uint16
	inv   func(a uint16) uint16
}

var (
	gf8  = field{width: 1, mul: func(a, b uint16) uint16 { return uint16(mulGF8(byte(a), byte(b), 0x1d)) }, inv: invGF8}
	gf16 = field{width: 2, mul: mulGF16, inv: invGF16}
)

// mulGF8 multiplies in GF(2)[x]/(x^8 + r(x)), r being poly's low byte
// (0x1d: x^4+x^3+x^2+1; 0x1b: FIPS 197's x^4+x^3+x+1), without branching
// on a or b.
func mulGF8(a, b, poly byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		b >>= 1
		a = a<<1 ^ poly&-(a>>7)
	}
	return p
}

// powGF8 raises a to e; e is public, so the square-and-multiply may branch on it.
func powGF8(a byte, e int, poly byte) byte {
	r := byte(1)
	for ; e > 0; e >>= 1 {
		if e&1 == 1 {
			r = mulGF8(r, a, poly)
		}
		a = mulGF8(a, a, poly)
	}
	return r
}

// invGF8 is a^254 = a^-1 in the 0x11D field (0 for 0).
func invGF8(a uint16) uint16 { return uint16(powGF8(byte(a), 254, 0x1d)) }

// gf16M is m = x^5+x^4+x^3+x = {3A}, the constant of KMIP's
// GF(2^16) = GF(2^8)[y]/(y^2+y+m) (§2.2.5); y^2+y+m is irreducible because
// m has trace 1 in the FIPS 197 field (the tests check that no y solves it).
const gf16M = 0x3a

func aesMul(a, b byte) byte { return mulGF8(a, b, 0x1b) }

// mulGF16: (ry+s)(uy+v) = ru·y^2 + (rv+su)y + sv with y^2 = y+m
//
//	= ((r+s)(u+v) + sv)·y + (ru·m + sv).
func mulGF16(a, b uint16) uint16 {
	r, s := byte(a>>8), byte(a)
	u, v := byte(b>>8), byte(b)
	sv := aesMul(s, v)
	hi := aesMul(r^s, u^v) ^ sv
	lo := aesMul(aesMul(r, u), gf16M) ^ sv
	return uint16(hi)<<8 | uint16(lo)
}

// invGF16: (uy+v)^-1 = u·d^-1·y + (u+v)·d^-1 with d = (u+v)v + m·u^2.
func invGF16(a uint16) uint16 {
	u, v := byte(a>>8), byte(a)
	d := aesMul(u^v, v) ^ aesMul(gf16M, aesMul(u, u))
	di := powGF8(d, 254, 0x1b)
	return uint16(aesMul(u, di))<<8 | uint16(aesMul(u^v, di))
}

func (f field) get(b []byte) uint16 {
	if f.width == 1 {
		return uint16(b[0])
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

func (f field) put(b []byte, v uint16) {
	if f.width == 1 {
		b[0] = byte(v)
		return
	}
	b[0], b[1] = byte(v>>8), byte(v)
}

// splitGF shares each width-byte piece of secret with its own random
// polynomial of degree k-1, evaluated at x = 1 … n.
func splitGF(rand io.Reader, f field, n, k int, secret []byte) ([][]byte, error) {
	coef := make([]byte, (k-1)*len(secret))
	if _, err := io.ReadFull(rand, coef); err != nil {
		return nil, fmt.Errorf("splitkey: random source: %w", err)
	}
	defer clear(coef)
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = make([]byte, len(secret))
		x := uint16(i + 1)
		for off := 0; off < len(secret); off += f.width {
			// Horner: ((a_{k-1}·x + a_{k-2})·x + … + a_1)·x + secret.
			var acc uint16
			for j := k - 2; j >= 0; j-- {
				acc = f.mul(acc, x) ^ f.get(coef[j*len(secret)+off:])
			}
			acc = f.mul(acc, x) ^ f.get(secret[off:])
			f.put(keys[i][off:], acc)
		}
	}
	return keys, nil
}

// joinGF interpolates at 0: secret = Σ_j y_j·Π_{m≠j} x_m/(x_m - x_j). The
// coefficients depend on the (public) identifiers only.
func joinGF(f field, parts []Part) []byte {
	lambda := make([]uint16, len(parts))
	for j, pj := range parts {
		num, den := uint16(1), uint16(1)
		for m, pm := range parts {
			if m == j {
				continue
			}
			num = f.mul(num, uint16(pm.ID))
			den = f.mul(den, uint16(pm.ID)^uint16(pj.ID))
		}
		lambda[j] = f.mul(num, f.inv(den))
	}
	n := len(parts[0].Key)
	out := make([]byte, n)
	for off := 0; off < n; off += f.width {
		var acc uint16
		for j, p := range parts {
			acc ^= f.mul(lambda[j], f.get(p.Key[off:]))
		}
		f.put(out[off:], acc)
	}
	return out
}
