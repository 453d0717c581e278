package object

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/storage"
)

// holdStore holds every rebuild of owner at its first step (the listing of
// the owner's records, keys only, which neither Locate's scan nor its
// lookups here use) until release is closed, and counts those rebuilds.
type holdStore struct {
	*storage.Badger
	owner    string
	entered  chan struct{} // one send per rebuild that reached the hold
	release  chan struct{}
	rebuilds atomic.Int32
}

func newHoldStore(st *storage.Badger, owner string) *holdStore {
	return &holdStore{Badger: st, owner: owner, entered: make(chan struct{}, 8), release: make(chan struct{})}
}

func (h *holdStore) ListKeys(ctx context.Context, prefix string, fn func(string) error) error {
	if prefix == ownerPrefix(h.owner) {
		h.rebuilds.Add(1)
		h.entered <- struct{}{}
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.Badger.ListKeys(ctx, prefix, fn)
}

// oldRecords writes n objects of alice without index entries (a kmipd
// before the index), half named "n0", and returns those uids, sorted.
func oldRecords(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	s := NewRepo(plainStore{f.st}, f.kr, crand.Reader, 0).Scope(alice, nil)
	var n0 []string
	for i := range n {
		o := testObject()
		o.uid = ""
		o.Set(AttrName, nameValue(fmt.Sprint("n", i%2)))
		if err := s.Insert(ctx, o); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			n0 = append(n0, o.uid)
		}
	}
	slices.Sort(n0)
	return n0
}

// freshRebuild drops owner's index and rebuilds it from nothing on r,
// and returns the entries.
func freshRebuild(t *testing.T, r *Repo, st storage.Store, owner string) []string {
	t.Helper()
	for _, k := range append(indexEntries(t, st, owner), indexMarker(owner)) {
		if err := st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.RebuildIndex(ctx, owner, nil); err != nil {
		t.Fatal(err)
	}
	return indexEntries(t, st, owner)
}

// wantLookup fails t unless s's Lookup of crit answers from the index
// with want; what says when.
func wantLookup(t *testing.T, s Scope, crit []Attr, want []string, what string) {
	t.Helper()
	got, ok, err := s.Lookup(ctx, crit)
	if err != nil || !ok || !slices.Equal(got, want) {
		t.Fatalf("Lookup %s = %v, %v, %v; want %v", what, got, ok, err, want)
	}
}

// wantAsFresh fails t unless owner's index on st is the one a fresh
// rebuild on r makes; what names the index.
func wantAsFresh(t *testing.T, r *Repo, st storage.Store, owner, what string) {
	t.Helper()
	kept := indexEntries(t, st, owner)
	if fresh := freshRebuild(t, r, st, owner); !slices.Equal(kept, fresh) {
		t.Fatalf("%s (%d entries) differs from a fresh rebuild (%d)", what, len(kept), len(fresh))
	}
}

// TestLookupDoesNotWaitForRebuild: Lookups of an owner whose index is not
// built answer "scan" at once while one rebuild, started by the first of
// them, is held; the scan finds the right objects meanwhile; once the
// rebuild ends, Lookup answers from an index equal to a fresh rebuild.
func TestLookupDoesNotWaitForRebuild(t *testing.T) {
	f := newFixture(t, 0)
	want := oldRecords(t, f, 40)
	h := newHoldStore(f.st, alice)
	r := NewRepo(h, f.kr, crand.Reader, 0)
	t.Cleanup(r.Close)
	s := r.Scope(alice, nil)
	crit := []Attr{NewAttr(AttrName, nameValue("n0"))}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, err := s.Lookup(ctx, crit); ok || err != nil {
				t.Errorf("Lookup while the index is not built: %v, %v; want a scan", ok, err)
			}
		}()
	}
	wg.Wait()
	<-h.entered // the rebuild started, and is held
	if got := named(t, s, "n0"); !slices.Equal(got, want) {
		t.Fatalf("scan during the rebuild = %v, want %v", got, want)
	}
	if _, ok := walk(t, s, nil, 0); ok {
		t.Fatal("Ordered answered while the index is not built")
	}
	close(h.release)
	<-r.rb.done(alice)
	if n := h.rebuilds.Load(); n != 1 {
		t.Fatalf("%d rebuilds started, want 1", n)
	}
	wantLookup(t, s, crit, want, "after the rebuild")
	wantAsFresh(t, r, f.st, alice, "background rebuild")
	if n := h.rebuilds.Load(); n != 2 {
		t.Fatalf("%d rebuilds, want 2", n)
	}
}

