package object

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// reencode encodes o as record uid-1 and decodes it again.
func reencode(t *testing.T, o *Object) (rec []byte, decoded *Object) {
	t.Helper()
	rec = encoded(t, o)
	decoded, err := decodeObject("uid-1", rec)
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
	if again := encoded(t, got); !bytes.Equal(again, rec) {
		t.Fatalf("untouched record re-encodes differently:\n got %x\nwant %x", again, rec)
	}
	if len(got.attrs) != len(want.attrs) {
		t.Fatalf("%d attributes, want %d", len(got.attrs), len(want.attrs))
	}
	for i := range want.attrs {
		w, g := &want.attrs[i], &got.attrs[i]
		if g.Name() != w.Name() || g.Index() != w.Index() {
			t.Fatalf("attribute %d is %q[%d], want %q[%d]", i, g.Name(), g.Index(), w.Name(), w.Index())
		}
		if !g.Value().Equal(w.Value()) {
			t.Fatalf("%s: value differs", w.Name())
		}
	}
	if !got.Body().Equal(want.Body()) {
		t.Fatal("body differs")
	}
	// The record buffer is the caller's to clear: nothing may alias it.
	clear(rec)
	if n, _ := got.Get("y-ünïcode").TextValue(); n != "v" {
		t.Fatalf("custom value after the record was cleared: %q", n)
	}
	if m, _ := got.Body().Path(kmip14.TagKeyBlock, kmip14.TagKeyValue, kmip14.TagKeyMaterial).BytesValue(); !bytes.Equal(m, keyMaterial) {
		t.Fatal("key material after the record was cleared differs")
	}
}

// Changes made through Set, Modify, Add and Delete reach the next
// encoding, next to values that were never decoded.
func TestRecordChangesSurviveReencoding(t *testing.T) {
	_, o := reencode(t, testObject())
	o.Set(AttrFresh, tree.Bool(0, false))
	o.Set(AttrCryptoLength, tree.Int(0, 128))
	if _, ok := o.Modify(AttrName, 1, nameValue("c")); !ok {
		t.Fatal("Modify found no Name[1]")
	}
	if a := o.Add("x-custom", tree.Text(0, "second")); a.Index() != 1 {
		t.Fatalf("added x-custom has index %d, want 1", a.Index())
	}
	if _, ok := o.Delete("x-bytes", 0); !ok {
		t.Fatal("Delete found no x-bytes")
	}
	if _, ok := o.Delete("x-bytes", 0); ok {
		t.Fatal("Delete found x-bytes twice")
	}
	_, o2 := reencode(t, o)
	if o2.Fresh() {
		t.Fatal("Fresh change lost")
	}
	if l, _ := o2.Get(AttrCryptoLength).IntValue(); l != 128 {
		t.Fatalf("length %d, Set lost", l)
	}
	names := o2.All(AttrName)
	if n, _ := names[1].Value().Child(kmip14.TagNameValue).TextValue(); len(names) != 2 || n != "c" {
		t.Fatalf("name %q, Modify lost", n)
	}
	if c := o2.All("x-custom"); len(c) != 2 {
		t.Fatalf("%d x-custom instances, want 2", len(c))
	}
	if o2.Has("x-bytes") {
		t.Fatal("Delete lost")
	}
	if s := o2.State(); s != kmip14.StatePreActive {
		t.Fatalf("untouched State reads %v", s)
	}
}

func TestDecodeObjectRejects(t *testing.T) {
	rec := encoded(t, testObject())
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
		o.Add(AttrName, tree.Struct(0, tree.Text(kmip14.TagNameValue, "n"), tree.Enum(kmip14.TagNameType, uint32(i))))
	}
	rec := encoded(t, o)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := decodeObject("uid-1", rec); err != nil {
			t.Fatal(err)
		}
	})
	// The object, its attrs, the value buffer, the body's four slabs and
	// the three custom names (standard names are shared strings): 10.
	if allocs > 10 {
		t.Fatalf("decodeObject allocates %v times for %d attributes", allocs, len(o.attrs))
	}
}

