package tree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gemalto/kmip-go/ttlv"
)

// HeaderLen is the size of a TTLV header: 3 bytes tag, 1 type, 4 length.
const HeaderLen = 8

// Limits bound what Decode accepts, so a hostile message cannot make the
// server recurse, allocate or loop without end.
type Limits struct {
	MaxDepth int // structure nesting; the root counts as 1
	MaxItems int // total items in the message
}

// DefaultLimits are generous for any real KMIP message.
var DefaultLimits = Limits{MaxDepth: 32, MaxItems: 100000}

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("malformed TTLV")

// Decode parses one complete TTLV item that must fill b exactly. The result
// shares nothing with b.
//
// Decoding is two passes because it sits on every request and every stored
// object read: the first validates b completely and counts what the tree
// needs; the second, which cannot fail, builds the tree out of a handful of
// slabs (one []Node, one []*Node for all child lists, one []byte for all byte
// strings, one string for all text) instead of several allocations per
// item. Child lists are capped slices of the shared slab, so appending to a
// decoded node's Children reallocates rather than overwriting a neighbour.
func Decode(b []byte, lim Limits) (*Node, error) {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	if lim.MaxItems <= 0 {
		lim.MaxItems = DefaultLimits.MaxItems
	}
	s, err := scan(b, lim)
	if err != nil {
		return nil, err
	}
	bl := builder{
		nodes: make([]Node, s.items),
		kids:  make([]*Node, s.items-1),
		// Never nil, so an empty byte string decodes to []byte{} (which
		// the encoder writes) rather than nil (which it skips).
		bytes: make([]byte, 0, s.byteLen),
	}
	bl.text.Grow(s.textLen)
	n, _ := bl.item(b)
	return n, nil
}

// Validate reports whether Decode(b, lim) would succeed, with the same
// error, without building the tree or allocating: for readers that only
// need a few fields of a message they must still check whole.
func Validate(b []byte, lim Limits) error {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	if lim.MaxItems <= 0 {
		lim.MaxItems = DefaultLimits.MaxItems
	}
	_, err := scan(b, lim)
	return err
}

// scan runs the validating first pass over one item that must fill b.
func scan(b []byte, lim Limits) (scanner, error) {
	s := scanner{lim: lim}
	rest, err := s.item(b, 1)
	if err != nil {
		return s, err
	}
	if len(rest) != 0 {
		return s, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return s, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// scanner is the validating first pass. Everything the builder relies on
// (lengths within bounds, known types, UTF-8 text, 0/1 booleans, the
// limits) is checked here.
type scanner struct {
	lim     Limits
	items   int
	byteLen int // sum of byte string lengths
	textLen int // sum of text string lengths
}

func (s *scanner) item(b []byte, depth int) ([]byte, error) {
	if len(b) < HeaderLen {
		return nil, malformed("truncated header")
	}
	s.items++
	if s.items > s.lim.MaxItems {
		return nil, malformed("more than %d items", s.lim.MaxItems)
	}
	tag, typ := headerTag(b), ttlv.Type(b[3])
	if b[0] != 0x42 && b[0] != 0x54 {
		return nil, malformed("invalid tag %06x", uint32(tag))
	}
	l := int(binary.BigEndian.Uint32(b[4:8]))
	body := b[HeaderLen:]
	switch typ {
	case ttlv.TypeInteger, ttlv.TypeEnumeration, ttlv.TypeInterval,
		ttlv.TypeLongInteger, ttlv.TypeBoolean, ttlv.TypeDateTime, ttlv.TypeDateTimeExtended:
		want := 8
		if typ == ttlv.TypeInteger || typ == ttlv.TypeEnumeration || typ == ttlv.TypeInterval {
			want = 4
		}
		if l != want {
			return nil, malformed("%s of %s has length %d, want %d", typ, tag, l, want)
		}
		if len(body) < 8 {
			return nil, malformed("%s of %s truncated", typ, tag)
		}
		if typ == ttlv.TypeBoolean && binary.BigEndian.Uint64(body) > 1 {
			return nil, malformed("boolean %s is not 0 or 1", tag)
		}
		return body[8:], nil
	case ttlv.TypeTextString, ttlv.TypeByteString, ttlv.TypeBigInteger:
		padded := l
		if m := l % 8; m != 0 {
			if typ == ttlv.TypeBigInteger {
				return nil, malformed("big integer %s length %d not a multiple of 8", tag, l)
			}
			padded += 8 - m
		}
		if padded < l || len(body) < padded {
			return nil, malformed("%s of %s truncated", typ, tag)
		}
		switch typ {
		case ttlv.TypeTextString:
			if !utf8.Valid(body[:l]) {
				return nil, malformed("text %s is not UTF-8", tag)
			}
			s.textLen += l
		case ttlv.TypeByteString:
			s.byteLen += l
		}
		return body[padded:], nil
	case ttlv.TypeStructure:
		if depth > s.lim.MaxDepth {
			return nil, malformed("nesting deeper than %d", s.lim.MaxDepth)
		}
		if len(body) < l {
			return nil, malformed("structure %s truncated", tag)
		}
		inner := body[:l]
		for len(inner) > 0 {
			rest, err := s.item(inner, depth+1)
			if err != nil {
				return nil, err
			}
			inner = rest
		}
		return body[l:], nil
	default:
		return nil, malformed("unknown type %#x for %s", byte(typ), tag)
	}
}

func headerTag(b []byte) ttlv.Tag {
	return ttlv.Tag(uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]))
}

