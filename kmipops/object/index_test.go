package object

import (
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

var _ Indexer = (*kek.Keyring)(nil)

// indexEntries lists owner's index entries (the marker aside).
func indexEntries(t testing.TB, st storage.Store, owner string) []string {
	t.Helper()
	var keys []string
	err := st.List(ctx, indexPrefix(owner), func(k string, _ []byte) error {
		if k != indexMarker(owner) {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// countRecords counts owner's records.
func countRecords(t testing.TB, st storage.Store, owner string) int {
	t.Helper()
	n := 0
	if err := st.List(ctx, ownerPrefix(owner), func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// named lists (by scanning every record) the uids of owner's objects with
// a Name instance v.
func named(t testing.TB, s Scope, v string) []string {
	t.Helper()
	var uids []string
	want := nameValue(v).View()
	err := s.Each(ctx, func(o *Object) error {
		for _, a := range o.All(AttrName) {
			if a.Value().Equal(want) {
				uids = append(uids, o.UID())
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(uids)
	return uids
}

// TestIndexMatchesRebuild runs random creates, attribute changes,
// revocations, destructions, Initial Date changes, removals and undone
// batches (fixed seed), and checks that the index kept by the writes is
// exactly what a rebuild from the records makes, that lookups by Name give
// exactly the objects a scan finds, and the ordering entries its order.
func TestIndexMatchesRebuild(t *testing.T) {
	f := newFixture(t, 0)
	rng := rand.New(rand.NewPCG(20, 1))
	names := []string{"alpha", "beta", "gamma", "delta"}
	groups := []string{"g1", "g2"}
	// Marked built while empty, so no lookup below rebuilds it.
	if _, err := f.r.RebuildIndex(ctx, alice, nil); err != nil {
		t.Fatal(err)
	}
	var uids []string
	pick := func() string { return uids[rng.IntN(len(uids))] }
	bob := f.r.Scope("b0b", nil)
	if err := bob.Insert(ctx, testObject()); err != nil {
		t.Fatal(err)
	}
	bobIdx := indexEntries(t, f.st, "b0b")
	if len(bobIdx) == 0 {
		t.Fatalf("an inserted object has no index entries")
	}

	change := func(s Scope, uid string) {
		t.Helper()
		_, err := s.Update(ctx, uid, func(o *Object) (bool, error) {
			switch rng.IntN(8) {
			case 0:
				o.Set(AttrName, nameValue(names[rng.IntN(len(names))]))
			case 1:
				o.Add(AttrName, nameValue(names[rng.IntN(len(names))]))
			case 2:
				o.Set(AttrObjectGroup, tree.Text(0, groups[rng.IntN(len(groups))]))
			case 3:
				o.Set(AttrState, tree.Enum(0, uint32(kmip14.StateDeactivated))) // revoke
				o.Set(AttrRevocationReason, tree.Struct(0, tree.Enum(kmip14.TagRevocationReasonCode, 1)))
			case 4:
				o.Set(AttrState, tree.Enum(0, uint32(kmip14.StateDestroyed))) // destroy
				o.ClearBody()
			case 5:
				o.Set("x-tag", tree.Int(0, int32(rng.IntN(3))))
			case 6:
				o.Set(AttrFresh, tree.Bool(0, false)) // no indexed value changes
			case 7:
				o.Set(AttrInitialDate, tree.Time(0, time.Unix(1700000000+int64(rng.IntN(4)), 0))) // moves its ordering entry
			}
			return true, nil
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	create := func(s Scope) string {
		t.Helper()
		o := testObject()
		o.uid = ""
		o.Set(AttrName, nameValue(names[rng.IntN(len(names))]))
		if err := s.Insert(ctx, o); err != nil {
			t.Fatal(err)
		}
		return o.uid
	}
	for range 300 {
		switch n := rng.IntN(10); {
		case n < 3 || len(uids) == 0:
			uids = append(uids, create(f.s))
		case n < 7:
			change(f.s, pick())
		case n < 8:
			u := pick()
			if err := f.s.Remove(ctx, u); err != nil && !errors.Is(err, storage.ErrNotFound) {
				t.Fatal(err)
			}
		default:
			// A batch under Undo, rolled back.
			s := f.r.Scope(alice, NewUndoLog())
			for range 1 + rng.IntN(4) {
				switch rng.IntN(3) {
				case 0:
					uids = append(uids, create(s))
				case 1:
					change(s, pick())
				case 2:
					if err := s.Remove(ctx, pick()); err != nil && !errors.Is(err, storage.ErrNotFound) {
						t.Fatal(err)
					}
				}
			}
			s.Rollback(ctx, func(uid string, err error) { t.Fatalf("rollback %s: %v", uid, err) })
		}
	}

	kept := indexEntries(t, f.st, alice)
	// Lookups by Name answer exactly what a scan finds.
	for _, v := range names {
		got, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue(v))})
		if err != nil || !ok {
			t.Fatalf("Lookup(Name=%s) = %v, %v", v, ok, err)
		}
		if want := named(t, f.s, v); !slices.Equal(got, want) {
			t.Fatalf("Lookup(Name=%s) = %v, a scan finds %v", v, got, want)
		}
	}

	// The ordering entries give the objects newest first.
	if got, ok := walk(t, f.s, nil, 0); !ok || !slices.Equal(got, newestFirst(t, f.s)) {
		t.Fatalf("Ordered = %v (%v), a scan sorts %v", got, ok, newestFirst(t, f.s))
	}

	// Drop the index and derive it again from the records.
	for _, k := range append(kept, indexMarker(alice)) {
		if err := f.st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	st, err := f.r.RebuildIndex(ctx, alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := indexEntries(t, f.st, alice)
	if st.Objects != countRecords(t, f.st, alice) || st.Written != len(rebuilt) || st.Removed != 0 {
		t.Fatalf("rebuild from nothing: %+v, %d entries", st, len(rebuilt))
	}
	if !slices.Equal(kept, rebuilt) {
		t.Fatalf("index kept by the writes (%d entries) differs from a rebuild (%d entries)\nkept:    %v\nrebuilt: %v",
			len(kept), len(rebuilt), kept, rebuilt)
	}
	if len(kept) < len(uids) {
		t.Fatalf("only %d index entries for %d objects", len(kept), len(uids))
	}
	if !slices.Equal(bobIdx, indexEntries(t, f.st, "b0b")) {
		t.Fatalf("another owner's index changed")
	}
	// Nothing in the clear: no entry names a value.
	for _, k := range kept {
		for _, v := range append(names, groups...) {
			if strings.Contains(k, v) {
				t.Fatalf("index entry %q holds %q", k, v)
			}
		}
	}
}

// A State criterion finds objects whose stored state time has advanced.
func TestIndexStateAdvances(t *testing.T) {
	f := newFixture(t, 0)
	o := testObject()
	o.uid = ""
	o.Set(AttrActivationDate, tree.Time(0, time.Unix(1, 0))) // stored Pre-Active, Active when read
	if err := f.s.Insert(ctx, o); err != nil {
		t.Fatal(err)
	}
	for _, st := range []kmip14.State{kmip14.StateActive, kmip14.StatePreActive, kmip14.StateDeactivated} {
		got, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrState, tree.Enum(0, uint32(st)))})
		if err != nil || !ok || !slices.Equal(got, []string{o.uid}) {
			t.Fatalf("Lookup(State=%v) = %v, %v, %v; want the object as a candidate", st, got, ok, err)
		}
	}
	got, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrState, tree.Enum(0, uint32(kmip14.StateCompromised)))})
	if err != nil || !ok || len(got) != 0 {
		t.Fatalf("Lookup(State=Compromised) = %v, %v, %v; want none", got, ok, err)
	}
	// Criteria intersect; an unindexed one (a date) is left to the caller.
	crit := []Attr{NewAttr(AttrName, nameValue("a")), NewAttr(AttrCryptoLength, tree.Int(0, 256)),
		NewAttr(AttrInitialDate, tree.Time(0, time.Unix(5, 0)))}
	if got, ok, err := f.s.Lookup(ctx, crit); err != nil || !ok || !slices.Equal(got, []string{o.uid}) {
		t.Fatalf("Lookup(Name, Length, date) = %v, %v, %v", got, ok, err)
	}
	crit[1] = NewAttr(AttrCryptoLength, tree.Int(0, 128))
	if got, ok, err := f.s.Lookup(ctx, crit); err != nil || !ok || len(got) != 0 {
		t.Fatalf("Lookup(Name, wrong Length) = %v, %v, %v; want none", got, ok, err)
	}
	if _, ok, _ := f.s.Lookup(ctx, []Attr{NewAttr(AttrInitialDate, tree.Time(0, time.Unix(5, 0)))}); ok {
		t.Fatalf("Lookup by a date alone claims to answer")
	}
}

// plainStore hides the Batcher of the store it wraps.
type plainStore struct{ storage.Store }

// Records written without an index (a store that is no Batcher, or a
// kmipd before the index) are found once a Repo with an index serves
// Locate: its first lookup starts a rebuild of the owner's index and lets
// the caller scan; once it is done, lookups answer.
func TestIndexBuiltForOlderRecords(t *testing.T) {
	f := newFixture(t, 0)
	want := oldRecords(t, f, 5)
	s := NewRepo(plainStore{f.st}, f.kr, crand.Reader, 0).Scope(alice, nil)
	if _, ok, _ := s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue("n0"))}); ok {
		t.Fatalf("a Repo without an index claims to answer")
	}
	if n := len(indexEntries(t, f.st, alice)); n != 0 {
		t.Fatalf("a store without Batcher got %d index entries", n)
	}
	// An indexed write now does not mark the index built: the older
	// records have no entries yet.
	o := testObject()
	o.uid = ""
	o.Set(AttrName, nameValue("n1"))
	if err := f.s.Insert(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Get(ctx, indexMarker(alice)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("index marked built over unindexed records: %v", err)
	}
	if _, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue("n0"))}); ok || err != nil {
		t.Fatalf("Lookup over an index not built = %v, %v; want a scan", ok, err)
	}
	<-f.r.rb.done(alice)
	wantLookup(t, f.s, []Attr{NewAttr(AttrName, nameValue("n0"))}, want, "after the rebuild")
	if _, err := f.st.Get(ctx, indexMarker(alice)); err != nil {
		t.Fatalf("index not marked built: %v", err)
	}
}

// TestIndexMarkedAtFirstObject: an owner whose first object was written
// with its entries has a complete index, so its first Lookup opens no
// record (no rebuild).
func TestIndexMarkedAtFirstObject(t *testing.T) {
	f := newFixture(t, -1)
	var uids []string
	for range 3 {
		uids = append(uids, f.insert())
	}
	slices.Sort(uids)
	if _, err := f.st.Get(ctx, indexMarker(alice)); err != nil {
		t.Fatalf("index not marked built at the first object: %v", err)
	}
	// A rebuild opens every record through the keyring: the first Lookup
	// uses it no more than the second, which never rebuilds.
	var calls []uint64
	for range 2 {
		before := f.opens()
		got, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue("a"))})
		if err != nil || !ok || !slices.Equal(got, uids) {
			t.Fatalf("Lookup = %v, %v, %v; want %v", got, ok, err, uids)
		}
		calls = append(calls, f.opens()-before)
	}
	if calls[0] != calls[1] {
		t.Fatalf("keyring calls of the first and second Lookup: %v (a rebuild?)", calls)
	}
}

