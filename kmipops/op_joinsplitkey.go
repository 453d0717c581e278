package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/internal/splitkey"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// Join Split Key (KMIP 1.4 §4.39, 1.2 and later): Split Key objects of one
// split combined into a Symmetric Key or Secret Data object.
//
//   - Fewer parts than the Split Key Threshold is Cryptographic Failure, as
//     the OASIS TC-SJ cases record; parts that cannot come from one split
//     (different methods, counts or lengths, a part twice) are Invalid Field.
//   - The new object's algorithm and length are the template's, else those
//     the parts record; its usage mask the template's, else the parts'. It
//     is Sensitive if a part is, and not extractable if a part is not.
//   - It gets a Parent Link to each part joined (Link Types §3.35). Parts
//     are read, not changed; like Create Split Key, joining is key
//     management and needs no usage mask bit, only parts that are neither
//     destroyed nor compromised.
//   - The response carries the new object's identifier only, as the OASIS
//     cases record (see Create Split Key on 1.2's Object Type).

// joinPart is one loaded Split Key object.
type joinPart struct {
	o       *object.Object
	part    splitkey.Part
	alg     kmip14.CryptographicAlgorithm
	hasAlg  bool
	bits    int32
	hasBits bool
}

func opJoinSplitKey(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	ot, err := requireObjectType(payload)
	if err != nil {
		return nil, err
	}
	switch ot {
	case kmip14.ObjectTypeSymmetricKey, kmip14.ObjectTypeSecretData:
	case kmip14.ObjectTypePrivateKey:
		return nil, Errorf(kmip14.ResultReasonFeatureNotSupported, "joining into a Private Key is not supported (Symmetric Key, Secret Data)")
	default:
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Join Split Key cannot make a %s", ot)
	}
	sdType := kmip14.SecretDataTypeSeed
	if n := payload.Child(kmip14.TagSecretDataType); n != nil {
		v, ok := n.EnumValue()
		if !ok || ot != kmip14.ObjectTypeSecretData {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Secret Data Type is an enumeration, for Secret Data only")
		}
		sdType = kmip14.SecretDataType(v)
	}
	ids := payload.All(kmip14.TagUniqueIdentifier)
	if len(ids) == 0 {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Join Split Key needs the Unique Identifiers of the parts")
	}
	if len(ids) > maxSplitKeyParts {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "at most %d parts", maxSplitKeyParts)
	}
	attrs, err := ic.parseTemplate(payload.Child(kmip14.TagTemplateAttribute))
	if err != nil {
		return nil, err
	}
	parts := make([]joinPart, 0, len(ids))
	defer func() {
		for _, jp := range parts {
			clear(jp.part.Key)
		}
	}()
	for _, n := range ids {
		uid, ok := n.TextValue()
		if !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Unique Identifier must be a text string")
		}
		jp, err := loadPart(ic, uid)
		if err != nil {
			return nil, err
		}
		parts = append(parts, jp)
	}
	tAlg, tBits, tHasAlg, tHasLen := algLength(attrs)
	secretLen := 0
	switch {
	case tHasLen && (tBits <= 0 || tBits%8 != 0):
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Length %d is not a whole number of bytes", tBits)
	case tHasLen && ot == kmip14.ObjectTypeSymmetricKey:
		// Triple DES counts its key bits without parity (168 for 24 bytes).
		if _, n, _, err := symmetricSpec(tAlg, tBits, true); err == nil {
			secretLen = n
		} else {
			secretLen = int(tBits / 8)
		}
	case tHasLen:
		secretLen = int(tBits / 8)
	case parts[0].hasBits && parts[0].bits > 0 && parts[0].bits%8 == 0:
		secretLen = int(parts[0].bits / 8)
	}
	keys := make([]splitkey.Part, len(parts))
	for i, jp := range parts {
		keys[i] = jp.part
	}
	secret, err := splitkey.Join(keys, secretLen)
	if err != nil {
		return nil, splitError(err)
	}
	defer clear(secret)
	body, attrs, err := joinedObject(ot, sdType, attrs, parts, secret, tAlg, tBits, tHasAlg, tHasLen)
	if err != nil {
		return nil, err
	}
	o, err := p.newServerObject(ic, ot, body, attrs)
	if err != nil {
		return nil, err
	}
	for _, jp := range parts {
		o.Add(object.AttrLink, linkValue(kmip14.LinkTypeParentLink, jp.o.UID()))
	}
	if err := ic.objects.Insert(ic.ctx, o); err != nil {
		return nil, err
	}
	ic.placeholder = o.UID()
	return respUID(o.UID()), nil
}

