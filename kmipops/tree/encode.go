package tree

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"time"

	"github.com/gemalto/kmip-go/ttlv"
)

// Encode serialises the tree into a new slice of exactly its length.
//
// The bytes are the same as kmip-go's ttlv.Encoder produces (a test holds
// the two together), including its one quirk: a ByteString whose Bytes is
// nil is left out entirely, while an empty non-nil one is encoded. kmipd
// encodes directly because kmip-go's encoder builds into a growing buffer
// and copies it out again, which showed up on every response and every
// stored object.
func Encode(n *Node) ([]byte, error) {
	size, err := EncodedLen(n)
	if err != nil {
		return nil, err
	}
	return appendNode(make([]byte, 0, size), n), nil
}

// AppendEncode appends the encoding of n to dst, for callers that reuse a
// buffer (the server's response path). On error dst is returned unchanged.
func AppendEncode(dst []byte, n *Node) ([]byte, error) {
	size, err := EncodedLen(n)
	if err != nil {
		return dst, err
	}
	if cap(dst)-len(dst) < size {
		grown := make([]byte, len(dst), len(dst)+size)
		copy(grown, dst)
		dst = grown
	}
	return appendNode(dst, n), nil
}

// MustEncode is for trees the program built itself, where failure is a bug.
func MustEncode(n *Node) []byte {
	b, err := Encode(n)
	if err != nil {
		panic(err)
	}
	return b
}

// EncodedLen is the number of bytes Encode produces for n, or the error it
// would return.
func EncodedLen(n *Node) (int, error) {
	switch n.Type {
	case ttlv.TypeStructure:
		size := HeaderLen
		for _, c := range n.Children {
			l, err := EncodedLen(c)
			if err != nil {
				return 0, err
			}
			size += l
		}
		return size, nil
	case ttlv.TypeInteger, ttlv.TypeLongInteger, ttlv.TypeEnumeration, ttlv.TypeInterval,
		ttlv.TypeBoolean, ttlv.TypeDateTime, ttlv.TypeDateTimeExtended:
		return HeaderLen + 8, nil
	case ttlv.TypeTextString:
		return HeaderLen + pad8(len(n.Text)), nil
	case ttlv.TypeByteString:
		if n.Bytes == nil {
			return 0, nil
		}
		return HeaderLen + pad8(len(n.Bytes)), nil
	case ttlv.TypeBigInteger:
		return HeaderLen + len(bigBytes(n.Big)), nil
	case typeRaw:
		return len(n.Bytes), nil
	default:
		return 0, fmt.Errorf("tree: cannot encode type %#x of %s", byte(n.Type), n.Tag)
	}
}

func pad8(l int) int { return (l + 7) &^ 7 }

// appendNode writes n; EncodedLen has already vetted every type in it.
func appendNode(b []byte, n *Node) []byte {
	switch n.Type {
	case ttlv.TypeStructure:
		b = appendHeader(b, n, 0)
		start := len(b)
		for _, c := range n.Children {
			b = appendNode(b, c)
		}
		binary.BigEndian.PutUint32(b[start-4:], uint32(len(b)-start))
		return b
	case ttlv.TypeInteger, ttlv.TypeEnumeration:
		return appendUint32(appendHeader(b, n, 4), uint32(n.Int))
	case ttlv.TypeInterval:
		// As kmip-go: seconds through time.Duration, wrapping alike.
		return appendUint32(appendHeader(b, n, 4), uint32(time.Duration(n.Int)*time.Second/time.Second))
	case ttlv.TypeLongInteger:
		return binary.BigEndian.AppendUint64(appendHeader(b, n, 8), uint64(n.Int))
	case ttlv.TypeBoolean:
		var v uint64
		if n.Int != 0 {
			v = 1
		}
		return binary.BigEndian.AppendUint64(appendHeader(b, n, 8), v)
	case ttlv.TypeDateTime:
		return binary.BigEndian.AppendUint64(appendHeader(b, n, 8), uint64(n.Time.Unix()))
	case ttlv.TypeDateTimeExtended:
		us := n.Time.Unix()*1000000 + int64(n.Time.Nanosecond()/1000)
		return binary.BigEndian.AppendUint64(appendHeader(b, n, 8), uint64(us))
	case ttlv.TypeTextString:
		b = append(appendHeader(b, n, len(n.Text)), n.Text...)
		return appendPadding(b, len(n.Text))
	case ttlv.TypeByteString:
		if n.Bytes == nil {
			return b
		}
		b = append(appendHeader(b, n, len(n.Bytes)), n.Bytes...)
		return appendPadding(b, len(n.Bytes))
	case ttlv.TypeBigInteger:
		v := bigBytes(n.Big)
		return append(appendHeader(b, n, len(v)), v...)
	case typeRaw:
		return append(b, n.Bytes...)
	}
	panic("tree: appendNode on an unvetted type") // EncodedLen returned an error first
}

func appendHeader(b []byte, n *Node, length int) []byte {
	return append(b, byte(n.Tag>>16), byte(n.Tag>>8), byte(n.Tag), byte(n.Type),
		byte(length>>24), byte(length>>16), byte(length>>8), byte(length))
}

func appendUint32(b []byte, v uint32) []byte {
	return append(binary.BigEndian.AppendUint32(b, v), 0, 0, 0, 0)
}

var zeros [8]byte

func appendPadding(b []byte, l int) []byte { return append(b, zeros[:pad8(l)-l]...) }

var bigOne = big.NewInt(1)

// bigBytes is the two's-complement value field of a BigInteger, sign-extended
// to a multiple of 8 bytes, exactly as kmip-go writes it (nil encodes as 0).
func bigBytes(i *big.Int) []byte {
	if i == nil || i.Sign() == 0 {
		return zeros[:]
	}
	var b []byte
	if i.Sign() > 0 {
		b = i.Bytes()
		if b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		if m := len(b) % 8; m > 0 {
			b = append(make([]byte, 8-m, 8-m+len(b)), b...)
		}
		return b
	}
	length := uint(i.BitLen()/8+1) * 8
	j := new(big.Int).Lsh(bigOne, length)
	b = j.Add(i, j).Bytes()
	if len(b) >= 2 && b[0] == 0xff && b[1]&0x80 != 0 {
		b = b[1:]
	}
	if m := len(b) % 8; m > 0 {
		ones := make([]byte, 8-m, 8-m+len(b))
		for k := range ones {
			ones[k] = 0xff
		}
		b = append(ones, b...)
	}
	return b
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