// itemSize is the number of bytes an item the scanner accepted occupies.
func itemSize(b []byte) int {
	l := int(binary.BigEndian.Uint32(b[4:8]))
	switch ttlv.Type(b[3]) {
	case ttlv.TypeStructure:
		return HeaderLen + l
	case ttlv.TypeTextString, ttlv.TypeByteString, ttlv.TypeBigInteger:
		return HeaderLen + (l+7)&^7
	default:
		return HeaderLen + 8
	}
}

// builder is the second pass over bytes the scanner accepted; it only
// slices the slabs it was sized for.
type builder struct {
	nodes []Node
	kids  []*Node
	bytes []byte
	// text holds every text string back to back; Builder.String never
	// copies, and the buffer was grown up front, so each Text is a
	// substring of one allocation.
	text strings.Builder
}

func (bl *builder) item(b []byte) (*Node, []byte) {
	n := &bl.nodes[0]
	bl.nodes = bl.nodes[1:]
	n.Tag, n.Type = headerTag(b), ttlv.Type(b[3])
	l := int(binary.BigEndian.Uint32(b[4:8]))
	body := b[HeaderLen:]
	switch n.Type {
	case ttlv.TypeInteger:
		n.Int = int64(int32(binary.BigEndian.Uint32(body)))
	case ttlv.TypeEnumeration, ttlv.TypeInterval:
		n.Int = int64(binary.BigEndian.Uint32(body))
	case ttlv.TypeLongInteger, ttlv.TypeBoolean:
		n.Int = int64(binary.BigEndian.Uint64(body))
	case ttlv.TypeDateTime:
		n.Time = time.Unix(int64(binary.BigEndian.Uint64(body)), 0).UTC()
	case ttlv.TypeDateTimeExtended:
		n.Time = time.UnixMicro(int64(binary.BigEndian.Uint64(body))).UTC()
	case ttlv.TypeTextString:
		start := bl.text.Len()
		bl.text.Write(body[:l])
		n.Text = bl.text.String()[start:]
	case ttlv.TypeByteString:
		start := len(bl.bytes)
		bl.bytes = append(bl.bytes, body[:l]...)
		n.Bytes = bl.bytes[start:len(bl.bytes):len(bl.bytes)]
	case ttlv.TypeBigInteger:
		n.Big = twosComplement(body[:l])
	case ttlv.TypeStructure:
		inner := body[:l]
		k := 0
		for p := inner; len(p) > 0; p = p[itemSize(p):] {
			k++
		}
		if k > 0 {
			kids := bl.kids[:k:k]
			bl.kids = bl.kids[k:]
			for i := range kids {
				kids[i], inner = bl.item(inner)
			}
			n.Children = kids
		}
	}
	return n, b[itemSize(b):]
}

func twosComplement(b []byte) *big.Int {
	i := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		i.Sub(i, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return i
}

// MessageLen reads the total length of a message (header included) from its
// first 8 bytes, so a reader can check it against a cap before allocating.
// It returns an error for a header that cannot start a KMIP message.
func MessageLen(header []byte) (int64, error) {
	if len(header) < HeaderLen {
		return 0, malformed("truncated header")
	}
	if header[0] != 0x42 && header[0] != 0x54 {
		return 0, malformed("invalid tag")
	}
	if ttlv.Type(header[3]) != ttlv.TypeStructure {
		return 0, malformed("message is not a structure")
	}
	return HeaderLen + int64(binary.BigEndian.Uint32(header[4:8])), nil
}
