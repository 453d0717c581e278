package kmipops

import (
	"errors"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/internal/aesmodes"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// opImport is KMIP 1.4's Import (§4.41, Tables 253–254): "The request
// specifies the object being imported and all the attributes to be
// assigned to the object." The request (Table 253) is Unique Identifier,
// Replace Existing, Key Wrap Type, one bare Attribute structure per
// attribute instance ("All of the object's Attributes") and the object "in
// the same manner as the Register operation"; it has no Object Type field:
// the object's tag says the type (objectTags), and an Object Type among the
// Attributes must agree with it (object.NewImported, Invalid Field). The
// response (Table 254) is the Unique Identifier, which "the server SHALL
// copy ... into the ID Placeholder variable".
//
// kmipd ignores fields an operation does not define, as KMIP allows
// extensions, but an Object Type field or a Template-Attribute in an
// Import is Invalid Field: both are the shape of another request
// (Register's), and ignoring them would either drop attributes the client
// means to set or leave the object's type said twice.
//
// Unique Identifiers are per owner (obj/<owner>/<uid>), so the client's
// uid names an object of the caller's owner only: another owner's object
// under the same uid is neither seen, replaced nor collided with, and the
// Import answers exactly as if it did not exist. Within an owner, another
// credential identity's object is Permission Denied, as for every
// operation (object/access.go).
//
// The object is checked as Register checks it (checkBody: structure, key
// material against Cryptographic Algorithm and Length); the attributes are
// kept as supplied (object.NewImported).
func opImport(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	un := payload.Child(kmip14.TagUniqueIdentifier)
	if un == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Import needs a Unique Identifier")
	}
	uid, ok := un.TextValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Unique Identifier must be a text string")
	}
	if payload.Child(kmip14.TagObjectType) != nil {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "an Import request has no Object Type field: the object's tag gives its type (KMIP 1.4 Table 253)")
	}
	if payload.Child(kmip14.TagTemplateAttribute) != nil {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "an Import request lists bare Attributes, not a Template-Attribute (KMIP 1.4 Table 253)")
	}
	// "If specified and true then any existing object with the same Unique
	// Identifier SHALL be replaced by this operation. If absent or false
	// then the operation SHALL fail if there is an existing object with the
	// same Unique Identifier."
	replace := false
	if n := payload.Child(kmip14.TagReplaceExisting); n != nil {
		if replace, ok = n.BoolValue(); !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Replace Existing must be a boolean")
		}
	}
	var wrapType kmip14.KeyWrapType
	if n := payload.Child(kmip14.TagKeyWrapType); n != nil {
		v, ok := n.EnumValue()
		wrapType = kmip14.KeyWrapType(v)
		if !ok || (wrapType != kmip14.KeyWrapTypeNotWrapped && wrapType != kmip14.KeyWrapTypeAsRegistered) {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Key Wrap Type must be Not Wrapped or As Registered")
		}
	}
	supplied, err := importAttrs(payload.All(kmip14.TagAttribute))
	if err != nil {
		return nil, err
	}
	ot, body, err := importedObject(payload)
	if err != nil {
		return nil, err
	}
	body = body.Clone()
	if wrapType == kmip14.KeyWrapTypeNotWrapped {
		// "If Not Wrapped then the server SHALL unwrap the object before
		// storing it, and return an error if the wrapping key is not
		// available. Otherwise the server SHALL store the object as
		// provided."
		if err := p.unwrapBody(ic, body); err != nil {
			return nil, err
		}
	}
	attrs := make([]object.Attr, len(supplied))
	for i, s := range supplied {
		attrs[i] = s.Attr
	}
	if err := checkBody(ot, body, attrs, ic.v.minor); err != nil {
		return nil, err
	}
	// The uid's spelling is checked last, so a request is answered the
	// same whatever uid it names until then (tests/isolation).
	if !object.ValidUID(uid) {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Unique Identifier must be 1 to 128 printable ASCII characters without '/'")
	}
	s := object.Spec{Type: ot, Body: body, Now: ic.now, Group: p.assignedGroup()}
	if leasable(ot) {
		s.LeaseTime = p.opts.LeaseTime
	}
	o, err := object.NewImported(s, uid, supplied)
	if err != nil {
		return nil, err
	}
	if err := ic.objects.Import(ic.ctx, o, replace); err != nil {
		return nil, err
	}
	ic.placeholder = uid
	return respUID(uid), nil
}

// objectTags maps each object structure's tag to its object type: the
// inverse of bodyTags (op_register.go), and Template.
var objectTags = func() map[ttlv.Tag]kmip14.ObjectType {
	m := map[ttlv.Tag]kmip14.ObjectType{kmip14.TagTemplate: kmip14.ObjectTypeTemplate}
	for ot, tag := range bodyTags {
		m[tag] = ot
	}
	return m
}()

// importedObject finds an Import's object: exactly one object structure,
// whose tag gives the object type. A Template is not imported (Templates
// are Register's, and deprecated since KMIP 1.3).
func importedObject(payload *tree.Node) (kmip14.ObjectType, *tree.Node, error) {
	var body *tree.Node
	var ot kmip14.ObjectType
	for _, c := range payload.Children {
		t, ok := objectTags[c.Tag]
		if !ok {
			continue
		}
		if body != nil {
			return 0, nil, Errorf(kmip14.ResultReasonInvalidMessage, "an Import request carries one object, not %s and %s", body.Tag, c.Tag)
		}
		body, ot = c, t
	}
	switch {
	case body == nil:
		return 0, nil, Errorf(kmip14.ResultReasonInvalidMessage, "Import needs the object")
	case ot == kmip14.ObjectTypeTemplate:
		return 0, nil, Errorf(kmip14.ResultReasonInvalidField, "object type %s cannot be imported", ot)
	}
	return ot, body, nil
}

