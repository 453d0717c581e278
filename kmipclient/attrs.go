package kmipclient

import (
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Attribute is one attribute instance, as KMIP 1.x carries it: a name, an
// index (0 for the first or only instance) and a value whose tag is
// Attribute Value.
type Attribute struct {
	Name  string
	Index int32
	Value *tree.Node
}

// Attr makes an attribute of name with value v; v's tag becomes Attribute
// Value, so any constructor of package tree serves (tree.Int(0, 256)).
func Attr(name string, v *tree.Node) Attribute {
	v.Tag = kmip14.TagAttributeValue
	return Attribute{Name: name, Value: v}
}

// Name is a Name attribute of type Uninterpreted Text String, the kind
// Locate by name matches.
func Name(name string) Attribute {
	return Attr("Name", tree.Struct(0,
		tree.Text(kmip14.TagNameValue, name),
		tree.Enum(kmip14.TagNameType, uint32(kmip14.NameTypeUninterpretedTextString))))
}

// Algorithm is a Cryptographic Algorithm attribute.
func Algorithm(a kmip14.CryptographicAlgorithm) Attribute {
	return Attr("Cryptographic Algorithm", tree.Enum(0, uint32(a)))
}

// Length is a Cryptographic Length attribute, in bits.
func Length(bits int32) Attribute { return Attr("Cryptographic Length", tree.Int(0, bits)) }

// UsageMask is a Cryptographic Usage Mask attribute.
func UsageMask(m kmip14.CryptographicUsageMask) Attribute {
	return Attr("Cryptographic Usage Mask", tree.Int(0, int32(m)))
}

// ObjectType is an Object Type attribute, a Locate criterion.
func ObjectType(t kmip14.ObjectType) Attribute { return Attr("Object Type", tree.Enum(0, uint32(t))) }

// State is a State attribute, a Locate criterion.
func State(s kmip14.State) Attribute { return Attr("State", tree.Enum(0, uint32(s))) }

// ActivationDate is an Activation Date attribute: an object created or
// registered with one not after now is Active at once.
func ActivationDate(t time.Time) Attribute { return Attr("Activation Date", tree.Time(0, t)) }

// Node is the Attribute structure of a request. Index 0 is left out.
func (a Attribute) Node() *tree.Node {
	n := tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, a.Name))
	if a.Index != 0 {
		n.Add(tree.Int(kmip14.TagAttributeIndex, a.Index))
	}
	return n.Add(a.Value)
}

// Text renders the value for people (see FormatValue).
func (a Attribute) Text() string { return FormatValue(a.Name, a.Value) }

// JSON is the value as JSON-encodable data (see JSONValue).
func (a Attribute) JSON() any { return JSONValue(a.Name, a.Value) }

// template is a Template-Attribute structure (or one of Create Key Pair's
// tagged ones) holding attrs.
func template(tag ttlv.Tag, attrs []Attribute) *tree.Node {
	n := tree.Struct(tag)
	for _, a := range attrs {
		n.Add(a.Node())
	}
	return n
}

// attributesOf reads the Attribute structures among a payload's children.
func attributesOf(p *tree.Node) []Attribute {
	var out []Attribute
	for _, n := range p.All(kmip14.TagAttribute) {
		a := Attribute{Value: n.Child(kmip14.TagAttributeValue)}
		a.Name, _ = n.Child(kmip14.TagAttributeName).TextValue()
		a.Index, _ = n.Child(kmip14.TagAttributeIndex).IntValue()
		out = append(out, a)
	}
	return out
}