// loadPart loads and reads one Split Key object.
func loadPart(ic *itemCtx, uid string) (joinPart, error) {
	o, err := ic.objects.Load(ic.ctx, uid)
	if err != nil {
		return joinPart{}, err
	}
	if o.Type() != kmip14.ObjectTypeSplitKey {
		return joinPart{}, Errorf(kmip14.ResultReasonInvalidField, "%s is a %s, not a Split Key", uid, o.Type())
	}
	if err := checkSplitObject(o); err != nil {
		return joinPart{}, err
	}
	body := o.Body()
	sp, err := readSplitParams(body)
	if err != nil {
		return joinPart{}, err
	}
	id, ok := body.Child(kmip14.TagKeyPartIdentifier).IntValue()
	if !ok {
		return joinPart{}, Errorf(kmip14.ResultReasonInvalidField, "Split Key needs an integer Key Part Identifier")
	}
	kb := body.Child(kmip14.TagKeyBlock)
	if kb.Child(kmip14.TagKeyWrappingData).Present() {
		return joinPart{}, Errorf(kmip14.ResultReasonFeatureNotSupported, "a part is stored wrapped and cannot be joined")
	}
	if err := requireKeyValue(kb); err != nil {
		return joinPart{}, err
	}
	key, ok := kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue()
	if !ok || len(key) == 0 {
		return joinPart{}, Errorf(kmip14.ResultReasonInvalidField, "a Split Key has no key material")
	}
	jp := joinPart{o: o, part: splitkey.Part{Params: sp, ID: int(id), Key: key}}
	if jp.alg, jp.hasAlg = o.CryptographicAlgorithm(); !jp.hasAlg {
		if a, ok := kb.Child(kmip14.TagCryptographicAlgorithm).EnumValue(); ok {
			jp.alg, jp.hasAlg = kmip14.CryptographicAlgorithm(a), true
		}
	}
	if jp.bits, jp.hasBits = o.Get(object.AttrCryptoLength).IntValue(); !jp.hasBits {
		jp.bits, jp.hasBits = kb.Child(kmip14.TagCryptographicLength).IntValue()
	}
	return jp, nil
}

// joinedObject builds the joined object's body and attributes.
func joinedObject(ot kmip14.ObjectType, sdType kmip14.SecretDataType, attrs []object.Attr, parts []joinPart, secret []byte,
	tAlg kmip14.CryptographicAlgorithm, tBits int32, tHasAlg, tHasLen bool) (*tree.Node, []object.Attr, error) {
	sensitive, extractable := false, true
	for _, jp := range parts {
		sensitive = sensitive || jp.o.Sensitive()
		extractable = extractable && jp.o.Extractable()
	}
	if !hasAttr(attrs, object.AttrUsageMask) {
		if m, ok := parts[0].o.UsageMask(); ok {
			attrs = append(append([]object.Attr(nil), attrs...), object.NewAttr(object.AttrUsageMask, tree.Int(0, int32(m))))
		}
	}
	attrs, err := inheritProtection(attrs, sensitive, extractable)
	if err != nil {
		return nil, nil, err
	}
	material := append([]byte(nil), secret...)
	if ot == kmip14.ObjectTypeSecretData {
		return secretDataBody(sdType, kmip14.KeyFormatTypeOpaque, material), attrs, nil
	}
	alg, bits := tAlg, tBits
	if !tHasAlg {
		if !parts[0].hasAlg {
			return nil, nil, Errorf(kmip14.ResultReasonInvalidField, "Cryptographic Algorithm is required: the parts record none")
		}
		alg = parts[0].alg
	}
	if !tHasLen {
		bits = int32(8 * len(secret))
		if parts[0].hasBits {
			if _, n, _, err := symmetricSpec(alg, parts[0].bits, true); err == nil && n == len(secret) {
				bits = parts[0].bits // e.g. Triple DES's 168
			}
		}
	}
	mask := uint32(0)
	if _, _, m, err := symmetricSpec(alg, bits, true); err == nil {
		mask = m
	}
	if !hasAttr(attrs, object.AttrUsageMask) && mask != 0 {
		attrs = withDefaults(attrs, alg, bits, mask)
	}
	return tree.Struct(kmip14.TagSymmetricKey, keyBlock(alg, bits, kmip14.KeyFormatTypeRaw, material)), attrs, nil
}