// importAttrs reads an Import's bare Attribute structures ("All of the
// object's Attributes", required), noting which name their Attribute Index.
func importAttrs(nodes []*tree.Node) ([]object.Supplied, error) {
	if len(nodes) == 0 {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Import needs the object's Attributes")
	}
	out := make([]object.Supplied, 0, len(nodes))
	for _, an := range nodes {
		a, err := object.ParseAttribute(an)
		if err != nil {
			return nil, err
		}
		out = append(out, object.Supplied{Attr: a, Indexed: an.Child(kmip14.TagAttributeIndex) != nil})
	}
	return out, nil
}

// unwrapBody replaces a wrapped Key Value in body by the Key Value it
// wraps, for an Import with Key Wrap Type Not Wrapped: the reverse of
// wrapBody (keywrap.go), under the caller's own AES key that the Key
// Wrapping Data names, with Unwrap Key in its usage mask. A body that is
// not wrapped is left as it is.
func (p *Processor) unwrapBody(ic *itemCtx, body *tree.Node) error {
	kb := body.Child(kmip14.TagKeyBlock)
	kwd := kb.Child(kmip14.TagKeyWrappingData)
	if kwd == nil {
		return nil
	}
	if m, ok := kwd.Child(kmip14.TagWrappingMethod).EnumValue(); !ok || kmip14.WrappingMethod(m) != kmip14.WrappingMethodEncrypt {
		return Errorf(kmip14.ResultReasonFeatureNotSupported, "only keys wrapped with the Encrypt wrapping method can be unwrapped")
	}
	if kwd.Child(kmip14.TagMACSignatureKeyInformation) != nil {
		return Errorf(kmip14.ResultReasonFeatureNotSupported, "MAC/signed key wrapping cannot be unwrapped")
	}
	eki := kwd.Child(kmip14.TagEncryptionKeyInformation)
	keyUID, ok := eki.Child(kmip14.TagUniqueIdentifier).TextValue()
	if !ok {
		return Errorf(kmip14.ResultReasonInvalidField, "Key Wrapping Data needs Encryption Key Information with a Unique Identifier")
	}
	mode := kmip14.BlockCipherModeNISTKeyWrap
	if bm := eki.Path(kmip14.TagCryptographicParameters, kmip14.TagBlockCipherMode); bm != nil {
		v, ok := bm.EnumValue()
		if !ok || !wrapMode(kmip14.BlockCipherMode(v)) {
			return Errorf(kmip14.ResultReasonFeatureNotSupported, "unwrapping supports NISTKeyWrap and AESKeyWrapPadding")
		}
		mode = kmip14.BlockCipherMode(v)
	}
	enc := kmip14.EncodingOptionTTLVEncoding
	if e := kwd.Child(kmip14.TagEncodingOption); e != nil {
		v, ok := e.EnumValue()
		enc = kmip14.EncodingOption(v)
		if !ok || (enc != kmip14.EncodingOptionNoEncoding && enc != kmip14.EncodingOptionTTLVEncoding) {
			return Errorf(kmip14.ResultReasonEncodingOptionError, "unknown Encoding Option")
		}
	}
	wrapped, ok := kb.Child(kmip14.TagKeyValue).BytesValue()
	if !ok {
		return Errorf(kmip14.ResultReasonInvalidField, "a wrapped Key Value must be a byte string")
	}
	k, err := p.useKey(ic, keyUID, keyUse{mask: kmip14.CryptographicUsageMaskUnwrapKey})
	if err != nil {
		return err
	}
	defer k.wipe()
	if k.alg != kmip14.CryptographicAlgorithmAES || k.sym == nil {
		return Errorf(kmip14.ResultReasonFeatureNotSupported, "only AES keys unwrap keys")
	}
	unwrap := aesmodes.Unwrap
	if mode == kmip14.BlockCipherModeAESKeyWrapPadding {
		unwrap = aesmodes.UnwrapPad
	}
	plain, err := unwrap(k.sym, wrapped)
	if err != nil {
		return &Error{Reason: kmip14.ResultReasonCryptographicFailure, Msg: "the wrapped key does not unwrap under the wrapping key", Err: errors.New("key unwrap failed")}
	}
	defer clear(plain)
	var kv *tree.Node
	if enc == kmip14.EncodingOptionNoEncoding {
		kv = tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, append([]byte(nil), plain...)))
	} else {
		kv, err = tree.Decode(plain, tree.DefaultLimits)
		if err != nil || kv.Tag != kmip14.TagKeyValue || kv.Type != ttlv.TypeStructure {
			return Errorf(kmip14.ResultReasonInvalidField, "the unwrapped bytes are not a TTLV Key Value")
		}
	}
	out := kb.Children[:0]
	for _, c := range kb.Children {
		switch c.Tag {
		case kmip14.TagKeyWrappingData:
			continue
		case kmip14.TagKeyValue:
			c = kv
		}
		out = append(out, c)
	}
	kb.Children = out
	return nil
}
