package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// WriteKind says what one Write of a batch does.
type WriteKind uint8

const (
	// WritePut stores Value at Key, replacing any previous value.
	WritePut WriteKind = iota + 1
	// WriteCreate stores Value at Key only if Key is absent; if it is
	// present the whole batch fails with ErrExists.
	WriteCreate
	// WriteDelete removes Key if it is present (an absent Key is no
	// failure: a batch deletes what it knows to be stale).
	WriteDelete
	// WriteIfUnchanged stores Value at Key only if Key holds Expect now
	// (compare-and-set); if it holds anything else, or is absent, the whole
	// batch fails with ErrConflict. For a read-modify-write that replicas
	// sharing the store may race: a pKEK rotation's reseal, Undo's restore.
	WriteIfUnchanged
	// WriteDeleteIfUnchanged removes Key only if it holds Expect now;
	// otherwise (another value, or absent) the batch fails with ErrConflict.
	WriteDeleteIfUnchanged
)

// Write is one write of a batch. The slices may be reused by the caller once
// Apply returns.
type Write struct {
	Kind  WriteKind
	Key   string
	Value []byte
	// Expect is the value Key must hold for WriteIfUnchanged and
	// WriteDeleteIfUnchanged (nil and empty are the same: an empty value).
	Expect []byte
}

// deletes reports whether w leaves Key absent.
func (w Write) deletes() bool { return w.Kind == WriteDelete || w.Kind == WriteDeleteIfUnchanged }

// conditional reports whether w compares Key's value first.
func (w Write) conditional() bool {
	return w.Kind == WriteIfUnchanged || w.Kind == WriteDeleteIfUnchanged
}

// batchState is what a batch's earlier writes left at each key they wrote,
// for checking its later writes (Memory and Badger; PostgreSQL's own
// transaction sees them).
type batchState map[string]batchValue

type batchValue struct {
	present bool
	value   []byte
}

// check applies w's condition, reading a key the batch has not written
// yet through get (found false: absent), and then notes what w leaves.
func (st batchState) check(w Write, get func(key string) (v []byte, found bool, err error)) error {
	if w.Kind == WriteCreate || w.conditional() {
		cur, known := st[w.Key]
		if !known {
			var err error
			if cur.value, cur.present, err = get(w.Key); err != nil {
				return err
			}
		}
		switch {
		case w.Kind == WriteCreate && cur.present:
			return fmt.Errorf("create %q: %w", w.Key, ErrExists)
		case w.conditional() && (!cur.present || !bytes.Equal(cur.value, w.Expect)):
			return fmt.Errorf("write %q: %w", w.Key, ErrConflict)
		}
	}
	st[w.Key] = batchValue{present: !w.deletes(), value: w.Value}
	return nil
}

// Batcher is implemented by a Store that can apply several writes as one
// transaction: all of them or none, durable (like Put) when Apply returns
// nil. kmipops/object writes an object's record and its index entries
// through it, so that the index is never out of step with the records.
type Batcher interface {
	// Apply applies writes in order, atomically. It returns ErrExists
	// (wrapped or not; test with errors.Is) when a WriteCreate finds its key
	// present, ErrConflict when a WriteIfUnchanged or WriteDeleteIfUnchanged
	// finds its key changed, ErrInvalidKey for an empty key, and then
	// nothing is written.
	// Like Create, it is exactly-once: a retried attempt never reports
	// ErrExists for a key its own earlier attempt created.
	Apply(ctx context.Context, writes []Write) error
}

// checkWrites refuses what no backend accepts.
func checkWrites(writes []Write) error {
	for _, w := range writes {
		if w.Key == "" {
			return ErrInvalidKey
		}
		switch w.Kind {
		case WritePut, WriteCreate, WriteDelete, WriteIfUnchanged, WriteDeleteIfUnchanged:
		default:
			return fmt.Errorf("storage: unknown write kind %d", w.Kind)
		}
	}
	return nil
}

var _ Batcher = (*Memory)(nil)

