package splitkey

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The OASIS KMIP 1.2 test cases' own bytes. TC_SJ_2_12 registers
// 0102…10, splits it 2-of-4 with Polynomial Sharing GF(2^8) and reads the
// four parts back (the server's random draw, recorded); TC_SJ_3_12
// registers those same four parts and joins parts 1 and 3 to 0102…10.
// TC_SJ_4_12 does the same with XOR, 4-of-4.
var (
	sjSecret  = "0102030405060708090a0b0c0d0e0f10"
	sjGF8Keys = []string{
		"66C46A7754F94DE420C7B1A7FFF5EC56",
		"CF93D1E2A7E593CD5B8D6247F4E5D49C",
		"A855B891F61AD9217240D8EC061E37DA",
		"803DBAD55CDD329FAD19D99AE2C5A415",
	}
	sjXORKeys = []string{
		"d4b92c299199298e30dee13b967e6dda",
		"35ea4f615686230c7b11538693674e89",
		"3478ddd2e1f89f2005011d26d9fff37c",
		"d429bd9e23e192aa47c4a497d1e8df3f",
	}
)

func TestOASISGF8Parts(t *testing.T) {
	p := Params{Method: PolynomialSharingGF28, Parts: 4, Threshold: 2}
	parts := make([]Part, 4)
	for i, k := range sjGF8Keys {
		parts[i] = Part{Params: p, ID: i + 1, Key: unhex(t, k)}
	}
	// Every pair joins, in either order, and so do all four together.
	for i := range parts {
		for j := range parts {
			if i == j {
				continue
			}
			got, err := Join([]Part{parts[i], parts[j]}, 16)
			if err != nil {
				t.Fatalf("parts %d,%d: %v", i+1, j+1, err)
			}
			if hex.EncodeToString(got) != sjSecret {
				t.Errorf("parts %d,%d join to %x, want %s", i+1, j+1, got, sjSecret)
			}
		}
	}
	if got, err := Join(parts, 0); err != nil || hex.EncodeToString(got) != sjSecret {
		t.Errorf("all four parts: %x, %v", got, err)
	}
	// TC_SJ_3_12 step 7: one part of a 2-of-4 split is refused.
	if _, err := Join(parts[2:3], 16); !errors.Is(err, ErrThreshold) {
		t.Errorf("one part: %v, want ErrThreshold", err)
	}
}

// TestGF8Polynomial: of every irreducible degree-8 polynomial, only 0x11D
// makes the OASIS parts agree; a regression to FIPS 197's 0x11B fails here.
func TestGF8Polynomial(t *testing.T) {
	k1, k2 := unhex(t, sjGF8Keys[0]), unhex(t, sjGF8Keys[1])
	// Threshold 2 at x=1,2: s = y1·2/(2+1) + y2·1/(1+2).
	for _, poly := range []byte{0x1b, 0x1d} {
		c1 := mulGF8(2, powGF8(3, 254, poly), poly)
		c2 := powGF8(3, 254, poly)
		got := make([]byte, 16)
		for i := range got {
			got[i] = mulGF8(c1, k1[i], poly) ^ mulGF8(c2, k2[i], poly)
		}
		if match := hex.EncodeToString(got) == sjSecret; match != (poly == 0x1d) {
			t.Errorf("poly 0x1%02x: join %x (match %v)", poly, got, match)
		}
	}
}

func TestOASISXORParts(t *testing.T) {
	p := Params{Method: XOR, Parts: 4, Threshold: 4}
	var parts []Part
	for i, k := range sjXORKeys {
		parts = append(parts, Part{Params: p, ID: i + 1, Key: unhex(t, k)})
	}
	// TC_SJ_4_12 joins them in the order 4, 3, 2, 1.
	rev := []Part{parts[3], parts[2], parts[1], parts[0]}
	if got, err := Join(rev, 16); err != nil || hex.EncodeToString(got) != sjSecret {
		t.Errorf("XOR join: %x, %v", got, err)
	}
	if _, err := Join(parts[:3], 16); !errors.Is(err, ErrThreshold) {
		t.Errorf("three of four XOR parts: %v, want ErrThreshold", err)
	}
}

