package kmipclient

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/secp256k1"
)

// Objects to register, from bytes a person has in a file. The parsers take
// PEM (the first block) or DER, keep the DER exactly as given (so Get
// returns it byte for byte) in the Key Format Type that names its encoding,
// and fill in the algorithm and length from the key. Their errors describe
// the input's shape, never its bytes.

// SymmetricKey is a symmetric key of alg in Raw format; its Cryptographic
// Length is the material's length in bits.
func SymmetricKey(alg kmip14.CryptographicAlgorithm, material []byte) *Object {
	return &Object{Type: kmip14.ObjectTypeSymmetricKey, Format: kmip14.KeyFormatTypeRaw,
		Algorithm: alg, Length: int32(8 * len(material)), Material: material}
}

// SecretData is Secret Data of type t in Opaque format, as Barbican stores
// passphrases.
func SecretData(t kmip14.SecretDataType, data []byte) *Object {
	return &Object{Type: kmip14.ObjectTypeSecretData, Format: kmip14.KeyFormatTypeOpaque,
		SecretDataType: t, Material: data}
}

// OpaqueObject is an Opaque Object of type t.
func OpaqueObject(t kmip14.OpaqueDataType, data []byte) *Object {
	return &Object{Type: kmip14.ObjectTypeOpaqueObject, OpaqueDataType: t, Material: data}
}

// ParseCertificate reads an X.509 certificate in PEM or DER.
func ParseCertificate(b []byte) (*Object, error) {
	der, _, err := derOf(b, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, errors.New("not an X.509 certificate in PEM or DER")
	}
	return &Object{Type: kmip14.ObjectTypeCertificate, CertificateType: kmip14.CertificateTypeX_509, Material: der}, nil
}

// ParsePublicKey reads an RSA or EC public key: PEM "PUBLIC KEY" or DER
// SubjectPublicKeyInfo (format X.509), PEM "RSA PUBLIC KEY" or DER PKCS#1.
func ParsePublicKey(b []byte) (*Object, error) {
	der, typ, err := derOf(b, "PUBLIC KEY", "RSA PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	o := &Object{Type: kmip14.ObjectTypePublicKey, Material: der}
	var key any
	if typ != "PUBLIC KEY" {
		if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
			key, o.Format = k, kmip14.KeyFormatTypePKCS_1
		}
	}
	if key == nil && typ != "RSA PUBLIC KEY" {
		if k, err := x509.ParsePKIXPublicKey(der); err == nil {
			key, o.Format = k, kmip14.KeyFormatTypeX_509
		} else if k, err := secp256k1.ParsePKIXPublicKey(der); err == nil {
			key, o.Format = k, kmip14.KeyFormatTypeX_509
		}
	}
	if key == nil {
		return nil, errors.New("not an RSA or EC public key (SubjectPublicKeyInfo or PKCS#1, in PEM or DER)")
	}
	return o, o.describe(key)
}

// ParsePrivateKey reads an RSA or EC private key: PEM "PRIVATE KEY" or DER
// PKCS#8, PEM "RSA PRIVATE KEY" or DER PKCS#1, PEM "EC PRIVATE KEY" or DER
// SEC 1 (format EC Private Key).
func ParsePrivateKey(b []byte) (*Object, error) {
	der, typ, err := derOf(b, "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	o := &Object{Type: kmip14.ObjectTypePrivateKey, Material: der}
	parsers := []struct {
		pemType string
		format  kmip14.KeyFormatType
		parse   func([]byte) (any, error)
	}{
		{"PRIVATE KEY", kmip14.KeyFormatTypePKCS_8, x509.ParsePKCS8PrivateKey},
		{"RSA PRIVATE KEY", kmip14.KeyFormatTypePKCS_1, func(b []byte) (any, error) { return x509.ParsePKCS1PrivateKey(b) }},
		{"EC PRIVATE KEY", kmip14.KeyFormatTypeECPrivateKey, func(b []byte) (any, error) { return x509.ParseECPrivateKey(b) }},
		// secp256k1, which crypto/x509 does not read.
		{"PRIVATE KEY", kmip14.KeyFormatTypePKCS_8, func(b []byte) (any, error) { return secp256k1.ParsePKCS8PrivateKey(b) }},
		{"EC PRIVATE KEY", kmip14.KeyFormatTypeECPrivateKey, func(b []byte) (any, error) { return secp256k1.ParseECPrivateKey(b) }},
	}
	for _, p := range parsers {
		if typ != "" && typ != p.pemType {
			continue
		}
		if k, err := p.parse(der); err == nil {
			o.Format = p.format
			return o, o.describe(k)
		}
	}
	return nil, errors.New("not an RSA or EC private key (PKCS#8, PKCS#1 or SEC 1, in PEM or DER)")
}

// describe sets the algorithm and length of a parsed key.
func (o *Object) describe(key any) error {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		o.Algorithm, o.Length = kmip14.CryptographicAlgorithmRSA, int32(k.N.BitLen())
	case *rsa.PublicKey:
		o.Algorithm, o.Length = kmip14.CryptographicAlgorithmRSA, int32(k.N.BitLen())
	case *ecdsa.PrivateKey:
		o.Algorithm, o.Length = kmip14.CryptographicAlgorithmEC, int32(k.Curve.Params().BitSize)
	case *ecdsa.PublicKey:
		o.Algorithm, o.Length = kmip14.CryptographicAlgorithmEC, int32(k.Curve.Params().BitSize)
	case *secp256k1.PrivateKey, *secp256k1.PublicKey:
		o.Algorithm, o.Length = kmip14.CryptographicAlgorithmEC, secp256k1.BitSize
	default:
		return fmt.Errorf("a %T key: only RSA and EC keys can be registered", key)
	}
	return nil
}

// derOf returns the DER in b: the bytes of its first PEM block, which must
// be of one of types, or b itself when it holds no PEM. typ is the PEM
// block's type, "" for DER.
func derOf(b []byte, types ...string) (der []byte, typ string, err error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		if bytes.Contains(b, []byte("-----BEGIN")) {
			return nil, "", errors.New("a PEM block that does not decode")
		}
		return b, "", nil
	}
	for _, t := range types {
		if blk.Type == t {
			return blk.Bytes, blk.Type, nil
		}
	}
	return nil, "", fmt.Errorf("a PEM %q block, want %q", blk.Type, types)
}
