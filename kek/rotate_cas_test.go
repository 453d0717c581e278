package kek

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kmipd/kmipd/kek/kektest"
	"github.com/kmipd/kmipd/storage"
)

// racedStore runs onGet(value read) after each Get of key: another
// replica's write landing between a rotation's read and its write-back.
type racedStore struct {
	*storage.Memory
	key   string
	onGet func(v []byte)
}

func (r *racedStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := r.Memory.Get(ctx, key)
	if key == r.key && err == nil && r.onGet != nil {
		r.onGet(v)
	}
	return v, err
}

// TestResealComparesAndSets: a record another writer deletes, or changes
// every time, between the rotation's read and its write-back is never
// overwritten: a deleted one stays deleted and the rotation completes; one
// that keeps changing under the old generation fails the rotation after
// bounded retries (it can be run again), the other writer's value in place.
func TestResealComparesAndSets(t *testing.T) {
	ctx := context.Background()
	mk := kektest.NewMasterKeys()
	const owner, prefix = "alice", "obj/alice/"
	recs := Sealed{Prefix: prefix, AAD: func(k string) []byte { return []byte(k) }}
	setup := func(t *testing.T) (*racedStore, *Keyring) {
		st := &racedStore{Memory: storage.NewMemory()}
		k := New(mk, st, Config{}, nil)
		for i := range 3 {
			key := fmt.Sprintf("%su%d", prefix, i)
			sealed, err := k.Seal(ctx, owner, recs.AAD(key), []byte("secret"))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Put(ctx, key, sealed); err != nil {
				t.Fatal(err)
			}
		}
		return st, k
	}

	t.Run("deleted", func(t *testing.T) {
		st, k := setup(t)
		st.key = prefix + "u1"
		st.onGet = func([]byte) {
			st.onGet = nil
			if err := st.Delete(ctx, st.key); err != nil {
				t.Fatal(err)
			}
		}
		res, err := k.RotatePKEK(ctx, owner, recs, nil)
		if err != nil || res.Resealed != 2 {
			t.Fatalf("RotatePKEK = %+v, %v; want 2 resealed", res, err)
		}
		if v, err := st.Memory.Get(ctx, st.key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the deleted record is back (%d bytes, %v)", len(v), err)
		}
	})

	t.Run("always changing", func(t *testing.T) {
		st, k := setup(t)
		st.key = prefix + "u1"
		// Another replica whose cache keeps the old generation, writing
		// without a fence: the rotation's reseal never catches up.
		other := New(mk, st.Memory, Config{}, nil)
		if _, err := other.Seal(ctx, owner, nil, nil); err != nil {
			t.Fatal(err)
		}
		var last []byte
		st.onGet = func([]byte) {
			sealed, err := other.Seal(ctx, owner, recs.AAD(st.key), []byte("changed"))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Put(ctx, st.key, sealed); err != nil {
				t.Fatal(err)
			}
			last = sealed
		}
		if _, err := k.RotatePKEK(ctx, owner, recs, nil); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("RotatePKEK over a record that never stops changing = %v, want ErrConflict", err)
		}
		if v, _ := st.Memory.Get(ctx, st.key); string(v) != string(last) {
			t.Fatal("the rotation overwrote the other writer's value")
		}
		st.onGet = nil
		if _, err := k.RotatePKEK(ctx, owner, recs, nil); err != nil {
			t.Fatalf("RotatePKEK run again: %v", err)
		}
		v, _ := st.Memory.Get(ctx, st.key)
		if pt, err := k.Open(ctx, owner, recs.AAD(st.key), v); err != nil || string(pt) != "changed" {
			t.Fatalf("after the second run: %q, %v; want the other writer's value", pt, err)
		}
	})
}
