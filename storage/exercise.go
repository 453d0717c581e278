package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// Exercise runs the behaviour every Store must have against s (in the style
// of vault's physical.ExerciseBackend). s should be empty; Exercise only uses
// keys under "exercise/" and leaves some behind. It does not close s.
func Exercise(t testing.TB, s Store) {
	t.Helper()
	for _, c := range []struct {
		name string
		fn   func(testing.TB, Store)
	}{
		{"Missing", exMissing},
		{"PutGet", exPutGet},
		{"Overwrite", exOverwrite},
		{"CreateExists", exCreateExists},
		{"Delete", exDelete},
		{"ListPrefix", exList},
		{"ListStops", exListStops},
		{"LargeValue", exLarge},
		{"Binary", exBinary},
		{"ConcurrentCreate", exConcurrentCreate},
		{"ContextCancelled", exCancelled},
	} {
		run(t, c.name, func(t testing.TB) { c.fn(t, s) })
	}
	if v, ok := s.(Viewer); ok {
		run(t, "View", func(t testing.TB) { exView(t, s, v) })
	}
	if sw, ok := s.(Swapper); ok {
		run(t, "Swap", func(t testing.TB) { exSwap(t, s, sw) })
	}
	if sn, ok := s.(Snapshotter); ok {
		run(t, "Snapshot", func(t testing.TB) { exSnapshot(t, s, sn) })
	}
	if b, ok := s.(Batcher); ok {
		run(t, "Batch", func(t testing.TB) { exBatch(t, s, b) })
		run(t, "BatchIfUnchanged", func(t testing.TB) { exBatchIfUnchanged(t, s, b) })
	}
}

// run uses subtests when t is a *testing.T so failures name the case.
func run(t testing.TB, name string, fn func(testing.TB)) {
	if tt, ok := t.(*testing.T); ok {
		tt.Run(name, func(t *testing.T) { fn(t) })
		return
	}
	fn(t)
}

func mustGet(t testing.TB, s Store, key string, want []byte) {
	t.Helper()
	got, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %.32x, want %d bytes %.32x", key, len(got), got, len(want), want)
	}
}

func mustPut(t testing.TB, s Store, key string, v []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, v); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func exMissing(t testing.TB, s Store) {
	ctx := context.Background()
	if v, err := s.Get(ctx, "exercise/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) = %q, %v; want ErrNotFound", v, err)
	}
	n := 0
	if err := s.List(ctx, "exercise/missing/", func(string, []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("List(empty prefix) = %d keys, %v", n, err)
	}
}

func exPutGet(t testing.TB, s Store) {
	v := []byte("value")
	mustPut(t, s, "exercise/putget", v)
	v[0] = 'X' // the store must not alias the caller's buffer
	mustGet(t, s, "exercise/putget", []byte("value"))

	got, _ := s.Get(context.Background(), "exercise/putget")
	got[0] = 'Y' // nor hand out its own
	mustGet(t, s, "exercise/putget", []byte("value"))

	// An empty value is a value, not an absence.
	mustPut(t, s, "exercise/empty", nil)
	mustGet(t, s, "exercise/empty", []byte{})
}

func exOverwrite(t testing.TB, s Store) {
	mustPut(t, s, "exercise/over", []byte("one"))
	mustPut(t, s, "exercise/over", []byte("two-longer"))
	mustGet(t, s, "exercise/over", []byte("two-longer"))
	mustPut(t, s, "exercise/over", []byte("3"))
	mustGet(t, s, "exercise/over", []byte("3"))
}

func exCreateExists(t testing.TB, s Store) {
	ctx := context.Background()
	if err := s.Create(ctx, "exercise/create", []byte("first")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := s.Create(ctx, "exercise/create", []byte("second")); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	mustGet(t, s, "exercise/create", []byte("first"))
	// Create must see keys written by Put too.
	mustPut(t, s, "exercise/create-put", []byte("p"))
	if err := s.Create(ctx, "exercise/create-put", []byte("c")); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over Put = %v, want ErrExists", err)
	}
	mustGet(t, s, "exercise/create-put", []byte("p"))
}

