package kmipops

import (
	"crypto/x509/pkix"
	"encoding/asn1"

	"github.com/gemalto/kmip-go/kmip14"
)

// A key server keeps keys it will never use itself: an ECDSA key on a curve
// kmipd does not implement (brainpool, the binary curves), a PKCS#8 key of
// another algorithm, or an encrypted PKCS#8
// EncryptedPrivateKeyInfo (RFC 5208 §6), whose password only the client
// knows. Such material is stored and served exactly as registered; it cannot
// be converted to another format or used in a cryptographic operation. It
// must still be well-formed DER of the structure its Key Format Type names,
// so that a client's mistake is refused at Register rather than found later.

// ecPrivateKey is SEC 1's ECPrivateKey (RFC 5915).
type ecPrivateKey struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// privateKeyInfo is PKCS#8's PrivateKeyInfo (RFC 5208 §5).
type privateKeyInfo struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
	Attributes asn1.RawValue  `asn1:"optional,tag:0"`
	PublicKey  asn1.BitString `asn1:"optional,tag:1"`
}

// encryptedPrivateKeyInfo is PKCS#8's EncryptedPrivateKeyInfo (RFC 5208 §6).
type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type subjectPublicKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

var oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}

// goAlgorithms are the key algorithms crypto/x509 reads (RSA, Ed25519,
// X25519), and goCurves the curves kmipd reads for EC keys (P-224, P-256,
// P-384, P-521 through crypto/x509; secp256k1 through internal/secp256k1):
// a key of theirs that its parser refuses is damaged, not foreign, and is
// refused.
var (
	goAlgorithms = map[string]bool{"1.2.840.113549.1.1.1": true, "1.3.101.112": true, "1.3.101.110": true}
	goCurves     = map[string]bool{"1.3.132.0.33": true, "1.2.840.10045.3.1.7": true, "1.3.132.0.34": true, "1.3.132.0.35": true,
		"1.3.132.0.10": true}
)

// foreign reports whether an algorithm identifier names a key crypto/x509
// does not read.
func foreign(a pkix.AlgorithmIdentifier) bool {
	if goAlgorithms[a.Algorithm.String()] {
		return false
	}
	if a.Algorithm.Equal(oidECPublicKey) {
		var curve asn1.ObjectIdentifier
		return unmarshalWhole(a.Parameters.FullBytes, &curve) && !goCurves[curve.String()]
	}
	return len(a.Algorithm) > 0
}

// unmarshalWhole decodes der into v, refusing trailing bytes.
func unmarshalWhole(der []byte, v any) bool {
	rest, err := asn1.Unmarshal(der, v)
	return err == nil && len(rest) == 0
}

// storedOnly reports whether der is well-formed key material of format f
// that kmipd keeps without being able to use it (see above).
func storedOnly(ot kmip14.ObjectType, f kmip14.KeyFormatType, der []byte) bool {
	switch {
	case ot == kmip14.ObjectTypePrivateKey && f == kmip14.KeyFormatTypeECPrivateKey:
		var k ecPrivateKey
		return unmarshalWhole(der, &k) && k.Version == 1 && len(k.PrivateKey) > 0 && len(k.Curve) > 0 && !goCurves[k.Curve.String()]
	case ot == kmip14.ObjectTypePrivateKey && f == kmip14.KeyFormatTypePKCS_8:
		var k privateKeyInfo
		if unmarshalWhole(der, &k) {
			if k.Version != 0 && k.Version != 1 || len(k.PrivateKey) == 0 || !foreign(k.Algorithm) {
				return false
			}
			if k.Algorithm.Algorithm.Equal(oidECPublicKey) {
				var inner ecPrivateKey
				return unmarshalWhole(k.PrivateKey, &inner) && inner.Version == 1 && len(inner.PrivateKey) > 0
			}
			return true
		}
		var e encryptedPrivateKeyInfo
		return unmarshalWhole(der, &e) && len(e.Algorithm.Algorithm) > 0 && len(e.Data) > 0
	case ot == kmip14.ObjectTypePublicKey && f == kmip14.KeyFormatTypeX_509:
		var k subjectPublicKeyInfo
		return unmarshalWhole(der, &k) && foreign(k.Algorithm) && k.PublicKey.BitLength > 0
	}
	return false
}
