package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Operations in one group behave exactly as if run one after another.
func TestGroupCommitSequentialSemantics(t *testing.T) {
	b := openTest(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	mustPut(t, b, "g/pre", []byte("pre"))
	op := func(kind writeKind, key, value string) *writeOp {
		var v []byte
		if value != "" {
			v = []byte(value)
		}
		return &writeOp{kind: kind, key: []byte(key), value: v, done: make(chan error, 1)}
	}
	ops := []*writeOp{
		op(opCreate, "g/a", "1"),
		op(opCreate, "g/a", "2"), // sees the first Create of the group
		op(opDelete, "g/a", ""),
		op(opDelete, "g/a", ""), // sees the Delete
		op(opCreate, "g/a", "3"),
		op(opPut, "g/b", "p"),
		op(opCreate, "g/b", "c"),
		op(opDelete, "g/missing", ""),
		op(opCreate, "g/pre", "x"), // sees what an earlier commit wrote
		op(opDelete, "g/pre", ""),
		op(opPut, "g/b", "last"),
	}
	want := []error{nil, ErrExists, nil, badger.ErrKeyNotFound, nil, nil, ErrExists,
		badger.ErrKeyNotFound, ErrExists, nil, nil}
	groups := b.groups.Load()
	// The committer is idle, so running the group here makes this test its
	// only writer, as the committer would be.
	b.commitGroup(ops)
	if n := b.groups.Load() - groups; n != 1 {
		t.Fatalf("group took %d commits, want 1", n)
	}
	for i, o := range ops {
		if err := <-o.done; !errors.Is(err, want[i]) {
			t.Errorf("op %d (%d %s) = %v, want %v", i, o.kind, o.key, err, want[i])
		}
	}
	mustGet(t, b, "g/a", []byte("3"))
	mustGet(t, b, "g/b", []byte("last"))
	if _, err := b.Get(ctx, "g/pre"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("g/pre = %v, want ErrNotFound", err)
	}
}

// A group larger than one badger transaction is split, in order, and every
// op still succeeds.
func TestGroupCommitSplitsLargeGroups(t *testing.T) {
	small := func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10) }
	b, err := openBadger(t.TempDir(), BadgerOptions{}, testLogger(t), small)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var ops []*writeOp
	for i := range maxGroupOps {
		ops = append(ops, &writeOp{kind: opCreate, key: []byte(fmt.Sprintf("big/%03d", i)),
			value: make([]byte, 2048), done: make(chan error, 1)})
	}
	ops = append(ops, &writeOp{kind: opCreate, key: []byte("big/000"), done: make(chan error, 1)})
	groups := b.groups.Load()
	b.commitGroup(ops)
	if n := b.groups.Load() - groups; n < 2 {
		t.Fatalf("%d ops of 2 KiB went into %d transaction(s) with a 1 MiB memtable; want a split", len(ops), n)
	}
	for i, o := range ops[:maxGroupOps] {
		if err := <-o.done; err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if err := <-ops[maxGroupOps].done; !errors.Is(err, ErrExists) {
		t.Fatalf("Create of a key created earlier in the split group = %v, want ErrExists", err)
	}
}

// Concurrent writes that were grouped are all on disk after a reopen, and
// every Create race still has exactly one winner.
func TestGroupCommitDurable(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir)
	ctx := context.Background()
	const workers, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*3)
	wins := make([]int, each)
	var mu sync.Mutex
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("d/%d/%d", w, i)
				if err := b.Create(ctx, key, []byte(key)); err != nil {
					errs <- err
				}
				if i%2 == 0 {
					if err := b.Delete(ctx, key); err != nil {
						errs <- err
					}
				}
				// Every worker races for the same key per round.
				switch err := b.Create(ctx, fmt.Sprintf("race/%d", i), []byte{byte(w)}); {
				case err == nil:
					mu.Lock()
					wins[i]++
					mu.Unlock()
				case !errors.Is(err, ErrExists):
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, n := range wins {
		if n != 1 {
			t.Errorf("race/%d had %d winners", i, n)
		}
	}
	if g, n := b.groups.Load(), b.grouped.Load(); n <= g {
		t.Errorf("%d operations in %d commits: nothing was grouped", n, g)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openTest(t, dir)
	defer b.Close()
	for w := range workers {
		for i := range each {
			key := fmt.Sprintf("d/%d/%d", w, i)
			v, err := b.Get(ctx, key)
			if i%2 == 0 {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("deleted %s after reopen = %q, %v", key, v, err)
				}
				continue
			}
			if err != nil || string(v) != key {
				t.Fatalf("%s after reopen = %q, %v", key, v, err)
			}
		}
	}
	for i := range each {
		if _, err := b.Get(ctx, fmt.Sprintf("race/%d", i)); err != nil {
			t.Fatalf("race/%d after reopen: %v", i, err)
		}
	}
}

