package kmipops

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// locateWith runs one Locate of fields as c and returns the uids and Located
// Items (-1 when absent).
func locateWith(t testing.TB, e *env, p *Processor, c Caller, fields ...*tree.Node) ([]string, int) {
	t.Helper()
	resp := p.Process(context.Background(), c, reqMsg(e.v, item(kmip14.OperationLocate, fields...)))
	pl := okPayload(t, resp, 0)
	var uids []string
	for _, n := range pl.All(kmip14.TagUniqueIdentifier) {
		uids = append(uids, n.Text)
	}
	count := -1
	if n := pl.Child(kmip14.TagLocatedItems); n != nil {
		count = int(n.Int)
	}
	return uids, count
}

// TestLocateOrderedMatchesFull: on random objects (ties in Initial Date,
// activations that come due while the objects rest, revoked, destroyed
// and archived ones, another owner's), Locate with Maximum Items (the walk
// along the ordering entries) gives exactly what the full search gives, by
// the blind index's candidates or by a scan of every record, cut to
// Offset and Maximum Items; Located Items, when sent, is the full count,
// and it is sent whenever fewer than Maximum Items came back. It runs over
// a store that can count index entries (whose broad criteria the walk
// takes without candidates) and one that cannot.
func TestLocateOrderedMatchesFull(t *testing.T) {
	for _, keys := range []bool{false, true} {
		t.Run(fmt.Sprint("keylister=", keys), func(t *testing.T) {
			var st storage.Store = storage.NewMemory()
			if keys {
				st = keyLister{st.(*storage.Memory)}
			}
			t.Cleanup(func() { st.Close() })
			locateOrderedMatchesFull(t, st)
		})
	}
}

// keyLister gives the in-memory store a storage.KeyLister.
type keyLister struct{ *storage.Memory }

func (k keyLister) ListKeys(ctx context.Context, prefix string, fn func(string) error) error {
	return k.List(ctx, prefix, func(key string, _ []byte) error { return fn(key) })
}

var _ storage.KeyLister = keyLister{}

func locateOrderedMatchesFull(t *testing.T, st storage.Store) {
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	e := envOver(t, "", st, kektest.NewMasterKeys(), Options{Now: clock.Now})
	scan := NewProcessor(unbatchedStore{e.st}, e.kr, Options{Now: clock.Now}, nil)
	rng := rand.New(rand.NewPCG(20, 3))
	names := []string{"n0", "n1", "n2"}
	groups := []string{"g0", "g1"}
	var dates []time.Time
	for i := range 320 { // past the candidates a walk counts first
		clock.Add(time.Duration(rng.IntN(3)) * time.Second) // ties
		dates = append(dates, clock.Now())
		attrs := []*tree.Node{nameAttr(names[rng.IntN(len(names))])}
		if rng.IntN(2) == 0 {
			attrs = append(attrs, attrNode("Object Group", tree.Text(0, groups[rng.IntN(len(groups))])))
		}
		if rng.IntN(3) == 0 { // due before or after the searches begin
			attrs = append(attrs, attrNode("Activation Date", tree.Time(0, clock.Now().Add(time.Duration(rng.IntN(40))*time.Second))))
		}
		length := []int32{128, 256}[rng.IntN(2)]
		owner := alice
		if i%7 == 0 {
			owner = bob
		}
		uid := text(t, okPayload(t, e.do(owner, createAES(length, attrs...)), 0), kmip14.TagUniqueIdentifier)
		// Lifecycle steps; some are refused in the state they find, which
		// is fine: the searches compare whatever state results.
		switch rng.IntN(6) {
		case 0:
			e.do(owner, item(kmip14.OperationActivate, uidF(uid)))
		case 1:
			e.do(owner, item(kmip14.OperationActivate, uidF(uid)))
			e.do(owner, revoke(uid, kmip14.RevocationReasonCodeSuperseded))
		case 2:
			e.do(owner, item(kmip14.OperationDestroy, uidF(uid)))
		case 3:
			e.do(owner, item(kmip14.OperationArchive, uidF(uid)))
		}
	}
	clock.Add(20 * time.Second) // some activations come due

	states := []kmip14.State{kmip14.StatePreActive, kmip14.StateActive, kmip14.StateDeactivated, kmip14.StateDestroyed}
	var streamed, counted int
	for q := range 200 {
		var crit []*tree.Node
		if rng.IntN(2) == 0 {
			crit = append(crit, attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey))))
		}
		if rng.IntN(3) == 0 {
			crit = append(crit, nameAttr(names[rng.IntN(len(names))]))
		}
		if rng.IntN(4) == 0 {
			crit = append(crit, attrNode("Object Group", tree.Text(0, groups[rng.IntN(len(groups))])))
		}
		if rng.IntN(4) == 0 {
			crit = append(crit, attrNode("State", tree.Enum(0, uint32(states[rng.IntN(len(states))]))))
		}
		if rng.IntN(4) == 0 {
			crit = append(crit, attrNode("Cryptographic Length", tree.Int(0, []int32{128, 256}[rng.IntN(2)])))
		}
		if rng.IntN(4) == 0 {
			a, b := dates[rng.IntN(len(dates))], dates[rng.IntN(len(dates))]
			crit = append(crit, attrNode("Initial Date", tree.Time(0, a)), attrNode("Initial Date", tree.Time(0, b)))
		}
		if rng.IntN(5) == 0 {
			crit = append(crit, tree.Int(kmip14.TagStorageStatusMask, int32(1+rng.IntN(3))))
		}
		offset, maxItems := rng.IntN(5), rng.IntN(8)
		page := []*tree.Node{tree.Int(kmip14.TagMaximumItems, int32(maxItems))}
		if offset > 0 || rng.IntN(2) == 0 {
			page = append(page, tree.Int(kmip14.TagOffsetItems, int32(offset)))
		}
		who := alice
		if q%5 == 0 {
			who = bob
		}
		all, _ := locateWith(t, e, e.p, who, crit...) // the full search, by the index
		scanned, _ := locateWith(t, e, scan, who, crit...)
		if !slices.Equal(all, scanned) {
			t.Fatalf("query %d: the index finds %v, a scan %v", q, all, scanned)
		}
		want := all[min(offset, len(all)):]
		want = want[:min(maxItems, len(want))]
		got, count := locateWith(t, e, e.p, who, append(slices.Clone(crit), page...)...)
		if !slices.Equal(got, want) {
			t.Fatalf("query %d (offset %d, max %d): the walk finds %v, the full search %v (of %v)", q, offset, maxItems, got, want, all)
		}
		paged, fullCount := locateWith(t, e, scan, who, append(slices.Clone(crit), page...)...)
		if !slices.Equal(paged, want) || fullCount != len(all) {
			t.Fatalf("query %d: the scan pages %v (Located Items %d), want %v (%d)", q, paged, fullCount, want, len(all))
		}
		switch {
		case count >= 0 && count != len(all):
			t.Fatalf("query %d: Located Items %d, %d match", q, count, len(all))
		case count < 0 && len(got) < maxItems:
			t.Fatalf("query %d: %d of at most %d found, Located Items left out", q, len(got), maxItems)
		case count < 0:
			streamed++
		default:
			counted++
		}
	}
	if streamed < 30 || counted < 30 {
		t.Fatalf("%d searches stopped early, %d counted: the random queries miss a case", streamed, counted)
	}
}

