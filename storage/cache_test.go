package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestBadgerExerciseWithoutCache(t *testing.T) {
	b, err := OpenBadger(t.TempDir(), BadgerOptions{CacheBytes: -1}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.cache != nil {
		t.Fatal("CacheBytes < 0 left the cache on")
	}
	Exercise(t, b)
}

func TestValueCache(t *testing.T) {
	c := newValueCache(1 << 16) // values up to 4 KiB
	gen := c.generation()
	c.set("k", []byte("new")) // a write lands while a reader is in badger
	c.fill("k", []byte("old"), gen)
	if v, ok := c.get("k"); !ok || string(v) != "new" {
		t.Fatalf("stale fill won: %q, %v", v, ok)
	}
	v, _ := c.get("k")
	v[0] = 'X' // the caller owns what get returns
	if v, _ := c.get("k"); string(v) != "new" {
		t.Fatalf("get handed out cache memory: %q", v)
	}
	c.set("k", []byte{}) // an index entry's empty value replaces it
	if v, ok := c.get("k"); ok {
		t.Fatalf("empty write left %q cached", v)
	}
	c.fill("k", []byte{}, c.generation()) // a Get of it caches it
	if v, ok := c.get("k"); !ok || len(v) != 0 {
		t.Fatalf("filled empty value: %q, %v", v, ok)
	}
	c.remove("k")
	if _, ok := c.get("k"); ok {
		t.Fatal("removed key still cached")
	}
	c.fill("big", make([]byte, 5<<10), c.generation())
	if _, ok := c.get("big"); ok {
		t.Fatal("value above the per-value limit cached")
	}
	for i := range 100 {
		c.set(fmt.Sprintf("e/%d", i), make([]byte, 4<<10))
	}
	if c.size > c.max || len(c.m) == 0 {
		t.Fatalf("cache holds %d bytes in %d entries, max %d", c.size, len(c.m), c.max)
	}
	if v, ok := c.get("e/99"); !ok || len(v) != 4<<10 {
		t.Fatal("the latest write was evicted")
	}
}

// A Get that starts after a Put returned sees that Put, however the cache
// and concurrent readers interleave.
func TestCacheCoherentUnderConcurrency(t *testing.T) {
	b := openTest(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	const writes = 300
	var done atomic.Int64   // highest value whose Put has returned
	var window atomic.Int64 // odd while a Delete-then-Create is under way
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() < writes {
				min, w := done.Load(), window.Load()
				v, err := b.Get(ctx, "hot")
				if err != nil {
					if min == 0 || w%2 == 1 || window.Load() != w {
						continue // not written yet, or legitimately absent
					}
					errs <- err
					return
				}
				if got := int64(binary.BigEndian.Uint64(v)); got < min {
					errs <- fmt.Errorf("Get returned %d after Put(%d) returned", got, min)
					return
				}
			}
		}()
	}
	for i := int64(1); i <= writes; i++ {
		v := binary.BigEndian.AppendUint64(nil, uint64(i))
		var err error
		if i%50 == 0 {
			// Delete and re-create now and then, through the other paths.
			window.Add(1)
			if err = b.Delete(ctx, "hot"); err == nil {
				err = b.Create(ctx, "hot", v)
			}
			window.Add(1)
		} else {
			err = b.Put(ctx, "hot", v)
		}
		if err != nil {
			t.Fatal(err)
		}
		done.Store(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Writes of empty values (index entries) do not fill the cache, and a Get
// after one still sees it, not the value it replaced.
func TestCacheSkipsEmptyWrites(t *testing.T) {
	b := openTest(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	mustPut(t, b, "idx/a", []byte("was"))
	if err := b.Apply(ctx, []Write{{Kind: WritePut, Key: "idx/a"}, {Kind: WriteCreate, Key: "idx/b"}, {Kind: WritePut, Key: "rec", Value: []byte("r")}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"idx/a", "idx/b"} {
		if v, ok := b.cache.peek(k); ok {
			t.Fatalf("%s cached after an empty write: %q", k, v)
		}
		mustGet(t, b, k, []byte{})
	}
	if v, ok := b.cache.peek("rec"); !ok || string(v) != "r" {
		t.Fatalf("record not cached by its write: %q, %v", v, ok)
	}
}
