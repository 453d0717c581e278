package object

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// insertAs stores a copy of testObject, of type typ, as principal.
func (f *fixture) insertAs(s Scope, typ kmip14.ObjectType) string {
	f.t.Helper()
	o := testObject()
	o.uid, o.typ = "", typ
	if err := s.Insert(ctx, o); err != nil {
		f.t.Fatal(err)
	}
	return o.UID()
}

func TestDefaultPolicyByCreator(t *testing.T) {
	f := newFixture(t, 0)
	fred, barney, none := f.s.As("user:Fred"), f.s.As("user:Barney"), f.s.As("")
	key := f.insertAs(fred, kmip14.ObjectTypeSymmetricKey)
	pub := f.insertAs(fred, kmip14.ObjectTypePublicKey)
	open := f.insertAs(none, kmip14.ObjectTypeSymmetricKey)

	check := func(s Scope, uid string, want error) {
		t.Helper()
		_, err := s.Load(ctx, uid)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("Load(%s) as %q (reading %v): %v, want %v", uid, s.principal, s.reading, err, want)
		}
		_, err = s.Update(ctx, uid, func(*Object) (bool, error) { return false, nil })
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("Update(%s) as %q: %v, want %v", uid, s.principal, err, want)
		}
	}
	// Twice: the second Load comes from the cache of opened objects.
	for range 2 {
		check(fred, key, nil)
		check(barney, key, ErrDenied)
		check(none, key, ErrDenied)
		check(barney.Reading(true), key, ErrDenied) // a secret is the creator's even to read
		check(barney.Reading(true), pub, nil)       // a public key may be read by all
		check(barney, pub, ErrDenied)               // but not changed
		check(barney, open, nil)
		check(fred, open, nil)
		check(f.s, key, nil) // an unbound scope (the server's own) sees everything
	}
	// Another owner, whatever the principal: not found.
	other := f.r.Scope("b0b0000000000000000000000000000000000000000000000000000000000000", nil).As("user:Fred")
	check(other, key, ErrNotFound)

	var seen []string
	if err := barney.Each(ctx, func(o *Object) error { seen = append(seen, o.UID()); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != open {
		t.Errorf("Barney's Each saw %v, want only %s", seen, open)
	}
	if err := barney.Remove(ctx, key); !errors.Is(err, ErrDenied) {
		t.Errorf("Barney removed Fred's key: %v", err)
	}
}

func TestRecordKeepsCreatorAndStamp(t *testing.T) {
	f := newFixture(t, -1)
	fred := f.s.As("user:Fred")
	a := f.insertAs(fred, kmip14.ObjectTypeSymmetricKey)
	b := f.insertAs(fred, kmip14.ObjectTypeSymmetricKey)
	oa, ob := f.load(a), f.load(b)
	if oa.Creator() != "user:Fred" || ob.Creator() != "user:Fred" {
		t.Fatalf("creators %q, %q", oa.Creator(), ob.Creator())
	}
	if oa.Order() == 0 || oa.Order() >= ob.Order() {
		t.Fatalf("stamps %d, %d: not increasing in the order of making", oa.Order(), ob.Order())
	}
	// An update keeps both; neither is an attribute a client could see.
	if _, err := f.s.Update(ctx, a, func(o *Object) (bool, error) {
		o.Set(AttrFresh, tree.Bool(0, false))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if o := f.load(a); o.Creator() != "user:Fred" || o.Order() != oa.Order() {
		t.Fatalf("after an update: creator %q, stamp %d (was %d)", o.Creator(), o.Order(), oa.Order())
	}
	for _, at := range f.load(a).Listing(4, true) {
		if v, ok := at.Value().TextValue(); ok && v == "user:Fred" {
			t.Fatalf("the creator is visible as attribute %s", at.Name())
		}
	}
	// A record written before creators and stamps existed decodes, with
	// none, and orders by its Initial Date.
	old := testObject()
	rec := encoded(t, old)
	if bytes.Contains(rec, []byte{0x54, 0x00, 0x03}) || bytes.Contains(rec, []byte{0x54, 0x00, 0x04}) {
		t.Fatal("an object without creator or stamp wrote them")
	}
	o, err := decodeObject(old.uid, rec)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := old.InitialDate()
	if o.Creator() != "" || o.Order() != want.UnixNano() {
		t.Fatalf("old record: creator %q, order %d, want \"\", %d", o.Creator(), o.Order(), want.UnixNano())
	}
	// A malformed creator is refused, not taken for a body.
	bad := testObject()
	bad.creator = "x"
	rec = encoded(t, bad)
	i := bytes.Index(rec, []byte{0x54, 0x00, 0x03, 0x07})
	rec[i+3] = 0x08 // Text String → Byte String
	if _, err := decodeObject(bad.uid, rec); err == nil {
		t.Fatal("a record whose creator is not a text string decoded")
	}
}
