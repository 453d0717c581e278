package object

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/hashicorp/go-hclog"

	"github.com/kmipd/kmipd/kek"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// Read-modify-writes of one object from two replicas (update.go): whatever
// each acknowledges is in the record afterwards.

// readHookedStore is a replica's PostgreSQL store that runs onRead after
// each read (Get or View) of key, while onRead is set; once unless repeat.
type readHookedStore struct {
	*storage.Postgres
	key    string
	repeat bool
	mu     sync.Mutex
	onRead func()
	reads  int // reads of key
}

func (h *readHookedStore) hook() {
	h.mu.Lock()
	f := h.onRead
	h.reads++
	if !h.repeat {
		h.onRead = nil
	}
	h.mu.Unlock()
	if f != nil {
		f()
	}
}

func (h *readHookedStore) Get(c context.Context, key string) ([]byte, error) {
	v, err := h.Postgres.Get(c, key)
	if key == h.key {
		h.hook()
	}
	return v, err
}

func (h *readHookedStore) View(c context.Context, key string, fn func([]byte) error) error {
	err := h.Postgres.View(c, key, fn)
	if key == h.key {
		h.hook()
	}
	return err
}

// readHookedReplica is a replica whose store runs onRead after it reads
// uid's record.
func (c *sharedStore) readHookedReplica(uid string, repeat bool, onRead func()) (*replica, *readHookedStore) {
	c.t.Helper()
	pg, err := storage.OpenPostgres(ctx, storage.PostgresOptions{URL: c.url, MaxConns: 4}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { pg.Close() })
	hs := &readHookedStore{Postgres: pg, key: objectKey(alice, uid), repeat: repeat, onRead: onRead}
	kr := kek.New(c.mk, hs, kek.Config{}, hclog.NewNullLogger())
	r := NewRepo(hs, kr, rand.Reader, 0)
	c.t.Cleanup(r.Close)
	return &replica{kr: kr, r: r, s: r.Scope(alice, nil)}, hs
}

func addName(s Scope, uid, name string) error {
	_, err := s.Update(ctx, uid, func(o *Object) (bool, error) {
		o.Add(AttrName, nameValue(name))
		return true, nil
	})
	return err
}

