package object

import (
	"fmt"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// A stored object is one record at obj/<owner>/<uid>: the object's
// attributes and its body as one TTLV structure, which the repository seals
// whole.

// Private tags of the stored record, in the extension range KMIP reserves
// for vendors (0x54xxxx), so a record can never be mistaken for a message.
const (
	tagRecord        = ttlv.Tag(0x540001)
	tagRecordVersion = ttlv.Tag(0x540002)
	tagRecordCreator = ttlv.Tag(0x540003) // Object.creator, when set
	tagRecordStamp   = ttlv.Tag(0x540004) // Object.stamp, when set
)

const recordVersion = 1

func objectKey(owner, uid string) string { return "obj/" + owner + "/" + uid }

func ownerPrefix(owner string) string { return "obj/" + owner + "/" }

// encode serialises the object as the private record structure.
func (o *Object) encode() ([]byte, error) {
	r := tree.Struct(tagRecord,
		tree.Int(tagRecordVersion, recordVersion),
		tree.Enum(kmip14.TagObjectType, uint32(o.typ)),
		tree.Text(kmip14.TagUniqueIdentifier, o.uid),
	)
	if o.creator != "" {
		r.Add(tree.Text(tagRecordCreator, o.creator))
	}
	if o.stamp != 0 {
		r.Add(&tree.Node{Tag: tagRecordStamp, Type: ttlv.TypeLongInteger, Int: o.stamp})
	}
	for i := range o.attrs {
		a := &o.attrs[i]
		n := tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, a.name))
		if a.index != 0 {
			// decodeObject reads an absent index as 0; leaving it out
			// takes a fifth of the nodes out of every record decode.
			n.Add(tree.Int(kmip14.TagAttributeIndex, a.index))
		}
		r.Add(n.Add(a.stored()))
	}
	if o.body != nil {
		r.Add(o.body)
	}
	return tree.Encode(r)
}

// decodeObject reads a record. It validates all of b, as tree.Decode would,
// but decodes only the object's body: attribute values are copied, still
// encoded, into one buffer and decoded when first used (Attr.Value). The
// result shares nothing with b, which the caller clears.
func decodeObject(uid string, b []byte) (*Object, error) {
	if err := tree.Validate(b, tree.DefaultLimits); err != nil {
		return nil, err
	}
	r := tree.Item(b)
	if r.Tag() != tagRecord || r.Type() != ttlv.TypeStructure {
		return nil, fmt.Errorf("not an object record")
	}
	if v, _ := r.Child(tagRecordVersion).IntValue(); v != recordVersion {
		return nil, fmt.Errorf("record version %d not supported", v)
	}
	t, ok := r.Child(kmip14.TagObjectType).EnumValue()
	if !ok {
		return nil, fmt.Errorf("record without object type")
	}
	if id, _ := r.Child(kmip14.TagUniqueIdentifier).TextBytes(); string(id) != uid {
		// The AAD already binds the uid; this catches programming errors.
		return nil, fmt.Errorf("record uid mismatch")
	}
	// Sized once: nearly every child is an attribute.
	n, rawLen := 0, 0
	for c := range r.Children() {
		if c.Tag() == kmip14.TagAttribute {
			n++
			rawLen += len(c.Child(kmip14.TagAttributeValue))
		}
	}
	o := &Object{uid: uid, typ: kmip14.ObjectType(t), attrs: make([]Attr, 0, n)}
	raw := make([]byte, 0, rawLen)
	for c := range r.Children() {
		switch c.Tag() {
		case tagRecordVersion, kmip14.TagObjectType, kmip14.TagUniqueIdentifier:
		case tagRecordCreator:
			b, ok := c.TextBytes()
			if !ok || len(b) == 0 {
				return nil, fmt.Errorf("malformed creator in record")
			}
			o.creator = string(b)
		case tagRecordStamp:
			v, ok := c.LongValue()
			if !ok {
				return nil, fmt.Errorf("malformed stamp in record")
			}
			o.stamp = v
		case kmip14.TagAttribute:
			name, _ := c.Child(kmip14.TagAttributeName).TextBytes()
			idx, _ := c.Child(kmip14.TagAttributeIndex).IntValue()
			val := c.Child(kmip14.TagAttributeValue)
			if len(name) == 0 || val == nil {
				return nil, fmt.Errorf("malformed attribute in record")
			}
			start := len(raw)
			raw = append(raw, val...)
			o.attrs = append(o.attrs, Attr{name: internName(name), index: idx, raw: raw[start:len(raw):len(raw)]})
		default:
			body, err := tree.Decode(c, tree.DefaultLimits)
			if err != nil {
				return nil, err
			}
			o.body = body
		}
	}
	return o, nil
}
