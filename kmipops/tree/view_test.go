package tree

import (
	"bytes"
	"math/big"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
)

func keyBody() *Node {
	return Struct(kmip14.TagSymmetricKey, Struct(kmip14.TagKeyBlock,
		Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		Struct(kmip14.TagKeyValue, Bytes(kmip14.TagKeyMaterial, bytes.Repeat([]byte{7}, 32))),
		Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
		Int(kmip14.TagCryptographicLength, 256),
		Big(kmip14.TagD, big.NewInt(-5)),
		Bytes(kmip14.TagData, []byte{})))
}

// A clone shares nothing with its original: changing any part of it, or
// appending to a child list cut from the shared slab, leaves the original
// as it was.
func TestCloneIsIndependent(t *testing.T) {
	n := keyBody()
	want := MustEncode(n)
	c := n.Clone()
	if !bytes.Equal(MustEncode(c), want) {
		t.Fatal("clone encodes differently")
	}
	kb := c.Child(kmip14.TagKeyBlock)
	km := kb.Path(kmip14.TagKeyValue, kmip14.TagKeyMaterial)
	clear(km.Bytes)
	km.Bytes = append(km.Bytes, 1) // capped: must not run into the next byte string
	kb.Child(kmip14.TagKeyFormatType).Int = int64(kmip14.KeyFormatTypeOpaque)
	kb.Child(kmip14.TagD).Big.SetInt64(9)
	kb.Child(kmip14.TagKeyValue).Add(Text(kmip14.TagName, "x"))
	c.Add(Int(kmip14.TagBatchCount, 1))
	if !bytes.Equal(MustEncode(n), want) {
		t.Fatal("changing the clone changed the original")
	}
	if c.Child(kmip14.TagKeyBlock).Child(kmip14.TagData).Bytes == nil {
		t.Fatal("an empty byte string became nil")
	}
}

func TestCloneAllocatesSlabs(t *testing.T) {
	n := Struct(kmip14.TagSymmetricKey, Struct(kmip14.TagKeyBlock,
		Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		Struct(kmip14.TagKeyValue, Bytes(kmip14.TagKeyMaterial, make([]byte, 32))),
		Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
		Int(kmip14.TagCryptographicLength, 256)))
	if a := testing.AllocsPerRun(100, func() { n.Clone() }); a > 3 {
		t.Fatalf("Clone of a key body allocates %v times, want 3 (nodes, child lists, bytes)", a)
	}
}

// Nothing read through a View can change the node: byte strings and big
// integers come out as copies.
func TestViewHandsOutCopies(t *testing.T) {
	n := keyBody()
	want := MustEncode(n)
	v := n.View()
	b, ok := v.Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue()
	if !ok || !bytes.Equal(b, bytes.Repeat([]byte{7}, 32)) {
		t.Fatalf("key material %x, %v", b, ok)
	}
	clear(b)
	bi, ok := v.Path(kmip14.TagKeyBlock, kmip14.TagD).BigValue()
	if !ok || bi.Int64() != -5 {
		t.Fatalf("big %v, %v", bi, ok)
	}
	bi.SetInt64(1)
	c := v.Clone()
	c.Child(kmip14.TagKeyBlock).Child(kmip14.TagCryptographicLength).Int = 128
	if !bytes.Equal(MustEncode(n), want) {
		t.Fatal("a value read through the view changed the node")
	}
	if e, _ := v.Child(kmip14.TagKeyBlock).BytesValue(); e != nil {
		t.Fatal("a structure read as a byte string")
	}
	if d, _ := v.Path(kmip14.TagKeyBlock, kmip14.TagData).BytesValue(); d == nil {
		t.Fatal("an empty byte string reads as nil")
	}
}

func TestViewOfNothing(t *testing.T) {
	var v View
	if v.Present() || v.Child(kmip14.TagKeyBlock).Present() || v.Tag() != 0 || v.Type() != 0 || v.Clone() != nil {
		t.Fatal("the zero View is not empty")
	}
	for range v.Children() {
		t.Fatal("the zero View has children")
	}
	if _, ok := v.IntervalValue(); ok {
		t.Fatal("the zero View has a value")
	}
	if !v.Equal(View{}) || v.Equal(Int(0, 1).View()) {
		t.Fatal("Equal on the zero View")
	}
}

func TestViewEqual(t *testing.T) {
	when := time.Unix(1700000000, 0)
	for _, c := range []struct {
		a, b *Node
		eq   bool
	}{
		{Int(kmip14.TagAttributeValue, 1), Int(kmip14.TagCryptographicLength, 1), true}, // top tags ignored
		{Int(0, 1), Enum(0, 1), false},
		{Text(0, "a"), Text(0, "a"), true},
		{Bytes(0, []byte{1}), Bytes(0, []byte{2}), false},
		{Time(0, when), &Node{Type: ttlv.TypeDateTime, Time: when.In(time.FixedZone("x", 3600))}, true},
		{Big(0, big.NewInt(3)), Big(0, big.NewInt(3)), true},
		{Struct(0, Int(kmip14.TagCryptographicLength, 1)), Struct(0, Int(kmip14.TagBatchCount, 1)), false},
		{Struct(0, Int(kmip14.TagCryptographicLength, 1)), Struct(0), false},
		{keyBody(), keyBody(), true},
	} {
		if got := c.a.View().Equal(c.b.View()); got != c.eq {
			t.Errorf("%s Equal %s = %v", c.a, c.b, got)
		}
	}
	var n int
	for ch := range keyBody().View().Child(kmip14.TagKeyBlock).Children() {
		if !ch.Present() {
			t.Fatal("absent child")
		}
		n++
	}
	if n != 6 {
		t.Fatalf("%d children", n)
	}
	if d, ok := Interval(0, 90*time.Second).View().IntervalValue(); !ok || d != 90*time.Second {
		t.Fatalf("interval %v %v", d, ok)
	}
}