func names(t *testing.T, p *replica, uid string) []string {
	t.Helper()
	o, err := p.s.Load(ctx, uid)
	if err != nil {
		t.Fatalf("load %s: %v", uid, err)
	}
	var out []string
	for _, a := range o.All(AttrName) {
		n, _ := a.Value().Child(kmip14.TagNameValue).TextValue()
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// TestSharedActivateDuringOtherReplicasUpdate: replica a turns Fresh off
// (as a Get does) and replica b activates the key between a's read and
// a's write. Both changes stay: the key is Active and not Fresh, and a's
// change function saw b's write.
func TestSharedActivateDuringOtherReplicasUpdate(t *testing.T) {
	c := newSharedStore(t)
	b := c.replica()
	uid := b.insert(t, "n")
	a, hs := c.readHookedReplica(uid, false, nil)
	a.wantLoads(t, "a", []string{uid}) // a caches the object and alice's pKEK
	hs.onRead = func() {
		if _, err := b.s.Update(ctx, uid, func(o *Object) (bool, error) {
			o.SetState(kmip14.StateActive)
			return true, nil
		}); err != nil {
			t.Errorf("b's Activate: %v", err)
		}
	}
	runs := 0
	if _, err := a.s.Update(ctx, uid, func(o *Object) (bool, error) {
		runs++
		if !o.Fresh() {
			return false, nil
		}
		o.Set(AttrFresh, tree.Bool(0, false))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if hs.onRead != nil {
		t.Fatal("b's Activate did not run between a's read and write")
	}
	fresh := c.replica()
	for _, p := range []struct {
		who string
		r   *replica
	}{{"a", a}, {"b", b}, {"a fresh process", fresh}} {
		o, err := p.r.s.Load(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		if o.State() != kmip14.StateActive || o.Fresh() {
			t.Errorf("%s: the key is %s, Fresh %v; want Active and not Fresh (an acknowledged change lost)", p.who, o.State(), o.Fresh())
		}
	}
	if runs != 2 {
		t.Errorf("a's change ran %d times, want 2 (again on b's write)", runs)
	}
}

// TestSharedUpdatesFromTwoReplicas: two replicas add names to one object
// at once; every name whose Update succeeded is there afterwards, and one
// that failed failed as ErrContended (its change written nowhere).
func TestSharedUpdatesFromTwoReplicas(t *testing.T) {
	c := newSharedStore(t)
	reps := []*replica{c.replica(), c.replica()}
	uid := reps[0].insert(t, "n")
	const n = 12
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for i, p := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				name := fmt.Sprintf("r%d-%d", i, j)
				err := addName(p.s, uid, name)
				if err != nil {
					if !errors.Is(err, ErrContended) {
						t.Errorf("replica %d adds %s: %v", i, name, err)
					}
					continue
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got := names(t, c.replica(), uid)
	var lost []string
	for _, name := range acked {
		if !slices.Contains(got, name) {
			lost = append(lost, name)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged names lost: %v", len(lost), len(acked), lost)
	}
	if len(got) != len(acked)+1 { // and the name it was made with
		t.Errorf("the object has %d names, want %d: %v", len(got), len(acked)+1, got)
	}
}

// TestSharedPairUpdateDuringOtherReplicasUpdate: replica b renames the
// second object of a pair between replica a's read of it and a's pair
// write. a's first write is put back, both are read again, and a's
// change is made on b's: every change stays, on both objects.
func TestSharedPairUpdateDuringOtherReplicasUpdate(t *testing.T) {
	c := newSharedStore(t)
	b := c.replica()
	x, y := b.insert(t, "x"), b.insert(t, "y")
	a, hs := c.readHookedReplica(y, false, func() {
		if err := addName(b.s, y, "from-b"); err != nil {
			t.Errorf("b's update: %v", err)
		}
	})
	if _, _, err := a.s.UpdatePair(ctx, x, y, func(ox, oy *Object) (bool, bool, error) {
		ox.Add(AttrName, nameValue("pair-x"))
		oy.Add(AttrName, nameValue("pair-y"))
		return true, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if hs.onRead != nil {
		t.Fatal("b's update did not run between a's read and write")
	}
	fresh := c.replica()
	if got, want := names(t, fresh, x), []string{"pair-x", "x"}; !slices.Equal(got, want) {
		t.Errorf("x's names %v, want %v", got, want)
	}
	if got, want := names(t, fresh, y), []string{"from-b", "pair-y", "y"}; !slices.Equal(got, want) {
		t.Errorf("y's names %v, want %v", got, want)
	}
	fresh.wantFound(t, "a fresh process", "pair-x", []string{x})
	fresh.wantFound(t, "a fresh process", "from-b", []string{y})
}

// TestSharedRemoveDuringOtherReplicasUpdate: replica b names the object
// anew between replica a's read of it and a's Remove. The record goes, and
// so do the index entries of b's write (a plain delete would remove only
// those of the record a read).
func TestSharedRemoveDuringOtherReplicasUpdate(t *testing.T) {
	c := newSharedStore(t)
	b := c.replica()
	uid := b.insert(t, "n")
	a, hs := c.readHookedReplica(uid, false, func() {
		if err := addName(b.s, uid, "late"); err != nil {
			t.Errorf("b's update: %v", err)
		}
	})
	if err := a.s.Remove(ctx, uid); err != nil {
		t.Fatal(err)
	}
	if hs.onRead != nil {
		t.Fatal("b's update did not run between a's read and delete")
	}
	if _, err := a.s.Load(ctx, uid); !errors.Is(err, ErrNotFound) {
		t.Fatalf("load after Remove: %v, want ErrNotFound", err)
	}
	var left []string
	if err := a.r.st.List(ctx, IndexPrefix(alice), func(key string, _ []byte) error {
		if strings.HasSuffix(key, "/"+uid) {
			left = append(left, key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("%d index entries of the removed object left", len(left))
	}
}

// TestSharedUpdateKeepsLosing: replica b writes the object after every
// read replica a makes of it. a gives up after its bounded retries with
// ErrContended (General Failure, nothing of its change written); b's
// writes all stay.
func TestSharedUpdateKeepsLosing(t *testing.T) {
	c := newSharedStore(t)
	b := c.replica()
	uid := b.insert(t, "n")
	var bNames []string
	a, hs := c.readHookedReplica(uid, true, func() {
		name := fmt.Sprintf("b-%d", len(bNames))
		if err := addName(b.s, uid, name); err != nil {
			t.Errorf("b's update: %v", err)
			return
		}
		bNames = append(bNames, name)
	})
	err := addName(a.s, uid, "from-a")
	var oe *Error
	if !errors.Is(err, ErrContended) || !errors.Is(err, storage.ErrConflict) || !errors.As(err, &oe) ||
		oe.ResultReason() != kmip14.ResultReasonGeneralFailure {
		t.Fatalf("a's update against constant writes: %v, want ErrContended (General Failure)", err)
	}
	hs.mu.Lock()
	hs.onRead = nil
	reads := hs.reads
	hs.mu.Unlock()
	if reads != conflictRetries+1 {
		t.Errorf("a read the record %d times, want %d", reads, conflictRetries+1)
	}
	got := names(t, c.replica(), uid)
	want := slices.Sorted(slices.Values(append([]string{"n"}, bNames...)))
	if !slices.Equal(got, want) {
		t.Errorf("names %v, want %v (a's change written, or b's lost)", got, want)
	}
}

// recordingStore records the writes of every batch applied to an
// exclusive store.
type recordingStore struct {
	*storage.Memory
	mu     sync.Mutex
	writes []storage.Write
}

func (r *recordingStore) Apply(c context.Context, w []storage.Write) error {
	r.mu.Lock()
	r.writes = append(r.writes, w...)
	r.mu.Unlock()
	return r.Memory.Apply(c, w)
}

// TestExclusiveStoreWritesPlainly: on a store no other process writes
// (storage.Exclusive), Update, UpdatePair and Remove write as they did:
// the lock orders writers, so no compare is added.
func TestExclusiveStoreWritesPlainly(t *testing.T) {
	st := &recordingStore{Memory: storage.NewMemory()}
	var _ storage.Exclusive = st
	kr := kek.New(newSoftMasterKeys(t), st, kek.Config{}, hclog.NewNullLogger())
	r := NewRepo(st, kr, rand.Reader, 0)
	t.Cleanup(r.Close)
	if r.shared != nil {
		t.Fatal("an exclusive store is taken for a shared one")
	}
	s := r.Scope(alice, nil)
	var uids []string
	for range 2 {
		o := testObject()
		o.uid = ""
		if err := s.Insert(ctx, o); err != nil {
			t.Fatal(err)
		}
		uids = append(uids, o.UID())
	}
	if err := addName(s, uids[0], "m"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UpdatePair(ctx, uids[0], uids[1], func(x, y *Object) (bool, bool, error) {
		x.Add(AttrName, nameValue("p"))
		y.Add(AttrName, nameValue("q"))
		return true, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, uids[1]); err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, w := range st.writes {
		if !strings.HasPrefix(w.Key, ownerPrefix(alice)) {
			continue
		}
		records++
		if w.Kind == storage.WriteIfUnchanged || w.Kind == storage.WriteDeleteIfUnchanged {
			t.Errorf("a compare-and-set of %s on an exclusive store", w.Key)
		}
	}
	if records != 6 { // 2 inserts, 1 update, 2 of the pair, 1 remove
		t.Errorf("%d record writes, want 6", records)
	}
}

// TestSharedImportReplaceDuringOtherReplicasUpdate: replica b names the
// object anew between replica a's read of it and a's Import with Replace
// Existing. a's object replaces b's write whole, and the index entries
// moved are those of b's write: none is left that no record is due (a
// rebuild finds nothing to prune).
func TestSharedImportReplaceDuringOtherReplicasUpdate(t *testing.T) {
	c := newSharedStore(t)
	b := c.replica()
	if err := b.s.Import(ctx, imported(t, "imp", "first", kmip14.StateActive), false); err != nil {
		t.Fatal(err)
	}
	a, hs := c.readHookedReplica("imp", false, func() {
		if err := addName(b.s, "imp", "late"); err != nil {
			t.Errorf("b's update: %v", err)
		}
	})
	if err := a.s.Import(ctx, imported(t, "imp", "second", kmip14.StateActive), true); err != nil {
		t.Fatal(err)
	}
	if hs.onRead != nil {
		t.Fatal("b's update did not run between a's read and write")
	}
	if got := names(t, c.replica(), "imp"); !slices.Equal(got, []string{"second"}) {
		t.Errorf("names %v, want a's import's", got)
	}
	entries := func() int {
		n := 0
		if err := a.r.st.List(ctx, IndexPrefix(alice), func(key string, _ []byte) error {
			if strings.HasSuffix(key, "/imp") {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := entries()
	st, err := a.r.RebuildIndex(ctx, alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after := entries(); after != before {
		t.Errorf("%d index entries of the object, %d after a rebuild (%+v): entries of b's write left", before, after, st)
	}
}
