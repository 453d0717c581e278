package kmipops

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

const (
	maskEncDec   = uint32(kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskDecrypt | kmip14.CryptographicUsageMaskWrapKey | kmip14.CryptographicUsageMaskUnwrapKey)
	maskMAC      = uint32(kmip14.CryptographicUsageMaskMACGenerate | kmip14.CryptographicUsageMaskMACVerify)
	maskRSAPriv  = uint32(kmip14.CryptographicUsageMaskSign | kmip14.CryptographicUsageMaskDecrypt | kmip14.CryptographicUsageMaskUnwrapKey)
	maskRSAPub   = uint32(kmip14.CryptographicUsageMaskVerify | kmip14.CryptographicUsageMaskEncrypt | kmip14.CryptographicUsageMaskWrapKey)
	maskECPriv   = uint32(kmip14.CryptographicUsageMaskSign)
	maskECPublic = uint32(kmip14.CryptographicUsageMaskVerify)
)

func requireObjectType(payload *tree.Node) (kmip14.ObjectType, error) {
	n := payload.Child(kmip14.TagObjectType)
	if n == nil {
		return 0, Errorf(kmip14.ResultReasonInvalidMessage, "missing Object Type")
	}
	v, ok := n.EnumValue()
	if !ok {
		return 0, Errorf(kmip14.ResultReasonInvalidField, "Object Type must be an enumeration")
	}
	return kmip14.ObjectType(v), nil
}

// algLength reads Cryptographic Algorithm and Length from client attributes.
// The values' types were checked when they were parsed.
func algLength(l []object.Attr) (alg kmip14.CryptographicAlgorithm, length int32, hasAlg, hasLen bool) {
	for _, a := range l {
		switch a.Name() {
		case object.AttrCryptoAlgorithm:
			v, _ := a.Value().EnumValue()
			alg, hasAlg = kmip14.CryptographicAlgorithm(v), true
		case object.AttrCryptoLength:
			length, _ = a.Value().IntValue()
			hasLen = true
		}
	}
	return
}

// withDefaults appends server-chosen values for what the client left out.
func withDefaults(l []object.Attr, alg kmip14.CryptographicAlgorithm, length int32, mask uint32) []object.Attr {
	out := append([]object.Attr(nil), l...)
	if !hasAttr(out, object.AttrCryptoAlgorithm) {
		out = append(out, object.NewAttr(object.AttrCryptoAlgorithm, tree.Enum(0, uint32(alg))))
	}
	if !hasAttr(out, object.AttrCryptoLength) {
		out = append(out, object.NewAttr(object.AttrCryptoLength, tree.Int(0, length)))
	}
	if !hasAttr(out, object.AttrUsageMask) {
		out = append(out, object.NewAttr(object.AttrUsageMask, tree.Int(0, int32(mask))))
	}
	return out
}

func keyBlock(alg kmip14.CryptographicAlgorithm, length int32, format kmip14.KeyFormatType, material []byte) *tree.Node {
	return tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(format)),
		tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, material)),
		tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(alg)),
		tree.Int(kmip14.TagCryptographicLength, length),
	)
}

func opCreate(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	ot, err := requireObjectType(payload)
	if err != nil {
		return nil, err
	}
	if ot != kmip14.ObjectTypeSymmetricKey {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Create supports Symmetric Key only (use CreateKeyPair or Register)")
	}
	attrs, err := ic.parseTemplate(payload.Child(kmip14.TagTemplateAttribute))
	if err != nil {
		return nil, err
	}
	o, err := p.newSymmetric(ic, attrs, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm is required"))
	if err != nil {
		return nil, err
	}
	if err := ic.objects.Insert(ic.ctx, o); err != nil {
		return nil, err
	}
	ic.placeholder = o.UID()
	return tree.Struct(kmip14.TagResponsePayload,
		tree.Enum(kmip14.TagObjectType, uint32(ot)),
		tree.Text(kmip14.TagUniqueIdentifier, o.UID())), nil
}

func opCreateKeyPair(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	common, err := ic.parseTemplate(payload.Child(kmip14.TagCommonTemplateAttribute))
	if err != nil {
		return nil, err
	}
	privT, err := ic.parseTemplate(payload.Child(kmip14.TagPrivateKeyTemplateAttribute))
	if err != nil {
		return nil, err
	}
	pubT, err := ic.parseTemplate(payload.Child(kmip14.TagPublicKeyTemplateAttribute))
	if err != nil {
		return nil, err
	}
	privA, pubA := mergeTemplates(common, privT), mergeTemplates(common, pubT)
	alg, length, hasAlg, hasLen := algLength(privA)
	palg, plen, phasAlg, phasLen := algLength(pubA)
	if !hasAlg || !phasAlg || alg != palg {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "one Cryptographic Algorithm is required for both keys")
	}
	if hasLen != phasLen || length != plen {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "the two keys must have the same Cryptographic Length")
	}
	kp, err := generateKeyPair(p, alg, length, hasLen, privA)
	if err != nil {
		return nil, err
	}
	priv, err := p.newObject(ic, kmip14.ObjectTypePrivateKey,
		tree.Struct(kmip14.TagPrivateKey, keyBlock(alg, kp.length, kp.privFormat, kp.priv)),
		withDefaults(privA, alg, kp.length, kp.privMask), true)
	if err != nil {
		return nil, err
	}
	pub, err := p.newObject(ic, kmip14.ObjectTypePublicKey,
		tree.Struct(kmip14.TagPublicKey, keyBlock(alg, kp.length, kp.pubFormat, kp.pub)),
		withDefaults(pubA, alg, kp.length, kp.pubMask), true)
	if err != nil {
		return nil, err
	}
	// Each key links to the other, so both uids are needed first.
	if err := p.objects.AssignUID(priv); err != nil {
		return nil, err
	}
	if err := p.objects.AssignUID(pub); err != nil {
		return nil, err
	}
	priv.Add(object.AttrLink, linkValue(kmip14.LinkTypePublicKeyLink, pub.UID()))
	pub.Add(object.AttrLink, linkValue(kmip14.LinkTypePrivateKeyLink, priv.UID()))
	if err := ic.objects.Insert(ic.ctx, priv); err != nil {
		return nil, err
	}
	if err := ic.objects.Insert(ic.ctx, pub); err != nil {
		if derr := ic.objects.Remove(ic.ctx, priv.UID()); derr != nil {
			p.log.Error("could not roll back private key of failed key pair", "uid", priv.UID(), "err", derr)
		}
		return nil, err
	}
	ic.placeholder = priv.UID()
	return tree.Struct(kmip14.TagResponsePayload,
		tree.Text(kmip14.TagPrivateKeyUniqueIdentifier, priv.UID()),
		tree.Text(kmip14.TagPublicKeyUniqueIdentifier, pub.UID())), nil
}

