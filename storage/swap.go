package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// ErrConflict is returned by Swap, and by a Batcher's compare-and-set
// writes (WriteIfUnchanged, WriteDeleteIfUnchanged), when the stored value
// is not the one the caller expected.
var ErrConflict = errors.New("storage: value changed since it was read")

// Swapper is implemented by a Store that can write a record only if it
// still holds what the caller last read, atomically in the store
// (compare-and-swap). kmipops's per-object locks order writes within one
// kmipd; when several kmipd replicas share a store, a read-modify-write
// needs the store to refuse a record another replica changed meanwhile.
// (kmipd's own, a pKEK rotation's reseal and Undo's restore, use the batch
// form, WriteIfUnchanged, which carries index entries and fences along.)
type Swapper interface {
	// Swap sets key to value if it holds old, else returns ErrConflict.
	// A nil old means key must be absent (Swap creates it); a nil value
	// deletes it; an empty non-nil slice is an empty value. Durable and
	// exactly-once like Create.
	Swap(ctx context.Context, key string, old, value []byte) error
}

// exSwap is Exercise's case for a Store that is a Swapper.
func exSwap(t testing.TB, s Store, sw Swapper) {
	ctx := context.Background()
	key := "exercise/swap/k"
	conflict := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("%s = %v, want ErrConflict", op, err)
		}
	}
	if err := sw.Swap(ctx, key, nil, []byte("one")); err != nil {
		t.Fatalf("Swap(absent → one): %v", err)
	}
	mustGet(t, s, key, []byte("one"))
	conflict("Swap(absent → x) over a present key", sw.Swap(ctx, key, nil, []byte("x")))
	conflict("Swap(wrong old → x)", sw.Swap(ctx, key, []byte("on"), []byte("x")))
	conflict("Swap(empty old → x)", sw.Swap(ctx, key, []byte{}, []byte("x")))
	mustGet(t, s, key, []byte("one"))
	if err := sw.Swap(ctx, key, []byte("one"), []byte{}); err != nil {
		t.Fatalf("Swap(one → empty): %v", err)
	}
	mustGet(t, s, key, []byte{})
	conflict("Swap(absent → x) over an empty value", sw.Swap(ctx, key, nil, []byte("x")))
	if err := sw.Swap(ctx, key, []byte{}, []byte("two")); err != nil {
		t.Fatalf("Swap(empty → two): %v", err)
	}
	conflict("Delete-swap with a stale old", sw.Swap(ctx, key, []byte("one"), nil))
	if err := sw.Swap(ctx, key, []byte("two"), nil); err != nil {
		t.Fatalf("Swap(two → absent): %v", err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after a deleting Swap = %v, want ErrNotFound", err)
	}
	conflict("Swap(two → x) on an absent key", sw.Swap(ctx, key, []byte("two"), []byte("x")))
	if err := sw.Swap(ctx, key, nil, nil); err != nil {
		t.Fatalf("Swap(absent → absent): %v", err)
	}
	big := bytes.Repeat([]byte{0xa5}, 1<<20)
	if err := sw.Swap(ctx, key, nil, big); err != nil {
		t.Fatalf("Swap(absent → 1 MiB): %v", err)
	}
	if err := sw.Swap(ctx, key, big, []byte("small")); err != nil {
		t.Fatalf("Swap(1 MiB → small): %v", err)
	}
	mustGet(t, s, key, []byte("small"))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := sw.Swap(cctx, key, []byte("small"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Swap with a cancelled ctx = %v, want context.Canceled", err)
	}
	mustGet(t, s, key, []byte("small"))
}
