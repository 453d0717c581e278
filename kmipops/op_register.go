package kmipops

import (
	"crypto/sha256"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// bodyTags maps each registrable object type to its object structure tag.
var bodyTags = map[kmip14.ObjectType]ttlv.Tag{
	kmip14.ObjectTypeCertificate:  kmip14.TagCertificate,
	kmip14.ObjectTypeSymmetricKey: kmip14.TagSymmetricKey,
	kmip14.ObjectTypePublicKey:    kmip14.TagPublicKey,
	kmip14.ObjectTypePrivateKey:   kmip14.TagPrivateKey,
	kmip14.ObjectTypeSplitKey:     kmip14.TagSplitKey,
	kmip14.ObjectTypeSecretData:   kmip14.TagSecretData,
	kmip14.ObjectTypeOpaqueObject: kmip14.TagOpaqueObject,
	kmip14.ObjectTypePGPKey:       kmip14.TagPGPKey,
}

func opRegister(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	ot, err := requireObjectType(payload)
	if err != nil {
		return nil, err
	}
	tag, ok := bodyTags[ot]
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "object type %s cannot be registered", ot)
	}
	attrs, err := parseTemplate(payload.Child(kmip14.TagTemplateAttribute))
	if err != nil {
		return nil, err
	}
	body := payload.Child(tag)
	if body == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing %s object for Object Type %s", tag, ot)
	}
	body = body.Clone()
	if err := checkBody(ot, body, attrs); err != nil {
		return nil, err
	}
	o, err := p.newObject(ic, ot, body, attrs, false)
	if err != nil {
		return nil, err
	}
	if err := p.insert(ic, o); err != nil {
		return nil, err
	}
	ic.placeholder = o.uid
	return respUID(o.uid), nil
}

// checkBody validates the object structure a client registers, enough that
// Get can serve it back and key formats can be converted.
func checkBody(ot kmip14.ObjectType, body *tree.Node, attrs []attr) error {
	if body.Type != ttlv.TypeStructure {
		return Errorf(kmip14.ResultReasonInvalidField, "%s must be a structure", body.Tag)
	}
	need := func(tag ttlv.Tag, typ ttlv.Type) error {
		c := body.Child(tag)
		if c == nil {
			return Errorf(kmip14.ResultReasonInvalidMessage, "%s needs %s", body.Tag, tag)
		}
		if c.Type != typ {
			return Errorf(kmip14.ResultReasonInvalidField, "%s must be of type %s", tag, typ)
		}
		return nil
	}
	switch ot {
	case kmip14.ObjectTypeCertificate:
		if err := need(kmip14.TagCertificateType, ttlv.TypeEnumeration); err != nil {
			return err
		}
		return need(kmip14.TagCertificateValue, ttlv.TypeByteString)
	case kmip14.ObjectTypeOpaqueObject:
		if err := need(kmip14.TagOpaqueDataType, ttlv.TypeEnumeration); err != nil {
			return err
		}
		return need(kmip14.TagOpaqueDataValue, ttlv.TypeByteString)
	case kmip14.ObjectTypeSecretData:
		if err := need(kmip14.TagSecretDataType, ttlv.TypeEnumeration); err != nil {
			return err
		}
	}
	if err := need(kmip14.TagKeyBlock, ttlv.TypeStructure); err != nil {
		return err
	}
	return checkKeyBlock(ot, body.Child(kmip14.TagKeyBlock), attrs)
}

func checkKeyBlock(ot kmip14.ObjectType, kb *tree.Node, attrs []attr) error {
	fmtN := kb.Child(kmip14.TagKeyFormatType)
	if _, ok := fmtN.EnumValue(); !ok {
		return Errorf(kmip14.ResultReasonInvalidField, "Key Block needs a Key Format Type enumeration")
	}
	kv := kb.Child(kmip14.TagKeyValue)
	if kv == nil {
		return Errorf(kmip14.ResultReasonInvalidMessage, "Key Block needs a Key Value")
	}
	wrapped := kb.Child(kmip14.TagKeyWrappingData) != nil
	switch {
	case wrapped && kv.Type == ttlv.TypeByteString:
	case kv.Type == ttlv.TypeStructure && kv.Child(kmip14.TagKeyMaterial) != nil:
	default:
		return Errorf(kmip14.ResultReasonInvalidField, "Key Value needs Key Material")
	}
	alg, length, hasAlg, hasLen := algLength(attrs)
	for _, c := range []struct {
		tag  ttlv.Tag
		typ  ttlv.Type
		has  bool
		want int64
	}{
		{kmip14.TagCryptographicAlgorithm, ttlv.TypeEnumeration, hasAlg, int64(alg)},
		{kmip14.TagCryptographicLength, ttlv.TypeInteger, hasLen, int64(length)},
	} {
		n := kb.Child(c.tag)
		if n == nil {
			continue
		}
		if n.Type != c.typ {
			return Errorf(kmip14.ResultReasonInvalidField, "%s must be of type %s", c.tag, c.typ)
		}
		if c.has && n.Int != c.want {
			return Errorf(kmip14.ResultReasonInvalidField, "%s in the Key Block differs from the template", c.tag)
		}
	}
	if wrapped {
		return nil
	}
	mat, isBytes := kv.Child(kmip14.TagKeyMaterial).BytesValue()
	f, _ := fmtN.EnumValue()
	kalg, _ := kb.Child(kmip14.TagCryptographicAlgorithm).EnumValue()
	if !hasAlg {
		alg = kmip14.CryptographicAlgorithm(kalg)
	}
	switch kmip14.KeyFormatType(f) {
	case kmip14.KeyFormatTypeRaw, kmip14.KeyFormatTypeOpaque, kmip14.KeyFormatTypePKCS_1,
		kmip14.KeyFormatTypePKCS_8, kmip14.KeyFormatTypeX_509, kmip14.KeyFormatTypeECPrivateKey:
		if !isBytes {
			return Errorf(kmip14.ResultReasonInvalidField, "Key Material must be a byte string for %s", kmip14.KeyFormatType(f))
		}
	}
	if ot == kmip14.ObjectTypeSymmetricKey && kmip14.KeyFormatType(f) == kmip14.KeyFormatTypeRaw && alg == kmip14.CryptographicAlgorithmAES {
		if l := len(mat); l != 16 && l != 24 && l != 32 {
			return Errorf(kmip14.ResultReasonInvalidField, "AES key material must be 16, 24 or 32 bytes")
		}
	}
	if isBytes && (ot == kmip14.ObjectTypePrivateKey || ot == kmip14.ObjectTypePublicKey) {
		if _, err := parseAsymmetric(ot, kmip14.KeyFormatType(f), mat); err != nil && err != errUnknownFormat {
			return Errorf(kmip14.ResultReasonInvalidField, "Key Material is not a valid %s %s", kmip14.KeyFormatType(f), ot)
		}
	}
	return nil
}

