// Package object is kmipd's object model: a managed object (its type,
// unique identifier, attribute instances and body), the attribute
// definitions and the key state machine, the record an object is stored
// as, and the repository that seals, stores, caches and locks objects.
//
// Sharing. What the repository loads may share its body and attribute
// values with the cache of opened objects and with every other reader, so
// the API hands them out read-only: the body and each value as a
// tree.View, which has no mutators and returns copies of byte strings.
// Whoever needs a body to change asks for a copy (CloneBody), and an
// attribute changes only through the object's own methods (Set, Add,
// Modify, Delete), which replace a value rather than edit it. An object's
// attribute list itself is its own: Load hands each caller a fresh one.
package object

import (
	"slices"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// Object is one managed object: its type, every attribute instance (known,
// unknown and custom, kept verbatim) and its body, the KMIP object
// structure (SymmetricKey, PrivateKey, ...). The body is absent once the
// object is destroyed.
type Object struct {
	uid   string
	typ   kmip14.ObjectType
	attrs []Attr
	body  *tree.Node // never changed in place: see the package comment
	// Server-internal, in the record but never an attribute (access.go):
	// the credential identity that made the object ("" if none) and its
	// insertion stamp, which orders objects made within one second.
	creator string
	stamp   int64

	// While Update's fn runs (tracking), the first change saves the object
	// as fn found it in before (willChange): the image save compares and
	// undo logs, which a read-only fn, most Gets, then need not copy.
	before   *Object
	tracking bool
}

// UID is the object's Unique Identifier ("" until the repository assigns
// one).
func (o *Object) UID() string { return o.uid }

// Type is the object's Object Type.
func (o *Object) Type() kmip14.ObjectType { return o.typ }

// Body is a read-only view of the object structure; it is not Present once
// the key material is destroyed.
func (o *Object) Body() tree.View { return o.body.View() }

// CloneBody returns a copy of the body that the caller owns and may change
// (nil once destroyed): what a format conversion or a wrapping starts from.
func (o *Object) CloneBody() *tree.Node { return o.body.Clone() }

// ClearBody drops the key material, as Destroy does; the attributes stay.
func (o *Object) ClearBody() {
	o.willChange()
	o.body = nil
}

// clone copies o deeply enough for a caller to change it through its
// methods: the attribute list is new, while the values and the body, which
// no method changes in place, are shared.
func (o *Object) clone() *Object {
	c := *o
	c.attrs = slices.Clone(o.attrs)
	c.before, c.tracking = nil, false
	return &c
}

// willChange is called by every method that changes the object, before the
// change: while Update tracks o, the first one keeps o as it was.
func (o *Object) willChange() {
	if o.tracking && o.before == nil {
		o.before = o.clone()
	}
}

// Get is the value of the first instance of name (not Present if the
// object has none).
func (o *Object) Get(name string) tree.View {
	for i := range o.attrs {
		if o.attrs[i].name == name {
			return o.attrs[i].Value()
		}
	}
	return tree.View{}
}

// Has reports whether the object holds an instance of name.
func (o *Object) Has(name string) bool {
	for i := range o.attrs {
		if o.attrs[i].name == name {
			return true
		}
	}
	return false
}

// All returns every instance of name, in the object's order.
func (o *Object) All(name string) []Attr {
	var out []Attr
	for i := range o.attrs {
		if o.attrs[i].name == name {
			o.attrs[i].value() // decoded once, for the object and every copy
			out = append(out, o.attrs[i])
		}
	}
	return out
}

// Instance returns the instance of name with the given index.
func (o *Object) Instance(name string, index int32) (Attr, bool) {
	if i := o.find(name, index); i >= 0 {
		o.attrs[i].value()
		return o.attrs[i], true
	}
	return Attr{}, false
}

func (o *Object) find(name string, index int32) int {
	for i := range o.attrs {
		if o.attrs[i].name == name && o.attrs[i].index == index {
			return i
		}
	}
	return -1
}

// Set replaces every instance of name with one, of index 0, whose value is
// v. It takes v over (see NewAttr).
func (o *Object) Set(name string, v *tree.Node) {
	o.willChange()
	v.Tag = kmip14.TagAttributeValue
	for i, a := range o.attrs {
		if a.name == name {
			o.attrs[i].setValue(v)
			o.attrs = append(o.attrs[:i+1], removeAttr(o.attrs[i+1:], name)...)
			o.attrs[i].index = 0
			return
		}
	}
	o.attrs = append(o.attrs, Attr{name: name, node: v})
}

// Add appends an instance of name with the next free index and value v,
// which it takes over, and returns it.
func (o *Object) Add(name string, v *tree.Node) Attr {
	o.willChange()
	v.Tag = kmip14.TagAttributeValue
	a := Attr{name: name, index: o.nextIndex(name), node: withUsageCount(name, v)}
	o.attrs = append(o.attrs, a)
	return a
}

func (o *Object) nextIndex(name string) int32 {
	next := int32(0)
	for _, a := range o.attrs {
		if a.name == name && a.index >= next {
			next = a.index + 1
		}
	}
	return next
}

// Modify gives the instance of name with the given index the value v,
// which it takes over, and returns the instance; false if there is none.
func (o *Object) Modify(name string, index int32, v *tree.Node) (Attr, bool) {
	i := o.find(name, index)
	if i < 0 {
		return Attr{}, false
	}
	o.willChange()
	v.Tag = kmip14.TagAttributeValue
	o.attrs[i].setValue(withUsageCount(name, v))
	return o.attrs[i], true
}

// Delete removes the instance of name with the given index and returns it;
// false if there is none.
func (o *Object) Delete(name string, index int32) (Attr, bool) {
	i := o.find(name, index)
	if i < 0 {
		return Attr{}, false
	}
	o.willChange()
	gone := o.attrs[i]
	o.attrs = append(o.attrs[:i:i], o.attrs[i+1:]...)
	return gone, true
}
