package kmipops

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// The Transparent RSA Private and Public Key formats (KMIP 1.4 §2.1.7.6,
// §2.1.7.7): the key's numbers as Big Integers in a Key Material structure.
// They convert to and from PKCS#1, PKCS#8 and X.509 (§2.1.7: a server that
// holds a key in one format serves it in another it supports), and a key
// registered in them can be used like any other.

// errTransparent is why transparent material is refused; it never carries
// the numbers.
var errTransparent = errors.New("transparent RSA key material is incomplete or inconsistent")

// readAsymmetric reads an asymmetric key's Key Material in format f: the
// transparent RSA structures here, the transparent EC ones in
// keyformat_transparent_ec.go, DER byte strings through parseAsymmetric.
// A format it does not read is errUnknownFormat.
func readAsymmetric(ot kmip14.ObjectType, f kmip14.KeyFormatType, km tree.View) (any, error) {
	switch {
	case ot == kmip14.ObjectTypePrivateKey && f == kmip14.KeyFormatTypeTransparentRSAPrivateKey:
		return transparentRSAPrivate(km)
	case ot == kmip14.ObjectTypePublicKey && f == kmip14.KeyFormatTypeTransparentRSAPublicKey:
		return transparentRSAPublic(km)
	}
	if private, ok := transparentEC(f); ok {
		return readTransparentEC(ot, private, km) // keyformat_transparent_ec.go
	}
	der, ok := km.BytesValue()
	if !ok {
		return nil, errUnknownFormat
	}
	return parseAsymmetric(ot, f, der)
}

// keyMaterialIn is key's Key Material in format want, if key can be put in
// it: a structure for the transparent formats, a byte string for DER.
func keyMaterialIn(ot kmip14.ObjectType, want kmip14.KeyFormatType, key any) (*tree.Node, bool) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if want == kmip14.KeyFormatTypeTransparentRSAPrivateKey {
			return transparentRSAPrivateNode(k)
		}
	case *rsa.PublicKey:
		if want == kmip14.KeyFormatTypeTransparentRSAPublicKey {
			return tree.Struct(kmip14.TagKeyMaterial,
				tree.Big(kmip14.TagModulus, new(big.Int).Set(k.N)),
				tree.Big(kmip14.TagPublicExponent, big.NewInt(int64(k.E)))), true
		}
	}
	if private, ok := transparentEC(want); ok {
		return transparentECNode(private, key)
	}
	b, ok := marshalAsymmetric(ot, want, key)
	if !ok {
		return nil, false
	}
	return tree.Bytes(kmip14.TagKeyMaterial, b), true
}

// maxRSABits bounds the numbers of a transparent key: an RSA operation's
// cost grows with the cube of the modulus size, so a client must not choose
// it freely. 16384 bits is the largest RSA key in common use (and crypto/rsa
// generates no larger).
const maxRSABits = 16384

// bigField reads an optional positive Big Integer field of km.
func bigField(km tree.View, tag ttlv.Tag) (*big.Int, bool, error) {
	n := km.Child(tag)
	if !n.Present() {
		return nil, false, nil
	}
	v, ok := n.BigValue()
	if !ok || v.Sign() <= 0 || v.BitLen() > maxRSABits {
		return nil, false, fmt.Errorf("%w: %s must be a positive Big Integer of at most %d bits", errTransparent, tree.TagName(tag), maxRSABits)
	}
	return v, true, nil
}

// publicExponent is e as rsa.PublicKey holds it: small and odd.
func publicExponent(e *big.Int) (int, error) {
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
		return 0, fmt.Errorf("%w: unsupported Public Exponent", errTransparent)
	}
	return int(e.Int64()), nil
}

func transparentRSAPublic(km tree.View) (*rsa.PublicKey, error) {
	if km.Type() != ttlv.TypeStructure {
		return nil, errUnknownFormat
	}
	n, hasN, err := bigField(km, kmip14.TagModulus)
	if err != nil {
		return nil, err
	}
	e, hasE, err := bigField(km, kmip14.TagPublicExponent)
	if err != nil {
		return nil, err
	}
	if !hasN || !hasE {
		return nil, fmt.Errorf("%w: a public key needs Modulus and Public Exponent", errTransparent)
	}
	ei, err := publicExponent(e)
	if err != nil {
		return nil, err
	}
	return &rsa.PublicKey{N: n, E: ei}, nil
}

