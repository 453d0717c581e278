package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
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

// Decode parses one complete TTLV item that must fill b exactly.
func Decode(b []byte, lim Limits) (*Node, error) {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	if lim.MaxItems <= 0 {
		lim.MaxItems = DefaultLimits.MaxItems
	}
	d := decoder{lim: lim}
	n, rest, err := d.item(b, 1)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return n, nil
}

type decoder struct {
	lim   Limits
	items int
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func (d *decoder) item(b []byte, depth int) (*Node, []byte, error) {
	if len(b) < HeaderLen {
		return nil, nil, malformed("truncated header")
	}
	d.items++
	if d.items > d.lim.MaxItems {
		return nil, nil, malformed("more than %d items", d.lim.MaxItems)
	}
	t := ttlv.TTLV(b)
	if b[0] != 0x42 && b[0] != 0x54 {
		return nil, nil, malformed("invalid tag %06x", uint32(t.Tag()))
	}
	n := &Node{Tag: t.Tag(), Type: t.Type()}
	l := int(binary.BigEndian.Uint32(b[4:8]))
	body := b[HeaderLen:]
	fixed := func(want int) ([]byte, error) {
		if l != want {
			return nil, malformed("%s of %s has length %d, want %d", n.Type, n.Tag, l, want)
		}
		if len(body) < 8 {
			return nil, malformed("%s of %s truncated", n.Type, n.Tag)
		}
		return body[:want], nil
	}
	switch n.Type {
	case ttlv.TypeInteger, ttlv.TypeEnumeration, ttlv.TypeInterval:
		v, err := fixed(4)
		if err != nil {
			return nil, nil, err
		}
		u := binary.BigEndian.Uint32(v)
		switch n.Type {
		case ttlv.TypeInteger:
			n.Int = int64(int32(u))
		default:
			n.Int = int64(u)
		}
		return n, body[8:], nil
	case ttlv.TypeLongInteger, ttlv.TypeBoolean, ttlv.TypeDateTime, ttlv.TypeDateTimeExtended:
		v, err := fixed(8)
		if err != nil {
			return nil, nil, err
		}
		i := int64(binary.BigEndian.Uint64(v))
		switch n.Type {
		case ttlv.TypeBoolean:
			if uint64(i) > 1 {
				return nil, nil, malformed("boolean %s is not 0 or 1", n.Tag)
			}
			n.Int = i
		case ttlv.TypeDateTime:
			n.Time = time.Unix(i, 0).UTC()
		case ttlv.TypeDateTimeExtended:
			n.Time = time.UnixMicro(i).UTC()
		default:
			n.Int = i
		}
		return n, body[8:], nil
	case ttlv.TypeTextString, ttlv.TypeByteString, ttlv.TypeBigInteger:
		padded := l
		if m := l % 8; m != 0 {
			if n.Type == ttlv.TypeBigInteger {
				return nil, nil, malformed("big integer %s length %d not a multiple of 8", n.Tag, l)
			}
			padded += 8 - m
		}
		if padded < l || len(body) < padded {
			return nil, nil, malformed("%s of %s truncated", n.Type, n.Tag)
		}
		v := body[:l]
		switch n.Type {
		case ttlv.TypeTextString:
			if !utf8.Valid(v) {
				return nil, nil, malformed("text %s is not UTF-8", n.Tag)
			}
			n.Text = string(v)
		case ttlv.TypeByteString:
			n.Bytes = bytes.Clone(v)
			if n.Bytes == nil {
				n.Bytes = []byte{}
			}
		default:
			n.Big = twosComplement(v)
		}
		return n, body[padded:], nil
	case ttlv.TypeStructure:
		if depth > d.lim.MaxDepth {
			return nil, nil, malformed("nesting deeper than %d", d.lim.MaxDepth)
		}
		if len(body) < l {
			return nil, nil, malformed("structure %s truncated", n.Tag)
		}
		inner := body[:l]
		for len(inner) > 0 {
			c, rest, err := d.item(inner, depth+1)
			if err != nil {
				return nil, nil, err
			}
			n.Children = append(n.Children, c)
			inner = rest
		}
		return n, body[l:], nil
	default:
		return nil, nil, malformed("unknown type %#x for %s", byte(n.Type), n.Tag)
	}
}

func twosComplement(b []byte) *big.Int {
	i := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		i.Sub(i, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return i
}

// Encode serialises the tree with kmip-go's TTLV encoder.
func Encode(n *Node) ([]byte, error) {
	var buf bytes.Buffer
	e := ttlv.NewEncoder(&buf)
	if err := encode(e, n); err != nil {
		return nil, err
	}
	if err := e.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MustEncode is for trees the program built itself, where failure is a bug.
func MustEncode(n *Node) []byte {
	b, err := Encode(n)
	if err != nil {
		panic(err)
	}
	return b
}

func encode(e *ttlv.Encoder, n *Node) error {
	switch n.Type {
	case ttlv.TypeStructure:
		return e.EncodeStructure(n.Tag, func(e *ttlv.Encoder) error {
			for _, c := range n.Children {
				if err := encode(e, c); err != nil {
					return err
				}
			}
			return nil
		})
	case ttlv.TypeInteger:
		e.EncodeInteger(n.Tag, int32(n.Int))
	case ttlv.TypeLongInteger:
		e.EncodeLongInteger(n.Tag, n.Int)
	case ttlv.TypeEnumeration:
		e.EncodeEnumeration(n.Tag, uint32(n.Int))
	case ttlv.TypeInterval:
		e.EncodeInterval(n.Tag, time.Duration(n.Int)*time.Second)
	case ttlv.TypeBoolean:
		e.EncodeBoolean(n.Tag, n.Int != 0)
	case ttlv.TypeBigInteger:
		v := n.Big
		if v == nil {
			v = new(big.Int)
		}
		e.EncodeBigInteger(n.Tag, v)
	case ttlv.TypeTextString:
		e.EncodeTextString(n.Tag, n.Text)
	case ttlv.TypeByteString:
		e.EncodeByteString(n.Tag, n.Bytes)
	case ttlv.TypeDateTime:
		e.EncodeDateTime(n.Tag, n.Time)
	case ttlv.TypeDateTimeExtended:
		e.EncodeDateTimeExtended(n.Tag, n.Time)
	default:
		return fmt.Errorf("tree: cannot encode type %#x of %s", byte(n.Type), n.Tag)
	}
	return nil
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

// String renders the tree with kmip-go's printer, for debugging and test failures.
// Callers must not log trees that may carry key material.
func (n *Node) String() string {
	b, err := Encode(n)
	if err != nil {
		return err.Error()
	}
	return ttlv.TTLV(b).String()
}
