package kmipops

import (
	"sort"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/object"
	"github.com/kmipd/kmipd/kmipops/tree"
)

// view loads an object for reading, persisting a time-driven state change
// (Activation or Deactivation Date reached) if one is due.
func (p *Processor) view(ic *itemCtx, uid string) (*object.Object, error) {
	return ic.objects.Update(ic.ctx, uid, func(o *object.Object) (bool, error) { return o.AdvanceState(ic.now), nil })
}

func opGet(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, o, body, err := p.serve(ic, payload, false)
	if err != nil {
		return nil, err
	}
	p.groups.served(ic, o)
	ic.placeholder = uid
	return tree.Struct(kmip14.TagResponsePayload,
		tree.Enum(kmip14.TagObjectType, uint32(o.Type())),
		tree.Text(kmip14.TagUniqueIdentifier, uid),
		body), nil
}

// serve reads the fields Get and Export share (Unique Identifier or the ID
// Placeholder, Key Format Type, Key Wrap Type, Key Compression Type, Key
// Wrapping Specification) and returns the object with a copy of its body as
// they ask. A destroyed object is Item Not Found for Get; for Export
// (export true) it comes back with a nil body, its attributes only.
func (p *Processor) serve(ic *itemCtx, payload *tree.Node, export bool) (string, *object.Object, *tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return "", nil, nil, err
	}
	var want *kmip14.KeyFormatType
	if n := payload.Child(kmip14.TagKeyFormatType); n != nil {
		v, ok := n.EnumValue()
		if !ok {
			return "", nil, nil, Errorf(kmip14.ResultReasonInvalidField, "Key Format Type must be an enumeration")
		}
		f := kmip14.KeyFormatType(v)
		want = &f
	}
	if n := payload.Child(kmip14.TagKeyWrapType); n != nil && n.Type != ttlv.TypeEnumeration {
		// Not Wrapped and As Registered both mean "as stored" here.
		return "", nil, nil, Errorf(kmip14.ResultReasonInvalidField, "Key Wrap Type must be an enumeration")
	}
	var ws *wrapSpec
	if n := payload.Child(kmip14.TagKeyWrappingSpecification); n != nil {
		if ws, err = parseWrapSpec(n); err != nil {
			return "", nil, nil, err
		}
	}
	if payload.Child(kmip14.TagKeyCompressionType) != nil {
		return "", nil, nil, Errorf(kmip14.ResultReasonKeyCompressionTypeNotSupported, "key compression is not supported")
	}
	// The served body is always a copy of the object's: the response is
	// the caller's to change, while the object's body may be shared with
	// the cache of opened objects and other readers.
	var body *tree.Node
	o, err := ic.objects.Update(ic.ctx, uid, func(o *object.Object) (bool, error) {
		body = nil // fn may run again, on another replica's write (Update)
		changed := o.AdvanceState(ic.now)
		if o.Destroyed() || !o.Body().Present() {
			if export {
				return changed, nil
			}
			return false, Errorf(kmip14.ResultReasonItemNotFound, "object has been destroyed")
		}
		if o.Type() == kmip14.ObjectTypeTemplate {
			var err error
			body, err = templateBody(o, want != nil, ws != nil)
			return changed, err
		}
		if o.Sensitive() && ws == nil {
			return false, Errorf(kmip14.ResultReasonSensitive, "object is sensitive and can only be served wrapped")
		}
		if !o.Extractable() {
			return false, Errorf(kmip14.ResultReasonNotExtractable, "object is not extractable")
		}
		switch {
		case want != nil && *want == kmip14.KeyFormatTypePKCS_12:
			if ws != nil {
				return false, Errorf(kmip14.ResultReasonFeatureNotSupported, "a PKCS#12 file is protected by its password, not wrapped")
			}
			var err error
			if body, err = p.pkcs12Body(ic, o); err != nil { // op_get_pkcs12.go
				return false, err
			}
		case want != nil:
			var err error
			if body, err = servedFormat(o, *want); err != nil {
				return false, err
			}
		}
		if ws != nil {
			// Inside the object's lock, so Fresh only turns false when the
			// wrapped key is actually served.
			src := o.Body()
			if body != nil {
				src = body.View()
			}
			var err error
			if body, err = p.wrapBody(ic, o, src, ws); err != nil {
				return false, err
			}
		}
		if body == nil {
			body = o.CloneBody()
		}
		// Fresh turns false once the material has been served (§3.34).
		if o.Fresh() {
			o.Set(object.AttrFresh, tree.Bool(0, false))
			changed = true
		}
		return changed, nil
	})
	if err != nil {
		return "", nil, nil, err
	}
	return uid, o, body, nil
}

// servedFormat returns a copy of the body in the requested Key Format Type.
func servedFormat(o *object.Object, want kmip14.KeyFormatType) (*tree.Node, error) {
	switch o.Type() {
	case kmip14.ObjectTypeSymmetricKey, kmip14.ObjectTypePrivateKey, kmip14.ObjectTypePublicKey,
		kmip14.ObjectTypeSecretData, kmip14.ObjectTypeSplitKey, kmip14.ObjectTypePGPKey:
		return convertFormat(o.Type(), o.Body(), want)
	}
	return nil, Errorf(kmip14.ResultReasonKeyFormatTypeNotSupported, "%s has no key format", o.Type())
}

// attributeNames reads the Attribute Name fields of a GetAttributes
// request. From KMIP 1.1 on, a name may appear only once (§4.11, the OASIS
// TC-171 cases: Invalid Message); a 1.0 request's repeats count once.
func attributeNames(payload *tree.Node, minor int32) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, n := range payload.All(kmip14.TagAttributeName) {
		s, ok := n.TextValue()
		if !ok {
			return nil, Errorf(kmip14.ResultReasonInvalidField, "Attribute Name must be a text string")
		}
		if seen[s] && minor >= 1 {
			return nil, Errorf(kmip14.ResultReasonInvalidMessage, "Attribute Name specified more than once: %s", s)
		}
		if !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	return names, nil
}

func opGetAttributes(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	names, err := attributeNames(payload, ic.v.minor)
	if err != nil {
		return nil, err
	}
	o, err := p.view(ic, uid)
	if err != nil {
		return nil, err
	}
	r := respUID(uid)
	if len(names) == 0 {
		for _, a := range o.Listing(ic.v.minor, true) {
			r.Add(a.AttributeAt(ic.v.minor))
		}
	} else {
		// In the order asked; names the object lacks are simply absent.
		for _, name := range names {
			inst := o.All(name)
			sort.SliceStable(inst, func(i, j int) bool { return inst[i].Index() < inst[j].Index() })
			for _, a := range inst {
				r.Add(a.AttributeAt(ic.v.minor))
			}
		}
	}
	ic.placeholder = uid
	return r, nil
}

func opGetAttributeList(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, err := uidArg(ic, payload)
	if err != nil {
		return nil, err
	}
	o, err := p.view(ic, uid)
	if err != nil {
		return nil, err
	}
	r := respUID(uid)
	seen := map[string]bool{}
	for _, a := range o.Listing(ic.v.minor, false) {
		if !seen[a.Name()] {
			seen[a.Name()] = true
			r.Add(tree.Text(kmip14.TagAttributeName, a.Name()))
		}
	}
	ic.placeholder = uid
	return r, nil
}