// TestRebuildIndexWaitsForBackground: the operator's rebuild waits for the
// background one of the same owner, then runs its own, which finds nothing
// left to do and counts every object.
func TestRebuildIndexWaitsForBackground(t *testing.T) {
	f := newFixture(t, 0)
	oldRecords(t, f, 30)
	h := newHoldStore(f.st, alice)
	r := NewRepo(h, f.kr, crand.Reader, 0)
	t.Cleanup(r.Close)
	s := r.Scope(alice, nil)
	if _, ok, _ := s.Lookup(ctx, []Attr{NewAttr(AttrName, nameValue("n0"))}); ok {
		t.Fatal("Lookup answered over an index not built")
	}
	<-h.entered
	type result struct {
		st  RebuildStats
		err error
	}
	res := make(chan result, 1)
	go func() {
		st, err := r.RebuildIndex(ctx, alice, nil)
		res <- result{st, err}
	}()
	select {
	case got := <-res:
		t.Fatalf("operator's rebuild ran beside the background one: %+v", got)
	case <-h.entered:
		t.Fatal("a second rebuild reached the index beside the first")
	default:
	}
	close(h.release)
	got := <-res
	if got.err != nil || got.st.Objects != 30 || got.st.Written != 0 || got.st.Removed != 0 {
		t.Fatalf("operator's rebuild after the background one: %+v, %v", got.st, got.err)
	}
	if v, err := f.st.Get(ctx, indexMarker(alice)); err != nil || !builtMarker(v) {
		t.Fatalf("marker: %q, %v", v, err)
	}
}

// TestRebuildStopsAtClose: Close stops a background rebuild and waits for
// it; the index is not marked built, no rebuild starts after Close, and
// another Repo's rebuild makes it what a fresh rebuild makes.
func TestRebuildStopsAtClose(t *testing.T) {
	f := newFixture(t, 0)
	want := oldRecords(t, f, 20)
	h := newHoldStore(f.st, alice)
	r := NewRepo(h, f.kr, crand.Reader, 0)
	s := r.Scope(alice, nil)
	crit := []Attr{NewAttr(AttrName, nameValue("n0"))}
	if _, ok, _ := s.Lookup(ctx, crit); ok {
		t.Fatal("Lookup answered over an index not built")
	}
	<-h.entered
	if st := r.IndexStatus(); len(st.Running) != 1 || st.Running[0].Owner != alice || !st.Running[0].Background ||
		st.Running[0].Total != 0 || st.Running[0].Started.IsZero() {
		t.Fatalf("status of a rebuild held before it listed the objects: %+v", st)
	}
	r.Close() // cancels the held rebuild
	if st := r.IndexStatus(); len(st.Running) != 0 || len(st.Failures) != 0 || st.Ended["stopped"] != 1 || st.Ended["failed"] != 0 {
		t.Fatalf("status after Close stopped the rebuild: %+v", st)
	}
	if _, err := f.st.Get(ctx, indexMarker(alice)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a stopped rebuild left a marker: %v", err)
	}
	if _, ok, _ := s.Lookup(ctx, crit); ok || h.rebuilds.Load() != 1 {
		t.Fatalf("after Close: Lookup answered %v, %d rebuilds", ok, h.rebuilds.Load())
	}
	r2 := NewRepo(f.st, f.kr, crand.Reader, 0)
	t.Cleanup(r2.Close)
	if _, err := r2.RebuildIndex(ctx, alice, nil); err != nil {
		t.Fatal(err)
	}
	if st := r2.IndexStatus(); len(st.Running) != 0 || st.Ended["completed"] != 1 {
		t.Fatalf("status after RebuildIndex: %+v", st)
	}
	wantLookup(t, r2.Scope(alice, nil), crit, want, "after RebuildIndex")
	wantAsFresh(t, r2, f.st, alice, "index")
}

