package kmipops

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

var errUnknownFormat = errors.New("key format not understood")

// parseAsymmetric parses DER key material of the formats we convert between.
// Well-formed material kmipd keeps without using (keyformat_stored.go) is
// errUnknownFormat, as an unknown format is.
func parseAsymmetric(ot kmip14.ObjectType, f kmip14.KeyFormatType, der []byte) (any, error) {
	key, err := parseDER(ot, f, der)
	if err != nil && err != errUnknownFormat && storedOnly(ot, f, der) {
		return nil, errUnknownFormat
	}
	return key, err
}

func parseDER(ot kmip14.ObjectType, f kmip14.KeyFormatType, der []byte) (any, error) {
	if key, ok, err := parseSecp256k1(ot, f, der); ok {
		return key, err
	}
	switch {
	case ot == kmip14.ObjectTypePrivateKey && f == kmip14.KeyFormatTypePKCS_1:
		return x509.ParsePKCS1PrivateKey(der)
	case ot == kmip14.ObjectTypePrivateKey && f == kmip14.KeyFormatTypePKCS_8:
		return x509.ParsePKCS8PrivateKey(der)
	case ot == kmip14.ObjectTypePrivateKey && f == kmip14.KeyFormatTypeECPrivateKey:
		return x509.ParseECPrivateKey(der)
	case ot == kmip14.ObjectTypePublicKey && f == kmip14.KeyFormatTypePKCS_1:
		return x509.ParsePKCS1PublicKey(der)
	case ot == kmip14.ObjectTypePublicKey && f == kmip14.KeyFormatTypeX_509:
		return x509.ParsePKIXPublicKey(der)
	}
	return nil, errUnknownFormat
}

func marshalAsymmetric(ot kmip14.ObjectType, f kmip14.KeyFormatType, key any) ([]byte, bool) {
	var b []byte
	var err error
	switch k := key.(type) {
	case *rsa.PrivateKey:
		switch f {
		case kmip14.KeyFormatTypePKCS_1:
			return x509.MarshalPKCS1PrivateKey(k), true
		case kmip14.KeyFormatTypePKCS_8:
			b, err = x509.MarshalPKCS8PrivateKey(k)
		default:
			return nil, false
		}
	case *ecdsa.PrivateKey:
		switch f {
		case kmip14.KeyFormatTypePKCS_8:
			b, err = x509.MarshalPKCS8PrivateKey(k)
		case kmip14.KeyFormatTypeECPrivateKey:
			b, err = x509.MarshalECPrivateKey(k)
		default:
			return nil, false
		}
	case *rsa.PublicKey:
		switch f {
		case kmip14.KeyFormatTypePKCS_1:
			return x509.MarshalPKCS1PublicKey(k), true
		case kmip14.KeyFormatTypeX_509:
			b, err = x509.MarshalPKIXPublicKey(k)
		default:
			return nil, false
		}
	case *ecdsa.PublicKey:
		if f != kmip14.KeyFormatTypeX_509 {
			return nil, false
		}
		b, err = x509.MarshalPKIXPublicKey(k)
	default:
		b, ok, err := marshalSecp256k1(f, key)
		return b, ok && err == nil
	}
	return b, err == nil
}

// convertFormat returns a copy of body with its key in format want: as it
// is when it already is, converted where that is a re-encoding (symmetric
// Raw ↔ Transparent Symmetric Key; RSA private PKCS#1 ↔ PKCS#8 ↔ Transparent
// RSA Private Key; RSA public PKCS#1 ↔ X.509 ↔ Transparent RSA Public Key;
// EC private PKCS#8 ↔ EC Private Key ↔ Transparent EC(DSA/DH/MQV) Private Key,
// EC public X.509 ↔ Transparent EC(DSA/DH/MQV) Public Key, secp256k1
// included), else Key Format Type Not Supported. A meta-data only key has no
// value to convert (Key Value Not Present).
func convertFormat(ot kmip14.ObjectType, body tree.View, want kmip14.KeyFormatType) (*tree.Node, error) {
	kb := body.Child(kmip14.TagKeyBlock)
	have32, ok := kb.Child(kmip14.TagKeyFormatType).EnumValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonKeyFormatTypeNotSupported, "object has no key format")
	}
	have := kmip14.KeyFormatType(have32)
	if have == want {
		return body.Clone(), nil
	}
	notSupported := Errorf(kmip14.ResultReasonKeyFormatTypeNotSupported, "cannot convert %s to %s", have, want)
	if kb.Child(kmip14.TagKeyWrappingData).Present() {
		return nil, notSupported
	}
	if err := requireKeyValue(kb); err != nil {
		return nil, err
	}
	km := kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial)
	var mat *tree.Node
	switch ot {
	case kmip14.ObjectTypeSymmetricKey:
		switch {
		case have == kmip14.KeyFormatTypeRaw && want == kmip14.KeyFormatTypeTransparentSymmetricKey && km.Type() == ttlv.TypeByteString:
			k, _ := km.BytesValue()
			mat = tree.Struct(kmip14.TagKeyMaterial, tree.Bytes(kmip14.TagKey, k))
		case have == kmip14.KeyFormatTypeTransparentSymmetricKey && want == kmip14.KeyFormatTypeRaw:
			k, ok := km.Child(kmip14.TagKey).BytesValue()
			if !ok {
				return nil, notSupported
			}
			mat = tree.Bytes(kmip14.TagKeyMaterial, k)
		}
	case kmip14.ObjectTypePrivateKey, kmip14.ObjectTypePublicKey:
		key, err := readAsymmetric(ot, have, km) // keyformat_transparent.go
		if errors.Is(err, errUnknownFormat) {
			return nil, notSupported
		}
		if err != nil {
			// Registered material that is not what its format says.
			return nil, &Error{Reason: kmip14.ResultReasonCryptographicFailure, Msg: "key material does not parse as " + have.String(), Err: err}
		}
		mat, _ = keyMaterialIn(ot, want, key)
	}
	if mat == nil {
		return nil, notSupported
	}
	out := body.Clone()
	okb := out.Child(kmip14.TagKeyBlock)
	okb.Child(kmip14.TagKeyFormatType).Int = int64(want)
	kv := okb.Child(kmip14.TagKeyValue)
	for i, c := range kv.Children {
		if c.Tag == kmip14.TagKeyMaterial {
			kv.Children[i] = mat
		}
	}
	return out, nil
}