// TestFIPS197Subfield: GF(2^16)'s elements 0y+v multiply as FIPS 197's
// GF(2^8) (its §4.2 example {57}•{83} = {c1}), and y^2+y+m has no root
// there, so KMIP's construction is a field.
func TestFIPS197Subfield(t *testing.T) {
	if got := mulGF16(0x57, 0x83); got != 0xc1 {
		t.Errorf("{57}•{83} = %#x, want 0xc1", got)
	}
	for y := 0; y < 256; y++ {
		if aesMul(byte(y), byte(y))^byte(y)^gf16M == 0 {
			t.Fatalf("y^2+y+m has the root %#x: not irreducible", y)
		}
	}
	// y·y = y + m.
	if got := mulGF16(0x0100, 0x0100); got != 0x0100|gf16M {
		t.Errorf("y·y = %#x, want %#x", got, 0x0100|gf16M)
	}
}

func TestFieldInverses(t *testing.T) {
	for a := 1; a < 1<<16; a++ {
		if got := mulGF16(uint16(a), invGF16(uint16(a))); got != 1 {
			t.Fatalf("GF(2^16): %#x · inv = %#x", a, got)
		}
		if a < 256 {
			if got := gf8.mul(uint16(a), invGF8(uint16(a))); got != 1 {
				t.Fatalf("GF(2^8): %#x · inv = %#x", a, got)
			}
		}
	}
	// Spot-check commutativity and associativity on random elements.
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 2000 {
		a, b, c := uint16(r.Uint32()), uint16(r.Uint32()), uint16(r.Uint32())
		if mulGF16(a, b) != mulGF16(b, a) || mulGF16(mulGF16(a, b), c) != mulGF16(a, mulGF16(b, c)) {
			t.Fatalf("GF(2^16) not commutative/associative at %#x %#x %#x", a, b, c)
		}
		if mulGF16(a, b^c) != mulGF16(a, b)^mulGF16(a, c) {
			t.Fatalf("GF(2^16) not distributive at %#x %#x %#x", a, b, c)
		}
	}
}

// TestPrimeFieldByHand: p = 257, secret 0x42 = 66, f(x) = 66 + 5x:
// f(2) = 76, f(3) = 81 (one byte each would not do: parts are as wide as p).
func TestPrimeFieldByHand(t *testing.T) {
	p := Params{Method: PolynomialSharingPrimeField, Parts: 3, Threshold: 2, Prime: big.NewInt(257)}
	parts := []Part{{Params: p, ID: 2, Key: []byte{0, 76}}, {Params: p, ID: 3, Key: []byte{0, 81}}}
	got, err := Join(parts, 1)
	if err != nil || !bytes.Equal(got, []byte{0x42}) {
		t.Errorf("join: %x, %v; want 42", got, err)
	}
	// A share not below p is not a share.
	parts[1].Key = []byte{1, 1}
	if _, err := Join(parts, 1); !errors.Is(err, ErrParameter) {
		t.Errorf("share 257: %v, want ErrParameter", err)
	}
}

