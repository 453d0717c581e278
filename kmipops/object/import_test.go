package object

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// imported builds an AES key for Import under uid, named name and in state.
func imported(t *testing.T, uid, name string, state kmip14.State) *Object {
	t.Helper()
	body := tree.Struct(kmip14.TagSymmetricKey, tree.Struct(kmip14.TagKeyBlock,
		tree.Enum(kmip14.TagKeyFormatType, uint32(kmip14.KeyFormatTypeRaw)),
		tree.Struct(kmip14.TagKeyValue, tree.Bytes(kmip14.TagKeyMaterial, bytes.Clone(keyMaterial)))))
	o, err := NewImported(Spec{Type: kmip14.ObjectTypeSymmetricKey, Body: body, Now: time.Unix(1700000000, 0)}, uid, []Supplied{
		{Attr: NewAttr(AttrName, nameValue(name))},
		{Attr: NewAttr(AttrState, tree.Enum(0, uint32(state)))},
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestImportReplacesInPlace(t *testing.T) {
	f := newFixture(t, 0)
	fred, barney := f.s.As("user:Fred"), f.s.As("user:Barney")
	if err := fred.Import(ctx, imported(t, "imp", "n1", kmip14.StateActive), false); err != nil {
		t.Fatal(err)
	}
	if o := f.load("imp"); o.State() != kmip14.StateActive || o.Creator() != "user:Fred" {
		t.Fatalf("imported object: state %s, creator %q", o.State(), o.Creator())
	}
	// Another credential identity of the owner neither replaces it nor
	// learns more than any operation tells it.
	for _, replace := range []bool{false, true} {
		if err := barney.Import(ctx, imported(t, "imp", "b", kmip14.StateActive), replace); !errors.Is(err, ErrDenied) {
			t.Fatalf("barney's Import (replace %v): %v", replace, err)
		}
	}
	if err := fred.Import(ctx, imported(t, "imp", "n2", kmip14.StateActive), false); !errors.Is(err, ErrExists) {
		t.Fatalf("Import over an object without replace: %v", err)
	}
	if err := fred.Import(ctx, imported(t, "imp", "n2", kmip14.StateDeactivated), true); err != nil {
		t.Fatal(err)
	}
	if o := f.load("imp"); o.State() != kmip14.StateDeactivated {
		t.Fatalf("replaced object is %s", o.State())
	}
	// Another owner's same uid is its own object.
	other := f.r.Scope("b0b", nil)
	if err := other.Import(ctx, imported(t, "imp", "n3", kmip14.StateActive), false); err != nil {
		t.Fatal(err)
	}
	if got := named(t, f.s, "n2"); !slices.Equal(got, []string{"imp"}) {
		t.Fatalf("alice's n2: %v", got)
	}
	for name, want := range map[string][]string{"n1": nil, "n2": {"imp"}, "n3": nil} {
		uids, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue(name))})
		if err != nil || !ok || !slices.Equal(uids, want) {
			t.Errorf("index lookup of %s: %v %v %v, want %v", name, uids, ok, err, want)
		}
	}
	// The entries the writes kept are exactly a rebuild's.
	kept := indexEntries(t, f.st, alice)
	for _, k := range append(kept, indexMarker(alice)) {
		if err := f.st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.r.RebuildIndex(ctx, alice, nil); err != nil {
		t.Fatal(err)
	}
	if rebuilt := indexEntries(t, f.st, alice); !slices.Equal(kept, rebuilt) || len(kept) == 0 {
		t.Fatalf("index after imports %v, rebuilt %v", kept, rebuilt)
	}
}

func TestImportDestroyedHasNoBody(t *testing.T) {
	o := imported(t, "gone", "g", kmip14.StateDestroyed)
	if o.Body().Present() {
		t.Fatal("an object imported Destroyed keeps its material")
	}
	if _, err := NewImported(Spec{Type: kmip14.ObjectTypeSymmetricKey, Body: o.CloneBody(), Now: time.Now()}, "x", nil); err == nil {
		t.Fatal("an Import without the object was accepted")
	}
	body := imported(t, "y", "y", kmip14.StateActive).CloneBody()
	if _, err := NewImported(Spec{Type: kmip14.ObjectTypeSymmetricKey, Body: body, Now: time.Now()}, "x",
		[]Supplied{{Attr: NewAttr("x-a", tree.Int(0, 1)), Indexed: true}, {Attr: NewAttr("x-a", tree.Int(0, 2)), Indexed: true}}); err == nil {
		t.Fatal("an index given twice was accepted")
	}
}
