package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestMemoryExercise(t *testing.T) {
	s := NewMemory()
	defer s.Close()
	Exercise(t, s)
}

// Values handed in or out never alias the store: Create and List too (Put
// and Get are in Exercise).
func TestMemoryCopies(t *testing.T) {
	ctx := context.Background()
	s := NewMemory()
	v := []byte("created")
	if err := s.Create(ctx, "k", v); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	mustGet(t, s, "k", []byte("created"))
	if err := s.List(ctx, "", func(_ string, b []byte) error { b[0] = 'Y'; return nil }); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "k", []byte("created"))
	// A slice View showed is not changed by a later write.
	var seen []byte
	if err := s.View(ctx, "k", func(b []byte) error { seen = b; return nil }); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "k", []byte("CHANGED"))
	if string(seen) != "created" {
		t.Fatalf("a write changed a viewed value in place: %q", seen)
	}
}

// List works from a snapshot, so fn may write to the store.
func TestMemoryListSnapshot(t *testing.T) {
	ctx := context.Background()
	s := NewMemory()
	for i := range 3 {
		mustPut(t, s, fmt.Sprintf("l/%d", i), []byte{byte(i)})
	}
	var got []string
	err := s.List(ctx, "l/", func(k string, v []byte) error {
		got = append(got, k)
		if err := s.Delete(ctx, "l/2"); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return s.Put(ctx, "l/9", nil)
	})
	if err != nil || fmt.Sprint(got) != "[l/0 l/1 l/2]" {
		t.Fatalf("List = %v, %v", got, err)
	}
}

func TestMemoryInvalidKeyAndClose(t *testing.T) {
	ctx := context.Background()
	s := NewMemory()
	if _, err := s.Get(ctx, ""); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Get(\"\") = %v", err)
	}
	for name, err := range map[string]error{
		"Put":    s.Put(ctx, "", nil),
		"Create": s.Create(ctx, "", nil),
		"Delete": s.Delete(ctx, ""),
		"View":   s.View(ctx, "", func([]byte) error { return nil }),
	} {
		if !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("%s(\"\") = %v", name, err)
		}
	}
	mustPut(t, s, "k", []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	for name, err := range map[string]error{
		"Put":    s.Put(ctx, "k", nil),
		"Create": s.Create(ctx, "n", nil),
		"Delete": s.Delete(ctx, "k"),
		"View":   s.View(ctx, "k", func([]byte) error { return nil }),
		"List":   s.List(ctx, "", func(string, []byte) error { return nil }),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("%s after Close = %v", name, err)
		}
	}
}

// Readers and writers at once, for the race detector; every Get sees one
// whole value.
func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	s := NewMemory()
	vals := [][]byte{[]byte("aaaaaaaa"), []byte("bbbbbbbbbbbbbbbb")}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				key := fmt.Sprintf("c/%d", i%8)
				switch (w + i) % 4 {
				case 0:
					_ = s.Put(ctx, key, vals[i%2])
				case 1:
					if v, err := s.Get(ctx, key); err == nil && string(v) != string(vals[0]) && string(v) != string(vals[1]) {
						t.Errorf("torn value %q", v)
					}
				case 2:
					_ = s.Delete(ctx, key)
				case 3:
					_ = s.List(ctx, "c/", func(string, []byte) error { return nil })
				}
			}
		}()
	}
	wg.Wait()
}