// TestRoundTrip: every method, every threshold-sized subset joins to the
// secret; every smaller subset is refused; and, with the count check out of
// the way, interpolating threshold-1 parts does not land on the secret.
func TestRoundTrip(t *testing.T) {
	q, _ := new(big.Int).SetString("340282366920938463463374607431768211507", 10) // 2^128 + 51, prime
	cases := []Params{
		{Method: XOR, Parts: 1, Threshold: 1},
		{Method: XOR, Parts: 5, Threshold: 5},
		{Method: PolynomialSharingGF28, Parts: 5, Threshold: 3},
		{Method: PolynomialSharingGF28, Parts: 6, Threshold: 1},
		{Method: PolynomialSharingGF28, Parts: 6, Threshold: 6},
		{Method: PolynomialSharingGF216, Parts: 5, Threshold: 3},
		{Method: PolynomialSharingGF216, Parts: 4, Threshold: 2},
		{Method: PolynomialSharingPrimeField, Parts: 5, Threshold: 3, Prime: q},
	}
	for _, p := range cases {
		secret := make([]byte, 16)
		rand.Read(secret)
		parts, err := Split(rand.Reader, p, secret)
		if err != nil {
			t.Fatalf("%v %d-of-%d: %v", p.Method, p.Threshold, p.Parts, err)
		}
		if len(parts) != p.Parts {
			t.Fatalf("%v: %d parts", p.Method, len(parts))
		}
		for mask := 1; mask < 1<<p.Parts; mask++ {
			var sub []Part
			for i := range parts {
				if mask&(1<<i) != 0 {
					sub = append(sub, parts[i])
				}
			}
			got, err := Join(sub, 16)
			switch {
			case len(sub) >= p.Threshold:
				if err != nil || !bytes.Equal(got, secret) {
					t.Errorf("%v %d-of-%d, parts %b: %x, %v", p.Method, p.Threshold, p.Parts, mask, got, err)
				}
			case !errors.Is(err, ErrThreshold) || got != nil:
				t.Errorf("%v %d-of-%d, parts %b: got (%x, %v), want ErrThreshold", p.Method, p.Threshold, p.Parts, mask, got, err)
			}
		}
		if p.Threshold > 1 && p.Method != XOR {
			if got := interpolate(t, p, parts[:p.Threshold-1]); bytes.Equal(got, secret) {
				t.Errorf("%v: %d parts of a %d-threshold split give the secret", p.Method, p.Threshold-1, p.Threshold)
			}
		}
	}
}

// interpolate bypasses Join's threshold check.
func interpolate(t *testing.T, p Params, parts []Part) []byte {
	switch p.Method {
	case PolynomialSharingGF28:
		return joinGF(gf8, parts)
	case PolynomialSharingGF216:
		return joinGF(gf16, parts)
	default:
		out, err := joinPrime(p.Prime, parts, 17)
		if err != nil {
			t.Fatal(err)
		}
		return out[1:]
	}
}

// TestPartsLookRandom: one part of a 2-of-n split of a fixed secret takes
// (nearly) every byte value over many splits; a split that leaked the
// secret into a single part would not.
func TestPartsLookRandom(t *testing.T) {
	secret := []byte{0x5a, 0x5a}
	for _, m := range []Method{PolynomialSharingGF28, PolynomialSharingGF216, XOR} {
		p := Params{Method: m, Parts: 2, Threshold: 2}
		seen := map[byte]bool{}
		for range 3000 {
			parts, err := Split(rand.Reader, p, secret)
			if err != nil {
				t.Fatal(err)
			}
			seen[parts[0].Key[1]] = true
		}
		if len(seen) < 250 {
			t.Errorf("%v: part 1 took only %d byte values", m, len(seen))
		}
	}
}

