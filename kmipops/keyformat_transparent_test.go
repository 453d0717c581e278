package kmipops

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// The expected numbers come from Go's own parse of the test key, never from
// kmipd's output.

func getIn(t *testing.T, e *env, uid string, f kmip14.KeyFormatType) *tree.Node {
	t.Helper()
	p := okPayload(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(f)))), 0)
	for _, tag := range []ttlv.Tag{kmip14.TagPrivateKey, kmip14.TagPublicKey} {
		if b := p.Child(tag); b != nil {
			kb := b.Child(kmip14.TagKeyBlock)
			if got := kmip14.KeyFormatType(kb.Child(kmip14.TagKeyFormatType).Int); got != f {
				t.Fatalf("Get in %s answered %s", f, got)
			}
			return kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial)
		}
	}
	t.Fatalf("no key in %s", p)
	return nil
}

func wantBig(t *testing.T, km *tree.Node, tag ttlv.Tag, want *big.Int) {
	t.Helper()
	got, ok := km.Child(tag).View().BigValue()
	if !ok || got.Cmp(want) != 0 {
		t.Fatalf("%s: got %v, want %v", tree.TagName(tag), got, want)
	}
}

func rsaPrivateFields(k *rsa.PrivateKey) map[ttlv.Tag]*big.Int {
	return map[ttlv.Tag]*big.Int{
		kmip14.TagModulus: k.N, kmip14.TagPrivateExponent: k.D, kmip14.TagPublicExponent: big.NewInt(int64(k.E)),
		kmip14.TagP: k.Primes[0], kmip14.TagQ: k.Primes[1], kmip14.TagPrimeExponentP: k.Precomputed.Dp,
		kmip14.TagPrimeExponentQ: k.Precomputed.Dq, kmip14.TagCRTCoefficient: k.Precomputed.Qinv,
	}
}

func TestGetTransparentRSA(t *testing.T) {
	e := newEnv(t, Options{})
	rk, _ := crKeys(t)
	priv, pub := e.crRSAPair(alice, nil, nil) // PKCS#1, as TC-133 creates them
	km := getIn(t, e, priv, kmip14.KeyFormatTypeTransparentRSAPrivateKey)
	for tag, want := range rsaPrivateFields(rk) {
		wantBig(t, km, tag, want)
	}
	km = getIn(t, e, pub, kmip14.KeyFormatTypeTransparentRSAPublicKey)
	wantBig(t, km, kmip14.TagModulus, rk.N)
	wantBig(t, km, kmip14.TagPublicExponent, big.NewInt(int64(rk.E)))
	if len(km.Children) != 2 {
		t.Fatalf("public key material has %d fields", len(km.Children))
	}
	// A private key is not served as a public key format, nor the reverse.
	for uid, f := range map[string]kmip14.KeyFormatType{priv: kmip14.KeyFormatTypeTransparentRSAPublicKey, pub: kmip14.KeyFormatTypeTransparentRSAPrivateKey} {
		wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(f)))), 0, kmip14.ResultReasonKeyFormatTypeNotSupported)
	}
}

// transparentPriv is a Transparent RSA Private Key body of the given fields.
func transparentPriv(fields map[ttlv.Tag]*big.Int, skip ...ttlv.Tag) *tree.Node {
	km := tree.Struct(kmip14.TagKeyMaterial)
	for _, tag := range []ttlv.Tag{kmip14.TagModulus, kmip14.TagPrivateExponent, kmip14.TagPublicExponent, kmip14.TagP,
		kmip14.TagQ, kmip14.TagPrimeExponentP, kmip14.TagPrimeExponentQ, kmip14.TagCRTCoefficient} {
		if v := fields[tag]; v != nil && !containsTag(skip, tag) {
			km.Add(tree.Big(tag, new(big.Int).Set(v)))
		}
	}
	return tree.Struct(kmip14.TagPrivateKey, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeTransparentRSAPrivateKey)),
		tree.Struct(kmip14.TagKeyValue, km),
		tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmRSA)),
		tree.Int(kmip14.TagCryptographicLength, 2048)))
}

func containsTag(l []ttlv.Tag, t ttlv.Tag) bool {
	for _, x := range l {
		if x == t {
			return true
		}
	}
	return false
}

