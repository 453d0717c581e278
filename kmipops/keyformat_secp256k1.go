package kmipops

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/secp256k1"
	"github.com/kmipd/kmipd/kmipops/object"
)

// secp256k1 (KMIP 1.4 §9.1.3.2.5 Recommended Curve SECP256K1), which
// crypto/ecdsa and crypto/x509 lack, through internal/secp256k1: the same
// formats (EC Private Key, PKCS#8, X.509 SubjectPublicKeyInfo), conversions
// and DER ECDSA signatures as for the NIST curves. Signatures are RFC 6979
// deterministic, where crypto/ecdsa's are randomised.

// parseSecp256k1 parses der if it names secp256k1; ok is false when it
// names another algorithm or curve, or is not DER of format f at all, so
// that crypto/x509 reads it instead.
func parseSecp256k1(ot kmip14.ObjectType, f kmip14.KeyFormatType, der []byte) (key any, ok bool, err error) {
	switch {
	case ot == kmip14.ObjectTypePrivateKey && f == kmip14.KeyFormatTypeECPrivateKey:
		key, err = nilIfErr(secp256k1.ParseECPrivateKey(der))
	case ot == kmip14.ObjectTypePrivateKey && f == kmip14.KeyFormatTypePKCS_8:
		key, err = nilIfErr(secp256k1.ParsePKCS8PrivateKey(der))
	case ot == kmip14.ObjectTypePublicKey && f == kmip14.KeyFormatTypeX_509:
		key, err = nilIfErr(secp256k1.ParsePKIXPublicKey(der))
	default:
		return nil, false, nil
	}
	if errors.Is(err, secp256k1.ErrOtherKey) {
		return nil, false, nil
	}
	return key, true, err
}

// nilIfErr keeps a typed nil pointer out of an interface.
func nilIfErr[K any](k *K, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return k, nil
}

// marshalSecp256k1 encodes a secp256k1 key in format f, as
// marshalAsymmetric does for crypto/x509's keys.
func marshalSecp256k1(f kmip14.KeyFormatType, key any) (b []byte, ok bool, err error) {
	switch k := key.(type) {
	case *secp256k1.PrivateKey:
		switch f {
		case kmip14.KeyFormatTypePKCS_8:
			b, err = secp256k1.MarshalPKCS8PrivateKey(k)
		case kmip14.KeyFormatTypeECPrivateKey:
			b, err = secp256k1.MarshalECPrivateKey(k)
		default:
			return nil, false, nil
		}
	case *secp256k1.PublicKey:
		if f != kmip14.KeyFormatTypeX_509 {
			return nil, false, nil
		}
		b, err = secp256k1.MarshalPKIXPublicKey(k)
	default:
		return nil, false, nil
	}
	return b, true, err
}

// ecSigner returns ECDSA signing and verification for an EC key of either
// implementation; h made the digest (RFC 6979 uses it for its HMAC).
func ecSigner(k *opKey, h crypto.Hash) (sign func(d []byte) ([]byte, error), verify func(d, sig []byte) bool) {
	switch pub := k.pub.(type) {
	case *secp256k1.PublicKey:
		priv, _ := k.priv.(*secp256k1.PrivateKey)
		return func(d []byte) ([]byte, error) { return secp256k1.SignASN1(priv, h, d) },
			func(d, sig []byte) bool { return secp256k1.VerifyASN1(pub, d, sig) }
	case *ecdsa.PublicKey:
		priv, _ := k.priv.(*ecdsa.PrivateKey)
		return func(d []byte) ([]byte, error) { return ecdsa.SignASN1(rand.Reader, priv, d) },
			func(d, sig []byte) bool { return ecdsa.VerifyASN1(pub, d, sig) }
	}
	return nil, nil
}

// wantsSecp256k1 reports whether the template's Cryptographic Domain
// Parameters name Recommended Curve SECP256K1.
func wantsSecp256k1(attrs []object.Attr) bool {
	rc, ok := recommendedCurve(attrs)
	return ok && rc == kmip14.RecommendedCurveSECP256K1
}

func recommendedCurve(attrs []object.Attr) (kmip14.RecommendedCurve, bool) {
	for _, a := range attrs {
		if a.Name() != object.AttrCryptoDomainParameters {
			continue
		}
		if rc, ok := a.Value().Child(kmip14.TagRecommendedCurve).EnumValue(); ok {
			return kmip14.RecommendedCurve(rc), true
		}
	}
	return 0, false
}

// replacementKeyPair generates the key pair that replaces old (Re-key Key
// Pair). A registered key often names no curve, only its length, and 256
// bits would be P-256: a secp256k1 key is replaced on its own curve unless
// the template names another.
func replacementKeyPair(p *Processor, old *object.Object, alg kmip14.CryptographicAlgorithm, length int32, hasLen bool, privA []object.Attr) (*keyPair, error) {
	if _, named := recommendedCurve(privA); !named && alg != kmip14.CryptographicAlgorithmRSA {
		if k, err := keyMaterial(old); err == nil {
			if _, ok := k.pub.(*secp256k1.PublicKey); ok {
				return generateSecp256k1(p, length, hasLen)
			}
		}
	}
	return generateKeyPair(p, alg, length, hasLen, privA)
}

// generateSecp256k1 makes a secp256k1 key pair from the server's random
// source, stored as PKCS#8 and SubjectPublicKeyInfo like the NIST curves.
func generateSecp256k1(p *Processor, length int32, hasLen bool) (*keyPair, error) {
	if hasLen && length != secp256k1.BitSize {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length %d contradicts Recommended Curve SECP256K1 (256)", length)
	}
	k, err := secp256k1.GenerateKey(p.opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("generate secp256k1 key: %w", err)
	}
	priv, err := secp256k1.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal secp256k1 key: %w", err)
	}
	pub, err := secp256k1.MarshalPKIXPublicKey(k.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("marshal secp256k1 public key: %w", err)
	}
	return &keyPair{length: secp256k1.BitSize,
		priv: priv, privFormat: kmip14.KeyFormatTypePKCS_8, privMask: maskECPriv,
		pub: pub, pubFormat: kmip14.KeyFormatTypeX_509, pubMask: maskECPublic,
	}, nil
}