func linkValue(t kmip14.LinkType, uid string) *tree.Node {
	return tree.Struct(kmip14.TagAttributeValue,
		tree.Enum(kmip14.TagLinkType, uint32(t)),
		tree.Text(kmip14.TagLinkedObjectIdentifier, uid))
}

type keyPair struct {
	length                int32
	priv, pub             []byte
	privFormat, pubFormat kmip14.KeyFormatType
	privMask, pubMask     uint32
}

// generateKeyPair makes the key material. RSA keys are stored as PKCS#1,
// as the OASIS AKLC test cases show; EC keys as PKCS#8 and SubjectPublicKeyInfo.
func generateKeyPair(p *Processor, alg kmip14.CryptographicAlgorithm, length int32, hasLen bool, privA []object.Attr) (*keyPair, error) {
	switch alg {
	case kmip14.CryptographicAlgorithmRSA:
		if !hasLen {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length is required for RSA")
		}
		if length < 1024 || length > 4096 || length%8 != 0 {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "RSA length %d not supported (1024–4096)", length)
		}
		k, err := rsa.GenerateKey(p.opts.Rand, int(length))
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		return &keyPair{length: length,
			priv: x509.MarshalPKCS1PrivateKey(k), privFormat: kmip14.KeyFormatTypePKCS_1, privMask: maskRSAPriv,
			pub: x509.MarshalPKCS1PublicKey(&k.PublicKey), pubFormat: kmip14.KeyFormatTypePKCS_1, pubMask: maskRSAPub,
		}, nil
	case kmip14.CryptographicAlgorithmEC, kmip14.CryptographicAlgorithmECDSA:
		if wantsSecp256k1(privA) { // keyformat_secp256k1.go
			return generateSecp256k1(p, length, hasLen)
		}
		curve, err := curveFor(length, hasLen, privA)
		if err != nil {
			return nil, err
		}
		k, err := ecdsa.GenerateKey(curve, p.opts.Rand)
		if err != nil {
			return nil, fmt.Errorf("generate EC key: %w", err)
		}
		priv, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("marshal EC key: %w", err)
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("marshal EC public key: %w", err)
		}
		return &keyPair{length: int32(curve.Params().BitSize),
			priv: priv, privFormat: kmip14.KeyFormatTypePKCS_8, privMask: maskECPriv,
			pub: pub, pubFormat: kmip14.KeyFormatTypeX_509, pubMask: maskECPublic,
		}, nil
	}
	return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm %s not supported for CreateKeyPair", alg)
}

// curveFor picks the curve from Cryptographic Domain Parameters' Recommended
// Curve, else from the length.
func curveFor(length int32, hasLen bool, attrs []object.Attr) (elliptic.Curve, error) {
	for _, a := range attrs {
		if a.Name() != object.AttrCryptoDomainParameters {
			continue
		}
		if rc, ok := a.Value().Child(kmip14.TagRecommendedCurve).EnumValue(); ok {
			switch kmip14.RecommendedCurve(rc) {
			case kmip14.RecommendedCurveP_256:
				length, hasLen = 256, true
			case kmip14.RecommendedCurveP_384:
				length, hasLen = 384, true
			case kmip14.RecommendedCurveP_521:
				length, hasLen = 521, true
			default:
				return nil, Errorf(kmip14.ResultReasonInvalidField, "Recommended Curve not supported")
			}
		}
	}
	if !hasLen {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length or Recommended Curve is required for EC")
	}
	switch length {
	case 256:
		return elliptic.P256(), nil
	case 384:
		return elliptic.P384(), nil
	case 521:
		return elliptic.P521(), nil
	}
	return nil, Errorf(kmip14.ResultReasonInvalidField, "EC length %d not supported (256, 384, 521)", length)
}

// rngValue describes the generator of server-made keys (Random Number
// Generator attribute). crypto/rand is the kernel CSPRNG, which has no KMIP
// name, except in Go's FIPS 140-3 mode where it is a CTR_DRBG on AES-256.
func (p *Processor) rngValue() *tree.Node {
	if p.opts.Rand == rand.Reader && fips140.Enabled() {
		return tree.Struct(kmip14.TagAttributeValue,
			tree.Enum(kmip14.TagRNGAlgorithm, uint32(kmip14.RNGAlgorithmDRBG)),
			tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
			tree.Int(kmip14.TagCryptographicLength, 256),
			tree.Enum(kmip14.TagDRBGAlgorithm, uint32(kmip14.DRBGAlgorithmCTR)))
	}
	return tree.Struct(kmip14.TagAttributeValue,
		tree.Enum(kmip14.TagRNGAlgorithm, uint32(kmip14.RNGAlgorithmUnspecified)))
}
