package object

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// newestFirst lists (by scanning every record) the uids of s's objects in
// Locate's order: Initial Date descending, uid ascending.
func newestFirst(t testing.TB, s Scope) []string {
	t.Helper()
	type ent struct {
		uid string
		at  time.Time
	}
	var all []ent
	err := s.Each(ctx, func(o *Object) error {
		at, _ := o.InitialDate()
		all = append(all, ent{o.UID(), at})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b ent) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(a.uid, b.uid)
	})
	uids := make([]string, len(all))
	for i, e := range all {
		uids[i] = e.uid
	}
	return uids
}

// walk lists what Ordered hands fn, stopping after limit (0: no limit).
func walk(t testing.TB, s Scope, only map[string]bool, limit int) ([]string, bool) {
	t.Helper()
	var got []string
	ok, err := s.Ordered(ctx, only, 16*len(only), func(o *Object) (bool, error) {
		got = append(got, o.UID())
		return limit > 0 && len(got) >= limit, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, ok
}

// orderEntries lists owner's ordering entries.
func orderEntries(t testing.TB, st storage.Store, owner string) []string {
	t.Helper()
	var keys []string
	if err := st.List(ctx, orderPrefix(owner), func(k string, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// insertAt stores a copy of testObject whose Initial Date is at (none if
// at is the zero time).
func insertAt(t testing.TB, s Scope, at time.Time) string {
	t.Helper()
	o := testObject()
	o.uid = ""
	if at.IsZero() {
		o.Delete(AttrInitialDate, 0)
	} else {
		o.Set(AttrInitialDate, tree.Time(0, at))
	}
	if err := s.Insert(ctx, o); err != nil {
		t.Fatal(err)
	}
	return o.UID()
}

// orderDates are Initial Dates that test the encoding: ties, no date,
// before 1970, and dates far enough out that date + offset carries.
var orderDates = []time.Time{
	{},
	time.Unix(-(1 << 62), 0),
	time.Unix(-86400*365*20, 0),
	time.Unix(0, 0),
	time.Unix(1700000000, 0),
	time.Unix(1700000001, 0),
	time.Unix(1<<40, 0),
	time.Unix(1<<62, 0),
}

// TestOrderedNewestFirst: the walk hands out the objects in exactly the
// order Locate sorts them, stops when told, passes over uids it is not
// given, and gives up when they are too few for what it walks.
func TestOrderedNewestFirst(t *testing.T) {
	f := newFixture(t, 0)
	bob := f.r.Scope("b0b", nil)
	rng := rand.New(rand.NewPCG(20, 2))
	for range 60 {
		at := orderDates[rng.IntN(len(orderDates))]
		insertAt(t, f.s, at)
		insertAt(t, bob, at)
	}
	want := newestFirst(t, f.s)
	if got, ok := walk(t, f.s, nil, 0); !ok || !slices.Equal(got, want) {
		t.Fatalf("Ordered = %v (%v)\nwant      %v", got, ok, want)
	}
	if got, ok := walk(t, f.s, nil, 7); !ok || !slices.Equal(got, want[:7]) {
		t.Fatalf("Ordered stopping at 7 = %v (%v), want %v", got, ok, want[:7])
	}
	// Candidates: the others are not opened.
	only := map[string]bool{}
	var wantOnly []string
	for i, u := range want {
		if i%3 == 0 {
			only[u] = true
			wantOnly = append(wantOnly, u)
		}
	}
	before := f.opens()
	if got, ok := walk(t, f.s.WithArchived(), only, 0); !ok || !slices.Equal(got, wantOnly) {
		t.Fatalf("Ordered over candidates = %v (%v), want %v", got, ok, wantOnly)
	}
	if n := f.opens() - before; n > uint64(len(wantOnly)) {
		t.Fatalf("the walk over %d candidates used the keyring %d times", len(wantOnly), n)
	}
	// One candidate, the oldest: 16 entries, then give up.
	if _, ok := walk(t, f.s, map[string]bool{want[len(want)-1]: true}, 0); ok {
		t.Fatalf("a walk over 1 candidate among %d objects did not give up", len(want))
	}

	// One entry per object; the date is not in it: the same dates give
	// other keys under another owner's offset.
	keys, bobKeys := orderEntries(t, f.st, alice), orderEntries(t, f.st, "b0b")
	if len(keys) != len(want) || len(bobKeys) != len(want) {
		t.Fatalf("%d and %d ordering entries for %d objects each", len(keys), len(bobKeys), len(want))
	}
	datePart := func(k string) string { return strings.Split(k, "/")[3] }
	for _, k := range keys {
		for _, b := range bobKeys {
			if datePart(k) == datePart(b) {
				t.Fatalf("two owners' objects share an ordering key %s", datePart(k))
			}
		}
		d, err := hex.DecodeString(datePart(k))
		if err != nil || len(d) != 13 {
			t.Fatalf("ordering entry %q", k)
		}
		for _, at := range orderDates {
			if ^binary.BigEndian.Uint64(d[1:9])^1<<63 == uint64(at.Unix()) && !at.IsZero() {
				t.Fatalf("ordering entry %q holds the date %v", k, at)
			}
		}
	}
}

// TestOrderRebuildsOldIndex: an index built before the ordering entries
// (built marker without a version, no entries) is rebuilt once, in the
// background, from the first walk (which gives up meanwhile), to exactly
// what the writes keep.
func TestOrderRebuildsOldIndex(t *testing.T) {
	f := newFixture(t, 0)
	for i := range 20 {
		insertAt(t, f.s, time.Unix(1700000000+int64(i%4), 0))
	}
	kept := indexEntries(t, f.st, alice)
	order := orderEntries(t, f.st, alice)
	if len(order) != 20 {
		t.Fatalf("%d ordering entries for 20 objects", len(order))
	}
	// What a kmipd before the ordering entries left.
	for _, k := range order {
		if err := f.st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.Put(ctx, indexMarker(alice), nil); err != nil {
		t.Fatal(err)
	}
	f.r.built = builtOwners{}
	// A write meanwhile does not take the old marker for the current one.
	extra := insertAt(t, f.s, time.Unix(1800000000, 0))
	if v, _ := f.st.Get(ctx, indexMarker(alice)); builtMarker(v) {
		t.Fatalf("an Insert marked an old index current")
	}
	want := newestFirst(t, f.s)
	if want[0] != extra {
		t.Fatalf("newest is %s, want %s", want[0], extra)
	}
	if _, ok := walk(t, f.s, nil, 0); ok {
		t.Fatalf("Ordered over an old index answered")
	}
	<-f.r.rb.done(alice)
	got, ok := walk(t, f.s, nil, 0)
	if !ok || !slices.Equal(got, want) {
		t.Fatalf("Ordered after the rebuild = %v (%v), want %v", got, ok, want)
	}
	if v, err := f.st.Get(ctx, indexMarker(alice)); err != nil || !builtMarker(v) {
		t.Fatalf("built marker after the rebuild: %q, %v", v, err)
	}
	after := indexEntries(t, f.st, alice)
	if !slices.IsSorted(after) || len(after) <= len(kept) {
		t.Fatalf("%d index entries after the upgrade, %d before", len(after), len(kept))
	}
	// The same as a rebuild from nothing.
	for _, k := range indexEntries(t, f.st, alice) {
		if err := f.st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.r.RebuildIndex(ctx, alice, nil); err != nil {
		t.Fatal(err)
	}
	if rebuilt := indexEntries(t, f.st, alice); !slices.Equal(after, rebuilt) {
		t.Fatalf("index after the upgrade (%d entries) differs from a rebuild (%d)", len(after), len(rebuilt))
	}
}

// TestOrderAfterRotation: a pKEK rotation drops the index, ordering
// entries included; the next walk starts its rebuild under the new key (a
// new offset: every key changes), and the walks after it give the same
// order.
func TestOrderAfterRotation(t *testing.T) {
	f := newFixture(t, 0)
	for i := range 30 {
		insertAt(t, f.s, time.Unix(1700000000+int64(i%5), 0))
	}
	want := newestFirst(t, f.s)
	old := orderEntries(t, f.st, alice)
	p := ownerPrefix(alice)
	_, err := f.kr.RotatePKEK(ctx, alice, kek.Sealed{
		Prefix:  p,
		AAD:     func(k string) []byte { return []byte(strings.TrimPrefix(k, p)) },
		Derived: IndexPrefix(alice),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(indexEntries(t, f.st, alice)); n != 0 {
		t.Fatalf("%d index entries left after the rotation", n)
	}
	if _, ok := walk(t, f.s, nil, 0); ok {
		t.Fatalf("Ordered over a dropped index answered")
	}
	<-f.r.rb.done(alice)
	if got, ok := walk(t, f.s, nil, 0); !ok || !slices.Equal(got, want) {
		t.Fatalf("Ordered after a rotation = %v (%v), want %v", got, ok, want)
	}
	now := orderEntries(t, f.st, alice)
	if len(now) != len(old) {
		t.Fatalf("%d ordering entries after the rotation, %d before", len(now), len(old))
	}
	for _, k := range now {
		if slices.Contains(old, k) {
			t.Fatalf("ordering entry %s survived the rotation unchanged", k)
		}
	}
}

// TestOrderKeySorts: whatever the offset, the keys of orderDates (sub-
// second parts of a DateTimeExtended and ties included) sort as Locate
// does; at these offsets some of the sums carry and some do not.
func TestOrderKeySorts(t *testing.T) {
	var objs []*Object
	for i, at := range orderDates {
		for j, ns := range []int{0, 1, 999999999} {
			for _, uid := range []string{"u2", "u10"} {
				o := &Object{uid: fmt.Sprintf("%s-%d-%d", uid, i%3, j)}
				if !at.IsZero() {
					o.Set(AttrInitialDate, &tree.Node{Type: ttlv.TypeDateTimeExtended, Time: at.Add(time.Duration(ns))})
				}
				objs = append(objs, o)
			}
		}
	}
	want := slices.Clone(objs)
	slices.SortFunc(want, func(a, b *Object) int {
		ta, _ := a.InitialDate()
		tb, _ := b.InitialDate()
		if c := tb.Compare(ta); c != 0 {
			return c
		}
		return strings.Compare(a.uid, b.uid)
	})
	for _, off := range []uint64{0, 1 << 62, 1 << 63, 3 << 62, 1<<64 - 1} {
		tag := binary.BigEndian.AppendUint64(nil, off)
		tag = append(tag, make([]byte, 8)...)
		byKey := map[string]*Object{}
		var keys []string
		for _, o := range objs {
			k := orderKey(alice, tag, o)
			byKey[k] = o
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if byKey[k] != want[i] {
				t.Fatalf("offset %#x: key %d is %s's, want %s's", off, i, byKey[k].uid, want[i].uid)
			}
		}
	}
}