// TestLookupBroadScans: when the candidates are half of the owner's objects
// or more, Lookup lets the caller scan (ok false); below that, or below
// minBroadCandidates, it answers.
func TestLookupBroadScans(t *testing.T) {
	f := newFixture(t, -1)
	add := func(name string, n int) {
		for range n {
			o := testObject()
			o.uid = ""
			o.Set(AttrName, nameValue(name))
			if err := f.s.Insert(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("few", 10)
	add("some", minBroadCandidates)
	add("most", minBroadCandidates+100)
	total := 10 + 2*minBroadCandidates + 100
	for _, c := range []struct {
		name string
		n    int
		ok   bool
	}{
		{"few", 10, true},                         // selective
		{"some", minBroadCandidates, true},        // under half
		{"most", minBroadCandidates + 100, false}, // over half: scan
	} {
		got, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue(c.name))})
		if err != nil || ok != c.ok || (ok && len(got) != c.n) {
			t.Errorf("Lookup(%s) of %d objects = %d candidates, %v, %v; want %d, %v", c.name, total, len(got), ok, err, c.n, c.ok)
		}
	}
}

// TestLookupMostSelectiveFirst: the candidates held are the most selective
// criterion's, whatever the criteria's order; when every criterion names
// more objects than the cap, Lookup leaves it to the scan.
func TestLookupMostSelectiveFirst(t *testing.T) {
	f := newFixture(t, -1)
	f.r.candidateCap = 5
	var grouped []string
	for i := range 10 {
		o := testObject()
		o.uid = ""
		o.Set(AttrName, nameValue("ten"))
		if i < 3 {
			o.Set(AttrObjectGroup, tree.Text(0, "g"))
		}
		if err := f.s.Insert(ctx, o); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			grouped = append(grouped, o.UID())
		}
	}
	slices.Sort(grouped)
	if got, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue("ten"))}); err != nil || ok {
		t.Fatalf("Lookup of 10 objects under a cap of 5 = %v, %v, %v; want a scan", got, ok, err)
	}
	got, ok, err := f.s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue("ten")), NewAttr(AttrObjectGroup, tree.Text(0, "g"))})
	if err != nil || !ok || !slices.Equal(got, grouped) {
		t.Fatalf("Lookup(Name, Group) = %v, %v, %v; want %v", got, ok, err, grouped)
	}
}
