package kmipops

import (
	"errors"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/internal/aesmodes"
	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// opImport is KMIP 1.4's Import: "requests the server to Import a Managed
// Object specified by its Unique Identifier. The request specifies the
// object being imported and all the attributes to be assigned to the
// object." The request is Unique Identifier, Object Type, Replace Existing,
// Key Wrap Type, Template-Attribute and the object; the response is the
// Unique Identifier, which "the server SHALL copy ... into the ID
// Placeholder variable".
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
	ot, err := requireObjectType(payload)
	if err != nil {
		return nil, err
	}
	tag, ok := bodyTags[ot]
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "object type %s cannot be imported", ot)
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
	ta := payload.Child(kmip14.TagTemplateAttribute)
	if ta == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Import needs a Template-Attribute")
	}
	supplied, err := ic.importAttrs(ta)
	if err != nil {
		return nil, err
	}
	body := payload.Child(tag)
	if body == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing %s object for Object Type %s", tag, ot)
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

// importAttrs reads an Import's Template-Attribute: its attributes with
// the indices given, after those of the Templates it names (op_template.go),
// whose instances take free indices and whose single-instance attributes
// the explicit ones replace.
func (ic *itemCtx) importAttrs(n *tree.Node) ([]object.Supplied, error) {
	if n.Type != ttlv.TypeStructure {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "%s must be a structure", n.Tag)
	}
	var explicit []object.Supplied
	names := map[string]bool{}
	for _, an := range n.All(kmip14.TagAttribute) {
		a, err := object.ParseAttribute(an)
		if err != nil {
			return nil, err
		}
		names[a.Name()] = true
		explicit = append(explicit, object.Supplied{Attr: a, Indexed: an.Child(kmip14.TagAttributeIndex) != nil})
	}
	tn := n.All(kmip14.TagName)
	if len(tn) == 0 {
		return explicit, nil
	}
	tmpl, err := ic.withTemplates(tn, nil)
	if err != nil {
		return nil, err
	}
	var out []object.Supplied
	for _, a := range tmpl {
		if d, ok := object.Lookup(a.Name()); ok && !d.Multi() && names[a.Name()] {
			continue
		}
		out = append(out, object.Supplied{Attr: a})
	}
	return append(out, explicit...), nil
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
