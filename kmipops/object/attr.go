package object

import (
	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Attr is one attribute instance: a name, an index and a value. Its value
// (tag Attribute Value) is either decoded in node or, for an object read
// from storage, still encoded in raw: a Get reads a handful of a record's
// attributes, and decoding all of them was most of what a Get allocated.
// Value decodes on first use; the record encoder writes an undecoded raw
// back verbatim.
//
// An Attr's value never changes once it is made: it may be shared with the
// cache of opened objects, other readers and other instances, so readers
// get a tree.View, and an object changes an attribute by replacing the
// value (Object.Set, Modify), never by editing it.
type Attr struct {
	name  string
	index int32
	node  *tree.Node
	raw   tree.Item
}

// NewAttr makes an instance (index 0) whose value is v, which it takes
// over: v's tag becomes Attribute Value, and the caller must not change v
// afterwards.
func NewAttr(name string, v *tree.Node) Attr {
	v.Tag = kmip14.TagAttributeValue
	return Attr{name: name, node: v}
}

// Name is the attribute's name.
func (a Attr) Name() string { return a.name }

// Index is the instance's Attribute Index.
func (a Attr) Index() int32 { return a.index }

// Value is the decoded value (absent for an attribute without one). It
// decodes raw once, into a; on a copy of a, only the copy keeps the result.
func (a *Attr) Value() tree.View { return a.value().View() }

func (a *Attr) value() *tree.Node {
	if a.node == nil && a.raw != nil {
		// raw was validated with its whole record (decodeObject), so
		// Decode cannot fail on it.
		a.node, _ = tree.Decode(a.raw, tree.DefaultLimits)
		a.raw = nil
	}
	return a.node
}

// setValue replaces the value with a decoded one.
func (a *Attr) setValue(v *tree.Node) { a.node, a.raw = v, nil }

// stored is the value as the record encoder writes it: raw stays encoded.
func (a *Attr) stored() *tree.Node {
	if a.node == nil && a.raw != nil {
		return tree.Raw(a.raw)
	}
	return a.node
}

// Attribute renders the instance as a KMIP Attribute structure of the
// caller's own (the value is copied), naming its Attribute Index, 0
// included: what an operation's response returns. KMIP 1.1–1.4 §2.1.1 take
// an absent index for 0, so both forms mean the same instance, and from 1.1
// on Add, Modify and Delete Attribute "MAY" omit an index of 0 (§4.14–4.16);
// KMIP 1.0 assumed 0 only for single-instance attributes. Naming it always
// is correct in every version, and it is what 1.x clients that read the
// index (PyKMIP 0.10's own suite does) expect.
func (a *Attr) Attribute() *tree.Node {
	return tree.Struct(kmip14.TagAttribute,
		tree.Text(kmip14.TagAttributeName, a.name),
		tree.Int(kmip14.TagAttributeIndex, a.index),
		a.value().Clone())
}

// CompactAttribute is Attribute with an index of 0 left out, the form the
// OASIS cases record: used where bytes must match theirs exactly, as in
// attributes wrapped inside a Key Value.
func (a *Attr) CompactAttribute() *tree.Node {
	n := tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, a.name))
	if a.index != 0 {
		n.Add(tree.Int(kmip14.TagAttributeIndex, a.index))
	}
	return n.Add(a.value().Clone())
}

// AttributeAt is Attribute as a client of protocol version 1.minor reads
// it: where an attribute's structure changed between versions, the fields a
// version lacks are left out (asVersion).
func (a *Attr) AttributeAt(minor int32) *tree.Node {
	n := a.Attribute()
	asVersion(minor, a.name, n.Child(kmip14.TagAttributeValue))
	return n
}

// asVersion drops from v, a copy of attribute name's value, the fields that
// KMIP 1.minor does not define. The one such change in 1.0–1.4: Digest
// gained its Key Format Type in 1.1 (KMIP 1.1 §3.17), so a 1.0 Digest is
// Hashing Algorithm and Digest Value alone.
func asVersion(minor int32, name string, v *tree.Node) {
	if minor < 1 && name == AttrDigest && v != nil {
		v.Remove(kmip14.TagKeyFormatType)
	}
}

// ParseAttribute reads one Attribute structure of a request and checks its
// value against the attribute's definition. The instance holds a copy of
// the value, so the request may be changed or dropped afterwards.
func ParseAttribute(n *tree.Node) (Attr, error) {
	if n.Type != ttlv.TypeStructure {
		return Attr{}, errorf(kmip14.ResultReasonInvalidField, "Attribute must be a structure")
	}
	name, ok := n.Child(kmip14.TagAttributeName).TextValue()
	if !ok || name == "" {
		return Attr{}, errorf(kmip14.ResultReasonInvalidField, "Attribute needs an Attribute Name")
	}
	a := Attr{name: name, node: n.Child(kmip14.TagAttributeValue)}
	if in := n.Child(kmip14.TagAttributeIndex); in != nil {
		i, ok := in.IntValue()
		if !ok || i < 0 {
			return Attr{}, errorf(kmip14.ResultReasonInvalidField, "Attribute Index must be a non-negative integer")
		}
		a.index = i
	}
	a.node = a.node.Clone()
	if err := checkValue(a.name, a.node); err != nil {
		return Attr{}, err
	}
	return a, nil
}

// removeAttr returns l without the instances of name, in a new slice.
func removeAttr(l []Attr, name string) []Attr {
	kept := l[:0:0]
	for _, a := range l {
		if a.name != name {
			kept = append(kept, a)
		}
	}
	return kept
}