// transparentRSAPrivate builds the private key from its fields. All but the
// Modulus are optional in KMIP; kmipd needs the primes P and Q and the
// Public Exponent, and derives the Private Exponent if it is absent. Fields
// given beyond those must agree with the key.
func transparentRSAPrivate(km tree.View) (*rsa.PrivateKey, error) {
	if km.Type() != ttlv.TypeStructure {
		return nil, errUnknownFormat
	}
	f := map[ttlv.Tag]*big.Int{}
	for _, tag := range []ttlv.Tag{kmip14.TagModulus, kmip14.TagPrivateExponent, kmip14.TagPublicExponent,
		kmip14.TagP, kmip14.TagQ, kmip14.TagPrimeExponentP, kmip14.TagPrimeExponentQ, kmip14.TagCRTCoefficient} {
		v, ok, err := bigField(km, tag)
		if err != nil {
			return nil, err
		}
		if ok {
			f[tag] = v
		}
	}
	n, e, p, q := f[kmip14.TagModulus], f[kmip14.TagPublicExponent], f[kmip14.TagP], f[kmip14.TagQ]
	if n == nil || e == nil || p == nil || q == nil {
		return nil, fmt.Errorf("%w: kmipd needs Modulus, Public Exponent, P and Q", errTransparent)
	}
	ei, err := publicExponent(e)
	if err != nil {
		return nil, err
	}
	one := big.NewInt(1)
	if new(big.Int).Mul(p, q).Cmp(n) != 0 || p.Cmp(one) <= 0 || q.Cmp(one) <= 0 {
		return nil, fmt.Errorf("%w: P × Q is not the Modulus", errTransparent)
	}
	d := f[kmip14.TagPrivateExponent]
	if d == nil {
		// d = e⁻¹ mod λ(n), λ(n) = lcm(p−1, q−1), as FIPS 186-5 A.1.1 has it.
		p1, q1 := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
		g := new(big.Int).GCD(nil, nil, p1, q1)
		lambda := new(big.Int).Mul(p1, new(big.Int).Div(q1, g))
		if d = new(big.Int).ModInverse(e, lambda); d == nil {
			return nil, fmt.Errorf("%w: Public Exponent has no inverse", errTransparent)
		}
	}
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: ei}, D: d, Primes: []*big.Int{p, q}}
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errTransparent, err)
	}
	k.Precompute()
	for tag, want := range map[ttlv.Tag]*big.Int{
		kmip14.TagPrimeExponentP: k.Precomputed.Dp, kmip14.TagPrimeExponentQ: k.Precomputed.Dq, kmip14.TagCRTCoefficient: k.Precomputed.Qinv,
	} {
		if v := f[tag]; v != nil && v.Cmp(want) != 0 {
			return nil, fmt.Errorf("%w: %s does not match P and Q", errTransparent, tree.TagName(tag))
		}
	}
	return k, nil
}

func transparentRSAPrivateNode(k *rsa.PrivateKey) (*tree.Node, bool) {
	if len(k.Primes) != 2 { // the format has no room for more primes
		return nil, false
	}
	if k.Precomputed.Dp == nil || k.Precomputed.Dq == nil || k.Precomputed.Qinv == nil {
		k.Precompute() // the key was parsed for this request alone
	}
	pc := k.Precomputed
	cp := func(v *big.Int) *big.Int { return new(big.Int).Set(v) }
	return tree.Struct(kmip14.TagKeyMaterial,
		tree.Big(kmip14.TagModulus, cp(k.N)),
		tree.Big(kmip14.TagPrivateExponent, cp(k.D)),
		tree.Big(kmip14.TagPublicExponent, big.NewInt(int64(k.E))),
		tree.Big(kmip14.TagP, cp(k.Primes[0])),
		tree.Big(kmip14.TagQ, cp(k.Primes[1])),
		tree.Big(kmip14.TagPrimeExponentP, cp(pc.Dp)),
		tree.Big(kmip14.TagPrimeExponentQ, cp(pc.Dq)),
		tree.Big(kmip14.TagCRTCoefficient, cp(pc.Qinv))), true
}
