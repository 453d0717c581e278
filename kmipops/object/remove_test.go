package object

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kmipd/kmipd/kmipops/tree"
	"github.com/kmipd/kmipd/storage"
)

// uidEntries are owner's index entries of uid.
func uidEntries(t testing.TB, st storage.Store, owner, uid string) []string {
	t.Helper()
	var keys []string
	for _, k := range indexEntries(t, st, owner) {
		if strings.HasSuffix(k, "/"+uid) {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestRemoveRacingUpdate: a Remove racing Updates of the same object
// leaves the object gone with none of its index entries, never a record
// an Update brought back without the entries both versions share, nor
// entries of a record that is gone (issue 20: the index is never out of
// step with the objects).
func TestRemoveRacingUpdate(t *testing.T) {
	f := newFixture(t, 0)
	const rounds, updaters = 60, 2 // bounded
	for i := range rounds {
		uid := f.insert()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for u := range updaters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := f.s.Update(ctx, uid, func(o *Object) (bool, error) {
					if u == 0 {
						o.Set(AttrFresh, tree.Bool(0, false)) // no indexed value changes
					} else {
						o.Set("x-tag", tree.Int(0, int32(i))) // one entry moves, the rest are shared
					}
					return true, nil
				})
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := f.s.Remove(ctx, uid); err != nil {
				t.Error(err)
			}
		}()
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		// Remove ran once, whenever the Updates did: the record is gone,
		// and so are its entries.
		_, err := f.s.Load(ctx, uid)
		entries := uidEntries(t, f.st, alice, uid)
		if !errors.Is(err, ErrNotFound) || len(entries) != 0 {
			t.Fatalf("round %d: after Remove racing Update, Load = %v and %d index entries remain", i, err, len(entries))
		}
	}
	wantAsFresh(t, f.r, f.st, alice, "index after Removes racing Updates")
}
