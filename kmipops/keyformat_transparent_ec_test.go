package kmipops

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// The expected values come from Go's own encoding of the test key, never
// from kmipd's output. Found by the ovh/kmip-go interop suite
// (tests/ovhclient), whose client reads and writes these formats.

func transparentECBody(ot kmip14.ObjectType, f kmip14.KeyFormatType, rc kmip14.RecommendedCurve, field *tree.Node) *tree.Node {
	tag := kmip14.TagPrivateKey
	if ot == kmip14.ObjectTypePublicKey {
		tag = kmip14.TagPublicKey
	}
	return tree.Struct(tag, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(f)),
		tree.Struct(kmip14.TagKeyValue, tree.Struct(kmip14.TagKeyMaterial,
			tree.Enum(kmip14.TagRecommendedCurve, uint32(rc)), field)),
		tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmECDSA)),
		tree.Int(kmip14.TagCryptographicLength, 256)))
}

// TestGetTransparentEC: a P-256 pair held as PKCS#8 / X.509 is served in
// the 1.0 Transparent ECDSA and the 1.3 Transparent EC formats (KMIP 1.0
// §2.1.7.9–10, 1.3 §2.1.7.9–10): Recommended Curve and D, or Q String.
func TestGetTransparentEC(t *testing.T) {
	e := newEnv(t, Options{})
	_, ek := crKeys(t)
	priv, pub := e.crECPair(alice, nil, nil)
	q := elliptic.Marshal(elliptic.P256(), ek.X, ek.Y) //nolint:staticcheck // the expected uncompressed point
	for _, f := range []kmip14.KeyFormatType{kmip14.KeyFormatTypeTransparentECPrivateKey, kmip14.KeyFormatTypeTransparentECDSAPrivateKey,
		kmip14.KeyFormatTypeTransparentECDHPrivateKey} {
		km := getIn(t, e, priv, f)
		if rc, _ := km.Child(kmip14.TagRecommendedCurve).View().EnumValue(); kmip14.RecommendedCurve(rc) != kmip14.RecommendedCurveP_256 {
			t.Fatalf("%s: Recommended Curve %v", f, rc)
		}
		wantBig(t, km, kmip14.TagD, ek.D)
	}
	for _, f := range []kmip14.KeyFormatType{kmip14.KeyFormatTypeTransparentECPublicKey, kmip14.KeyFormatTypeTransparentECDSAPublicKey} {
		km := getIn(t, e, pub, f)
		if got, _ := km.Child(kmip14.TagQString).View().BytesValue(); !bytes.Equal(got, q) || len(km.Children) != 2 {
			t.Fatalf("%s: Q String differs from Go's uncompressed point (%d fields)", f, len(km.Children))
		}
	}
	for uid, f := range map[string]kmip14.KeyFormatType{priv: kmip14.KeyFormatTypeTransparentECPublicKey, pub: kmip14.KeyFormatTypeTransparentECPrivateKey} {
		wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(f)))), 0, kmip14.ResultReasonKeyFormatTypeNotSupported)
	}
}

