package secp256k1

import (
	"bytes"
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"testing"
)

// The arithmetic is checked against math/big, an independent
// implementation, on edge values and seeded random ones.

var (
	bigP = mustBig("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f")
	bigN = mustBig("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
)

func mustBig(h string) *big.Int {
	x, ok := new(big.Int).SetString(h, 16)
	if !ok {
		panic(h)
	}
	return x
}

func toBig(x limbs) *big.Int {
	b := x.bytes()
	return new(big.Int).SetBytes(b[:])
}

func samples(m *big.Int, r *rand.Rand) []*big.Int {
	one := big.NewInt(1)
	out := []*big.Int{big.NewInt(0), one, big.NewInt(2), new(big.Int).Sub(m, one),
		new(big.Int).Sub(m, big.NewInt(2)), new(big.Int).Rsh(m, 1), new(big.Int).Lsh(one, 255),
		new(big.Int).Sub(new(big.Int).Lsh(one, 128), one)}
	for range 40 {
		var b [32]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		out = append(out, new(big.Int).Mod(new(big.Int).SetBytes(b[:]), m))
	}
	return out
}

func TestModularArithmetic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name string
		md   *modulus
		m    *big.Int
	}{{"p", fp, bigP}, {"n", fn, bigN}} {
		if toBig(c.md.m).Cmp(c.m) != 0 {
			t.Fatalf("%s: modulus limbs wrong", c.name)
		}
		xs := samples(c.m, r)
		for i, x := range xs {
			y := xs[(i*7+3)%len(xs)]
			xl, yl := limbsOf(x), limbsOf(y)
			xm, ym := c.md.toMont(&xl), c.md.toMont(&yl)
			check := func(op string, gotMont limbs, want *big.Int) {
				t.Helper()
				got := c.md.fromMont(&gotMont)
				if toBig(got).Cmp(new(big.Int).Mod(want, c.m)) != 0 {
					t.Fatalf("%s: %s(%x, %x) = %x, want %x", c.name, op, x, y, toBig(got), new(big.Int).Mod(want, c.m))
				}
			}
			check("add", c.md.add(&xm, &ym), new(big.Int).Add(x, y))
			check("sub", c.md.sub(&xm, &ym), new(big.Int).Sub(x, y))
			check("mul", c.md.mul(&xm, &ym), new(big.Int).Mul(x, y))
			if x.Sign() != 0 {
				check("inv", c.md.inv(&xm), new(big.Int).ModInverse(x, c.m))
			}
			if got := c.md.less(&xl); got != 1 {
				t.Fatalf("%s: less(%x) = 0", c.name, x)
			}
		}
		// reduceOnce covers every 256-bit value.
		all := limbs{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
		want := new(big.Int).Mod(new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)), c.m)
		if red := c.md.reduceOnce(&all); toBig(red).Cmp(want) != 0 {
			t.Fatalf("%s: reduceOnce(2^256-1) = %x", c.name, toBig(red))
		}
	}
	want := new(big.Int).Rsh(new(big.Int).Add(bigP, big.NewInt(1)), 2)
	if toBig(sqrtExp).Cmp(want) != 0 {
		t.Fatalf("sqrtExp is not (p+1)/4")
	}
}

// refPoint is affine arithmetic on math/big: nil is the identity.
type refPoint struct{ x, y *big.Int }

func refAdd(a, b *refPoint) *refPoint {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	var l *big.Int
	if a.x.Cmp(b.x) == 0 {
		if new(big.Int).Add(a.y, b.y).Mod(new(big.Int).Add(a.y, b.y), bigP).Sign() == 0 {
			return nil
		}
		num := new(big.Int).Mul(big.NewInt(3), new(big.Int).Mul(a.x, a.x))
		den := new(big.Int).ModInverse(new(big.Int).Lsh(a.y, 1), bigP)
		l = num.Mul(num, den)
	} else {
		num := new(big.Int).Sub(b.y, a.y)
		den := new(big.Int).ModInverse(new(big.Int).Mod(new(big.Int).Sub(b.x, a.x), bigP), bigP)
		l = num.Mul(num, den)
	}
	l.Mod(l, bigP)
	x := new(big.Int).Sub(new(big.Int).Mul(l, l), new(big.Int).Add(a.x, b.x))
	x.Mod(x, bigP)
	y := new(big.Int).Sub(new(big.Int).Mul(l, new(big.Int).Sub(a.x, x)), a.y)
	y.Mod(y, bigP)
	return &refPoint{x, y}
}