// newObject builds a new object: client attributes, then what the server
// sets (KMIP 1.4 §3: Object Type, State, dates, Digest, Fresh, ...).
func (p *Processor) newObject(ic *itemCtx, typ kmip14.ObjectType, body *tree.Node, client []attr, generated bool) (*object, error) {
	o := &object{typ: typ, body: body}
	if err := o.applyClientAttrs(client); err != nil {
		return nil, err
	}
	now := ic.now
	o.set(attrObjectType, tree.Enum(0, uint32(typ)))
	o.set(attrState, tree.Enum(0, uint32(kmip14.StatePreActive)))
	o.set(attrInitialDate, tree.Time(0, now))
	o.set(attrLastChangeDate, tree.Time(0, now))
	o.set(attrOriginalCreationDate, tree.Time(0, now))
	kb := body.Child(kmip14.TagKeyBlock)
	if a := kb.Child(kmip14.TagCryptographicAlgorithm); a != nil && o.get(attrCryptoAlgorithm) == nil {
		o.set(attrCryptoAlgorithm, tree.Enum(0, uint32(a.Int)))
	}
	if l := kb.Child(kmip14.TagCryptographicLength); l != nil && o.get(attrCryptoLength) == nil {
		o.set(attrCryptoLength, tree.Int(0, int32(l.Int)))
	}
	if typ == kmip14.ObjectTypeCertificate {
		o.set(attrCertificateType, tree.Enum(0, uint32(body.Child(kmip14.TagCertificateType).Int)))
		o.set(attrCertificateLength, tree.Int(0, int32(len(body.Child(kmip14.TagCertificateValue).Bytes))))
	}
	if d := digestOf(body); d != nil {
		o.add(attrDigest, d)
	}
	sensitive, ok := o.get(attrSensitive).BoolValue()
	if !ok {
		o.set(attrSensitive, tree.Bool(0, false))
	}
	extractable, ok := o.get(attrExtractable).BoolValue()
	if !ok {
		extractable = true
		o.set(attrExtractable, tree.Bool(0, true))
	}
	o.set(attrAlwaysSensitive, tree.Bool(0, sensitive))
	o.set(attrNeverExtractable, tree.Bool(0, !extractable))
	// Fresh: the key has not been served to a client yet; a registered
	// object came from one.
	o.set(attrFresh, tree.Bool(0, generated))
	if generated {
		o.set(attrRNG, p.rngValue())
	}
	if leasable(typ) {
		o.set(attrLeaseTime, tree.Interval(0, p.opts.LeaseTime))
	}
	o.advanceState(now)
	return o, nil
}

// digestOf is the Digest attribute (KMIP 1.4 §3.17): SHA-256 of the key
// material as held (with its Key Format Type), of the certificate or of the
// opaque data. Wrapped and transparent keys get none.
func digestOf(body *tree.Node) *tree.Node {
	var data []byte
	var format *tree.Node
	switch body.Tag {
	case kmip14.TagCertificate:
		data, _ = body.Child(kmip14.TagCertificateValue).BytesValue()
	case kmip14.TagOpaqueObject:
		data, _ = body.Child(kmip14.TagOpaqueDataValue).BytesValue()
	default:
		kb := body.Child(kmip14.TagKeyBlock)
		if kb.Child(kmip14.TagKeyWrappingData) != nil {
			return nil
		}
		data, _ = kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue()
		if f := kb.Child(kmip14.TagKeyFormatType); f != nil {
			format = tree.Enum(kmip14.TagKeyFormatType, uint32(f.Int))
		}
	}
	if data == nil {
		return nil
	}
	sum := sha256.Sum256(data)
	return tree.Struct(kmip14.TagAttributeValue,
		tree.Enum(kmip14.TagHashingAlgorithm, uint32(kmip14.HashingAlgorithmSHA_256)),
		tree.Bytes(kmip14.TagDigestValue, sum[:]),
		format)
}
