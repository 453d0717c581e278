package kmipops

import (
	"crypto"
	_ "crypto/sha1" // registers the kmipHashes crypto.Hash.New uses
	_ "crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// cryptoParams is a parsed Cryptographic Parameters structure (KMIP 1.4
// §2.1.5). Enumerations are zero when absent (no KMIP enumeration uses 0);
// the integers that may legitimately be 0 carry a has-flag.
type cryptoParams struct {
	mode     kmip14.BlockCipherMode
	padding  kmip14.PaddingMethod
	hash     kmip14.HashingAlgorithm
	sigAlg   kmip14.DigitalSignatureAlgorithm
	alg      kmip14.CryptographicAlgorithm
	randomIV bool
	ivBits   int32 // IV Length, in bits
	tagLen   int32 // Tag Length, in bytes
	salt     int32
	hasSalt  bool
	mgf      kmip14.MaskGenerator
	mgfHash  kmip14.HashingAlgorithm
	pSource  []byte
	ctrBits  int32 // Counter Length, in bits
	ctrInit  bool  // Initial Counter Value present
	ivFields bool  // Fixed Field / Invocation Field Length present
}

// parseCryptoParams reads a Cryptographic Parameters structure, from a
// request or from the attribute value. Fields of the wrong type are Invalid
// Field; unknown fields are ignored, as KMIP allows extensions.
func parseCryptoParams(n tree.View) (cryptoParams, error) {
	var cp cryptoParams
	if !n.Present() {
		return cp, nil
	}
	if n.Type() != ttlv.TypeStructure {
		return cp, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Parameters must be a structure")
	}
	bad := func(c tree.View, want ttlv.Type) error {
		return Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Parameters: %s must be of type %s", tree.TagName(c.Tag()), want)
	}
	for c := range n.Children() {
		var want ttlv.Type
		switch c.Tag() {
		case kmip14.TagBlockCipherMode, kmip14.TagPaddingMethod, kmip14.TagHashingAlgorithm,
			kmip14.TagKeyRoleType, kmip14.TagDigitalSignatureAlgorithm, kmip14.TagCryptographicAlgorithm,
			kmip14.TagMaskGenerator, kmip14.TagMaskGeneratorHashingAlgorithm:
			want = ttlv.TypeEnumeration
		case kmip14.TagRandomIV:
			want = ttlv.TypeBoolean
		case kmip14.TagIVLength, kmip14.TagTagLength, kmip14.TagFixedFieldLength, kmip14.TagInvocationFieldLength,
			kmip14.TagCounterLength, kmip14.TagInitialCounterValue, kmip14.TagSaltLength, kmip14.TagTrailerField:
			want = ttlv.TypeInteger
		case kmip14.TagPSource:
			want = ttlv.TypeByteString
		default:
			continue
		}
		if c.Type() != want {
			return cp, bad(c, want)
		}
		var v uint32
		switch want {
		case ttlv.TypeEnumeration:
			v, _ = c.EnumValue()
		case ttlv.TypeInteger:
			i, _ := c.IntValue()
			v = uint32(i)
		case ttlv.TypeBoolean:
			if b, _ := c.BoolValue(); b {
				v = 1
			}
		}
		switch c.Tag() {
		case kmip14.TagBlockCipherMode:
			cp.mode = kmip14.BlockCipherMode(v)
		case kmip14.TagPaddingMethod:
			cp.padding = kmip14.PaddingMethod(v)
		case kmip14.TagHashingAlgorithm:
			cp.hash = kmip14.HashingAlgorithm(v)
		case kmip14.TagDigitalSignatureAlgorithm:
			cp.sigAlg = kmip14.DigitalSignatureAlgorithm(v)
		case kmip14.TagCryptographicAlgorithm:
			cp.alg = kmip14.CryptographicAlgorithm(v)
		case kmip14.TagMaskGenerator:
			cp.mgf = kmip14.MaskGenerator(v)
		case kmip14.TagMaskGeneratorHashingAlgorithm:
			cp.mgfHash = kmip14.HashingAlgorithm(v)
		case kmip14.TagRandomIV:
			cp.randomIV = v != 0
		case kmip14.TagIVLength:
			cp.ivBits = int32(v)
		case kmip14.TagTagLength:
			cp.tagLen = int32(v)
		case kmip14.TagSaltLength:
			cp.salt, cp.hasSalt = int32(v), true
		case kmip14.TagCounterLength:
			cp.ctrBits = int32(v)
		case kmip14.TagInitialCounterValue:
			cp.ctrInit = true
		case kmip14.TagFixedFieldLength, kmip14.TagInvocationFieldLength:
			cp.ivFields = true
		case kmip14.TagPSource:
			cp.pSource, _ = c.BytesValue()
		}
	}
	return cp, nil
}

// effectiveParams are the parameters an operation runs with: the request's
// when it carries any, else those associated with the key (the instance of
// lowest Attribute Index), else none (KMIP 1.4 §4.29: "If there are no
// Cryptographic Parameters provided with the request, then those associated
// with the object SHALL be used"). The request's structure replaces the
// object's whole rather than field by field: a client naming ECB must not
// inherit the object's CBC padding or IV rules by accident.
func effectiveParams(payload *tree.Node, o *object.Object) (cryptoParams, error) {
	if n := payload.Child(kmip14.TagCryptographicParameters); n != nil {
		return parseCryptoParams(n.View())
	}
	if o == nil {
		return cryptoParams{}, nil
	}
	return parseCryptoParams(o.CryptographicParameters())
}

// kmipHashes maps KMIP hashing algorithms to Go's. MD2, MD4, MD5, RIPEMD-160,
// Tiger and Whirlpool are left out on purpose: broken or not in the
// standard library.
var kmipHashes = map[kmip14.HashingAlgorithm]crypto.Hash{
	kmip14.HashingAlgorithmSHA_1:       crypto.SHA1,
	kmip14.HashingAlgorithmSHA_224:     crypto.SHA224,
	kmip14.HashingAlgorithmSHA_256:     crypto.SHA256,
	kmip14.HashingAlgorithmSHA_384:     crypto.SHA384,
	kmip14.HashingAlgorithmSHA_512:     crypto.SHA512,
	kmip14.HashingAlgorithmSHA_512_224: crypto.SHA512_224,
	kmip14.HashingAlgorithmSHA_512_256: crypto.SHA512_256,
	kmip14.HashingAlgorithmSHA_3_224:   crypto.SHA3_224,
	kmip14.HashingAlgorithmSHA_3_256:   crypto.SHA3_256,
	kmip14.HashingAlgorithmSHA_3_384:   crypto.SHA3_384,
	kmip14.HashingAlgorithmSHA_3_512:   crypto.SHA3_512,
}

// goHash resolves a KMIP hashing algorithm; what names the field is used in
// the client message.
func goHash(h kmip14.HashingAlgorithm, what string) (crypto.Hash, error) {
	if h == 0 {
		return 0, Errorf(kmip14.ResultReasonInvalidMessage, "%s is required", what)
	}
	gh, ok := kmipHashes[h]
	if !ok {
		return 0, Errorf(kmip14.ResultReasonFeatureNotSupported, "%s %s not supported", what, h)
	}
	return gh, nil
}

// macHashes are the HMAC algorithms and their kmipHashes.
var macHashes = map[kmip14.CryptographicAlgorithm]crypto.Hash{
	kmip14.CryptographicAlgorithmHMAC_SHA1:     crypto.SHA1,
	kmip14.CryptographicAlgorithmHMAC_SHA224:   crypto.SHA224,
	kmip14.CryptographicAlgorithmHMAC_SHA256:   crypto.SHA256,
	kmip14.CryptographicAlgorithmHMAC_SHA384:   crypto.SHA384,
	kmip14.CryptographicAlgorithmHMAC_SHA512:   crypto.SHA512,
	kmip14.CryptographicAlgorithmHMAC_SHA3_224: crypto.SHA3_224,
	kmip14.CryptographicAlgorithmHMAC_SHA3_256: crypto.SHA3_256,
	kmip14.CryptographicAlgorithmHMAC_SHA3_384: crypto.SHA3_384,
	kmip14.CryptographicAlgorithmHMAC_SHA3_512: crypto.SHA3_512,
}

// sigScheme is what a Digital Signature Algorithm stands for.
type sigScheme struct {
	alg     kmip14.CryptographicAlgorithm // RSA or ECDSA
	padding kmip14.PaddingMethod          // RSA only
	hash    kmip14.HashingAlgorithm       // 0: from Hashing Algorithm (RSASSA-PSS)
}

var sigSchemes = map[kmip14.DigitalSignatureAlgorithm]sigScheme{
	kmip14.DigitalSignatureAlgorithmSHA_1WithRSAEncryption:    {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPKCS1V1_5, kmip14.HashingAlgorithmSHA_1},
	kmip14.DigitalSignatureAlgorithmSHA_224WithRSAEncryption:  {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPKCS1V1_5, kmip14.HashingAlgorithmSHA_224},
	kmip14.DigitalSignatureAlgorithmSHA_256WithRSAEncryption:  {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPKCS1V1_5, kmip14.HashingAlgorithmSHA_256},
	kmip14.DigitalSignatureAlgorithmSHA_384WithRSAEncryption:  {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPKCS1V1_5, kmip14.HashingAlgorithmSHA_384},
	kmip14.DigitalSignatureAlgorithmSHA_512WithRSAEncryption:  {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPKCS1V1_5, kmip14.HashingAlgorithmSHA_512},
	kmip14.DigitalSignatureAlgorithmSHA3_256WithRSAEncryption: {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPKCS1V1_5, kmip14.HashingAlgorithmSHA_3_256},
	kmip14.DigitalSignatureAlgorithmSHA3_384WithRSAEncryption: {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPKCS1V1_5, kmip14.HashingAlgorithmSHA_3_384},
	kmip14.DigitalSignatureAlgorithmSHA3_512WithRSAEncryption: {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPKCS1V1_5, kmip14.HashingAlgorithmSHA_3_512},
	kmip14.DigitalSignatureAlgorithmRSASSA_PSS:                {kmip14.CryptographicAlgorithmRSA, kmip14.PaddingMethodPSS, 0},
	kmip14.DigitalSignatureAlgorithmECDSAWithSHA_1:            {kmip14.CryptographicAlgorithmECDSA, 0, kmip14.HashingAlgorithmSHA_1},
	kmip14.DigitalSignatureAlgorithmECDSAWithSHA224:           {kmip14.CryptographicAlgorithmECDSA, 0, kmip14.HashingAlgorithmSHA_224},
	kmip14.DigitalSignatureAlgorithmECDSAWithSHA256:           {kmip14.CryptographicAlgorithmECDSA, 0, kmip14.HashingAlgorithmSHA_256},
	kmip14.DigitalSignatureAlgorithmECDSAWithSHA384:           {kmip14.CryptographicAlgorithmECDSA, 0, kmip14.HashingAlgorithmSHA_384},
	kmip14.DigitalSignatureAlgorithmECDSAWithSHA512:           {kmip14.CryptographicAlgorithmECDSA, 0, kmip14.HashingAlgorithmSHA_512},
}

// signatureScheme folds Digital Signature Algorithm into padding and hash,
// refusing combinations that contradict it.
func (cp cryptoParams) signatureScheme() (padding kmip14.PaddingMethod, hash kmip14.HashingAlgorithm, err error) {
	padding, hash = cp.padding, cp.hash
	if cp.sigAlg == 0 {
		return padding, hash, nil
	}
	s, ok := sigSchemes[cp.sigAlg]
	if !ok {
		return 0, 0, Errorf(kmip14.ResultReasonFeatureNotSupported, "Digital Signature Algorithm %s not supported", cp.sigAlg)
	}
	if s.padding != 0 {
		if padding != 0 && padding != s.padding {
			return 0, 0, Errorf(kmip14.ResultReasonInvalidField, "Padding Method %s contradicts %s", padding, cp.sigAlg)
		}
		padding = s.padding
	}
	if s.hash != 0 {
		if hash != 0 && hash != s.hash {
			return 0, 0, Errorf(kmip14.ResultReasonInvalidField, "Hashing Algorithm %s contradicts %s", hash, cp.sigAlg)
		}
		hash = s.hash
	}
	return padding, hash, nil
}
