package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// exBatchIfUnchanged is Exercise's case for a Batcher's compare-and-set
// writes (WriteIfUnchanged, WriteDeleteIfUnchanged).
func exBatchIfUnchanged(t testing.TB, s Store, b Batcher) {
	ctx := context.Background()
	const p = "exercise/cas/"
	absent := func(key string) {
		t.Helper()
		if v, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, v, err)
		}
	}
	conflict := func(what string, writes ...Write) {
		t.Helper()
		if err := b.Apply(ctx, writes); !errors.Is(err, ErrConflict) {
			t.Fatalf("Apply(%s) = %v, want ErrConflict", what, err)
		}
	}
	put := func(key, v string) Write { return Write{Kind: WritePut, Key: p + key, Value: []byte(v)} }
	cas := func(key, expect, v string) Write {
		return Write{Kind: WriteIfUnchanged, Key: p + key, Expect: []byte(expect), Value: []byte(v)}
	}
	casDel := func(key, expect string) Write {
		return Write{Kind: WriteDeleteIfUnchanged, Key: p + key, Expect: []byte(expect)}
	}

	mustPut(t, s, p+"k", []byte("v1"))
	if err := b.Apply(ctx, []Write{cas("k", "v1", "v2"), put("idx/a", "a")}); err != nil {
		t.Fatalf("Apply(matching compare-and-set): %v", err)
	}
	mustGet(t, s, p+"k", []byte("v2"))
	mustGet(t, s, p+"idx/a", []byte("a"))

	// A mismatch, a prefix of the value, or an absent key fails the whole
	// batch, wherever the compare stands in it.
	conflict("stale expected value", put("idx/b", "b"), cas("k", "v1", "v3"), put("idx/c", "c"))
	conflict("prefix of the value", cas("k", "v", "v3"), put("idx/b", "b"))
	conflict("absent key", put("idx/b", "b"), cas("none", "", "x"))
	conflict("absent key, nil expect", Write{Kind: WriteIfUnchanged, Key: p + "none", Value: []byte("x")})
	conflict("delete with a stale value", put("idx/b", "b"), casDel("k", "v1"))
	conflict("delete of an absent key", casDel("none", ""), put("idx/b", "b"))
	mustGet(t, s, p+"k", []byte("v2"))
	absent(p + "idx/b")
	absent(p + "idx/c")
	absent(p + "none")

	// A failing Create and a failing compare: the batch fails either way.
	err := b.Apply(ctx, []Write{{Kind: WriteCreate, Key: p + "k", Value: []byte("c")}, cas("k", "v1", "x")})
	if !errors.Is(err, ErrExists) && !errors.Is(err, ErrConflict) {
		t.Fatalf("Apply(failing create and compare) = %v", err)
	}
	mustGet(t, s, p+"k", []byte("v2"))

	// Compares see the batch's earlier writes.
	if err := b.Apply(ctx, []Write{put("seq", "a"), cas("seq", "a", "b"), cas("seq", "b", "c")}); err != nil {
		t.Fatalf("Apply(put then compare-and-sets): %v", err)
	}
	mustGet(t, s, p+"seq", []byte("c"))
	conflict("compare after a delete", Write{Kind: WriteDelete, Key: p + "seq"}, cas("seq", "c", "d"))
	mustGet(t, s, p+"seq", []byte("c"))
	if err := b.Apply(ctx, []Write{casDel("seq", "c"), put("idx/d", "d")}); err != nil {
		t.Fatalf("Apply(matching delete): %v", err)
	}
	absent(p + "seq")
	mustGet(t, s, p+"idx/d", []byte("d"))

	// An empty value is a value: nil and empty expect it alike.
	mustPut(t, s, p+"empty", nil)
	if err := b.Apply(ctx, []Write{{Kind: WriteIfUnchanged, Key: p + "empty", Value: []byte("full")}}); err != nil {
		t.Fatalf("Apply(compare with an empty value): %v", err)
	}
	mustGet(t, s, p+"empty", []byte("full"))

	// Of concurrent compare-and-sets from one value, exactly one applies.
	const n = 8
	won := oneWinner(t, b, n, ErrConflict, "compare-and-sets", func(i int) []Write {
		return []Write{cas("k", "v2", fmt.Sprint(i)), put(fmt.Sprintf("race/%d", i), "")}
	})
	mustGet(t, s, p+"k", []byte(fmt.Sprint(won)))
	for i := range n {
		if i != won {
			absent(fmt.Sprintf("%srace/%d", p, i))
		}
	}
}