// TestRebuildOvertakenByRotation: a pKEK rotation that ends while a
// background rebuild is held drops what the rebuild wrote and its building
// marker, so the rebuild marks nothing; the next Lookup starts another,
// under the new key, which makes the index a fresh rebuild makes.
func TestRebuildOvertakenByRotation(t *testing.T) {
	f := newFixture(t, 0)
	want := oldRecords(t, f, 20)
	h := newHoldStore(f.st, alice)
	r := NewRepo(h, f.kr, crand.Reader, 0)
	t.Cleanup(r.Close)
	s := r.Scope(alice, nil)
	crit := []Attr{NewAttr(AttrName, nameValue("n0"))}
	if _, ok, _ := s.Lookup(ctx, crit); ok {
		t.Fatal("Lookup answered over an index not built")
	}
	<-h.entered
	p := ownerPrefix(alice)
	if _, err := f.kr.RotatePKEK(ctx, alice, kek.Sealed{
		Prefix:  p,
		AAD:     func(k string) []byte { return []byte(strings.TrimPrefix(k, p)) },
		Derived: IndexPrefix(alice),
	}, nil); err != nil {
		t.Fatal(err)
	}
	close(h.release)
	<-r.rb.done(alice)
	if _, err := f.st.Get(ctx, indexMarker(alice)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an overtaken rebuild marked the index: %v", err)
	}
	if st := r.IndexStatus(); st.Ended["stopped"] != 1 || st.Ended["failed"] != 0 || len(st.Failures) != 0 {
		t.Fatalf("an overtaken rebuild is not counted stopped: %+v", st)
	}
	if _, ok, _ := s.Lookup(ctx, crit); ok {
		t.Fatal("Lookup answered over an index the rotation dropped")
	}
	<-h.entered // the second rebuild
	<-r.rb.done(alice)
	wantLookup(t, s, crit, want, "after the second rebuild")
	wantAsFresh(t, r, f.st, alice, "index")
}

// TestRebuildRepairs: a rebuild puts back missing entries, deletes one of
// an object for a value it does not have and one of an object that is not
// there, and counts each; the index is then the one the writes kept.
func TestRebuildRepairs(t *testing.T) {
	f := newFixture(t, 0)
	var uids []string
	for range 10 {
		uids = append(uids, f.insert())
	}
	kept := indexEntries(t, f.st, alice)
	if err := f.st.Delete(ctx, kept[3]); err != nil {
		t.Fatal(err)
	}
	tags, err := f.kr.BlindIndex(ctx, alice, [][]byte{[]byte("Name\x00no such value")})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{tagPrefix(alice, tags[0]) + uids[0], tagPrefix(alice, tags[0]) + "gone"} {
		if err := f.st.Put(ctx, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	st, err := f.r.RebuildIndex(ctx, alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Objects != 10 || st.Written != 1 || st.Removed != 2 {
		t.Fatalf("rebuild: %+v; want 10 objects, 1 written, 2 removed", st)
	}
	if now := indexEntries(t, f.st, alice); !slices.Equal(now, kept) {
		t.Fatalf("index after the repair (%d entries) differs from the one the writes kept (%d)", len(now), len(kept))
	}
}

// TestRebuildUnderWrites: rebuilds while objects are renamed, inserted and
// removed leave the index a fresh rebuild makes.
func TestRebuildUnderWrites(t *testing.T) {
	f := newFixture(t, 0)
	var uids []string
	for range 60 {
		uids = append(uids, f.insert())
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []string          // inserted here: only this writer removes them, so each Remove finds its object
			for i := 0; i < 200; i++ { // bounded
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch {
				case i%5 < 3:
					_, err = f.s.Update(ctx, uids[(w*53+i*7)%len(uids)], func(o *Object) (bool, error) {
						o.Set(AttrName, nameValue(fmt.Sprint("v", i)))
						return true, nil
					})
				case i%5 == 3 || len(mine) == 0:
					o := testObject()
					o.uid = ""
					if err = f.s.Insert(ctx, o); err == nil {
						mine = append(mine, o.uid)
					}
				default:
					err = f.s.Remove(ctx, mine[0])
					mine = mine[1:]
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 3 {
		if _, err := f.r.RebuildIndex(ctx, alice, nil); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	wantAsFresh(t, f.r, f.st, alice, "index after rebuilds under writes")
}
