package tree

import (
	"bytes"
	"iter"
	"math/big"
	"time"

	"github.com/gemalto/kmip-go/ttlv"
)

// View is a read-only view of a Node: Node's accessors, and no way to
// change the node. A byte string or big integer read through it is a copy,
// a child is another View, and Clone is the way to a Node one may change.
//
// kmipops/object hands stored objects out this way: a body or attribute
// value it loaded may be shared with its cache of opened objects and with
// every other reader, so no reader may change it in place.
//
// The zero View stands for a missing node: Present reports false and every
// accessor reports false or a zero value, as Node's do on nil.
type View struct{ n *Node }

// View returns a read-only view of n (the zero View for nil).
func (n *Node) View() View { return View{n} }

// Present reports whether the view stands for a node.
func (v View) Present() bool { return v.n != nil }

// Tag is the node's tag (0 when absent).
func (v View) Tag() ttlv.Tag {
	if v.n == nil {
		return 0
	}
	return v.n.Tag
}

// Type is the node's TTLV type (0 when absent).
func (v View) Type() ttlv.Type {
	if v.n == nil {
		return 0
	}
	return v.n.Type
}

// Child is the first direct child with the tag.
func (v View) Child(tag ttlv.Tag) View { return View{v.n.Child(tag)} }

// Path follows a chain of first children.
func (v View) Path(tags ...ttlv.Tag) View { return View{v.n.Path(tags...)} }

// Children yields the direct children in order.
func (v View) Children() iter.Seq[View] {
	return func(yield func(View) bool) {
		if v.n == nil {
			return
		}
		for _, c := range v.n.Children {
			if !yield(View{c}) {
				return
			}
		}
	}
}

func (v View) TextValue() (string, bool) { return v.n.TextValue() }
func (v View) EnumValue() (uint32, bool) { return v.n.EnumValue() }
func (v View) IntValue() (int32, bool)   { return v.n.IntValue() }
func (v View) LongValue() (int64, bool)  { return v.n.LongValue() }
func (v View) BoolValue() (bool, bool)   { return v.n.BoolValue() }

func (v View) TimeValue() (time.Time, bool) { return v.n.TimeValue() }

// IntervalValue is the value of an Interval.
func (v View) IntervalValue() (time.Duration, bool) {
	if v.n == nil || v.n.Type != ttlv.TypeInterval {
		return 0, false
	}
	return time.Duration(v.n.Int) * time.Second, true
}

// BytesValue is a copy of a byte string's value: the caller may change or
// clear it without touching the node.
func (v View) BytesValue() ([]byte, bool) {
	b, ok := v.n.BytesValue()
	if !ok {
		return nil, false
	}
	return append(make([]byte, 0, len(b)), b...), true
}

// BigValue is a copy of a big integer's value.
func (v View) BigValue() (*big.Int, bool) {
	if v.n == nil || v.n.Type != ttlv.TypeBigInteger || v.n.Big == nil {
		return nil, false
	}
	return new(big.Int).Set(v.n.Big), true
}

// Clone returns a deep copy that the caller owns and may change.
func (v View) Clone() *Node { return v.n.Clone() }

// Equal reports whether v and w hold the same value: the same type and
// value and, below the top, the same tags in the same order. The top tags
// are not compared, so an attribute value matches a criterion for it.
func (v View) Equal(w View) bool { return sameValue(v.n, w.n) }

func (v View) String() string { return v.n.String() }

func sameValue(a, b *Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Type != b.Type || len(a.Children) != len(b.Children) {
		return false
	}
	switch a.Type {
	case ttlv.TypeStructure:
		for i := range a.Children {
			if a.Children[i].Tag != b.Children[i].Tag || !sameValue(a.Children[i], b.Children[i]) {
				return false
			}
		}
		return true
	case ttlv.TypeTextString:
		return a.Text == b.Text
	case ttlv.TypeByteString:
		return bytes.Equal(a.Bytes, b.Bytes)
	case ttlv.TypeBigInteger:
		return a.Big != nil && b.Big != nil && a.Big.Cmp(b.Big) == 0
	case ttlv.TypeDateTime, ttlv.TypeDateTimeExtended:
		return a.Time.Equal(b.Time)
	default:
		return a.Int == b.Int
	}
}