func refMult(k *big.Int, p *refPoint) *refPoint {
	var acc *refPoint
	for i := k.BitLen() - 1; i >= 0; i-- {
		acc = refAdd(acc, acc)
		if k.Bit(i) == 1 {
			acc = refAdd(acc, p)
		}
	}
	return acc
}

func toRef(p point) *refPoint {
	x, y, ok := p.affine()
	if ok == 0 {
		return nil
	}
	return &refPoint{new(big.Int).SetBytes(x[:]), new(big.Int).SetBytes(y[:])}
}

func sameRef(a, b *refPoint) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.x.Cmp(b.x) == 0 && a.y.Cmp(b.y) == 0
}

func TestPointArithmeticAgainstAffine(t *testing.T) {
	g := toRef(generator)
	if g.x.Cmp(new(big.Int).SetBytes(gx[:])) != 0 {
		t.Fatal("generator does not round-trip")
	}
	// n·G is the identity: the order is right and scalarMult wraps.
	nb := [32]byte(bigN.FillBytes(make([]byte, 32)))
	if id := baseMult(&nb); toRef(id) != nil {
		t.Fatal("n·G is not the identity")
	}
	r := rand.New(rand.NewPCG(3, 4))
	ks := samples(bigN, r)[:20]
	for _, k := range ks {
		kb := [32]byte(k.FillBytes(make([]byte, 32)))
		p := baseMult(&kb)
		if want := refMult(k, g); !sameRef(toRef(p), want) {
			t.Fatalf("%x·G differs from the affine reference", k)
		}
		// Complete formulas: doubling, the identity and P + (−P).
		d, s := double(&p), add(&p, &p)
		if !sameRef(toRef(d), toRef(s)) || !sameRef(toRef(d), refAdd(toRef(p), toRef(p))) {
			t.Fatalf("2P differs for k = %x", k)
		}
		id := identity()
		if !sameRef(toRef(add(&p, &id)), toRef(p)) || !sameRef(toRef(add(&id, &p)), toRef(p)) {
			t.Fatalf("P + O differs for k = %x", k)
		}
		zero := limbs{}
		neg := point{x: p.x, y: fp.sub(&zero, &p.y), z: p.z}
		if toRef(add(&p, &neg)) != nil {
			t.Fatalf("P + (−P) is not O for k = %x", k)
		}
	}
}

func TestKnownMultiples(t *testing.T) {
	for _, f := range readVectors(t, "multiples.txt", 2) {
		k := mustBig(f[0])
		kb := [32]byte(k.FillBytes(make([]byte, 32)))
		p := baseMult(&kb)
		want, _ := hex.DecodeString(f[1])
		x, y, ok := p.affine()
		got := append([]byte{2 | y[31]&1}, x[:]...)
		if ok != 1 || !bytes.Equal(got, want) {
			t.Errorf("%s·G = %x, want %s", f[0], got, f[1])
		}
		// The compressed encoding decodes to the same point.
		q, err := decodePoint(want)
		if err != nil || !sameRef(toRef(q), toRef(p)) {
			t.Errorf("decoding %s: %v", f[1], err)
		}
	}
	// 2G uncompressed, with its y.
	two := "04c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee51ae168fea63dc339a3c58419466ceaeef7f632653266d0e1236431a950cfe52a"
	kb := [32]byte{31: 2}
	p := baseMult(&kb)
	if got := hex.EncodeToString(p.encode()); got != two {
		t.Errorf("2G = %s", got)
	}
}