// openCounter counts the object records read from the store it wraps,
// one by one or listed; it keeps its Batcher, so the index is kept.
type openCounter struct {
	*storage.Memory
	n atomic.Int64
}

func (c *openCounter) note(key string) {
	if strings.HasPrefix(key, "obj/") {
		c.n.Add(1)
	}
}

func (c *openCounter) Get(ctx context.Context, key string) ([]byte, error) {
	c.note(key)
	return c.Memory.Get(ctx, key)
}

func (c *openCounter) View(ctx context.Context, key string, fn func([]byte) error) error {
	c.note(key)
	return c.Memory.View(ctx, key, fn)
}

func (c *openCounter) ListKeys(ctx context.Context, prefix string, fn func(string) error) error {
	return c.Memory.List(ctx, prefix, func(k string, _ []byte) error { return fn(k) })
}

func (c *openCounter) List(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	return c.Memory.List(ctx, prefix, func(k string, v []byte) error {
		c.note(k)
		return fn(k, v)
	})
}

var (
	_ storage.Batcher   = (*openCounter)(nil)
	_ storage.Viewer    = (*openCounter)(nil)
	_ storage.KeyLister = (*openCounter)(nil)
)

// TestLocateMaxItemsOpensFew: Locate with Maximum Items 10 over a
// criterion every object meets reads about 10 records, however many the
// owner has; without Maximum Items (or without an index) it reads them
// all. The store counts index entries, so the broad criterion is walked
// without candidates and the narrower one with them.
func TestLocateMaxItemsOpensFew(t *testing.T) {
	st := &openCounter{Memory: storage.NewMemory()}
	t.Cleanup(func() { st.Close() })
	clock := &fixedClock{t: time.Unix(1700000000, 0).UTC()}
	opts := Options{Now: clock.Now, ObjectCacheBytes: -1} // every read reaches the store
	e := envOver(t, "", st, kektest.NewMasterKeys(), opts)
	scan := NewProcessor(unbatchedStore{st}, e.kr, opts, nil)
	const n = 600
	var uids []string
	for i := range n {
		if i%3 == 0 {
			clock.Add(time.Second)
		}
		uids = append(uids, e.create(alice, nameAttr(fmt.Sprint("k", i%4))))
	}
	broad := attrNode("Object Type", tree.Enum(0, uint32(kmip14.ObjectTypeSymmetricKey)))
	max10 := tree.Int(kmip14.TagMaximumItems, 10)
	reads := func(p *Processor, fields ...*tree.Node) ([]string, int64) {
		t.Helper()
		before := st.n.Load()
		got, _ := locateWith(t, e, p, alice, fields...)
		return got, st.n.Load() - before
	}
	locateWith(t, e, e.p, alice, broad, max10) // builds nothing: marked at the first object
	got, r := reads(e.p, broad, max10)
	if len(got) != 10 || r > 12 {
		t.Fatalf("Maximum Items 10 over %d objects: %d found, %d records read", n, len(got), r)
	}
	// The newest ten: the last created, by uid within their second.
	if !slices.Contains(uids[n-3:], got[0]) {
		t.Fatalf("first located %s is not among the newest %v", got[0], uids[n-3:])
	}
	// Offset 100: about 110 records.
	got, r = reads(e.p, broad, max10, tree.Int(kmip14.TagOffsetItems, 100))
	if len(got) != 10 || r > 115 {
		t.Fatalf("Offset 100, Maximum Items 10: %d found, %d records read", len(got), r)
	}
	// A narrower indexed criterion (a quarter of the objects, few enough
	// to be counted): the others are passed over unread.
	got, r = reads(e.p, nameAttr("k0"), max10)
	if len(got) != 10 || r > 12 {
		t.Fatalf("Name (a quarter of the objects), Maximum Items 10: %d found, %d records read", len(got), r)
	}
	// What the counter counts when the search cannot stop early.
	if _, r := reads(e.p, broad); r < n {
		t.Fatalf("Locate without Maximum Items read %d records of %d", r, n)
	}
	if _, r := reads(scan, broad, max10); r < n {
		t.Fatalf("Locate without an index read %d records of %d", r, n)
	}
}