// Apply applies writes under the write lock: they are all checked before
// any is made, so a failed batch leaves nothing.
func (s *Memory) Apply(ctx context.Context, writes []Write) error {
	if err := checkWrites(writes); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	vals := make([][]byte, len(writes))
	for i, w := range writes {
		vals[i] = bytes.Clone(w.Value)
		if vals[i] == nil {
			vals[i] = []byte{}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	st := batchState{}
	get := func(key string) ([]byte, bool, error) {
		v, ok := s.m[key]
		return v, ok, nil
	}
	for _, w := range writes {
		if err := st.check(w, get); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}
	for i, w := range writes {
		if w.deletes() {
			delete(s.m, w.Key)
			continue
		}
		s.m[w.Key] = vals[i]
	}
	return nil
}

// exBatch is Exercise's case for a Store that is a Batcher.
func exBatch(t testing.TB, s Store, b Batcher) {
	ctx := context.Background()
	absent := func(key string) {
		t.Helper()
		if v, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, v, err)
		}
	}
	const p = "exercise/batch/"
	if err := b.Apply(ctx, nil); err != nil {
		t.Fatalf("Apply(no writes): %v", err)
	}
	mustPut(t, s, p+"old", []byte("old"))
	err := b.Apply(ctx, []Write{
		{Kind: WriteCreate, Key: p + "obj", Value: []byte("record")},
		{Kind: WritePut, Key: p + "idx/1", Value: nil},
		{Kind: WritePut, Key: p + "idx/2", Value: []byte{}},
		{Kind: WriteDelete, Key: p + "old"},
		{Kind: WriteDelete, Key: p + "never"},
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	mustGet(t, s, p+"obj", []byte("record"))
	mustGet(t, s, p+"idx/1", []byte{})
	mustGet(t, s, p+"idx/2", []byte{})
	absent(p + "old")
	absent(p + "never")

	// All or nothing: a Create that finds its key fails the whole batch,
	// wherever it stands in it.
	err = b.Apply(ctx, []Write{
		{Kind: WritePut, Key: p + "idx/3", Value: []byte("3")},
		{Kind: WriteDelete, Key: p + "idx/1"},
		{Kind: WriteCreate, Key: p + "obj", Value: []byte("other")},
		{Kind: WritePut, Key: p + "idx/4", Value: []byte("4")},
	})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("Apply with a Create of a present key = %v, want ErrExists", err)
	}
	mustGet(t, s, p+"obj", []byte("record"))
	mustGet(t, s, p+"idx/1", []byte{})
	absent(p + "idx/3")
	absent(p + "idx/4")
	if err := b.Apply(ctx, []Write{{Kind: WritePut, Key: p + "x"}, {Kind: WritePut, Key: ""}}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Apply with an empty key = %v, want ErrInvalidKey", err)
	}
	absent(p + "x")

	// Later writes of a batch see earlier ones: put then overwrite, create
	// then delete.
	err = b.Apply(ctx, []Write{
		{Kind: WritePut, Key: p + "seq", Value: []byte("a")},
		{Kind: WritePut, Key: p + "seq", Value: []byte("b")},
		{Kind: WriteCreate, Key: p + "tmp", Value: []byte("t")},
		{Kind: WriteDelete, Key: p + "tmp"},
	})
	if err != nil {
		t.Fatalf("Apply(sequence): %v", err)
	}
	mustGet(t, s, p+"seq", []byte("b"))
	absent(p + "tmp")

	// A batch of a couple of MiB goes through whole.
	big := make([]Write, 64)
	for i := range big {
		big[i] = Write{Kind: WriteCreate, Key: fmt.Sprintf("%sbig/%02d", p, i), Value: randBytes(t, 32<<10)}
	}
	if err := b.Apply(ctx, big); err != nil {
		t.Fatalf("Apply(64 x 32 KiB): %v", err)
	}
	for _, w := range big {
		mustGet(t, s, w.Key, w.Value)
	}

	// Of concurrent batches creating one key, exactly one applies.
	const n = 8
	won := oneWinner(t, b, n, ErrExists, "batches creating one key", func(i int) []Write {
		return []Write{
			{Kind: WriteCreate, Key: p + "race", Value: []byte{byte(i)}},
			{Kind: WritePut, Key: fmt.Sprintf("%srace-idx/%d", p, i)},
		}
	})
	mustGet(t, s, p+"race", []byte{byte(won)})
	for i := range n {
		if i == won {
			mustGet(t, s, fmt.Sprintf("%srace-idx/%d", p, i), []byte{})
		} else {
			absent(fmt.Sprintf("%srace-idx/%d", p, i))
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Apply(cctx, []Write{{Kind: WritePut, Key: p + "cancelled"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled ctx = %v, want context.Canceled", err)
	}
	absent(p + "cancelled")
}

// oneWinner applies the n batches batch(i) at once and returns the index
// of the one that applied; every other one must have failed with lost.
func oneWinner(t testing.TB, b Batcher, n int, lost error, what string, batch func(i int) []Write) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Apply(context.Background(), batch(i))
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won < 0:
			won = i
		case err == nil:
			t.Fatalf("concurrent %s: two applied (%d and %d)", what, won, i)
		case !errors.Is(err, lost):
			t.Fatalf("concurrent %s %d: %v", what, i, err)
		}
	}
	if won < 0 {
		t.Fatalf("concurrent %s: none applied", what)
	}
	return won
}