func TestNewSetsServerAttributes(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	body := testObject().CloneBody()
	body.Child(kmip14.TagKeyBlock).Add(
		tree.Enum(kmip14.TagCryptographicAlgorithm, uint32(kmip14.CryptographicAlgorithmAES)),
		tree.Int(kmip14.TagCryptographicLength, 256))
	client := []Attr{
		NewAttr(AttrName, nameValue("k")),
		NewAttr(AttrName, nameValue("k2")),
		NewAttr(AttrObjectType, tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey))), // equal to the real one
		NewAttr(AttrActivationDate, tree.Time(0, now.Add(-time.Hour))),
	}
	o, err := New(Spec{Type: kmip14.ObjectTypeSymmetricKey, Body: body, Attrs: client, Now: now,
		Generated: true, RNG: tree.Struct(0, tree.Enum(kmip14.TagRNGAlgorithm, 1)), LeaseTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if o.UID() != "" {
		t.Fatal("a new object has a uid before it is inserted")
	}
	if s := o.State(); s != kmip14.StateActive {
		t.Fatalf("State %s: a past Activation Date makes a new object Active", s)
	}
	if a, ok := o.CryptographicAlgorithm(); !ok || a != kmip14.CryptographicAlgorithmAES {
		t.Fatalf("Cryptographic Algorithm %v from the key block", a)
	}
	if names := o.All(AttrName); len(names) != 2 || names[1].Index() != 1 {
		t.Fatalf("Names %v: indices are assigned in order", names)
	}
	if !o.Fresh() || o.Sensitive() || !o.Extractable() || !o.Has(AttrRNG) || !o.Has(AttrDigest) {
		t.Fatal("Fresh, Sensitive, Extractable, RNG or Digest wrong for a generated key")
	}
	if d, ok := o.LeaseTime(); !ok || d != time.Hour {
		t.Fatalf("Lease Time %v", d)
	}
	if d, _ := o.InitialDate(); !d.Equal(now) {
		t.Fatalf("Initial Date %v", d)
	}

	var oe *Error
	for name, v := range map[string]*tree.Node{
		AttrState:      tree.Enum(0, uint32(kmip14.StateActive)),
		AttrObjectType: tree.Enum(0, uint32(kmip14.ObjectTypePrivateKey)),
	} {
		_, err := New(Spec{Type: kmip14.ObjectTypeSymmetricKey, Body: testObject().CloneBody(), Attrs: []Attr{NewAttr(name, v)}, Now: now})
		if !errors.As(err, &oe) || oe.ResultReason() != kmip14.ResultReasonInvalidField {
			t.Errorf("a client's %s: %v, want Invalid Field", name, err)
		}
	}
	twice := []Attr{NewAttr(AttrCryptoLength, tree.Int(0, 128)), NewAttr(AttrCryptoLength, tree.Int(0, 256))}
	if _, err := New(Spec{Type: kmip14.ObjectTypeSymmetricKey, Body: testObject().CloneBody(), Attrs: twice, Now: now}); !errors.As(err, &oe) {
		t.Errorf("a single-valued attribute given twice: %v", err)
	}
}

func TestParseAttribute(t *testing.T) {
	attr := func(name string, v *tree.Node) *tree.Node {
		v.Tag = kmip14.TagAttributeValue
		return tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, name), v)
	}
	good := attr(AttrName, nameValue("n"))
	a, err := ParseAttribute(good)
	if err != nil {
		t.Fatal(err)
	}
	// The instance holds its own copy of the request's value.
	good.Child(kmip14.TagAttributeValue).Child(kmip14.TagNameValue).Text = "changed"
	if n, _ := a.Value().Child(kmip14.TagNameValue).TextValue(); n != "n" {
		t.Fatalf("the parsed value follows the request: %q", n)
	}
	for name, n := range map[string]*tree.Node{
		"wrong type":     attr(AttrCryptoLength, tree.Text(0, "256")),
		"missing field":  attr(AttrLink, tree.Struct(0, tree.Enum(kmip14.TagLinkType, 1))),
		"no value":       tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, "x-a")),
		"no name":        tree.Struct(kmip14.TagAttribute, tree.Int(kmip14.TagAttributeValue, 1)),
		"negative index": tree.Struct(kmip14.TagAttribute, tree.Text(kmip14.TagAttributeName, "x-a"), tree.Int(kmip14.TagAttributeIndex, -1), tree.Int(kmip14.TagAttributeValue, 1)),
	} {
		var oe *Error
		if _, err := ParseAttribute(n); !errors.As(err, &oe) || oe.Reason != kmip14.ResultReasonInvalidField {
			t.Errorf("%s: %v, want Invalid Field", name, err)
		}
	}
	// Custom attributes take any type.
	if _, err := ParseAttribute(attr("x-anything", tree.Long(0, 5))); err != nil {
		t.Fatal(err)
	}
}

