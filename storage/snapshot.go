package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// Snapshotter is implemented by a Store that can show several prefixes as
// of one instant (an online backup: a pKEK record and the objects sealed
// under it must come from the same moment).
type Snapshotter interface {
	// Snapshot calls fn for every key under each prefix, prefix by prefix
	// in the order given and keys in ascending order within one, with a
	// copy of its value, all from one consistent view. It stops at fn's
	// first error and returns it unchanged.
	Snapshot(ctx context.Context, prefixes []string, fn func(key string, value []byte) error) error
}

var (
	_ Snapshotter = (*Badger)(nil)
	_ Snapshotter = (*Memory)(nil)
)

// Snapshot reads every prefix in one badger read transaction.
func (b *Badger) Snapshot(ctx context.Context, prefixes []string, fn func(key string, value []byte) error) error {
	if err := b.enter(ctx); err != nil {
		return err
	}
	defer b.leave()
	var fnErr error
	err := b.db.View(func(txn *badger.Txn) error {
		for _, prefix := range prefixes {
			p := []byte(prefix)
			io := badger.DefaultIteratorOptions
			io.Prefix = p
			io.PrefetchValues = false
			it := txn.NewIterator(io)
			for it.Seek(p); it.ValidForPrefix(p); it.Next() {
				if err := ctx.Err(); err != nil {
					it.Close()
					return fmt.Errorf("storage: %w", err)
				}
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				if v == nil {
					v = []byte{}
				}
				if err := fn(string(it.Item().Key()), v); err != nil {
					fnErr = err
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return b.wrap("snapshot", strings.Join(prefixes, ","), err)
	}
	return nil
}

// Sizes are badger's own estimates of its LSM tree and value log on disk.
func (b *Badger) Sizes() (lsm, vlog int64) { return b.db.Size() }

// CacheBytes is what the value cache holds now.
func (b *Badger) CacheBytes() int {
	if b.cache == nil {
		return 0
	}
	b.cache.mu.RLock()
	defer b.cache.mu.RUnlock()
	return b.cache.size
}

// Snapshot copies the matching entries under the read lock, then calls fn.
func (s *Memory) Snapshot(ctx context.Context, prefixes []string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	type kv struct {
		k string
		v []byte
	}
	var all [][]kv
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	for _, p := range prefixes {
		var part []kv
		for k, v := range s.m {
			if strings.HasPrefix(k, p) {
				part = append(part, kv{k, v}) // stored slices are never changed in place
			}
		}
		all = append(all, part)
	}
	s.mu.RUnlock()
	for _, part := range all {
		slices.SortFunc(part, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		for _, e := range part {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			if err := fn(e.k, append([]byte{}, e.v...)); err != nil {
				return err
			}
		}
	}
	return nil
}

// exSnapshot is Exercise's case for a Snapshotter: both prefixes are seen,
// in order, and a write made during the snapshot is not.
func exSnapshot(t testing.TB, s Store, sn Snapshotter) {
	ctx := context.Background()
	for _, k := range []string{"exercise/snapB/2", "exercise/snapA/1", "exercise/snapB/1", "exercise/snapC/x"} {
		if err := s.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := sn.Snapshot(ctx, []string{"exercise/snapB/", "exercise/snapA/"}, func(k string, v []byte) error {
		if string(v) != "v-"+k {
			t.Errorf("Snapshot value of %s = %q", k, v)
		}
		if len(got) == 0 {
			// Written mid-snapshot: must not appear.
			if err := s.Put(ctx, "exercise/snapA/0", []byte("late")); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"exercise/snapB/1", "exercise/snapB/2", "exercise/snapA/1"}
	if !slices.Equal(got, want) {
		t.Fatalf("Snapshot saw %q, want %q", got, want)
	}
	stop := fmt.Errorf("stop")
	if err := sn.Snapshot(ctx, []string{"exercise/snap"}, func(string, []byte) error { return stop }); err != stop {
		t.Fatalf("Snapshot returned %v, want fn's error", err)
	}
	for _, k := range []string{"exercise/snapB/2", "exercise/snapA/1", "exercise/snapB/1", "exercise/snapC/x", "exercise/snapA/0"} {
		_ = s.Delete(ctx, k)
	}
}