func TestBadParameters(t *testing.T) {
	q := big.NewInt(65537)
	secret := []byte{1, 2, 3, 4}
	bad := []Params{
		{Method: XOR, Parts: 0, Threshold: 0},
		{Method: XOR, Parts: 3, Threshold: 2},
		{Method: PolynomialSharingGF28, Parts: 3, Threshold: 4},
		{Method: PolynomialSharingGF28, Parts: 3, Threshold: 0},
		{Method: PolynomialSharingGF28, Parts: 256, Threshold: 2},
		{Method: PolynomialSharingGF216, Parts: MaxParts + 1, Threshold: 2},
		{Method: PolynomialSharingPrimeField, Parts: 3, Threshold: 2},
		{Method: PolynomialSharingPrimeField, Parts: 3, Threshold: 2, Prime: big.NewInt(65536)},
		{Method: PolynomialSharingPrimeField, Parts: 3, Threshold: 2, Prime: big.NewInt(257)}, // not above 2^32
		{Method: PolynomialSharingPrimeField, Parts: 3, Threshold: 2, Prime: big.NewInt(-7)},
		{Method: PolynomialSharingGF28, Parts: 3, Threshold: 2, Prime: q},
		{Method: 9, Parts: 3, Threshold: 2},
	}
	for _, p := range bad {
		if parts, err := Split(rand.Reader, p, secret); !errors.Is(err, ErrParameter) || parts != nil {
			t.Errorf("%+v: %v, want ErrParameter", p, err)
		}
	}
	if _, err := Split(rand.Reader, Params{Method: PolynomialSharingGF216, Parts: 3, Threshold: 2}, []byte{1, 2, 3}); !errors.Is(err, ErrParameter) {
		t.Errorf("odd-length GF(2^16) secret: %v", err)
	}
	if _, err := Split(rand.Reader, Params{Method: XOR, Parts: 2, Threshold: 2}, nil); !errors.Is(err, ErrParameter) {
		t.Errorf("empty secret: %v", err)
	}
	if _, err := Split(bytes.NewReader(nil), Params{Method: PolynomialSharingGF28, Parts: 3, Threshold: 2}, secret); err == nil {
		t.Errorf("exhausted random source: no error")
	}
}

func TestJoinRefusesMismatches(t *testing.T) {
	p := Params{Method: PolynomialSharingGF28, Parts: 3, Threshold: 2}
	parts, err := Split(rand.Reader, p, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	other := parts[1]
	other.Threshold = 3
	short := parts[1]
	short.Key = short.Key[:15]
	dup := parts[0]
	out := parts[1]
	out.ID = 4
	zero := parts[1]
	zero.ID = 0
	for name, c := range map[string]struct {
		parts []Part
		n     int
	}{
		"different threshold": {[]Part{parts[0], other}, 16},
		"different lengths":   {[]Part{parts[0], short}, 16},
		"same part twice":     {[]Part{parts[0], dup}, 16},
		"identifier too high": {[]Part{parts[0], out}, 16},
		"identifier zero":     {[]Part{parts[0], zero}, 16},
		"wrong secret length": {parts[:2], 32},
	} {
		if got, err := Join(c.parts, c.n); !errors.Is(err, ErrParameter) || got != nil {
			t.Errorf("%s: (%x, %v), want ErrParameter", name, got, err)
		}
	}
	if _, err := Join(nil, 16); !errors.Is(err, ErrThreshold) {
		t.Errorf("no parts: %v", err)
	}
	pp := Params{Method: PolynomialSharingPrimeField, Parts: 2, Threshold: 2, Prime: big.NewInt(65537)}
	if _, err := Join([]Part{{Params: pp, ID: 1, Key: []byte{0, 0, 1}}, {Params: pp, ID: 2, Key: []byte{0, 0, 2}}}, 0); !errors.Is(err, ErrParameter) {
		t.Errorf("prime field without a secret length: %v", err)
	}
}

// FuzzJoin: whatever the parts, Join answers with an error or a secret,
// never a panic.
func FuzzJoin(f *testing.F) {
	f.Add(uint8(4), uint8(2), uint8(2), []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8}, uint8(1), uint8(2), uint16(0))
	f.Add(uint8(3), uint8(3), uint8(3), []byte{1}, []byte{2}, uint8(1), uint8(3), uint16(257))
	f.Fuzz(func(t *testing.T, method, parts, threshold uint8, k1, k2 []byte, id1, id2 uint8, prime uint16) {
		p := Params{Method: Method(method % 6), Parts: int(parts), Threshold: int(threshold)}
		if prime != 0 {
			p.Prime = big.NewInt(int64(prime))
		}
		Join([]Part{{Params: p, ID: int(id1), Key: k1}, {Params: p, ID: int(id2), Key: k2}}, len(k1))
	})
}
