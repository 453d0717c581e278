package tree

import (
	"encoding/binary"
	"iter"

	"github.com/gemalto/kmip-go/ttlv"
)

// Item is one encoded TTLV item, from its header on, read in place: for
// readers that need a few fields of a message (the load generator's
// response check) or that keep most of it encoded (kmipops' stored records,
// whose attribute values are decoded only when used).
//
// Every method assumes the bytes were accepted by Validate (or Decode):
// lengths are then known to be within bounds, so nothing is checked again.
// Lookups follow Node's semantics: Child is the first direct child with the
// tag, and a typed accessor reports false for nil or for another type.
type Item []byte

// Tag is the item's tag.
func (it Item) Tag() ttlv.Tag { return headerTag(it) }

// Type is the item's TTLV type.
func (it Item) Type() ttlv.Type { return ttlv.Type(it[3]) }

// Size is the number of bytes the item occupies, padding included.
func (it Item) Size() int { return itemSize(it) }

// body is the value field without padding.
func (it Item) body() []byte {
	return it[HeaderLen : HeaderLen+int(binary.BigEndian.Uint32(it[4:8]))]
}

// Children yields the direct children of a structure; nothing for nil or
// any other type, as a decoded Node has no children.
func (it Item) Children() iter.Seq[Item] {
	return func(yield func(Item) bool) {
		if it == nil || it.Type() != ttlv.TypeStructure {
			return
		}
		for c := it.body(); len(c) > 0; {
			n := itemSize(c)
			if !yield(Item(c[:n:n])) {
				return
			}
			c = c[n:]
		}
	}
}

// Child is the first direct child with the tag, or nil.
func (it Item) Child(tag ttlv.Tag) Item {
	for c := range it.Children() {
		if c.Tag() == tag {
			return c
		}
	}
	return nil
}

// TextBytes is the value of a text string, as a view into the item.
func (it Item) TextBytes() ([]byte, bool) { return it.bytesOf(ttlv.TypeTextString) }

// BytesValue is the value of a byte string, as a view into the item.
func (it Item) BytesValue() ([]byte, bool) { return it.bytesOf(ttlv.TypeByteString) }

func (it Item) bytesOf(typ ttlv.Type) ([]byte, bool) {
	if it == nil || it.Type() != typ {
		return nil, false
	}
	return it.body(), true
}

// EnumValue is the value of an enumeration.
func (it Item) EnumValue() (uint32, bool) {
	if it == nil || it.Type() != ttlv.TypeEnumeration {
		return 0, false
	}
	return binary.BigEndian.Uint32(it[HeaderLen:]), true
}

// IntValue is the value of an integer.
func (it Item) IntValue() (int32, bool) {
	if it == nil || it.Type() != ttlv.TypeInteger {
		return 0, false
	}
	return int32(binary.BigEndian.Uint32(it[HeaderLen:])), true
}

// LongValue is the value of a long integer.
func (it Item) LongValue() (int64, bool) {
	if it == nil || it.Type() != ttlv.TypeLongInteger {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(it[HeaderLen:])), true
}

// typeRaw marks a Node built by Raw. Zero is no KMIP type, so Decode never
// produces it and every typed accessor reports false on it.
const typeRaw ttlv.Type = 0

// Raw is a Node standing for an item that is already encoded: Encode
// copies it verbatim. kmipops uses it to write back stored attribute values
// it never needed to decode. The item must be one Validate accepted; it is
// not copied.
func Raw(it Item) *Node { return &Node{Tag: it.Tag(), Type: typeRaw, Bytes: it} }
