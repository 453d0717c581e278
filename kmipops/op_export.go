package kmipops

import (
	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// opExport is KMIP 1.4's Export (§4.40, Tables 251–252): "requests that
// the server returns a Managed Object specified by its Unique Identifier,
// together with its attributes". "The Key Format Type, Key Wrap Type, Key
// Compression Type and Key Wrapping Specification SHALL have the same
// semantics as for the Get operation" (serve, op_get.go: the same refusals,
// Fresh turns false). "If the Managed Object has been Destroyed then the
// key material for the specified managed object SHALL not be returned in
// the response": a destroyed object's answer carries its attributes and no
// object structure at all, since kmipd keeps nothing of a destroyed body.
// "The server SHALL copy the Unique Identifier returned by this operations
// into the ID Placeholder variable."
//
// The response (Table 252) is Object Type, Unique Identifier, one bare
// Attribute structure per attribute instance ("All of the object's
// Attributes", in the order Get Attributes lists them; no Template-Attribute)
// and the object "in the same manner as the Get operation". Export is not
// one of the reads the default policy opens to every credential identity
// (readsOnly): the spec says only the object's owner SHOULD export it.
func opExport(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	uid, o, body, err := p.serve(ic, payload, true)
	if err != nil {
		return nil, err
	}
	resp := tree.Struct(kmip14.TagResponsePayload,
		tree.Enum(kmip14.TagObjectType, uint32(o.Type())),
		tree.Text(kmip14.TagUniqueIdentifier, uid))
	for _, a := range o.Listing(ic.v.minor, true) {
		resp.Add(a.AttributeAt(ic.v.minor))
	}
	ic.placeholder = uid
	if body != nil {
		resp.Add(body)
	}
	return resp, nil
}
