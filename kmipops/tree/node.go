// Package tree is kmipd's in-memory form of a KMIP TTLV message: a tree of
// tagged, typed values. The server decodes every request into a tree with
// hard limits, kmipops reads and builds trees, and the conformance replayer
// compares them. Working on a generic tree, rather than fixed Go structs,
// is what lets kmipd keep unknown and custom (x-/y-) attributes intact.
package tree

import (
	"math/big"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
)

// Node is one TTLV item. Exactly one value field is meaningful, chosen by Type:
//   - Structure: Children
//   - Integer, LongInteger, Enumeration, Interval (seconds), Boolean (0/1): Int
//   - BigInteger: Big
//   - TextString: Text
//   - ByteString: Bytes
//   - DateTime, DateTimeExtended: Time
type Node struct {
	Tag      ttlv.Tag
	Type     ttlv.Type
	Int      int64
	Big      *big.Int
	Text     string
	Bytes    []byte
	Time     time.Time
	Children []*Node
}

// Constructors. They keep call sites short in kmipops, where responses are built.

func Struct(tag ttlv.Tag, children ...*Node) *Node {
	n := &Node{Tag: tag, Type: ttlv.TypeStructure}
	for _, c := range children {
		if c != nil {
			n.Children = append(n.Children, c)
		}
	}
	return n
}
func Text(tag ttlv.Tag, s string) *Node  { return &Node{Tag: tag, Type: ttlv.TypeTextString, Text: s} }
func Bytes(tag ttlv.Tag, b []byte) *Node { return &Node{Tag: tag, Type: ttlv.TypeByteString, Bytes: b} }
func Int(tag ttlv.Tag, v int32) *Node    { return &Node{Tag: tag, Type: ttlv.TypeInteger, Int: int64(v)} }
func Long(tag ttlv.Tag, v int64) *Node   { return &Node{Tag: tag, Type: ttlv.TypeLongInteger, Int: v} }
func Enum(tag ttlv.Tag, v uint32) *Node {
	return &Node{Tag: tag, Type: ttlv.TypeEnumeration, Int: int64(v)}
}
func Big(tag ttlv.Tag, v *big.Int) *Node { return &Node{Tag: tag, Type: ttlv.TypeBigInteger, Big: v} }
func Time(tag ttlv.Tag, t time.Time) *Node {
	return &Node{Tag: tag, Type: ttlv.TypeDateTime, Time: t.UTC().Truncate(time.Second)}
}
func Interval(tag ttlv.Tag, d time.Duration) *Node {
	return &Node{Tag: tag, Type: ttlv.TypeInterval, Int: int64(d / time.Second)}
}
func Bool(tag ttlv.Tag, b bool) *Node {
	n := &Node{Tag: tag, Type: ttlv.TypeBoolean}
	if b {
		n.Int = 1
	}
	return n
}

// Child returns the first direct child with the tag, or nil. Safe on a nil receiver.
func (n *Node) Child(tag ttlv.Tag) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

// All returns every direct child with the tag, in order.
func (n *Node) All(tag ttlv.Tag) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Tag == tag {
			out = append(out, c)
		}
	}
	return out
}

// Path follows a chain of first-children; nil when any step is missing.
func (n *Node) Path(tags ...ttlv.Tag) *Node {
	for _, t := range tags {
		n = n.Child(t)
	}
	return n
}

// Add appends children (nils skipped) and returns n for chaining.
func (n *Node) Add(children ...*Node) *Node {
	for _, c := range children {
		if c != nil {
			n.Children = append(n.Children, c)
		}
	}
	return n
}

// Remove deletes every direct child with the tag.
func (n *Node) Remove(tag ttlv.Tag) {
	kept := n.Children[:0]
	for _, c := range n.Children {
		if c.Tag != tag {
			kept = append(kept, c)
		}
	}
	n.Children = kept
}

// Typed accessors: ok is false when the node is nil or of another type.

func (n *Node) TextValue() (string, bool) {
	if n == nil || n.Type != ttlv.TypeTextString {
		return "", false
	}
	return n.Text, true
}

func (n *Node) BytesValue() ([]byte, bool) {
	if n == nil || n.Type != ttlv.TypeByteString {
		return nil, false
	}
	return n.Bytes, true
}

func (n *Node) EnumValue() (uint32, bool) {
	if n == nil || n.Type != ttlv.TypeEnumeration {
		return 0, false
	}
	return uint32(n.Int), true
}

func (n *Node) IntValue() (int32, bool) {
	if n == nil || n.Type != ttlv.TypeInteger {
		return 0, false
	}
	return int32(n.Int), true
}

func (n *Node) LongValue() (int64, bool) {
	if n == nil || n.Type != ttlv.TypeLongInteger {
		return 0, false
	}
	return n.Int, true
}

func (n *Node) BoolValue() (bool, bool) {
	if n == nil || n.Type != ttlv.TypeBoolean {
		return false, false
	}
	return n.Int != 0, true
}

func (n *Node) TimeValue() (time.Time, bool) {
	if n == nil || (n.Type != ttlv.TypeDateTime && n.Type != ttlv.TypeDateTimeExtended) {
		return time.Time{}, false
	}
	return n.Time, true
}

// Clone returns a deep copy. Like Decode, it builds the copy out of three
// slabs (nodes, child lists, byte strings) instead of allocating per node:
// kmipops clones a stored key's body for every Get that serves it. Child
// lists and byte strings are capped slices, so appending to one reallocates
// rather than overwriting a neighbour.
func (n *Node) Clone() *Node {
	if n == nil {
		return nil
	}
	var c cloner
	c.count(n)
	c.nodes = make([]Node, c.nNodes)
	c.kids = make([]*Node, c.nKids)
	// Never nil, so an empty byte string stays empty rather than nil: the
	// encoder drops a nil byte string, and an empty Data or AAD field is
	// meaningful in KMIP.
	c.bytes = make([]byte, 0, c.nBytes)
	return c.clone(n)
}

type cloner struct {
	nNodes, nKids, nBytes int
	nodes                 []Node
	kids                  []*Node
	bytes                 []byte
}

func (c *cloner) count(n *Node) {
	c.nNodes++
	c.nBytes += len(n.Bytes)
	c.nKids += len(n.Children)
	for _, ch := range n.Children {
		if ch != nil {
			c.count(ch)
		}
	}
}

func (c *cloner) clone(n *Node) *Node {
	out := &c.nodes[0]
	c.nodes = c.nodes[1:]
	*out = *n
	if n.Bytes != nil {
		start := len(c.bytes)
		c.bytes = append(c.bytes, n.Bytes...)
		out.Bytes = c.bytes[start:len(c.bytes):len(c.bytes)]
	}
	if n.Big != nil {
		out.Big = new(big.Int).Set(n.Big)
	}
	if n.Children != nil {
		k := len(n.Children)
		kids := c.kids[:k:k]
		c.kids = c.kids[k:]
		for i, ch := range n.Children {
			if ch != nil {
				kids[i] = c.clone(ch)
			}
		}
		out.Children = kids
	}
	return out
}

// TagName renders a tag by its KMIP 1.4 name for messages and logs.
func TagName(t ttlv.Tag) string { return t.String() }

// compile-time check that the kmip14 registry is linked, so tag and enum
// names resolve in String output.
var _ = kmip14.TagRequestMessage
