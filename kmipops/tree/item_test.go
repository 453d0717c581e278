package tree

import (
	"bytes"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"
)

// sameAsNode reports where the in-place Item view of b disagrees with the
// decoded Node n: tag, type, children in order, Child lookups and the typed
// accessors must all match.
func sameAsNode(t *testing.T, it Item, n *Node) {
	t.Helper()
	if it.Tag() != n.Tag || it.Type() != n.Type {
		t.Fatalf("item %s/%s, node %s/%s", it.Tag(), it.Type(), n.Tag, n.Type)
	}
	if tb, ok := it.TextBytes(); ok != (n.Type == ttlv.TypeTextString) || string(tb) != n.Text {
		t.Fatalf("%s: TextBytes %q %v, node %q", n.Tag, tb, ok, n.Text)
	}
	if bb, ok := it.BytesValue(); ok != (n.Type == ttlv.TypeByteString) || !bytes.Equal(bb, n.Bytes) {
		t.Fatalf("%s: BytesValue %x %v, node %x", n.Tag, bb, ok, n.Bytes)
	}
	ie, iok := it.EnumValue()
	ne, nok := n.EnumValue()
	if ie != ne || iok != nok {
		t.Fatalf("%s: EnumValue %d %v, node %d %v", n.Tag, ie, iok, ne, nok)
	}
	ii, iok := it.IntValue()
	ni, nok := n.IntValue()
	if ii != ni || iok != nok {
		t.Fatalf("%s: IntValue %d %v, node %d %v", n.Tag, ii, iok, ni, nok)
	}
	i := 0
	first := map[ttlv.Tag]Item{}
	for c := range it.Children() {
		if i >= len(n.Children) {
			t.Fatalf("%s: item has more than %d children", n.Tag, len(n.Children))
		}
		sameAsNode(t, c, n.Children[i])
		if _, seen := first[c.Tag()]; !seen {
			first[c.Tag()] = c
			// Child is the first child with the tag, on both sides.
			if got := it.Child(c.Tag()); &got[0] != &c[0] || n.Child(c.Tag()) != n.Children[i] {
				t.Fatalf("%s: Child(%s) is not the first such child", n.Tag, c.Tag())
			}
		}
		i++
	}
	if i != len(n.Children) {
		t.Fatalf("%s: item has %d children, node %d", n.Tag, i, len(n.Children))
	}
	if it.Size() != len(it) {
		t.Fatalf("%s: Size %d, item is %d bytes", n.Tag, it.Size(), len(it))
	}
}

func TestItemAgreesWithNode(t *testing.T) {
	for _, root := range []*Node{sampleRecord(), Struct(kmip14.TagRequestMessage,
		Int(kmip14.TagBatchCount, -7), Enum(kmip14.TagOperation, 1), Text(kmip14.TagName, "héllo"),
		Bytes(kmip14.TagData, []byte{}), Bytes(kmip14.TagKeyMaterial, []byte{1, 2, 3}), Struct(kmip14.TagAttribute))} {
		b := MustEncode(root)
		n, err := Decode(b, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		sameAsNode(t, Item(b), n)
		if Item(b).Child(kmip14.TagCertificateType) != nil {
			t.Fatal("Child found a tag that is not there")
		}
	}
	var none Item
	if _, ok := none.EnumValue(); ok || none.Child(kmip14.TagName) != nil {
		t.Fatal("a nil item has values")
	}
}

// Raw writes an encoded item back unchanged wherever it sits in a tree, and
// survives Clone.
func TestRawEncodesVerbatim(t *testing.T) {
	rec := MustEncode(sampleRecord())
	var want []*Node
	var raws []*Node
	for c := range Item(rec).Children() {
		n, err := Decode(c, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
		raws = append(raws, Raw(c))
	}
	got := MustEncode(Struct(ttlv.Tag(0x540001), raws...))
	if !bytes.Equal(got, rec) {
		t.Fatalf("raw children re-encode differently:\n got %x\nwant %x", got, rec)
	}
	if again := MustEncode(Struct(ttlv.Tag(0x540001), raws...).Clone()); !bytes.Equal(again, rec) {
		t.Fatal("a cloned raw tree encodes differently")
	}
	if _, ok := raws[1].EnumValue(); ok || raws[1].Tag != want[1].Tag {
		t.Fatal("a raw node answers a typed accessor or lost its tag")
	}
}
