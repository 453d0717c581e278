package kmipops

import (
	"bytes"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// testObject has the attribute shapes a record holds: enumerations, dates,
// structures, several instances of one name, custom names, and a key body.
func testObject() *object {
	now := time.Unix(1700000000, 0)
	o := &object{uid: "uid-1", typ: kmip14.ObjectTypeSymmetricKey}
	o.set(attrState, tree.Enum(0, uint32(kmip14.StatePreActive)))
	o.set(attrCryptoLength, tree.Int(0, 256))
	o.set(attrInitialDate, tree.Time(0, now))
	o.set(attrFresh, tree.Bool(0, true))
	o.add(attrName, tree.Struct(0, tree.Text(kmip14.TagNameValue, "a"), tree.Enum(kmip14.TagNameType, 1)))
	o.add(attrName, tree.Struct(0, tree.Text(kmip14.TagNameValue, "b"), tree.Enum(kmip14.TagNameType, 1)))
	o.add("x-custom", tree.Bytes(0, []byte{}))
	o.add("y-ünïcode", tree.Text(0, "v"))
	o.body = tree.Struct(kmip14.TagSymmetricKey, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, bytes.Repeat([]byte{7}, 32)))))
	return o
}

// reencode encodes o as record uid-1 and decodes it again.
func reencode(t *testing.T, o *object) (rec []byte, decoded *object) {
	t.Helper()
	rec, err := o.encode()
	if err != nil {
		t.Fatal(err)
	}
	decoded, err = decodeObject("uid-1", rec)
	if err != nil {
		t.Fatal(err)
	}
	return rec, decoded
}

// A record read back and written again untouched is byte for byte the same
// (undecoded values go back verbatim), and every value reads as written.
func TestRecordRoundTripKeepsUndecodedValues(t *testing.T) {
	want := testObject()
	rec, got := reencode(t, want)
	again, err := got.encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, rec) {
		t.Fatalf("untouched record re-encodes differently:\n got %x\nwant %x", again, rec)
	}
	if len(got.attrs) != len(want.attrs) {
		t.Fatalf("%d attributes, want %d", len(got.attrs), len(want.attrs))
	}
	for i := range want.attrs {
		w, g := &want.attrs[i], &got.attrs[i]
		if g.name != w.name || g.index != w.index {
			t.Fatalf("attribute %d is %q[%d], want %q[%d]", i, g.name, g.index, w.name, w.index)
		}
		if !bytes.Equal(tree.MustEncode(g.value()), tree.MustEncode(w.value())) {
			t.Fatalf("%s: value differs", w.name)
		}
	}
	if !bytes.Equal(tree.MustEncode(got.body), tree.MustEncode(want.body)) {
		t.Fatal("body differs")
	}
	// The record buffer is the caller's to clear: nothing may alias it.
	clear(rec)
	if n, _ := got.get("y-ünïcode").TextValue(); n != "v" {
		t.Fatalf("custom value after the record was cleared: %q", n)
	}
	if m, _ := got.body.Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue(); !bytes.Equal(m, bytes.Repeat([]byte{7}, 32)) {
		t.Fatal("key material after the record was cleared differs")
	}
}

// Changes made through get, all and set reach the next encoding, next to
// values that were never decoded.
func TestRecordChangesSurviveReencoding(t *testing.T) {
	_, o := reencode(t, testObject())
	o.set(attrFresh, tree.Bool(0, false))
	o.get(attrCryptoLength).Int = 128
	o.all(attrName)[1].value().Child(kmip14.TagNameValue).Text = "c"
	_, o2 := reencode(t, o)
	if f, _ := o2.get(attrFresh).BoolValue(); f {
		t.Fatal("Fresh change lost")
	}
	if l, _ := o2.intAttr(attrCryptoLength); l != 128 {
		t.Fatalf("length %d, change through get lost", l)
	}
	if n, _ := o2.all(attrName)[1].value().Child(kmip14.TagNameValue).TextValue(); n != "c" {
		t.Fatalf("name %q, change through all lost", n)
	}
	if s := o2.state(); s != kmip14.StatePreActive {
		t.Fatalf("untouched State reads %v", s)
	}
}

func TestDecodeObjectRejects(t *testing.T) {
	rec, err := testObject().encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeObject("uid-2", rec); err == nil {
		t.Fatal("a record under another uid decoded")
	}
	if _, err := decodeObject("uid-1", rec[:len(rec)-8]); err == nil {
		t.Fatal("a truncated record decoded")
	}
	msg := tree.MustEncode(tree.Struct(kmip14.TagRequestMessage, tree.Int(kmip14.TagBatchCount, 1)))
	if _, err := decodeObject("uid-1", msg); err == nil {
		t.Fatal("a KMIP message decoded as a record")
	}
	bad := tree.MustEncode(tree.Struct(tagRecord, tree.Int(tagRecordVersion, recordVersion),
		tree.Enum(kmip14.TagObjectType, 2), tree.Text(kmip14.TagUniqueIdentifier, "uid-1"),
		tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, "State"))))
	if _, err := decodeObject("uid-1", bad); err == nil {
		t.Fatal("an attribute without a value decoded")
	}
}

// Reading a record decodes the body but not the attribute values: a handful
// of allocations, however many attributes it holds. Decoding every value
// was most of what a Get allocated.
func TestDecodeObjectDefersAttributeValues(t *testing.T) {
	o := testObject()
	for i := range 40 {
		o.add(attrName, tree.Struct(0, tree.Text(kmip14.TagNameValue, "n"), tree.Enum(kmip14.TagNameType, uint32(i))))
	}
	rec, err := o.encode()
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := decodeObject("uid-1", rec); err != nil {
			t.Fatal(err)
		}
	})
	// The object, its attrs, the value buffer, the body's four slabs and
	// the two custom names (standard names are shared strings): 10.
	if allocs > 10 {
		t.Fatalf("decodeObject allocates %v times for %d attributes", allocs, len(o.attrs))
	}
}
