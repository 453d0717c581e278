package secp256k1

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
)

// The DER key formats, as crypto/x509 reads and writes them for the NIST
// curves: RFC 5915 ECPrivateKey, RFC 5208/5958 PKCS#8 PrivateKeyInfo and
// RFC 5280 SubjectPublicKeyInfo, with the named curve of RFC 5480.

var (
	// OID is secp256k1's object identifier (SEC 2 v2 A.2.1).
	OID            = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}

	// ErrOtherKey is DER that does not hold a secp256k1 key: another
	// algorithm or curve, or no structure of the format at all. Callers
	// fall back to another parser.
	ErrOtherKey = errors.New("secp256k1: not a secp256k1 key")
	// ErrKeyMismatch is a private key whose embedded public key is not its own.
	ErrKeyMismatch = errors.New("secp256k1: public key does not match the private key")
)

type ecPrivateKey struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

type privateKeyInfo struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
	Attributes asn1.RawValue  `asn1:"optional,tag:0"`
	PublicKey  asn1.BitString `asn1:"optional,tag:1"`
}

type subjectPublicKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

func unmarshalWhole(der []byte, v any) bool {
	rest, err := asn1.Unmarshal(der, v)
	return err == nil && len(rest) == 0
}

// namesCurve reports whether an algorithm identifier is id-ecPublicKey with
// the named curve secp256k1.
func namesCurve(a pkix.AlgorithmIdentifier) bool {
	var curve asn1.ObjectIdentifier
	return a.Algorithm.Equal(oidECPublicKey) && unmarshalWhole(a.Parameters.FullBytes, &curve) && curve.Equal(OID)
}

// ParseECPrivateKey reads an RFC 5915 ECPrivateKey that names secp256k1.
func ParseECPrivateKey(der []byte) (*PrivateKey, error) {
	var k ecPrivateKey
	if !unmarshalWhole(der, &k) || !k.Curve.Equal(OID) {
		return nil, ErrOtherKey
	}
	return privateFrom(&k)
}

// privateFrom checks an ECPrivateKey whose curve is known to be secp256k1.
func privateFrom(k *ecPrivateKey) (*PrivateKey, error) {
	if k.Version != 1 {
		return nil, errors.New("secp256k1: ECPrivateKey version is not 1")
	}
	if len(k.Curve) > 0 && !k.Curve.Equal(OID) {
		return nil, errors.New("secp256k1: ECPrivateKey names another curve than its PKCS#8 wrapper")
	}
	priv, err := NewPrivateKey(k.PrivateKey)
	if err != nil {
		return nil, err
	}
	// crypto/x509 ignores the optional public key; a pair that disagrees
	// would sign for a key its holder does not expect, so refuse it.
	if k.PublicKey.BitLength > 0 {
		pub, err := publicFromBits(k.PublicKey)
		if err != nil {
			return nil, err
		}
		if !pub.Equal(&priv.pub) {
			return nil, ErrKeyMismatch
		}
	}
	return priv, nil
}

func publicFromBits(b asn1.BitString) (*PublicKey, error) {
	if b.BitLength != 8*len(b.Bytes) {
		return nil, ErrPublicKey
	}
	return NewPublicKey(b.Bytes)
}

// ParsePKCS8PrivateKey reads a PKCS#8 PrivateKeyInfo whose algorithm is
// id-ecPublicKey on secp256k1.
func ParsePKCS8PrivateKey(der []byte) (*PrivateKey, error) {
	var p privateKeyInfo
	if !unmarshalWhole(der, &p) || !namesCurve(p.Algorithm) {
		return nil, ErrOtherKey
	}
	if p.Version != 0 && p.Version != 1 {
		return nil, errors.New("secp256k1: unknown PKCS#8 version")
	}
	var k ecPrivateKey
	if !unmarshalWhole(p.PrivateKey, &k) {
		return nil, errors.New("secp256k1: PKCS#8 private key is not an ECPrivateKey")
	}
	return privateFrom(&k)
}

// ParsePKIXPublicKey reads a SubjectPublicKeyInfo of id-ecPublicKey on
// secp256k1; the point may be compressed.
func ParsePKIXPublicKey(der []byte) (*PublicKey, error) {
	var s subjectPublicKeyInfo
	if !unmarshalWhole(der, &s) || !namesCurve(s.Algorithm) {
		return nil, ErrOtherKey
	}
	return publicFromBits(s.PublicKey)
}

func curveParams() asn1.RawValue {
	b, _ := asn1.Marshal(OID)
	return asn1.RawValue{FullBytes: b}
}

func (k *PrivateKey) ecPrivateKey(withCurve bool) ([]byte, error) {
	e := ecPrivateKey{Version: 1, PrivateKey: k.d[:],
		PublicKey: asn1.BitString{Bytes: k.pub.enc, BitLength: 8 * len(k.pub.enc)}}
	if withCurve {
		e.Curve = OID
	}
	return asn1.Marshal(e)
}

// MarshalECPrivateKey writes an RFC 5915 ECPrivateKey with the curve and
// the public key, as crypto/x509 does for the NIST curves.
func MarshalECPrivateKey(k *PrivateKey) ([]byte, error) { return k.ecPrivateKey(true) }

// MarshalPKCS8PrivateKey writes a PKCS#8 PrivateKeyInfo; the inner
// ECPrivateKey leaves the curve to the algorithm identifier, as crypto/x509
// does.
func MarshalPKCS8PrivateKey(k *PrivateKey) ([]byte, error) {
	inner, err := k.ecPrivateKey(false)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(privateKeyInfo{
		Algorithm:  pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: curveParams()},
		PrivateKey: inner,
	})
}

// MarshalPKIXPublicKey writes a SubjectPublicKeyInfo with the uncompressed point.
func MarshalPKIXPublicKey(k *PublicKey) ([]byte, error) {
	return asn1.Marshal(subjectPublicKeyInfo{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: curveParams()},
		PublicKey: asn1.BitString{Bytes: bytes.Clone(k.enc), BitLength: 8 * len(k.enc)},
	})
}
