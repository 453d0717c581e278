package kmipops

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Helpers for the cryptographic operation tests.

func crHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func crMask(ms ...kmip14.CryptographicUsageMask) *tree.Node {
	var m kmip14.CryptographicUsageMask
	for _, x := range ms {
		m |= x
	}
	return attrNode("Cryptographic Usage Mask", tree.Int(0, int32(m)))
}

// crActive is an Activation Date an hour ago: the object is Active.
func crActive() *tree.Node {
	return attrNode("Activation Date", tree.Time(0, time.Now().Add(-time.Hour)))
}

// crSym registers an Active symmetric key and returns its uid.
func (e *env) crSym(c Caller, alg kmip14.CryptographicAlgorithm, key []byte, attrs ...*tree.Node) string {
	e.t.Helper()
	if len(attrs) == 0 {
		attrs = []*tree.Node{crMask(kmip14.CryptographicUsageMaskEncrypt, kmip14.CryptographicUsageMaskDecrypt)}
	}
	attrs = append(attrs, crActive())
	body := keyBody(kmip14.TagSymmetricKey, kmip14.KeyFormatTypeRaw, alg, int32(len(key)*8), key)
	return text(e.t, okPayload(e.t, e.do(c, register(kmip14.ObjectTypeSymmetricKey, body, attrs...)), 0), kmip14.TagUniqueIdentifier)
}

// crAsym registers an Active private or public key (DER in format f).
func (e *env) crAsym(c Caller, ot kmip14.ObjectType, f kmip14.KeyFormatType, alg kmip14.CryptographicAlgorithm, bits int32, der []byte, attrs ...*tree.Node) string {
	e.t.Helper()
	tag := kmip14.TagPrivateKey
	if ot == kmip14.ObjectTypePublicKey {
		tag = kmip14.TagPublicKey
	}
	attrs = append(attrs, crActive())
	body := keyBody(tag, f, alg, bits, der)
	return text(e.t, okPayload(e.t, e.do(c, register(ot, body, attrs...)), 0), kmip14.TagUniqueIdentifier)
}

// Test keys are made once per binary: RSA generation is slow under -race.
var (
	crKeysOnce sync.Once
	crRSA      *rsa.PrivateKey
	crEC       *ecdsa.PrivateKey
)

func crKeys(t testing.TB) (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	crKeysOnce.Do(func() {
		var err error
		if crRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if crEC, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return crRSA, crEC
}

// crRSAPair registers the test RSA key as a private and a public key.
func (e *env) crRSAPair(c Caller, privAttrs, pubAttrs []*tree.Node) (priv, pub string) {
	rk, _ := crKeys(e.t)
	priv = e.crAsym(c, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypePKCS_1, kmip14.CryptographicAlgorithmRSA, 2048,
		x509.MarshalPKCS1PrivateKey(rk), privAttrs...)
	pub = e.crAsym(c, kmip14.ObjectTypePublicKey, kmip14.KeyFormatTypePKCS_1, kmip14.CryptographicAlgorithmRSA, 2048,
		x509.MarshalPKCS1PublicKey(&rk.PublicKey), pubAttrs...)
	return priv, pub
}

// crECPair registers the test P-256 key (PKCS#8 private, X.509 public).
func (e *env) crECPair(c Caller, privAttrs, pubAttrs []*tree.Node) (priv, pub string) {
	_, ek := crKeys(e.t)
	p8, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		e.t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	if err != nil {
		e.t.Fatal(err)
	}
	priv = e.crAsym(c, kmip14.ObjectTypePrivateKey, kmip14.KeyFormatTypePKCS_8, kmip14.CryptographicAlgorithmECDSA, 256, p8, privAttrs...)
	pub = e.crAsym(c, kmip14.ObjectTypePublicKey, kmip14.KeyFormatTypeX_509, kmip14.CryptographicAlgorithmECDSA, 256, spki, pubAttrs...)
	return priv, pub
}

// crParams builds a Cryptographic Parameters structure.
func crParams(fields ...*tree.Node) *tree.Node {
	return tree.Struct(kmip14.TagCryptographicParameters, fields...)
}

func crMode(m kmip14.BlockCipherMode) *tree.Node {
	return tree.Enum(kmip14.TagBlockCipherMode, uint32(m))
}
func crPad(p kmip14.PaddingMethod) *tree.Node { return tree.Enum(kmip14.TagPaddingMethod, uint32(p)) }
func crHash(h kmip14.HashingAlgorithm) *tree.Node {
	return tree.Enum(kmip14.TagHashingAlgorithm, uint32(h))
}
func crAlg(a kmip14.CryptographicAlgorithm) *tree.Node {
	return tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(a))
}
func crData(b []byte) *tree.Node { return tree.Bytes(kmip14.TagData, b) }
func crIV(b []byte) *tree.Node   { return tree.Bytes(kmip14.TagIVCounterNonce, b) }

func crBytes(t testing.TB, n *tree.Node, tag ttlv.Tag) []byte {
	t.Helper()
	b, ok := n.Child(tag).BytesValue()
	if !ok {
		t.Fatalf("no %s in %s", tree.TagName(tag), n)
	}
	return b
}

func crValidity(t testing.TB, n *tree.Node) kmip14.ValidityIndicator {
	t.Helper()
	v, ok := n.Child(kmip14.TagValidityIndicator).EnumValue()
	if !ok {
		t.Fatalf("no Validity Indicator in %s", n)
	}
	return kmip14.ValidityIndicator(v)
}

// crOne sends a single item as c and returns the response.
func (e *env) crOne(c Caller, op kmip14.Operation, fields ...*tree.Node) *tree.Node {
	e.t.Helper()
	return e.do(c, item(op, fields...))
}