func TestAdvanceState(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	for _, c := range []struct {
		from       kmip14.State
		act, deact time.Duration // relative to now; 0: absent
		want       kmip14.State
	}{
		{kmip14.StatePreActive, -time.Second, 0, kmip14.StateActive},
		{kmip14.StatePreActive, time.Second, 0, kmip14.StatePreActive},
		{kmip14.StatePreActive, -time.Hour, -time.Second, kmip14.StateDeactivated},
		{kmip14.StateActive, 0, -time.Second, kmip14.StateDeactivated},
		{kmip14.StateCompromised, 0, -time.Second, kmip14.StateCompromised},
	} {
		o := &Object{typ: kmip14.ObjectTypeSymmetricKey}
		o.SetState(c.from)
		if c.act != 0 {
			o.Set(AttrActivationDate, tree.Time(0, now.Add(c.act)))
		}
		if c.deact != 0 {
			o.Set(AttrDeactivationDate, tree.Time(0, now.Add(c.deact)))
		}
		changed := o.AdvanceState(now)
		if o.State() != c.want || changed != (c.want != c.from) {
			t.Errorf("%s with %v/%v: %s (changed %v), want %s", c.from, c.act, c.deact, o.State(), changed, c.want)
		}
	}
}

// Every method that changes an object keeps, while Update tracks it, the
// object as it was: the image save moves index entries from.
func TestEveryChangeKeepsTheBeforeImage(t *testing.T) {
	for name, change := range map[string]func(o *Object){
		"Set":       func(o *Object) { o.Set(AttrState, tree.Enum(0, uint32(kmip14.StateActive))) },
		"Add":       func(o *Object) { o.Add(AttrName, nameValue("c")) },
		"Modify":    func(o *Object) { o.Modify(AttrName, 1, nameValue("c")) },
		"Delete":    func(o *Object) { o.Delete(AttrName, 0) },
		"ClearBody": func(o *Object) { o.ClearBody() },
		"applyClientAttrs": func(o *Object) {
			_ = o.applyClientAttrs([]Attr{NewAttr("x-new", tree.Text(0, "v"))})
		},
	} {
		t.Run(name, func(t *testing.T) {
			o := testObject()
			want := encoded(t, o)
			o.tracking = true
			o.Get(AttrName) // reading changes nothing
			if o.before != nil {
				t.Fatal("a read kept a before image")
			}
			change(o)
			change(o)
			if o.before == nil {
				t.Fatal("no before image kept")
			}
			if got := encoded(t, o.before); !bytes.Equal(got, want) {
				t.Fatal("the before image is not the object as it was")
			}
			if bytes.Equal(encoded(t, o), want) {
				t.Fatal("the change changed nothing")
			}
		})
	}
}
