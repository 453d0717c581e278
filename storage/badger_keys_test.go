package storage

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/go-hclog"
)

// TestBadgerMemory: kmipd's bounds replace badger's large defaults, and
// each option reaches badger.
func TestBadgerMemory(t *testing.T) {
	bo := badgerMemory(badger.DefaultOptions(""), BadgerOptions{})
	if bo.MemTableSize != DefaultMemTableBytes || bo.NumMemtables != DefaultNumMemtables ||
		bo.BlockCacheSize != DefaultBlockCacheBytes || bo.IndexCacheSize != DefaultIndexCacheBytes {
		t.Fatalf("defaults: memtable %d x %d, block cache %d, index cache %d", bo.MemTableSize, bo.NumMemtables, bo.BlockCacheSize, bo.IndexCacheSize)
	}
	if bo.NumCompactors != 2 || bo.BaseTableSize != 8<<20 || bo.TableSizeMultiplier != 1 {
		t.Fatalf("compactions: %d compactors, tables of %d bytes x %d per level", bo.NumCompactors, bo.BaseTableSize, bo.TableSizeMultiplier)
	}
	bo = badgerMemory(badger.DefaultOptions(""), BadgerOptions{MemTableBytes: 8 << 20, NumMemtables: 3, BlockCacheBytes: -1, IndexCacheBytes: 1 << 20})
	if bo.MemTableSize != 8<<20 || bo.NumMemtables != 3 || bo.BlockCacheSize != 0 || bo.IndexCacheSize != 1<<20 {
		t.Fatalf("set: memtable %d x %d, block cache %d, index cache %d", bo.MemTableSize, bo.NumMemtables, bo.BlockCacheSize, bo.IndexCacheSize)
	}
	// A store opens and works with the smallest bounds.
	b, err := OpenBadger(t.TempDir(), BadgerOptions{GCInterval: -1, MemTableBytes: 16 << 20, NumMemtables: 1, BlockCacheBytes: -1, IndexCacheBytes: 1 << 20}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	Exercise(t, b)
}

// TestListKeys: every key under the prefix, in order, none outside it;
// fn's error stops the walk and comes back unchanged.
func TestListKeys(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBadger(t.TempDir(), BadgerOptions{GCInterval: -1}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, k := range []string{"a/2", "a/1", "b/1", "a", "a/3"} {
		if err := b.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := b.ListKeys(ctx, "a/", func(k string) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/1", "a/2", "a/3"}; !slices.Equal(got, want) {
		t.Fatalf("ListKeys = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	err = b.ListKeys(ctx, "a/", func(string) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("stopping: %v after %d keys", err, n)
	}
}
