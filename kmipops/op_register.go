package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
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
	if ot == kmip14.ObjectTypeTemplate {
		return registerTemplate(ic, payload) // op_template.go
	}
	tag, ok := bodyTags[ot]
	if !ok || (ot == kmip14.ObjectTypePGPKey && ic.v.minor < 2) { // PGP Key: KMIP 1.2 §2.2.9
		return nil, Errorf(kmip14.ResultReasonInvalidField, "object type %s cannot be registered", ot)
	}
	attrs, err := ic.parseTemplate(payload.Child(kmip14.TagTemplateAttribute))
	if err != nil {
		return nil, err
	}
	body := payload.Child(tag)
	if body == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing %s object for Object Type %s", tag, ot)
	}
	body = body.Clone()
	if err := checkBody(ot, body, attrs, ic.v.minor); err != nil {
		return nil, err
	}
	o, err := p.newObject(ic, ot, body, attrs, false)
	if err != nil {
		return nil, err
	}
	if err := ic.objects.Insert(ic.ctx, o); err != nil {
		return nil, err
	}
	ic.placeholder = o.UID()
	return respUID(o.UID()), nil
}

// checkBody validates the structure of the object a client registers, so
// that Get can serve it back. Register stores the key material as the
// client gives it (KMIP 1.4 §4.3): a key registered for one purpose, such
// as a base key for DeriveKey, need not suit another. Material that a later
// operation cannot use (an AES key of 7 bytes, PKCS#1 bytes labelled
// PKCS#8) is refused by that operation.
func checkBody(ot kmip14.ObjectType, body *tree.Node, attrs []object.Attr, minor int32) error {
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
	case kmip14.ObjectTypeSplitKey:
		if err := checkSplitKeyFields(body); err != nil { // op_splitkey.go
			return err
		}
	case kmip14.ObjectTypePGPKey:
		if err := need(kmip14.TagPGPKeyVersion, ttlv.TypeInteger); err != nil {
			return err
		}
	}
	if err := need(kmip14.TagKeyBlock, ttlv.TypeStructure); err != nil {
		return err
	}
	return checkKeyBlock(ot, body.Child(kmip14.TagKeyBlock), attrs, minor)
}

func checkKeyBlock(ot kmip14.ObjectType, kb *tree.Node, attrs []object.Attr, minor int32) error {
	fmtN := kb.Child(kmip14.TagKeyFormatType)
	if _, ok := fmtN.EnumValue(); !ok {
		return Errorf(kmip14.ResultReasonInvalidField, "Key Block needs a Key Format Type enumeration")
	}
	kv := kb.Child(kmip14.TagKeyValue)
	if kv == nil {
		// A meta-data only key (keyvalue.go).
		if err := checkMetaDataOnly(ot, kb, minor); err != nil {
			return err
		}
	}
	wrapped := kb.Child(kmip14.TagKeyWrappingData) != nil
	switch {
	case kv == nil:
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
	if wrapped || kv == nil {
		return nil
	}
	km := kv.Child(kmip14.TagKeyMaterial)
	f, _ := fmtN.EnumValue()
	switch kmip14.KeyFormatType(f) {
	case kmip14.KeyFormatTypeRaw, kmip14.KeyFormatTypeOpaque, kmip14.KeyFormatTypePKCS_1,
		kmip14.KeyFormatTypePKCS_8, kmip14.KeyFormatTypeX_509, kmip14.KeyFormatTypeECPrivateKey:
		if km.Type != ttlv.TypeByteString {
			return Errorf(kmip14.ResultReasonInvalidField, "Key Material must be a byte string for %s", kmip14.KeyFormatType(f))
		}
	}
	if ot != kmip14.ObjectTypeSymmetricKey {
		return nil
	}
	// A Cryptographic Length that is not the length of the key material
	// contradicts the request itself.
	mat, ok := km.BytesValue()
	if kmip14.KeyFormatType(f) == kmip14.KeyFormatTypeTransparentSymmetricKey {
		mat, ok = km.Child(kmip14.TagKey).BytesValue()
	}
	if !ok {
		return nil
	}
	if !hasAlg {
		kalg, _ := kb.Child(kmip14.TagCryptographicAlgorithm).EnumValue()
		alg = kmip14.CryptographicAlgorithm(kalg)
	}
	if !hasLen {
		length, hasLen = kb.Child(kmip14.TagCryptographicLength).IntValue()
	}
	if n, ok := keyBytes(alg, length); hasLen && (!ok || n != len(mat)) {
		return Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length %d does not match %d bytes of key material", length, len(mat))
	}
	return nil
}

// defaultPolicy names kmipd's one operation policy, the Default Operation
// Policy of KMIP 1.x §3.18.1 (an object is its creator's alone), by the name
// the OASIS TC-111 cases and PyKMIP give it.
const defaultPolicy = "default"

// newObject builds a new object with the server's policy (lease, random
// number generator, operation policy); object.New sets the rest.
//
// KMIP 1.0–1.2 §3.18: the Operation Policy Name "SHOULD be set when
// operations that result in a new Managed Object on the server are
// executed", explicitly or by a server default, so a client's Locate by
// policy finds the objects it governs. KMIP 1.3 deprecated the attribute, so
// requests of 1.3 and 1.4 leave it to the client.
func (p *Processor) newObject(ic *itemCtx, typ kmip14.ObjectType, body *tree.Node, client []object.Attr, generated bool) (*object.Object, error) {
	s := object.Spec{Type: typ, Body: body, Attrs: client, Now: ic.now, Generated: generated, Group: p.assignedGroup()}
	if ic.v.minor <= 2 {
		s.PolicyName = defaultPolicy
	}
	if generated {
		s.RNG = p.rngValue()
	}
	if leasable(typ) {
		s.LeaseTime = p.opts.LeaseTime
	}
	return object.New(s)
}