// TestRegisterTransparentEC: keys registered in the transparent EC formats
// convert to DER and sign / verify; a compressed Q String is read too;
// material off its curve is refused when used; a curve kmipd does not
// compute with stays as registered.
func TestRegisterTransparentEC(t *testing.T) {
	e := newEnv(t, Options{})
	_, ek := crKeys(t)
	priv := e.crAsymBody(alice, kmip14.ObjectTypePrivateKey, transparentECBody(kmip14.ObjectTypePrivateKey,
		kmip14.KeyFormatTypeTransparentECPrivateKey, kmip14.RecommendedCurveP_256, tree.Big(kmip14.TagD, new(big.Int).Set(ek.D))),
		crMask(kmip14.CryptographicUsageMaskSign))
	want8, _ := x509.MarshalPKCS8PrivateKey(ek)
	if got, _ := getIn(t, e, priv, kmip14.KeyFormatTypePKCS_8).View().BytesValue(); !bytes.Equal(got, want8) {
		t.Fatal("PKCS#8 of a transparent EC key differs from Go's")
	}
	msg := []byte("transparent EC")
	sum := sha256.Sum256(msg)
	r := okPayload(t, e.crOne(alice, kmip14.OperationSign, uidF(priv), ecdsaSHA256(), crData(msg)), 0)
	if !ecdsa.VerifyASN1(&ek.PublicKey, sum[:], crBytes(t, r, kmip14.TagSignatureData)) {
		t.Fatal("signature with a transparent EC key does not verify")
	}
	spki, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	compressed := elliptic.MarshalCompressed(elliptic.P256(), ek.X, ek.Y)
	pub := e.crAsymBody(alice, kmip14.ObjectTypePublicKey, transparentECBody(kmip14.ObjectTypePublicKey,
		kmip14.KeyFormatTypeTransparentECDSAPublicKey, kmip14.RecommendedCurveP_256, tree.Bytes(kmip14.TagQString, compressed)),
		crMask(kmip14.CryptographicUsageMaskVerify))
	if got, _ := getIn(t, e, pub, kmip14.KeyFormatTypeX_509).View().BytesValue(); !bytes.Equal(got, spki) {
		t.Fatal("X.509 of a compressed transparent EC public key differs from Go's")
	}

	n := elliptic.P256().Params().N
	offCurve := append([]byte{4}, ek.X.FillBytes(make([]byte, 32))...) // elliptic.Marshal refuses points off the curve
	offCurve = append(offCurve, new(big.Int).Add(ek.Y, big.NewInt(1)).FillBytes(make([]byte, 32))...)
	bad := map[string]*tree.Node{
		"D zero":     transparentECBody(kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypeTransparentECPrivateKey, kmip14.RecommendedCurveP_256, tree.Big(kmip14.TagD, big.NewInt(0))),
		"D order":    transparentECBody(kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypeTransparentECPrivateKey, kmip14.RecommendedCurveP_256, tree.Big(kmip14.TagD, new(big.Int).Set(n))),
		"D too long": transparentECBody(kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypeTransparentECPrivateKey, kmip14.RecommendedCurveP_256, tree.Big(kmip14.TagD, new(big.Int).Lsh(n, 64))),
		"Q off":      transparentECBody(kmip14.ObjectTypePublicKey, kmip14.KeyFormatTypeTransparentECPublicKey, kmip14.RecommendedCurveP_256, tree.Bytes(kmip14.TagQString, offCurve)),
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			ot, f := kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypePKCS_8
			if body.Tag == kmip14.TagPublicKey {
				ot, f = kmip14.ObjectTypePublicKey, kmip14.KeyFormatTypeX_509
			}
			uid := e.crAsymBody(alice, ot, body)
			wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(f)))), 0, kmip14.ResultReasonCryptographicFailure)
		})
	}
	p192 := e.crAsymBody(alice, kmip14.ObjectTypePrivateKey, transparentECBody(kmip14.ObjectTypePrivateKey,
		kmip14.KeyFormatTypeTransparentECPrivateKey, kmip14.RecommendedCurveP_192, tree.Big(kmip14.TagD, big.NewInt(12345))))
	wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(p192), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_8)))), 0, kmip14.ResultReasonKeyFormatTypeNotSupported)
	if got := getIn(t, e, p192, kmip14.KeyFormatTypeTransparentECPrivateKey); got == nil {
		t.Fatal("a P-192 key is not served as registered")
	}
}

// TestTransparentECSecp256k1: secp256k1 keys convert both ways too.
func TestTransparentECSecp256k1(t *testing.T) {
	e := newEnv(t, Options{})
	priv, pub := e.registerK1Pair(alice)
	km := getIn(t, e, priv, kmip14.KeyFormatTypeTransparentECPrivateKey)
	d, _ := km.Child(kmip14.TagD).View().BigValue()
	back := e.crAsymBody(alice, kmip14.ObjectTypePrivateKey, transparentECBody(kmip14.ObjectTypePrivateKey,
		kmip14.KeyFormatTypeTransparentECPrivateKey, kmip14.RecommendedCurveSECP256K1, tree.Big(kmip14.TagD, d)))
	if a, b := getIn(t, e, back, kmip14.KeyFormatTypeECPrivateKey), getIn(t, e, priv, kmip14.KeyFormatTypeECPrivateKey); !bytes.Equal(a.Bytes, b.Bytes) {
		t.Fatal("secp256k1 key through Transparent EC differs")
	}
	q := getIn(t, e, pub, kmip14.KeyFormatTypeTransparentECPublicKey)
	qs, _ := q.Child(kmip14.TagQString).View().BytesValue()
	if len(qs) != 65 || qs[0] != 4 {
		t.Fatalf("secp256k1 Q String: %d bytes", len(qs))
	}
}
