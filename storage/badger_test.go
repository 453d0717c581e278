package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/hashicorp/go-hclog"
)

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "storage", Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func openTest(t testing.TB, dir string) *Badger {
	t.Helper()
	b, err := OpenBadger(dir, BadgerOptions{}, testLogger(t))
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	return b
}

func TestBadgerExercise(t *testing.T) {
	b := openTest(t, t.TempDir())
	defer b.Close()
	Exercise(t, b)
}

func TestBadgerDurable(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b := openTest(t, dir)
	big := make([]byte, 2<<20) // above badger's value threshold: lives in the value log
	big[0], big[len(big)-1] = 1, 2
	if err := b.Put(ctx, "pkek/alice", []byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "obj/alice/1", big); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Get(ctx, "pkek/alice"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}

	b = openTest(t, dir)
	defer b.Close()
	if v, err := b.Get(ctx, "pkek/alice"); err != nil || string(v) != "record" {
		t.Fatalf("after reopen Get = %q, %v", v, err)
	}
	if v, err := b.Get(ctx, "obj/alice/1"); err != nil || len(v) != len(big) || v[0] != 1 || v[len(v)-1] != 2 {
		t.Fatalf("after reopen big Get = %d bytes, %v", len(v), err)
	}
	if _, err := b.Get(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key after reopen = %v, want ErrNotFound", err)
	}
	if err := b.Create(ctx, "pkek/alice", []byte("other")); !errors.Is(err, ErrExists) {
		t.Fatalf("Create after reopen = %v, want ErrExists", err)
	}
}

func TestBadgerGCLoopStops(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBadger(dir, BadgerOptions{GCInterval: time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v := make([]byte, 2<<20)
	for range 20 {
		if err := b.Put(ctx, "churn", v); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	done := make(chan error)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the GC loop")
	}
}

func TestBadgerEmptyKeyAndCloseWaits(t *testing.T) {
	b := openTest(t, t.TempDir())
	ctx := context.Background()
	if err := b.Put(ctx, "", []byte("x")); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Put(\"\") = %v, want ErrInvalidKey", err)
	}
	if err := b.Put(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	// A nested call inside a List callback racing Close must not deadlock.
	closed := make(chan error)
	err := b.List(ctx, "", func(string, []byte) error {
		go func() { closed <- b.Close() }()
		time.Sleep(10 * time.Millisecond)
		if _, err := b.Get(ctx, "a"); !errors.Is(err, ErrClosed) {
			t.Errorf("nested Get during Close = %v, want ErrClosed", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

func TestBadgerOpenFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBadger(f, BadgerOptions{}, nil); err == nil {
		t.Fatal("OpenBadger on a regular file succeeded")
	}
}

// A store whose tables were written with badger's default Snappy
// compression (kmipd before it turned compression off, with a block cache,
// which badger requires for compression) opens and reads without one.
func TestOpensSnappyCompressedStore(t *testing.T) {
	dir := t.TempDir()
	old, err := openBadger(dir, BadgerOptions{BlockCacheBytes: 16 << 20}, testLogger(t), func(o badger.Options) badger.Options {
		return o.WithCompression(options.Snappy)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := bytes.Repeat([]byte("compressible "), 100)
	for _, k := range []string{"obj/a/1", "obj/a/2"} {
		if err := old.Put(ctx, k, want); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil { // Close flushes the memtable to a table
		t.Fatal(err)
	}
	s := openTest(t, dir)
	defer s.Close()
	for _, k := range []string{"obj/a/1", "obj/a/2"} {
		got, err := s.Get(ctx, k)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get(%s) = %d bytes, %v", k, len(got), err)
		}
	}
}