// A panic inside a commit fails that group's callers and leaves the
// committer serving later writes.
func TestGroupCommitSurvivesPanic(t *testing.T) {
	b := openTest(t, t.TempDir())
	defer b.Close()
	ok := &writeOp{kind: opPut, key: []byte("p/ok"), value: []byte("v"), done: make(chan error, 1)}
	b.cache.set("p/ok", []byte("stale")) // must not survive the failed group
	// A nil op is a programming error that makes apply panic mid-group.
	b.safeCommitGroup([]*writeOp{ok, nil})
	if err := <-ok.done; err == nil {
		t.Fatal("an op of a group that panicked succeeded")
	}
	if _, found := b.cache.get("p/ok"); found {
		t.Fatal("cache kept a key whose commit panicked")
	}
	if err := b.Put(context.Background(), "p/after", []byte("x")); err != nil {
		t.Fatalf("Put after a panicked group: %v", err)
	}
}

// The committer waits for as many writes as recent commits carried, and
// for no one when writes come one at a time.
func TestStragglers(t *testing.T) {
	op := func() *writeOp { return &writeOp{kind: opPut, key: []byte("k"), done: make(chan error, 1)} }
	var s stragglers
	ch := make(chan *writeOp, 8)

	// Alone: groups of one, and a queued write is left for the next group.
	for range stragglerWindow {
		s.record(1, time.Millisecond)
	}
	ch <- op()
	if g, _ := s.gather(ch, []*writeOp{op()}, 1); len(g) != 1 || len(ch) != 1 {
		t.Fatalf("lone writer: group of %d, %d left queued; want 1 and 1", len(g), len(ch))
	}
	<-ch

	// Concurrent: the group grows to the largest recent one, no further.
	s.record(4, time.Millisecond)
	for range 5 {
		ch <- op()
	}
	if g, _ := s.gather(ch, []*writeOp{op()}, 1); len(g) != 4 || len(ch) != 2 {
		t.Fatalf("after a group of 4: group of %d, %d left queued; want 4 and 2", len(g), len(ch))
	}
	<-ch
	<-ch

	// Nobody comes: the wait ends (at most the last commit's duration).
	if g, _ := s.gather(ch, []*writeOp{op()}, 1); len(g) != 1 {
		t.Fatalf("empty queue: group of %d", len(g))
	}
	// A closed queue ends it too.
	close(ch)
	s.record(4, time.Hour)
	if g, _ := s.gather(ch, []*writeOp{op()}, 1); len(g) != 1 {
		t.Fatalf("closed queue: group of %d", len(g))
	}

	// The burst is forgotten after stragglerWindow commits.
	for range stragglerWindow {
		s.record(1, time.Millisecond)
	}
	ch2 := make(chan *writeOp, 1)
	ch2 <- op()
	if g, _ := s.gather(ch2, []*writeOp{op()}, 1); len(g) != 1 {
		t.Fatalf("after the burst: group of %d, want 1", len(g))
	}
}

// Badger's conflict detection is off because the committer is its only
// writer; Create must still be exclusive. Writers race to Create (or Apply a
// batch creating) one of a few keys, hold it, and Delete it: were a Create's
// existence check ever stale, two writers would hold one key at once.
func TestCreateExclusiveWithoutConflictDetection(t *testing.T) {
	b := openTest(t, t.TempDir())
	defer b.Close()
	if b.db.Opts().DetectConflicts {
		t.Fatal("badger's conflict detection is on; commit.go relies on being the only writer instead")
	}
	ctx := context.Background()
	const keys, writers, rounds = 3, 16, 60
	var holders [keys]atomic.Int32
	var won atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				k := (w + r) % keys
				key := fmt.Sprintf("excl/%d", k)
				var err error
				if r%2 == 0 {
					err = b.Create(ctx, key, []byte{byte(w)})
				} else {
					err = b.Apply(ctx, []Write{{Kind: WriteCreate, Key: key, Value: []byte{byte(w)}},
						{Kind: WritePut, Key: fmt.Sprintf("excl-idx/%d/%d", k, w)}})
				}
				if errors.Is(err, ErrExists) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if n := holders[k].Add(1); n != 1 {
					errs <- fmt.Errorf("%d writers hold %s at once", n, key)
					return
				}
				won.Add(1)
				holders[k].Add(-1)
				if err := b.Delete(ctx, key); err != nil {
					errs <- fmt.Errorf("delete %s it created: %v", key, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if won.Load() == 0 {
		t.Fatal("no Create won")
	}
}