func exDelete(t testing.TB, s Store) {
	ctx := context.Background()
	mustPut(t, s, "exercise/del", []byte("x"))
	mustPut(t, s, "exercise/del2", []byte("keep"))
	if err := s.Delete(ctx, "exercise/del"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "exercise/del"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "exercise/del"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete again = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "exercise/never-existed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete(missing) = %v, want ErrNotFound", err)
	}
	mustGet(t, s, "exercise/del2", []byte("keep"))
	// A deleted key can be created again.
	if err := s.Create(ctx, "exercise/del", []byte("again")); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
	mustGet(t, s, "exercise/del", []byte("again"))
}

func exList(t testing.TB, s Store) {
	ctx := context.Background()
	keys := []string{
		"exercise/obj/a", // equals the prefix without its slash: excluded
		"exercise/obj/a/1",
		"exercise/obj/a/2",
		"exercise/obj/a/10",
		"exercise/obj/a/\x00bin",
		"exercise/obj/ab/1", // shares "a" but not "a/": excluded
		"exercise/obj/b/1",
		"exercise/obj/a0",
	}
	for i, k := range keys {
		mustPut(t, s, k, []byte(fmt.Sprintf("v%d", i)))
	}
	var got []string
	vals := map[string][]byte{}
	err := s.List(ctx, "exercise/obj/a/", func(k string, v []byte) error {
		got = append(got, k)
		vals[k] = v
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []string{"exercise/obj/a/\x00bin", "exercise/obj/a/1", "exercise/obj/a/10", "exercise/obj/a/2"}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("List(exercise/obj/a/) = %q, want %q (byte order, prefix only)", got, want)
	}
	if string(vals["exercise/obj/a/1"]) != "v1" || string(vals["exercise/obj/a/2"]) != "v2" {
		t.Fatalf("List values wrong: %q", vals)
	}
	// Values handed to fn are copies the caller may keep, and overwrite
	// (kmipops decrypts them in place).
	mustPut(t, s, "exercise/obj/a/1", []byte("changed"))
	if string(vals["exercise/obj/a/1"]) != "v1" {
		t.Fatalf("List value aliased store memory")
	}
	vals["exercise/obj/a/2"][0] = 'X'
	mustGet(t, s, "exercise/obj/a/2", []byte("v2"))
	n := 0
	if err := s.List(ctx, "exercise/obj/", func(string, []byte) error { n++; return nil }); err != nil || n != len(keys) {
		t.Fatalf("List(exercise/obj/) = %d keys, %v; want %d", n, err, len(keys))
	}
}

func exListStops(t testing.TB, s Store) {
	ctx := context.Background()
	for i := range 5 {
		mustPut(t, s, fmt.Sprintf("exercise/stop/%d", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	n := 0
	err := s.List(ctx, "exercise/stop/", func(string, []byte) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("List with failing fn = %d calls, %v; want 2, %v", n, err, stop)
	}
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func exLarge(t testing.TB, s Store) {
	v := randBytes(t, 1<<20)
	mustPut(t, s, "exercise/large", v)
	mustGet(t, s, "exercise/large", v)
	if err := s.Create(context.Background(), "exercise/large-create", v); err != nil {
		t.Fatalf("Create 1 MiB: %v", err)
	}
	mustGet(t, s, "exercise/large-create", v)
}

func exBinary(t testing.TB, s Store) {
	ctx := context.Background()
	key := "exercise/bin/\x00\xff\xfe/\x01" + string(randBytes(t, 32))
	val := append([]byte{0, 0, 0xff}, randBytes(t, 256)...)
	if err := s.Create(ctx, key, val); err != nil {
		t.Fatalf("Create(binary): %v", err)
	}
	mustGet(t, s, key, val)
	var seen []string
	if err := s.List(ctx, "exercise/bin/\x00", func(k string, v []byte) error {
		seen = append(seen, k)
		if !bytes.Equal(v, val) {
			t.Errorf("List binary value mismatch")
		}
		return nil
	}); err != nil || len(seen) != 1 || seen[0] != key {
		t.Fatalf("List(binary prefix) = %q, %v", seen, err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete(binary): %v", err)
	}
}

func exConcurrentCreate(t testing.TB, s Store) {
	const n = 32
	for round := range 3 {
		key := fmt.Sprintf("exercise/race/%d", round)
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			mu     sync.Mutex
			wins   []int
			others []error
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := s.Create(context.Background(), key, []byte{byte(i)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins = append(wins, i)
				case !errors.Is(err, ErrExists):
					others = append(others, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(others) > 0 {
			t.Fatalf("concurrent Create: unexpected errors %v", others)
		}
		if len(wins) != 1 {
			t.Fatalf("concurrent Create: %d winners %v, want exactly 1", len(wins), wins)
		}
		mustGet(t, s, key, []byte{byte(wins[0])})
	}
}

func exCancelled(t testing.TB, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	mustPut(t, s, "exercise/ctx/present", []byte("p"))

	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with cancelled ctx = %v, want context.Canceled", op, err)
		}
	}
	_, err := s.Get(ctx, "exercise/ctx/present")
	check("Get", err)
	check("Put", s.Put(ctx, "exercise/ctx/put", []byte("x")))
	check("Create", s.Create(ctx, "exercise/ctx/create", []byte("x")))
	check("Delete", s.Delete(ctx, "exercise/ctx/present"))
	check("List", s.List(ctx, "exercise/ctx/", func(string, []byte) error {
		t.Fatal("List called fn with a cancelled ctx")
		return nil
	}))
	// Nothing a cancelled call was asked to do happened.
	for _, k := range []string{"exercise/ctx/put", "exercise/ctx/create"} {
		if _, err := s.Get(bg, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) after cancelled write = %v, want ErrNotFound", k, err)
		}
	}
	mustGet(t, s, "exercise/ctx/present", []byte("p"))

	// Cancelling during List stops it between keys.
	for i := range 4 {
		mustPut(t, s, fmt.Sprintf("exercise/ctx/l/%d", i), nil)
	}
	ctx2, cancel2 := context.WithCancel(bg)
	defer cancel2()
	n := 0
	err = s.List(ctx2, "exercise/ctx/l/", func(string, []byte) error { n++; cancel2(); return nil })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Fatalf("List cancelled mid-way = %d calls, %v; want 1, context.Canceled", n, err)
	}
}

func exView(t testing.TB, s Store, v Viewer) {
	ctx := context.Background()
	called := false
	if err := v.View(ctx, "exercise/view/missing", func([]byte) error { called = true; return nil }); !errors.Is(err, ErrNotFound) || called {
		t.Fatalf("View(missing) = %v, fn called %v; want ErrNotFound, not called", err, called)
	}
	want := []byte("first value")
	mustPut(t, s, "exercise/view/k", want)
	// Twice: the first read may come from the backend, the second from a cache.
	for i := range 2 {
		var got []byte
		if err := v.View(ctx, "exercise/view/k", func(b []byte) error { got = bytes.Clone(b); return nil }); err != nil {
			t.Fatalf("View #%d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("View #%d saw %q, want %q", i, got, want)
		}
	}
	// A value fn keeps is never changed by the store (Viewer): not by a
	// later View, nor by a write replacing it.
	var kept []byte
	if err := v.View(ctx, "exercise/view/k", func(b []byte) error { kept = b; return nil }); err != nil {
		t.Fatalf("View: %v", err)
	}
	mustPut(t, s, "exercise/view/k", []byte("second"))
	var got []byte
	if err := v.View(ctx, "exercise/view/k", func(b []byte) error { got = bytes.Clone(b); return nil }); err != nil || string(got) != "second" {
		t.Fatalf("View after Put = %q, %v; want \"second\"", got, err)
	}
	mustGet(t, s, "exercise/view/k", []byte("second"))
	if !bytes.Equal(kept, want) {
		t.Fatalf("a value View showed became %q after an overwrite, want %q", kept, want)
	}
	sentinel := errors.New("from fn")
	if err := v.View(ctx, "exercise/view/k", func([]byte) error { return sentinel }); err != sentinel {
		t.Fatalf("View returned %v, want fn's error unchanged", err)
	}
	if err := s.Delete(ctx, "exercise/view/k"); err != nil {
		t.Fatal(err)
	}
	if err := v.View(ctx, "exercise/view/k", func([]byte) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("View after Delete = %v, want ErrNotFound", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := v.View(cctx, "exercise/view/k", func([]byte) error { t.Fatal("fn called with a cancelled ctx"); return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("View with cancelled ctx = %v, want context.Canceled", err)
	}
}
