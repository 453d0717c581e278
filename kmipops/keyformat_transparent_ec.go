package kmipops

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"math/big"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/internal/secp256k1"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// The transparent elliptic-curve formats: KMIP 1.0 §2.1.7.9–2.1.7.14
// (Transparent ECDSA, ECDH and ECMQV Private / Public Key) and KMIP 1.3
// §2.1.7.9–2.1.7.10 (Transparent EC Private / Public Key, which 1.3 added and
// deprecated the three others with). All have the same Key Material: a
// Recommended Curve and, for a private key, the scalar D (Big Integer), for a
// public key the point Q String (Byte String, X9.62 / SEC 1 encoding). They
// convert to and from EC Private Key, PKCS#8 and X.509 like the DER formats,
// and a key registered in them is usable, on the curves kmipd computes with.

// transparentEC says whether f is one of those formats and which half it holds.
func transparentEC(f kmip14.KeyFormatType) (private, ok bool) {
	switch f {
	case kmip14.KeyFormatTypeTransparentECDSAPrivateKey, kmip14.KeyFormatTypeTransparentECDHPrivateKey,
		kmip14.KeyFormatTypeTransparentECMQVPrivateKey, kmip14.KeyFormatTypeTransparentECPrivateKey:
		return true, true
	case kmip14.KeyFormatTypeTransparentECDSAPublicKey, kmip14.KeyFormatTypeTransparentECDHPublicKey,
		kmip14.KeyFormatTypeTransparentECMQVPublicKey, kmip14.KeyFormatTypeTransparentECPublicKey:
		return false, true
	}
	return false, false
}

// nistCurves are the Recommended Curves crypto/ecdsa computes with.
var nistCurves = map[kmip14.RecommendedCurve]elliptic.Curve{
	kmip14.RecommendedCurveP_224: elliptic.P224(), kmip14.RecommendedCurveP_256: elliptic.P256(),
	kmip14.RecommendedCurveP_384: elliptic.P384(), kmip14.RecommendedCurveP_521: elliptic.P521(),
}

func recommendedCurveOf(c elliptic.Curve) (kmip14.RecommendedCurve, bool) {
	for rc, nc := range nistCurves {
		if nc == c {
			return rc, true
		}
	}
	return 0, false
}

// errTransparentEC is why transparent EC material is refused; it never carries
// the numbers.
var errTransparentEC = errors.New("transparent EC key material is malformed or not on its curve")

// readTransparentEC reads a transparent EC Key Material of object type ot.
// A curve kmipd does not compute with (P-192, the binary and Brainpool
// curves) is errUnknownFormat: the key is kept as registered, not used.
func readTransparentEC(ot kmip14.ObjectType, private bool, km tree.View) (any, error) {
	if km.Type() != ttlv.TypeStructure || private != (ot == kmip14.ObjectTypePrivateKey) {
		return nil, errUnknownFormat
	}
	rc32, ok := km.Child(kmip14.TagRecommendedCurve).EnumValue()
	if !ok {
		return nil, fmt.Errorf("%w: Recommended Curve missing", errTransparentEC)
	}
	rc := kmip14.RecommendedCurve(rc32)
	curve, nist := nistCurves[rc]
	if !nist && rc != kmip14.RecommendedCurveSECP256K1 {
		return nil, errUnknownFormat
	}
	size := 32
	if nist {
		size = (curve.Params().BitSize + 7) / 8
	}
	if private {
		d, ok := km.Child(kmip14.TagD).BigValue()
		if !ok || d.Sign() <= 0 || d.BitLen() > 8*size {
			return nil, fmt.Errorf("%w: D must be a positive Big Integer of at most %d bytes", errTransparentEC, size)
		}
		raw := d.FillBytes(make([]byte, size))
		var key any
		var err error
		if nist {
			key, err = ecdsa.ParseRawPrivateKey(curve, raw)
		} else {
			key, err = secp256k1.NewPrivateKey(raw)
		}
		if err != nil {
			return nil, errTransparentEC
		}
		return key, nil
	}
	q, ok := km.Child(kmip14.TagQString).BytesValue()
	if !ok {
		return nil, fmt.Errorf("%w: Q String missing", errTransparentEC)
	}
	if !nist {
		key, err := secp256k1.NewPublicKey(q)
		if err != nil {
			return nil, errTransparentEC
		}
		return key, nil
	}
	if len(q) == 1+size && (q[0] == 2 || q[0] == 3) {
		// X9.62 allows the compressed form; crypto/ecdsa reads the other.
		x, y := elliptic.UnmarshalCompressed(curve, q)
		if x == nil {
			return nil, errTransparentEC
		}
		q = append([]byte{4}, x.FillBytes(make([]byte, size))...)
		q = append(q, y.FillBytes(make([]byte, size))...)
	}
	key, err := ecdsa.ParseUncompressedPublicKey(curve, q)
	if err != nil {
		return nil, errTransparentEC
	}
	return key, nil
}

// transparentECNode is key's Key Material in a transparent EC format (private
// says which half the format holds), if key is an EC key kmipd can write.
func transparentECNode(private bool, key any) (*tree.Node, bool) {
	var rc kmip14.RecommendedCurve
	var d *big.Int
	var q []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		c, ok := recommendedCurveOf(k.Curve)
		raw, err := k.Bytes()
		if !ok || err != nil || !private {
			return nil, false
		}
		rc, d = c, new(big.Int).SetBytes(raw)
	case *ecdsa.PublicKey:
		c, ok := recommendedCurveOf(k.Curve)
		raw, err := k.Bytes()
		if !ok || err != nil || private {
			return nil, false
		}
		rc, q = c, raw
	case *secp256k1.PrivateKey:
		if !private {
			return nil, false
		}
		rc, d = kmip14.RecommendedCurveSECP256K1, new(big.Int).SetBytes(k.Bytes())
	case *secp256k1.PublicKey:
		if private {
			return nil, false
		}
		rc, q = kmip14.RecommendedCurveSECP256K1, k.Bytes()
	default:
		return nil, false
	}
	n := tree.Struct(kmip14.TagKeyMaterial, tree.Enum(kmip14.TagRecommendedCurve, uint32(rc)))
	if d != nil {
		n.Add(tree.Big(kmip14.TagD, d))
	} else {
		n.Add(tree.Bytes(kmip14.TagQString, q))
	}
	return n, true
}