// TestRegisterTransparentRSA: a key registered in the transparent formats
// (as TC-PKCS12-1-14 registers its private key) converts to DER and signs.
func TestRegisterTransparentRSA(t *testing.T) {
	e := newEnv(t, Options{})
	rk, _ := crKeys(t)
	reg := func(body *tree.Node, ot kmip14.ObjectType, attrs ...*tree.Node) string {
		t.Helper()
		attrs = append(attrs, crActive())
		return text(t, okPayload(t, e.do(alice, register(ot, body, attrs...)), 0), kmip14.TagUniqueIdentifier)
	}
	priv := reg(transparentPriv(rsaPrivateFields(rk)), kmip14.ObjectTypePrivateKey, crMask(kmip14.CryptographicUsageMaskSign))
	if got, _ := getIn(t, e, priv, kmip14.KeyFormatTypePKCS_1).View().BytesValue(); !bytes.Equal(got, x509.MarshalPKCS1PrivateKey(rk)) {
		t.Fatal("PKCS#1 of a transparent key differs from Go's")
	}
	want8, _ := x509.MarshalPKCS8PrivateKey(rk)
	if got, _ := getIn(t, e, priv, kmip14.KeyFormatTypePKCS_8).View().BytesValue(); !bytes.Equal(got, want8) {
		t.Fatal("PKCS#8 of a transparent key differs from Go's")
	}
	msg := []byte("transparent")
	sum := sha256.Sum256(msg)
	r := okPayload(t, e.crOne(alice, kmip14.OperationSign, uidF(priv), crParams(crHash(kmip14.HashingAlgorithmSHA_256), crPad(kmip14.PaddingMethodPKCS1V1_5)), crData(msg)), 0)
	if err := rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, sum[:], crBytes(t, r, kmip14.TagSignatureData)); err != nil {
		t.Fatalf("signature with a transparent key: %v", err)
	}

	// Without its Private Exponent, CRT values or both, the key is the same.
	part := reg(transparentPriv(rsaPrivateFields(rk), kmip14.TagPrivateExponent, kmip14.TagPrimeExponentP, kmip14.TagCRTCoefficient), kmip14.ObjectTypePrivateKey)
	if got, _ := getIn(t, e, part, kmip14.KeyFormatTypePKCS_1).View().BytesValue(); !bytes.Equal(got, x509.MarshalPKCS1PrivateKey(rk)) {
		t.Fatal("PKCS#1 of a partial transparent key differs from Go's")
	}

	pubBody := tree.Struct(kmip14.TagPublicKey, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeTransparentRSAPublicKey)),
		tree.Struct(kmip14.TagKeyValue, tree.Struct(kmip14.TagKeyMaterial,
			tree.Big(kmip14.TagModulus, new(big.Int).Set(rk.N)), tree.Big(kmip14.TagPublicExponent, big.NewInt(int64(rk.E))))),
		tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmRSA)),
		tree.Int(kmip14.TagCryptographicLength, 2048)))
	pub := reg(pubBody, kmip14.ObjectTypePublicKey, crMask(kmip14.CryptographicUsageMaskVerify))
	spki, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if got, _ := getIn(t, e, pub, kmip14.KeyFormatTypeX_509).View().BytesValue(); !bytes.Equal(got, spki) {
		t.Fatal("X.509 of a transparent public key differs from Go's")
	}
	if got, _ := getIn(t, e, pub, kmip14.KeyFormatTypePKCS_1).View().BytesValue(); !bytes.Equal(got, x509.MarshalPKCS1PublicKey(&rk.PublicKey)) {
		t.Fatal("PKCS#1 of a transparent public key differs from Go's")
	}

	// Inconsistent or incomplete numbers: stored as registered, refused
	// when used or converted.
	wrong := rsaPrivateFields(rk)
	wrong[kmip14.TagCRTCoefficient] = new(big.Int).Add(rk.Precomputed.Qinv, big.NewInt(1))
	noQ := rsaPrivateFields(rk)
	delete(noQ, kmip14.TagQ)
	huge := rsaPrivateFields(rk)
	huge[kmip14.TagModulus] = new(big.Int).Lsh(rk.N, maxRSABits) // bounded before any arithmetic
	for name, body := range map[string]*tree.Node{"CRT": transparentPriv(wrong), "no Q": transparentPriv(noQ), "huge": transparentPriv(huge)} {
		t.Run(name, func(t *testing.T) {
			uid := reg(body, kmip14.ObjectTypePrivateKey, crMask(kmip14.CryptographicUsageMaskSign))
			wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypePKCS_1)))), 0, kmip14.ResultReasonCryptographicFailure)
			wantFail(t, e.crOne(alice, kmip14.OperationSign, uidF(uid), crParams(crHash(kmip14.HashingAlgorithmSHA_256)), crData(msg)), 0, kmip14.ResultReasonCryptographicFailure)
		})
	}
}

// TestTransparentRSAPublicBounds: a public key's numbers are bounded too, so
// a verification cannot be made to cost what the client likes.
func TestTransparentRSAPublicBounds(t *testing.T) {
	e := newEnv(t, Options{})
	rk, _ := crKeys(t)
	for name, km := range map[string]*tree.Node{
		"huge modulus": tree.Struct(kmip14.TagKeyMaterial, tree.Big(kmip14.TagModulus, new(big.Int).Lsh(big.NewInt(1), maxRSABits+1)),
			tree.Big(kmip14.TagPublicExponent, big.NewInt(65537))),
		"even exponent": tree.Struct(kmip14.TagKeyMaterial, tree.Big(kmip14.TagModulus, new(big.Int).Set(rk.N)),
			tree.Big(kmip14.TagPublicExponent, big.NewInt(65536))),
		"no exponent": tree.Struct(kmip14.TagKeyMaterial, tree.Big(kmip14.TagModulus, new(big.Int).Set(rk.N))),
	} {
		t.Run(name, func(t *testing.T) {
			body := tree.Struct(kmip14.TagPublicKey, tree.Struct(kmip14.TagKeyBlock,
				tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeTransparentRSAPublicKey)),
				tree.Struct(kmip14.TagKeyValue, km),
				tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmRSA))))
			uid := e.crAsymBody(alice, kmip14.ObjectTypePublicKey, body, crMask(kmip14.CryptographicUsageMaskVerify))
			wantFail(t, e.crOne(alice, kmip14.OperationSignatureVerify, uidF(uid), crParams(crHash(kmip14.HashingAlgorithmSHA_256)),
				crData([]byte("m")), tree.Bytes(kmip14.TagSignatureData, make([]byte, 256))), 0, kmip14.ResultReasonCryptographicFailure)
			wantFail(t, e.do(alice, item(kmip14.OperationGet, uidF(uid), tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeX_509)))), 0, kmip14.ResultReasonCryptographicFailure)
		})
	}
}

// crAsymBody registers an Active asymmetric key body as it is.
func (e *env) crAsymBody(c Caller, ot kmip14.ObjectType, body *tree.Node, attrs ...*tree.Node) string {
	e.t.Helper()
	attrs = append(attrs, crActive())
	return text(e.t, okPayload(e.t, e.do(c, register(ot, body, attrs...)), 0), kmip14.TagUniqueIdentifier)
}
